# One Cloud Run service per step, each running `cadre serve-push` as its own service account.

resource "google_service_account" "step" {
  for_each     = local.steps
  project      = var.project
  account_id   = "cadre-${var.team}-${each.key}"
  display_name = "Cadre ${var.team}: the ${each.key} step"
}

resource "google_cloud_run_v2_service" "step" {
  for_each            = local.steps
  project             = var.project
  name                = "cadre-${var.team}-${each.key}"
  location            = var.region
  ingress             = "INGRESS_TRAFFIC_ALL"
  deletion_protection = false
  labels              = local.labels

  template {
    service_account                  = google_service_account.step[each.key].email
    timeout                          = "${var.ack_deadline_seconds}s"
    max_instance_request_concurrency = 4

    scaling {
      min_instance_count = 0
      max_instance_count = var.max_instances
    }

    containers {
      image = var.image
      args  = ["serve-push", "--log-format", "json"]

      resources {
        limits = {
          cpu    = "2"
          memory = "2Gi"
        }
      }

      env {
        name  = "CADRE_STEP"
        value = each.key
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
        name  = "CADRE_PUSH_AUDIENCE"
        value = local.audience[each.key]
      }
      env {
        name  = "CADRE_PUSH_SERVICE_ACCOUNT"
        value = google_service_account.push.email
      }
      env {
        # Cloud Run's own sandbox isolates the instance; containers cannot nest in it.
        name  = "CADRE_SANDBOX"
        value = "host"
      }
      env {
        name  = "CADRE_MODEL"
        value = var.model
      }
      env {
        name  = "CADRE_TASK_BUDGET_USD"
        value = tostring(var.task_budget_usd)
      }

      dynamic "env" {
        for_each = contains(tolist(local.model_steps), each.key) ? [1] : []
        content {
          name = "GEMINI_API_KEY"
          value_source {
            secret_key_ref {
              secret  = google_secret_manager_secret.model_key.secret_id
              version = "latest"
            }
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

resource "google_cloud_run_v2_service_iam_member" "push_invoker" {
  for_each = local.steps
  project  = var.project
  location = var.region
  name     = google_cloud_run_v2_service.step[each.key].name
  role     = "roles/run.invoker"
  member   = "serviceAccount:${google_service_account.push.email}"
}
