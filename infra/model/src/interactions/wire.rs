//! The Interactions API's JSON, both ways, and the rules that turn an interaction into the port's
//! answer; shared by the unary call and the stream.

use cadre_domain::ports::model::{
    ChatMessage, FinishReason, ModelError, ModelReply, ModelRequest, Role, TokenUsage, ToolCall,
    ToolMode,
};
use serde::Deserialize;
use serde_json::{json, Map, Value};

/// Words in an error's code or message that mean the provider withheld the answer.
const BLOCK_WORDS: &[&str] = &["SAFETY", "BLOCK", "RECITATION", "PROHIBITED", "SPII"];

/// Codes of an error the caller caused.
const CALLER_CODES: &[&str] = &[
    "INVALID_ARGUMENT",
    "FAILED_PRECONDITION",
    "NOT_FOUND",
    "PERMISSION_DENIED",
    "UNAUTHENTICATED",
    "OUT_OF_RANGE",
];

/// The `POST /v1beta/interactions` body for `request`.
pub(super) fn request_body(
    model: &str,
    request: &ModelRequest,
    store: bool,
    stream: bool,
) -> Value {
    let mut body = Map::new();
    body.insert("model".into(), json!(model));
    body.insert("input".into(), Value::Array(input_steps(&request.messages)));
    if !request.system.is_empty() {
        body.insert("system_instruction".into(), json!(request.system));
    }
    if !request.tools.is_empty() {
        let tools = request
            .tools
            .iter()
            .map(|t| {
                json!({"type": "function", "name": t.name, "description": t.description,
                       "parameters": t.parameters})
            })
            .collect();
        body.insert("tools".into(), Value::Array(tools));
    }
    let mut config = Map::new();
    if let Some(t) = request.temperature {
        config.insert("temperature".into(), json!(t));
    }
    if let Some(n) = request.max_output_tokens {
        config.insert("max_output_tokens".into(), json!(n));
    }
    if let Some(level) = request.thinking {
        config.insert("thinking_level".into(), json!(level.name()));
    }
    if !request.tools.is_empty() {
        match request.tool_mode {
            ToolMode::Auto => {}
            ToolMode::Required => {
                config.insert("tool_choice".into(), json!("any"));
            }
            ToolMode::None => {
                config.insert("tool_choice".into(), json!("none"));
            }
        }
    }
    if !config.is_empty() {
        body.insert("generation_config".into(), Value::Object(config));
    }
    if let Some(schema) = &request.response_schema {
        body.insert(
            "response_format".into(),
            json!({"type": "text", "mime_type": "application/json", "schema": schema}),
        );
    }
    body.insert("store".into(), json!(store));
    if stream {
        body.insert("stream".into(), json!(true));
    }
    Value::Object(body)
}

/// The conversation as input steps, oldest first.
fn input_steps(messages: &[ChatMessage]) -> Vec<Value> {
    let mut steps = Vec::new();
    for message in messages {
        match message.role {
            Role::User => {
                for result in &message.tool_results {
                    steps.push(json!({"type": "function_result",
                        "call_id": result.id.as_deref().unwrap_or(&result.name),
                        "name": result.name, "result": result.response}));
                }
                if !message.text.is_empty() || message.tool_results.is_empty() {
                    steps.push(json!({"type": "user_input",
                        "content": [{"type": "text", "text": message.text}]}));
                }
            }
            Role::Model => {
                if let Some(signature) = &message.thought_signature {
                    steps.push(json!({"type": "thought", "signature": signature}));
                }
                if !message.text.is_empty() {
                    steps.push(json!({"type": "model_output",
                        "content": [{"type": "text", "text": message.text}]}));
                }
                for call in &message.tool_calls {
                    let mut step = json!({"type": "function_call",
                        "id": call.id.as_deref().unwrap_or(&call.name),
                        "name": call.name, "arguments": call.args});
                    if let Some(signature) = &call.thought_signature {
                        step["signature"] = json!(signature);
                    }
                    steps.push(step);
                }
            }
        }
    }
    steps
}

