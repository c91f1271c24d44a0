# One topic per step, pushed to that step's service; one dead-letter topic for the team
# (infra/gcp/src/pubsub). Messages carry the task id as their ordering key.

locals {
  pubsub_agent = "serviceAccount:service-${data.google_project.this.number}@gcp-sa-pubsub.iam.gserviceaccount.com"
}

resource "google_pubsub_topic" "step" {
  for_each                   = local.steps
  project                    = var.project
  name                       = "${local.prefix}${each.key}"
  message_retention_duration = "86400s"
  labels                     = local.labels
}

resource "google_pubsub_topic" "dead" {
  project = var.project
  name    = "${local.prefix}dead"
  labels  = local.labels
}

# Where `cadre` reads the dead letters (peeked, never consumed).
resource "google_pubsub_subscription" "dead_inspect" {
  project                    = var.project
  name                       = "${local.prefix}dead-inspect"
  topic                      = google_pubsub_topic.dead.id
  ack_deadline_seconds       = 60
  message_retention_duration = "604800s"
  labels                     = local.labels

  expiration_policy {
    ttl = ""
  }
}

# The identity Pub/Sub signs its push requests as; only it may invoke the step services.
resource "google_service_account" "push" {
  project      = var.project
  account_id   = "cadre-${var.team}-push"
  display_name = "Cadre ${var.team}: Pub/Sub push identity"
}

resource "google_service_account_iam_member" "push_token_creator" {
  service_account_id = google_service_account.push.name
  role               = "roles/iam.serviceAccountTokenCreator"
  member             = local.pubsub_agent
}

resource "google_pubsub_subscription" "step" {
  for_each                   = local.steps
  project                    = var.project
  name                       = "${local.prefix}${each.key}-push"
  topic                      = google_pubsub_topic.step[each.key].id
  ack_deadline_seconds       = var.ack_deadline_seconds
  enable_message_ordering    = true
  message_retention_duration = "604800s"
  labels                     = local.labels

  push_config {
    push_endpoint = "${google_cloud_run_v2_service.step[each.key].uri}/push"

    oidc_token {
      service_account_email = google_service_account.push.email
      audience              = local.audience[each.key]
    }
  }

  retry_policy {
    minimum_backoff = var.minimum_backoff
    maximum_backoff = var.maximum_backoff
  }

  dead_letter_policy {
    dead_letter_topic     = google_pubsub_topic.dead.id
    max_delivery_attempts = var.max_delivery_attempts
  }

  expiration_policy {
    ttl = ""
  }
}

# Pub/Sub forwards a message past its maximum deliveries itself: it publishes to the dead-letter
# topic and acknowledges on the step's subscription.
resource "google_pubsub_topic_iam_member" "dead_forwarder" {
  project = var.project
  topic   = google_pubsub_topic.dead.name
  role    = "roles/pubsub.publisher"
  member  = local.pubsub_agent
}

resource "google_pubsub_subscription_iam_member" "dead_forwarder" {
  for_each     = local.steps
  project      = var.project
  subscription = google_pubsub_subscription.step[each.key].name
  role         = "roles/pubsub.subscriber"
  member       = local.pubsub_agent
}
