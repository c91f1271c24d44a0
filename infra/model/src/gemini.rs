//! The Gemini API (`generateContent`), for Google AI Studio keys.
//!
//! One request per call, no streaming: steps want whole answers, and a structured call's JSON is only
//! usable once complete. The model id is configuration ([`GeminiConfig::model`]), never code, because
//! Gemini ids change every few months.

use std::time::Duration;

use async_trait::async_trait;
use cadre_domain::ports::model::{
    FinishReason, Model, ModelError, ModelReply, ModelRequest, Role, TokenUsage,
};
use reqwest::header::HeaderMap;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::api_key::ApiKey;
use crate::http::{self, JsonClient, DEFAULT_TIMEOUT};

/// The public Gemini API endpoint.
pub const DEFAULT_GEMINI_BASE_URL: &str = "https://generativelanguage.googleapis.com";
/// The model used when the configuration names none.
pub const DEFAULT_GEMINI_MODEL: &str = "gemini-3-flash-preview";

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

/// Where and how to reach Gemini.
#[derive(Debug, Clone)]
pub struct GeminiConfig {
    /// Scheme and host, without a path: the provider adds `/v1beta/models/…`.
    pub base_url: String,
    /// The model id, e.g. `gemini-3-flash-preview`.
    pub model: String,
    /// Sent in the `x-goog-api-key` header, never in the URL.
    pub api_key: ApiKey,
    /// The whole call's deadline; a slower answer is [`ModelError::Unreachable`].
    pub timeout: Duration,
}

impl GeminiConfig {
    /// The public endpoint and the default model and timeout.
    #[must_use]
    pub fn new(api_key: ApiKey) -> GeminiConfig {
        GeminiConfig {
            base_url: DEFAULT_GEMINI_BASE_URL.to_owned(),
            model: DEFAULT_GEMINI_MODEL.to_owned(),
            api_key,
            timeout: DEFAULT_TIMEOUT,
        }
    }
}

/// A Gemini model behind the [`Model`] port.
#[derive(Debug)]
pub struct GeminiModel {
    http: JsonClient,
    model: String,
    url: String,
}

impl GeminiModel {
    /// Builds the HTTP client once.
    ///
    /// # Errors
    /// [`ModelError::NotConfigured`] when the model id is empty or the HTTP client cannot be built.
    pub fn new(config: GeminiConfig) -> Result<GeminiModel, ModelError> {
        let model = config.model.trim();
        let model = model.strip_prefix("models/").unwrap_or(model).to_owned();
        if model.is_empty() || model.contains(char::is_whitespace) {
            return Err(ModelError::NotConfigured {
                hint: format!(
                    "gemini model id {:?} is not valid; name a model such as {DEFAULT_GEMINI_MODEL}",
                    config.model
                ),
            });
        }
        let mut headers = HeaderMap::new();
        headers.insert("x-goog-api-key", config.api_key.header_value("")?);
        let base = config.base_url.trim_end_matches('/');
        let url = format!("{base}/v1beta/models/{model}:generateContent");
        Ok(GeminiModel { http: JsonClient::new(config.timeout, headers)?, model, url })
    }

    async fn call(&self, request: &ModelRequest) -> Result<ModelReply, ModelError> {
        let body = self.http.post(&self.url, &wire_request(request)).await?;
        interpret(http::parse_reply(&body)?, &self.model)
    }
}

#[async_trait]
impl Model for GeminiModel {
    async fn complete(&self, request: &ModelRequest) -> Result<ModelReply, ModelError> {
        let started = Instant::now();
        let result = self.call(request).await;
        http::log_call(&self.describe(), started, &result);
        result
    }

    fn describe(&self) -> String {
        format!("gemini:{}", self.model)
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct GenerateContentRequest<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    system_instruction: Option<Content<'a>>,
    contents: Vec<Content<'a>>,
    generation_config: GenerationConfig<'a>,
}

#[derive(Serialize)]
struct Content<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<&'static str>,
    parts: [TextPart<'a>; 1],
}

#[derive(Serialize)]
struct TextPart<'a> {
    text: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct GenerationConfig<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_output_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response_mime_type: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response_schema: Option<&'a serde_json::Value>,
}

