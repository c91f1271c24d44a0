//! The events in a task's log. The log is append-only and is the only source of a task's state.

use crate::candidates::CandidateRank;
use crate::envelope::StepKind;
use crate::ports::model::TokenUsage;
use crate::task::Task;
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};

/// Something that happened to a task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Event {
    /// The task was created; the first event of every log.
    Created {
        /// The task as created.
        task: Task,
    },
    /// A worker began running a step (progress; may repeat on retries).
    StepStarted {
        /// The step.
        step: StepKind,
        /// Its round (0 for plan).
        round: u32,
        /// The delivery attempt.
        attempt: u32,
    },
    /// A step attempt failed with an error that will be retried.
    StepRetrying {
        /// The step.
        step: StepKind,
        /// Its round.
        round: u32,
        /// The attempt that failed.
        attempt: u32,
        /// Why it failed.
        error: String,
        /// How long until the next attempt.
        retry_in_ms: u64,
    },
    /// The knowledge base was brought up to date with the task's base commit (or could not be: then
    /// `note` says why, and the task goes on with less context).
    Indexed {
        /// Files in the index after the run.
        files: u64,
        /// Chunks in the index after the run.
        chunks: u64,
        /// Files parsed in this run (the rest were unchanged).
        parsed: u64,
        /// Wall time of the run.
        elapsed_ms: u64,
        /// What limited retrieval, e.g. "no embedder: lexical retrieval only" or the index error.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        note: Option<String>,
    },
    /// The plan is stored as the `plan` artifact.
    PlanReady {
        /// The plan's summary.
        summary: String,
        /// How many edits it lists.
        items: u32,
        /// Model tokens the step used.
        usage: TokenUsage,
    },
    /// A turn of the tool-using harness is done: the model's calls ran and their results are stored
    /// in the `turn-r<round>-t<turn>` artifact.
    AgentTurn {
        /// The round.
        round: u32,
        /// The turn within the round, from 1.
        turn: u32,
        /// One line per tool call, e.g. `read_file calc.py` or `edit calc.py: refused (not found)`.
        calls: Vec<String>,
        /// Model tokens the turn used.
        usage: TokenUsage,
    },
    /// A candidate patch is stored as the `patch-r<round>` artifact.
    PatchReady {
        /// The round.
        round: u32,
        /// Files the cumulative patch touches.
        files_changed: Vec<String>,
        /// Lines added by the cumulative patch.
        lines_added: u32,
        /// Lines removed by the cumulative patch.
        lines_removed: u32,
        /// Model tokens the step used.
        usage: TokenUsage,
    },
    /// The tests ran on round `round`'s patch; the report is the `report-r<round>` artifact.
    TestsFinished {
        /// The round.
        round: u32,
        /// Whether the suite passed.
        passed: bool,
        /// A one-line summary, e.g. "4 passed, 1 failed".
        summary: String,
    },
    /// Scanners ran on round `round`'s change; the findings are the `scan-r<round>` artifact.
    Scanned {
        /// The round.
        round: u32,
        /// The scanners that ran.
        scanners: Vec<String>,
        /// Findings of error severity (e.g. a leaked secret).
        errors: u32,
        /// All findings.
        findings: u32,
    },
    /// The task is parked until a person applies or rejects round `round`'s patch.
    AwaitingReview {
        /// The proposed round.
        round: u32,
    },
    /// A person applied the patch to the repository.
    Applied {
        /// The applied round.
        round: u32,
    },
    /// A person rejected the proposal.
    Rejected {
        /// Their reason, if given.
        reason: Option<String>,
    },
    /// A model call would have passed the task's budget, so it was not made and the task stopped with
    /// everything kept.
    BudgetExhausted {
        /// The step that stopped.
        step: StepKind,
        /// Its round.
        round: u32,
        /// Spent (and reserved) so far, in micro-dollars.
        spent_micros: u64,
        /// The budget, in micro-dollars.
        limit_micros: u64,
        /// Set when it was the team's daily budget, not the task's, that ran out.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        team: Option<String>,
    },
    /// A person raised the task's budget; it goes on from the step that stopped.
    BudgetRaised {
        /// The new budget, in micro-dollars.
        limit_micros: u64,
    },
    /// The task cannot go on.
    Failed {
        /// The step that failed, if a step did.
        step: Option<StepKind>,
        /// Why, in words a person can act on.
        reason: String,
    },
    /// A person cancelled the task.
    Cancelled {
        /// Their reason, if given.
        reason: Option<String>,
    },
    /// Something that happened in candidate `candidate`'s own generate→test loop (best of N). Wrapped
    /// so that the task's state is not moved by one candidate: a candidate's `Failed` ends only it.
    Candidate {
        /// The candidate, from 1.
        candidate: u32,
        /// What happened.
        event: Box<Event>,
    },
    /// Every candidate has ended and they were ranked, best first. The chosen one's patch and test
    /// report become the task's own (the `PatchReady` and `TestsFinished` that follow in the same
    /// commit); with none chosen, the task fails.
    CandidatesRanked {
        /// The candidates, best first.
        ranking: Vec<CandidateRank>,
        /// The candidate proposed: the best one, if its tests passed.
        chosen: Option<u32>,
    },
}

