//! The model port: one request/response call to a language model.
//!
//! Providers (Gemini, OpenAI-compatible servers, record/replay) translate [`ModelRequest`] to their wire
//! format; the gateway in front of them adds limits, retries, caching and accounting.

use serde::{Deserialize, Serialize};

/// Who said a turn of the conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// The person, or Cadre speaking for them (task, context, feedback).
    User,
    /// The model's earlier replies.
    Model,
}

/// One turn of the conversation.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ChatMessage {
    /// Who said it.
    pub role: Role,
    /// What was said.
    pub text: String,
}

impl ChatMessage {
    /// A user turn.
    #[must_use]
    pub fn user(text: impl Into<String>) -> Self {
        ChatMessage { role: Role::User, text: text.into() }
    }

    /// A model turn.
    #[must_use]
    pub fn model(text: impl Into<String>) -> Self {
        ChatMessage { role: Role::Model, text: text.into() }
    }
}

/// A request to the model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelRequest {
    /// Which step asks (for accounting and logs), e.g. `plan`.
    pub purpose: String,
    /// The system instruction.
    pub system: String,
    /// The conversation so far, oldest first; the last turn is the user's.
    pub messages: Vec<ChatMessage>,
    /// When set, the reply must be JSON matching this schema (OpenAPI subset).
    pub response_schema: Option<serde_json::Value>,
    /// Sampling temperature; the provider's default when absent.
    pub temperature: Option<f32>,
    /// Cap on output tokens; the provider's default when absent.
    pub max_output_tokens: Option<u32>,
}

/// Tokens a call used, as the provider reported them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct TokenUsage {
    /// Prompt tokens, including cached ones.
    pub input: u64,
    /// Generated tokens, excluding thinking.
    pub output: u64,
    /// Prompt tokens served from a cache.
    pub cached: u64,
    /// Thinking tokens (billed as output by Gemini).
    pub thinking: u64,
}

impl TokenUsage {
    /// All tokens billed.
    #[must_use]
    pub fn total(&self) -> u64 {
        self.input + self.output + self.thinking
    }

    /// The sum of two usages.
    #[must_use]
    pub fn plus(self, other: TokenUsage) -> TokenUsage {
        TokenUsage {
            input: self.input + other.input,
            output: self.output + other.output,
            cached: self.cached + other.cached,
            thinking: self.thinking + other.thinking,
        }
    }
}

/// Why the model stopped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// A natural end.
    Stop,
    /// The output hit the token cap; the text is cut off.
    MaxTokens,
    /// Anything else the provider named (kept verbatim).
    Other(String),
}

/// The model's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelReply {
    /// The reply's text (the JSON text for structured calls).
    pub text: String,
    /// Tokens used.
    pub usage: TokenUsage,
    /// Why it stopped.
    pub finish: FinishReason,
    /// The model id that answered.
    pub model: String,
}

/// Why a model call failed.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum ModelError {
    /// No provider is configured, or its key is missing.
    #[error("{hint}")]
    NotConfigured {
        /// What to set, and how.
        hint: String,
    },
    /// The endpoint could not be reached (connect, DNS, reset, timeout).
    #[error("model endpoint {endpoint} is unreachable: {reason}; check the URL and that the server is running")]
    Unreachable {
        /// The endpoint.
        endpoint: String,
        /// What the transport said.
        reason: String,
    },
    /// The provider said to slow down.
    #[error("rate limited by the model provider; retry after {retry_after_ms:?} ms")]
    RateLimited {
        /// How long the provider asked to wait, if it said.
        retry_after_ms: Option<u64>,
    },
    /// The provider failed on its side (5xx).
    #[error("model provider error {status}: {message}")]
    ServerError {
        /// HTTP status.
        status: u16,
        /// The provider's message.
        message: String,
    },
    /// The provider refused the request (4xx other than 429): retrying the same request cannot help.
    #[error("model provider rejected the request ({status}): {message}")]
    Rejected {
        /// HTTP status.
        status: u16,
        /// The provider's message.
        message: String,
    },
    /// The provider blocked the prompt or the answer (safety, recitation, …).
    #[error("the model provider blocked the reply: {reason}")]
    Blocked {
        /// The provider's reason.
        reason: String,
    },
    /// The reply could not be understood (not the documented wire format, or empty).
    #[error("malformed model reply: {reason}")]
    MalformedReply {
        /// What was wrong.
        reason: String,
    },
    /// A replay file has no recorded reply for this request.
    #[error("no recorded reply for request {key} in {file}; re-record with --record, or check that prompts did not change")]
    ReplayMiss {
        /// The request's key.
        key: String,
        /// The replay file.
        file: String,
    },
}

impl ModelError {
    /// Whether the same request may succeed later.
    #[must_use]
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            ModelError::Unreachable { .. }
                | ModelError::RateLimited { .. }
                | ModelError::ServerError { .. }
        )
    }
}

/// A language model.
#[async_trait::async_trait]
pub trait Model: Send + Sync {
    /// Sends one request and returns the reply.
    ///
    /// # Errors
    /// An implementation MUST return [`ModelError::RateLimited`] for a 429 / `RESOURCE_EXHAUSTED`,
    /// [`ModelError::ServerError`] for a 5xx, [`ModelError::Rejected`] for any other 4xx,
    /// [`ModelError::Unreachable`] when no HTTP answer came, [`ModelError::Blocked`] when the provider
    /// blocked the prompt or reply, and [`ModelError::MalformedReply`] when the answer is not the
    /// documented format or has no text. It MUST NOT return a partial reply as success, except a reply
    /// cut at the token cap, which is returned with [`FinishReason::MaxTokens`].
    async fn complete(&self, request: &ModelRequest) -> Result<ModelReply, ModelError>;

    /// A short description for logs and `cadre status`, e.g. `gemini:gemini-3-flash-preview`.
    fn describe(&self) -> String;
}
