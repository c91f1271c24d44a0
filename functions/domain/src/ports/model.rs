//! The model port: one request/response call to a language model.
//!
//! Providers (Gemini, OpenAI-compatible servers, record/replay) translate [`ModelRequest`] to their wire
//! format; the gateway in front of them adds limits, retries, caching and accounting.

use serde::{Deserialize, Serialize};

use crate::ids::TaskId;

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

/// Whether the gateway may answer a request from its response cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CachePolicy {
    /// Answer from the cache when the settings are deterministic (temperature 0 or unset), and store
    /// a fresh answer there.
    #[default]
    Use,
    /// Neither read nor write the cache: always ask the provider (e.g. to sample a second opinion).
    Bypass,
}

impl CachePolicy {
    /// Whether this is the default, so requests serialize without the field.
    #[must_use]
    pub fn is_use(&self) -> bool {
        *self == CachePolicy::Use
    }
}

/// A request to the model.
///
/// `task`, `template` and `cache` describe the call, not the answer: they are left out of replay keys
/// and default when absent, so transcripts written before they existed still parse.
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
    /// The task this call serves: its usage is charged to it and checked against its budget.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<TaskId>,
    /// The prompt template and its version (e.g. `plan@3`), recorded with the call's usage so results
    /// can be compared across template changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
    /// Whether the gateway may answer from its response cache.
    #[serde(default, skip_serializing_if = "CachePolicy::is_use")]
    pub cache: CachePolicy,
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
    /// The call did not finish within its deadline (waiting for rate-limit capacity, between retries,
    /// or in flight); the same request may succeed later.
    #[error("model call gave up after {after_ms} ms, at its deadline; retry later, or raise the gateway's call deadline")]
    DeadlineExceeded {
        /// How long the call had run when it gave up.
        after_ms: u64,
    },
    /// The provider failed repeatedly, so the gateway fails fast instead of calling it.
    #[error("circuit breaker for {provider} is open after repeated failures; calls fail fast for about {retry_in_ms} ms more, then one probe call is let through")]
    CircuitOpen {
        /// The provider, as its `describe()` names it.
        provider: String,
        /// How long until a probe may be let through.
        retry_in_ms: u64,
    },
    /// A structured reply still did not parse as the requested JSON after one correction.
    #[error("the model's reply does not match the requested JSON even after one correction: {reason}; simplify the schema or the prompt")]
    SchemaMismatch {
        /// The parse error of the last reply.
        reason: String,
        /// The last reply's text, verbatim, so nothing the model said is lost.
        raw: String,
    },
    /// The task's budget cannot cover this call's worst case; the call was not made.
    #[error("task budget exceeded: {spent_micros} of {limit_micros} micro-dollars are spent or reserved, and this call could cost more than what is left; raise the task budget or cancel the task")]
    BudgetExceeded {
        /// What the task has spent, plus the worst case of its calls in flight.
        spent_micros: u64,
        /// The task's budget.
        limit_micros: u64,
    },
    /// The usage ledger could not be read, so the task's budget cannot be checked; the call was not made.
    #[error(
        "usage ledger unavailable, so the task budget cannot be checked: {reason}; retry later"
    )]
    LedgerUnavailable {
        /// What the ledger said.
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
                | ModelError::DeadlineExceeded { .. }
                | ModelError::CircuitOpen { .. }
                | ModelError::LedgerUnavailable { .. }
        )
    }

    /// A stable snake_case name of the variant, for usage records and metrics.
    #[must_use]
    pub fn kind(&self) -> &'static str {
        match self {
            ModelError::NotConfigured { .. } => "not_configured",
            ModelError::Unreachable { .. } => "unreachable",
            ModelError::RateLimited { .. } => "rate_limited",
            ModelError::ServerError { .. } => "server_error",
            ModelError::Rejected { .. } => "rejected",
            ModelError::Blocked { .. } => "blocked",
            ModelError::MalformedReply { .. } => "malformed_reply",
            ModelError::DeadlineExceeded { .. } => "deadline_exceeded",
            ModelError::CircuitOpen { .. } => "circuit_open",
            ModelError::SchemaMismatch { .. } => "schema_mismatch",
            ModelError::BudgetExceeded { .. } => "budget_exceeded",
            ModelError::LedgerUnavailable { .. } => "ledger_unavailable",
            ModelError::ReplayMiss { .. } => "replay_miss",
        }
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
    /// A gateway in front of a provider MAY also return [`ModelError::DeadlineExceeded`],
    /// [`ModelError::CircuitOpen`], [`ModelError::BudgetExceeded`] and [`ModelError::LedgerUnavailable`],
    /// and MUST NOT have called the provider when it returns one of the last two.
    async fn complete(&self, request: &ModelRequest) -> Result<ModelReply, ModelError>;

    /// A short description for logs and `cadre status`, e.g. `gemini:gemini-3-flash-preview`.
    fn describe(&self) -> String;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_written_before_task_template_and_cache_existed_still_parse() {
        let old = r#"{"purpose": "plan", "system": "s", "messages": [{"role": "user", "text": "u"}],
                      "response_schema": null, "temperature": 0.0, "max_output_tokens": 10}"#;
        let request: ModelRequest = serde_json::from_str(old).unwrap();
        assert_eq!(
            (&request.task, &request.template, request.cache),
            (&None, &None, CachePolicy::Use)
        );
        // Defaults are not written back, so transcripts and artifacts keep their old shape.
        let written = serde_json::to_value(&request).unwrap();
        assert!(written.get("task").is_none() && written.get("cache").is_none(), "{written}");
        let bypass = ModelRequest { cache: CachePolicy::Bypass, ..request };
        assert_eq!(serde_json::to_value(&bypass).unwrap()["cache"], "bypass");
    }

    #[test]
    fn gateway_errors_say_whether_a_retry_can_help() {
        let retryable = [
            ModelError::DeadlineExceeded { after_ms: 1 },
            ModelError::CircuitOpen { provider: "p".into(), retry_in_ms: 1 },
            ModelError::LedgerUnavailable { reason: "r".into() },
        ];
        let final_ = [
            ModelError::SchemaMismatch { reason: "r".into(), raw: "x".into() },
            ModelError::BudgetExceeded { spent_micros: 1, limit_micros: 1 },
        ];
        assert!(retryable.iter().all(ModelError::is_retryable));
        assert!(!final_.iter().any(ModelError::is_retryable));
        let kinds: Vec<_> = retryable.iter().chain(&final_).map(ModelError::kind).collect();
        assert_eq!(
            kinds,
            [
                "deadline_exceeded",
                "circuit_open",
                "ledger_unavailable",
                "schema_mismatch",
                "budget_exceeded"
            ]
        );
    }
}
