# Vertex AI Vector Search for code embeddings: datapoints are upserted and removed one by one
# (STREAM_UPDATE), with restricts per repository and team, and queried with findNeighbors.

resource "google_vertex_ai_index" "code" {
  project             = var.project
  region              = var.region
  display_name        = "cadre-${var.team}-code"
  description         = "Code chunk embeddings of team ${var.team}'s repositories"
  index_update_method = "STREAM_UPDATE"
  labels              = local.labels

  metadata {
    config {
      dimensions                  = var.embedding_dimensions
      approximate_neighbors_count = 50
      distance_measure_type       = "DOT_PRODUCT_DISTANCE"
      shard_size                  = "SHARD_SIZE_SMALL"

      algorithm_config {
        tree_ah_config {
          leaf_node_embedding_count    = 1000
          leaf_nodes_to_search_percent = 10
        }
      }
    }
  }
}

resource "google_vertex_ai_index_endpoint" "code" {
  project                 = var.project
  region                  = var.region
  display_name            = "cadre-${var.team}-code"
  public_endpoint_enabled = true
  labels                  = local.labels
}

resource "google_vertex_ai_index_endpoint_deployed_index" "code" {
  index_endpoint    = google_vertex_ai_index_endpoint.code.id
  index             = google_vertex_ai_index.code.id
  deployed_index_id = "cadre_${replace(var.team, "-", "_")}_code"
  display_name      = "cadre-${var.team}-code"

  dedicated_resources {
    min_replica_count = 1
    max_replica_count = 1

    machine_spec {
      machine_type = "e2-standard-2"
    }
  }
}
