//! OpenAI-compatible chat completions (`POST {base_url}/chat/completions`): OpenAI itself, Ollama,
//! llama.cpp's server, vLLM and the like.
//!
//! Only the common subset is sent (`model`, `messages`, `temperature`, `max_tokens`,
//! `response_format`, and `tools` / `tool_choice` when the request declares tools), because local
//! servers reject or ignore newer fields. Tool calls come back with their arguments as a JSON *string*,
//! which is parsed here: one that is not a JSON object is [`ModelError::MalformedToolCall`]. Streaming
//! (`stream: true`) asks for usage in the last chunk (`stream_options.include_usage`) and needs the
//! closing `data: [DONE]`: a stream without it is cut, hence an error. There is no token-counting
//! endpoint in this API, so `count_tokens` is the port's local estimate.

use std::time::Duration;

use async_trait::async_trait;
use std::borrow::Cow;
use std::collections::BTreeMap;

use cadre_domain::ports::model::{
    FinishReason, Model, ModelError, ModelReply, ModelRequest, Role, TokenUsage, ToolCall, ToolMode,
};
use reqwest::header::{HeaderMap, AUTHORIZATION};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::time::Instant;

use crate::api_key::ApiKey;
use crate::http::{self, JsonClient, StreamBody, DEFAULT_TIMEOUT};
use crate::sse::SseDecoder;

/// Where and how to reach an OpenAI-compatible server.
#[derive(Debug, Clone)]
pub struct OpenAiCompatConfig {
    /// The API root including its version, e.g. `http://localhost:11434/v1` for Ollama.
    pub base_url: String,
    /// The model name the server knows.
    pub model: String,
    /// Sent as `Authorization: Bearer …` when set; local servers usually need none.
    pub api_key: Option<ApiKey>,
    /// The whole call's deadline; a slower answer is [`ModelError::Unreachable`].
    pub timeout: Duration,
}

impl OpenAiCompatConfig {
    /// No key and the default timeout.
    #[must_use]
    pub fn new(base_url: impl Into<String>, model: impl Into<String>) -> OpenAiCompatConfig {
        OpenAiCompatConfig {
            base_url: base_url.into(),
            model: model.into(),
            api_key: None,
            timeout: DEFAULT_TIMEOUT,
        }
    }
}

/// A model behind an OpenAI-compatible server, as the [`Model`] port.
#[derive(Debug)]
pub struct OpenAiCompatModel {
    http: JsonClient,
    model: String,
    base_url: String,
    url: String,
}

impl OpenAiCompatModel {
    /// Builds the HTTP client once.
    ///
    /// # Errors
    /// [`ModelError::NotConfigured`] when the model or base URL is empty, or the HTTP client cannot be built.
    pub fn new(config: OpenAiCompatConfig) -> Result<OpenAiCompatModel, ModelError> {
        let model = config.model.trim().to_owned();
        let base_url = config.base_url.trim().trim_end_matches('/').to_owned();
        if model.is_empty() || base_url.is_empty() {
            return Err(ModelError::NotConfigured {
                hint: format!(
                    "openai-compatible model {:?} at {:?} is incomplete; give both, \
                     e.g. openai:llama3.2@http://localhost:11434/v1",
                    config.model, config.base_url
                ),
            });
        }
        let mut headers = HeaderMap::new();
        if let Some(key) = &config.api_key {
            headers.insert(AUTHORIZATION, key.header_value("Bearer ")?);
        }
        let url = format!("{base_url}/chat/completions");
        Ok(OpenAiCompatModel {
            http: JsonClient::new(config.timeout, headers)?,
            model,
            base_url,
            url,
        })
    }

    async fn call(&self, request: &ModelRequest) -> Result<ModelReply, ModelError> {
        let body = self.http.post(&self.url, &wire_request(&self.model, request, false)).await?;
        interpret(http::parse_reply(&body)?, &self.model)
    }

    async fn call_streaming(
        &self,
        request: &ModelRequest,
        on_text: &(dyn for<'t> Fn(&'t str) + Send + Sync),
    ) -> Result<ModelReply, ModelError> {
        let body = wire_request(&self.model, request, true);
        let stream = self.http.post_stream(&self.url, &body, &HeaderMap::new()).await?;
        read_stream(stream, &self.model, on_text).await
    }
}

#[async_trait]
impl Model for OpenAiCompatModel {
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
        format!("openai:{}@{}", self.model, self.base_url)
    }
}

#[derive(Serialize)]
struct ChatRequest<'a> {
    model: &'a str,
    messages: Vec<ChatMessageOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response_format: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tools: Option<Vec<Value>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_choice: Option<&'static str>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    stream: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    stream_options: Option<Value>,
}

