//! Building results for the tests.

use cadre_domain::ports::model::TokenUsage;
use cadre_eval::{Outcome, TaskResult, Trajectory};

/// A result of `task` with `outcome`, costing `cost` micro-dollars in `wall` milliseconds.
pub(crate) fn result(task: &str, outcome: Outcome, cost: u64, wall: u64) -> TaskResult {
    let mut r = TaskResult::new(
        task,
        outcome,
        Trajectory {
            cadre_task: Some("0190c000-0000-7000-8000-000000000001".into()),
            home: "/runs/a/home".into(),
        },
    );
    r.cost_micros = cost;
    r.wall_ms = wall;
    r.model_calls = 2;
    r.rounds = 1;
    r.tokens = TokenUsage { input: 1000, output: 200, cached: 100, thinking: 50 };
    r
}
