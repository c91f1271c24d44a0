//! The model port: one request/response call to a language model.
//!
//! Providers (Gemini, OpenAI-compatible servers, record/replay) translate [`ModelRequest`] to their wire
//! format; the gateway in front of them adds limits, retries, caching and accounting.

use serde::{Deserialize, Serialize};

use crate::ids::TaskId;

/// Who said a turn of the conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// The person, or Cadre speaking for them (task, context, feedback, tool results).
    #[default]
    User,
    /// The model's earlier replies.
    Model,
}

/// One turn of the conversation.
///
/// A turn is text plus, for tool use, the calls the model made (model turns) or the results Cadre sends
/// back (user turns). The provider-opaque `thought_signature`s are kept so they can be sent back
/// unchanged, as Gemini 3 requires in multi-turn calls; fields absent from older transcripts default.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ChatMessage {
    /// Who said it.
    pub role: Role,
    /// What was said (may be empty in a turn that only calls tools).
    pub text: String,
    /// The signature the provider attached to this turn's text, echoed back verbatim.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thought_signature: Option<String>,
    /// Tools the model asked to call in this turn, in its order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
    /// Answers to the previous turn's tool calls, in the order of the calls.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_results: Vec<ToolResult>,
}

impl ChatMessage {
    /// A user turn.
    #[must_use]
    pub fn user(text: impl Into<String>) -> Self {
        ChatMessage { role: Role::User, text: text.into(), ..ChatMessage::default() }
    }

    /// A model turn.
    #[must_use]
    pub fn model(text: impl Into<String>) -> Self {
        ChatMessage { role: Role::Model, text: text.into(), ..ChatMessage::default() }
    }

    /// The model turn a reply becomes in the transcript: its text, signature and tool calls, unchanged.
    #[must_use]
    pub fn from_reply(reply: &ModelReply) -> Self {
        ChatMessage {
            role: Role::Model,
            text: reply.text.clone(),
            thought_signature: reply.thought_signature.clone(),
            tool_calls: reply.tool_calls.clone(),
            tool_results: Vec::new(),
        }
    }

    /// A user turn answering tool calls.
    #[must_use]
    pub fn tool_results(results: Vec<ToolResult>) -> Self {
        ChatMessage { role: Role::User, tool_results: results, ..ChatMessage::default() }
    }
}

/// A tool the model may call, declared with a flat JSON schema for its arguments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolSpec {
    /// The name the model calls it by (`read_file`).
    pub name: String,
    /// What it does and when to use it, for the model.
    pub description: String,
    /// JSON schema (OpenAPI subset) of its arguments object.
    pub parameters: serde_json::Value,
}

/// A call the model asked for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    /// The provider's call id (OpenAI `tool_call_id`, Gemini `id`), echoed in the result; absent when
    /// the provider gives none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The tool's name, as the model spelled it (it may name no declared tool).
    pub name: String,
    /// The arguments object.
    pub args: serde_json::Value,
    /// The signature the provider attached to this call, echoed back verbatim.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thought_signature: Option<String>,
}

/// The answer to one [`ToolCall`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolResult {
    /// The call's id, when it had one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The tool's name, as in the call.
    pub name: String,
    /// The result object (an `error` field when the call failed).
    pub response: serde_json::Value,
}

/// Whether and how the model may call tools.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ToolMode {
    /// The model decides between text and calls.
    #[default]
    Auto,
    /// The model must call a tool.
    Required,
    /// The model must not call tools (even when some are declared).
    None,
}

impl ToolMode {
    /// Whether this is the default, so requests serialize without the field.
    #[must_use]
    pub fn is_auto(&self) -> bool {
        *self == ToolMode::Auto
    }
}

/// How much the model may think before answering (Gemini 3 `thinkingLevel`); mapped to the nearest
/// setting by providers that have another scale, ignored by those with none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ThinkingLevel {
    /// As little as the model allows.
    Minimal,
    /// Little.
    Low,
    /// Some.
    Medium,
    /// As much as it needs.
    High,
}

impl ThinkingLevel {
    /// The lowercase name used on the wire and the command line.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            ThinkingLevel::Minimal => "minimal",
            ThinkingLevel::Low => "low",
            ThinkingLevel::Medium => "medium",
            ThinkingLevel::High => "high",
        }
    }

    /// The level named `name` (as [`ThinkingLevel::name`] writes it), if any.
    #[must_use]
    pub fn parse(name: &str) -> Option<ThinkingLevel> {
        [ThinkingLevel::Minimal, ThinkingLevel::Low, ThinkingLevel::Medium, ThinkingLevel::High]
            .into_iter()
            .find(|level| level.name().eq_ignore_ascii_case(name))
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
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
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
    /// Tools the model may call; none when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<ToolSpec>,
    /// Whether it must, may or must not call them.
    #[serde(default, skip_serializing_if = "ToolMode::is_auto")]
    pub tool_mode: ToolMode,
    /// How much the model may think; the provider's default when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thinking: Option<ThinkingLevel>,
    /// The task's budget in micro-dollars, checked by the gateway before the call (the deployment's
    /// default when absent). Describes the call, not the answer: not part of cache or replay keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget_micros: Option<u64>,
    /// The team charged (for accounting and its daily budget). Describes the call, not the answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team: Option<String>,
}

