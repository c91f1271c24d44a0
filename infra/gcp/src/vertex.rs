//! Vertex AI Vector Search through its REST API: streaming upserts and removals of datapoints on an
//! index (`…/indexes/{id}:upsertDatapoints`, `:removeDatapoints`) and nearest-neighbour queries on
//! the endpoint the index is deployed to (`…/indexEndpoints/{id}:findNeighbors`), with restricts so a
//! query sees only one repository's and one team's vectors.
//!
//! `VertexVectorStore` (`vector_store.rs`) puts it behind the domain's `VectorStore` port, which the
//! knowledge base uses (`EmbeddedKnowledge::with_vector_store`).

use reqwest::Method;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::auth::GoogleAuth;
use crate::rest::{Api, ApiError};

/// The restrict namespace holding a datapoint's repository.
pub const REPO_NAMESPACE: &str = "repo";
/// The restrict namespace holding a datapoint's team.
pub const TEAM_NAMESPACE: &str = "team";

/// Which index and endpoint, and how to reach them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VertexConfig {
    /// `https://{region}-aiplatform.googleapis.com`, where indexes are changed.
    pub base_url: String,
    /// Where the deployed index answers queries: the endpoint's public domain
    /// (`https://….vdb.vertexai.goog`), or `base_url` for a private endpoint.
    pub query_url: String,
    /// The project.
    pub project: String,
    /// The region.
    pub region: String,
    /// The index's numeric id.
    pub index: String,
    /// The index endpoint's numeric id.
    pub endpoint: String,
    /// The deployed index's id on that endpoint.
    pub deployed_index: String,
    /// Credentials.
    pub auth: GoogleAuth,
}

/// A token filter: a datapoint matches a query restrict when it has a restrict of the same namespace
/// sharing a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restrict {
    /// The namespace, e.g. [`REPO_NAMESPACE`].
    pub namespace: String,
    /// The allowed values.
    pub allow: Vec<String>,
}

impl Restrict {
    /// Only this repository.
    #[must_use]
    pub fn repo(repo: &str) -> Restrict {
        Restrict { namespace: REPO_NAMESPACE.to_owned(), allow: vec![repo.to_owned()] }
    }

    /// Only this team.
    #[must_use]
    pub fn team(team: &str) -> Restrict {
        Restrict { namespace: TEAM_NAMESPACE.to_owned(), allow: vec![team.to_owned()] }
    }

    fn to_json(&self) -> Value {
        json!({ "namespace": self.namespace, "allowList": self.allow })
    }
}

/// One vector with its id and restricts.
#[derive(Debug, Clone, PartialEq)]
pub struct Datapoint {
    /// The id (e.g. a chunk's blob id and range).
    pub id: String,
    /// The embedding.
    pub vector: Vec<f32>,
    /// Its repository and team, at least.
    pub restricts: Vec<Restrict>,
}

/// A query's answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Neighbor {
    /// The datapoint's id.
    pub id: String,
    /// Its distance to the query, as the index measures it.
    pub distance: f64,
}

/// Why a Vector Search call failed.
#[derive(Debug, thiserror::Error)]
pub enum VectorError {
    /// The index or endpoint is unreachable, overloaded, or refused the call for now.
    #[error("vertex ai vector search unavailable: {0}")]
    Unavailable(String),
    /// The call was refused for good (no such index, a vector of the wrong dimension, …).
    #[error("vertex ai vector search refused the call: {0}")]
    Refused(String),
    /// The answer is not the documented format.
    #[error("vertex ai vector search answered unexpectedly: {0}")]
    Malformed(String),
}

impl VectorError {
    /// Whether the same call may succeed later.
    #[must_use]
    pub fn is_retryable(&self) -> bool {
        matches!(self, VectorError::Unavailable(_))
    }
}

