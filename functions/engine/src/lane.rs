//! A candidate's lane: the view of its task that one candidate of a best-of-N task runs in.
//!
//! The steps know nothing of candidates. They read the task's artifacts, check out worktrees, run the
//! tests and call the model through [`Ports`]; for candidate `k` the engine hands them ports that
//! name every artifact but the shared plan `c<k>-…` (`c2-patch-r1`), suffix every worktree label and
//! sandbox cache key with `-c<k>`, and tell the model which independent attempt it is (with the
//! response cache bypassed, so candidates do not share one cached answer). The step's outcome is then
//! moved into the lane: its events wrapped in [`Event::Candidate`], its artifacts renamed, its next
//! messages wrapped, and a `review` it asks for dropped — a candidate whose tests pass has ended, and
//! the join (see [`crate::join`]) decides what the task proposes.
//!
//! This keeps the plain pipeline (one candidate) exactly what it was: no step has a candidate branch.

use cadre_domain::envelope::{Envelope, StepPayload};
use cadre_domain::event::{Event, EventRecord};
use cadre_domain::ids::{CommitId, IdempotencyKey, TaskId};
use cadre_domain::ports::model::{CachePolicy, Model, ModelError, ModelReply, ModelRequest};
use cadre_domain::ports::sandbox::{RunOutput, RunSpec, Sandbox, SandboxError};
use cadre_domain::ports::store::{CommitOutcome, StateStore, StepCommit, StoreError, TaskSummary};
use cadre_domain::ports::workspace::{FileWrite, RepoStatus, Workspace, WorkspaceError, Worktree};
use cadre_domain::report::Isolation;
use cadre_domain::step::{ArtifactName, StepOutcome};
use cadre_domain::task::TaskState;
use cadre_domain::time::Timestamp;
use cadre_domain::Ports;
use std::path::Path;
use std::sync::Arc;

/// Sampling temperature of a candidate's calls: candidates differ only if the model may vary, and
/// 1.0 is what Gemini 3 models are tuned for.
const CANDIDATE_TEMPERATURE: f32 = 1.0;

/// The ports candidate `candidate` of `of` runs its steps with.
pub(crate) fn ports(ports: &Ports, candidate: u32, of: u32) -> Ports {
    Ports {
        store: Arc::new(LaneStore { inner: ports.store.clone(), candidate }),
        workspace: Arc::new(LaneWorkspace { inner: ports.workspace.clone(), candidate }),
        sandbox: Arc::new(LaneSandbox { inner: ports.sandbox.clone(), candidate }),
        model: Arc::new(LaneModel { inner: ports.model.clone(), candidate, of }),
        ..ports.clone()
    }
}

/// A step's outcome moved into candidate `candidate`'s lane.
pub(crate) fn outcome(outcome: StepOutcome, candidate: u32) -> StepOutcome {
    let lane = Some(candidate);
    StepOutcome {
        events: outcome.events.into_iter().map(|e| wrap(e, candidate)).collect(),
        artifacts: outcome
            .artifacts
            .into_iter()
            .map(|(name, bytes)| (name.for_candidate(lane), bytes))
            .collect(),
        next: outcome
            .next
            .into_iter()
            .filter(|e| !matches!(e.payload, StepPayload::Review { .. }))
            .map(|e| Envelope::new(e.task_id, e.trace_id, e.payload.for_candidate(lane)))
            .collect(),
    }
}

/// `event` as candidate `candidate`'s.
pub(crate) fn wrap(event: Event, candidate: u32) -> Event {
    Event::Candidate { candidate, event: Box::new(event) }
}

/// The task's store, with the candidate's artifacts under its own names.
struct LaneStore {
    inner: Arc<dyn StateStore>,
    candidate: u32,
}

#[async_trait::async_trait]
impl StateStore for LaneStore {
    async fn create_task(&self, task: &cadre_domain::Task) -> Result<(), StoreError> {
        self.inner.create_task(task).await
    }

    async fn events(&self, task: &TaskId) -> Result<Vec<EventRecord>, StoreError> {
        self.inner.events(task).await
    }

    async fn events_after(
        &self,
        task: &TaskId,
        after_seq: u64,
    ) -> Result<Vec<EventRecord>, StoreError> {
        self.inner.events_after(task, after_seq).await
    }

    async fn append(
        &self,
        task: &TaskId,
        events: Vec<Event>,
        at: Timestamp,
        only_if: Option<fn(TaskState) -> bool>,
    ) -> Result<(TaskState, bool), StoreError> {
        self.inner.append(task, events, at, only_if).await
    }

