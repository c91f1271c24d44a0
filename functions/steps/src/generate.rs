//! The `generate` step.
//!
//! Reads: the plan, and from round 2 on the previous round's patch and failing test report. Builds a fresh
//! worktree at the base commit with the previous patch applied, asks the model for edits in the
//! [`crate::edit_format`], applies them in memory (all or nothing, sending problems back to the model up to
//! [`MAX_CORRECTIONS`] times), writes them, and stores the cumulative diff against the base.
//! Writes: the `patch-r<round>` artifact, its transcript and a `PatchReady` event. Publishes: `test` of the round.

use cadre_domain::envelope::{Envelope, StepPayload};
use cadre_domain::event::Event;
use cadre_domain::ports::model::FinishReason;
use cadre_domain::ports::workspace::{FileWrite, Worktree};
use cadre_domain::step::{ArtifactName, StepError, StepOutcome};
use cadre_domain::{Plan, Ports, StepKind, Task, TestReport, TraceId};
use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::Path;

use crate::context::{self, Budget};
use crate::conversation::{Conversation, MAX_CORRECTIONS};
use crate::edit_format;
use crate::prompt;
use crate::retrieval;
use crate::store_read::{artifact_json, artifact_text};

/// Runs generate round `round` for `task`.
///
/// # Errors
/// Model, workspace and store failures; [`StepError::MissingState`] without a plan (or, from round 2, the
/// previous round's patch and report); [`StepError::Unusable`] when the model's edits never applied.
pub async fn generate(
    task: &Task,
    round: u32,
    trace: &TraceId,
    ports: &Ports,
) -> Result<StepOutcome, StepError> {
    let plan: Plan = artifact_json(ports, &task.id, &ArtifactName::plan()).await?;
    let previous = if round > 1 {
        let patch = artifact_text(ports, &task.id, &ArtifactName::patch(round - 1)).await?;
        let report: TestReport =
            artifact_json(ports, &task.id, &ArtifactName::report(round - 1)).await?;
        Some((patch, report))
    } else {
        None
    };
    let label = format!("{}-generate-r{round}", task.id);
    let patch = previous.as_ref().map(|(patch, _)| patch.as_str());
    let worktree =
        ports.workspace.checkout(Path::new(&task.repo), &task.base_commit, patch, &label).await?;
    let result =
        generate_in(task, round, trace, ports, &worktree, &plan, previous.as_ref().map(|(_, r)| r))
            .await;
    if let Err(error) = ports.workspace.remove(&worktree).await {
        tracing::warn!(%error, "could not remove the generate worktree");
    }
    result
}

async fn generate_in(
    task: &Task,
    round: u32,
    trace: &TraceId,
    ports: &Ports,
    worktree: &Worktree,
    plan: &Plan,
    failed_report: Option<&TestReport>,
) -> Result<StepOutcome, StepError> {
    let budget = Budget::default();
    let mut wanted = plan.files();
    if let Some(report) = failed_report {
        let files = ports.workspace.list_files(worktree).await?;
        for f in context::mentioned_in(&report.output_tail, &files) {
            if !wanted.contains(&f) {
                wanted.push(f);
            }
        }
    }
    let ctx = context::gather(ports.workspace.as_ref(), worktree, &wanted, false, budget).await?;
    let shown: Vec<String> = ctx.shown.iter().map(|(path, _)| path.clone()).collect();
    let retrieved = retrieval::retrieve(
        ports.knowledge.as_ref(),
        task,
        &retrieval_query(task, plan, failed_report),
        retrieval::DEFAULT_TOKENS,
        &shown,
    )
    .await;
    let mut rendered = ctx.render(budget);
    if let Some(retrieved) = &retrieved {
        rendered.push('\n');
        rendered.push_str(&retrieved.text);
    }
    let first = first_message(task, plan, &rendered, failed_report, round);
    let mut convo = Conversation::new(task, "generate", prompt::GENERATE, first, None);
    convo.request.thinking = Some(task.settings.thinking.generate);

    let mut attempt = 0;
    let writes = loop {
        let reply = convo.ask(ports.model.as_ref()).await?;
        let problem = match edits_from(&reply.text, ports, worktree).await? {
            Ok(writes) if reply.finish == FinishReason::MaxTokens && writes.is_empty() => {
                "the answer was cut off at the output token limit; send fewer, smaller blocks"
                    .to_owned()
            }
            Ok(writes) if writes.is_empty() => {
                "the edits change nothing; make the change the plan asks for".to_owned()
            }
            Ok(writes) => break writes,
            Err(problem) => problem,
        };
        attempt += 1;
        if attempt > MAX_CORRECTIONS {
            return Err(StepError::Unusable {
                reason: format!("the model's edits did not apply after {attempt} tries: {problem}"),
            });
        }
        tracing::warn!(attempt, %problem, "unusable edits, asking the model again");
        convo.correct(&problem);
    };

    ports.workspace.write_files(worktree, &writes).await?;
    let diff = ports.workspace.diff(worktree).await?;
    let (lines_added, lines_removed) = count_lines(&diff);
    let mut files_changed: Vec<String> = writes.iter().map(|w| w.path.clone()).collect();
    files_changed.sort();
    Ok(StepOutcome {
        events: vec![Event::PatchReady {
            round,
            files_changed,
            lines_added,
            lines_removed,
            usage: convo.usage,
        }],
        artifacts: {
            let mut artifacts = vec![
                (ArtifactName::patch(round), diff.into_bytes()),
                (ArtifactName::transcript(StepKind::Generate, round), convo.to_artifact()),
            ];
            if let Some(retrieved) = retrieved {
                artifacts
                    .push((ArtifactName::context(StepKind::Generate, round), retrieved.record));
            }
            artifacts
        },
        next: vec![Envelope::new(task.id.clone(), trace.clone(), StepPayload::Test { round })],
    })
}

