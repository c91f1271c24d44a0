output "services" {
  description = "Each step's Cloud Run URL."
  value       = { for step, service in google_cloud_run_v2_service.step : step => service.uri }
}

output "topics" {
  description = "Each step's topic."
  value       = { for step, topic in google_pubsub_topic.step : step => topic.id }
}

output "dead_letter_topic" {
  description = "Where messages that cannot be processed go, with their reason."
  value       = google_pubsub_topic.dead.id
}

output "firestore_database" {
  description = "The team's Firestore database."
  value       = google_firestore_database.state.name
}

output "bucket" {
  description = "The bucket for large artifacts."
  value       = google_storage_bucket.artifacts.name
}

output "image_repository" {
  description = "Where the team's images are pushed."
  value       = "${var.region}-docker.pkg.dev/${var.project}/${google_artifact_registry_repository.images.repository_id}"
}

output "vector_index_endpoint" {
  description = "The Vector Search endpoint serving the team's code index."
  value       = google_vertex_ai_index_endpoint.code.id
}

output "api_url" {
  description = "The task API's URL, for `cadre lsp --remote` and the editor's `remote` setting."
  value       = google_cloud_run_v2_service.api.uri
}
