//! Cadre's shared vocabulary: tasks, their event log, the message envelope that chains the steps,
//! and the ports (traits) through which steps and the engine reach the outside world.
//!
//! Key decision: a task's state is never stored, it is *derived* by folding the task's event log
//! ([`task::TaskState::fold`]), so any process that can read the log knows exactly where a task stopped.
//!
//! This crate must not do I/O: no tokio, no database, no HTTP, no logging. Adapters in `infra/`
//! implement the ports; everything else depends on this crate, never the other way round.
#![deny(missing_docs)]
#![deny(clippy::unwrap_used, clippy::expect_used)]

pub mod candidates;
pub mod envelope;
pub mod event;
pub mod ids;
pub mod plan;
pub mod ports;
pub mod report;
pub mod step;
pub mod task;
pub mod time;

pub use envelope::{Envelope, StepKind, StepPayload, SCHEMA_VERSION};
pub use event::{Event, EventRecord};
pub use ids::{CommitId, IdempotencyKey, MessageId, TaskId, TraceId};
pub use plan::{Plan, PlanItem};
pub use ports::Ports;
pub use report::TestReport;
pub use step::{ArtifactName, StepError, StepOutcome};
pub use task::{Harness, ScanLevel, StepThinking, Task, TaskSettings, TaskState, MAX_CANDIDATES};
pub use time::Timestamp;
