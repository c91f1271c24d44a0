//! The engine: takes messages off the queue and runs them through the steps with the guarantees a
//! durable pipeline needs: each message's result is committed exactly once under its idempotency key,
//! retryable failures come back with exponential backoff and full jitter, hopeless ones go to the dead
//! letters with their reason, panics are contained to the message that caused them, a long step keeps its
//! message hidden with heartbeats, and a cancelled task stops.
//!
//! Key decision: the engine, not the step, writes state. A step returns a
//! [`cadre_domain::StepOutcome`]; the engine commits it in one transaction with the idempotency key and
//! only then publishes the next messages and acks. A crash anywhere leaves either nothing committed (the
//! message is redelivered and the step runs again from scratch) or the commit done (the redelivery finds
//! it and re-publishes the recorded next messages without re-running the step).
//!
//! The engine must not know any adapter: it sees only the ports.
#![deny(clippy::unwrap_used, clippy::expect_used)]

mod backoff;
mod dispatch;
mod handle;
mod join;
mod lane;
mod outcome;
mod submit;
mod worker;

pub use backoff::Backoff;
pub use handle::Handled;
pub use outcome::{record_outcome, OutcomePorts};
pub use submit::{cancel, raise_budget, resume, submit, EngineError};
pub use worker::{Engine, EngineConfig};
