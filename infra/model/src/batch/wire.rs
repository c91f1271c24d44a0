//! One batch item as a `GenerateContentRequest`, and its `GenerateContentResponse` back as the port's
//! answer: the same shapes and rules as the Gemini provider (`gemini/wire.rs`), whose functions are
//! private to its module. Tool calls, tool results and every `thoughtSignature` travel both ways
//! unchanged; a blocked prompt or answer is [`ModelError::Blocked`], an unusable tool call
//! [`ModelError::MalformedToolCall`], a reply with neither text nor calls [`ModelError::MalformedReply`].

use cadre_domain::ports::model::{
    ChatMessage, FinishReason, ModelError, ModelReply, ModelRequest, Role, TokenUsage, ToolCall,
    ToolMode,
};
use serde::Deserialize;
use serde_json::{json, Map, Value};

/// Finish reasons that mean the provider withheld the answer.
const BLOCKED_FINISH_REASONS: &[&str] = &[
    "SAFETY",
    "RECITATION",
    "PROHIBITED_CONTENT",
    "BLOCKLIST",
    "SPII",
    "IMAGE_SAFETY",
    "IMAGE_PROHIBITED_CONTENT",
    "IMAGE_RECITATION",
];

/// Finish reasons of a tool call the model got wrong.
const TOOL_CALL_FINISH_REASONS: &[&str] = &["MALFORMED_FUNCTION_CALL", "UNEXPECTED_TOOL_CALL"];

/// The `GenerateContentRequest` of one item, in camelCase as the API documents it.
pub(super) fn generate_request(request: &ModelRequest) -> Value {
    let mut body = Map::new();
    if !request.system.is_empty() {
        body.insert("systemInstruction".into(), json!({"parts": [{"text": request.system}]}));
    }
    body.insert("contents".into(), request.messages.iter().map(content).collect());
    if !request.tools.is_empty() {
        let declarations: Vec<Value> = request
            .tools
            .iter()
            .map(|t| json!({"name": t.name, "description": t.description, "parameters": t.parameters}))
            .collect();
        body.insert("tools".into(), json!([{"functionDeclarations": declarations}]));
        let mode = match request.tool_mode {
            ToolMode::Auto => "AUTO",
            ToolMode::Required => "ANY",
            ToolMode::None => "NONE",
        };
        body.insert("toolConfig".into(), json!({"functionCallingConfig": {"mode": mode}}));
    }
    let mut config = Map::new();
    if let Some(t) = request.temperature {
        config.insert("temperature".into(), json!(t));
    }
    if let Some(n) = request.max_output_tokens {
        config.insert("maxOutputTokens".into(), json!(n));
    }
    if let Some(schema) = &request.response_schema {
        config.insert("responseMimeType".into(), json!("application/json"));
        config.insert("responseSchema".into(), schema.clone());
    }
    if let Some(level) = request.thinking {
        config.insert("thinkingConfig".into(), json!({"thinkingLevel": level.name()}));
    }
    body.insert("generationConfig".into(), Value::Object(config));
    Value::Object(body)
}

