//! A task and its state machine.
//!
//! ```text
//! queued → indexing → planning → generating ⇄ testing → awaiting_review → applied | rejected
//!                                  (failed tests go back to generating, at most `max_rounds` times)
//! any non-terminal state → failed | cancelled
//! ```

use crate::event::{Event, EventRecord};
use crate::ids::{CommitId, TaskId};
use crate::ports::model::ThinkingLevel;
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};

/// The most candidates a task may ask for: each one is a full generate→test loop on the same budget,
/// so more than a handful spends the budget thin without much better odds.
pub const MAX_CANDIDATES: u32 = 5;

/// Knobs a task is created with; stored in its `Created` event so every worker sees the same.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskSettings {
    /// How many generate→test rounds before the task fails.
    pub max_rounds: u32,
    /// The shell command that runs the repository's tests; detected from the repository when absent.
    pub test_command: Option<String>,
    /// Wall-clock limit for one test run, in seconds.
    pub test_timeout_secs: u64,
    /// How `generate` works; tasks created before the setting existed used edit blocks.
    #[serde(default)]
    pub harness: Harness,
    /// The most the task may spend on model calls, in micro-dollars; checked before every call. Raised
    /// by a `BudgetRaised` event (`cadre resume TASK --budget …`). `None`: the deployment's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget_micros: Option<u64>,
    /// Which scanners run on each round's change after its tests.
    #[serde(default)]
    pub scan: ScanLevel,
    /// The team the task's model calls are charged to (and whose daily budget they count against).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team: Option<String>,
    /// How many independent candidates generate and test a change (best of N); the best-ranked one is
    /// proposed. 1 (the default, and what tasks created before the setting meant) is the plain pipeline.
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub candidates: u32,
    /// How much the model may think in each step.
    #[serde(default)]
    pub thinking: StepThinking,
}

fn one() -> u32 {
    1
}

#[allow(clippy::trivially_copy_pass_by_ref)]
fn is_one(n: &u32) -> bool {
    *n == 1
}

impl TaskSettings {
    /// Checks the settings a person chose, in words they can act on.
    ///
    /// # Errors
    /// The problem, e.g. a candidate count above [`MAX_CANDIDATES`].
    pub fn validate(&self) -> Result<(), String> {
        if self.candidates == 0 || self.candidates > MAX_CANDIDATES {
            return Err(format!(
                "{} candidates is not possible; ask for 1 to {MAX_CANDIDATES} (each candidate is a whole generate→test loop on the same budget)",
                self.candidates
            ));
        }
        if self.max_rounds == 0 {
            return Err("0 rounds leaves no round to generate a change; use 1 or more".into());
        }
        Ok(())
    }
}

/// The Gemini `thinkingLevel` each model-calling step asks for.
///
/// Defaults, and why:
/// - `plan`: **high**. One call per task whose answer steers every later call; its thinking tokens are
///   paid once, and a wrong plan costs whole rounds.
/// - `generate` (the edit-blocks harness): **medium**. One call per round that must produce every edit
///   at once, with no tool to look things up: some reasoning pays for itself in fewer correction
///   round trips, but the plan already did the hard thinking.
/// - `turn` (each turn of the tool loop): **low**. A turn is a small move (read, search, one edit, run
///   the tests) and the loop itself is the reasoning; thinking tokens are billed as output and a round
///   can take 30 turns, so this is where thinking costs most and buys least.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepThinking {
    /// The plan step.
    pub plan: ThinkingLevel,
    /// The edit-blocks generate step.
    pub generate: ThinkingLevel,
    /// Each turn of the tool-using harness.
    pub turn: ThinkingLevel,
}

impl Default for StepThinking {
    fn default() -> Self {
        StepThinking {
            plan: ThinkingLevel::High,
            generate: ThinkingLevel::Medium,
            turn: ThinkingLevel::Low,
        }
    }
}

