//! OpenAI-compatible embeddings (`POST {base_url}/embeddings`): OpenAI, Ollama, vLLM, llama.cpp's server.
//!
//! Request: `{"model": …, "input": [texts], "encoding_format": "float"}`, plus `"dimensions": n` only
//! when configured (local servers reject it for models without variable sizes). Reply: `{"data":
//! [{"embedding": [f32, …], "index": i}], "usage": {"prompt_tokens": n}}`, put back in `index` order.
//! Models without task types (nomic-embed-text, e5) take a prefix instead, e.g. `search_query: `.

use std::time::Duration;

use async_trait::async_trait;
use cadre_domain::ports::knowledge::EmbedPurpose;
use cadre_domain::ports::model::ModelError;
use reqwest::header::{HeaderMap, AUTHORIZATION};
use serde::{Deserialize, Serialize};

use super::{EmbeddingBatch, EmbeddingProvider};
use crate::api_key::ApiKey;
use crate::http::{self, JsonClient, DEFAULT_TIMEOUT};

/// Where and how to reach an OpenAI-compatible embeddings endpoint.
#[derive(Debug, Clone)]
pub struct OpenAiEmbeddingsConfig {
    /// The API root including its version, e.g. `http://localhost:11434/v1` for Ollama.
    pub base_url: String,
    /// The model name the server knows, e.g. `nomic-embed-text`.
    pub model: String,
    /// Sent as `Authorization: Bearer …` when set.
    pub api_key: Option<ApiKey>,
    /// The vector length every reply must have.
    pub dimensions: usize,
    /// Whether to ask for `dimensions` in the request (OpenAI `text-embedding-3-*`, matryoshka models).
    pub send_dimensions: bool,
    /// One request's timeout.
    pub timeout: Duration,
    /// Texts per request.
    pub max_batch: usize,
    /// Prepended to every document text (e.g. `search_document: `); empty for none.
    pub document_prefix: String,
    /// Prepended to every query text (e.g. `search_query: `); empty for none.
    pub query_prefix: String,
}

impl OpenAiEmbeddingsConfig {
    /// No key, no prefixes, `dimensions` not sent, batches of 32 (gentle on local servers).
    #[must_use]
    pub fn new(
        base_url: impl Into<String>,
        model: impl Into<String>,
        dimensions: usize,
    ) -> OpenAiEmbeddingsConfig {
        OpenAiEmbeddingsConfig {
            base_url: base_url.into(),
            model: model.into(),
            api_key: None,
            dimensions,
            send_dimensions: false,
            timeout: DEFAULT_TIMEOUT,
            max_batch: 32,
            document_prefix: String::new(),
            query_prefix: String::new(),
        }
    }
}

/// OpenAI-compatible embeddings, one `/embeddings` request per call.
#[derive(Debug)]
pub struct OpenAiEmbeddings {
    http: JsonClient,
    model: String,
    base_url: String,
    url: String,
    dimensions: usize,
    send_dimensions: bool,
    max_batch: usize,
    document_prefix: String,
    query_prefix: String,
}

impl OpenAiEmbeddings {
    /// Builds the HTTP client once.
    ///
    /// # Errors
    /// [`ModelError::NotConfigured`] when the model or base URL is empty, or the HTTP client cannot be built.
    pub fn new(config: OpenAiEmbeddingsConfig) -> Result<OpenAiEmbeddings, ModelError> {
        let model = config.model.trim().to_owned();
        let base_url = config.base_url.trim().trim_end_matches('/').to_owned();
        if model.is_empty() || base_url.is_empty() {
            return Err(ModelError::NotConfigured {
                hint: format!(
                    "openai-compatible embedding model {:?} at {:?} is incomplete; give both, \
                     e.g. nomic-embed-text at http://localhost:11434/v1",
                    config.model, config.base_url
                ),
            });
        }
        let mut headers = HeaderMap::new();
        if let Some(key) = &config.api_key {
            headers.insert(AUTHORIZATION, key.header_value("Bearer ")?);
        }
        Ok(OpenAiEmbeddings {
            http: JsonClient::new(config.timeout, headers)?,
            url: format!("{base_url}/embeddings"),
            model,
            base_url,
            dimensions: config.dimensions,
            send_dimensions: config.send_dimensions,
            max_batch: config.max_batch,
            document_prefix: config.document_prefix,
            query_prefix: config.query_prefix,
        })
    }
}

#[derive(Serialize)]
struct EmbeddingsRequest<'a> {
    model: &'a str,
    input: Vec<String>,
    encoding_format: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    dimensions: Option<usize>,
}

#[derive(Deserialize)]
struct EmbeddingsReply {
    data: Option<Vec<Datum>>,
    usage: Option<Usage>,
}

#[derive(Deserialize)]
struct Datum {
    #[serde(default)]
    embedding: Vec<f32>,
    index: Option<usize>,
}

#[derive(Deserialize)]
struct Usage {
    prompt_tokens: Option<u64>,
}

#[async_trait]
impl EmbeddingProvider for OpenAiEmbeddings {
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
        format!("openai-embed:{}@{}", self.model, self.base_url)
    }

    async fn embed_batch(
        &self,
        texts: &[String],
        purpose: EmbedPurpose,
    ) -> Result<EmbeddingBatch, ModelError> {
        let prefix = match purpose {
            EmbedPurpose::Document => &self.document_prefix,
            EmbedPurpose::Query => &self.query_prefix,
        };
        let body = EmbeddingsRequest {
            model: &self.model,
            input: texts.iter().map(|t| format!("{prefix}{t}")).collect(),
            encoding_format: "float",
            dimensions: self.send_dimensions.then_some(self.dimensions),
        };
        let reply: EmbeddingsReply = http::parse_reply(&self.http.post(&self.url, &body).await?)?;
        let Some(mut data) = reply.data else {
            return Err(ModelError::MalformedReply {
                reason: "the embeddings reply has no `data`".to_owned(),
            });
        };
        // Servers answer in input order and most say so with `index`; sort in case one does not.
        if data.iter().all(|d| d.index.is_some()) {
            data.sort_by_key(|d| d.index);
        }
        Ok(EmbeddingBatch {
            vectors: data.into_iter().map(|d| d.embedding).collect(),
            // A server that counts nothing (some report 0) is charged the estimate instead.
            input_tokens: reply.usage.and_then(|u| u.prompt_tokens).filter(|n| *n > 0),
        })
    }
}