/// A Vector Search index and the endpoint it is deployed to.
#[derive(Debug, Clone)]
pub struct VertexVectorIndex {
    admin: Api,
    query: Api,
    config: VertexConfig,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct FindAnswer {
    #[serde(default)]
    nearest_neighbors: Vec<Nearest>,
}

#[derive(Deserialize)]
struct Nearest {
    #[serde(default)]
    neighbors: Vec<FoundNeighbor>,
}

#[derive(Deserialize)]
struct FoundNeighbor {
    datapoint: FoundDatapoint,
    #[serde(default)]
    distance: f64,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct FoundDatapoint {
    datapoint_id: String,
}

impl VertexVectorIndex {
    /// A client for the index and endpoint `config` names.
    ///
    /// # Errors
    /// [`VectorError::Unavailable`] when the HTTP client cannot be built.
    pub fn new(config: VertexConfig) -> Result<VertexVectorIndex, VectorError> {
        let admin = Api::new(&config.base_url, &config.auth).map_err(vector_error)?;
        let query = Api::new(&config.query_url, &config.auth).map_err(vector_error)?;
        Ok(VertexVectorIndex { admin, query, config })
    }

    fn index_path(&self) -> String {
        let VertexConfig { project, region, index, .. } = &self.config;
        format!("v1/projects/{project}/locations/{region}/indexes/{index}")
    }

    /// Adds or replaces datapoints; they are searchable within seconds (streaming update).
    ///
    /// # Errors
    /// [`VectorError`] as the API answers.
    pub async fn upsert(&self, points: &[Datapoint]) -> Result<(), VectorError> {
        if points.is_empty() {
            return Ok(());
        }
        let datapoints: Vec<Value> = points
            .iter()
            .map(|p| {
                json!({
                    "datapointId": p.id,
                    "featureVector": p.vector,
                    "restricts": p.restricts.iter().map(Restrict::to_json).collect::<Vec<_>>(),
                })
            })
            .collect();
        let path = format!("{}:upsertDatapoints", self.index_path());
        self.admin
            .json(Method::POST, &path, Some(&json!({ "datapoints": datapoints })))
            .await
            .map_err(vector_error)?;
        tracing::debug!(count = points.len(), "upserted vector datapoints");
        Ok(())
    }

    /// Removes datapoints by id; unknown ids are ignored.
    ///
    /// # Errors
    /// [`VectorError`] as the API answers.
    pub async fn remove(&self, ids: &[String]) -> Result<(), VectorError> {
        if ids.is_empty() {
            return Ok(());
        }
        let path = format!("{}:removeDatapoints", self.index_path());
        self.admin
            .json(Method::POST, &path, Some(&json!({ "datapointIds": ids })))
            .await
            .map_err(vector_error)?;
        Ok(())
    }

    /// The `k` datapoints nearest to `vector` among those matching every restrict, nearest first.
    ///
    /// # Errors
    /// [`VectorError`] as the API answers.
    pub async fn find_neighbors(
        &self,
        vector: &[f32],
        k: usize,
        restricts: &[Restrict],
    ) -> Result<Vec<Neighbor>, VectorError> {
        let VertexConfig { project, region, endpoint, deployed_index, .. } = &self.config;
        let path = format!(
            "v1/projects/{project}/locations/{region}/indexEndpoints/{endpoint}:findNeighbors"
        );
        let body = json!({
            "deployedIndexId": deployed_index,
            "queries": [{
                "datapoint": {
                    "datapointId": "query",
                    "featureVector": vector,
                    "restricts": restricts.iter().map(Restrict::to_json).collect::<Vec<_>>(),
                },
                "neighborCount": k,
            }],
            "returnFullDatapoint": false,
        });
        let answer =
            self.query.json(Method::POST, &path, Some(&body)).await.map_err(vector_error)?;
        let found: FindAnswer =
            serde_json::from_value(answer).map_err(|e| VectorError::Malformed(e.to_string()))?;
        let mut neighbors: Vec<Neighbor> = found
            .nearest_neighbors
            .into_iter()
            .flat_map(|n| n.neighbors)
            .map(|n| Neighbor { id: n.datapoint.datapoint_id, distance: n.distance })
            .collect();
        neighbors.truncate(k);
        Ok(neighbors)
    }
}

fn vector_error(error: ApiError) -> VectorError {
    if let ApiError::Body { .. } = error {
        return VectorError::Malformed(error.to_string());
    }
    match error.code() {
        Some(429 | 500..=599) | None => VectorError::Unavailable(error.to_string()),
        Some(_) => VectorError::Refused(error.to_string()),
    }
}
