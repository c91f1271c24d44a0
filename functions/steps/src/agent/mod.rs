//! The tool-using harness (`--harness tools`): inside a generate round, the model works in turns —
//! it calls tools (search, read, edit, run the tests) and sees their results — until it calls `finish`.
//!
//! How this stays stateless: each turn is one message (`Generate` for turn 1, then `Turn`). A turn
//! loads the committed turns' records from the store, checks out the base commit with the previous
//! turn's patch, makes one model call, runs the calls it asked for, and returns the turn's record (its
//! messages, the new cumulative patch, notes) with the next turn's message; the engine commits all of
//! it at once. A crash repeats only the turn in flight, from a fresh checkout, so an edit is never
//! applied twice and no committed tool call is re-run.
//!
//! A reply that is not a usable tool call (`MALFORMED_FUNCTION_CALL`, text only, nothing at all) is a
//! failed turn answered with a correction, never taken as success; too many in a row fail the task.

pub mod tools;
pub mod transcript;

use cadre_domain::envelope::{Envelope, StepPayload};
use cadre_domain::event::Event;
use cadre_domain::ports::model::{CachePolicy, ChatMessage, ModelError, ModelRequest, Role};
use cadre_domain::ports::workspace::Worktree;
use cadre_domain::step::{ArtifactName, StepError, StepOutcome};
use cadre_domain::{Plan, Ports, StepKind, Task, TestReport, TraceId};
use std::path::Path;

use crate::context::{self, Budget};
use crate::prompt;
use crate::retrieval;
use crate::store_read::{artifact_json, artifact_text};
use tools::{Effect, Toolbox};
use transcript::TurnRecord;

/// Turns a round may take before its work is tested as it stands.
pub const MAX_TURNS: u32 = 30;
/// Consecutive turns without a usable tool call before the task fails.
pub const MAX_FAILED_TURNS: u32 = 3;

/// The artifact holding turn `turn` of round `round`.
#[must_use]
pub fn turn_artifact(round: u32, turn: u32) -> ArtifactName {
    ArtifactName::new(format!("turn-r{round}-t{turn}"))
}

/// Runs turn `turn` (from 1) of generate round `round` for `task`.
///
/// # Errors
/// Model, workspace, sandbox and store failures (retried by the engine); [`StepError::MissingState`]
/// when an earlier turn's record is missing; [`StepError::Unusable`] when the model keeps failing to
/// call tools or finishes without a change.
pub async fn turn(
    task: &Task,
    round: u32,
    turn: u32,
    trace: &TraceId,
    ports: &Ports,
) -> Result<StepOutcome, StepError> {
    let plan: Plan = artifact_json(ports, &task.id, &ArtifactName::plan()).await?;
    let mut records = Vec::new();
    for t in 1..turn {
        records.push(artifact_json::<TurnRecord>(ports, &task.id, &turn_artifact(round, t)).await?);
    }
    let previous_round = if round > 1 && turn == 1 {
        let patch = artifact_text(ports, &task.id, &ArtifactName::patch(round - 1)).await?;
        let report: TestReport =
            artifact_json(ports, &task.id, &ArtifactName::report(round - 1)).await?;
        Some((patch, report))
    } else {
        None
    };
    let base_patch = match (records.last(), &previous_round) {
        (Some(last), _) => Some(last.patch.clone()),
        (None, Some((patch, _))) => Some(patch.clone()),
        (None, None) => None,
    }
    .filter(|p| !p.is_empty());
    let label = format!("{}-generate-r{round}-t{turn}", task.id);
    let worktree = ports
        .workspace
        .checkout(Path::new(&task.repo), &task.base_commit, base_patch.as_deref(), &label)
        .await?;
    let state = Turn { task, round, turn, trace, ports, plan: &plan, worktree: &worktree };
    let result = state.run(records, previous_round.as_ref().map(|(_, r)| r)).await;
    if let Err(error) = ports.workspace.remove(&worktree).await {
        tracing::warn!(%error, "could not remove the turn's worktree");
    }
    result
}

struct Turn<'a> {
    task: &'a Task,
    round: u32,
    turn: u32,
    trace: &'a TraceId,
    ports: &'a Ports,
    plan: &'a Plan,
    worktree: &'a Worktree,
}

