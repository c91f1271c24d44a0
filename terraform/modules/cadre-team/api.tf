# The task API (`cadre serve-api`): editors (`cadre lsp --remote URL`) and the CLI create and follow
# tasks through it. It writes tasks to the team's Firestore database and publishes their next step
# to the step topics, as its own service account; it runs no step.
#
# Callers authenticate with the API's own bearer tokens (one per team), so the service admits
# unauthenticated invocations at the Cloud Run level (`api_public`): Cloud Run's IAM check would take
# the Authorization header for a Google identity token.
#
# Repositories are paths the service can read, and a Cloud Run instance has none of the team's
# checkouts: until cloning in the cloud exists (a later issue), a git URL is refused with a clear
# error and tasks come from a deployment whose API can read the checkouts (terraform/README.md).

resource "google_service_account" "api" {
  project      = var.project
  account_id   = "cadre-${var.team}-api"
  display_name = "Cadre ${var.team}: the task API"
}

# The token digests (`team:sha256hex` lines), added out of band so no digest sits in the state:
#   printf 'TEAM:%s\n' "$(printf %s "$TOKEN" | sha256sum | cut -d' ' -f1)" |
#     gcloud secrets versions add cadre-TEAM-api-tokens --data-file=-
resource "google_secret_manager_secret" "api_tokens" {
  project   = var.project
  secret_id = "cadre-${var.team}-api-tokens"
  labels    = local.labels

  replication {
    auto {}
  }
}

resource "google_cloud_run_v2_service" "api" {
  project             = var.project
  name                = "cadre-${var.team}-api"
  location            = var.region
  ingress             = "INGRESS_TRAFFIC_ALL"
  deletion_protection = false
  labels              = local.labels

  template {
    service_account = google_service_account.api.email
    # Long enough for an events long-poll (at most 30 s) and its answer.
    timeout                          = "60s"
    max_instance_request_concurrency = 80

    scaling {
      min_instance_count = 0
      max_instance_count = var.max_instances
    }

    containers {
      image = var.image
      args  = ["serve-api", "--log-format", "json"]

      resources {
        limits = {
          cpu    = "1"
          memory = "512Mi"
        }
      }

      env {
        name  = "CADRE_API_BACKEND"
        value = "gcp"
      }
      env {
        name  = "GOOGLE_CLOUD_PROJECT"
        value = var.project
      }
      env {
        name  = "CADRE_FIRESTORE_DATABASE"
        value = google_firestore_database.state.name
      }
      env {
        name  = "CADRE_TOPIC_PREFIX"
        value = local.prefix
      }
      env {
        name  = "CADRE_GCS_BUCKET"
        value = google_storage_bucket.artifacts.name
      }
      env {
        name  = "CADRE_TASK_BUDGET_USD"
        value = tostring(var.task_budget_usd)
      }
      dynamic "env" {
        for_each = var.team_daily_budget_usd == null ? [] : [var.team_daily_budget_usd]
        content {
          name  = "CADRE_TEAM_DAILY_BUDGET_USD"
          value = tostring(env.value)
        }
      }
      env {
        name = "CADRE_API_TOKENS"
        value_source {
          secret_key_ref {
            secret  = google_secret_manager_secret.api_tokens.secret_id
            version = "latest"
          }
        }
      }

      startup_probe {
        http_get {
          path = "/healthz"
        }
      }
    }
  }
}

resource "google_cloud_run_v2_service_iam_member" "api_public" {
  count    = var.api_public ? 1 : 0
  project  = var.project
  location = var.region
  name     = google_cloud_run_v2_service.api.name
  role     = "roles/run.invoker"
  member   = "allUsers"
}

# Least privilege for the API's account: the team's database, the step topics (a new task's first
# step, a resumed task's next one), reading large artifacts, and its token digests.
resource "google_project_iam_member" "api_firestore" {
  project = var.project
  role    = "roles/datastore.user"
  member  = "serviceAccount:${google_service_account.api.email}"

  condition {
    title      = "only-team-database"
    expression = "resource.name == \"projects/${var.project}/databases/${google_firestore_database.state.name}\""
  }
}

resource "google_pubsub_topic_iam_member" "api_publish" {
  for_each = local.steps
  project  = var.project
  topic    = google_pubsub_topic.step[each.key].name
  role     = "roles/pubsub.publisher"
  member   = "serviceAccount:${google_service_account.api.email}"
}

resource "google_storage_bucket_iam_member" "api_artifacts" {
  bucket = google_storage_bucket.artifacts.name
  role   = "roles/storage.objectViewer"
  member = "serviceAccount:${google_service_account.api.email}"
}

resource "google_secret_manager_secret_iam_member" "api_tokens" {
  project   = var.project
  secret_id = google_secret_manager_secret.api_tokens.secret_id
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${google_service_account.api.email}"
}
