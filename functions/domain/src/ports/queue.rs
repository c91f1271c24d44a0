//! The queue port: at-least-once delivery of opaque messages between steps.
//!
//! Bodies are bytes, not envelopes, so that a malformed message can still be received, recognised as
//! malformed by the engine and dead-lettered with its reason instead of being lost in the adapter.

use crate::ids::MessageId;
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// A message to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingMessage {
    /// Unique id; publishing the same id again while the first is still queued is a no-op.
    pub id: MessageId,
    /// The payload.
    pub body: Vec<u8>,
    /// Hold the message back this long before its first delivery.
    pub delay: Duration,
}

/// An opaque token proving the holder received a delivery; acks with a stale receipt are refused, so
/// a worker whose visibility timeout ran out cannot ack the message another worker now holds.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Receipt(pub String);

/// A received message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The receipt to ack, retry or dead-letter with.
    pub receipt: Receipt,
    /// The message's id.
    pub id: MessageId,
    /// The payload.
    pub body: Vec<u8>,
    /// How many times it has been delivered, this one included (1-based).
    pub delivery_count: u32,
    /// When it was first published.
    pub published_at: Timestamp,
}

/// A message that could not be processed, kept with the reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetter {
    /// The message's id.
    pub id: MessageId,
    /// The original bytes, untouched.
    pub body: Vec<u8>,
    /// Why it was dead-lettered.
    pub reason: String,
    /// How many times it had been delivered.
    pub delivery_count: u32,
    /// When it was dead-lettered.
    pub dead_at: Timestamp,
}

/// Counts for monitoring and for deciding that a run is idle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct QueueDepth {
    /// Deliverable now.
    pub ready: u64,
    /// Delivered and not yet acked, or delayed for a retry.
    pub pending: u64,
    /// Dead letters kept.
    pub dead: u64,
}

/// Why a queue operation failed.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// The receipt is unknown or stale (the message was redelivered to someone else, or acked).
    #[error("receipt {0:?} is not current; the message was redelivered or already settled")]
    StaleReceipt(Receipt),
    /// The backend is busy or unreachable for now.
    #[error("queue unavailable: {0}")]
    Unavailable(String),
    /// The backend's data is not what this build expects.
    #[error("queue storage is corrupt or of another version: {0}")]
    Corrupt(String),
}

impl QueueError {
    /// Whether the same call may succeed later.
    #[must_use]
    pub fn is_retryable(&self) -> bool {
        matches!(self, QueueError::Unavailable(_))
    }
}

/// A durable, at-least-once message queue.
#[async_trait::async_trait]
pub trait Queue: Send + Sync {
    /// Publishes messages durably (all or none).
    ///
    /// # Errors
    /// MUST return an error, and publish none of `messages`, when any cannot be stored. A message whose
    /// id is already queued MUST be ignored, not duplicated.
    async fn publish(&self, messages: Vec<OutgoingMessage>) -> Result<(), QueueError>;

    /// Takes up to `max` deliverable messages and hides them from other receivers for `visibility`.
    /// A message not acked within `visibility` becomes deliverable again with a higher delivery count.
    ///
    /// # Errors
    /// MUST return [`QueueError::Unavailable`] when the backend cannot be read; it MUST NOT lose a
    /// message it failed to return. A message delivered more than the queue's maximum number of times
    /// without an ack MUST be moved to the dead letters with a reason saying so, instead of returned.
    async fn receive(&self, max: usize, visibility: Duration) -> Result<Vec<Delivery>, QueueError>;

    /// Settles deliveries as done; they are never delivered again.
    ///
    /// # Errors
    /// MUST return [`QueueError::StaleReceipt`] for a receipt that is no longer current; the other
    /// receipts in the call are still acked.
    async fn ack(&self, receipts: &[Receipt]) -> Result<(), QueueError>;

    /// Makes a delivery deliverable again after `delay` (a nack with backoff).
    ///
    /// # Errors
    /// MUST return [`QueueError::StaleReceipt`] for a receipt that is no longer current.
    async fn retry_later(&self, receipt: &Receipt, delay: Duration) -> Result<(), QueueError>;

    /// Extends the visibility of a delivery still being worked on (a heartbeat for long steps).
    ///
    /// # Errors
    /// MUST return [`QueueError::StaleReceipt`] for a receipt that is no longer current.
    async fn extend(&self, receipt: &Receipt, visibility: Duration) -> Result<(), QueueError>;

    /// Moves a delivery to the dead letters, keeping its bytes and `reason`.
    ///
    /// # Errors
    /// MUST return [`QueueError::StaleReceipt`] for a receipt that is no longer current.
    async fn dead_letter(&self, receipt: &Receipt, reason: &str) -> Result<(), QueueError>;

    /// The dead letters, oldest first, at most `limit`.
    ///
    /// # Errors
    /// MUST return [`QueueError::Unavailable`] when the backend cannot be read.
    async fn dead_letters(&self, limit: usize) -> Result<Vec<DeadLetter>, QueueError>;

    /// Current counts.
    ///
    /// # Errors
    /// MUST return [`QueueError::Unavailable`] when the backend cannot be read.
    async fn depth(&self) -> Result<QueueDepth, QueueError>;
}
