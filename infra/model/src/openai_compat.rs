//! OpenAI-compatible chat completions (`POST {base_url}/chat/completions`): OpenAI itself, Ollama,
//! llama.cpp's server, vLLM and the like.
//!
//! Only the common subset is sent (`model`, `messages`, `temperature`, `max_tokens`,
//! `response_format`), because local servers reject or ignore newer fields.

use std::time::Duration;

use async_trait::async_trait;
use cadre_domain::ports::model::{
    FinishReason, Model, ModelError, ModelReply, ModelRequest, Role, TokenUsage,
};
use reqwest::header::{HeaderMap, AUTHORIZATION};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::time::Instant;

use crate::api_key::ApiKey;
use crate::http::{self, JsonClient, DEFAULT_TIMEOUT};

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
        let body = self.http.post(&self.url, &wire_request(&self.model, request)).await?;
        interpret(http::parse_reply(&body)?, &self.model)
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
    response_format: Option<serde_json::Value>,
}

#[derive(Serialize)]
struct ChatMessageOut<'a> {
    role: &'static str,
    content: &'a str,
}

fn wire_request<'a>(model: &'a str, request: &'a ModelRequest) -> ChatRequest<'a> {
    let system = (!request.system.is_empty())
        .then(|| ChatMessageOut { role: "system", content: &request.system });
    let turns = request.messages.iter().map(|m| ChatMessageOut {
        role: match m.role {
            Role::User => "user",
            Role::Model => "assistant",
        },
        content: &m.text,
    });
    ChatRequest {
        model,
        messages: system.into_iter().chain(turns).collect(),
        temperature: request.temperature,
        max_tokens: request.max_output_tokens,
        response_format: request.response_schema.as_ref().map(|schema| {
            json!({"type": "json_schema", "json_schema": {"name": "reply", "schema": schema, "strict": false}})
        }),
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

#[derive(Deserialize)]
struct ReplyMessage {
    content: Option<String>,
    /// Set instead of `content` when the model refused (structured outputs).
    refusal: Option<String>,
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
    let (content, refusal) = choice.message.map_or((None, None), |m| (m.content, m.refusal));
    if reason == "content_filter" {
        return Err(ModelError::Blocked { reason: "finish reason content_filter".to_owned() });
    }
    if let Some(refusal) = refusal.filter(|r| !r.is_empty()) {
        return Err(ModelError::Blocked { reason: format!("the model refused: {refusal}") });
    }
    let text = content.unwrap_or_default();
    if text.is_empty() {
        return Err(ModelError::MalformedReply {
            reason: format!("the first choice has no text (finish reason {reason})"),
        });
    }
    let finish = match reason {
        "stop" => FinishReason::Stop,
        "length" => FinishReason::MaxTokens,
        other => FinishReason::Other(other.to_owned()),
    };
    Ok(ModelReply {
        text,
        usage,
        finish,
        model: reply.model.unwrap_or_else(|| model.to_owned()),
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use cadre_domain::ports::model::{CachePolicy, ChatMessage};

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
        let wire = serde_json::to_value(wire_request("m", &request)).unwrap();
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
        assert_eq!(tool.unwrap().finish, FinishReason::Other("tool_calls".into()));
    }
}
