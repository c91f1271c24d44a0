//! The summary of a run: solve rate with its interval, cost per task and per solved task, time
//! percentiles, tokens and the failure categories, and the table `cadre eval` prints.

use cadre_domain::ports::model::TokenUsage;
use serde::{Deserialize, Serialize};
use std::fmt::Write;

use crate::outcome::Outcome;
use crate::results::TaskResult;
use crate::stats;

/// Figures over a set of results.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Tasks with a result.
    pub tasks: usize,
    /// Tasks solved.
    pub solved: usize,
    /// `solved / tasks` (0 when there are no tasks).
    pub solve_rate: f64,
    /// The Wilson 95% interval of the solve rate, as fractions.
    pub solve_rate_ci95: Option<(f64, f64)>,
    /// Cost of every task's model calls, in micro-dollars.
    pub cost_micros: u64,
    /// Mean cost per task, in micro-dollars.
    pub cost_per_task_micros: u64,
    /// Total cost divided by the tasks solved (what a solved task costs, failures included); `None`
    /// when nothing was solved.
    pub cost_per_solved_micros: Option<u64>,
    /// Median wall time per task, in milliseconds.
    pub wall_p50_ms: u64,
    /// 90th percentile of wall time per task, in milliseconds.
    pub wall_p90_ms: u64,
    /// Summed wall time of the tasks (more than the run took when tasks ran in parallel).
    pub wall_total_ms: u64,
    /// Tokens over all tasks.
    pub tokens: TokenUsage,
    /// Model calls over all tasks.
    pub model_calls: u64,
    /// How many tasks ended in each outcome, in [`Outcome::ALL`] order, zeros left out.
    pub outcomes: Vec<(Outcome, usize)>,
}

impl Summary {
    /// Summarises `results`.
    #[must_use]
    #[allow(clippy::cast_precision_loss, clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    pub fn of(results: &[TaskResult]) -> Summary {
        let tasks = results.len();
        let solved = results.iter().filter(|r| r.solved).count();
        let cost_micros: u64 = results.iter().map(|r| r.cost_micros).sum();
        let walls: Vec<u64> = results.iter().map(|r| r.wall_ms).collect();
        let count = |o: Outcome| results.iter().filter(|r| r.outcome == o).count();
        let round = |x: f64| x.round() as u64;
        Summary {
            tasks,
            solved,
            solve_rate: if tasks == 0 { 0.0 } else { solved as f64 / tasks as f64 },
            solve_rate_ci95: stats::wilson95(solved, tasks),
            cost_micros,
            cost_per_task_micros: if tasks == 0 {
                0
            } else {
                round(cost_micros as f64 / tasks as f64)
            },
            cost_per_solved_micros: (solved > 0).then(|| round(cost_micros as f64 / solved as f64)),
            wall_p50_ms: stats::quantile(&walls, 0.5).map_or(0, round),
            wall_p90_ms: stats::quantile(&walls, 0.9).map_or(0, round),
            wall_total_ms: walls.iter().sum(),
            tokens: results.iter().fold(TokenUsage::default(), |sum, r| sum.plus(r.tokens)),
            model_calls: results.iter().map(|r| r.model_calls).sum(),
            outcomes: Outcome::ALL.iter().map(|&o| (o, count(o))).filter(|&(_, n)| n > 0).collect(),
        }
    }

    /// The summary as the lines `cadre eval` prints.
    #[must_use]
    pub fn table(&self) -> String {
        let mut t = String::new();
        let ci = self.solve_rate_ci95.map_or_else(String::new, |(lo, hi)| {
            format!("  (95% CI {} – {})", percent(lo), percent(hi))
        });
        let _ = writeln!(
            t,
            "solve rate        {} ({}/{}){ci}",
            percent(self.solve_rate),
            self.solved,
            self.tasks
        );
        let _ = writeln!(t, "cost              {} total", usd(self.cost_micros));
        let _ = writeln!(t, "cost per task     {}", usd(self.cost_per_task_micros));
        let per_solved =
            self.cost_per_solved_micros.map_or_else(|| "n/a (none solved)".to_owned(), usd);
        let _ = writeln!(t, "cost per solved   {per_solved}");
        let _ = writeln!(
            t,
            "time per task     p50 {}  p90 {}",
            seconds(self.wall_p50_ms),
            seconds(self.wall_p90_ms)
        );
        let _ = writeln!(
            t,
            "tokens            {} in ({} cached)  {} out  {} thinking  in {} calls",
            self.tokens.input,
            self.tokens.cached,
            self.tokens.output,
            self.tokens.thinking,
            self.model_calls
        );
        let outcomes: Vec<String> = self.outcomes.iter().map(|(o, n)| format!("{o} {n}")).collect();
        let _ = write!(t, "outcomes          {}", outcomes.join(", "));
        t
    }
}

/// One row per task, aligned, for the printed table.
#[must_use]
pub fn task_table(results: &[TaskResult]) -> String {
    let width = results.iter().map(|r| r.task.chars().count()).max().unwrap_or(4).max(4);
    let mut t = format!(
        "{:<width$}  {:<13}  {:>10}  {:>8}  {:>5}  {:>6}\n",
        "task", "outcome", "cost", "time", "calls", "rounds"
    );
    for r in results {
        let _ = writeln!(
            t,
            "{:<width$}  {:<13}  {:>10}  {:>8}  {:>5}  {:>6}",
            r.task,
            r.outcome.name(),
            usd(r.cost_micros),
            seconds(r.wall_ms),
            r.model_calls,
            r.rounds
        );
    }
    t.truncate(t.trim_end().len());
    t
}

/// A fraction as a percentage with one decimal: `66.7%`.
#[must_use]
pub fn percent(fraction: f64) -> String {
    format!("{:.1}%", fraction * 100.0)
}

/// Micro-dollars as dollars with four decimals, rounded half up in integers (floating point would
/// round $0.03825 down): `$0.0383`.
#[must_use]
pub fn usd(micros: u64) -> String {
    let ten_thousandths = micros.saturating_add(50) / 100;
    format!("${}.{:04}", ten_thousandths / 10_000, ten_thousandths % 10_000)
}

/// Milliseconds as seconds with one decimal: `4.2 s`.
#[must_use]
#[allow(clippy::cast_precision_loss)]
pub fn seconds(ms: u64) -> String {
    format!("{:.1} s", ms as f64 / 1000.0)
}