#[derive(Serialize)]
struct ChatMessageOut<'a> {
    role: &'static str,
    /// `null` in an assistant turn that only calls tools.
    content: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_calls: Option<Vec<Value>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_call_id: Option<String>,
}

impl<'a> ChatMessageOut<'a> {
    fn text(role: &'static str, content: &'a str) -> ChatMessageOut<'a> {
        ChatMessageOut {
            role,
            content: Some(Cow::Borrowed(content)),
            tool_calls: None,
            tool_call_id: None,
        }
    }
}

fn wire_request<'a>(model: &'a str, request: &'a ModelRequest, stream: bool) -> ChatRequest<'a> {
    let mut messages = Vec::new();
    if !request.system.is_empty() {
        messages.push(ChatMessageOut::text("system", &request.system));
    }
    // The API needs an id on every call and result; calls from a provider that gives none (Gemini) get
    // one from their position, which their results (in the next turn, in the same order) reuse.
    let mut last_call_ids: Vec<String> = Vec::new();
    for (turn, message) in request.messages.iter().enumerate() {
        match message.role {
            Role::Model => {
                last_call_ids = message
                    .tool_calls
                    .iter()
                    .enumerate()
                    .map(|(i, call)| call.id.clone().unwrap_or_else(|| format!("call_{turn}_{i}")))
                    .collect();
                let calls = (!message.tool_calls.is_empty()).then(|| {
                    message
                        .tool_calls
                        .iter()
                        .zip(&last_call_ids)
                        .map(|(call, id)| {
                            json!({"id": id, "type": "function",
                                   "function": {"name": call.name, "arguments": call.args.to_string()}})
                        })
                        .collect()
                });
                let content = (calls.is_none() || !message.text.is_empty())
                    .then_some(Cow::Borrowed(message.text.as_str()));
                messages.push(ChatMessageOut {
                    role: "assistant",
                    content,
                    tool_calls: calls,
                    tool_call_id: None,
                });
            }
            Role::User => {
                for (i, result) in message.tool_results.iter().enumerate() {
                    let id = result
                        .id
                        .clone()
                        .or_else(|| last_call_ids.get(i).cloned())
                        .unwrap_or_else(|| format!("call_{turn}_{i}"));
                    let content = match &result.response {
                        Value::String(text) => Cow::Borrowed(text.as_str()),
                        other => Cow::Owned(other.to_string()),
                    };
                    messages.push(ChatMessageOut {
                        role: "tool",
                        content: Some(content),
                        tool_calls: None,
                        tool_call_id: Some(id),
                    });
                }
                if message.tool_results.is_empty() || !message.text.is_empty() {
                    messages.push(ChatMessageOut::text("user", &message.text));
                }
            }
        }
    }
    let tools = (!request.tools.is_empty()).then(|| {
        request
            .tools
            .iter()
            .map(|t| {
                json!({"type": "function", "function": {
                    "name": t.name, "description": t.description, "parameters": t.parameters}})
            })
            .collect()
    });
    let tool_choice = tools.as_ref().map(|_| match request.tool_mode {
        ToolMode::Auto => "auto",
        ToolMode::Required => "required",
        ToolMode::None => "none",
    });
    ChatRequest {
        model,
        messages,
        temperature: request.temperature,
        max_tokens: request.max_output_tokens,
        response_format: request.response_schema.as_ref().map(|schema| {
            json!({"type": "json_schema", "json_schema": {"name": "reply", "schema": schema, "strict": false}})
        }),
        tools,
        tool_choice,
        stream,
        stream_options: stream.then(|| json!({"include_usage": true})),
    }
}

#[derive(Deserialize)]
struct ChatResponse {
    #[serde(default)]
    choices: Vec<Choice>,
    usage: Option<Usage>,
    model: Option<String>,
}

#[derive(Deserialize)]
struct Choice {
    message: Option<ReplyMessage>,
    finish_reason: Option<String>,
}

#[derive(Deserialize, Default)]
struct ReplyMessage {
    content: Option<String>,
    /// Set instead of `content` when the model refused (structured outputs).
    refusal: Option<String>,
    #[serde(default)]
    tool_calls: Vec<ToolCallIn>,
}

#[derive(Deserialize)]
struct ToolCallIn {
    id: Option<String>,
    function: FunctionIn,
}

#[derive(Deserialize)]
struct FunctionIn {
    name: String,
    /// A JSON string per the API; some servers send the object itself.
    arguments: Option<Value>,
}

