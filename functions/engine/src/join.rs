//! The join of a best-of-N task: once every candidate has ended, rank them and propose the best.
//!
//! There is no coordinator and no waiting message. Every message that ends a candidate (its tests
//! passed, or it failed) is committed first, under its own key, like any step; then the engine
//! handling it reads the task's log and, if every candidate has ended, commits the ranking under the
//! task's one join key (`<task>/join/candidates`) together with the message that follows it: `review`
//! of the chosen candidate's round, or the task's failure when none passed.
//!
//! Why exactly one join is published: commits are serialized per task, so the candidate committed last
//! reads a log in which all have ended (never neither); when two candidates end at once both may see
//! that, but the join key can be committed once (never both), and the one that finds it committed
//! publishes nothing. A crash between the join's commit and its publish is repaired by the
//! redelivery of the candidate's message, which finds its own commit and the join's, and re-publishes
//! the join's recorded message (same id: the queue and the review's own key drop a duplicate).

use cadre_domain::candidates::{self, CandidateRank};
use cadre_domain::envelope::{Envelope, StepPayload};
use cadre_domain::event::Event;
use cadre_domain::ids::{IdempotencyKey, TaskId, TraceId};
use cadre_domain::ports::knowledge::TaskVerdict;
use cadre_domain::ports::store::{CommitOutcome, StepCommit, StoreError};
use cadre_domain::step::ArtifactName;
use cadre_domain::{Ports, StepKind};
use std::fmt::Write;

/// What a join attempt did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Joined {
    /// A candidate is still running.
    Pending,
    /// This attempt committed the ranking; its message is returned to be published.
    Committed(Vec<Envelope>),
    /// The ranking was committed before: its recorded message, to re-publish only on a redelivery.
    Before(Vec<Envelope>),
    /// The task is finished (e.g. cancelled).
    TaskFinished,
}

/// The key the join of `task` commits under.
#[must_use]
pub(crate) fn key(task: &TaskId) -> IdempotencyKey {
    IdempotencyKey::new(format!("{task}/join/candidates"))
}

/// Ranks the candidates of `task` if all have ended, committing the ranking once.
pub(crate) async fn join(
    ports: &Ports,
    task: &TaskId,
    trace: &TraceId,
) -> Result<Joined, StoreError> {
    let summary = ports.store.task(task).await?;
    let events = ports.store.events(task).await?;
    let Some(ranking) = candidates::rank(&events, summary.task.settings.candidates) else {
        return Ok(Joined::Pending);
    };
    let chosen = ranking.first().filter(|r| r.passed).cloned();
    let mut commit_events = vec![Event::CandidatesRanked {
        ranking: ranking.clone(),
        chosen: chosen.as_ref().map(|r| r.candidate),
    }];
    let mut artifacts = Vec::new();
    let mut next = Vec::new();
    match &chosen {
        Some(best) => {
            // The chosen candidate's round becomes the task's own: `show`, `apply`, the editor and
            // the evaluation read the task's `patch-r<round>` and events as for a single candidate.
            let round = best.round;
            commit_events.extend(candidates::events_of(&events, best.candidate).filter_map(|e| {
                match e {
                    Event::PatchReady { round: r, .. }
                    | Event::TestsFinished { round: r, .. }
                    | Event::Scanned { round: r, .. }
                        if *r == round =>
                    {
                        Some(e.clone())
                    }
                    _ => None,
                }
            }));
            for name in [
                ArtifactName::patch(round),
                ArtifactName::report(round),
                ArtifactName::transcript(StepKind::Generate, round),
                cadre_steps::agent::reproduction_artifact(round),
                cadre_steps::test::scan_artifact(round),
            ] {
                let lane_name = name.clone().for_candidate(Some(best.candidate));
                if let Some(bytes) = ports.store.artifact(task, &lane_name).await? {
                    artifacts.push((name, bytes));
                }
            }
            next.push(Envelope::new(task.clone(), trace.clone(), StepPayload::Review { round }));
        }
        None => commit_events.push(Event::Failed { step: None, reason: no_winner(&ranking) }),
    }
    let failed = chosen.is_none();
    let commit = StepCommit {
        task_id: task.clone(),
        key: key(task),
        events: commit_events,
        artifacts,
        next: next.clone(),
        at: ports.clock.now(),
    };
    Ok(match ports.store.commit_step(commit).await? {
        CommitOutcome::Committed => {
            tracing::info!(
                chosen = chosen.as_ref().map(|r| r.candidate),
                candidates = ranking.len(),
                "candidates ranked"
            );
            if failed {
                crate::outcome::record_outcome(
                    ports.into(),
                    task,
                    TaskVerdict::Failed,
                    Some(&no_winner(&ranking)),
                )
                .await;
            }
            Joined::Committed(next)
        }
        CommitOutcome::AlreadyCommitted { next } => Joined::Before(next),
        CommitOutcome::TaskFinished { .. } => Joined::TaskFinished,
    })
}

/// Why a task none of whose candidates passed failed.
fn no_winner(ranking: &[CandidateRank]) -> String {
    let mut reason = format!("none of the {} candidates passed its tests", ranking.len());
    let mut by_index: Vec<&CandidateRank> = ranking.iter().collect();
    by_index.sort_by_key(|r| r.candidate);
    for r in by_index {
        let _ = write!(reason, "; candidate {}: {}", r.candidate, r.ended);
    }
    reason
}