/// An Interaction resource, as far as the port needs it (steps schema, or the legacy `outputs`).
#[derive(Debug, Default, Deserialize)]
pub(super) struct Interaction {
    pub(super) status: Option<String>,
    pub(super) model: Option<String>,
    pub(super) steps: Option<Vec<Value>>,
    pub(super) outputs: Option<Vec<Value>>,
    pub(super) usage: Option<Usage>,
    pub(super) error: Option<ErrorBody>,
}

/// Token counts; `total_output_tokens` excludes thoughts, as in the quickstart's own numbers.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
pub(super) struct Usage {
    total_input_tokens: Option<u64>,
    total_output_tokens: Option<u64>,
    total_cached_tokens: Option<u64>,
    total_thought_tokens: Option<u64>,
    total_tool_use_tokens: Option<u64>,
}

impl Usage {
    /// The port's usage: tool-use prompt tokens (server-side tool results) count as input.
    pub(super) fn tokens(self) -> TokenUsage {
        TokenUsage {
            input: self.total_input_tokens.unwrap_or(0) + self.total_tool_use_tokens.unwrap_or(0),
            output: self.total_output_tokens.unwrap_or(0),
            cached: self.total_cached_tokens.unwrap_or(0),
            thinking: self.total_thought_tokens.unwrap_or(0),
        }
    }
}

/// An `error` object: `{"code": "…" | n, "message": "…"}`.
#[derive(Debug, Clone, Default, Deserialize)]
pub(super) struct ErrorBody {
    code: Option<Value>,
    message: Option<String>,
}

/// One piece of a model turn, from a step, an output or a streamed step.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Item {
    Text(String),
    Thought { signature: Option<String> },
    Call { id: Option<String>, name: String, arguments: Value, signature: Option<String> },
}

impl ErrorBody {
    /// The port's error for a failure reported inside a 2xx answer.
    pub(super) fn to_model_error(&self) -> ModelError {
        let code = match &self.code {
            Some(Value::String(s)) => s.to_ascii_uppercase(),
            Some(Value::Number(n)) => n.to_string(),
            _ => String::new(),
        };
        let message = self.message.clone().unwrap_or_else(|| "no message".to_owned());
        let described =
            if code.is_empty() { message.clone() } else { format!("{code}: {message}") };
        let upper = described.to_ascii_uppercase();
        let status = code.parse::<u16>().ok();
        if code.contains("RESOURCE_EXHAUSTED") || status == Some(429) {
            return ModelError::RateLimited { retry_after_ms: None };
        }
        if BLOCK_WORDS.iter().any(|w| upper.contains(w)) {
            return ModelError::Blocked { reason: described };
        }
        match status {
            Some(s @ 400..=499) => ModelError::Rejected { status: s, message: described },
            Some(s @ 500..=599) => ModelError::ServerError { status: s, message: described },
            _ if CALLER_CODES.iter().any(|c| code.contains(c)) => {
                ModelError::Rejected { status: 400, message: described }
            }
            _ => ModelError::ServerError { status: 500, message: described },
        }
    }
}

/// The model's part of a unary answer: steps after the last echoed input (the new schema may echo the
/// input first), or the legacy `outputs`. A `model_output` step that carries an `error` fails the turn.
pub(super) fn items(interaction: &mut Interaction) -> Result<Vec<Item>, ModelError> {
    if let Some(steps) = interaction.steps.take() {
        let start = steps
            .iter()
            .rposition(|s| matches!(kind(s), "user_input" | "function_result"))
            .map_or(0, |i| i + 1);
        let mut items = Vec::new();
        for step in &steps[start..] {
            if let Some(error) = step.get("error").filter(|e| !e.is_null()) {
                let error: ErrorBody = serde_json::from_value(error.clone()).unwrap_or_default();
                return Err(error.to_model_error());
            }
            items.extend(item(step, "content"));
        }
        return Ok(items);
    }
    let outputs = interaction.outputs.take().unwrap_or_default();
    Ok(outputs.iter().filter_map(|o| item(o, "")).collect())
}

