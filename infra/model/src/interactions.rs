//! Google's Interactions API (`POST /v1beta/interactions`) behind the [`Model`] port: the newer,
//! step-based interface to the same Gemini models, with thought signatures and function calls as
//! first-class steps.
//!
//! The docs changed shape in May 2026 (`outputs` became `steps`) and are unclear in places, so here is
//! exactly what this module implements, against `Api-Revision: 2026-05-20` (sent as a header):
//!
//! Request (snake_case): `{"model", "input": [step…], "system_instruction": "…", "tools": [{"type":
//! "function", "name", "description", "parameters"}], "generation_config": {"temperature",
//! "max_output_tokens", "thinking_level": "minimal|low|medium|high", "tool_choice": "any|none"},
//! "response_format": {"type": "text", "mime_type": "application/json", "schema": …}, "store": false,
//! "stream": true?}`. The conversation is sent whole every time (`store: false`, no
//! `previous_interaction_id`), so calls stay stateless and replayable. Turns become input steps: a
//! user turn is `function_result` steps (`call_id`, `name`, `result`) for its tool results, then a
//! `user_input` step (`content: [{"type": "text", "text"}]`); a model turn is a `thought` step carrying
//! its `thought_signature`, a `model_output` step with its text, then one `function_call` step (`id`,
//! `name`, `arguments`, `signature`) per call. A missing call id is replaced by the tool's name.
//!
//! Response: an Interaction with `status`, `model`, `usage` (`total_input_tokens` plus
//! `total_tool_use_tokens` → input, `total_output_tokens` → output, `total_cached_tokens` → cached,
//! `total_thought_tokens` → thinking) and `steps` (the legacy `outputs` array is read too). Steps after
//! the last echoed `user_input`/`function_result` are the model's: `model_output` text is joined into
//! the reply's text; the last `thought` step's `signature` is the reply's `thought_signature` (the API
//! emits one per turn in practice; earlier ones in the same turn would be dropped); each
//! `function_call` is a [`ToolCall`](cadre_domain::ports::model::ToolCall) with its own `signature`.
//! Status `completed` or `requires_action` is [`FinishReason::Stop`](cadre_domain::ports::model::FinishReason),
//! `incomplete` is `MaxTokens`, `failed` maps its `error` (`RESOURCE_EXHAUSTED` → rate limited, a
//! safety/block code → blocked, a caller error → rejected, the rest → server error); any other status
//! is a malformed reply. Streaming is described in `interactions/stream.rs`.
//!
//! Errors follow the [`Model`] port's `# Errors` section: HTTP failures are mapped by `http.rs` like the
//! other providers'. Like them, this provider neither retries nor accounts: put it behind the
//! [`Gateway`](crate::Gateway).

mod stream;
mod wire;

use std::time::Duration;

use async_trait::async_trait;
use cadre_domain::ports::model::{Model, ModelError, ModelReply, ModelRequest};
use reqwest::header::{HeaderMap, HeaderValue, ACCEPT};
use tokio::time::Instant;

use crate::api_key::ApiKey;
use crate::gemini::{DEFAULT_GEMINI_BASE_URL, DEFAULT_GEMINI_MODEL};
use crate::http::{self, JsonClient, DEFAULT_TIMEOUT};

/// The API revision whose shape (steps, `response_format`) this module speaks.
pub const DEFAULT_INTERACTIONS_API_REVISION: &str = "2026-05-20";

/// Where and how to reach the Interactions API.
#[derive(Debug, Clone)]
pub struct InteractionsConfig {
    /// Scheme and host, without a path.
    pub base_url: String,
    /// The model id, e.g. `gemini-3-flash-preview`.
    pub model: String,
    /// Sent in the `x-goog-api-key` header.
    pub api_key: ApiKey,
    /// The whole call's deadline (the whole stream's, when streaming).
    pub timeout: Duration,
    /// Sent as the `Api-Revision` header when set.
    pub api_revision: Option<String>,
}