impl StepThinking {
    /// Applies `step=level` settings (e.g. `plan=high`, `turn=minimal`) over these.
    ///
    /// # Errors
    /// A setting that names no step or no level, in words that list the valid ones.
    pub fn with(mut self, settings: &[String]) -> Result<Self, String> {
        for setting in settings {
            let (step, level) = setting.split_once('=').ok_or_else(|| {
                format!(
                    "thinking setting `{setting}` is not STEP=LEVEL; e.g. plan=high or turn=low"
                )
            })?;
            let level = ThinkingLevel::parse(level.trim()).ok_or_else(|| {
                format!("unknown thinking level `{level}` in `{setting}`; use minimal, low, medium or high")
            })?;
            match step.trim() {
                "plan" => self.plan = level,
                "generate" => self.generate = level,
                "turn" | "turns" => self.turn = level,
                other => {
                    return Err(format!(
                        "unknown step `{other}` in thinking setting `{setting}`; use plan, generate or turn"
                    ))
                }
            }
        }
        Ok(self)
    }
}

/// Which scanners the `test` step runs on a round's change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScanLevel {
    /// None.
    Off,
    /// The secrets scan of the patch's added lines: cheap, and a leaked key is never what a person wants.
    #[default]
    Secrets,
    /// The secrets scan and the linters the repository uses (clippy, ruff, eslint), in the sandbox.
    Full,
}

/// How `generate` produces a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Harness {
    /// One model call answering with search/replace edit blocks (corrected when they do not apply):
    /// cheap, and works with models that cannot call tools.
    #[default]
    EditBlocks,
    /// A tool-using loop, one turn per message: the model searches, reads, edits, runs the tests
    /// and calls `finish`.
    Tools,
}

impl Harness {
    /// The name used on the command line and in logs.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Harness::EditBlocks => "edit-blocks",
            Harness::Tools => "tools",
        }
    }
}

impl Default for TaskSettings {
    fn default() -> Self {
        TaskSettings {
            max_rounds: 3,
            test_command: None,
            test_timeout_secs: 600,
            harness: Harness::default(),
            budget_micros: None,
            scan: ScanLevel::default(),
            team: None,
            candidates: 1,
            thinking: StepThinking::default(),
        }
    }
}

/// What a person asked for, against which repository and commit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Task {
    /// The task's id.
    pub id: TaskId,
    /// Absolute path of the repository's top-level directory.
    pub repo: String,
    /// The goal in the person's words.
    pub goal: String,
    /// The commit the work starts from.
    pub base_commit: CommitId,
    /// Knobs.
    pub settings: TaskSettings,
    /// When it was created.
    pub created_at: Timestamp,
}

impl Task {
    /// The budget in force after `events`: the last raise, else the one the task was created with.
    #[must_use]
    pub fn budget_after<'a>(
        &self,
        events: impl IntoIterator<Item = &'a EventRecord>,
    ) -> Option<u64> {
        events
            .into_iter()
            .filter_map(|r| match r.event {
                Event::BudgetRaised { limit_micros } => Some(limit_micros),
                _ => None,
            })
            .last()
            .or(self.settings.budget_micros)
    }
}

/// Where a task is, derived from its log by [`TaskState::fold`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum TaskState {
    /// Created, no step has started.
    Queued,
    /// The index step is bringing the knowledge base up to date.
    Indexing,
    /// The plan step is running.
    Planning,
    /// Generate round `round` is next or running.
    Generating {
        /// The round.
        round: u32,
    },
    /// The tests of round `round` are next or running.
    Testing {
        /// The round.
        round: u32,
    },
    /// Stopped at its budget before a model call, with everything kept; a raised budget resumes it at
    /// the step it stopped in.
    BudgetExhausted {
        /// The step that could not make its call.
        step: crate::StepKind,
        /// Its round.
        round: u32,
    },
    /// Round `round`'s patch waits for a person.
    AwaitingReview {
        /// The round.
        round: u32,
    },
    /// Applied to the repository. Terminal.
    Applied,
    /// Rejected by a person. Terminal.
    Rejected,
    /// Could not be completed. Terminal.
    Failed,
    /// Cancelled by a person. Terminal.
    Cancelled,
}

