//! Gemini API embeddings: `POST /v1beta/models/{model}:batchEmbedContents` with the key in
//! `x-goog-api-key`.
//!
//! Request: `{"requests": [{"model": "models/{model}", "content": {"parts": [{"text": …}]},
//! "taskType": "RETRIEVAL_DOCUMENT" | "RETRIEVAL_QUERY", "outputDimensionality": n}]}`, at most 100
//! texts. Reply: `{"embeddings": [{"values": [f32, …]}]}` in request order; a `usageMetadata.
//! promptTokenCount`, when present, is the request's input tokens.

use std::time::Duration;

use async_trait::async_trait;
use cadre_domain::ports::knowledge::EmbedPurpose;
use cadre_domain::ports::model::ModelError;
use reqwest::header::HeaderMap;
use serde::{Deserialize, Serialize};

use super::{EmbeddingBatch, EmbeddingProvider};
use crate::api_key::ApiKey;
use crate::gemini::DEFAULT_GEMINI_BASE_URL;
use crate::http::{self, JsonClient, DEFAULT_TIMEOUT};

/// The embedding model used when the configuration names none.
pub const DEFAULT_GEMINI_EMBEDDING_MODEL: &str = "gemini-embedding-001";

/// The most texts `batchEmbedContents` takes in one request.
const MAX_GEMINI_BATCH: usize = 100;

/// Where and how to reach the Gemini API's embeddings.
#[derive(Debug, Clone)]
pub struct GeminiEmbeddingsConfig {
    /// Scheme and host, without a path.
    pub base_url: String,
    /// The model id, e.g. `gemini-embedding-001`.
    pub model: String,
    /// Sent in the `x-goog-api-key` header.
    pub api_key: ApiKey,
    /// The vector length, sent as `outputDimensionality` (gemini-embedding-001: 128 to 3072).
    pub dimensions: usize,
    /// One request's timeout.
    pub timeout: Duration,
    /// Texts per request, 1 to 100.
    pub max_batch: usize,
    /// The task type of documents (chunks to be found).
    pub document_task: String,
    /// The task type of queries (`CODE_RETRIEVAL_QUERY` suits code search with some models).
    pub query_task: String,
}

impl GeminiEmbeddingsConfig {
    /// The public endpoint, [`DEFAULT_GEMINI_EMBEDDING_MODEL`], batches of 100 and the retrieval task types.
    #[must_use]
    pub fn new(api_key: ApiKey, dimensions: usize) -> GeminiEmbeddingsConfig {
        GeminiEmbeddingsConfig {
            base_url: DEFAULT_GEMINI_BASE_URL.to_owned(),
            model: DEFAULT_GEMINI_EMBEDDING_MODEL.to_owned(),
            api_key,
            dimensions,
            timeout: DEFAULT_TIMEOUT,
            max_batch: MAX_GEMINI_BATCH,
            document_task: "RETRIEVAL_DOCUMENT".to_owned(),
            query_task: "RETRIEVAL_QUERY".to_owned(),
        }
    }
}

/// Gemini API embeddings, one `batchEmbedContents` request per call.
#[derive(Debug)]
pub struct GeminiEmbeddings {
    http: JsonClient,
    model: String,
    resource: String,
    url: String,
    dimensions: usize,
    max_batch: usize,
    document_task: String,
    query_task: String,
}

impl GeminiEmbeddings {
    /// Builds the HTTP client once.
    ///
    /// # Errors
    /// [`ModelError::NotConfigured`] when the model id is empty, the batch size is not 1 to 100, or the
    /// HTTP client cannot be built.
    pub fn new(config: GeminiEmbeddingsConfig) -> Result<GeminiEmbeddings, ModelError> {
        let model = config.model.trim();
        let model = model.strip_prefix("models/").unwrap_or(model).to_owned();
        if model.is_empty() || model.contains(char::is_whitespace) {
            return Err(ModelError::NotConfigured {
                hint: format!(
                    "gemini embedding model id {:?} is not valid; name a model such as \
                     {DEFAULT_GEMINI_EMBEDDING_MODEL}",
                    config.model
                ),
            });
        }
        if !(1..=MAX_GEMINI_BATCH).contains(&config.max_batch) {
            return Err(ModelError::NotConfigured {
                hint: format!(
                    "gemini embedding batch size {} is not valid; batchEmbedContents takes 1 to \
                     {MAX_GEMINI_BATCH} texts",
                    config.max_batch
                ),
            });
        }
        let mut headers = HeaderMap::new();
        headers.insert("x-goog-api-key", config.api_key.header_value("")?);
        let base = config.base_url.trim_end_matches('/');
        Ok(GeminiEmbeddings {
            http: JsonClient::new(config.timeout, headers)?,
            url: format!("{base}/v1beta/models/{model}:batchEmbedContents"),
            resource: format!("models/{model}"),
            model,
            dimensions: config.dimensions,
            max_batch: config.max_batch,
            document_task: config.document_task,
            query_task: config.query_task,
        })
    }
}

#[derive(Serialize)]
struct BatchRequest<'a> {
    requests: Vec<EmbedRequest<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct EmbedRequest<'a> {
    model: &'a str,
    content: Content<'a>,
    task_type: &'a str,
    output_dimensionality: usize,
}

#[derive(Serialize)]
struct Content<'a> {
    parts: [Part<'a>; 1],
}

#[derive(Serialize)]
struct Part<'a> {
    text: &'a str,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BatchReply {
    embeddings: Option<Vec<Embedding>>,
    usage_metadata: Option<Usage>,
}

#[derive(Deserialize)]
struct Embedding {
    #[serde(default)]
    values: Vec<f32>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Usage {
    prompt_token_count: Option<u64>,
}

#[async_trait]
impl EmbeddingProvider for GeminiEmbeddings {
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
        format!("gemini-embed:{}", self.model)
    }

    async fn embed_batch(
        &self,
        texts: &[String],
        purpose: EmbedPurpose,
    ) -> Result<EmbeddingBatch, ModelError> {
        let task_type = match purpose {
            EmbedPurpose::Document => &self.document_task,
            EmbedPurpose::Query => &self.query_task,
        };
        let body = BatchRequest {
            requests: texts
                .iter()
                .map(|text| EmbedRequest {
                    model: &self.resource,
                    content: Content { parts: [Part { text }] },
                    task_type,
                    output_dimensionality: self.dimensions,
                })
                .collect(),
        };
        let reply: BatchReply = http::parse_reply(&self.http.post(&self.url, &body).await?)?;
        let Some(embeddings) = reply.embeddings else {
            return Err(ModelError::MalformedReply {
                reason: "the batchEmbedContents reply has no `embeddings`".to_owned(),
            });
        };
        Ok(EmbeddingBatch {
            vectors: embeddings.into_iter().map(|e| e.values).collect(),
            input_tokens: reply.usage_metadata.and_then(|u| u.prompt_token_count),
        })
    }
}
