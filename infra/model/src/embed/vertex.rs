//! Vertex AI embeddings: `POST {endpoint}/v1/projects/{project}/locations/{location}/publishers/google/
//! models/{model}:predict` with an OAuth bearer token.
//!
//! Request: `{"instances": [{"content": …, "task_type": "RETRIEVAL_DOCUMENT" | "RETRIEVAL_QUERY"}],
//! "parameters": {"outputDimensionality": n}}`. Reply: `{"predictions": [{"embeddings": {"values":
//! [f32, …], "statistics": {"token_count": n, "truncated": bool}}}]}`; the token counts, summed, are the
//! request's input tokens.
//!
//! The token comes from an [`AccessTokenSource`] asked before every request, so whoever owns Google
//! credentials (Application Default Credentials, the Cloud Run metadata server) plugs in there and
//! refreshes as it sees fit; this module never reads credentials itself.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use cadre_domain::ports::knowledge::EmbedPurpose;
use cadre_domain::ports::model::ModelError;
use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION};
use serde::{Deserialize, Serialize};

use super::{EmbeddingBatch, EmbeddingProvider};
use crate::http::{self, JsonClient, DEFAULT_TIMEOUT};

/// Gives OAuth 2 access tokens for Vertex AI (scope `cloud-platform`).
///
/// Any `Fn() -> impl Future<Output = Result<String, ModelError>>` closure is one, e.g. a wrapper around
/// the Vertex authentication of the Gemini provider.
#[async_trait]
pub trait AccessTokenSource: Send + Sync {
    /// A token valid for at least the next request, without the `Bearer ` prefix.
    ///
    /// # Errors
    /// [`ModelError::NotConfigured`] when there are no credentials, [`ModelError::Unreachable`] when the
    /// token endpoint cannot be reached; these reach the caller as the embedding call's error.
    async fn access_token(&self) -> Result<String, ModelError>;
}

#[async_trait]
impl<F, Fut> AccessTokenSource for F
where
    F: Fn() -> Fut + Send + Sync,
    Fut: Future<Output = Result<String, ModelError>> + Send,
{
    async fn access_token(&self) -> Result<String, ModelError> {
        self().await
    }
}

/// Where and how to reach Vertex AI's embeddings.
#[derive(Clone)]
pub struct VertexEmbeddingsConfig {
    /// The Google Cloud project id.
    pub project: String,
    /// The region, e.g. `us-central1`, or `global`.
    pub location: String,
    /// The model id, e.g. `gemini-embedding-001` or `text-embedding-005`.
    pub model: String,
    /// The vector length, sent as `outputDimensionality`.
    pub dimensions: usize,
    /// Scheme and host; derived from `location` when absent (`https://{location}-aiplatform.googleapis.com`).
    pub base_url: Option<String>,
    /// One request's timeout.
    pub timeout: Duration,
    /// Texts per request: `gemini-embedding-*` takes one instance per request on Vertex AI, the
    /// `text-embedding-*` models up to 250.
    pub max_batch: usize,
    /// Where bearer tokens come from.
    pub tokens: Arc<dyn AccessTokenSource>,
}

impl fmt::Debug for VertexEmbeddingsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VertexEmbeddingsConfig")
            .field("project", &self.project)
            .field("location", &self.location)
            .field("model", &self.model)
            .field("dimensions", &self.dimensions)
            .field("base_url", &self.base_url)
            .field("max_batch", &self.max_batch)
            .finish_non_exhaustive()
    }
}

impl VertexEmbeddingsConfig {
    /// The default endpoint of `location` and timeout; the batch size the model allows (1 for
    /// `gemini-embedding-*`, else 250).
    #[must_use]
    pub fn new(
        project: impl Into<String>,
        location: impl Into<String>,
        model: impl Into<String>,
        dimensions: usize,
        tokens: Arc<dyn AccessTokenSource>,
    ) -> VertexEmbeddingsConfig {
        let model = model.into();
        let max_batch = if model.starts_with("gemini-embedding") { 1 } else { 250 };
        VertexEmbeddingsConfig {
            project: project.into(),
            location: location.into(),
            model,
            dimensions,
            base_url: None,
            timeout: DEFAULT_TIMEOUT,
            max_batch,
            tokens,
        }
    }
}

/// Vertex AI embeddings, one `:predict` request per call.
pub struct VertexEmbeddings {
    http: JsonClient,
    model: String,
    url: String,
    dimensions: usize,
    max_batch: usize,
    tokens: Arc<dyn AccessTokenSource>,
}

impl fmt::Debug for VertexEmbeddings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VertexEmbeddings").field("url", &self.url).finish_non_exhaustive()
    }
}

