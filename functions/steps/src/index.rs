//! The `index` step.
//!
//! Reads: the task and a fresh checkout of its base commit. Brings the knowledge base's index of the
//! task's repository up to date with that commit — incrementally: chunks are keyed by git blob id, so
//! only files whose content changed since the last run are parsed. Writes: an `Indexed` event.
//! Publishes: `plan`.
//!
//! An index failure never fails the task: retrieval is an aid, not a precondition. The step then
//! records why in the event's `note`, and `plan`/`generate` fall back to the files the goal names.

use cadre_domain::envelope::{Envelope, StepPayload};
use cadre_domain::event::Event;
use cadre_domain::ports::knowledge::{IndexReport, IndexScope, KnowledgeError, VectorStatus};
use cadre_domain::step::{StepError, StepOutcome};
use cadre_domain::{Ports, Task, TraceId};
use std::path::Path;

/// Runs the index step for `task`.
///
/// # Errors
/// Workspace failures (the checkout) and a knowledge base that is unavailable for now (retried by the
/// engine); any other index problem is recorded and the task goes on.
pub async fn index(task: &Task, trace: &TraceId, ports: &Ports) -> Result<StepOutcome, StepError> {
    let worktree = ports
        .workspace
        .checkout(Path::new(&task.repo), &task.base_commit, None, &format!("{}-index", task.id))
        .await?;
    let result = match ports.knowledge.key_for(&task.repo) {
        Ok(repo) => ports.knowledge.index(&repo, &worktree.path, IndexScope::Changed).await,
        Err(error) => Err(error),
    };
    if let Err(error) = ports.workspace.remove(&worktree).await {
        tracing::warn!(%error, "could not remove the index worktree");
    }
    let event = match result {
        Ok(report) => indexed(&report),
        Err(error) if error.is_retryable() => return Err(StepError::Knowledge(error)),
        Err(error) => {
            tracing::warn!(%error, "indexing failed; planning without retrieved context");
            Event::Indexed {
                files: 0,
                chunks: 0,
                parsed: 0,
                elapsed_ms: 0,
                note: Some(format!("index failed, no retrieved context: {error}")),
            }
        }
    };
    Ok(StepOutcome {
        events: vec![event],
        artifacts: Vec::new(),
        next: vec![Envelope::new(task.id.clone(), trace.clone(), StepPayload::Plan)],
    })
}

fn indexed(report: &IndexReport) -> Event {
    let note = match &report.vectors {
        VectorStatus::NoEmbedder => {
            Some("no embedder configured: lexical retrieval only".to_owned())
        }
        VectorStatus::Embedded { .. } => None,
        VectorStatus::Failed { error } => {
            Some(format!("embedding failed, lexical retrieval only for new chunks: {error}"))
        }
    };
    Event::Indexed {
        files: report.totals.files,
        chunks: report.totals.chunks,
        parsed: report.files_parsed,
        elapsed_ms: report.elapsed_ms,
        note,
    }
}

/// Whether an error means "no index yet", which retrieval treats as "no context" rather than a failure.
#[must_use]
pub fn is_not_indexed(error: &KnowledgeError) -> bool {
    matches!(error, KnowledgeError::NotIndexed { .. })
}