#[derive(Deserialize)]
struct Usage {
    prompt_tokens: Option<u64>,
    completion_tokens: Option<u64>,
    prompt_tokens_details: Option<PromptDetails>,
    completion_tokens_details: Option<CompletionDetails>,
}

#[derive(Deserialize)]
struct PromptDetails {
    cached_tokens: Option<u64>,
}

#[derive(Deserialize)]
struct CompletionDetails {
    reasoning_tokens: Option<u64>,
}

/// The arguments object of a call, parsed from its JSON string.
fn call_args(name: &str, arguments: Option<Value>) -> Result<Value, ModelError> {
    let invalid = |why: String| ModelError::MalformedToolCall {
        finish: "invalid_arguments".to_owned(),
        message: format!("the arguments of {name} {why}"),
    };
    let parsed = match arguments {
        None | Some(Value::Null) => return Ok(Value::Object(serde_json::Map::new())),
        Some(Value::String(text)) if text.trim().is_empty() => {
            return Ok(Value::Object(serde_json::Map::new()))
        }
        Some(Value::String(text)) => serde_json::from_str::<Value>(&text).map_err(|e| {
            invalid(format!("are not JSON ({e}): {}", http::snippet(text.as_bytes())))
        })?,
        Some(other) => other,
    };
    if parsed.is_object() {
        Ok(parsed)
    } else {
        Err(invalid(format!("are {parsed}, not a JSON object")))
    }
}

/// Turns a parsed reply into the port's answer, following its `# Errors` sentences.
fn interpret(reply: ChatResponse, model: &str) -> Result<ModelReply, ModelError> {
    let usage = reply.usage.map_or_else(TokenUsage::default, |u| {
        let thinking = u.completion_tokens_details.and_then(|d| d.reasoning_tokens).unwrap_or(0);
        TokenUsage {
            input: u.prompt_tokens.unwrap_or(0),
            // OpenAI counts reasoning inside completion tokens; the port keeps them apart.
            output: u.completion_tokens.unwrap_or(0).saturating_sub(thinking),
            cached: u.prompt_tokens_details.and_then(|d| d.cached_tokens).unwrap_or(0),
            thinking,
        }
    });
    let Some(choice) = reply.choices.into_iter().next() else {
        return Err(ModelError::MalformedReply { reason: "the reply has no choices".to_owned() });
    };
    let reason = choice.finish_reason.as_deref().unwrap_or("unspecified");
    let message = choice.message.unwrap_or_default();
    if reason == "content_filter" {
        return Err(ModelError::Blocked { reason: "finish reason content_filter".to_owned() });
    }
    if let Some(refusal) = message.refusal.filter(|r| !r.is_empty()) {
        return Err(ModelError::Blocked { reason: format!("the model refused: {refusal}") });
    }
    let tool_calls = message
        .tool_calls
        .into_iter()
        .map(|call| {
            let args = call_args(&call.function.name, call.function.arguments)?;
            Ok(ToolCall { id: call.id, name: call.function.name, args, thought_signature: None })
        })
        .collect::<Result<Vec<_>, ModelError>>()?;
    let text = message.content.unwrap_or_default();
    if text.is_empty() && tool_calls.is_empty() {
        return Err(ModelError::MalformedReply {
            reason: format!(
                "the first choice has neither text nor tool calls (finish reason {reason})"
            ),
        });
    }
    let finish = match reason {
        "stop" | "tool_calls" | "function_call" => FinishReason::Stop,
        "length" => FinishReason::MaxTokens,
        other => FinishReason::Other(other.to_owned()),
    };
    Ok(ModelReply {
        text,
        usage,
        finish,
        model: reply.model.unwrap_or_else(|| model.to_owned()),
        thought_signature: None,
        tool_calls,
    })
}

#[derive(Deserialize)]
struct StreamChunk {
    #[serde(default)]
    choices: Vec<StreamChoice>,
    usage: Option<Usage>,
    model: Option<String>,
    error: Option<Value>,
}

