//! Long-term memory of how tasks ended: what was asked, what changed, and whether a person accepted it,
//! stored in the knowledge base so later tasks in the same repository are shown it.
//!
//! Recording is best effort by design: a memory that cannot be stored is logged and dropped, because
//! losing it costs a little context later, while failing the decision that triggered it would lose the
//! person's work now.

use cadre_domain::event::Event;
use cadre_domain::ports::knowledge::{MemoryKind, NewMemory, TaskVerdict};
use cadre_domain::ports::{Clock, KnowledgeBase, StateStore};
use cadre_domain::{Ports, TaskId};

/// The ports recording an outcome needs (no model, sandbox or queue), so commands that only decide on
/// a task can record it too.
#[derive(Clone, Copy)]
pub struct OutcomePorts<'a> {
    /// Where the task's log is.
    pub store: &'a dyn StateStore,
    /// Where memories go.
    pub knowledge: &'a dyn KnowledgeBase,
    /// When it was learnt.
    pub clock: &'a dyn Clock,
}

impl<'a> From<&'a Ports> for OutcomePorts<'a> {
    fn from(ports: &'a Ports) -> Self {
        OutcomePorts {
            store: ports.store.as_ref(),
            knowledge: ports.knowledge.as_ref(),
            clock: ports.clock.as_ref(),
        }
    }
}

/// Most characters of the goal kept as the memory's title.
const TITLE_CHARS: usize = 160;

/// Stores a task-outcome memory for `task` with `verdict` and an optional reason (a rejection's or a
/// failure's). Returns the memory id, or `None` when it could not be stored (logged).
pub async fn record_outcome(
    ports: OutcomePorts<'_>,
    task: &TaskId,
    verdict: TaskVerdict,
    reason: Option<&str>,
) -> Option<u64> {
    let (summary, events) = match (ports.store.task(task).await, ports.store.events(task).await) {
        (Ok(summary), Ok(events)) => (summary, events),
        (Err(error), _) | (_, Err(error)) => {
            tracing::warn!(%error, "task outcome not remembered: the task could not be read");
            return None;
        }
    };
    let mut body = String::new();
    let mut tags = Vec::new();
    for record in &events {
        match &record.event {
            Event::PlanReady { summary, .. } => body.push_str(&format!("plan: {summary}\n")),
            Event::PatchReady { files_changed, lines_added, lines_removed, .. } => {
                tags.clone_from(files_changed);
                body.push_str(&format!(
                    "changed {} (+{lines_added} -{lines_removed})\n",
                    files_changed.join(", ")
                ));
            }
            Event::TestsFinished { round, passed, summary } => {
                let verdict = if *passed { "passed" } else { "failed" };
                body.push_str(&format!("tests round {round} {verdict}: {summary}\n"));
            }
            _ => {}
        }
    }
    if let Some(reason) = reason {
        body.push_str(&format!("outcome: {reason}\n"));
    }
    let memory = NewMemory {
        kind: MemoryKind::TaskOutcome,
        title: summary.task.goal.chars().take(TITLE_CHARS).collect(),
        body,
        tags,
        task: Some(task.clone()),
        verdict: Some(verdict),
        at: ports.clock.now(),
    };
    let repo = match ports.knowledge.key_for(&summary.task.repo) {
        Ok(repo) => repo,
        Err(error) => {
            tracing::warn!(%error, "task outcome not remembered: no knowledge-base key");
            return None;
        }
    };
    match ports.knowledge.remember(&repo, &memory).await {
        Ok(id) => Some(id),
        Err(error) => {
            tracing::warn!(%error, "task outcome not remembered");
            None
        }
    }
}
