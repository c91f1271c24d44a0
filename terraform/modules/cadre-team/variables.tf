variable "project" {
  description = "The Google Cloud project the team's deployment lives in."
  type        = string
}

variable "region" {
  description = "Region of the Cloud Run services, the bucket, the image repository and Vector Search."
  type        = string
  default     = "europe-west1"
}

variable "team" {
  description = "The team's short name; it prefixes every resource (service accounts allow 30 characters)."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,11}$", var.team))
    error_message = "The team name must be 2 to 12 characters of lowercase letters, digits and dashes, starting with a letter."
  }
}

variable "image" {
  description = "The cadre image the services run, e.g. europe-west1-docker.pkg.dev/PROJECT/cadre-TEAM/cadre:TAG."
  type        = string
}

variable "model" {
  description = "The model the plan and generate steps call (cadre's --model syntax)."
  type        = string
  default     = "gemini"
}

variable "task_budget_usd" {
  description = "The most one task may spend on model calls, in USD."
  type        = number
  default     = 2
}

variable "max_delivery_attempts" {
  description = "Deliveries of one message before Pub/Sub moves it to the dead-letter topic (the engine dead-letters hopeless messages itself, earlier)."
  type        = number
  default     = 10

  validation {
    condition     = var.max_delivery_attempts >= 5 && var.max_delivery_attempts <= 100
    error_message = "Pub/Sub accepts 5 to 100 delivery attempts."
  }
}

variable "ack_deadline_seconds" {
  description = "How long a step may take: the subscriptions' ack deadline and the services' request timeout."
  type        = number
  default     = 600
}

variable "minimum_backoff" {
  description = "Pub/Sub's first redelivery delay after a 5xx."
  type        = string
  default     = "10s"
}

variable "maximum_backoff" {
  description = "Pub/Sub's longest redelivery delay."
  type        = string
  default     = "600s"
}

variable "max_instances" {
  description = "Most instances of each step's service."
  type        = number
  default     = 10
}

variable "firestore_location" {
  description = "Location of the team's Firestore database."
  type        = string
  default     = "eur3"
}

variable "embedding_dimensions" {
  description = "Dimensions of the embeddings stored in the Vector Search index."
  type        = number
  default     = 768
}

variable "team_daily_budget_usd" {
  description = "Most the team may spend on model calls per UTC day, in USD; the task API refuses new tasks past it (null: no limit)."
  type        = number
  default     = null
}

variable "api_public" {
  description = "Let anyone reach the task API at the Cloud Run level; callers still need a team token (Cloud Run IAM would consume the Authorization header)."
  type        = bool
  default     = true
}
