//! Cadre's data as the protocol shows it: progress messages from task events, diagnostics from test
//! failures, text edits from re-based hunks, and the readable review summary.

use std::fmt::Write;
use std::path::Path;

use cadre_domain::event::Event;
use cadre_domain::report::TestFailure;
use cadre_domain::{Plan, TaskState, TestReport};
use tower_lsp::lsp_types::{
    Diagnostic, DiagnosticSeverity, NumberOrString, Position, Range, TextEdit, Url,
};

use crate::documents::{utf16_len, Document};
use crate::patch::LineEdit;

/// The `source` of every diagnostic Cadre publishes.
pub const DIAGNOSTIC_SOURCE: &str = "cadre";

/// A progress report for one event: its message and a rough percentage (none for a retry, which does
/// not move the bar). `None` for the creation itself, which the progress's title already says.
#[must_use]
pub fn progress(event: &Event) -> Option<(String, Option<u32>)> {
    let percent = match event {
        Event::Created { .. } => return None,
        Event::StepStarted { step, round, .. } => match step {
            cadre_domain::StepKind::Index => 2,
            cadre_domain::StepKind::Plan => 5,
            cadre_domain::StepKind::Generate => 20 + 60 * round.saturating_sub(1).min(3) / 3,
            cadre_domain::StepKind::Test => 40 + 60 * round.saturating_sub(1).min(3) / 3,
            cadre_domain::StepKind::Review => 95,
        },

        Event::AgentTurn { round, .. } => 25 + 60 * round.saturating_sub(1).min(3) / 3,
        Event::Indexed { .. } => 4,
        Event::PlanReady { .. } => 15,
        Event::PatchReady { round, .. } => 35 + 60 * round.saturating_sub(1).min(3) / 3,
        Event::TestsFinished { round, .. } => 55 + 40 * round.saturating_sub(1).min(3) / 3,
        Event::AwaitingReview { .. }
        | Event::Applied { .. }
        | Event::Rejected { .. }
        | Event::Failed { .. }
        | Event::Cancelled { .. } => 100,
        // Retries, budget news and any kind of event added later say something without moving the
        // bar; the domain's event enum grows often, and the person should still read them.
        _ => return Some((event.describe(), None)),
    };
    Some((event.describe(), Some(percent.min(100))))
}

/// The cost so far, as shown after a progress message.
#[must_use]
pub fn cost(micros: Option<u64>) -> String {
    match micros {
        #[allow(clippy::cast_precision_loss)]
        Some(m) => format!(" (${:.4} so far)", m as f64 / 1e6),
        None => String::new(),
    }
}

/// The progress token of a task the server created progress for.
#[must_use]
pub fn token(task: &cadre_domain::TaskId) -> NumberOrString {
    NumberOrString::String(format!("cadre/{task}"))
}

/// Diagnostics for failing tests, by file URI, for files inside `repo` (others are dropped: a path
/// outside the repository is the sandbox's, not the person's).
#[must_use]
pub fn failure_diagnostics(
    repo: &Path,
    task_short: &str,
    round: u32,
    failures: &[TestFailure],
    line_len: impl Fn(&Url, usize) -> Option<u32>,
) -> Vec<(Url, Diagnostic)> {
    let mut out = Vec::new();
    for failure in failures {
        let (Some(file), Some(line)) = (&failure.file, failure.line) else { continue };
        if Path::new(file).is_absolute() || file.split('/').any(|p| p == "..") {
            continue;
        }
        let Ok(uri) = Url::from_file_path(repo.join(file)) else { continue };
        let line = line.saturating_sub(1);
        let end = line_len(&uri, line as usize).unwrap_or(0);
        let message = format!(
            "test {} failed in Cadre's round {round} (task {task_short}): {}",
            failure.name,
            failure.message.trim()
        );
        out.push((
            uri,
            Diagnostic {
                range: Range::new(Position::new(line, 0), Position::new(line, end)),
                severity: Some(DiagnosticSeverity::ERROR),
                source: Some(DIAGNOSTIC_SOURCE.to_owned()),
                code: Some(NumberOrString::String(format!("task/{task_short}"))),
                message,
                ..Diagnostic::default()
            },
        ));
    }
    out
}

