//! Commands that look at tasks and carry out a person's decision: `status`, `show`, `apply`, `reject`,
//! `cancel`, `resume`. None of them needs a model.

use anyhow::{bail, Context, Result};
use cadre_domain::candidates;
use cadre_domain::event::Event;
use cadre_domain::ports::knowledge::TaskVerdict;
use cadre_domain::ports::Workspace;
use cadre_domain::step::ArtifactName;
use cadre_domain::{Plan, TaskId, TaskState, TestReport};
use cadre_engine::OutcomePorts;
use cadre_steps::agent::reproduction_artifact;
use cadre_steps::agent::transcript::Reproduction;
use cadre_steps::scan::ScanReport;
use cadre_steps::test::scan_artifact;
use std::path::Path;
use std::process::ExitCode;

use crate::cli::ShowPart;
use crate::out;
use crate::wiring::{self, Core, Home};

/// The tests the agent saw fail and then pass (tool harness only): the change's evidence.
async fn reproduction(core: &Core, id: &TaskId, round: u32, lane: Option<u32>) -> Result<()> {
    let name = reproduction_artifact(round).for_candidate(lane);
    let Some(bytes) = core.store.artifact(id, &name).await? else {
        return Ok(());
    };
    let found: Vec<Reproduction> =
        serde_json::from_slice(&bytes).context("the stored reproduction record is corrupt")?;
    if found.is_empty() {
        out::line("# Reproduction\nthe agent did not see a test fail before its change");
    } else {
        out::line("# Reproduction");
        for r in found {
            out::line(format!(
                "{}: failed in turn {}, passed in turn {} (with the whole suite)",
                r.test, r.failed_in_turn, r.passed_in_turn
            ));
        }
    }
    Ok(())
}

/// What the scanners found in the round's change.
async fn findings(core: &Core, id: &TaskId, round: u32, lane: Option<u32>) -> Result<()> {
    let Some(bytes) = core.store.artifact(id, &scan_artifact(round).for_candidate(lane)).await?
    else {
        return Ok(());
    };
    let report: ScanReport =
        serde_json::from_slice(&bytes).context("the stored scan report is corrupt")?;
    out::line(format!(
        "# Scan (round {round}): {} finding(s) from {}",
        report.findings.len(),
        report.scanners.join(", ")
    ));
    for f in &report.findings {
        let place = match (&f.file, f.line) {
            (Some(file), Some(line)) => format!("{file}:{line}"),
            (Some(file), None) => file.clone(),
            _ => "-".to_owned(),
        };
        out::line(format!("{:?} {} {place} [{}] {}", f.severity, f.tool, f.rule, f.message));
    }
    Ok(())
}

/// Stores how the task ended in the repository's long-term memory (best effort: logged on failure).
async fn remember(core: &Core, id: &TaskId, verdict: TaskVerdict, reason: Option<&str>) {
    let ports = OutcomePorts {
        store: core.store.as_ref(),
        knowledge: core.knowledge.as_ref(),
        clock: core.clock.as_ref(),
    };
    cadre_engine::record_outcome(ports, id, verdict, reason).await;
}

async fn resolve(core: &Core, text: &str) -> Result<TaskId> {
    Ok(core.store.resolve_prefix(text.trim()).await?)
}

pub(crate) async fn status(task: Option<String>, home: &Home) -> Result<ExitCode> {
    let core = Core::open(home)?;
    let Some(text) = task else {
        let tasks = core.store.list_tasks(50).await?;
        if tasks.is_empty() {
            out::line("no tasks yet; start one with `cadre task --repo PATH \"goal\"`");
        }
        for t in tasks {
            let goal: String = t.task.goal.chars().take(60).collect();
            out::line(format!("{}  {:<26}  {goal}", t.task.id.short(), t.state.to_string()));
        }
        let depth = core.queue.depth().await?;
        if depth.dead > 0 {
            out::line(format!("{} message(s) in the dead letters", depth.dead));
        }
        return Ok(ExitCode::SUCCESS);
    };
    let id = resolve(&core, &text).await?;
    let summary = core.store.task(&id).await?;
    out::line(format!("task   {}", summary.task.id));
    out::line(format!("state  {}", summary.state));
    out::line(format!("repo   {} at {}", summary.task.repo, summary.task.base_commit));
    out::line(format!("goal   {}", summary.task.goal));
    out::line("log:");
    for record in core.store.events(&id).await? {
        out::line(format!("  {:>3}  {}", record.seq, record.event.describe()));
    }
    Ok(ExitCode::SUCCESS)
}

