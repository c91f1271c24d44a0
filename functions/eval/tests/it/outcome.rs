//! Reading why a task was not solved off its log.

use cadre_domain::event::{Event, EventRecord};
use cadre_domain::ports::model::TokenUsage;
use cadre_domain::{StepKind, TaskState, Timestamp};
use cadre_eval::outcome::{classify, rounds};
use cadre_eval::Outcome;

fn log(events: Vec<Event>) -> Vec<EventRecord> {
    events
        .into_iter()
        .enumerate()
        .map(|(i, event)| EventRecord { seq: i as u64 + 1, at: Timestamp(0), event })
        .collect()
}

fn failed(step: StepKind, reason: &str) -> Event {
    Event::Failed { step: Some(step), reason: reason.to_owned() }
}

fn patch(round: u32) -> Event {
    Event::PatchReady {
        round,
        files_changed: vec!["a.py".into()],
        lines_added: 1,
        lines_removed: 1,
        usage: TokenUsage::default(),
    }
}

#[test]
fn each_way_a_task_stops_has_its_category() {
    let cases = [
        (
            TaskState::BudgetExhausted { step: StepKind::Generate, round: 1 },
            vec![Event::BudgetExhausted {
                step: StepKind::Generate,
                round: 1,
                spent_micros: 30_050,
                limit_micros: 50_000,
                team: None,
            }],
            Outcome::Budget,
            "budget exhausted in generate round 1: $0.0301 of $0.0500 spent",
        ),
        (
            TaskState::Failed,
            vec![failed(StepKind::Generate, "the model's edits did not apply after 3 tries: - block 1: the SEARCH text was not found")],
            Outcome::DidNotApply,
            "did not apply",
        ),
        (
            TaskState::Failed,
            vec![failed(StepKind::Generate, "the model's edits did not apply after 3 tries: the edits change nothing; make the change the plan asks for")],
            Outcome::NoChange,
            "change nothing",
        ),
        (
            TaskState::Failed,
            vec![failed(StepKind::Generate, "the agent finished without changing anything: looks fine")],
            Outcome::NoChange,
            "without changing anything",
        ),
        (
            TaskState::Failed,
            vec![patch(1), patch(2), failed(StepKind::Test, "tests still fail after 2 round(s) (1 passed, 1 failed); see `cadre show x`")],
            Outcome::TestsFailed,
            "tests still fail",
        ),
        (
            TaskState::Failed,
            vec![failed(StepKind::Plan, "the model gave no usable plan after 3 tries: not JSON")],
            Outcome::Error,
            "no usable plan",
        ),
        (
            TaskState::Failed,
            vec![failed(StepKind::Test, "sandbox: could not start `sh`: permission denied")],
            Outcome::Error,
            "could not start",
        ),
        (TaskState::Cancelled, vec![Event::Cancelled { reason: None }], Outcome::Error, "cancelled"),
    ];
    for (state, events, outcome, words) in cases {
        let (got, reason) = classify(state, &log(events));
        assert_eq!(got, outcome, "{reason}");
        assert!(reason.contains(words), "{reason:?} lacks {words:?}");
    }
}

#[test]
fn rounds_count_the_generate_rounds_begun() {
    assert_eq!(rounds(&log(vec![Event::Cancelled { reason: None }])), 0);
    let two = log(vec![
        Event::StepStarted { step: StepKind::Plan, round: 0, attempt: 1 },
        Event::StepStarted { step: StepKind::Generate, round: 1, attempt: 1 },
        patch(1),
        Event::StepStarted { step: StepKind::Generate, round: 2, attempt: 1 },
    ]);
    assert_eq!(rounds(&two), 2);
}

#[test]
fn outcomes_serialize_as_their_names() {
    for outcome in Outcome::ALL {
        assert_eq!(serde_json::to_value(outcome).unwrap(), outcome.name());
    }
}