impl Turn<'_> {
    async fn run(
        &self,
        mut records: Vec<TurnRecord>,
        failed_report: Option<&TestReport>,
    ) -> Result<StepOutcome, StepError> {
        let mut record = TurnRecord::default();
        if records.is_empty() {
            record.messages.push(ChatMessage::user(self.opening(failed_report).await?));
        }
        let mut probe = ModelRequest::new("generate", prompt::AGENT.text, Vec::new());
        probe.tools = tools::specs();
        probe.task = Some(self.task.id.clone());
        probe.budget_micros = self.task.settings.budget_micros;
        probe.team = self.task.settings.team.clone();
        probe.template = Some(prompt::AGENT.id());
        probe.thinking = Some(self.task.settings.thinking.turn);
        probe.cache = CachePolicy::Use;
        records.push(TurnRecord { messages: record.messages.clone(), ..TurnRecord::default() });
        let request =
            ModelRequest { messages: transcript::conversation(&records, &probe), ..probe };
        records.pop();

        let failed_before = records.last().map_or(0, |r| r.failed_in_a_row);
        let mut lines = Vec::new();
        let mut usage = Default::default();
        match self.ports.model.complete(&request).await {
            Ok(reply) if !reply.tool_calls.is_empty() => {
                usage = reply.usage;
                record.messages.push(ChatMessage::from_reply(&reply));
                let toolbox = Toolbox {
                    task: self.task,
                    ports: self.ports,
                    worktree: self.worktree,
                    repo: self.ports.knowledge.key_for(&self.task.repo).ok(),
                };
                let mut results = Vec::new();
                for call in &reply.tool_calls {
                    let executed = toolbox.execute(call).await?;
                    match &executed.effect {
                        Effect::Finished(summary) => record.finished = Some(summary.clone()),
                        Effect::Tested(report) => {
                            let summary = crate::test::summary_line(report);
                            record.notes.push(format!(
                                "turn {}: run_tests {}: {summary}",
                                self.turn,
                                if report.passed { "passed" } else { "failed" },
                            ));
                            record.test_runs.push(transcript::TestRun {
                                passed: report.passed,
                                summary,
                                failing: report.failing_tests.clone(),
                            });
                        }
                        Effect::None | Effect::Edited => {}
                    }
                    if executed.line.contains("refused") {
                        record.notes.push(format!("turn {}: {}", self.turn, executed.line));
                    }
                    lines.push(executed.line);
                    results.push(executed.result);
                }
                record.messages.push(ChatMessage::tool_results(results));
            }
            Ok(reply) => {
                usage = reply.usage;
                record.messages.push(ChatMessage::from_reply(&reply));
                record.messages.push(ChatMessage::user(
                    "You answered without calling a tool. Work through the tools; when the change is complete and the tests pass, call finish.",
                ));
                record.failed_in_a_row = failed_before + 1;
                lines.push("no tool call: corrected".to_owned());
            }
            Err(ModelError::MalformedToolCall { finish, message }) => {
                record
                    .messages
                    .push(ChatMessage::model(format!("(an unusable tool call: {finish})")));
                record.messages.push(ChatMessage::user(format!(
                    "Your last tool call could not be used ({finish}: {message}). Call one of the declared tools with a JSON object of its parameters."
                )));
                record.failed_in_a_row = failed_before + 1;
                lines.push(format!("unusable tool call ({finish}): corrected"));
            }
            Err(ModelError::MalformedReply { reason }) => {
                record.messages.push(ChatMessage::model("(an empty or malformed answer)"));
                record.messages.push(ChatMessage::user(format!(
                    "Your last answer could not be read ({reason}). Continue by calling a tool."
                )));
                record.failed_in_a_row = failed_before + 1;
                lines.push("malformed answer: corrected".to_owned());
            }
            Err(other) => return Err(other.into()),
        }
        if record.failed_in_a_row > MAX_FAILED_TURNS {
            return Err(StepError::Unusable {
                reason: format!(
                    "the model made no usable tool call in {} turns in a row; last: {}",
                    record.failed_in_a_row,
                    lines.last().map_or("", String::as_str)
                ),
            });
        }
        record.patch = self.ports.workspace.diff(self.worktree).await?;
        self.outcome(&records, record, lines, usage)
    }

    /// The first message of a round: the goal, the plan, the files it names, retrieved context and,
    /// from round 2, why the previous round failed.
    async fn opening(&self, failed_report: Option<&TestReport>) -> Result<String, StepError> {
        let budget = Budget { max_total_bytes: 64 * 1024, ..Budget::default() };
        let wanted = self.plan.files();
        let ctx =
            context::gather(self.ports.workspace.as_ref(), self.worktree, &wanted, false, budget)
                .await?;
        let shown: Vec<String> = ctx.shown.iter().map(|(path, _)| path.clone()).collect();
        let mut rendered = ctx.render(budget);
        if let Some(retrieved) = retrieval::retrieve(
            self.ports.knowledge.as_ref(),
            self.task,
            &self.task.goal,
            retrieval::DEFAULT_TOKENS,
            &shown,
        )
        .await
        {
            rendered.push('\n');
            rendered.push_str(&retrieved.text);
        }
        Ok(crate::generate::first_message(
            self.task,
            self.plan,
            &rendered,
            failed_report,
            self.round,
        ))
    }

    fn outcome(
        &self,
        earlier: &[TurnRecord],
        record: TurnRecord,
        calls: Vec<String>,
        usage: cadre_domain::ports::model::TokenUsage,
    ) -> Result<StepOutcome, StepError> {
        let (task, round, turn) = (self.task, self.round, self.turn);
        let mut events = vec![Event::AgentTurn { round, turn, calls, usage }];
        let mut artifacts = Vec::new();
        let done = record.finished.is_some() || turn >= MAX_TURNS;
        let next = if done {
            if record.patch.trim().is_empty() {
                return Err(StepError::Unusable {
                    reason: match &record.finished {
                        Some(summary) => {
                            format!("the agent finished without changing anything: {summary}")
                        }
                        None => format!("the agent made no change in {MAX_TURNS} turns"),
                    },
                });
            }
            let (lines_added, lines_removed) = crate::generate::count_lines(&record.patch);
            events.push(Event::PatchReady {
                round,
                files_changed: crate::generate::changed_files(&record.patch),
                lines_added,
                lines_removed,
                usage,
            });
            artifacts.push((ArtifactName::patch(round), record.patch.clone().into_bytes()));
            StepPayload::Test { round }
        } else {
            StepPayload::Turn { round, turn: turn + 1 }
        };
        artifacts
            .push((turn_artifact(round, turn), serde_json::to_vec(&record).unwrap_or_default()));
        if done {
            let mut all = earlier.to_vec();
            all.push(record.clone());
            let reproduced = transcript::reproductions(&all);
            artifacts.push((
                ArtifactName::transcript(StepKind::Generate, round),
                transcript_bytes(&record, &reproduced),
            ));
            artifacts.push((
                reproduction_artifact(round),
                serde_json::to_vec_pretty(&reproduced).unwrap_or_default(),
            ));
        }
        Ok(StepOutcome {
            events,
            artifacts,
            next: vec![Envelope::new(task.id.clone(), self.trace.clone(), next)],
        })
    }
}

/// The artifact listing the tests the agent saw fail and then pass in round `round` (JSON
/// [`transcript::Reproduction`]s).
#[must_use]
pub fn reproduction_artifact(round: u32) -> ArtifactName {
    ArtifactName::new(format!("reproduction-r{round}"))
}

/// A pointer to the turn records, which together are the round's transcript.
fn transcript_bytes(last: &TurnRecord, reproduced: &[transcript::Reproduction]) -> Vec<u8> {
    let roles: Vec<&str> =
        last.messages.iter().map(|m| if m.role == Role::User { "user" } else { "model" }).collect();
    serde_json::to_vec_pretty(&serde_json::json!({
        "harness": "tools",
        "records": "turn-r<round>-t<turn> artifacts, one per turn",
        "last_turn_roles": roles,
        "finished": last.finished,
        "reproduced": reproduced,
    }))
    .unwrap_or_default()
}
