//! How Cadre's messages are laid out on SQS: the body, the message attributes that carry what SQS has
//! no field for, and the FIFO group and de-duplication ids.
//!
//! SQS bodies are text restricted to XML characters, while the `Queue` port carries bytes; a body that
//! is not such text (a corrupt message must survive to its dead letter unchanged) is sent base64-encoded
//! and marked with an attribute. Envelopes are JSON, so in practice bodies travel as plain text and a
//! person reading the queue in the console sees them.

use base64::Engine as _;
use sha2::{Digest, Sha256};

/// The message's Cadre id (SQS assigns its own `MessageId`).
pub(crate) const ATTR_ID: &str = "cadre-id";
/// Present, as `base64`, when the body is base64 of the original bytes.
pub(crate) const ATTR_ENCODING: &str = "cadre-encoding";
/// Why a dead letter was dead-lettered.
pub(crate) const ATTR_REASON: &str = "cadre-reason";
/// How often a dead letter had been delivered.
pub(crate) const ATTR_DELIVERIES: &str = "cadre-delivery-count";
/// When a dead letter was dead-lettered (Unix milliseconds).
pub(crate) const ATTR_DEAD_AT: &str = "cadre-dead-at";
/// The value of [`ATTR_ENCODING`] for base64 bodies.
pub(crate) const BASE64: &str = "base64";

/// SQS's limit on group and de-duplication ids.
const MAX_ID_LEN: usize = 128;

/// A body as SQS carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct WireBody {
    pub(crate) text: String,
    pub(crate) base64: bool,
}

/// Encodes bytes for SQS: as they are when they are valid SQS text, as base64 otherwise.
pub(crate) fn encode(bytes: &[u8]) -> WireBody {
    match std::str::from_utf8(bytes) {
        Ok(text) if !text.is_empty() && text.chars().all(sqs_text_char) => {
            WireBody { text: text.to_owned(), base64: false }
        }
        _ => {
            WireBody { text: base64::engine::general_purpose::STANDARD.encode(bytes), base64: true }
        }
    }
}

/// Decodes a body taken off SQS. A body marked base64 that does not decode is returned as its text
/// bytes, so that the engine sees it, finds it malformed and dead-letters it instead of losing it.
pub(crate) fn decode(text: &str, base64: bool) -> Vec<u8> {
    if base64 {
        if let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(text) {
            return bytes;
        }
        tracing::warn!("an SQS body marked base64 does not decode; passing its text on");
    }
    text.as_bytes().to_vec()
}

/// The characters SQS accepts in a body (XML 1.0 characters).
fn sqs_text_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

/// The FIFO message group: the envelope's task id, so one task's messages are delivered in order and
/// one at a time while different tasks proceed in parallel. A body that is no envelope falls back to
/// the message id's first segment (ids are `TASK/STEP/POSITION`), then to the whole id.
pub(crate) fn group_id(body: &[u8], message_id: &str) -> String {
    #[derive(serde::Deserialize)]
    struct TaskOnly {
        task_id: String,
    }
    let task = serde_json::from_slice::<TaskOnly>(body).ok().map(|t| t.task_id);
    let group = task.unwrap_or_else(|| {
        message_id.split('/').next().filter(|s| !s.is_empty()).unwrap_or(message_id).to_owned()
    });
    sqs_id(&group)
}

/// The envelope's `step`, which decides the queue a message is published to.
pub(crate) fn step_of(body: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct StepOnly {
        step: String,
    }
    serde_json::from_slice::<StepOnly>(body).ok().map(|s| s.step)
}

/// An id SQS accepts as a group or de-duplication id: the id itself when it is at most 128 characters
/// of ASCII punctuation and alphanumerics, otherwise the hex SHA-256 of it (stable, so de-duplication
/// still works).
pub(crate) fn sqs_id(id: &str) -> String {
    let fits = !id.is_empty()
        && id.len() <= MAX_ID_LEN
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b.is_ascii_punctuation());
    if fits {
        return id.to_owned();
    }
    Sha256::digest(id.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_bodies_travel_as_text_and_others_as_base64() {
        let json = br#"{"task_id":"t","step":"plan"}"#;
        assert_eq!(
            encode(json),
            WireBody { text: String::from_utf8(json.to_vec()).unwrap(), base64: false }
        );
        for bytes in [&[0u8, 159, 146, 150, 255, b'{'][..], b"nul\0inside", b"", b"\x01"] {
            let wire = encode(bytes);
            assert!(wire.base64, "{bytes:?} must be base64");
            assert_eq!(decode(&wire.text, wire.base64), bytes);
        }
        assert_eq!(decode("not base64!", true), b"not base64!");
    }

    #[test]
    fn group_is_the_task_id() {
        let body = br#"{"message_id":"x","task_id":"0190-task","step":"plan"}"#;
        assert_eq!(group_id(body, "0190-task/plan/r0"), "0190-task");
        assert_eq!(group_id(b"garbage", "0190-task/plan/r0"), "0190-task");
        assert_eq!(group_id(b"garbage", "plain"), "plain");
        assert_eq!(step_of(body).as_deref(), Some("plan"));
        assert_eq!(step_of(b"garbage"), None);
    }

    #[test]
    fn long_or_odd_ids_are_hashed() {
        assert_eq!(sqs_id("t/plan/r0"), "t/plan/r0");
        let long = "x".repeat(200);
        assert_eq!(sqs_id(&long).len(), 64);
        assert_eq!(sqs_id(&long), sqs_id(&long));
        assert_eq!(sqs_id("with space").len(), 64);
    }
}
