//! Structured output: ask for JSON, parse it into a Rust type, and give the model one chance to fix a
//! reply that does not parse.
//!
//! The schema itself travels in [`ModelRequest::response_schema`] (Gemini's `responseSchema`), so the
//! provider constrains the output; this helper handles what still goes wrong (a fenced reply, a reply cut
//! at the token cap, a field of the wrong type) and never loses the raw text.

use cadre_domain::ports::model::{ChatMessage, Model, ModelError, ModelReply, ModelRequest};
use serde::de::DeserializeOwned;

/// Sends `request` and parses the reply's JSON into `T`.
///
/// When the reply does not parse, the request is sent once more with the model's reply and the parse
/// error appended as turns; a second failure is [`ModelError::SchemaMismatch`] carrying the second
/// reply's text. Both calls go through `model` (the gateway), so both are limited, cached and accounted.
///
/// # Errors
/// The model's own errors, unchanged, and [`ModelError::SchemaMismatch`] as above.
pub async fn complete_json<T: DeserializeOwned>(
    model: &(impl Model + ?Sized),
    request: &ModelRequest,
) -> Result<(T, ModelReply), ModelError> {
    let reply = model.complete(request).await?;
    let problem = match parse::<T>(&reply) {
        Ok(value) => return Ok((value, reply)),
        Err(problem) => problem,
    };
    tracing::warn!(purpose = %request.purpose, error = %problem, "structured reply did not parse; asking once more");
    let mut retry = request.clone();
    retry.messages.push(ChatMessage::model(reply.text));
    retry.messages.push(ChatMessage::user(format!(
        "Your last answer is not valid JSON for the requested schema: {problem}\n\
         Answer again with only the JSON value, complete, matching the schema."
    )));
    let reply = model.complete(&retry).await?;
    match parse::<T>(&reply) {
        Ok(value) => Ok((value, reply)),
        Err(reason) => Err(ModelError::SchemaMismatch { reason, raw: reply.text }),
    }
}

/// Parses the reply, naming a cut-off reply as such (the fix is a larger output cap, not a new prompt).
fn parse<T: DeserializeOwned>(reply: &ModelReply) -> Result<T, String> {
    serde_json::from_str(strip_json_fence(&reply.text)).map_err(|e| {
        if reply.finish == cadre_domain::ports::model::FinishReason::MaxTokens {
            format!("{e} (the reply was cut at the output token cap)")
        } else {
            e.to_string()
        }
    })
}

/// The JSON inside a Markdown code fence (```` ```json … ``` ```` or ```` ``` … ``` ````), or the text
/// itself, trimmed.
#[must_use]
pub fn strip_json_fence(text: &str) -> &str {
    let trimmed = text.trim();
    let Some(rest) = trimmed.strip_prefix("```") else {
        return trimmed;
    };
    // Skip the info string (`json`, `JSON`, …) up to the end of the opening line.
    let body = match rest.find('\n') {
        Some(newline) => &rest[newline + 1..],
        None => return trimmed,
    };
    body.trim_end().strip_suffix("```").unwrap_or(body).trim()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fences_are_stripped_with_or_without_a_language() {
        assert_eq!(strip_json_fence("  {\"a\": 1}\n"), "{\"a\": 1}");
        assert_eq!(strip_json_fence("```json\n{\"a\": 1}\n```"), "{\"a\": 1}");
        assert_eq!(strip_json_fence("```\n[1, 2]\n```\n"), "[1, 2]");
        assert_eq!(strip_json_fence("```JSON\n{}"), "{}");
        assert_eq!(strip_json_fence("```"), "```");
    }
}
