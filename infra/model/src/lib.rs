//! Model providers behind the `Model` port: Gemini (Gemini API or Vertex AI, with streaming, token
//! counting, tool calling and explicit context caching), OpenAI-compatible servers, and record/replay.
//!
//! Key decision: each provider translates `ModelRequest` to its own wire format and maps every failure to
//! `ModelError` at this seam, following the port's `# Errors` sentences, so callers never see HTTP or
//! serde types. One HTTP module (`http.rs`) holds the client and the status mapping both wire formats share.
//!
//! The providers must not retry, rate-limit or cache: that is done once, in front of any provider, by the
//! [`gateway`] module (and by the engine, which retries what the gateway gives up on). This crate must
//! not read environment variables (the binary reads configuration once and passes
//! values in; Vertex AI credential discovery takes a lookup function for that reason), and must never
//! log or return an API key, an OAuth token or credential, or a prompt above debug level.

mod api_key;
pub mod batch;
pub mod embed;
pub mod gateway;
pub mod gemini;
mod google_auth;
mod http;
pub mod interactions;
pub mod openai_compat;
pub mod replay;
mod spec;
mod sse;

pub use api_key::ApiKey;
pub use gateway::{
    complete_json, BreakerConfig, CircuitBreaker, ContextCachePrice, Gateway, GatewayConfig,
    GatewayPorts, MemoryModelCache, MemoryUsageLedger, ModelPrice, PriceTable, RateLimit,
    RetryPolicy,
};
pub use gemini::{
    vertex_base_url, ContextCacheConfig, GeminiConfig, GeminiModel, VertexConfig,
    DEFAULT_CACHE_TTL, DEFAULT_GEMINI_BASE_URL, DEFAULT_GEMINI_MODEL,
};
pub use google_auth::{GoogleCredentials, DEFAULT_METADATA_HOST, DEFAULT_TOKEN_URI};
pub use http::DEFAULT_TIMEOUT;
pub use openai_compat::{OpenAiCompatConfig, OpenAiCompatModel};
pub use replay::{request_key, RecordingModel, ReplayModel};
pub use spec::{parse_model_spec, parse_vertex_spec, ModelSpec, ModelSpecError};
