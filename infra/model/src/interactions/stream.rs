//! Reading a streamed interaction (`"stream": true`): server-sent events whose JSON names its
//! `event_type`, folded into the same items a unary answer has.
//!
//! - `step.start {index, step}` opens step `index` (a `model_output`'s initial text, a `thought`'s
//!   signature, a `function_call`'s id, name and arguments);
//! - `step.delta {index, delta}` adds to it: `text` (handed to the caller as it comes),
//!   `thought_signature`, `arguments_delta` (a piece of the call's arguments as JSON text);
//! - `step.stop` closes it; `interaction.completed {interaction}` ends the stream with the status and
//!   usage (or `metadata.total_usage`); `error {error}` fails it.
//!
//! `interaction.created` and `interaction.status_update` carry nothing the reply needs; unknown event
//! types (the legacy `content.*` ones included) are skipped. A stream that ends before
//! `interaction.completed` is [`ModelError::Unreachable`], never a partial reply.

use std::collections::BTreeMap;

use cadre_domain::ports::model::{ModelError, ModelReply};
use serde::Deserialize;
use serde_json::Value;

use super::wire::{self, ErrorBody, Interaction, Item, Usage};
use crate::http::StreamBody;
use crate::sse::SseDecoder;

/// One event, as far as it matters.
#[derive(Debug, Deserialize)]
struct Event {
    #[serde(default)]
    event_type: String,
    index: Option<usize>,
    step: Option<Value>,
    delta: Option<Value>,
    interaction: Option<Interaction>,
    error: Option<ErrorBody>,
    metadata: Option<Metadata>,
}

#[derive(Debug, Deserialize)]
struct Metadata {
    total_usage: Option<Usage>,
}

/// A step being streamed.
#[derive(Debug, Default)]
struct Step {
    kind: String,
    text: String,
    signature: Option<String>,
    id: Option<String>,
    name: String,
    arguments: Value,
    /// `arguments_delta` pieces, joined: the arguments' JSON text when any came.
    argument_text: String,
}

impl Step {
    fn start(step: &Value) -> Step {
        let field = |name: &str| step.get(name).and_then(Value::as_str).map(str::to_owned);
        let text = step
            .get("content")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|c| c.get("text").and_then(Value::as_str))
            .collect();
        Step {
            kind: field("type").unwrap_or_default(),
            text,
            signature: field("signature"),
            id: field("id"),
            name: field("name").unwrap_or_default(),
            arguments: step.get("arguments").cloned().unwrap_or(Value::Null),
            argument_text: String::new(),
        }
    }

    fn into_item(self) -> Option<Item> {
        match self.kind.as_str() {
            "model_output" | "" => Some(Item::Text(self.text)),
            "thought" => Some(Item::Thought { signature: self.signature }),
            "function_call" => {
                let arguments = if self.argument_text.trim().is_empty() {
                    self.arguments
                } else {
                    // Text that is not JSON stays a string, which `assemble` refuses as arguments.
                    serde_json::from_str(&self.argument_text)
                        .unwrap_or(Value::String(self.argument_text))
                };
                Some(Item::Call {
                    id: self.id,
                    name: self.name,
                    arguments,
                    signature: self.signature,
                })
            }
            _ => None,
        }
    }
}

/// The interaction being streamed.
#[derive(Debug, Default)]
struct Fold {
    steps: BTreeMap<usize, Step>,
    completed: Option<Interaction>,
    usage: Option<Usage>,
}

impl Fold {
    /// Applies one event; text for the caller goes to `on_text`.
    fn apply(
        &mut self,
        event: Event,
        on_text: &(dyn for<'t> Fn(&'t str) + Send + Sync),
    ) -> Result<(), ModelError> {
        let index = event.index.unwrap_or(0);
        match event.event_type.as_str() {
            "step.start" => {
                let step = Step::start(event.step.as_ref().unwrap_or(&Value::Null));
                if step.kind == "model_output" && !step.text.is_empty() {
                    on_text(&step.text);
                }
                self.steps.insert(index, step);
            }
            "step.delta" => {
                let delta = event.delta.unwrap_or(Value::Null);
                let step = self.steps.entry(index).or_default();
                let field = |name: &str| delta.get(name).and_then(Value::as_str);
                match field("type").unwrap_or("") {
                    "text" => {
                        let text = field("text").unwrap_or("");
                        if step.kind != "thought" && !text.is_empty() {
                            step.text.push_str(text);
                            on_text(text);
                        }
                    }
                    "thought_signature" => step.signature = field("signature").map(str::to_owned),
                    "arguments_delta" => {
                        step.argument_text.push_str(field("arguments").unwrap_or(""))
                    }
                    _ => {}
                }
            }
            "interaction.completed" | "interaction.complete" => {
                self.usage = event.metadata.and_then(|m| m.total_usage);
                self.completed = Some(event.interaction.unwrap_or_default());
            }
            "error" => {
                return Err(event.error.unwrap_or_default().to_model_error());
            }
            _ => {}
        }
        Ok(())
    }

    fn reply(self, model: &str) -> Result<ModelReply, ModelError> {
        let Fold { steps, completed, usage } = self;
        let interaction = completed.unwrap_or_default();
        let usage = interaction.usage.or(usage).unwrap_or_default().tokens();
        let items = steps.into_values().filter_map(Step::into_item).collect();
        wire::assemble(
            interaction.status.as_deref(),
            interaction.error.as_ref(),
            items,
            usage,
            interaction.model.unwrap_or_else(|| model.to_owned()),
        )
    }
}

