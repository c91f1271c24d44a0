//! How a task ended, for the eval: solved, or why not.
//!
//! A Cadre task that reached review is judged by its check (see the binary's runner); every other end
//! is read off the task's own log here, so the same log always gives the same category.

use cadre_domain::event::{Event, EventRecord};
use cadre_domain::{StepKind, TaskState};
use serde::{Deserialize, Serialize};

/// Solved, or the reason it was not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The check passed on the proposed change.
    Solved,
    /// The agent proposed no change (an empty patch, or it finished without editing).
    NoChange,
    /// The change did not apply: the model's edits never matched the code, or the proposed patch (or
    /// the suite's test patch after it) did not apply to the scratch copy.
    DidNotApply,
    /// The tests failed: the check failed on the proposed change, or Cadre's own test runs still
    /// failed after its last round.
    TestsFailed,
    /// The task stopped at its budget.
    Budget,
    /// Something else stopped the task: a model or sandbox failure, a bad plan, a crash.
    Error,
    /// The task did not finish within the eval's time limit per task.
    Timeout,
}

impl Outcome {
    /// Every outcome, in the order reports list them.
    pub const ALL: [Outcome; 7] = [
        Outcome::Solved,
        Outcome::NoChange,
        Outcome::DidNotApply,
        Outcome::TestsFailed,
        Outcome::Budget,
        Outcome::Error,
        Outcome::Timeout,
    ];

    /// The name used in results and reports.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Solved => "solved",
            Outcome::NoChange => "no_change",
            Outcome::DidNotApply => "did_not_apply",
            Outcome::TestsFailed => "tests_failed",
            Outcome::Budget => "budget",
            Outcome::Error => "error",
            Outcome::Timeout => "timeout",
        }
    }

    /// A colour for charts, one per outcome.
    #[must_use]
    pub fn colour(self) -> &'static str {
        match self {
            Outcome::Solved => "#2e7d32",
            Outcome::NoChange => "#9e9e9e",
            Outcome::DidNotApply => "#8d6e63",
            Outcome::TestsFailed => "#c62828",
            Outcome::Budget => "#ef6c00",
            Outcome::Error => "#6a1b9a",
            Outcome::Timeout => "#1565c0",
        }
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Classifies a task that ended without reaching review: `state` is its final state, `events` its log.
/// Returns the outcome and the reason in Cadre's words. A task awaiting review is the check's to judge,
/// and is reported as an error here (the caller should not ask).
#[must_use]
pub fn classify(state: TaskState, events: &[EventRecord]) -> (Outcome, String) {
    match state {
        TaskState::BudgetExhausted { .. } => {
            let reason = events
                .iter()
                .rev()
                .find(|r| matches!(r.event, Event::BudgetExhausted { .. }))
                .map_or_else(|| state.to_string(), |r| r.event.describe());
            (Outcome::Budget, reason)
        }
        TaskState::Failed => {
            let failure = events.iter().rev().find_map(|r| match &r.event {
                Event::Failed { step, reason } => Some((*step, reason.clone())),
                _ => None,
            });
            let (step, reason) = failure.unwrap_or((None, "failed without a reason".to_owned()));
            (failure_outcome(step, &reason, has_patch(events)), reason)
        }
        TaskState::Cancelled => (Outcome::Error, "the task was cancelled".to_owned()),
        other => (Outcome::Error, format!("the task stopped while {other}")),
    }
}

/// The category of a `Failed` event. The steps say what went wrong only in words, so the words they
/// use for "no change" and "did not apply" are matched; anything unrecognised is an error.
fn failure_outcome(step: Option<StepKind>, reason: &str, had_patch: bool) -> Outcome {
    let lower = reason.to_lowercase();
    if ["change nothing", "without changing anything", "made no change"]
        .iter()
        .any(|w| lower.contains(w))
    {
        Outcome::NoChange
    } else if lower.contains("did not apply") {
        Outcome::DidNotApply
    } else if step == Some(StepKind::Test) && had_patch && lower.contains("tests still fail") {
        Outcome::TestsFailed
    } else {
        Outcome::Error
    }
}

fn has_patch(events: &[EventRecord]) -> bool {
    events.iter().any(|r| matches!(r.event, Event::PatchReady { .. }))
}

/// The generate rounds a task began (0 when it never reached generate).
#[must_use]
pub fn rounds(events: &[EventRecord]) -> u32 {
    events
        .iter()
        .filter_map(|r| match r.event {
            Event::StepStarted { step: StepKind::Generate, round, .. }
            | Event::PatchReady { round, .. }
            | Event::AgentTurn { round, .. } => Some(round),
            _ => None,
        })
        .max()
        .unwrap_or(0)
}
