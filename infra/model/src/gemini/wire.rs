//! The Gemini wire format: `GenerateContentRequest` built from a [`ModelRequest`], and a
//! `GenerateContentResponse` (whole, or merged from stream frames) turned into a [`ModelReply`].
//!
//! Tool use maps one to one: declarations go in `tools[0].functionDeclarations`, the mode in
//! `toolConfig.functionCallingConfig.mode`, a model turn's calls become `functionCall` parts after its
//! text, and a user turn's results become `functionResponse` parts before its text. Every
//! `thoughtSignature` is kept as the opaque string it arrived as and sent back on the part it came on.

use std::borrow::Cow;

use cadre_domain::ports::model::{
    ChatMessage, FinishReason, ModelError, ModelReply, ModelRequest, Role, TokenUsage, ToolCall,
    ToolMode,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Finish reasons that mean the provider withheld the answer.
pub(super) const BLOCKED_FINISH_REASONS: &[&str] = &[
    "SAFETY",
    "RECITATION",
    "PROHIBITED_CONTENT",
    "BLOCKLIST",
    "SPII",
    "IMAGE_SAFETY",
    "IMAGE_PROHIBITED_CONTENT",
    "IMAGE_RECITATION",
];

/// Finish reasons that mean the model tried to call a tool and the call was unusable.
const TOOL_CALL_FINISH_REASONS: &[&str] =
    &["MALFORMED_FUNCTION_CALL", "UNEXPECTED_TOOL_CALL", "TOO_MANY_TOOL_CALLS"];

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct GenerateContentRequest<'a> {
    /// Set (with system instruction, tools and the cached turns left out) when a context cache holds
    /// the request's prefix.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) cached_content: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) system_instruction: Option<Content<'a>>,
    pub(super) contents: Vec<Content<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) tools: Option<[Tools<'a>; 1]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) tool_config: Option<ToolConfig>,
    pub(super) generation_config: GenerationConfig<'a>,
}

#[derive(Serialize)]
pub(super) struct Content<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<&'static str>,
    parts: Vec<PartOut<'a>>,
}

#[derive(Serialize, Default)]
#[serde(rename_all = "camelCase")]
struct PartOut<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    text: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    function_call: Option<FunctionCallOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    function_response: Option<FunctionResponseOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    thought_signature: Option<&'a str>,
}

#[derive(Serialize)]
struct FunctionCallOut<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    name: &'a str,
    args: &'a Value,
}

#[derive(Serialize)]
struct FunctionResponseOut<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    name: &'a str,
    response: Cow<'a, Value>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Tools<'a> {
    function_declarations: Vec<FunctionDeclaration<'a>>,
}

#[derive(Serialize)]
struct FunctionDeclaration<'a> {
    name: &'a str,
    description: &'a str,
    parameters: &'a Value,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ToolConfig {
    function_calling_config: FunctionCallingConfig,
}

#[derive(Serialize)]
struct FunctionCallingConfig {
    mode: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct GenerationConfig<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_output_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response_mime_type: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response_schema: Option<&'a Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    thinking_config: Option<ThinkingConfig>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ThinkingConfig {
    thinking_level: &'static str,
}

/// The parts of a request that a context cache can hold: the system instruction, the tools and their
/// mode. `None` fields are left out.
pub(super) struct Preamble<'a> {
    pub(super) system_instruction: Option<Content<'a>>,
    pub(super) tools: Option<[Tools<'a>; 1]>,
    pub(super) tool_config: Option<ToolConfig>,
}

pub(super) fn preamble(request: &ModelRequest) -> Preamble<'_> {
    let system_instruction = (!request.system.is_empty()).then(|| Content {
        role: None,
        parts: vec![PartOut { text: Some(&request.system), ..PartOut::default() }],
    });
    let (tools, tool_config) = if request.tools.is_empty() {
        (None, None)
    } else {
        let declarations = request
            .tools
            .iter()
            .map(|t| FunctionDeclaration {
                name: &t.name,
                description: &t.description,
                parameters: &t.parameters,
            })
            .collect();
        let mode = match request.tool_mode {
            ToolMode::Auto => "AUTO",
            ToolMode::Required => "ANY",
            ToolMode::None => "NONE",
        };
        (
            Some([Tools { function_declarations: declarations }]),
            Some(ToolConfig { function_calling_config: FunctionCallingConfig { mode } }),
        )
    };
    Preamble { system_instruction, tools, tool_config }
}

