//! Two runs side by side: which tasks one solved and the other did not, and how the solve rate and
//! cost moved, for comparing models, prompt versions or settings on the same suite.
//!
//! Figures are taken over the tasks both runs have a result for, so a run cut short does not look
//! better or worse for the tasks it skipped; tasks only one run has are listed apart.

use std::collections::BTreeMap;
use std::fmt::Write;

use crate::outcome::Outcome;
use crate::results::TaskResult;
use crate::summary::{percent, seconds, usd, Summary};

/// A task both runs have a result for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskDiff {
    /// The task id.
    pub task: String,
    /// Its outcome in run A.
    pub a: Outcome,
    /// Its outcome in run B.
    pub b: Outcome,
    /// Its cost in run A, in micro-dollars.
    pub cost_a: u64,
    /// Its cost in run B, in micro-dollars.
    pub cost_b: u64,
}

/// How a task moved from A to B.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Unsolved in A, solved in B.
    Gained,
    /// Solved in A, unsolved in B.
    Lost,
    /// Both solved, or both unsolved with the same outcome.
    Same,
    /// Unsolved in both, for different reasons.
    OtherFailure,
}

impl TaskDiff {
    /// How the task moved.
    #[must_use]
    pub fn change(&self) -> Change {
        match (self.a == Outcome::Solved, self.b == Outcome::Solved) {
            (false, true) => Change::Gained,
            (true, false) => Change::Lost,
            _ if self.a == self.b => Change::Same,
            _ => Change::OtherFailure,
        }
    }
}

/// Run A against run B.
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    /// A's figures over the common tasks.
    pub a: Summary,
    /// B's figures over the common tasks.
    pub b: Summary,
    /// The common tasks, sorted by id.
    pub tasks: Vec<TaskDiff>,
    /// Tasks only A has a result for.
    pub only_a: Vec<String>,
    /// Tasks only B has a result for.
    pub only_b: Vec<String>,
}

impl Comparison {
    /// Compares the results of two runs.
    #[must_use]
    pub fn of(a: &[TaskResult], b: &[TaskResult]) -> Comparison {
        let by_id = |rs: &[TaskResult]| -> BTreeMap<String, TaskResult> {
            rs.iter().map(|r| (r.task.clone(), r.clone())).collect()
        };
        let (a_map, b_map) = (by_id(a), by_id(b));
        let mut common_a = Vec::new();
        let mut common_b = Vec::new();
        let mut tasks = Vec::new();
        for (id, ra) in &a_map {
            if let Some(rb) = b_map.get(id) {
                tasks.push(TaskDiff {
                    task: id.clone(),
                    a: ra.outcome,
                    b: rb.outcome,
                    cost_a: ra.cost_micros,
                    cost_b: rb.cost_micros,
                });
                common_a.push(ra.clone());
                common_b.push(rb.clone());
            }
        }
        Comparison {
            a: Summary::of(&common_a),
            b: Summary::of(&common_b),
            tasks,
            only_a: a_map.keys().filter(|k| !b_map.contains_key(*k)).cloned().collect(),
            only_b: b_map.keys().filter(|k| !a_map.contains_key(*k)).cloned().collect(),
        }
    }

    /// The tasks that moved `change`.
    #[must_use]
    pub fn moved(&self, change: Change) -> Vec<&TaskDiff> {
        self.tasks.iter().filter(|t| t.change() == change).collect()
    }

    /// The comparison as printed by `cadre eval compare`.
    #[must_use]
    pub fn table(&self) -> String {
        let mut t = String::new();
        let (a, b) = (&self.a, &self.b);
        let _ = writeln!(t, "over the {} task(s) both runs have:", self.tasks.len());
        let _ = writeln!(t, "{:<18} {:>16} {:>16} {:>12}", "", "A", "B", "B - A");
        let rate = |s: &Summary| format!("{} ({}/{})", percent(s.solve_rate), s.solved, s.tasks);
        let _ = writeln!(
            t,
            "{:<18} {:>16} {:>16} {:>12}",
            "solve rate",
            rate(a),
            rate(b),
            format!("{:+.1} pp", (b.solve_rate - a.solve_rate) * 100.0)
        );
        let money = |label: &str, x: u64, y: u64| {
            format!("{label:<18} {:>16} {:>16} {:>12}\n", usd(x), usd(y), signed_usd(x, y))
        };
        t.push_str(&money("cost", a.cost_micros, b.cost_micros));
        t.push_str(&money("cost per task", a.cost_per_task_micros, b.cost_per_task_micros));
        match (a.cost_per_solved_micros, b.cost_per_solved_micros) {
            (Some(x), Some(y)) => t.push_str(&money("cost per solved", x, y)),
            (x, y) => {
                let show = |v: Option<u64>| v.map_or_else(|| "n/a".to_owned(), usd);
                let _ = writeln!(t, "{:<18} {:>16} {:>16}", "cost per solved", show(x), show(y));
            }
        }
        let _ = writeln!(
            t,
            "{:<18} {:>16} {:>16} {:>12}",
            "time p50",
            seconds(a.wall_p50_ms),
            seconds(b.wall_p50_ms),
            signed_seconds(a.wall_p50_ms, b.wall_p50_ms)
        );
        let names = |c: Change| {
            let moved: Vec<&str> = self.moved(c).iter().map(|d| d.task.as_str()).collect();
            if moved.is_empty() {
                "none".to_owned()
            } else {
                moved.join(", ")
            }
        };
        let _ = writeln!(t, "solved only in B: {}", names(Change::Gained));
        let _ = writeln!(t, "solved only in A: {}", names(Change::Lost));
        if !self.only_a.is_empty() {
            let _ = writeln!(t, "only in A (not compared): {}", self.only_a.join(", "));
        }
        if !self.only_b.is_empty() {
            let _ = writeln!(t, "only in B (not compared): {}", self.only_b.join(", "));
        }
        let width = self.tasks.iter().map(|d| d.task.chars().count()).max().unwrap_or(4).max(4);
        let _ = writeln!(
            t,
            "\n  {:<width$}  {:<13}  {:<13}  {:>10}  {:>10}",
            "task", "A", "B", "cost A", "cost B"
        );
        for d in &self.tasks {
            let mark = match d.change() {
                Change::Gained => '+',
                Change::Lost => '-',
                Change::OtherFailure => '~',
                Change::Same => ' ',
            };
            let _ = writeln!(
                t,
                "{mark} {:<width$}  {:<13}  {:<13}  {:>10}  {:>10}",
                d.task,
                d.a.name(),
                d.b.name(),
                usd(d.cost_a),
                usd(d.cost_b)
            );
        }
        t.truncate(t.trim_end().len());
        t
    }
}

/// `y - x` in dollars with its sign: `+$0.0012`, `-$0.0003`.
fn signed_usd(x: u64, y: u64) -> String {
    if y >= x {
        format!("+{}", usd(y - x))
    } else {
        format!("-{}", usd(x - y))
    }
}

fn signed_seconds(x: u64, y: u64) -> String {
    if y >= x {
        format!("+{}", seconds(y - x))
    } else {
        format!("-{}", seconds(x - y))
    }
}