    async fn commit_step(&self, commit: StepCommit) -> Result<CommitOutcome, StoreError> {
        self.inner.commit_step(commit).await
    }

    async fn committed_next(
        &self,
        key: &IdempotencyKey,
    ) -> Result<Option<Vec<Envelope>>, StoreError> {
        self.inner.committed_next(key).await
    }

    async fn artifact(
        &self,
        task: &TaskId,
        name: &ArtifactName,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.artifact(task, &name.clone().for_candidate(Some(self.candidate))).await
    }

    async fn task(&self, task: &TaskId) -> Result<TaskSummary, StoreError> {
        self.inner.task(task).await
    }

    async fn list_tasks(&self, limit: usize) -> Result<Vec<TaskSummary>, StoreError> {
        self.inner.list_tasks(limit).await
    }

    async fn resolve_prefix(&self, prefix: &str) -> Result<TaskId, StoreError> {
        self.inner.resolve_prefix(prefix).await
    }
}

/// Worktrees of their own, so candidates at the same round never share a directory.
struct LaneWorkspace {
    inner: Arc<dyn Workspace>,
    candidate: u32,
}

#[async_trait::async_trait]
impl Workspace for LaneWorkspace {
    async fn inspect(&self, path: &Path) -> Result<RepoStatus, WorkspaceError> {
        self.inner.inspect(path).await
    }

    async fn checkout(
        &self,
        repo: &Path,
        base: &CommitId,
        patch: Option<&str>,
        label: &str,
    ) -> Result<Worktree, WorkspaceError> {
        let label = format!("{label}-c{}", self.candidate);
        self.inner.checkout(repo, base, patch, &label).await
    }

    async fn list_files(&self, worktree: &Worktree) -> Result<Vec<String>, WorkspaceError> {
        self.inner.list_files(worktree).await
    }

    async fn read_file(
        &self,
        worktree: &Worktree,
        path: &str,
    ) -> Result<Option<String>, WorkspaceError> {
        self.inner.read_file(worktree, path).await
    }

    async fn write_files(
        &self,
        worktree: &Worktree,
        files: &[FileWrite],
    ) -> Result<(), WorkspaceError> {
        self.inner.write_files(worktree, files).await
    }

    async fn diff(&self, worktree: &Worktree) -> Result<String, WorkspaceError> {
        self.inner.diff(worktree).await
    }

    async fn remove(&self, worktree: &Worktree) -> Result<(), WorkspaceError> {
        self.inner.remove(worktree).await
    }

    async fn apply_to_repo(&self, repo: &Path, patch: &str) -> Result<(), WorkspaceError> {
        self.inner.apply_to_repo(repo, patch).await
    }
}

/// Test runs with a build cache of their own: one candidate's build never reuses or races another's.
struct LaneSandbox {
    inner: Arc<dyn Sandbox>,
    candidate: u32,
}

#[async_trait::async_trait]
impl Sandbox for LaneSandbox {
    async fn run(&self, spec: &RunSpec) -> Result<RunOutput, SandboxError> {
        let mut spec = spec.clone();
        spec.cache = spec.cache.map(|key| format!("{key}-c{}", self.candidate));
        self.inner.run(&spec).await
    }

    fn isolation(&self) -> Isolation {
        self.inner.isolation()
    }
}

/// The model, told which independent attempt it is, sampling, and never answering from the cache.
struct LaneModel {
    inner: Arc<dyn Model>,
    candidate: u32,
    of: u32,
}

impl LaneModel {
    fn request(&self, request: &ModelRequest) -> ModelRequest {
        let mut request = request.clone();
        request.system.push_str(&format!(
            "\n\n(Candidate {} of {}: one of several independent attempts at this task. They are ranked by \
             passing tests first, then by the smallest change.)",
            self.candidate, self.of
        ));
        request.cache = CachePolicy::Bypass;
        if request.temperature.is_none_or(|t| t == 0.0) {
            request.temperature = Some(CANDIDATE_TEMPERATURE);
        }
        request
    }
}

#[async_trait::async_trait]
impl Model for LaneModel {
    async fn complete(&self, request: &ModelRequest) -> Result<ModelReply, ModelError> {
        self.inner.complete(&self.request(request)).await
    }

    async fn stream(
        &self,
        request: &ModelRequest,
        on_text: &(dyn for<'t> Fn(&'t str) + Send + Sync),
    ) -> Result<ModelReply, ModelError> {
        self.inner.stream(&self.request(request), on_text).await
    }

    async fn count_tokens(&self, request: &ModelRequest) -> Result<u64, ModelError> {
        self.inner.count_tokens(&self.request(request)).await
    }

    fn describe(&self) -> String {
        self.inner.describe()
    }
}
