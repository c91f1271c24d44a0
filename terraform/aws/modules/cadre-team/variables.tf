variable "team" {
  description = "The team's short name; every resource is named cadre-TEAM-…"
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,11}$", var.team))
    error_message = "team must be 2-12 characters: lowercase letters, digits and dashes, starting with a letter."
  }
}

variable "lambda_zip" {
  description = "The deployment package: a zip holding the `cadre` binary built for Amazon Linux 2023 and a `bootstrap` script running `exec \"$LAMBDA_TASK_ROOT/cadre\" --log-format json lambda`. The steps also need git and the repositories' toolchains (a layer, or a container image instead)."
  type        = string
}

variable "architecture" {
  description = "The functions' CPU architecture, matching the binary: x86_64 or arm64."
  type        = string
  default     = "x86_64"
}

variable "model" {
  description = "The model, as `cadre --model` takes it (gemini[:MODEL_ID], openai:MODEL@URL)."
  type        = string
  default     = "gemini"
}

variable "task_budget_usd" {
  description = "Most a task may spend on model calls."
  type        = number
  default     = 2
}

variable "max_receive_count" {
  description = "Receives after which SQS moves a message to its step's dead-letter queue. Above the engine's max_attempts (5), so that the engine dead-letters failures with their reason and the redrive policy only ends crash loops."
  type        = number
  default     = 6
}

variable "batch_size" {
  description = "SQS records per invocation of a step's function."
  type        = number
  default     = 5
}

variable "environment" {
  description = "More environment for every function: the model key (better injected from a secret store). CADRE_STATE, CADRE_SQS_QUEUE_URL and CADRE_SQS_ROUTES are set by the module."
  type        = map(string)
  default     = {}
  sensitive   = true
}

variable "log_retention_days" {
  description = "How long the functions' CloudWatch logs are kept."
  type        = number
  default     = 30
}
