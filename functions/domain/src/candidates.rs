//! Best of N: a task's candidates, how each one ended, and how they are ranked.
//!
//! A best-of-N task runs `candidates` independent generate→test loops after one plan. Each loop's
//! events sit in the task's one log wrapped in [`Event::Candidate`], so the task's own state is not
//! moved by them; this module reads them back per candidate. When every candidate has ended (its tests
//! passed, or it failed), [`rank`] orders them: passing tests first, then the smaller change (lines
//! added plus removed), then the lower cost (billed tokens: all candidates use the same model, so
//! tokens order them as money does), then the lower index.

use crate::event::{Event, EventRecord};
use crate::task::TaskState;
use crate::StepKind;
use serde::{Deserialize, Serialize};

/// How one candidate ended, as ranked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CandidateRank {
    /// The candidate, from 1.
    pub candidate: u32,
    /// Whether its last tests passed.
    pub passed: bool,
    /// Its last round with a patch (0 when it never produced one).
    pub round: u32,
    /// Lines added plus removed by that patch.
    pub lines_changed: u32,
    /// Model tokens its calls billed.
    pub tokens: u64,
    /// How it ended, in words: the tests' summary, or why it failed.
    pub ended: String,
}

/// Where one candidate is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Standing {
    /// Still generating or testing.
    Running,
    /// Its tests passed in `round`.
    Passed {
        /// The round.
        round: u32,
        /// The tests' summary.
        summary: String,
    },
    /// It failed (tests still failing after its last round, or an unusable model, or a step that
    /// could not run); the task goes on while another candidate can pass.
    Failed {
        /// Why.
        reason: String,
    },
}

/// Candidate `candidate`'s own events, in log order.
pub fn events_of(events: &[EventRecord], candidate: u32) -> impl Iterator<Item = &Event> {
    events.iter().filter_map(move |r| match &r.event {
        Event::Candidate { candidate: c, event } if *c == candidate => Some(&**event),
        _ => None,
    })
}

/// Where candidate `candidate` is.
#[must_use]
pub fn standing(events: &[EventRecord], candidate: u32) -> Standing {
    let mut standing = Standing::Running;
    for event in events_of(events, candidate) {
        match event {
            Event::TestsFinished { round, passed: true, summary } => {
                standing = Standing::Passed { round: *round, summary: summary.clone() };
            }
            Event::Failed { reason, .. } => standing = Standing::Failed { reason: reason.clone() },
            _ => {}
        }
        if standing != Standing::Running {
            break;
        }
    }
    standing
}

/// Where candidate `candidate`'s loop stands, as the plain pipeline's state would say it:
/// `Generating { round }` or `Testing { round }` (or `Failed`), so a lost message can be re-published.
#[must_use]
pub fn state_of(events: &[EventRecord], candidate: u32) -> TaskState {
    events_of(events, candidate).fold(TaskState::Generating { round: 1 }, |state, event| {
        match event {
            // A retried or restarted step moves nothing; the loop's own results do.
            Event::StepStarted { step: StepKind::Generate | StepKind::Test, .. }
            | Event::PatchReady { .. }
            | Event::TestsFinished { .. }
            | Event::Failed { .. } => state.apply(event),
            _ => state,
        }
    })
}

/// Whether the candidates were ranked already (the join happened).
#[must_use]
pub fn is_ranked(events: &[EventRecord]) -> bool {
    events.iter().any(|r| matches!(r.event, Event::CandidatesRanked { .. }))
}

/// The ranking, best first, once all `candidates` have ended; `None` while one is still running.
#[must_use]
pub fn rank(events: &[EventRecord], candidates: u32) -> Option<Vec<CandidateRank>> {
    let mut ranking = Vec::new();
    for candidate in 1..=candidates {
        let (passed, ended) = match standing(events, candidate) {
            Standing::Running => return None,
            Standing::Passed { round, summary } => {
                (true, format!("tests passed in round {round}: {summary}"))
            }
            Standing::Failed { reason } => (false, reason),
        };
        let mut round = 0;
        let mut lines_changed = 0;
        let mut turn_tokens = 0;
        let mut turn_rounds = Vec::new();
        let mut patch_tokens = Vec::new();
        for event in events_of(events, candidate) {
            match event {
                Event::PatchReady { round: r, lines_added, lines_removed, usage, .. } => {
                    round = *r;
                    lines_changed = lines_added.saturating_add(*lines_removed);
                    patch_tokens.push((*r, usage.total()));
                }
                Event::AgentTurn { round: r, usage, .. } => {
                    turn_tokens += usage.total();
                    turn_rounds.push(*r);
                }
                _ => {}
            }
        }
        // In the tool harness a round's `PatchReady` repeats its last turn's usage; in the edit-blocks
        // harness it is the round's only record of it.
        let tokens = turn_tokens
            + patch_tokens
                .iter()
                .filter(|(r, _)| !turn_rounds.contains(r))
                .map(|(_, t)| t)
                .sum::<u64>();
        ranking.push(CandidateRank { candidate, passed, round, lines_changed, tokens, ended });
    }
    ranking.sort_by_key(|r| (!r.passed, r.lines_changed, r.tokens, r.candidate));
    Some(ranking)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::model::TokenUsage;
    use crate::time::Timestamp;

    fn log(events: Vec<(u32, Event)>) -> Vec<EventRecord> {
        events
            .into_iter()
            .enumerate()
            .map(|(i, (candidate, event))| EventRecord {
                seq: i as u64 + 1,
                at: Timestamp(0),
                event: Event::Candidate { candidate, event: Box::new(event) },
            })
            .collect()
    }

    fn patch(round: u32, lines: u32, tokens: u64) -> Event {
        Event::PatchReady {
            round,
            files_changed: vec!["a.py".into()],
            lines_added: lines,
            lines_removed: 0,
            usage: TokenUsage { input: tokens, ..TokenUsage::default() },
        }
    }

    fn tests(round: u32, passed: bool) -> Event {
        Event::TestsFinished { round, passed, summary: String::new() }
    }

    #[test]
    fn passing_first_then_the_smaller_change_then_the_cheaper_one() {
        let mut events = log(vec![
            (1, patch(1, 10, 100)),
            (2, patch(1, 3, 900)),
            (3, patch(1, 3, 500)),
            (4, patch(1, 1, 1)),
            (1, tests(1, true)),
            (2, tests(1, true)),
            (3, tests(1, true)),
            (4, tests(1, false)),
        ]);
        assert_eq!(rank(&events, 4), None, "candidate 4 may still pass in round 2");
        events.extend(log(vec![(
            4,
            Event::Failed { step: Some(StepKind::Test), reason: "still failing".into() },
        )]));
        let order: Vec<u32> = rank(&events, 4).unwrap().iter().map(|r| r.candidate).collect();
        assert_eq!(order, vec![3, 2, 1, 4]);
        assert_eq!(state_of(&events, 4), TaskState::Failed);
    }

    #[test]
    fn a_candidates_loop_state_follows_its_own_events_only() {
        let events = log(vec![(1, patch(1, 1, 1)), (2, patch(1, 1, 1)), (1, tests(1, false))]);
        assert_eq!(state_of(&events, 1), TaskState::Generating { round: 2 });
        assert_eq!(state_of(&events, 2), TaskState::Testing { round: 1 });
        assert_eq!(state_of(&events, 3), TaskState::Generating { round: 1 });
        assert_eq!(TaskState::fold(&events), TaskState::Queued, "the task's state is not moved");
    }
}