impl ModelRequest {
    /// A request from `purpose` with a system instruction and a conversation; everything else default.
    #[must_use]
    pub fn new(
        purpose: impl Into<String>,
        system: impl Into<String>,
        messages: Vec<ChatMessage>,
    ) -> ModelRequest {
        ModelRequest {
            purpose: purpose.into(),
            system: system.into(),
            messages,
            ..ModelRequest::default()
        }
    }
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
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// A natural end (including a turn that ends in tool calls).
    #[default]
    Stop,
    /// The output hit the token cap; the text is cut off.
    MaxTokens,
    /// Anything else the provider named (kept verbatim).
    Other(String),
}

/// The model's answer.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ModelReply {
    /// The reply's text (the JSON text for structured calls); may be empty when it calls tools.
    pub text: String,
    /// Tokens used.
    pub usage: TokenUsage,
    /// Why it stopped.
    pub finish: FinishReason,
    /// The model id that answered.
    pub model: String,
    /// The signature the provider attached to the text, to be echoed back in the next turn.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thought_signature: Option<String>,
    /// Tools the model asked to call, in its order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
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
    /// The model tried to call a tool but the call was unusable (Gemini `MALFORMED_FUNCTION_CALL` or
    /// `UNEXPECTED_TOOL_CALL`, arguments that are not a JSON object): a failed turn the caller retries
    /// with a corrective message, never a success.
    #[error("the model made an unusable tool call ({finish}): {message}; the turn is retried with a correction")]
    MalformedToolCall {
        /// The provider's finish reason, or `invalid_arguments`.
        finish: String,
        /// What the provider said, or what was wrong with the arguments.
        message: String,
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
    /// The team's budget for today (UTC) cannot cover this call's worst case; the call was not made.
    #[error("team {team}'s daily budget exceeded: {spent_micros} of {limit_micros} micro-dollars are spent or reserved today (UTC); wait for tomorrow or raise the team's daily budget")]
    TeamBudgetExceeded {
        /// The team.
        team: String,
        /// What the team has spent today, plus the worst case of its calls in flight.
        spent_micros: u64,
        /// The team's daily budget.
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
            ModelError::MalformedToolCall { .. } => "malformed_tool_call",
            ModelError::DeadlineExceeded { .. } => "deadline_exceeded",
            ModelError::CircuitOpen { .. } => "circuit_open",
            ModelError::SchemaMismatch { .. } => "schema_mismatch",
            ModelError::BudgetExceeded { .. } => "budget_exceeded",
            ModelError::TeamBudgetExceeded { .. } => "team_budget_exceeded",
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
    /// documented format or has neither text nor tool calls. It MUST NOT return a partial reply as
    /// success, except a reply cut at the token cap, which is returned with [`FinishReason::MaxTokens`].
    /// A provider that supports tools MUST return every call of a turn (parallel calls included) and
    /// every `thought_signature` exactly as received, and MUST send them back unchanged when they
    /// appear in a request's messages.
    /// A gateway in front of a provider MAY also return [`ModelError::DeadlineExceeded`],
    /// [`ModelError::CircuitOpen`], [`ModelError::BudgetExceeded`] and [`ModelError::LedgerUnavailable`],
    /// and MUST NOT have called the provider when it returns one of the last two.
    async fn complete(&self, request: &ModelRequest) -> Result<ModelReply, ModelError>;

    /// Like [`Model::complete`], but hands each piece of text to `on_text` as it is generated, so a
    /// person can watch long work; the returned reply is the whole answer, accounted once.
    ///
    /// # Errors
    /// As [`Model::complete`]. A stream that breaks before its end MUST be an error (e.g.
    /// [`ModelError::Unreachable`]), never a partial reply; the text already handed out is then void.
    async fn stream(
        &self,
        request: &ModelRequest,
        on_text: &(dyn for<'t> Fn(&'t str) + Send + Sync),
    ) -> Result<ModelReply, ModelError> {
        let reply = self.complete(request).await?;
        on_text(&reply.text);
        Ok(reply)
    }

    /// How many input tokens `request` would be billed, for budget checks before a call. The default
    /// is a local estimate (4 bytes a token), used by providers without a counting endpoint.
    ///
    /// # Errors
    /// As [`Model::complete`], when the provider's counting endpoint fails.
    async fn count_tokens(&self, request: &ModelRequest) -> Result<u64, ModelError> {
        Ok(estimate_input_tokens(request))
    }

    /// A short description for logs and `cadre status`, e.g. `gemini:gemini-3-flash-preview`.
    fn describe(&self) -> String;
}

/// A provider-independent estimate of a request's input tokens: 4 bytes a token over the system
/// instruction, every turn's text, tool calls and results, and the tool declarations. Within ~20% of
/// real tokenizers on code and English, which is enough to reserve budget before a call.
#[must_use]
pub fn estimate_input_tokens(request: &ModelRequest) -> u64 {
    let json_len = |v: &serde_json::Value| v.to_string().len();
    let mut bytes = request.system.len();
    for m in &request.messages {
        bytes += m.text.len() + 8;
        bytes += m.tool_calls.iter().map(|c| c.name.len() + json_len(&c.args)).sum::<usize>();
        bytes += m.tool_results.iter().map(|r| r.name.len() + json_len(&r.response)).sum::<usize>();
    }
    bytes += request
        .tools
        .iter()
        .map(|t| t.name.len() + t.description.len() + json_len(&t.parameters))
        .sum::<usize>();
    bytes += request.response_schema.as_ref().map_or(0, json_len);
    u64::try_from(bytes.div_ceil(4)).unwrap_or(u64::MAX)
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