#[derive(Deserialize)]
struct StreamChoice {
    delta: Option<Delta>,
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct Delta {
    content: Option<String>,
    refusal: Option<String>,
    #[serde(default)]
    tool_calls: Vec<DeltaToolCall>,
}

#[derive(Deserialize)]
struct DeltaToolCall {
    index: Option<usize>,
    id: Option<String>,
    function: Option<DeltaFunction>,
}

#[derive(Deserialize)]
struct DeltaFunction {
    name: Option<String>,
    arguments: Option<String>,
}

/// What the chunks said so far: text and argument strings are concatenated, calls keyed by index.
#[derive(Default)]
struct Merged {
    content: String,
    refusal: String,
    calls: BTreeMap<usize, (Option<String>, String, String)>,
    finish_reason: Option<String>,
    usage: Option<Usage>,
    model: Option<String>,
    done: bool,
}

impl Merged {
    fn chunk(
        &mut self,
        data: &str,
        on_text: &(dyn for<'t> Fn(&'t str) + Send + Sync),
    ) -> Result<(), ModelError> {
        if data.trim() == "[DONE]" {
            self.done = true;
            return Ok(());
        }
        let chunk: StreamChunk =
            serde_json::from_str(data).map_err(|e| ModelError::MalformedReply {
                reason: format!(
                    "a stream chunk is not a chat.completion.chunk ({e}): {}",
                    http::snippet(data.as_bytes())
                ),
            })?;
        if let Some(error) = chunk.error {
            let body = json!({ "error": error }).to_string();
            let code = error_code(&error);
            return Err(http::error_from_status(code, &HeaderMap::new(), body.as_bytes()));
        }
        if chunk.usage.is_some() {
            self.usage = chunk.usage;
        }
        if chunk.model.is_some() {
            self.model = chunk.model;
        }
        for choice in chunk.choices {
            if let Some(delta) = choice.delta {
                if let Some(text) = delta.content.filter(|t| !t.is_empty()) {
                    on_text(&text);
                    self.content.push_str(&text);
                }
                self.refusal.push_str(delta.refusal.as_deref().unwrap_or(""));
                for call in delta.tool_calls {
                    let index = call.index.unwrap_or(self.calls.len());
                    let entry = self.calls.entry(index).or_default();
                    if call.id.is_some() {
                        entry.0 = call.id;
                    }
                    if let Some(function) = call.function {
                        entry.1.push_str(function.name.as_deref().unwrap_or(""));
                        entry.2.push_str(function.arguments.as_deref().unwrap_or(""));
                    }
                }
            }
            if choice.finish_reason.is_some() {
                self.finish_reason = choice.finish_reason;
            }
        }
        Ok(())
    }

    fn into_response(self) -> ChatResponse {
        let tool_calls = self
            .calls
            .into_values()
            .map(|(id, name, arguments)| ToolCallIn {
                id,
                function: FunctionIn { name, arguments: Some(Value::String(arguments)) },
            })
            .collect();
        let message =
            ReplyMessage { content: Some(self.content), refusal: Some(self.refusal), tool_calls };
        ChatResponse {
            choices: vec![Choice { message: Some(message), finish_reason: self.finish_reason }],
            usage: self.usage,
            model: self.model,
        }
    }
}

/// The HTTP-like status of an error chunk: its numeric `code`, else 500.
fn error_code(error: &Value) -> u16 {
    error
        .get("code")
        .and_then(Value::as_u64)
        .and_then(|c| u16::try_from(c).ok())
        .filter(|c| (400..600).contains(c))
        .unwrap_or(500)
}

/// Reads a whole `stream: true` answer, handing each text delta to `on_text`.
async fn read_stream(
    mut body: StreamBody,
    model: &str,
    on_text: &(dyn for<'t> Fn(&'t str) + Send + Sync),
) -> Result<ModelReply, ModelError> {
    let mut decoder = SseDecoder::default();
    let mut merged = Merged::default();
    while let Some(bytes) = body.chunk().await? {
        for data in decoder.push(&bytes) {
            merged.chunk(&data, on_text)?;
        }
    }
    if let Ok(Some(data)) = decoder.finish() {
        merged.chunk(&data, on_text)?;
    }
    if !merged.done {
        return Err(ModelError::Unreachable {
            endpoint: body.url().to_owned(),
            reason: "the stream ended before `data: [DONE]`; the partial reply is void".to_owned(),
        });
    }
    interpret(merged.into_response(), model)
}