fn wire_request(request: &ModelRequest) -> GenerateContentRequest<'_> {
    let system_instruction = (!request.system.is_empty())
        .then(|| Content { role: None, parts: [TextPart { text: &request.system }] });
    let contents = request
        .messages
        .iter()
        .map(|m| {
            let role = match m.role {
                Role::User => "user",
                Role::Model => "model",
            };
            Content { role: Some(role), parts: [TextPart { text: &m.text }] }
        })
        .collect();
    let schema = request.response_schema.as_ref();
    GenerateContentRequest {
        system_instruction,
        contents,
        generation_config: GenerationConfig {
            temperature: request.temperature,
            max_output_tokens: request.max_output_tokens,
            response_mime_type: schema.map(|_| "application/json"),
            response_schema: schema,
        },
    }
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
struct Part {
    text: Option<String>,
    thought: Option<bool>,
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

/// Turns a parsed reply into the port's answer, following its `# Errors` sentences.
fn interpret(reply: GenerateContentResponse, model: &str) -> Result<ModelReply, ModelError> {
    if let Some(reason) = reply.prompt_feedback.as_ref().and_then(|f| f.block_reason.as_deref()) {
        let detail = reply.prompt_feedback.as_ref().and_then(|f| f.block_reason_message.as_deref());
        return Err(ModelError::Blocked {
            reason: with_detail(&format!("prompt blocked: {reason}"), detail),
        });
    }
    let usage = reply.usage_metadata.map_or_else(TokenUsage::default, |u| TokenUsage {
        input: u.prompt_token_count.unwrap_or(0),
        output: u.candidates_token_count.unwrap_or(0),
        cached: u.cached_content_token_count.unwrap_or(0),
        thinking: u.thoughts_token_count.unwrap_or(0),
    });
    let Some(candidate) = reply.candidates.into_iter().next() else {
        return Err(ModelError::MalformedReply {
            reason: "the reply has no candidates".to_owned(),
        });
    };
    let reason = candidate.finish_reason.as_deref().unwrap_or("FINISH_REASON_UNSPECIFIED");
    if BLOCKED_FINISH_REASONS.contains(&reason) {
        let detail = candidate.finish_message.as_deref();
        return Err(ModelError::Blocked {
            reason: with_detail(&format!("finish reason {reason}"), detail),
        });
    }
    let text: String = candidate
        .content
        .map(|c| c.parts)
        .unwrap_or_default()
        .into_iter()
        .filter(|p| p.thought != Some(true))
        .filter_map(|p| p.text)
        .collect();
    if text.is_empty() {
        let why = if reason == "MAX_TOKENS" {
            format!(
                "the output cap was reached before any text ({} thinking tokens); raise max_output_tokens",
                usage.thinking
            )
        } else {
            format!("the first candidate has no text (finish reason {reason})")
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
        ..Default::default()
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
            response_schema: Some(serde_json::json!({"type": "object"})),
            temperature: Some(0.5),
            max_output_tokens: Some(100),
            task: None,
            template: None,
            cache: CachePolicy::Use,
            ..Default::default()
        };
        let wire = serde_json::to_value(wire_request(&request)).unwrap();
        assert_eq!(
            wire,
            serde_json::json!({
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
                },
            })
        );
    }

    #[test]
    fn thought_parts_are_skipped_and_text_parts_joined() {
        let reply: GenerateContentResponse = serde_json::from_value(serde_json::json!({
            "candidates": [{"content": {"role": "model", "parts": [
                {"text": "thinking…", "thought": true},
                {"text": "Hello, ", "thoughtSignature": "c2ln"},
                {"text": "world"},
            ]}, "finishReason": "STOP"}],
        }))
        .unwrap();
        let reply = interpret(reply, "m").unwrap();
        assert_eq!(reply.text, "Hello, world");
        assert_eq!(reply.model, "m");
    }

    #[test]
    fn unknown_finish_reasons_are_kept_verbatim_when_there_is_text() {
        let reply = |reason: &str, text: &str| {
            let parts =
                if text.is_empty() { vec![] } else { vec![serde_json::json!({"text": text})] };
            serde_json::from_value::<GenerateContentResponse>(serde_json::json!({
                "candidates": [{"content": {"parts": parts}, "finishReason": reason}],
            }))
            .unwrap()
        };
        let other = interpret(reply("MALFORMED_FUNCTION_CALL", "partial"), "m").unwrap();
        assert_eq!(other.finish, FinishReason::Other("MALFORMED_FUNCTION_CALL".into()));
        let empty = interpret(reply("MALFORMED_FUNCTION_CALL", ""), "m").unwrap_err();
        assert!(matches!(empty, ModelError::MalformedReply { .. }), "{empty:?}");
        for blocked in BLOCKED_FINISH_REASONS {
            let error = interpret(reply(blocked, "some text"), "m").unwrap_err();
            assert!(matches!(error, ModelError::Blocked { .. }), "{blocked}: {error:?}");
        }
    }
}
