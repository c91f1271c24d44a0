//! The state store port: tasks, their event logs, artifacts and exactly-once step commits.

use crate::envelope::Envelope;
use crate::event::{Event, EventRecord};
use crate::ids::{IdempotencyKey, TaskId};
use crate::step::ArtifactName;
use crate::task::{Task, TaskState};
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};

/// A step's result, to be committed in one transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepCommit {
    /// The task.
    pub task_id: TaskId,
    /// The message's idempotency key; a second commit under the same key is refused.
    pub key: IdempotencyKey,
    /// Events to append.
    pub events: Vec<Event>,
    /// Artifacts to store (replacing same-named ones).
    pub artifacts: Vec<(ArtifactName, Vec<u8>)>,
    /// The messages the step wants published, recorded so a redelivery can re-publish them.
    pub next: Vec<Envelope>,
    /// When.
    pub at: Timestamp,
}

/// The result of [`StateStore::commit_step`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommitOutcome {
    /// The commit was written.
    Committed,
    /// A commit under this key exists already; nothing was written. Carries the messages that
    /// commit recorded, so the caller can make sure they were published.
    AlreadyCommitted {
        /// The recorded next messages.
        next: Vec<Envelope>,
    },
    /// The task is in a terminal state (e.g. cancelled); nothing was written.
    TaskFinished {
        /// Its state.
        state: TaskState,
    },
}

/// One task as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskSummary {
    /// The task.
    pub task: Task,
    /// Its current state.
    pub state: TaskState,
    /// When its last event was appended.
    pub updated_at: Timestamp,
}

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No task has this id.
    #[error("no task with id {0}; list tasks with `cadre status`")]
    TaskNotFound(TaskId),
    /// No task id starts with the given text, or more than one does.
    #[error("`{prefix}` matches {matches} tasks; give a longer prefix or the full id (see `cadre status`)")]
    AmbiguousPrefix {
        /// The text given.
        prefix: String,
        /// How many tasks matched (0 or more than 1).
        matches: usize,
    },
    /// A task with this id exists already.
    #[error("task {0} exists already")]
    TaskExists(TaskId),
    /// The backend is busy or unreachable for now.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// Stored data cannot be decoded.
    #[error("stored data is corrupt or of another version: {0}")]
    Corrupt(String),
}

impl StoreError {
    /// Whether the same call may succeed later.
    #[must_use]
    pub fn is_retryable(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }
}

/// Durable state of tasks.
#[async_trait::async_trait]
pub trait StateStore: Send + Sync {
    /// Stores a new task with its `Created` event as the first event of its log.
    ///
    /// # Errors
    /// MUST return [`StoreError::TaskExists`] when the id is taken, writing nothing.
    async fn create_task(&self, task: &Task) -> Result<(), StoreError>;

    /// The task's whole log, in order.
    ///
    /// # Errors
    /// MUST return [`StoreError::TaskNotFound`] for an unknown id.
    async fn events(&self, task: &TaskId) -> Result<Vec<EventRecord>, StoreError>;

    /// The task's log after position `after_seq`, for following progress.
    ///
    /// # Errors
    /// MUST return [`StoreError::TaskNotFound`] for an unknown id.
    async fn events_after(
        &self,
        task: &TaskId,
        after_seq: u64,
    ) -> Result<Vec<EventRecord>, StoreError>;

    /// Appends events outside a step commit (progress, a person's decision). When `only_if` is given,
    /// the events are appended only if the task's current state satisfies it, atomically with the check,
    /// and the state found is returned either way.
    ///
    /// # Errors
    /// MUST return [`StoreError::TaskNotFound`] for an unknown id.
    async fn append(
        &self,
        task: &TaskId,
        events: Vec<Event>,
        at: Timestamp,
        only_if: Option<fn(TaskState) -> bool>,
    ) -> Result<(TaskState, bool), StoreError>;

    /// Commits a step's result atomically with its idempotency key.
    ///
    /// # Errors
    /// MUST return [`StoreError::TaskNotFound`] for an unknown task. A key committed before MUST give
    /// [`CommitOutcome::AlreadyCommitted`] and write nothing; a task in a terminal state MUST give
    /// [`CommitOutcome::TaskFinished`] and write nothing.
    async fn commit_step(&self, commit: StepCommit) -> Result<CommitOutcome, StoreError>;

    /// The next messages recorded by the commit under `key`, or `None` when nothing was committed under it.
    /// The engine asks before running a step, so a redelivered message does not redo committed work.
    ///
    /// # Errors
    /// MUST return [`StoreError::Unavailable`] when the backend cannot be read.
    async fn committed_next(
        &self,
        key: &IdempotencyKey,
    ) -> Result<Option<Vec<Envelope>>, StoreError>;

    /// An artifact's bytes, if stored.
    ///
    /// # Errors
    /// MUST return [`StoreError::TaskNotFound`] for an unknown task.
    async fn artifact(
        &self,
        task: &TaskId,
        name: &ArtifactName,
    ) -> Result<Option<Vec<u8>>, StoreError>;

    /// The task and its current state.
    ///
    /// # Errors
    /// MUST return [`StoreError::TaskNotFound`] for an unknown id.
    async fn task(&self, task: &TaskId) -> Result<TaskSummary, StoreError>;

    /// Tasks, newest first, at most `limit`.
    ///
    /// # Errors
    /// MUST return [`StoreError::Unavailable`] when the backend cannot be read.
    async fn list_tasks(&self, limit: usize) -> Result<Vec<TaskSummary>, StoreError>;

    /// Resolves a unique id prefix (as printed by `cadre status`) to a task id.
    ///
    /// # Errors
    /// MUST return [`StoreError::AmbiguousPrefix`] when no task, or more than one, matches.
    async fn resolve_prefix(&self, prefix: &str) -> Result<TaskId, StoreError>;
}
