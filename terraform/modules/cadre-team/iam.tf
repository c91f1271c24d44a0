# Least privilege: each step's account gets only what its step does. No primitive role (owner,
# editor, viewer) is granted anywhere; terraform tests in infra/gcp check that.

# Read and write documents, and only in the team's database.
resource "google_project_iam_member" "firestore" {
  for_each = local.steps
  project  = var.project
  role     = "roles/datastore.user"
  member   = "serviceAccount:${google_service_account.step[each.key].email}"

  condition {
    title      = "only-team-database"
    expression = "resource.name == \"projects/${var.project}/databases/${google_firestore_database.state.name}\""
  }
}

# Publish to the topics of the steps that come next, and nowhere else.
resource "google_pubsub_topic_iam_member" "publish_next" {
  for_each = local.publish_pairs
  project  = var.project
  topic    = google_pubsub_topic.step[each.value.target].name
  role     = "roles/pubsub.publisher"
  member   = "serviceAccount:${google_service_account.step[each.value.step].email}"
}

# Every step may dead-letter a message it cannot process.
resource "google_pubsub_topic_iam_member" "publish_dead" {
  for_each = local.steps
  project  = var.project
  topic    = google_pubsub_topic.dead.name
  role     = "roles/pubsub.publisher"
  member   = "serviceAccount:${google_service_account.step[each.key].email}"
}

# Large artifacts, in the team's bucket only.
resource "google_storage_bucket_iam_member" "artifacts" {
  for_each = local.steps
  bucket   = google_storage_bucket.artifacts.name
  role     = "roles/storage.objectUser"
  member   = "serviceAccount:${google_service_account.step[each.key].email}"
}

# The model key, for the steps that call the model.
resource "google_secret_manager_secret_iam_member" "model_key" {
  for_each  = local.model_steps
  project   = var.project
  secret_id = google_secret_manager_secret.model_key.secret_id
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${google_service_account.step[each.key].email}"
}

# Vertex AI (models, embeddings, Vector Search) for the steps that index or retrieve.
resource "google_project_iam_member" "vertex" {
  for_each = toset(concat(["index"], tolist(local.model_steps)))
  project  = var.project
  role     = "roles/aiplatform.user"
  member   = "serviceAccount:${google_service_account.step[each.key].email}"
}
