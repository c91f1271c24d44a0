# Tasks, event logs, artifacts, step commits, the usage ledger and the model cache
# (infra/gcp/src/firestore). The store commits each state change with preconditions on what it read
# (optimistic concurrency), so the database does not lock reads either.
resource "google_firestore_database" "state" {
  project                 = var.project
  name                    = "cadre-${var.team}"
  location_id             = var.firestore_location
  type                    = "FIRESTORE_NATIVE"
  concurrency_mode        = "OPTIMISTIC"
  delete_protection_state = "DELETE_PROTECTION_ENABLED"
}

# Every query Cadre makes filters or orders on one field, which Firestore's automatic single-field
# indexes serve, so no composite index is declared. The large JSON and byte fields are never queried:
# they are exempt from indexing, which keeps writes cheap and clear of the index-entry size limit.
locals {
  unindexed_fields = {
    task_json      = { collection = "tasks", field = "task" }
    event_json     = { collection = "events", field = "event" }
    artifact_bytes = { collection = "artifacts", field = "bytes" }
    commit_next    = { collection = "step_commits", field = "next" }
    cached_reply   = { collection = "model_cache", field = "reply" }
  }
}

resource "google_firestore_field" "unindexed" {
  for_each   = local.unindexed_fields
  project    = var.project
  database   = google_firestore_database.state.name
  collection = each.value.collection
  field      = each.value.field

  index_config {}
}
