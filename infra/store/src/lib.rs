//! Adapters for the [`StateStore`](cadre_domain::ports::store::StateStore) port: tasks, their event logs,
//! artifacts and exactly-once step commits.
//!
//! Key design decision: a task's state is never stored. Only the append-only event log is, and the state
//! is derived with `TaskState::fold` inside the same transaction that checks or appends, so a condition
//! ("only if awaiting review", "not if cancelled") and the write it guards can never disagree.
//!
//! This crate must not interpret events beyond folding them, must not depend on another infra crate, and
//! must never block the async runtime with a database call.

pub mod sqlite;

pub use sqlite::SqliteStore;
