//! `streamGenerateContent?alt=sse`: each SSE event is a whole `GenerateContentResponse` holding the
//! next parts; the last one carries the `finishReason` and the final `usageMetadata`.
//!
//! Frames are merged into one response and interpreted exactly as a non-streamed reply, so a streamed
//! call answers (and fails) like `generateContent`. A body that ends before a frame with a finish
//! reason, or breaks, is [`ModelError::Unreachable`]: the port forbids handing back a partial reply.

use cadre_domain::ports::model::{ModelError, ModelReply};
use reqwest::header::HeaderMap;
use serde::Deserialize;

use super::wire::{
    self, Candidate, CandidateContent, GenerateContentResponse, Part, PromptFeedback, UsageMetadata,
};
use crate::http::{self, StreamBody};
use crate::sse::SseDecoder;

/// One event: a response chunk, or an error the server reported after the stream began.
#[derive(Deserialize)]
struct Frame {
    #[serde(flatten)]
    response: GenerateContentResponse,
    error: Option<serde_json::Value>,
}

/// What the frames said so far.
#[derive(Default)]
struct Merged {
    parts: Vec<Part>,
    finish_reason: Option<String>,
    finish_message: Option<String>,
    usage: Option<UsageMetadata>,
    model_version: Option<String>,
    prompt_feedback: Option<PromptFeedback>,
}

/// Reads the whole stream, handing each visible text piece to `on_text`.
pub(super) async fn read(
    mut body: StreamBody,
    model: &str,
    on_text: &(dyn for<'t> Fn(&'t str) + Send + Sync),
) -> Result<ModelReply, ModelError> {
    let mut decoder = SseDecoder::default();
    let mut merged = Merged::default();
    while let Some(bytes) = body.chunk().await? {
        for data in decoder.push(&bytes) {
            merged.frame(&data, on_text)?;
        }
    }
    let cut = || ModelError::Unreachable {
        endpoint: body.url().to_owned(),
        reason:
            "the stream ended before its final frame (no finishReason); the partial reply is void"
                .to_owned(),
    };
    match decoder.finish() {
        Ok(Some(data)) => merged.frame(&data, on_text)?,
        Ok(None) => {}
        Err(()) => return Err(cut()),
    }
    if merged.finish_reason.is_none() {
        return Err(cut());
    }
    wire::interpret(merged.into_response(), model)
}

impl Merged {
    fn frame(
        &mut self,
        data: &str,
        on_text: &(dyn for<'t> Fn(&'t str) + Send + Sync),
    ) -> Result<(), ModelError> {
        let frame: Frame = serde_json::from_str(data).map_err(|e| ModelError::MalformedReply {
            reason: format!(
                "a stream frame is not a GenerateContentResponse ({e}): {}",
                http::snippet(data.as_bytes())
            ),
        })?;
        if let Some(error) = frame.error {
            let code = error.get("code").and_then(serde_json::Value::as_u64).unwrap_or(500);
            let body = serde_json::json!({ "error": error }).to_string();
            return Err(http::error_from_status(
                u16::try_from(code).unwrap_or(500),
                &HeaderMap::new(),
                body.as_bytes(),
            ));
        }
        let response = frame.response;
        if let Some(error) = wire::blocked_prompt(response.prompt_feedback.as_ref()) {
            return Err(error);
        }
        if response.prompt_feedback.is_some() {
            self.prompt_feedback = response.prompt_feedback;
        }
        if response.usage_metadata.is_some() {
            self.usage = response.usage_metadata;
        }
        if response.model_version.is_some() {
            self.model_version = response.model_version;
        }
        if let Some(candidate) = response.candidates.into_iter().next() {
            for part in candidate.content.map(|c| c.parts).unwrap_or_default() {
                if let Some(text) = part.visible_text().filter(|t| !t.is_empty()) {
                    on_text(text);
                }
                self.parts.push(part);
            }
            if candidate.finish_reason.is_some() {
                self.finish_reason = candidate.finish_reason;
                self.finish_message = candidate.finish_message;
            }
        }
        Ok(())
    }

    fn into_response(self) -> GenerateContentResponse {
        GenerateContentResponse {
            candidates: vec![Candidate {
                content: Some(CandidateContent { parts: self.parts }),
                finish_reason: self.finish_reason,
                finish_message: self.finish_message,
            }],
            prompt_feedback: self.prompt_feedback,
            usage_metadata: self.usage,
            model_version: self.model_version,
        }
    }
}