fn content(message: &ChatMessage) -> Value {
    let mut parts = Vec::new();
    let text_part = (!message.text.is_empty() || message.thought_signature.is_some()).then(|| {
        let mut part = json!({"text": message.text});
        if let Some(signature) = &message.thought_signature {
            part["thoughtSignature"] = json!(signature);
        }
        part
    });
    let role = match message.role {
        Role::Model => {
            parts.extend(text_part);
            parts.extend(message.tool_calls.iter().map(|call| {
                let mut function_call = json!({"name": call.name, "args": call.args});
                if let Some(id) = &call.id {
                    function_call["id"] = json!(id);
                }
                let mut part = json!({"functionCall": function_call});
                if let Some(signature) = &call.thought_signature {
                    part["thoughtSignature"] = json!(signature);
                }
                part
            }));
            "model"
        }
        Role::User => {
            parts.extend(message.tool_results.iter().map(|result| {
                // `response` must be an object on the wire; anything else is wrapped.
                let response = if result.response.is_object() {
                    result.response.clone()
                } else {
                    json!({"result": result.response})
                };
                let mut function_response = json!({"name": result.name, "response": response});
                if let Some(id) = &result.id {
                    function_response["id"] = json!(id);
                }
                json!({"functionResponse": function_response})
            }));
            parts.extend(text_part);
            "user"
        }
    };
    if parts.is_empty() {
        parts.push(json!({"text": ""}));
    }
    json!({"role": role, "parts": parts})
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GenerateContentResponse {
    #[serde(default)]
    candidates: Vec<Candidate>,
    prompt_feedback: Option<PromptFeedback>,
    usage_metadata: Option<UsageMetadata>,
    model_version: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Candidate {
    content: Option<CandidateContent>,
    finish_reason: Option<String>,
    finish_message: Option<String>,
}

#[derive(Deserialize)]
struct CandidateContent {
    #[serde(default)]
    parts: Vec<Part>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Part {
    text: Option<String>,
    thought: Option<bool>,
    thought_signature: Option<String>,
    function_call: Option<FunctionCall>,
}

#[derive(Deserialize)]
struct FunctionCall {
    id: Option<String>,
    name: String,
    args: Option<Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PromptFeedback {
    block_reason: Option<String>,
    block_reason_message: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct UsageMetadata {
    prompt_token_count: Option<u64>,
    candidates_token_count: Option<u64>,
    cached_content_token_count: Option<u64>,
    thoughts_token_count: Option<u64>,
}

/// The tokens a response billed (also when its answer is an error) and the answer.
pub(super) fn interpret(
    response: Value,
    model: &str,
) -> (TokenUsage, Result<ModelReply, ModelError>) {
    let response: GenerateContentResponse = match serde_json::from_value(response) {
        Ok(response) => response,
        Err(e) => {
            let reason = format!("a batch response does not match GenerateContentResponse ({e})");
            return (TokenUsage::default(), Err(ModelError::MalformedReply { reason }));
        }
    };
    let usage = response.usage_metadata.as_ref().map_or_else(TokenUsage::default, |u| TokenUsage {
        input: u.prompt_token_count.unwrap_or(0),
        output: u.candidates_token_count.unwrap_or(0),
        cached: u.cached_content_token_count.unwrap_or(0),
        thinking: u.thoughts_token_count.unwrap_or(0),
    });
    (usage, answer(response, usage, model))
}

fn answer(
    response: GenerateContentResponse,
    usage: TokenUsage,
    model: &str,
) -> Result<ModelReply, ModelError> {
    if let Some(feedback) = &response.prompt_feedback {
        if let Some(reason) = &feedback.block_reason {
            let detail = feedback.block_reason_message.as_deref();
            return Err(ModelError::Blocked {
                reason: with_detail(&format!("prompt blocked: {reason}"), detail),
            });
        }
    }
    let Some(candidate) = response.candidates.into_iter().next() else {
        return Err(ModelError::MalformedReply {
            reason: "the reply has no candidates".to_owned(),
        });
    };
    let reason = candidate.finish_reason.as_deref().unwrap_or("FINISH_REASON_UNSPECIFIED");
    let detail = candidate.finish_message.as_deref();
    if BLOCKED_FINISH_REASONS.contains(&reason) {
        return Err(ModelError::Blocked {
            reason: with_detail(&format!("finish reason {reason}"), detail),
        });
    }
    if TOOL_CALL_FINISH_REASONS.contains(&reason) {
        return Err(ModelError::MalformedToolCall {
            finish: reason.to_owned(),
            message: detail
                .filter(|d| !d.is_empty())
                .unwrap_or("the model's function call does not match the declared tools")
                .to_owned(),
        });
    }
    let mut text = String::new();
    let mut thought_signature = None;
    let mut tool_calls = Vec::new();
    for part in candidate.content.map(|c| c.parts).unwrap_or_default() {
        if let Some(call) = part.function_call {
            let args = match call.args {
                None | Some(Value::Null) => Value::Object(Map::new()),
                Some(args @ Value::Object(_)) => args,
                Some(other) => {
                    return Err(ModelError::MalformedToolCall {
                        finish: "invalid_arguments".to_owned(),
                        message: format!(
                            "the arguments of {} are {other}, not a JSON object",
                            call.name
                        ),
                    })
                }
            };
            tool_calls.push(ToolCall {
                id: call.id,
                name: call.name,
                args,
                thought_signature: part.thought_signature,
            });
            continue;
        }
        if thought_signature.is_none() {
            thought_signature = part.thought_signature;
        }
        if part.thought != Some(true) {
            text.push_str(part.text.as_deref().unwrap_or(""));
        }
    }
    if text.is_empty() && tool_calls.is_empty() {
        let why = if reason == "MAX_TOKENS" {
            format!(
                "the output cap was reached before any text ({} thinking tokens); raise max_output_tokens",
                usage.thinking
            )
        } else {
            format!(
                "the first candidate has neither text nor function calls (finish reason {reason})"
            )
        };
        return Err(ModelError::MalformedReply { reason: why });
    }
    let finish = match reason {
        "STOP" => FinishReason::Stop,
        "MAX_TOKENS" => FinishReason::MaxTokens,
        other => FinishReason::Other(other.to_owned()),
    };
    Ok(ModelReply {
        text,
        usage,
        finish,
        model: response.model_version.unwrap_or_else(|| model.to_owned()),
        thought_signature,
        tool_calls,
    })
}

fn with_detail(reason: &str, detail: Option<&str>) -> String {
    match detail {
        Some(detail) if !detail.is_empty() => format!("{reason} ({detail})"),
        _ => reason.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cadre_domain::ports::model::{ThinkingLevel, ToolResult, ToolSpec};

    #[test]
    fn requests_carry_tools_signatures_and_settings() {
        let request = ModelRequest {
            system: "be brief".into(),
            messages: vec![
                ChatMessage::user("read it"),
                ChatMessage {
                    role: Role::Model,
                    text: String::new(),
                    thought_signature: None,
                    tool_calls: vec![ToolCall {
                        id: Some("c1".into()),
                        name: "read_file".into(),
                        args: json!({"path": "a.rs"}),
                        thought_signature: Some("sig-1".into()),
                    }],
                    tool_results: vec![],
                },
                ChatMessage::tool_results(vec![ToolResult {
                    id: Some("c1".into()),
                    name: "read_file".into(),
                    response: json!("fn main() {}"),
                }]),
            ],
            tools: vec![ToolSpec {
                name: "read_file".into(),
                description: "reads".into(),
                parameters: json!({"type": "object"}),
            }],
            tool_mode: ToolMode::Required,
            thinking: Some(ThinkingLevel::Low),
            max_output_tokens: Some(64),
            ..ModelRequest::default()
        };
        assert_eq!(
            generate_request(&request),
            json!({
                "systemInstruction": {"parts": [{"text": "be brief"}]},
                "contents": [
                    {"role": "user", "parts": [{"text": "read it"}]},
                    {"role": "model", "parts": [{"functionCall": {"id": "c1", "name": "read_file",
                        "args": {"path": "a.rs"}}, "thoughtSignature": "sig-1"}]},
                    {"role": "user", "parts": [{"functionResponse": {"id": "c1", "name": "read_file",
                        "response": {"result": "fn main() {}"}}}]},
                ],
                "tools": [{"functionDeclarations": [{"name": "read_file", "description": "reads",
                    "parameters": {"type": "object"}}]}],
                "toolConfig": {"functionCallingConfig": {"mode": "ANY"}},
                "generationConfig": {"maxOutputTokens": 64, "thinkingConfig": {"thinkingLevel": "low"}},
            })
        );
    }

    #[test]
    fn responses_keep_calls_and_signatures_and_usage_survives_errors() {
        let (usage, reply) = interpret(
            json!({"candidates": [{"content": {"parts": [
                {"text": "thinking", "thought": true},
                {"text": "Let me look.", "thoughtSignature": "sig-t"},
                {"functionCall": {"id": "c9", "name": "grep", "args": {"q": "x"}}, "thoughtSignature": "sig-c"},
            ]}, "finishReason": "STOP"}],
             "usageMetadata": {"promptTokenCount": 10, "candidatesTokenCount": 3, "thoughtsTokenCount": 5}}),
            "m",
        );
        let reply = reply.unwrap();
        assert_eq!(
            (reply.text.as_str(), reply.thought_signature.as_deref()),
            ("Let me look.", Some("sig-t"))
        );
        assert_eq!(reply.tool_calls[0].thought_signature.as_deref(), Some("sig-c"));
        assert_eq!(usage, TokenUsage { input: 10, output: 3, cached: 0, thinking: 5 });

        let (usage, blocked) = interpret(
            json!({"candidates": [{"finishReason": "SAFETY"}], "usageMetadata": {"promptTokenCount": 7}}),
            "m",
        );
        assert!(matches!(blocked, Err(ModelError::Blocked { .. })), "{blocked:?}");
        assert_eq!(usage.input, 7);
        let (_, bad_args) = interpret(
            json!({"candidates": [{"content": {"parts": [{"functionCall": {"name": "f", "args": [1]}}]},
                   "finishReason": "STOP"}]}),
            "m",
        );
        assert!(matches!(bad_args, Err(ModelError::MalformedToolCall { .. })), "{bad_args:?}");
    }
}
