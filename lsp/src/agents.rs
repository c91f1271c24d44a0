//! The one seam between the editor protocol and Cadre's engine: the [`Agents`] trait.
//!
//! The server knows tasks only through this trait, so it can be driven by the real engine (implemented
//! by the `cadre` binary over its store, queue and in-process worker), by a remote deployment, or by
//! an in-test double. Everything here is plain domain data: no `lsp-types` leak into it.

use std::path::{Path, PathBuf};

use cadre_domain::event::EventRecord;
use cadre_domain::ports::knowledge::{IndexReport, SearchResults};
use cadre_domain::ports::store::TaskSummary;
use cadre_domain::{Plan, Task, TaskId, TaskState, TestReport};
use serde::{Deserialize, Serialize};

use crate::settings::Settings;

/// What a person asked for from the editor. It decides the goal's wording and what happens when the
/// task is done (an explanation stops after the plan; everything else proposes a change).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Intent {
    /// Fix the problem a diagnostic reports.
    Fix,
    /// Do what a TODO or FIXME comment says.
    Todo,
    /// Implement the selected code or function (a stub, a signature, a docstring).
    Implement,
    /// Write tests for the selected code or function.
    Tests,
    /// Explain the selected code or function; no change is proposed.
    Explain,
    /// Refactor the selected code or function without changing behaviour.
    Refactor,
    /// Any change, described by the person.
    Plan,
}

impl Intent {
    /// Every intent, in the order code actions are offered.
    pub const ALL: [Intent; 7] = [
        Intent::Fix,
        Intent::Todo,
        Intent::Implement,
        Intent::Tests,
        Intent::Explain,
        Intent::Refactor,
        Intent::Plan,
    ];

    /// The code action's title, as the editor shows it.
    #[must_use]
    pub fn title(self) -> &'static str {
        match self {
            Intent::Fix => "Cadre: fix this",
            Intent::Todo => "Cadre: do this TODO",
            Intent::Implement => "Cadre: implement this",
            Intent::Tests => "Cadre: write tests for this",
            Intent::Explain => "Cadre: explain",
            Intent::Refactor => "Cadre: refactor…",
            Intent::Plan => "Cadre: plan a change…",
        }
    }

    /// The name used in command arguments (`"fix"`, `"todo"`, …).
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Intent::Fix => "fix",
            Intent::Todo => "todo",
            Intent::Implement => "implement",
            Intent::Tests => "tests",
            Intent::Explain => "explain",
            Intent::Refactor => "refactor",
            Intent::Plan => "plan",
        }
    }
}

/// A task to start: the goal (already carrying the editor context) and the file it is about, from
/// which the repository is found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskRequest {
    /// What was asked.
    pub intent: Intent,
    /// The goal in words, with the file, range, diagnostics and unsaved text appended.
    pub goal: String,
    /// The absolute path of the file the task is about; its git repository is the task's repository.
    pub file: PathBuf,
}

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

/// A proposed change and what explains it.
#[derive(Debug, Clone, PartialEq)]
pub struct Proposal {
    /// The round whose patch is proposed.
    pub round: u32,
    /// The repository the patch applies to (its top-level directory).
    pub repo: PathBuf,
    /// The cumulative patch, a unified diff against the task's base commit.
    pub patch: String,
    /// The plan, when stored.
    pub plan: Option<Plan>,
    /// The test report of the proposed round, when stored.
    pub report: Option<TestReport>,
}

/// Why an [`Agents`] call failed. The message is shown to the person as is, so it names the thing and
/// the value, then the fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AgentsError {
    /// The request cannot be done as asked (unknown task, wrong state, missing configuration).
    #[error("{0}")]
    Refused(String),
    /// A backend (store, queue, knowledge base) failed; the same call may work later.
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