/// The turns as `contents`, in order.
pub(super) fn contents(messages: &[ChatMessage]) -> Vec<Content<'_>> {
    messages.iter().map(content).collect()
}

fn content(message: &ChatMessage) -> Content<'_> {
    let mut parts = Vec::new();
    let text_part =
        (!message.text.is_empty() || message.thought_signature.is_some()).then(|| PartOut {
            text: Some(&message.text),
            thought_signature: message.thought_signature.as_deref(),
            ..PartOut::default()
        });
    match message.role {
        Role::Model => {
            parts.extend(text_part);
            parts.extend(message.tool_calls.iter().map(|call| PartOut {
                function_call: Some(FunctionCallOut {
                    id: call.id.as_deref(),
                    name: &call.name,
                    args: &call.args,
                }),
                thought_signature: call.thought_signature.as_deref(),
                ..PartOut::default()
            }));
        }
        Role::User => {
            parts.extend(message.tool_results.iter().map(|result| PartOut {
                function_response: Some(FunctionResponseOut {
                    id: result.id.as_deref(),
                    name: &result.name,
                    // `response` must be an object on the wire; anything else is wrapped.
                    response: if result.response.is_object() {
                        Cow::Borrowed(&result.response)
                    } else {
                        Cow::Owned(serde_json::json!({"result": result.response}))
                    },
                }),
                ..PartOut::default()
            }));
            parts.extend(text_part);
        }
    }
    if parts.is_empty() {
        // An empty turn still needs one part.
        parts.push(PartOut { text: Some(""), ..PartOut::default() });
    }
    let role = match message.role {
        Role::User => "user",
        Role::Model => "model",
    };
    Content { role: Some(role), parts }
}

pub(super) fn generation_config(request: &ModelRequest) -> GenerationConfig<'_> {
    let schema = request.response_schema.as_ref();
    GenerationConfig {
        temperature: request.temperature,
        max_output_tokens: request.max_output_tokens,
        response_mime_type: schema.map(|_| "application/json"),
        response_schema: schema,
        thinking_config: request
            .thinking
            .map(|level| ThinkingConfig { thinking_level: level.name() }),
    }
}

/// The whole request, without a context cache.
pub(crate) fn generate_request(request: &ModelRequest) -> GenerateContentRequest<'_> {
    let Preamble { system_instruction, tools, tool_config } = preamble(request);
    GenerateContentRequest {
        cached_content: None,
        system_instruction,
        contents: contents(&request.messages),
        tools,
        tool_config,
        generation_config: generation_config(request),
    }
}