/// The candidates of a best-of-N task: the ranking once they all ended, else where each one is.
fn candidates_line(events: &[cadre_domain::EventRecord], candidates: u32) {
    let ranked = events.iter().find_map(|r| match &r.event {
        Event::CandidatesRanked { ranking, chosen } => Some((ranking, *chosen)),
        _ => None,
    });
    out::line(format!("# Candidates ({candidates})"));
    match ranked {
        Some((ranking, chosen)) => {
            for (place, r) in ranking.iter().enumerate() {
                let mark = if Some(r.candidate) == chosen { "  <- proposed" } else { "" };
                out::line(format!(
                    "{}. candidate {}: {}, round {}, {} lines changed, {} tokens: {}{mark}",
                    place + 1,
                    r.candidate,
                    if r.passed { "passed" } else { "failed" },
                    r.round,
                    r.lines_changed,
                    r.tokens,
                    r.ended
                ));
            }
        }
        None => {
            for k in 1..=candidates {
                let standing = match candidates::standing(events, k) {
                    candidates::Standing::Running => {
                        format!("running ({})", candidates::state_of(events, k))
                    }
                    candidates::Standing::Passed { round, summary } => {
                        format!("tests passed in round {round}: {summary}")
                    }
                    candidates::Standing::Failed { reason } => format!("failed: {reason}"),
                };
                out::line(format!("candidate {k}: {standing}"));
            }
        }
    }
    out::line("(see one with `cadre show TASK --candidate K`)");
}

