//! The one seam between the Agent Client Protocol and Cadre's engine: the [`Agents`] trait.
//!
//! The server knows tasks only through this trait, so it is driven by the real engine (implemented
//! by the `cadre` binary, which delegates to the LSP frontend's in-process agents) or by an in-test
//! double. It is the subset of the LSP frontend's `Agents` an ACP session needs, plus
//! [`Agents::repository`]; everything here is plain domain data, no protocol type leaks into it.

use std::path::{Path, PathBuf};

use cadre_domain::event::EventRecord;
use cadre_domain::{Plan, Task, TaskId, TaskState};

/// A task as seen from the editor: its current state, the events after the position asked for, and
/// what it has cost so far (when the usage ledger can be read).
#[derive(Debug, Clone, PartialEq)]
pub struct TaskSnapshot {
    /// The task as created.
    pub task: Task,
    /// Its state now.
    pub state: TaskState,
    /// Events after the position asked for, in order.
    pub events: Vec<EventRecord>,
    /// Model spend so far in micro-dollars; `None` when the ledger is unreachable.
    pub cost_micros: Option<u64>,
}

/// A proposed change: round `round`'s cumulative patch (a unified diff against the task's base
/// commit) for the repository at `repo`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proposal {
    /// The round whose patch is proposed.
    pub round: u32,
    /// The repository's top-level directory.
    pub repo: PathBuf,
    /// The cumulative patch.
    pub patch: String,
}

/// Why an [`Agents`] call failed. The message is shown to the person as is, so it names the thing and
/// the value, then the fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AgentsError {
    /// The request cannot be done as asked (unknown task, wrong state, missing configuration).
    #[error("{0}")]
    Refused(String),
    /// A backend (store, queue) failed; the same call may work later.
    #[error("{0}")]
    Unavailable(String),
}

impl AgentsError {
    /// Whether the same call may succeed later.
    #[must_use]
    pub fn is_retryable(&self) -> bool {
        matches!(self, AgentsError::Unavailable(_))
    }
}

/// Cadre's agents, as an ACP session uses them.
///
/// Implementations must be cheap to call concurrently: a prompt turn polls [`Agents::snapshot`]
/// while its task runs.
#[async_trait::async_trait]
pub trait Agents: Send + Sync + 'static {
    /// Problems that will keep tasks from running (no model key, no sandbox), shown when a session
    /// opens. Empty when all is well. Also starts the background worker, so tasks queued by an
    /// earlier session go on.
    async fn check(&self) -> Vec<String>;

    /// The top-level directory of the git repository `dir` is in.
    ///
    /// # Errors
    /// [`AgentsError::Refused`] when `dir` is not in a git repository or the repository has no commit.
    async fn repository(&self, dir: &Path) -> Result<PathBuf, AgentsError>;

    /// Starts a task with `goal` on the repository at `repo`; it runs in the background and is
    /// followed with [`Agents::snapshot`].
    ///
    /// # Errors
    /// [`AgentsError::Refused`] when `repo` is not a git repository with a commit or no model is
    /// configured; [`AgentsError::Unavailable`] when the task could not be stored or queued.
    async fn start(&self, goal: String, repo: &Path) -> Result<TaskId, AgentsError>;

    /// The task's state and its events after position `after_seq`.
    ///
    /// # Errors
    /// [`AgentsError::Refused`] for an unknown task.
    async fn snapshot(&self, task: &TaskId, after_seq: u64) -> Result<TaskSnapshot, AgentsError>;

    /// Cancels a task that has not finished; returns the state found and whether it was cancelled.
    ///
    /// # Errors
    /// [`AgentsError::Refused`] for an unknown task.
    async fn cancel(
        &self,
        task: &TaskId,
        reason: Option<String>,
    ) -> Result<(TaskState, bool), AgentsError>;

    /// The task's plan, once made.
    ///
    /// # Errors
    /// [`AgentsError::Refused`] for an unknown task.
    async fn plan(&self, task: &TaskId) -> Result<Option<Plan>, AgentsError>;

    /// The change a task awaiting review proposes.
    ///
    /// # Errors
    /// [`AgentsError::Refused`] when the task is unknown or not awaiting review.
    async fn proposal(&self, task: &TaskId) -> Result<Proposal, AgentsError>;

    /// Records that the person allowed round `round`'s change and it was written. Writes nothing
    /// itself: the server wrote the files (through the editor or to disk).
    ///
    /// # Errors
    /// [`AgentsError::Refused`] when the task is unknown or no longer awaiting review of that round.
    async fn accept(&self, task: &TaskId, round: u32) -> Result<(), AgentsError>;

    /// Records that the person rejected the proposed change.
    ///
    /// # Errors
    /// [`AgentsError::Refused`] when the task is unknown or not awaiting review.
    async fn reject(&self, task: &TaskId, reason: Option<String>) -> Result<(), AgentsError>;

    /// Resolves a task id or unique prefix (a session id may name a task).
    ///
    /// # Errors
    /// [`AgentsError::Refused`] when no task, or more than one, matches.
    async fn resolve(&self, text: &str) -> Result<TaskId, AgentsError>;

    /// Stops running steps for this process. Queued work stays queued and resumes on the next start.
    async fn shutdown(&self);
}
