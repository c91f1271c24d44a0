//! Gemini, on the Gemini API (an AI Studio key) or on Vertex AI (a project, a location and an OAuth
//! token): `generateContent`, `streamGenerateContent` (SSE), `countTokens` and explicit context caching.
//!
//! Both endpoints speak the same wire format (`wire.rs`); they differ in the URL, the auth header and
//! the shape of `countTokens`. The model id is configuration, never code, because Gemini ids change
//! every few months. On Vertex a 401 makes the token source fetch a new token and the call is sent once
//! more; a second 401 is returned as [`ModelError::Rejected`].

mod context_cache;
mod stream;
pub(crate) mod wire;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use cadre_domain::ports::clock::{Clock, SystemClock};
use cadre_domain::ports::model::{Model, ModelError, ModelReply, ModelRequest};
use cadre_domain::TaskId;
use reqwest::header::HeaderMap;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;
use tracing::{debug, warn};

pub use context_cache::{ContextCacheConfig, DEFAULT_CACHE_TTL, MAX_CACHES_PER_TASK};

use crate::api_key::ApiKey;
use crate::google_auth::{GoogleCredentials, TokenSource};
use crate::http::{self, JsonClient, StreamBody, DEFAULT_TIMEOUT};
use context_cache::{CacheUse, ContextCaches, Creation, Plan};
use wire::GenerateContentRequest;

/// The public Gemini API endpoint.
pub const DEFAULT_GEMINI_BASE_URL: &str = "https://generativelanguage.googleapis.com";
/// The model used when the configuration names none.
pub const DEFAULT_GEMINI_MODEL: &str = "gemini-3-flash-preview";

/// Where and how to reach the Gemini API.
#[derive(Debug, Clone)]
pub struct GeminiConfig {
    /// Scheme and host, without a path: the provider adds `/v1beta/models/…`.
    pub base_url: String,
    /// The model id, e.g. `gemini-3-flash-preview`.
    pub model: String,
    /// Sent in the `x-goog-api-key` header, never in the URL.
    pub api_key: ApiKey,
    /// The whole call's deadline; a slower answer is [`ModelError::Unreachable`].
    pub timeout: Duration,
    /// Explicit context caching for tasks that repeat a large prefix; off when `None`.
    pub context_cache: Option<ContextCacheConfig>,
}

impl GeminiConfig {
    /// The public endpoint and the default model and timeout, without context caching.
    #[must_use]
    pub fn new(api_key: ApiKey) -> GeminiConfig {
        GeminiConfig {
            base_url: DEFAULT_GEMINI_BASE_URL.to_owned(),
            model: DEFAULT_GEMINI_MODEL.to_owned(),
            api_key,
            timeout: DEFAULT_TIMEOUT,
            context_cache: None,
        }
    }
}

/// Where and how to reach Gemini on Vertex AI.
#[derive(Clone)]
pub struct VertexConfig {
    /// The Google Cloud project id (`GOOGLE_CLOUD_PROJECT`).
    pub project: String,
    /// The location (`GOOGLE_CLOUD_LOCATION`), e.g. `global` or `us-central1`.
    pub location: String,
    /// The model id, e.g. `gemini-3-flash-preview`.
    pub model: String,
    /// Scheme and host; `None` derives it from the location ([`vertex_base_url`]). Tests point it at a
    /// local server.
    pub base_url: Option<String>,
    /// Where OAuth tokens come from (usually [`GoogleCredentials::discover`]).
    pub credentials: GoogleCredentials,
    /// The whole call's deadline.
    pub timeout: Duration,
    /// Explicit context caching; off when `None`.
    pub context_cache: Option<ContextCacheConfig>,
    /// Wall-clock time for signed service-account assertions.
    pub clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for VertexConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VertexConfig")
            .field("project", &self.project)
            .field("location", &self.location)
            .field("model", &self.model)
            .field("base_url", &self.base_url)
            .field("credentials", &self.credentials)
            .field("timeout", &self.timeout)
            .field("context_cache", &self.context_cache)
            .finish_non_exhaustive()
    }
}

impl VertexConfig {
    /// The derived endpoint, the default model and timeout, the system clock, no context caching.
    #[must_use]
    pub fn new(
        project: impl Into<String>,
        location: impl Into<String>,
        credentials: GoogleCredentials,
    ) -> VertexConfig {
        VertexConfig {
            project: project.into(),
            location: location.into(),
            model: DEFAULT_GEMINI_MODEL.to_owned(),
            base_url: None,
            credentials,
            timeout: DEFAULT_TIMEOUT,
            context_cache: None,
            clock: Arc::new(SystemClock),
        }
    }
}

