//! The JSON wire types of the task API, shared by the server and [`ApiClient`](crate::ApiClient).
//!
//! Domain types (`Task`, `TaskState`, `EventRecord`, `Plan`, `TestReport`) travel in their own serde
//! form, so the API cannot drift from what the store holds. Money is given in both micro-dollars
//! (exact) and dollars (readable).

use cadre_domain::event::EventRecord;
use cadre_domain::{Harness, Plan, ScanLevel, Task, TaskState, TestReport, Timestamp};
use serde::{Deserialize, Serialize};

/// `POST /v1/tasks`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateTask {
    /// What is to be done, in words (with any editor context appended).
    pub goal: String,
    /// The repository: a path the deployment can read (a git URL is refused: not supported yet).
    pub repository: String,
    /// Knobs; every one has the deployment's default.
    #[serde(default)]
    pub settings: CreateSettings,
}

/// The settings a caller may choose for a new task.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateSettings {
    /// The most the task may spend on model calls, in US dollars.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget_usd: Option<f64>,
    /// How changes are generated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub harness: Option<Harness>,
    /// Generate→test rounds before the task gives up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rounds: Option<u32>,
    /// The command that runs the repository's tests (detected when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_command: Option<String>,
    /// Scanners run after each round's tests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scan: Option<ScanLevel>,
}

/// A task as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskView {
    /// The task as created (its `settings.team` is the caller's team).
    pub task: Task,
    /// Its state now.
    pub state: TaskState,
    /// When its log last grew.
    pub updated_at: Timestamp,
    /// Model spend so far, in micro-dollars; absent when the ledger did not answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_micros: Option<u64>,
    /// The same in dollars.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_usd: Option<f64>,
}

/// `GET /v1/tasks`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskList {
    /// The team's tasks, newest first.
    pub tasks: Vec<TaskView>,
}

/// `GET /v1/tasks/{id}/events?after=N&wait=SECS`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventsPage {
    /// Events after `after`, in order; empty when the wait ended with none.
    pub events: Vec<EventRecord>,
    /// The task's state when the answer was made.
    pub state: TaskState,
    /// Model spend so far, in micro-dollars.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_micros: Option<u64>,
    /// The `after` to ask with next.
    pub next_after: u64,
}

/// `GET /v1/tasks/{id}/plan`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanView {
    /// The plan, once made.
    pub plan: Option<Plan>,
}

/// `GET /v1/tasks/{id}/rounds/{round}/report`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReportView {
    /// The round.
    pub round: u32,
    /// Its test report, once the tests ran.
    pub report: Option<TestReport>,
}

/// `GET /v1/tasks/{id}/proposal`: the change a task awaiting review proposes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProposalView {
    /// The proposed round.
    pub round: u32,
    /// The repository the patch applies to.
    pub repository: String,
    /// The cumulative patch: a unified diff against the task's base commit.
    pub patch: String,
    /// The plan.
    pub plan: Option<Plan>,
    /// The proposed round's test report.
    pub report: Option<TestReport>,
}

/// `POST /v1/tasks/{id}/accept`: the caller applied round `round`'s change itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Accept {
    /// The round applied; it must be the one awaiting review.
    pub round: u32,
}

/// `POST /v1/tasks/{id}/reject` and `/cancel`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reason {
    /// Why, kept in the task's log.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// `POST /v1/tasks/{id}/resume`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Resume {
    /// Raise the task's budget to this many dollars first (needed after `budget_exhausted`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget_usd: Option<f64>,
}

/// The answer of accept, reject, cancel and resume.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    /// The task's state after the call.
    pub state: TaskState,
    /// Whether the call changed anything (a cancel of a finished task changes nothing).
    pub changed: bool,
}

/// Dollars from micro-dollars.
#[must_use]
#[allow(clippy::cast_precision_loss)]
pub fn usd(micros: u64) -> f64 {
    micros as f64 / 1e6
}
