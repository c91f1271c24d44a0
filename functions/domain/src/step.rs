//! What a step hands back to the engine, and how a step fails.
//!
//! Steps do not write state themselves: they return a [`StepOutcome`] and the engine commits it in one
//! transaction together with the message's idempotency key. A step that crashes half-way has
//! therefore written nothing, and a step that ran twice is committed once.

use crate::envelope::Envelope;
use crate::event::Event;
use crate::ports::knowledge::KnowledgeError;
use crate::ports::model::ModelError;
use crate::ports::sandbox::SandboxError;
use crate::ports::store::StoreError;
use crate::ports::workspace::WorkspaceError;
use serde::{Deserialize, Serialize};

/// The name of a stored artifact of a task.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ArtifactName(String);

impl ArtifactName {
    /// The plan (JSON [`crate::Plan`]).
    #[must_use]
    pub fn plan() -> Self {
        ArtifactName("plan".into())
    }

    /// The cumulative patch of a round (a unified diff against the base commit).
    #[must_use]
    pub fn patch(round: u32) -> Self {
        ArtifactName(format!("patch-r{round}"))
    }

    /// The test report of a round (JSON [`crate::TestReport`]).
    #[must_use]
    pub fn report(round: u32) -> Self {
        ArtifactName(format!("report-r{round}"))
    }

    /// The model transcript of a step (JSON), kept so a run can be inspected and evaluated.
    #[must_use]
    pub fn transcript(step: crate::StepKind, round: u32) -> Self {
        ArtifactName(format!("transcript-{step}-r{round}"))
    }

    /// The context retrieved for a step (JSON: what was chosen and how), kept so retrieval can be
    /// evaluated against what the step then did.
    #[must_use]
    pub fn context(step: crate::StepKind, round: u32) -> Self {
        ArtifactName(format!("context-{step}-r{round}"))
    }

    /// This artifact as candidate `candidate` of a best-of-N task stores it (`c<candidate>-<name>`),
    /// or as it is for `None`. The plan is the task's, shared by every candidate, and keeps its name.
    #[must_use]
    pub fn for_candidate(self, candidate: Option<u32>) -> Self {
        match candidate {
            Some(c) if self != ArtifactName::plan() => ArtifactName(format!("c{c}-{}", self.0)),
            _ => self,
        }
    }

    /// Wraps a stored name.
    #[must_use]
    pub fn new(name: impl Into<String>) -> Self {
        ArtifactName(name.into())
    }

    /// The name as text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for ArtifactName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Everything a step produced, committed atomically by the engine.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StepOutcome {
    /// Events to append to the task's log.
    pub events: Vec<Event>,
    /// Artifacts to store (name, bytes).
    pub artifacts: Vec<(ArtifactName, Vec<u8>)>,
    /// Messages to publish once the rest is committed.
    pub next: Vec<Envelope>,
}

/// Why a step could not finish.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    /// The model call failed.
    #[error("model: {0}")]
    Model(#[from] ModelError),
    /// Running the tests failed to even start or finish.
    #[error("sandbox: {0}")]
    Sandbox(#[from] SandboxError),
    /// The worktree could not be prepared, read or written.
    #[error("workspace: {0}")]
    Workspace(#[from] WorkspaceError),
    /// The store could not be read.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// The knowledge base failed.
    #[error("knowledge base: {0}")]
    Knowledge(#[from] KnowledgeError),
    /// The model's output stayed unusable after the allowed corrections; the task fails with this reason.
    #[error("{reason}")]
    Unusable {
        /// What was wrong with the last reply.
        reason: String,
    },
    /// State the step needs is missing or corrupt (e.g. no plan artifact); retrying cannot help.
    #[error("missing state: {what}")]
    MissingState {
        /// What is missing.
        what: String,
    },
}

impl StepError {
    /// Whether running the step again may succeed.
    #[must_use]
    pub fn is_retryable(&self) -> bool {
        match self {
            StepError::Model(e) => e.is_retryable(),
            StepError::Sandbox(e) => e.is_retryable(),
            StepError::Workspace(e) => e.is_retryable(),
            StepError::Store(e) => e.is_retryable(),
            StepError::Knowledge(e) => e.is_retryable(),
            StepError::Unusable { .. } | StepError::MissingState { .. } => false,
        }
    }
}