/// A line edit as an LSP text edit against `current` (the text the edit was computed on).
#[must_use]
pub fn text_edit(current: &Document, edit: &LineEdit) -> TextEdit {
    let n = current.line_count();
    let start = position_of_line(current, edit.start, n);
    let end = position_of_line(current, edit.end, n);
    TextEdit { range: Range::new(start, end), new_text: edit.text.clone() }
}

/// The start of line `line`, or the end of the text when `line` is past its last line start.
fn position_of_line(doc: &Document, line: usize, count: usize) -> Position {
    // `count` counts the empty line after a final newline, so `line < count` is a real line start.
    if line < count {
        return Position::new(u32::try_from(line).unwrap_or(u32::MAX), 0);
    }
    let last = count.saturating_sub(1);
    let len = doc.line(last).map_or(0, utf16_len);
    Position::new(u32::try_from(last).unwrap_or(u32::MAX), len)
}

/// What the readable review summary is made of.
#[derive(Debug, Clone, Copy)]
pub struct Review<'a> {
    /// The task's title in the editor (`Cadre: fix this (calc.py line 7)`).
    pub title: &'a str,
    /// The task's short id.
    pub task_short: &'a str,
    /// The task's goal; its first paragraph is shown (the rest is the editor context it carried).
    pub goal: &'a str,
    /// The proposed round.
    pub round: u32,
    /// The plan, when stored.
    pub plan: Option<&'a Plan>,
    /// Every round's test report, in order (`None` where a round's report cannot be read).
    pub rounds: &'a [(u32, Option<TestReport>)],
    /// Lines added and removed per file of the proposed change.
    pub files: &'a [(String, u32, u32)],
    /// Model spend so far in micro-dollars.
    pub cost_micros: Option<u64>,
}

/// Lines of the goal shown in a summary; the rest is context the person already has in the editor.
const GOAL_LINES: usize = 8;

/// The readable summary of a proposal: the goal, the plan, the tests of every round and their result,
/// the change and the cost. Plain text that also reads as Markdown, so it works in a message and in
/// an opened document alike.
#[must_use]
pub fn summary(review: &Review<'_>) -> String {
    let Review { title, task_short, goal, round, plan, rounds, files, cost_micros } = *review;
    let mut out = format!("{title}: ready for review (task {task_short}, round {round})\n");
    let goal: Vec<&str> =
        goal.trim().lines().take_while(|l| !l.trim().is_empty()).take(GOAL_LINES).collect();
    if !goal.is_empty() {
        let _ = writeln!(out, "Goal: {}", goal.join("\n  "));
    }
    if let Some(plan) = plan {
        let _ = writeln!(out, "Plan: {}", plan.summary.trim());
        for (i, step) in plan.steps.iter().enumerate() {
            let _ = writeln!(out, "  {}. {} [{}]", i + 1, step.description, step.files.join(", "));
        }
    }
    if rounds.is_empty() {
        out.push_str("Tests: no report\n");
    }
    for (n, report) in rounds {
        match report {
            Some(r) => {
                let verdict = if r.passed { "passed" } else { "failed" };
                let counts = r
                    .counts
                    .map(|c| {
                        format!(": {} passed, {} failed, {} skipped", c.passed, c.failed, c.skipped)
                    })
                    .unwrap_or_default();
                let _ = writeln!(
                    out,
                    "Tests: {verdict} in round {n}{counts} in {} ms (`{}`, {:?})",
                    r.duration_ms, r.command, r.isolation
                );
                for failure in r.failures.iter().take(5) {
                    let first = failure.message.lines().next().unwrap_or_default();
                    let _ = writeln!(out, "  - {}: {}", failure.name, first.trim());
                }
            }
            None => {
                let _ = writeln!(out, "Tests: no report for round {n}");
            }
        }
    }
    let changes: Vec<String> = files
        .iter()
        .map(|(path, added, removed)| format!("{path} (+{added} -{removed})"))
        .collect();
    let _ = writeln!(out, "Change: {}", changes.join(", "));
    if let Some(m) = cost_micros {
        #[allow(clippy::cast_precision_loss)]
        let _ = writeln!(out, "Cost: ${:.4}", m as f64 / 1e6);
    }
    out.push_str(&format!(
        "Apply it with the code action \"Cadre: apply the proposed change\" (command cadre.accept), \
         or discard it with \"Cadre: discard the proposed change\" (cadre.reject {task_short})."
    ));
    out
}

