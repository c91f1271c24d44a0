# One team's Cadre deployment: a Cloud Run service per step, chained by Pub/Sub push subscriptions,
# with its state in a Firestore database of its own. See terraform/README.md.

locals {
  prefix = "cadre-${var.team}-"
  labels = { app = "cadre", team = var.team }

  # The pipeline's steps (functions/domain/src/envelope.rs, StepKind); one service, topic,
  # push subscription and service account each.
  steps = toset(["index", "plan", "generate", "test", "review"])

  # The topics each step publishes its next messages to (functions/steps): the only topics its
  # service account may publish to, besides the dead-letter topic.
  publishes = {
    index    = ["plan"]
    plan     = ["generate"]
    generate = ["generate", "test"]
    test     = ["generate", "review"]
    review   = []
  }
  publish_pairs = {
    for pair in flatten([
      for step, targets in local.publishes : [for target in targets : { step = step, target = target }]
    ]) : "${pair.step}-${pair.target}" => pair
  }

  # The steps that call the model, and so read its key and call Vertex AI.
  model_steps = toset(["plan", "generate"])

  # The OIDC audience each step's push subscription signs for and its service checks.
  audience = { for step in local.steps : step => "cadre-${var.team}-${step}" }
}

data "google_project" "this" {
  project_id = var.project
}

resource "google_artifact_registry_repository" "images" {
  project       = var.project
  location      = var.region
  repository_id = "cadre-${var.team}"
  format        = "DOCKER"
  description   = "Cadre images for team ${var.team}"
  labels        = local.labels
}

# Large artifacts (diffs, logs, transcripts) that do not fit in a Firestore document.
resource "google_storage_bucket" "artifacts" {
  project                     = var.project
  name                        = "${var.project}-cadre-${var.team}"
  location                    = var.region
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  labels                      = local.labels
}

# The model's API key; its value is added out of band, so it never sits in the Terraform state:
#   printf %s "$KEY" | gcloud secrets versions add cadre-TEAM-gemini-api-key --data-file=-
resource "google_secret_manager_secret" "model_key" {
  project   = var.project
  secret_id = "cadre-${var.team}-gemini-api-key"
  labels    = local.labels

  replication {
    auto {}
  }
}