fn kind(value: &Value) -> &str {
    value.get("type").and_then(Value::as_str).unwrap_or("")
}

fn text_of(value: &Value) -> String {
    value.get("text").and_then(Value::as_str).unwrap_or("").to_owned()
}

/// A step (`content_field` = `content`) or a legacy output (the item itself is the content).
fn item(value: &Value, content_field: &str) -> Option<Item> {
    let signature = value.get("signature").and_then(Value::as_str).map(str::to_owned);
    match kind(value) {
        "model_output" => {
            let content = value.get(content_field).and_then(Value::as_array);
            let text: String =
                content.into_iter().flatten().filter(|c| kind(c) == "text").map(text_of).collect();
            Some(Item::Text(text))
        }
        "text" => Some(Item::Text(text_of(value))),
        "thought" => Some(Item::Thought { signature }),
        "function_call" => Some(Item::Call {
            id: value.get("id").and_then(Value::as_str).map(str::to_owned),
            name: value.get("name").and_then(Value::as_str).unwrap_or("").to_owned(),
            arguments: value.get("arguments").cloned().unwrap_or(Value::Null),
            signature,
        }),
        _ => None,
    }
}

/// The port's answer from a finished interaction's status, error, items and usage.
pub(super) fn assemble(
    status: Option<&str>,
    error: Option<&ErrorBody>,
    items: Vec<Item>,
    usage: TokenUsage,
    model: String,
) -> Result<ModelReply, ModelError> {
    let status = status.unwrap_or("completed");
    if status == "failed" {
        return Err(error.map_or_else(
            || ModelError::ServerError {
                status: 500,
                message: "the interaction failed without an error".to_owned(),
            },
            ErrorBody::to_model_error,
        ));
    }
    let mut text = String::new();
    let mut thought_signature = None;
    let mut tool_calls = Vec::new();
    for item in items {
        match item {
            Item::Text(t) => text.push_str(&t),
            Item::Thought { signature } => {
                if signature.is_some() {
                    thought_signature = signature;
                }
            }
            Item::Call { id, name, arguments, signature } => {
                let args = match arguments {
                    Value::Null => Value::Object(Map::new()),
                    args @ Value::Object(_) => args,
                    other => {
                        return Err(ModelError::MalformedToolCall {
                            finish: "invalid_arguments".to_owned(),
                            message: format!(
                                "the arguments of {name} are {other}, not a JSON object"
                            ),
                        })
                    }
                };
                tool_calls.push(ToolCall { id, name, args, thought_signature: signature });
            }
        }
    }
    let finish = match status {
        "completed" | "requires_action" => FinishReason::Stop,
        "incomplete" => FinishReason::MaxTokens,
        other => {
            return Err(ModelError::MalformedReply {
                reason: format!(
                    "the interaction ended with status {other:?}, not completed; \
                     no background or cancelled interactions are expected here"
                ),
            })
        }
    };
    if text.is_empty() && tool_calls.is_empty() {
        let reason = if finish == FinishReason::MaxTokens {
            format!(
                "the output cap was reached before any text ({} thinking tokens); raise max_output_tokens",
                usage.thinking
            )
        } else {
            format!("the interaction (status {status}) has neither text nor function calls")
        };
        return Err(ModelError::MalformedReply { reason });
    }
    Ok(ModelReply { text, usage, finish, model, thought_signature, tool_calls })
}

#[cfg(test)]
mod tests {
    use super::*;
    use cadre_domain::ports::model::{ThinkingLevel, ToolResult, ToolSpec};