#[cfg(test)]
mod tests {
    use super::*;
    use cadre_domain::ports::model::{CachePolicy, ChatMessage};
    use serde_json::Value;

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
            response_schema: None,
            temperature: None,
            max_output_tokens: Some(64),
            task: None,
            template: None,
            cache: CachePolicy::Use,
            ..Default::default()
        };
        let wire = serde_json::to_value(wire_request("m", &request, false)).unwrap();
        assert_eq!(
            wire,
            json!({
                "model": "m",
                "messages": [
                    {"role": "system", "content": "be brief"},
                    {"role": "user", "content": "hi"},
                    {"role": "assistant", "content": "hello"},
                    {"role": "user", "content": "plan"},
                ],
                "max_tokens": 64,
            })
        );
    }

    #[test]
    fn reasoning_tokens_are_taken_out_of_output() {
        let reply: ChatResponse = serde_json::from_value(json!({
            "choices": [{"message": {"content": "ok"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 30,
                      "prompt_tokens_details": {"cached_tokens": 4},
                      "completion_tokens_details": {"reasoning_tokens": 25}},
        }))
        .unwrap();
        let usage = interpret(reply, "m").unwrap().usage;
        assert_eq!(usage, TokenUsage { input: 10, output: 5, cached: 4, thinking: 25 });
    }

    #[test]
    fn refusals_and_empty_choices() {
        let reply = |v: serde_json::Value| interpret(serde_json::from_value(v).unwrap(), "m");
        let refused = reply(
            json!({"choices": [{"message": {"content": null, "refusal": "no"}, "finish_reason": "stop"}]}),
        );
        assert!(matches!(refused, Err(ModelError::Blocked { .. })), "{refused:?}");
        let empty = reply(json!({"choices": []}));
        assert!(matches!(empty, Err(ModelError::MalformedReply { .. })), "{empty:?}");
        let null =
            reply(json!({"choices": [{"message": {"content": null}, "finish_reason": "stop"}]}));
        assert!(matches!(null, Err(ModelError::MalformedReply { .. })), "{null:?}");
        let tool = reply(
            json!({"choices": [{"message": {"content": "x"}, "finish_reason": "tool_calls"}]}),
        );
        assert_eq!(
            tool.unwrap().finish,
            FinishReason::Stop,
            "a turn ending in tool calls is a natural end"
        );
    }

    #[test]
    fn tool_call_arguments_must_be_a_json_object() {
        let reply = |arguments: Value| {
            interpret(
                serde_json::from_value(json!({"choices": [{"message": {"content": null, "tool_calls": [
                    {"id": "c1", "type": "function", "function": {"name": "read_file", "arguments": arguments}}
                ]}, "finish_reason": "tool_calls"}]}))
                .unwrap(),
                "m",
            )
        };
        let ok = reply(json!("{\"path\": \"a.rs\"}")).unwrap();
        assert_eq!(ok.text, "");
        assert_eq!(ok.tool_calls[0].args, json!({"path": "a.rs"}));
        assert_eq!(ok.tool_calls[0].id.as_deref(), Some("c1"));
        assert_eq!(reply(json!("")).unwrap().tool_calls[0].args, json!({}));
        for bad in [json!("[1, 2]"), json!("{\"path\": "), json!(7)] {
            let error = reply(bad.clone()).unwrap_err();
            assert!(
                matches!(&error, ModelError::MalformedToolCall { finish, .. } if finish == "invalid_arguments"),
                "{bad}: {error:?}"
            );
        }
    }

    #[test]
    fn calls_without_ids_get_positional_ids_that_their_results_reuse() {
        use cadre_domain::ports::model::{ToolResult, ToolSpec};
        let calls = ChatMessage {
            tool_calls: vec![
                ToolCall {
                    id: None,
                    name: "a".into(),
                    args: json!({}),
                    thought_signature: Some("s".into()),
                },
                ToolCall {
                    id: None,
                    name: "b".into(),
                    args: json!({"x": 1}),
                    thought_signature: None,
                },
            ],
            ..ChatMessage::model("")
        };
        let results = ChatMessage::tool_results(vec![
            ToolResult { id: None, name: "a".into(), response: json!("plain text") },
            ToolResult { id: None, name: "b".into(), response: json!({"ok": true}) },
        ]);
        let request = ModelRequest {
            tools: vec![ToolSpec {
                name: "a".into(),
                description: "d".into(),
                parameters: json!({"type": "object"}),
            }],
            tool_mode: ToolMode::None,
            ..ModelRequest::new("generate", "", vec![ChatMessage::user("go"), calls, results])
        };
        let wire = serde_json::to_value(wire_request("m", &request, true)).unwrap();
        assert_eq!(
            wire["messages"],
            json!([
                {"role": "user", "content": "go"},
                {"role": "assistant", "content": null, "tool_calls": [
                    {"id": "call_1_0", "type": "function", "function": {"name": "a", "arguments": "{}"}},
                    {"id": "call_1_1", "type": "function", "function": {"name": "b", "arguments": "{\"x\":1}"}},
                ]},
                {"role": "tool", "content": "plain text", "tool_call_id": "call_1_0"},
                {"role": "tool", "content": "{\"ok\":true}", "tool_call_id": "call_1_1"},
            ])
        );
        assert_eq!(wire["tool_choice"], "none");
        assert_eq!(wire["tools"][0]["type"], "function");
        assert_eq!(
            (wire["stream"].clone(), wire["stream_options"].clone()),
            (json!(true), json!({"include_usage": true}))
        );
    }
}
