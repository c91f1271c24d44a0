# Every team's Cadre deployment in one project, one module instance per entry of var.teams.
#   terraform init -backend-config="bucket=PROJECT-tfstate"
#   terraform apply -var-file=teams.tfvars

provider "google" {
  project = var.project
  region  = var.region
}

locals {
  apis = toset([
    "aiplatform.googleapis.com",
    "artifactregistry.googleapis.com",
    "firestore.googleapis.com",
    "iam.googleapis.com",
    "pubsub.googleapis.com",
    "run.googleapis.com",
    "secretmanager.googleapis.com",
    "storage.googleapis.com",
  ])
}

resource "google_project_service" "apis" {
  for_each           = local.apis
  project            = var.project
  service            = each.key
  disable_on_destroy = false
}

module "team" {
  source   = "../modules/cadre-team"
  for_each = var.teams

  project               = var.project
  region                = coalesce(each.value.region, var.region)
  team                  = each.key
  image                 = each.value.image
  model                 = each.value.model
  task_budget_usd       = each.value.task_budget_usd
  max_instances         = each.value.max_instances
  max_delivery_attempts = each.value.max_delivery_attempts

  depends_on = [google_project_service.apis]
}