/// An event as stored: its position in the log and when it was appended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventRecord {
    /// 1-based position in the task's log.
    pub seq: u64,
    /// When it was appended.
    pub at: Timestamp,
    /// The event.
    pub event: Event,
}

impl Event {
    /// A short, human-readable line for progress output.
    #[must_use]
    pub fn describe(&self) -> String {
        match self {
            Event::Created { task } => format!("created: {}", task.goal),
            Event::StepStarted { step, round, attempt } => {
                let round = if *round > 0 { format!(" round {round}") } else { String::new() };
                let attempt =
                    if *attempt > 1 { format!(" (attempt {attempt})") } else { String::new() };
                format!("{step}{round} started{attempt}")
            }
            Event::StepRetrying { step, round, attempt, error, retry_in_ms } => {
                format!("{step} round {round} attempt {attempt} failed, retrying in {retry_in_ms} ms: {error}")
            }
            Event::Indexed { files, chunks, parsed, elapsed_ms, note } => {
                let mut line = format!(
                    "indexed: {files} files, {chunks} chunks ({parsed} parsed) in {elapsed_ms} ms"
                );
                if let Some(note) = note {
                    line.push_str("; ");
                    line.push_str(note);
                }
                line
            }
            Event::PlanReady { summary, items, usage } => {
                format!("plan ready ({items} steps, {} tokens): {summary}", usage.total())
            }
            Event::AgentTurn { round, turn, calls, usage } => {
                let calls =
                    if calls.is_empty() { "no tool call".to_owned() } else { calls.join("; ") };
                format!("turn {turn} of round {round} ({} tokens): {calls}", usage.total())
            }
            Event::PatchReady { round, files_changed, lines_added, lines_removed, usage } => {
                format!(
                    "patch round {round}: {} file(s), +{lines_added} -{lines_removed} ({} tokens)",
                    files_changed.len(),
                    usage.total()
                )
            }
            Event::TestsFinished { round, passed, summary } => {
                let verdict = if *passed { "passed" } else { "failed" };
                format!("tests round {round} {verdict}: {summary}")
            }
            Event::Scanned { round, scanners, errors, findings } => format!(
                "scanned round {round} ({}): {findings} finding(s), {errors} error(s)",
                scanners.join(", ")
            ),
            Event::AwaitingReview { round } => format!("awaiting review (round {round})"),
            Event::Applied { round } => format!("applied round {round}"),
            Event::Rejected { reason } => format!(
                "rejected{}",
                reason.as_deref().map(|r| format!(": {r}")).unwrap_or_default()
            ),
            Event::BudgetExhausted { step, round, spent_micros, limit_micros, team: None } => format!(
                "budget exhausted in {step} round {round}: ${:.4} of ${:.4} spent; raise it with `cadre resume TASK --budget-usd N`",
                micros_to_usd(*spent_micros),
                micros_to_usd(*limit_micros)
            ),
            Event::BudgetExhausted { step, round, spent_micros, limit_micros, team: Some(team) } => format!(
                "team {team}'s daily budget exhausted in {step} round {round}: ${:.4} of ${:.4} spent today (UTC); after midnight UTC or a higher team limit, `cadre resume TASK --budget-usd N` continues it",
                micros_to_usd(*spent_micros),
                micros_to_usd(*limit_micros)
            ),
            Event::BudgetRaised { limit_micros } => {
                format!("budget raised to ${:.4}", micros_to_usd(*limit_micros))
            }
            Event::Failed { step, reason } => match step {
                Some(step) => format!("failed in {step}: {reason}"),
                None => format!("failed: {reason}"),
            },
            Event::Cancelled { reason } => {
                format!(
                    "cancelled{}",
                    reason.as_deref().map(|r| format!(": {r}")).unwrap_or_default()
                )
            }
            Event::Candidate { candidate, event } => {
                format!("candidate {candidate}: {}", event.describe())
            }
            Event::CandidatesRanked { ranking, chosen } => {
                let order: Vec<String> = ranking
                    .iter()
                    .map(|r| {
                        format!(
                            "{} ({}, {} lines, {} tokens)",
                            r.candidate,
                            if r.passed { "passed" } else { "failed" },
                            r.lines_changed,
                            r.tokens
                        )
                    })
                    .collect();
                match chosen {
                    Some(c) => format!("candidates ranked: {}; proposing candidate {c}", order.join(" > ")),
                    None => format!("candidates ranked: {}; none passed", order.join(" > ")),
                }
            }
        }
    }
}

/// Micro-dollars as dollars, for display only.
#[must_use]
#[allow(clippy::cast_precision_loss)]
pub fn micros_to_usd(micros: u64) -> f64 {
    micros as f64 / 1_000_000.0
}