impl VertexConfig {
    /// The configuration the binary builds for `--model vertex[:<model>]`: the project from
    /// `GOOGLE_CLOUD_PROJECT`, the location from `GOOGLE_CLOUD_LOCATION` (`global` when unset) and
    /// credentials from [`GoogleCredentials::discover`]. `env` reads one variable (the binary passes
    /// `|name| std::env::var(name).ok()`); `model` defaults to [`DEFAULT_GEMINI_MODEL`].
    ///
    /// # Errors
    /// [`ModelError::NotConfigured`] when `GOOGLE_CLOUD_PROJECT` is unset, or a credentials file is
    /// named but unusable.
    pub fn from_env(
        model: Option<&str>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<VertexConfig, ModelError> {
        let set = |name: &str| env(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        let project = set("GOOGLE_CLOUD_PROJECT").ok_or_else(|| ModelError::NotConfigured {
            hint: "GOOGLE_CLOUD_PROJECT is not set; export the Google Cloud project that has Vertex AI \
                   enabled, or use --model gemini with GEMINI_API_KEY"
                .to_owned(),
        })?;
        let location = set("GOOGLE_CLOUD_LOCATION").unwrap_or_else(|| "global".to_owned());
        let mut config = VertexConfig::new(project, location, GoogleCredentials::discover(env)?);
        if let Some(model) = model {
            config.model = model.to_owned();
        }
        Ok(config)
    }
}

/// The Vertex AI host for `location`: `https://aiplatform.googleapis.com` for `global`, else
/// `https://{location}-aiplatform.googleapis.com`.
#[must_use]
pub fn vertex_base_url(location: &str) -> String {
    if location == "global" {
        "https://aiplatform.googleapis.com".to_owned()
    } else {
        format!("https://{location}-aiplatform.googleapis.com")
    }
}

/// The URLs and names of one model on one endpoint.
#[derive(Debug)]
struct Endpoint {
    /// `…/models/{model}`, to which `:method` is appended.
    model_url: String,
    /// `…/cachedContents`.
    caches_url: String,
    /// The API root (`…/v1beta` or `…/v1`) that a resource name is appended to.
    api_root: String,
    /// The model's resource name inside a cached content.
    cache_model: String,
    vertex: bool,
}

/// How a call proves who it is.
#[derive(Debug)]
enum Auth {
    /// The key is in the client's fixed headers.
    Key,
    /// A bearer token per call, refreshed once on a 401.
    Bearer(TokenSource),
}

/// Gemini behind the [`Model`] port.
#[derive(Debug)]
pub struct GeminiModel {
    http: JsonClient,
    model: String,
    endpoint: Endpoint,
    auth: Auth,
    caches: Option<ContextCaches>,
    describe: String,
}

fn check_model_id(model: &str) -> Result<String, ModelError> {
    let trimmed = model.trim();
    let id = trimmed.strip_prefix("models/").unwrap_or(trimmed);
    if id.is_empty() || id.contains(char::is_whitespace) || id.contains('/') {
        return Err(ModelError::NotConfigured {
            hint: format!(
                "gemini model id {model:?} is not valid; name a model such as {DEFAULT_GEMINI_MODEL}"
            ),
        });
    }
    Ok(id.to_owned())
}

fn context_caches(config: Option<ContextCacheConfig>, model: &str) -> Option<ContextCaches> {
    let config = config?;
    if !config.saves_money() {
        tracing::info!(model, ttl_s = config.ttl.as_secs(),
            "context caching stays off: at these prices one reuse does not pay for the cache's storage");
        return None;
    }
    Some(ContextCaches::new(config))
}

impl GeminiModel {
    /// The Gemini API with an API key; builds the HTTP client once.
    ///
    /// # Errors
    /// [`ModelError::NotConfigured`] when the model id is empty or the HTTP client cannot be built.
    pub fn new(config: GeminiConfig) -> Result<GeminiModel, ModelError> {
        let model = check_model_id(&config.model)?;
        let mut headers = HeaderMap::new();
        headers.insert("x-goog-api-key", config.api_key.header_value("")?);
        let base = config.base_url.trim_end_matches('/');
        let api_root = format!("{base}/v1beta");
        let endpoint = Endpoint {
            model_url: format!("{api_root}/models/{model}"),
            caches_url: format!("{api_root}/cachedContents"),
            cache_model: format!("models/{model}"),
            api_root,
            vertex: false,
        };
        Ok(GeminiModel {
            http: JsonClient::new(config.timeout, headers)?,
            caches: context_caches(config.context_cache, &model),
            describe: format!("gemini:{model}"),
            model,
            endpoint,
            auth: Auth::Key,
        })
    }

    /// Gemini on Vertex AI with an OAuth token from `config.credentials`.
    ///
    /// # Errors
    /// [`ModelError::NotConfigured`] when the project, location or model id is empty or not a single
    /// path segment, or the HTTP client cannot be built.
    pub fn vertex(config: VertexConfig) -> Result<GeminiModel, ModelError> {
        let model = check_model_id(&config.model)?;
        for (what, value, env) in [
            ("project", &config.project, "GOOGLE_CLOUD_PROJECT"),
            ("location", &config.location, "GOOGLE_CLOUD_LOCATION"),
        ] {
            if value.trim().is_empty() || value.contains(['/', ' ', '?', '#']) {
                return Err(ModelError::NotConfigured {
                    hint: format!(
                        "the Vertex AI {what} {value:?} is not valid; set {env} (e.g. {})",
                        if what == "project" { "my-project" } else { "global or us-central1" }
                    ),
                });
            }
        }
        let (project, location) = (config.project.trim(), config.location.trim());
        let base = config.base_url.clone().unwrap_or_else(|| vertex_base_url(location));
        let api_root = format!("{}/v1", base.trim_end_matches('/'));
        let parent = format!("projects/{project}/locations/{location}");
        let cache_model = format!("{parent}/publishers/google/models/{model}");
        let endpoint = Endpoint {
            model_url: format!("{api_root}/{cache_model}"),
            caches_url: format!("{api_root}/{parent}/cachedContents"),
            api_root,
            cache_model,
            vertex: true,
        };
        Ok(GeminiModel {
            http: JsonClient::new(config.timeout, HeaderMap::new())?,
            caches: context_caches(config.context_cache, &model),
            describe: format!("vertex:{model}@{project}/{location}"),
            auth: Auth::Bearer(TokenSource::new(config.credentials, config.clock)?),
            model,
            endpoint,
        })
    }

    /// Deletes the context caches made for `task` (they would expire by their TTL anyway); call it when
    /// the task is over. Failures are logged, never returned: an undeleted cache only costs storage
    /// until it expires.
    pub async fn release_context_caches(&self, task: &TaskId) {
        self.delete_caches(Some(task)).await;
    }

    /// Deletes every context cache this model made, e.g. at shutdown.
    pub async fn release_all_context_caches(&self) {
        self.delete_caches(None).await;
    }

    async fn delete_caches(&self, task: Option<&TaskId>) {
        let Some(caches) = &self.caches else { return };
        for name in caches.drain(task) {
            let url = &format!("{}/{name}", self.endpoint.api_root);
            match self.authed(|h| async move { self.http.delete_with(url, &h).await }).await {
                Ok(_) => debug!(cache = %name, "context cache deleted"),
                Err(e) => {
                    warn!(cache = %name, error = %e, "cannot delete a context cache; it expires by its TTL")
                }
            }
        }
    }

    /// Runs `send` with the auth headers; on Vertex, a 401 fetches a new token and sends once more.
    async fn authed<T, F, Fut>(&self, send: F) -> Result<T, ModelError>
    where
        F: Fn(HeaderMap) -> Fut,
        Fut: std::future::Future<Output = Result<T, ModelError>>,
    {
        let Auth::Bearer(tokens) = &self.auth else { return send(HeaderMap::new()).await };
        let token = tokens.token().await?;
        match send(token.headers()?).await {
            Err(ModelError::Rejected { status: 401, .. }) => {
                debug!(model = %self.model, "Vertex AI answered 401; fetching a new token and retrying once");
                tokens.invalidate(&token).await;
                let token = tokens.token().await?;
                send(token.headers()?).await
            }
            other => other,
        }
    }

    /// One `generateContent`, or a `streamGenerateContent` when `on_text` is set.
    async fn generate(
        &self,
        body: &GenerateContentRequest<'_>,
        on_text: Option<&(dyn for<'t> Fn(&'t str) + Send + Sync)>,
    ) -> Result<ModelReply, ModelError> {
        match on_text {
            None => {
                let url = &format!("{}:generateContent", self.endpoint.model_url);
                let bytes = self
                    .authed(|h| async move { self.http.post_with(url, body, &h).await })
                    .await?;
                wire::interpret(http::parse_reply(&bytes)?, &self.model)
            }
            Some(on_text) => {
                let url = &format!("{}:streamGenerateContent?alt=sse", self.endpoint.model_url);
                let stream: StreamBody = self
                    .authed(|h| async move { self.http.post_stream(url, body, &h).await })
                    .await?;
                stream::read(stream, &self.model, on_text).await
            }
        }
    }

    /// The call, through a context cache when one applies.
    async fn call(
        &self,
        request: &ModelRequest,
        on_text: Option<&(dyn for<'t> Fn(&'t str) + Send + Sync)>,
    ) -> Result<ModelReply, ModelError> {
        if let Some(caches) = &self.caches {
            let used = match caches.plan(&self.model, request) {
                Plan::Whole => None,
                Plan::Use(used) => Some(used),
                Plan::Create(creation) => self.create_cache(caches, request, &creation).await,
            };
            if let Some(CacheUse { name, turns }) = used {
                let body = wire::cached_request(request, &name, turns);
                match self.generate(&body, on_text).await {
                    Ok(mut reply) => {
                        reply.usage.input += caches.take_charge(&name);
                        return Ok(reply);
                    }
                    Err(ModelError::Rejected { status: 400 | 403 | 404, message }) => {
                        warn!(cache = %name, error = %message,
                              "the provider refused the context cache; forgetting it and sending the call whole");
                        caches.forget(&name);
                    }
                    Err(other) => return Err(other),
                }
            }
        }
        self.generate(&wire::generate_request(request), on_text).await
    }