/// Counts added and removed lines per file of a unified diff.
#[must_use]
pub fn diff_stat(patch: &str) -> Vec<(String, u32, u32)> {
    let mut out: Vec<(String, u32, u32)> = Vec::new();
    for line in patch.lines() {
        if let Some(rest) = line.strip_prefix("+++ ") {
            let path = rest.strip_prefix("b/").unwrap_or(rest);
            if path != "/dev/null" {
                out.push((path.to_owned(), 0, 0));
            }
        } else if let Some(rest) = line.strip_prefix("--- ") {
            // A deleted file names its path only here; a later `+++ /dev/null` adds nothing.
            if line.len() > 4 && rest != "/dev/null" {
                let path = rest.strip_prefix("a/").unwrap_or(rest).to_owned();
                out.push((path, 0, 0));
            }
        } else if let Some(last) = out.last_mut() {
            if line.starts_with('+') {
                last.1 += 1;
            } else if line.starts_with('-') {
                last.2 += 1;
            }
        }
    }
    out.dedup_by(|b, a| {
        if a.0 == b.0 {
            a.1 += b.1;
            a.2 += b.2;
            true
        } else {
            false
        }
    });
    out
}

/// Whether a state means the task needs nothing more from the server (finished, or waiting for a person).
#[must_use]
pub fn settled(state: TaskState) -> bool {
    state.is_terminal() || matches!(state, TaskState::AwaitingReview { .. })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::patch;

    #[test]
    fn edits_at_the_end_of_a_text_without_a_final_newline_end_there() {
        let doc = Document::new(1, "text", "a\nb".to_owned());
        let edit = LineEdit { start: 1, end: 2, text: "c".into() };
        let e = text_edit(&doc, &edit);
        assert_eq!(e.range, Range::new(Position::new(1, 0), Position::new(1, 1)));
        let doc = Document::new(1, "text", "a\nb\n".to_owned());
        let e = text_edit(&doc, &LineEdit { start: 1, end: 2, text: "c\n".into() });
        assert_eq!(e.range, Range::new(Position::new(1, 0), Position::new(2, 0)));
        assert_eq!(
            patch::apply("a\nb\n", &[LineEdit { start: 1, end: 2, text: "c\n".into() }]),
            "a\nc\n"
        );
    }

    #[test]
    fn diff_stat_counts_per_file() {
        let diff = "diff --git a/x b/x\n--- a/x\n+++ b/x\n@@ -1 +1,2 @@\n-a\n+b\n+c\ndiff --git a/y b/y\ndeleted file mode 100644\n--- a/y\n+++ /dev/null\n@@ -1 +0,0 @@\n-z\n";
        assert_eq!(diff_stat(diff), vec![("x".into(), 2, 1), ("y".into(), 0, 1)]);
    }

    #[test]
    fn failures_outside_the_repository_are_not_shown() {
        let failures = vec![
            TestFailure {
                name: "t1".into(),
                message: "boom".into(),
                file: Some("test_calc.py".into()),
                line: Some(8),
            },
            TestFailure {
                name: "t2".into(),
                message: "x".into(),
                file: Some("/usr/lib/x.py".into()),
                line: Some(1),
            },
            TestFailure { name: "t3".into(), message: "x".into(), file: None, line: None },
        ];
        let d = failure_diagnostics(Path::new("/repo"), "abcd1234", 1, &failures, |_, _| Some(30));
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].0.path(), "/repo/test_calc.py");
        assert_eq!(d[0].1.range, Range::new(Position::new(7, 0), Position::new(7, 30)));
        assert_eq!(d[0].1.message, "test t1 failed in Cadre's round 1 (task abcd1234): boom");
    }
}
