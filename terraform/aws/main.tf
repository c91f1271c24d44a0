# Every team's Cadre deployment on AWS, one module instance per entry of var.teams.
#   terraform init -backend-config="bucket=ACCOUNT-tfstate" -backend-config="region=REGION"
#   terraform apply -var-file=teams.tfvars

provider "aws" {
  region = var.region
}

module "team" {
  source   = "./modules/cadre-team"
  for_each = var.teams

  team              = each.key
  lambda_zip        = each.value.lambda_zip
  architecture      = each.value.architecture
  model             = each.value.model
  task_budget_usd   = each.value.task_budget_usd
  max_receive_count = each.value.max_receive_count
  batch_size        = each.value.batch_size
  environment       = lookup(var.team_environment, each.key, {})
}
