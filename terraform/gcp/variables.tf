variable "project" {
  description = "The Google Cloud project every team's deployment lives in."
  type        = string
}

variable "region" {
  description = "The default region."
  type        = string
  default     = "europe-west1"
}

variable "teams" {
  description = "One entry per team: its image and settings (see teams.tfvars.example)."
  type = map(object({
    image                 = string
    region                = optional(string)
    model                 = optional(string, "gemini")
    task_budget_usd       = optional(number, 2)
    max_instances         = optional(number, 10)
    max_delivery_attempts = optional(number, 10)
  }))
}
