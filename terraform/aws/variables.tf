variable "region" {
  description = "The AWS region every team's deployment lives in."
  type        = string
  default     = "eu-west-1"
}

variable "teams" {
  description = "One entry per team: its deployment package and settings (see teams.tfvars.example)."
  type = map(object({
    lambda_zip        = string
    architecture      = optional(string, "x86_64")
    model             = optional(string, "gemini")
    task_budget_usd   = optional(number, 2)
    max_receive_count = optional(number, 6)
    batch_size        = optional(number, 5)
  }))
}

variable "team_environment" {
  description = "Per team, more environment for its functions (the model key)."
  type        = map(map(string))
  default     = {}
  sensitive   = true
}