/// What generate searches the index for: the goal, the plan's steps, and the tests that failed.
fn retrieval_query(task: &Task, plan: &Plan, failed_report: Option<&TestReport>) -> String {
    let mut query = task.goal.clone();
    for step in &plan.steps {
        query.push('\n');
        query.push_str(&step.description);
    }
    if let Some(report) = failed_report {
        for name in report.failing_tests.iter().take(10) {
            query.push('\n');
            query.push_str(name);
        }
    }
    query
}

/// Parses and applies a reply's edits in memory; the inner `Err` is a problem to send back to the model.
async fn edits_from(
    reply: &str,
    ports: &Ports,
    worktree: &Worktree,
) -> Result<Result<Vec<FileWrite>, String>, StepError> {
    let blocks = match edit_format::parse(reply) {
        Ok(blocks) => blocks,
        Err(errors) => return Ok(Err(edit_format::describe(&errors))),
    };
    let mut current = BTreeMap::new();
    for block in &blocks {
        if !current.contains_key(&block.path) {
            let text = match ports.workspace.read_file(worktree, &block.path).await {
                Ok(text) => text,
                Err(cadre_domain::ports::workspace::WorkspaceError::BadPath { path, why }) => {
                    return Ok(Err(format!("- `{path}` cannot be edited: {why}")));
                }
                Err(other) => return Err(other.into()),
            };
            current.insert(block.path.clone(), text);
        }
    }
    Ok(edit_format::apply(&blocks, &current)
        .map(|changed| {
            changed
                .into_iter()
                .map(|(path, text)| FileWrite { path, content: Some(text) })
                .collect()
        })
        .map_err(|errors| edit_format::describe(&errors)))
}

pub(crate) fn first_message(
    task: &Task,
    plan: &Plan,
    context: &str,
    failed: Option<&TestReport>,
    round: u32,
) -> String {
    let mut m = format!("# Goal\n{}\n\n# Plan\n{}\n", task.goal, plan.summary);
    for (i, step) in plan.steps.iter().enumerate() {
        let _ = writeln!(m, "{}. {} (files: {})", i + 1, step.description, step.files.join(", "));
    }
    if !plan.acceptance_criteria.is_empty() {
        m.push_str("\nAcceptance criteria:\n");
        for c in &plan.acceptance_criteria {
            let _ = writeln!(m, "- {c}");
        }
    }
    m.push('\n');
    m.push_str(context);
    if let Some(report) = failed {
        let _ = write!(
            m,
            "\n# Round {} failed its tests\nThe files above already contain your previous changes. \
             Fix the failure.\nCommand: `{}` (exit code {:?}{})\n",
            round - 1,
            report.command,
            report.exit_code,
            if report.timed_out { ", timed out" } else { "" },
        );
        if !report.failing_tests.is_empty() {
            let _ = writeln!(m, "Failing tests: {}", report.failing_tests.join(", "));
        }
        let _ = write!(m, "Output (end):\n```\n{}\n```\n", report.output_tail);
    }
    m
}

/// The files a unified diff touches, sorted (the `b/` side; the `a/` side for deletions).
pub(crate) fn changed_files(diff: &str) -> Vec<String> {
    let mut files: Vec<String> = diff
        .lines()
        .filter_map(|l| l.strip_prefix("diff --git a/"))
        .filter_map(|rest| rest.split_once(" b/").map(|(_, b)| b.to_owned()))
        .collect();
    files.sort();
    files.dedup();
    files
}

/// Added and removed lines of a unified diff.
pub(crate) fn count_lines(diff: &str) -> (u32, u32) {
    let mut added = 0u32;
    let mut removed = 0u32;
    for line in diff.lines() {
        if line.starts_with('+') && !line.starts_with("+++") {
            added += 1;
        } else if line.starts_with('-') && !line.starts_with("---") {
            removed += 1;
        }
    }
    (added, removed)
}