/// Reads `body` to its end, handing text to `on_text` as it arrives.
pub(super) async fn read(
    mut body: StreamBody,
    on_text: &(dyn for<'t> Fn(&'t str) + Send + Sync),
    model: &str,
) -> Result<ModelReply, ModelError> {
    let mut decoder = SseDecoder::default();
    let mut fold = Fold::default();
    let broken = |url: &str, reason: &str| ModelError::Unreachable {
        endpoint: url.to_owned(),
        reason: reason.to_owned(),
    };
    while let Some(bytes) = body.chunk().await? {
        for data in decoder.push(&bytes) {
            apply(&mut fold, &data, on_text, body.url())?;
        }
    }
    match decoder.finish() {
        Ok(Some(data)) => apply(&mut fold, &data, on_text, body.url())?,
        Ok(None) => {}
        Err(()) => return Err(broken(body.url(), "the stream was cut inside an event")),
    }
    if fold.completed.is_none() {
        return Err(broken(body.url(), "the stream ended before interaction.completed"));
    }
    fold.reply(model)
}

fn apply(
    fold: &mut Fold,
    data: &str,
    on_text: &(dyn for<'t> Fn(&'t str) + Send + Sync),
    url: &str,
) -> Result<(), ModelError> {
    if data.trim() == "[DONE]" {
        return Ok(());
    }
    let event: Event = serde_json::from_str(data).map_err(|e| ModelError::MalformedReply {
        reason: format!("a stream event from {url} is not the documented JSON ({e})"),
    })?;
    fold.apply(event, on_text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::sync::Mutex;

    fn run(events: &[Value]) -> (Result<ModelReply, ModelError>, Vec<String>) {
        let seen = Mutex::new(Vec::new());
        let on_text = |t: &str| seen.lock().unwrap().push(t.to_owned());
        let mut fold = Fold::default();
        for event in events {
            if let Err(e) = apply(&mut fold, &event.to_string(), &on_text, "u") {
                return (Err(e), seen.into_inner().unwrap());
            }
        }
        (fold.reply("m"), seen.into_inner().unwrap())
    }

    #[test]
    fn deltas_build_text_signatures_and_arguments() {
        let (reply, texts) = run(&[
            json!({"event_type": "interaction.created", "interaction": {"id": "i1", "status": "in_progress"}}),
            json!({"event_type": "step.start", "index": 0, "step": {"type": "thought"}}),
            json!({"event_type": "step.delta", "index": 0, "delta": {"type": "thought_signature", "signature": "sig"}}),
            json!({"event_type": "step.start", "index": 1, "step": {"type": "model_output"}}),
            json!({"event_type": "step.delta", "index": 1, "delta": {"type": "text", "text": "Hel"}}),
            json!({"event_type": "step.delta", "index": 1, "delta": {"type": "text", "text": "lo"}}),
            json!({"event_type": "step.start", "index": 2, "step": {"type": "function_call", "id": "c", "name": "f", "arguments": {}}}),
            json!({"event_type": "step.delta", "index": 2, "delta": {"type": "arguments_delta", "arguments": "{\"a\":"}}),
            json!({"event_type": "step.delta", "index": 2, "delta": {"type": "arguments_delta", "arguments": " 1}"}}),
            json!({"event_type": "step.stop", "index": 2}),
            json!({"event_type": "interaction.completed", "interaction": {"status": "requires_action",
                   "usage": {"total_input_tokens": 3, "total_output_tokens": 2}}}),
        ]);
        let reply = reply.unwrap();
        assert_eq!(texts, ["Hel", "lo"]);
        assert_eq!(
            (reply.text.as_str(), reply.thought_signature.as_deref()),
            ("Hello", Some("sig"))
        );
        assert_eq!(reply.tool_calls[0].args, json!({"a": 1}));
        assert_eq!((reply.usage.input, reply.usage.output), (3, 2));
    }

    #[test]
    fn an_error_event_fails_and_no_completion_is_not_a_reply() {
        let (error, _) = run(&[
            json!({"event_type": "error", "error": {"code": "RESOURCE_EXHAUSTED", "message": "q"}}),
        ]);
        assert_eq!(error.unwrap_err(), ModelError::RateLimited { retry_after_ms: None });
        let (bad, _) = run(&[
            json!({"event_type": "step.start", "index": 0, "step": {"type": "function_call", "id": "c", "name": "f"}}),
            json!({"event_type": "step.delta", "index": 0, "delta": {"type": "arguments_delta", "arguments": "{oops"}}),
            json!({"event_type": "interaction.completed", "interaction": {"status": "requires_action"}}),
        ]);
        assert!(matches!(bad, Err(ModelError::MalformedToolCall { .. })), "{bad:?}");
    }
}