    #[test]
    fn requests_are_snake_case_input_steps_with_signatures_sent_back() {
        let request = ModelRequest {
            system: "be terse".into(),
            messages: vec![
                ChatMessage::user("fix it"),
                ChatMessage {
                    role: Role::Model,
                    text: "Looking.".into(),
                    thought_signature: Some("sig-t".into()),
                    tool_calls: vec![ToolCall {
                        id: Some("c1".into()),
                        name: "read_file".into(),
                        args: json!({"path": "a.rs"}),
                        thought_signature: Some("sig-c".into()),
                    }],
                    tool_results: vec![],
                },
                ChatMessage::tool_results(vec![ToolResult {
                    id: Some("c1".into()),
                    name: "read_file".into(),
                    response: json!({"content": "fn a() {}"}),
                }]),
            ],
            tools: vec![ToolSpec {
                name: "read_file".into(),
                description: "reads a file".into(),
                parameters: json!({"type": "object"}),
            }],
            tool_mode: ToolMode::Required,
            temperature: Some(0.0),
            max_output_tokens: Some(100),
            thinking: Some(ThinkingLevel::High),
            response_schema: Some(json!({"type": "object"})),
            ..ModelRequest::default()
        };
        assert_eq!(
            request_body("gemini-3-flash-preview", &request, false, true),
            json!({
                "model": "gemini-3-flash-preview",
                "input": [
                    {"type": "user_input", "content": [{"type": "text", "text": "fix it"}]},
                    {"type": "thought", "signature": "sig-t"},
                    {"type": "model_output", "content": [{"type": "text", "text": "Looking."}]},
                    {"type": "function_call", "id": "c1", "name": "read_file",
                     "arguments": {"path": "a.rs"}, "signature": "sig-c"},
                    {"type": "function_result", "call_id": "c1", "name": "read_file",
                     "result": {"content": "fn a() {}"}},
                ],
                "system_instruction": "be terse",
                "tools": [{"type": "function", "name": "read_file", "description": "reads a file",
                           "parameters": {"type": "object"}}],
                "generation_config": {"temperature": 0.0, "max_output_tokens": 100,
                                      "thinking_level": "high", "tool_choice": "any"},
                "response_format": {"type": "text", "mime_type": "application/json",
                                    "schema": {"type": "object"}},
                "store": false,
                "stream": true,
            })
        );
    }

    #[test]
    fn echoed_input_steps_are_skipped_and_legacy_outputs_read() {
        let mut steps: Interaction = serde_json::from_value(json!({"steps": [
            {"type": "user_input", "content": [{"type": "text", "text": "echo"}]},
            {"type": "thought", "signature": "s"},
            {"type": "model_output", "content": [{"type": "text", "text": "Hi"}]},
        ]}))
        .unwrap();
        assert_eq!(
            items(&mut steps).unwrap(),
            [Item::Thought { signature: Some("s".into()) }, Item::Text("Hi".into())]
        );
        let mut legacy: Interaction = serde_json::from_value(json!({"outputs": [
            {"type": "thought", "signature": "s"}, {"type": "text", "text": "Hi"}]}))
        .unwrap();
        assert_eq!(items(&mut legacy).unwrap().len(), 2);
    }

    #[test]
    fn errors_in_answers_are_classified() {
        let error = |code: Value| {
            ErrorBody { code: Some(code), message: Some("m".into()) }.to_model_error()
        };
        assert_eq!(
            error(json!("RESOURCE_EXHAUSTED")),
            ModelError::RateLimited { retry_after_ms: None }
        );
        assert!(matches!(error(json!("SAFETY")), ModelError::Blocked { .. }));
        assert!(matches!(
            error(json!("invalid_argument")),
            ModelError::Rejected { status: 400, .. }
        ));
        assert!(matches!(error(json!(503)), ModelError::ServerError { status: 503, .. }));
        assert!(matches!(error(json!("INTERNAL")), ModelError::ServerError { status: 500, .. }));
    }
}
