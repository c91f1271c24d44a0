//! The `test` step.
//!
//! Reads: the `patch-r<round>` artifact. Builds a fresh worktree at the base commit with the patch applied
//! and runs the repository's test command in the [`cadre_domain::ports::Sandbox`]. Writes: the
//! `report-r<round>` artifact and a `TestsFinished` event. Publishes: `review` when the tests pass,
//! `generate` of the next round when they fail and rounds remain; otherwise the task fails.

use cadre_domain::envelope::{Envelope, StepPayload};
use cadre_domain::event::Event;
use cadre_domain::ports::sandbox::RunSpec;
use cadre_domain::ports::workspace::Worktree;
use cadre_domain::step::{ArtifactName, StepError, StepOutcome};
use cadre_domain::{Ports, StepKind, Task, TestReport, TraceId};
use std::path::Path;
use std::time::Duration;

use crate::store_read::artifact_text;
use crate::{scan, test_command, test_output};
use cadre_domain::ScanLevel;

/// Output kept in a report: the end of what the tests printed.
const OUTPUT_LIMIT: usize = 64 * 1024;

/// Output a run may print: the tail kept in the report plus the JUnit reports a failing command
/// prints after it (see [`test_output::junit`]), which are split off before the report is written.
const RUN_OUTPUT_LIMIT: usize = OUTPUT_LIMIT + test_output::junit::REPORT_BUDGET;

/// Manifests read to recognise a test command.
const MANIFESTS: [&str; 5] = ["package.json", "pyproject.toml", "setup.cfg", "tox.ini", "Makefile"];

/// Runs the tests of round `round`'s patch.
///
/// # Errors
/// Sandbox, workspace and store failures; [`StepError::MissingState`] without the round's patch;
/// [`StepError::Unusable`] when no test command is configured or recognisable.
pub async fn test(
    task: &Task,
    round: u32,
    trace: &TraceId,
    ports: &Ports,
) -> Result<StepOutcome, StepError> {
    let patch = artifact_text(ports, &task.id, &ArtifactName::patch(round)).await?;
    let label = format!("{}-test-r{round}", task.id);
    let worktree = ports
        .workspace
        .checkout(Path::new(&task.repo), &task.base_commit, Some(&patch), &label)
        .await?;
    let result = test_in(task, round, trace, ports, &worktree, &patch).await;
    if let Err(error) = ports.workspace.remove(&worktree).await {
        tracing::warn!(%error, "could not remove the test worktree");
    }
    result
}

async fn test_in(
    task: &Task,
    round: u32,
    trace: &TraceId,
    ports: &Ports,
    worktree: &Worktree,
    patch: &str,
) -> Result<StepOutcome, StepError> {
    let report = run_suite(task, ports, worktree).await?;
    let passed = report.passed;
    let summary = summary_line(&report);
    let mut events = vec![Event::TestsFinished { round, passed, summary: summary.clone() }];
    let mut artifacts = Vec::new();
    if let Some(scanned) = scan_round(task, ports, worktree, patch).await? {
        let errors =
            scanned.findings.iter().filter(|f| f.severity == scan::Severity::Error).count();
        events.push(Event::Scanned {
            round,
            scanners: scanned.scanners.clone(),
            errors: u32::try_from(errors).unwrap_or(u32::MAX),
            findings: u32::try_from(scanned.findings.len()).unwrap_or(u32::MAX),
        });
        artifacts
            .push((scan_artifact(round), serde_json::to_vec_pretty(&scanned).unwrap_or_default()));
    }
    let mut next = Vec::new();
    if passed {
        next.push(Envelope::new(task.id.clone(), trace.clone(), StepPayload::Review { round }));
    } else if round < task.settings.max_rounds {
        next.push(Envelope::new(
            task.id.clone(),
            trace.clone(),
            StepPayload::Generate { round: round + 1 },
        ));
    } else {
        events.push(Event::Failed {
            step: Some(StepKind::Test),
            reason: format!(
                "tests still fail after {round} round(s) ({summary}); see `cadre show {}`",
                task.id
            ),
        });
    }
    artifacts.push((
        ArtifactName::report(round),
        serde_json::to_vec_pretty(&report).unwrap_or_default(),
    ));
    Ok(StepOutcome { events, artifacts, next })
}

/// The artifact holding round `round`'s scan findings (JSON [`scan::ScanReport`]).
#[must_use]
pub fn scan_artifact(round: u32) -> ArtifactName {
    ArtifactName::new(format!("scan-r{round}"))
}