impl TaskState {
    /// Folds a log into the current state. Events after a terminal state are ignored, so a late
    /// duplicate can never revive a finished task.
    #[must_use]
    pub fn fold<'a>(events: impl IntoIterator<Item = &'a EventRecord>) -> TaskState {
        events.into_iter().fold(TaskState::Queued, |state, record| state.apply(&record.event))
    }

    /// The state after `event`.
    #[must_use]
    pub fn apply(self, event: &Event) -> TaskState {
        if self.is_terminal() {
            return self;
        }
        match event {
            Event::Created { .. } => TaskState::Queued,
            Event::StepStarted { step, round, .. } => match step {
                crate::StepKind::Index => TaskState::Indexing,
                crate::StepKind::Plan => TaskState::Planning,
                crate::StepKind::Generate => TaskState::Generating { round: *round },
                crate::StepKind::Test => TaskState::Testing { round: *round },
                crate::StepKind::Review => self,
            },
            Event::StepRetrying { .. }
            | Event::AgentTurn { .. }
            | Event::Scanned { .. }
            | Event::Candidate { .. }
            | Event::CandidatesRanked { .. } => self,
            Event::BudgetExhausted { step, round, .. } => {
                TaskState::BudgetExhausted { step: *step, round: *round }
            }
            Event::BudgetRaised { .. } => match self {
                TaskState::BudgetExhausted { step, round } => match step {
                    crate::StepKind::Index => TaskState::Indexing,
                    crate::StepKind::Plan => TaskState::Planning,
                    crate::StepKind::Generate => TaskState::Generating { round },
                    crate::StepKind::Test => TaskState::Testing { round },
                    crate::StepKind::Review => TaskState::AwaitingReview { round },
                },
                other => other,
            },
            Event::Indexed { .. } => TaskState::Planning,
            Event::PlanReady { .. } => TaskState::Generating { round: 1 },
            Event::PatchReady { round, .. } => TaskState::Testing { round: *round },
            Event::TestsFinished { round, passed, .. } => {
                if *passed {
                    TaskState::Testing { round: *round }
                } else {
                    TaskState::Generating { round: round + 1 }
                }
            }
            Event::AwaitingReview { round } => TaskState::AwaitingReview { round: *round },
            Event::Applied { .. } => TaskState::Applied,
            Event::Rejected { .. } => TaskState::Rejected,
            Event::Failed { .. } => TaskState::Failed,
            Event::Cancelled { .. } => TaskState::Cancelled,
        }
    }

    /// True for states no event can leave.
    #[must_use]
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            TaskState::Applied | TaskState::Rejected | TaskState::Failed | TaskState::Cancelled
        )
    }

    /// The state's name as shown to people.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            TaskState::Queued => "queued",
            TaskState::Indexing => "indexing",
            TaskState::Planning => "planning",
            TaskState::Generating { .. } => "generating",
            TaskState::Testing { .. } => "testing",
            TaskState::AwaitingReview { .. } => "awaiting_review",
            TaskState::BudgetExhausted { .. } => "budget_exhausted",
            TaskState::Applied => "applied",
            TaskState::Rejected => "rejected",
            TaskState::Failed => "failed",
            TaskState::Cancelled => "cancelled",
        }
    }
}

impl std::fmt::Display for TaskState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TaskState::BudgetExhausted { step, round } => {
                write!(f, "{} (in {step}, round {round})", self.name())
            }
            TaskState::Generating { round }
            | TaskState::Testing { round }
            | TaskState::AwaitingReview { round } => {
                write!(f, "{} (round {round})", self.name())
            }
            _ => f.write_str(self.name()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::StepKind;

    fn rec(events: Vec<Event>) -> Vec<EventRecord> {
        events
            .into_iter()
            .enumerate()
            .map(|(i, event)| EventRecord { seq: i as u64 + 1, at: Timestamp(0), event })
            .collect()
    }

    #[test]
    fn a_failed_round_goes_back_to_generating_and_terminal_states_stick() {
        let log = rec(vec![
            Event::StepStarted { step: StepKind::Plan, round: 0, attempt: 1 },
            Event::TestsFinished { round: 1, passed: false, summary: String::new() },
        ]);
        assert_eq!(TaskState::fold(&log), TaskState::Generating { round: 2 });

        let log = rec(vec![
            Event::AwaitingReview { round: 2 },
            Event::Cancelled { reason: None },
            Event::AwaitingReview { round: 3 },
        ]);
        assert_eq!(TaskState::fold(&log), TaskState::Cancelled);
    }
}