pub(crate) async fn show(
    task: &str,
    only: Option<ShowPart>,
    candidate: Option<u32>,
    home: &Home,
) -> Result<ExitCode> {
    let core = Core::open(home)?;
    let id = resolve(&core, task).await?;
    let records = core.store.events(&id).await?;
    let candidates = core.store.task(&id).await?.task.settings.candidates;
    if let Some(k) = candidate {
        if k == 0 || k > candidates {
            bail!(
                "task {} has {candidates} candidate(s); --candidate takes 1 to {candidates}",
                id.short()
            );
        }
    }
    let events: Vec<Event> = match candidate {
        Some(k) => candidates::events_of(&records, k).cloned().collect(),
        None => records.iter().map(|r| r.event.clone()).collect(),
    };
    let patch_round = events.iter().rev().find_map(|e| match e {
        Event::PatchReady { round, .. } => Some(*round),
        _ => None,
    });
    let report_round = events.iter().rev().find_map(|e| match e {
        Event::TestsFinished { round, .. } => Some(*round),
        _ => None,
    });
    if candidates > 1 && only.is_none() && candidate.is_none() {
        candidates_line(&records, candidates);
    }
    if let Some(k) = candidate {
        out::line(format!("# Candidate {k} of {candidates}"));
    }
    let want = |part: ShowPart| {
        only.is_none_or(|o| std::mem::discriminant(&o) == std::mem::discriminant(&part))
    };
    if want(ShowPart::Plan) {
        match core.store.artifact(&id, &ArtifactName::plan()).await? {
            Some(bytes) => {
                let plan: Plan =
                    serde_json::from_slice(&bytes).context("the stored plan is corrupt")?;
                out::line(format!("# Plan\n{}", plan.summary));
                for (i, step) in plan.steps.iter().enumerate() {
                    out::line(format!(
                        "{}. {} [{}]",
                        i + 1,
                        step.description,
                        step.files.join(", ")
                    ));
                }
                for c in &plan.acceptance_criteria {
                    out::line(format!("   ✓ {c}"));
                }
            }
            None => out::line("# Plan\n(none yet)"),
        }
    }
    if want(ShowPart::Diff) {
        match patch_round {
            Some(round) => {
                let bytes = core
                    .store
                    .artifact(&id, &ArtifactName::patch(round).for_candidate(candidate))
                    .await?
                    .unwrap_or_default();
                out::line(format!(
                    "# Diff (round {round})\n{}",
                    String::from_utf8_lossy(&bytes).trim_end()
                ));
            }
            None => out::line("# Diff\n(none yet)"),
        }
    }
    if want(ShowPart::Report) {
        if let Some(round) = report_round {
            reproduction(&core, &id, round, candidate).await?;
            findings(&core, &id, round, candidate).await?;
        }
        match report_round {
            Some(round) => {
                let bytes = core
                    .store
                    .artifact(&id, &ArtifactName::report(round).for_candidate(candidate))
                    .await?
                    .unwrap_or_default();
                let report: TestReport =
                    serde_json::from_slice(&bytes).context("the stored report is corrupt")?;
                let verdict = if report.passed { "passed" } else { "failed" };
                out::line(format!(
                    "# Tests (round {round}): {verdict} in {} ms, `{}` ({:?})",
                    report.duration_ms, report.command, report.isolation
                ));
                if let Some(c) = report.counts {
                    out::line(format!(
                        "{} passed, {} failed, {} skipped",
                        c.passed, c.failed, c.skipped
                    ));
                }
                if !report.failing_tests.is_empty() {
                    out::line(format!("failing: {}", report.failing_tests.join(", ")));
                }
                out::line(report.output_tail.trim_end());
            }
            None => out::line("# Tests\n(none yet)"),
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn apply(task: &str, home: &Home) -> Result<ExitCode> {
    let core = Core::open(home)?;
    let id = resolve(&core, task).await?;
    let summary = core.store.task(&id).await?;
    let TaskState::AwaitingReview { round } = summary.state else {
        bail!(
            "task {} is {}, not awaiting review; only a proposed change can be applied",
            id.short(),
            summary.state
        );
    };
    let patch =
        core.store.artifact(&id, &ArtifactName::patch(round)).await?.with_context(|| {
            format!("task {} has no stored patch for round {round}", id.short())
        })?;
    let patch = String::from_utf8(patch).context("the stored patch is not UTF-8")?;
    let repo = Path::new(&summary.task.repo);
    core.workspace.apply_to_repo(repo, &patch).await.with_context(|| {
        format!(
            "nothing was changed; the repository moved since {} in a way that conflicts with the change: \
             see `cadre show {} --only diff`, then start a new task from the current HEAD",
            &summary.task.base_commit.as_str()[..12],
            id.short()
        )
    })?;
    let (state, applied) = core
        .store
        .append(
            &id,
            vec![Event::Applied { round }],
            core.clock.now(),
            Some(|s| matches!(s, TaskState::AwaitingReview { .. })),
        )
        .await?;
    if !applied {
        bail!(
            "the change was applied to the working tree, but the task had meanwhile become {state}"
        );
    }
    remember(&core, &id, TaskVerdict::Accepted, None).await;
    out::line(format!(
        "applied round {round} of task {} to {}; review with `git diff` and commit",
        id.short(),
        repo.display()
    ));
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn reject(task: &str, reason: Option<String>, home: &Home) -> Result<ExitCode> {
    let core = Core::open(home)?;
    let id = resolve(&core, task).await?;
    let (state, done) = core
        .store
        .append(
            &id,
            vec![Event::Rejected { reason: reason.clone() }],
            core.clock.now(),
            Some(|s| matches!(s, TaskState::AwaitingReview { .. })),
        )
        .await?;
    if !done {
        bail!(
            "task {} is {state}, not awaiting review; to stop a running task use `cadre cancel`",
            id.short()
        );
    }
    remember(&core, &id, TaskVerdict::Rejected, reason.as_deref()).await;
    out::line(format!("rejected task {}", id.short()));
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn cancel(task: &str, home: &Home) -> Result<ExitCode> {
    let core = Core::open(home)?;
    let id = resolve(&core, task).await?;
    let (state, cancelled) =
        cadre_engine::cancel(core.store.as_ref(), core.clock.as_ref(), &id, None).await?;
    if !cancelled {
        bail!("task {} is already {state}", id.short());
    }
    out::line(format!("cancelled task {}", id.short()));
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn resume(task: &str, budget_usd: Option<f64>, home: &Home) -> Result<ExitCode> {
    let core = Core::open(home)?;
    let id = resolve(&core, task).await?;
    let published = match budget_usd {
        Some(usd) => {
            let limit = wiring::usd_to_micros(usd, "--budget-usd")?;
            let spent = core.ledger.task_spend_micros(&id).await?;
            let published = cadre_engine::raise_budget(
                core.store.as_ref(),
                core.queue.as_ref(),
                core.clock.as_ref(),
                &id,
                limit,
                spent,
            )
            .await?;
            out::line(format!("raised the budget of task {} to ${usd:.2}", id.short()));
            published
        }
        None => cadre_engine::resume(core.store.as_ref(), core.queue.as_ref(), &id).await?,
    };
    match published {
        Some(payload) => out::line(format!(
            "re-published the {} step of task {}; `cadre serve-worker` runs it",
            payload.kind(),
            id.short()
        )),
        None => out::line(format!("task {} waits for no step", id.short())),
    }
    Ok(ExitCode::SUCCESS)
}