/// Runs the scanners the task asks for over the round's worktree and patch; `None` when scanning is off.
async fn scan_round(
    task: &Task,
    ports: &Ports,
    worktree: &Worktree,
    patch: &str,
) -> Result<Option<scan::ScanReport>, StepError> {
    let config = match task.settings.scan {
        ScanLevel::Off => return Ok(None),
        ScanLevel::Secrets => {
            scan::ScanConfig { tools: Some(Vec::new()), ..scan::ScanConfig::default() }
        }
        ScanLevel::Full => scan::ScanConfig::default(),
    };
    let files = ports.workspace.list_files(worktree).await?;
    Ok(Some(scan::scan(ports.sandbox.as_ref(), &worktree.path, &files, patch, &config).await?))
}

/// Runs the task's test command (configured, or detected from the repository) over `worktree` in the
/// sandbox and parses what it printed. The `test` step and the harness's `run_tests` tool share it, so
/// the agent sees exactly what the pipeline will judge it by.
///
/// # Errors
/// Sandbox and workspace failures; [`StepError::Unusable`] when no test command is configured or
/// recognisable.
pub async fn run_suite(
    task: &Task,
    ports: &Ports,
    worktree: &Worktree,
) -> Result<TestReport, StepError> {
    let command = match &task.settings.test_command {
        Some(command) => command.clone(),
        None => detect_command(ports, worktree).await?.ok_or_else(|| StepError::Unusable {
            reason: "no test command found for this repository; pass --test-cmd \"…\" when creating the task".into(),
        })?,
    };
    let spec = RunSpec {
        workdir: worktree.path.clone(),
        command: test_output::junit::with_reports(&command),
        env: vec![("CI".into(), "true".into()), ("PYTHONDONTWRITEBYTECODE".into(), "1".into())],
        timeout: Duration::from_secs(task.settings.test_timeout_secs),
        output_limit: RUN_OUTPUT_LIMIT,
        network: Default::default(),
        cache: Some(task.id.to_string()),
    };
    let run = ports.sandbox.run(&spec).await?;
    let (output, reports) = test_output::junit::split(&run.output);
    let root = worktree.path.to_string_lossy();
    let parsed = test_output::parse(&output, &reports, &[root.as_ref()]);
    let (output_tail, cut) = keep_tail(output, OUTPUT_LIMIT);
    let passed = run.exit_code == Some(0) && !run.timed_out;
    Ok(TestReport {
        command,
        passed,
        exit_code: run.exit_code,
        timed_out: run.timed_out,
        duration_ms: u64::try_from(run.duration.as_millis()).unwrap_or(u64::MAX),
        counts: parsed.counts,
        failing_tests: parsed.failing_tests,
        output_tail,
        output_truncated: run.truncated || cut,
        isolation: run.isolation,
        killed_by: run.killed_by,
        failures: parsed.failures,
    })
}

async fn detect_command(ports: &Ports, worktree: &Worktree) -> Result<Option<String>, StepError> {
    let files = ports.workspace.list_files(worktree).await?;
    let mut manifests = Vec::new();
    for name in MANIFESTS {
        if files.iter().any(|f| f == name) {
            if let Some(text) = ports.workspace.read_file(worktree, name).await? {
                manifests.push((name, text));
            }
        }
    }
    Ok(test_command::detect(&files, |name| {
        manifests.iter().find(|(n, _)| *n == name).map(|(_, t)| t.clone())
    }))
}

/// The last `limit` bytes of `text` (from a character boundary), and whether anything was cut.
fn keep_tail(text: String, limit: usize) -> (String, bool) {
    if text.len() <= limit {
        return (text, false);
    }
    let mut start = text.len() - limit;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    (text[start..].to_owned(), true)
}

/// "3 passed, 1 failed" when counts are known, else the exit status.
pub fn summary_line(report: &TestReport) -> String {
    let status = if report.timed_out {
        "timed out".to_owned()
    } else {
        match report.exit_code {
            Some(code) => format!("exit code {code}"),
            None => "killed".to_owned(),
        }
    };
    match report.counts {
        Some(c) if c.skipped > 0 => {
            format!("{} passed, {} failed, {} skipped ({status})", c.passed, c.failed, c.skipped)
        }
        Some(c) => format!("{} passed, {} failed ({status})", c.passed, c.failed),
        None => status,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tail_is_cut_on_a_character_boundary() {
        assert_eq!(keep_tail("abc".into(), 5), ("abc".into(), false));
        assert_eq!(keep_tail("abcdef".into(), 3), ("def".into(), true));
        // "é" is two bytes: a cut through it starts after it.
        assert_eq!(keep_tail("xéab".into(), 3), ("ab".into(), true));
    }

    #[test]
    fn the_command_runs_in_a_subshell_and_keeps_its_status() {
        let wrapped = test_output::junit::with_reports("cargo test");
        assert!(wrapped.starts_with("(\ncargo test\n)\n"), "{wrapped}");
        assert!(wrapped.ends_with("exit $cadre_status"), "{wrapped}");
    }
}
