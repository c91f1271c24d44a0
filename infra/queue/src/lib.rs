//! Adapters for the [`Queue`](cadre_domain::ports::queue::Queue) port: the at-least-once message bus
//! between Cadre's stateless steps.
//!
//! Key design decision: the embedded queue is a table in an SQLite file, not a server. Every process that
//! opens the same file shares the same queues, so a laptop run needs nothing installed, and a crashed
//! worker's messages come back after their visibility timeout exactly as they would on a cloud queue.
//! Time is read only through the `Clock` port, so visibility timeouts are tested without waiting.
//!
//! This crate must not know about envelopes, steps or tasks (bodies are opaque bytes), must not depend on
//! another infra crate, and must never block the async runtime with a database call.

pub mod embedded;

pub use embedded::{EmbeddedQueue, QueueConfig};