impl InteractionsConfig {
    /// The public endpoint, the default model and timeout, and [`DEFAULT_INTERACTIONS_API_REVISION`].
    #[must_use]
    pub fn new(api_key: ApiKey) -> InteractionsConfig {
        InteractionsConfig {
            base_url: DEFAULT_GEMINI_BASE_URL.to_owned(),
            model: DEFAULT_GEMINI_MODEL.to_owned(),
            api_key,
            timeout: DEFAULT_TIMEOUT,
            api_revision: Some(DEFAULT_INTERACTIONS_API_REVISION.to_owned()),
        }
    }
}

/// A Gemini model reached through the Interactions API.
#[derive(Debug)]
pub struct InteractionsModel {
    http: JsonClient,
    model: String,
    url: String,
}

impl InteractionsModel {
    /// Builds the HTTP client once.
    ///
    /// # Errors
    /// [`ModelError::NotConfigured`] when the model id is empty, the API revision cannot be a header, or
    /// the HTTP client cannot be built.
    pub fn new(config: InteractionsConfig) -> Result<InteractionsModel, ModelError> {
        let model = config.model.trim();
        let model = model.strip_prefix("models/").unwrap_or(model).to_owned();
        if model.is_empty() || model.contains(char::is_whitespace) {
            return Err(ModelError::NotConfigured {
                hint: format!(
                    "interactions model id {:?} is not valid; name a model such as {DEFAULT_GEMINI_MODEL}",
                    config.model
                ),
            });
        }
        let mut headers = HeaderMap::new();
        headers.insert("x-goog-api-key", config.api_key.header_value("")?);
        if let Some(revision) = &config.api_revision {
            let value = HeaderValue::from_str(revision).map_err(|_| ModelError::NotConfigured {
                hint: format!(
                    "interactions api_revision {revision:?} cannot be sent as a header; use a date \
                     such as {DEFAULT_INTERACTIONS_API_REVISION}"
                ),
            })?;
            headers.insert("api-revision", value);
        }
        let base = config.base_url.trim_end_matches('/');
        Ok(InteractionsModel {
            http: JsonClient::new(config.timeout, headers)?,
            url: format!("{base}/v1beta/interactions"),
            model,
        })
    }

    async fn call(&self, request: &ModelRequest) -> Result<ModelReply, ModelError> {
        let body = wire::request_body(&self.model, request, false, false);
        let mut interaction: wire::Interaction =
            http::parse_reply(&self.http.post(&self.url, &body).await?)?;
        let items = wire::items(&mut interaction)?;
        wire::assemble(
            interaction.status.as_deref(),
            interaction.error.as_ref(),
            items,
            interaction.usage.unwrap_or_default().tokens(),
            interaction.model.unwrap_or_else(|| self.model.clone()),
        )
    }

    async fn call_streaming(
        &self,
        request: &ModelRequest,
        on_text: &(dyn for<'t> Fn(&'t str) + Send + Sync),
    ) -> Result<ModelReply, ModelError> {
        let body = wire::request_body(&self.model, request, false, true);
        let mut accept = HeaderMap::new();
        accept.insert(ACCEPT, HeaderValue::from_static("text/event-stream"));
        let stream = self.http.post_stream(&self.url, &body, &accept).await?;
        stream::read(stream, on_text, &self.model).await
    }
}

#[async_trait]
impl Model for InteractionsModel {
    async fn complete(&self, request: &ModelRequest) -> Result<ModelReply, ModelError> {
        let started = Instant::now();
        let result = self.call(request).await;
        http::log_call(&self.describe(), started, &result);
        result
    }

    async fn stream(
        &self,
        request: &ModelRequest,
        on_text: &(dyn for<'t> Fn(&'t str) + Send + Sync),
    ) -> Result<ModelReply, ModelError> {
        let started = Instant::now();
        let result = self.call_streaming(request, on_text).await;
        http::log_call(&self.describe(), started, &result);
        result
    }

    fn describe(&self) -> String {
        format!("interactions:{}", self.model)
    }
}
