//! Model providers behind the `Model` port: Gemini, OpenAI-compatible servers, and record/replay.
//!
//! Key decision: each provider translates `ModelRequest` to its own wire format and maps every failure to
//! `ModelError` at this seam, following the port's `# Errors` sentences, so callers never see HTTP or
//! serde types. One HTTP module (`http.rs`) holds the client and the status mapping both wire formats share.
//!
//! The providers must not retry, rate-limit or cache: that is done once, in front of any provider, by the
//! [`gateway`] module (and by the engine, which retries what the gateway gives up on). This crate must
//! not read environment variables (the binary reads configuration once and passes
//! values in), and must never log or return an API key or a prompt above debug level.

mod api_key;
pub mod gateway;
pub mod gemini;
mod http;
pub mod openai_compat;
pub mod replay;
mod spec;

pub use api_key::ApiKey;
pub use gateway::{
    complete_json, BreakerConfig, CircuitBreaker, Gateway, GatewayConfig, GatewayPorts,
    MemoryModelCache, MemoryUsageLedger, ModelPrice, PriceTable, RateLimit, RetryPolicy,
};
pub use gemini::{GeminiConfig, GeminiModel, DEFAULT_GEMINI_BASE_URL, DEFAULT_GEMINI_MODEL};
pub use http::DEFAULT_TIMEOUT;
pub use openai_compat::{OpenAiCompatConfig, OpenAiCompatModel};
pub use replay::{request_key, RecordingModel, ReplayModel};
pub use spec::{parse_model_spec, ModelSpec, ModelSpecError};