    /// Creates the cache `creation` describes; a failure is logged and the call goes out whole.
    async fn create_cache(
        &self,
        caches: &ContextCaches,
        request: &ModelRequest,
        creation: &Creation,
    ) -> Option<CacheUse> {
        let wire::Preamble { system_instruction, tools, tool_config } = wire::preamble(request);
        let body = CreateCachedContent {
            model: &self.endpoint.cache_model,
            display_name: format!("cadre task {}", creation.task),
            system_instruction,
            contents: wire::contents(&request.messages[..creation.turns]),
            tools,
            tool_config,
            ttl: format!("{}s", caches.ttl().as_secs()),
        };
        let (url, body) = (&self.endpoint.caches_url, &body);
        let result = self.authed(|h| async move { self.http.post_with(url, body, &h).await }).await;
        let created = result.and_then(|bytes| http::parse_reply::<CachedContent>(&bytes));
        let outcome = match created {
            Ok(cached) => {
                let tokens = cached.usage_metadata.and_then(|u| u.total_token_count).unwrap_or(0);
                debug!(cache = %cached.name, tokens, turns = creation.turns, "context cache created");
                Some((cached.name, tokens))
            }
            Err(e) => {
                warn!(error = %e, "cannot create a context cache; sending the call whole");
                None
            }
        };
        caches.created(creation, outcome)
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CreateCachedContent<'a> {
    model: &'a str,
    display_name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    system_instruction: Option<wire::Content<'a>>,
    contents: Vec<wire::Content<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tools: Option<[wire::Tools<'a>; 1]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_config: Option<wire::ToolConfig>,
    ttl: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CachedContent {
    name: String,
    usage_metadata: Option<CacheUsage>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CacheUsage {
    total_token_count: Option<u64>,
}

/// The Gemini API form: the whole request, so the system instruction and tools are counted too.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CountTokensRequest<'a> {
    generate_content_request: WithModel<'a>,
}

#[derive(Serialize)]
struct WithModel<'a> {
    model: &'a str,
    #[serde(flatten)]
    request: GenerateContentRequest<'a>,
}

/// The Vertex AI form: the fields at the top level.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct VertexCountTokensRequest<'a> {
    contents: Vec<wire::Content<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    system_instruction: Option<wire::Content<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tools: Option<[wire::Tools<'a>; 1]>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CountTokensResponse {
    total_tokens: Option<u64>,
}

#[async_trait]
impl Model for GeminiModel {
    async fn complete(&self, request: &ModelRequest) -> Result<ModelReply, ModelError> {
        let started = Instant::now();
        let result = self.call(request, None).await;
        http::log_call(&self.describe, started, &result);
        result
    }

    async fn stream(
        &self,
        request: &ModelRequest,
        on_text: &(dyn for<'t> Fn(&'t str) + Send + Sync),
    ) -> Result<ModelReply, ModelError> {
        let started = Instant::now();
        let result = self.call(request, Some(on_text)).await;
        http::log_call(&self.describe, started, &result);
        result
    }

    async fn count_tokens(&self, request: &ModelRequest) -> Result<u64, ModelError> {
        let url = &format!("{}:countTokens", self.endpoint.model_url);
        let bytes = if self.endpoint.vertex {
            let wire::Preamble { system_instruction, tools, .. } = wire::preamble(request);
            let body = VertexCountTokensRequest {
                contents: wire::contents(&request.messages),
                system_instruction,
                tools,
            };
            let body = &body;
            self.authed(|h| async move { self.http.post_with(url, body, &h).await }).await?
        } else {
            let body = CountTokensRequest {
                generate_content_request: WithModel {
                    model: &self.endpoint.cache_model,
                    request: wire::generate_request(request),
                },
            };
            let body = &body;
            self.authed(|h| async move { self.http.post_with(url, body, &h).await }).await?
        };
        let counted: CountTokensResponse = http::parse_reply(&bytes)?;
        counted.total_tokens.ok_or_else(|| ModelError::MalformedReply {
            reason: "the countTokens answer has no totalTokens".to_owned(),
        })
    }

    fn describe(&self) -> String {
        self.describe.clone()
    }
}