impl VertexEmbeddings {
    /// Builds the HTTP client once.
    ///
    /// # Errors
    /// [`ModelError::NotConfigured`] when the project, location or model is empty or holds spaces, or the
    /// HTTP client cannot be built.
    pub fn new(config: VertexEmbeddingsConfig) -> Result<VertexEmbeddings, ModelError> {
        for (what, value) in
            [("project", &config.project), ("location", &config.location), ("model", &config.model)]
        {
            if value.trim().is_empty() || value.trim().contains(char::is_whitespace) {
                return Err(ModelError::NotConfigured {
                    hint: format!(
                        "vertex embedding {what} {value:?} is not valid; set the Google Cloud \
                         project, region (e.g. us-central1) and model (e.g. gemini-embedding-001)"
                    ),
                });
            }
        }
        let (project, location, model) =
            (config.project.trim(), config.location.trim(), config.model.trim());
        let base = match &config.base_url {
            Some(url) => url.trim_end_matches('/').to_owned(),
            None if location == "global" => "https://aiplatform.googleapis.com".to_owned(),
            None => format!("https://{location}-aiplatform.googleapis.com"),
        };
        Ok(VertexEmbeddings {
            http: JsonClient::new(config.timeout, HeaderMap::new())?,
            url: format!(
                "{base}/v1/projects/{project}/locations/{location}/publishers/google/models/{model}:predict"
            ),
            model: model.to_owned(),
            dimensions: config.dimensions,
            max_batch: config.max_batch,
            tokens: config.tokens,
        })
    }

    async fn post(&self, body: &PredictRequest<'_>) -> Result<Vec<u8>, ModelError> {
        let token = self.tokens.access_token().await?;
        let mut bearer =
            HeaderValue::from_str(&format!("Bearer {}", token.trim())).map_err(|_| {
                ModelError::NotConfigured {
                    hint: "the vertex access token cannot be sent as an HTTP header; \
                       check the access token source"
                        .to_owned(),
                }
            })?;
        bearer.set_sensitive(true);
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, bearer);
        self.http.post_with(&self.url, body, &headers).await
    }
}

#[derive(Serialize)]
struct PredictRequest<'a> {
    instances: Vec<Instance<'a>>,
    parameters: Parameters,
}

#[derive(Serialize)]
struct Instance<'a> {
    content: &'a str,
    task_type: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Parameters {
    output_dimensionality: usize,
}

#[derive(Deserialize)]
struct PredictReply {
    predictions: Option<Vec<Prediction>>,
}

#[derive(Deserialize)]
struct Prediction {
    embeddings: Option<Embeddings>,
}

#[derive(Deserialize)]
struct Embeddings {
    #[serde(default)]
    values: Vec<f32>,
    statistics: Option<Statistics>,
}

#[derive(Deserialize)]
struct Statistics {
    token_count: Option<f64>,
}

#[async_trait]
impl EmbeddingProvider for VertexEmbeddings {
    fn model(&self) -> &str {
        &self.model
    }

    fn dimensions(&self) -> usize {
        self.dimensions
    }

    fn max_batch(&self) -> usize {
        self.max_batch
    }

    fn describe(&self) -> String {
        format!("vertex-embed:{}", self.model)
    }

    async fn embed_batch(
        &self,
        texts: &[String],
        purpose: EmbedPurpose,
    ) -> Result<EmbeddingBatch, ModelError> {
        let task_type = match purpose {
            EmbedPurpose::Document => "RETRIEVAL_DOCUMENT",
            EmbedPurpose::Query => "RETRIEVAL_QUERY",
        };
        let body = PredictRequest {
            instances: texts.iter().map(|content| Instance { content, task_type }).collect(),
            parameters: Parameters { output_dimensionality: self.dimensions },
        };
        let reply: PredictReply = http::parse_reply(&self.post(&body).await?)?;
        let predictions = reply.predictions.unwrap_or_default();
        let mut vectors = Vec::with_capacity(predictions.len());
        let mut tokens: Option<u64> = None;
        for (i, prediction) in predictions.into_iter().enumerate() {
            let Some(embeddings) = prediction.embeddings else {
                return Err(ModelError::MalformedReply {
                    reason: format!("prediction {i} of the vertex reply has no `embeddings`"),
                });
            };
            if let Some(count) = embeddings.statistics.and_then(|s| s.token_count) {
                // Vertex sends the count as a JSON number that may be written as a float.
                #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                let count =
                    if count.is_finite() && count >= 0.0 { count.round() as u64 } else { 0 };
                tokens = Some(tokens.unwrap_or(0).saturating_add(count));
            }
            vectors.push(embeddings.values);
        }
        Ok(EmbeddingBatch { vectors, input_tokens: tokens })
    }
}