/// Cadre's agents, as the language server uses them.
///
/// Implementations must be cheap to call concurrently: the server polls [`Agents::snapshot`] for
/// every task it follows.
#[async_trait::async_trait]
pub trait Agents: Send + Sync + 'static {
    /// Problems that will keep tasks from running (no model key, no sandbox), shown once when the
    /// editor connects. Empty when all is well.
    async fn check(&self) -> Vec<String>;

    /// Applies the editor's settings (model, endpoint, budget) to tasks started and run from now on.
    ///
    /// # Errors
    /// [`AgentsError::Refused`] when a setting is unusable (an unknown model spec, a negative budget);
    /// the previous settings then stay in force.
    async fn configure(&self, settings: &Settings) -> Result<(), AgentsError>;

    /// Starts a task; it runs in the background and is followed with [`Agents::snapshot`].
    ///
    /// # Errors
    /// [`AgentsError::Refused`] when the file is not in a git repository with a commit, or no model
    /// is configured; [`AgentsError::Unavailable`] when the task could not be stored or queued.
    async fn start(&self, request: TaskRequest) -> Result<TaskId, AgentsError>;

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

    /// The test report of one round, once the tests ran.
    ///
    /// # Errors
    /// [`AgentsError::Refused`] for an unknown task.
    async fn report(&self, task: &TaskId, round: u32) -> Result<Option<TestReport>, AgentsError>;

    /// The change a task awaiting review proposes.
    ///
    /// # Errors
    /// [`AgentsError::Refused`] when the task is unknown or not awaiting review.
    async fn proposal(&self, task: &TaskId) -> Result<Proposal, AgentsError>;

    /// Records that the person applied round `round`'s change in the editor. Writes nothing to disk:
    /// the editor applied the edit to its buffers.
    ///
    /// # Errors
    /// [`AgentsError::Refused`] when the task is unknown or no longer awaiting review of that round.
    async fn accept(&self, task: &TaskId, round: u32) -> Result<(), AgentsError>;

    /// Records that the person discarded the proposed change.
    ///
    /// # Errors
    /// [`AgentsError::Refused`] when the task is unknown or not awaiting review.
    async fn reject(&self, task: &TaskId, reason: Option<String>) -> Result<(), AgentsError>;

    /// Tasks, newest first, at most `limit`.
    ///
    /// # Errors
    /// [`AgentsError::Unavailable`] when the store cannot be read.
    async fn list(&self, limit: usize) -> Result<Vec<TaskSummary>, AgentsError>;

    /// Resolves a task id or unique prefix.
    ///
    /// # Errors
    /// [`AgentsError::Refused`] when no task, or more than one, matches.
    async fn resolve(&self, text: &str) -> Result<TaskId, AgentsError>;

    /// Searches the knowledge base of the repository at `root`.
    ///
    /// # Errors
    /// [`AgentsError::Refused`] when `root` was never indexed or the query has no searchable word.
    async fn search(
        &self,
        root: &Path,
        query: &str,
        limit: usize,
    ) -> Result<SearchResults, AgentsError>;

    /// Re-indexes the repository at `root`: files changed on disk, then `overlays` (repository-relative
    /// path, unsaved text) so the index matches what the editor shows. Writes nothing into `root`.
    ///
    /// # Errors
    /// [`AgentsError::Refused`] when `root` is not a readable directory.
    async fn reindex(
        &self,
        root: &Path,
        overlays: &[(String, String)],
    ) -> Result<IndexReport, AgentsError>;

    /// Re-indexes only `paths` (repository-relative, as saved on disk) of the repository at `root`:
    /// what `textDocument/didSave` asks for, so a save costs one file's parse, not a walk of the tree.
    /// The default re-indexes the repository's changed files, which includes these.
    ///
    /// # Errors
    /// [`AgentsError::Refused`] when `root` is not a readable directory or was never indexed;
    /// [`AgentsError::Unavailable`] when the knowledge base cannot be reached.
    async fn reindex_files(
        &self,
        root: &Path,
        paths: &[String],
    ) -> Result<IndexReport, AgentsError> {
        let _ = paths;
        self.reindex(root, &[]).await
    }

    /// Stops running steps for this process. Queued work stays queued and resumes on the next start.
    async fn shutdown(&self);
}