/// The request with its first `cached_turns` turns, system instruction and tools held by the cached
/// content `name` (the API refuses a request that repeats them).
pub(super) fn cached_request<'a>(
    request: &'a ModelRequest,
    name: &'a str,
    cached_turns: usize,
) -> GenerateContentRequest<'a> {
    GenerateContentRequest {
        cached_content: Some(name),
        system_instruction: None,
        contents: contents(request.messages.get(cached_turns..).unwrap_or_default()),
        tools: None,
        tool_config: None,
        generation_config: generation_config(request),
    }
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub(crate) struct GenerateContentResponse {
    #[serde(default)]
    pub(super) candidates: Vec<Candidate>,
    pub(super) prompt_feedback: Option<PromptFeedback>,
    pub(super) usage_metadata: Option<UsageMetadata>,
    pub(super) model_version: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub(super) struct Candidate {
    pub(super) content: Option<CandidateContent>,
    pub(super) finish_reason: Option<String>,
    pub(super) finish_message: Option<String>,
}

#[derive(Deserialize, Default)]
pub(super) struct CandidateContent {
    #[serde(default)]
    pub(super) parts: Vec<Part>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Part {
    pub(super) text: Option<String>,
    thought: Option<bool>,
    thought_signature: Option<String>,
    function_call: Option<FunctionCallIn>,
}

impl Part {
    /// Text the person should see: not a thought summary.
    pub(super) fn visible_text(&self) -> Option<&str> {
        (self.thought != Some(true)).then_some(self.text.as_deref()).flatten()
    }
}

#[derive(Deserialize)]
struct FunctionCallIn {
    id: Option<String>,
    name: String,
    args: Option<Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct PromptFeedback {
    pub(super) block_reason: Option<String>,
    block_reason_message: Option<String>,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "camelCase")]
pub(super) struct UsageMetadata {
    prompt_token_count: Option<u64>,
    candidates_token_count: Option<u64>,
    cached_content_token_count: Option<u64>,
    thoughts_token_count: Option<u64>,
}

/// The tokens a reply billed; a reply whose answer is an error was billed all the same.
pub(crate) fn billed(reply: &GenerateContentResponse) -> TokenUsage {
    reply.usage_metadata.map_or_else(TokenUsage::default, |u| TokenUsage {
        input: u.prompt_token_count.unwrap_or(0),
        output: u.candidates_token_count.unwrap_or(0),
        cached: u.cached_content_token_count.unwrap_or(0),
        thinking: u.thoughts_token_count.unwrap_or(0),
    })
}

/// Turns a parsed reply into the port's answer, following its `# Errors` sentences.
pub(crate) fn interpret(
    reply: GenerateContentResponse,
    model: &str,
) -> Result<ModelReply, ModelError> {
    if let Some(error) = blocked_prompt(reply.prompt_feedback.as_ref()) {
        return Err(error);
    }
    let usage = billed(&reply);
    let Some(candidate) = reply.candidates.into_iter().next() else {
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
    let parts = candidate.content.map(|c| c.parts).unwrap_or_default();
    let mut text = String::new();
    let mut thought_signature = None;
    let mut tool_calls = Vec::new();
    for part in parts {
        if let Some(call) = part.function_call {
            let args = match call.args {
                None | Some(Value::Null) => Value::Object(serde_json::Map::new()),
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
            thought_signature.clone_from(&part.thought_signature);
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
        model: reply.model_version.unwrap_or_else(|| model.to_owned()),
        thought_signature,
        tool_calls,
    })
}

/// A prompt the provider refused to answer at all.
pub(super) fn blocked_prompt(feedback: Option<&PromptFeedback>) -> Option<ModelError> {
    let feedback = feedback?;
    let reason = feedback.block_reason.as_deref()?;
    Some(ModelError::Blocked {
        reason: with_detail(
            &format!("prompt blocked: {reason}"),
            feedback.block_reason_message.as_deref(),
        ),
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
    use serde_json::json;

    #[test]
    fn request_wire_shape() {
        let request = ModelRequest {
            purpose: "plan".into(),
            system: "be brief".into(),
            messages: vec![
                ChatMessage::user("hi"),
                ChatMessage::model("hello"),
                ChatMessage::user("plan"),
            ],
            response_schema: Some(json!({"type": "object"})),
            temperature: Some(0.5),
            max_output_tokens: Some(100),
            thinking: Some(ThinkingLevel::Low),
            ..Default::default()
        };
        let wire = serde_json::to_value(generate_request(&request)).unwrap();
        assert_eq!(
            wire,
            json!({
                "systemInstruction": {"parts": [{"text": "be brief"}]},
                "contents": [
                    {"role": "user", "parts": [{"text": "hi"}]},
                    {"role": "model", "parts": [{"text": "hello"}]},
                    {"role": "user", "parts": [{"text": "plan"}]},
                ],
                "generationConfig": {
                    "temperature": 0.5,
                    "maxOutputTokens": 100,
                    "responseMimeType": "application/json",
                    "responseSchema": {"type": "object"},
                    "thinkingConfig": {"thinkingLevel": "low"},
                },
            })
        );
    }

    #[test]
    fn tools_calls_results_and_signatures_on_the_wire() {
        let call = |id: &str, name: &str, sig: Option<&str>| ToolCall {
            id: Some(id.into()),
            name: name.into(),
            args: json!({"path": id}),
            thought_signature: sig.map(Into::into),
        };
        let model_turn = ChatMessage {
            thought_signature: Some("dGV4dA==".into()),
            tool_calls: vec![
                call("a", "read_file", Some("c2ln/+==")),
                call("b", "read_file", None),
            ],
            ..ChatMessage::model("reading two files")
        };
        let results = ChatMessage::tool_results(vec![
            ToolResult {
                id: Some("a".into()),
                name: "read_file".into(),
                response: json!({"text": "A"}),
            },
            ToolResult { id: Some("b".into()), name: "read_file".into(), response: json!("B") },
        ]);
        let request = ModelRequest {
            tools: vec![ToolSpec {
                name: "read_file".into(),
                description: "reads a file".into(),
                parameters: json!({"type": "object", "properties": {"path": {"type": "string"}}}),
            }],
            tool_mode: ToolMode::Required,
            ..ModelRequest::new(
                "generate",
                "",
                vec![ChatMessage::user("fix it"), model_turn, results],
            )
        };
        let wire = serde_json::to_value(generate_request(&request)).unwrap();
        assert_eq!(wire["tools"][0]["functionDeclarations"][0]["name"], "read_file");
        assert_eq!(wire["toolConfig"], json!({"functionCallingConfig": {"mode": "ANY"}}));
        assert_eq!(
            wire["contents"][1],
            json!({"role": "model", "parts": [
                {"text": "reading two files", "thoughtSignature": "dGV4dA=="},
                {"functionCall": {"id": "a", "name": "read_file", "args": {"path": "a"}}, "thoughtSignature": "c2ln/+=="},
                {"functionCall": {"id": "b", "name": "read_file", "args": {"path": "b"}}},
            ]})
        );
        assert_eq!(
            wire["contents"][2],
            json!({"role": "user", "parts": [
                {"functionResponse": {"id": "a", "name": "read_file", "response": {"text": "A"}}},
                {"functionResponse": {"id": "b", "name": "read_file", "response": {"result": "B"}}},
            ]})
        );
        assert!(wire.get("systemInstruction").is_none());
    }

    fn parse(body: Value) -> Result<ModelReply, ModelError> {
        interpret(serde_json::from_value(body).unwrap(), "m")
    }

    #[test]
    fn thought_parts_are_skipped_and_text_parts_joined() {
        let reply = parse(json!({
            "candidates": [{"content": {"role": "model", "parts": [
                {"text": "thinking…", "thought": true},
                {"text": "Hello, ", "thoughtSignature": "c2ln"},
                {"text": "world"},
            ]}, "finishReason": "STOP"}],
        }))
        .unwrap();
        assert_eq!(reply.text, "Hello, world");
        assert_eq!(reply.thought_signature.as_deref(), Some("c2ln"));
        assert_eq!(reply.model, "m");
    }

    #[test]
    fn parallel_calls_keep_their_order_ids_and_signatures_and_need_no_text() {
        let reply = parse(json!({
            "candidates": [{"content": {"role": "model", "parts": [
                {"functionCall": {"name": "a", "args": {"x": 1}}, "thoughtSignature": "AAA="},
                {"functionCall": {"id": "call-2", "name": "b"}},
            ]}, "finishReason": "STOP"}],
        }))
        .unwrap();
        assert_eq!(reply.text, "");
        assert_eq!(reply.finish, FinishReason::Stop);
        let calls: Vec<_> = reply
            .tool_calls
            .iter()
            .map(|c| {
                (c.id.as_deref(), c.name.as_str(), c.args.clone(), c.thought_signature.as_deref())
            })
            .collect();
        assert_eq!(
            calls,
            [(None, "a", json!({"x": 1}), Some("AAA=")), (Some("call-2"), "b", json!({}), None)]
        );
    }

    #[test]
    fn unusable_calls_and_blocks_are_errors_never_successes() {
        let reply = |reason: &str, text: &str| {
            let parts = if text.is_empty() { vec![] } else { vec![json!({"text": text})] };
            parse(json!({"candidates": [{"content": {"parts": parts}, "finishReason": reason,
                                          "finishMessage": "bad call"}]}))
        };
        for reason in TOOL_CALL_FINISH_REASONS {
            let error = reply(reason, "partial").unwrap_err();
            assert_eq!(
                error,
                ModelError::MalformedToolCall {
                    finish: (*reason).into(),
                    message: "bad call".into()
                }
            );
        }
        let other = reply("LANGUAGE", "partial").unwrap();
        assert_eq!(other.finish, FinishReason::Other("LANGUAGE".into()));
        let empty = reply("OTHER", "").unwrap_err();
        assert!(matches!(empty, ModelError::MalformedReply { .. }), "{empty:?}");
        for blocked in BLOCKED_FINISH_REASONS {
            let error = reply(blocked, "some text").unwrap_err();
            assert!(matches!(error, ModelError::Blocked { .. }), "{blocked}: {error:?}");
        }
        let scalar_args = parse(json!({"candidates": [{"content": {"parts": [
            {"functionCall": {"name": "a", "args": [1, 2]}}]}, "finishReason": "STOP"}]}))
        .unwrap_err();
        assert!(
            matches!(&scalar_args, ModelError::MalformedToolCall { finish, .. } if finish == "invalid_arguments"),
            "{scalar_args:?}"
        );
    }
}
