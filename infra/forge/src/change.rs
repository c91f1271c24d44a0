//! What a change says about itself: the commit message, and the pull request's title and body.

use cadre_domain::{Plan, Task, TestReport};
use std::fmt::Write as _;

/// Longest title, in characters (forges cut longer ones in lists).
const TITLE_MAX: usize = 72;

/// Longest log excerpt quoted in a pull request body.
const TAIL_MAX: usize = 2_000;

/// The pull request title: the goal's first line, shortened to 72 characters.
#[must_use]
pub fn request_title(goal: &str) -> String {
    let line = goal.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or("Cadre change");
    if line.chars().count() <= TITLE_MAX {
        return line.to_owned();
    }
    let mut title: String = line.chars().take(TITLE_MAX - 1).collect();
    title.push('…');
    title
}

/// The commit message: the title, then the goal, the plan's summary and steps, and the tests run.
#[must_use]
pub fn commit_message(task: &Task, plan: Option<&Plan>, report: Option<&TestReport>) -> String {
    let mut m = format!("{}\n\nGoal: {}\n", request_title(&task.goal), task.goal.trim());
    if let Some(plan) = plan {
        let _ = write!(m, "\nPlan: {}\n", plan.summary.trim());
        for (i, step) in plan.steps.iter().enumerate() {
            let _ = writeln!(m, "{}. {}", i + 1, step.description.trim());
        }
    }
    match report {
        Some(r) => {
            let verdict = if r.passed { "passed" } else { "failed" };
            let _ = write!(m, "\nTests: `{}` {verdict}", r.command);
            if let Some(c) = r.counts {
                let _ =
                    write!(m, " ({} passed, {} failed, {} skipped)", c.passed, c.failed, c.skipped);
            }
            m.push('\n');
        }
        None => m.push_str("\nTests: not run\n"),
    }
    let _ = write!(m, "\nCadre-Task: {}\n", task.id);
    m
}

/// A diffstat of a unified diff: one `path | +added -removed` line per file, then the totals.
#[must_use]
pub fn diff_summary(patch: &str) -> String {
    let mut files: Vec<(String, u32, u32)> = Vec::new();
    for line in patch.lines() {
        if let Some(rest) = line.strip_prefix("diff --git ") {
            let path = rest.rsplit_once(" b/").map_or(rest, |(_, b)| b);
            files.push((path.to_owned(), 0, 0));
        } else if let Some(file) = files.last_mut() {
            if line.starts_with("+++") || line.starts_with("---") {
                continue;
            }
            if line.starts_with('+') {
                file.1 += 1;
            } else if line.starts_with('-') {
                file.2 += 1;
            }
        }
    }
    let mut out = String::new();
    let (mut added, mut removed) = (0, 0);
    for (path, a, r) in &files {
        let _ = writeln!(out, "{path} | +{a} -{r}");
        added += a;
        removed += r;
    }
    let _ = write!(out, "{} file(s) changed, +{added} -{removed}", files.len());
    out
}

/// The pull request body (Markdown): goal, plan, diff summary and test report.
#[must_use]
pub fn request_body(
    task: &Task,
    plan: Option<&Plan>,
    patch: &str,
    report: Option<&TestReport>,
) -> String {
    let mut b =
        format!("Proposed by Cadre for task `{}`.\n\n## Goal\n\n{}\n", task.id, task.goal.trim());
    if let Some(plan) = plan {
        let _ = write!(b, "\n## Plan\n\n{}\n\n", plan.summary.trim());
        for (i, step) in plan.steps.iter().enumerate() {
            let files = if step.files.is_empty() {
                String::new()
            } else {
                format!(" (`{}`)", step.files.join("`, `"))
            };
            let _ = writeln!(b, "{}. {}{files}", i + 1, step.description.trim());
        }
    }
    let _ = write!(b, "\n## Changes\n\n```\n{}\n```\n", diff_summary(patch));
    b.push_str("\n## Tests\n\n");
    match report {
        Some(r) => {
            let verdict = if r.passed { "passed" } else { "failed" };
            let _ = writeln!(b, "`{}` {verdict} in {} ms.", r.command, r.duration_ms);
            if let Some(c) = r.counts {
                let _ = writeln!(
                    b,
                    "\n{} passed, {} failed, {} skipped.",
                    c.passed, c.failed, c.skipped
                );
            }
            if !r.failing_tests.is_empty() {
                let _ = writeln!(b, "\nFailing: {}", r.failing_tests.join(", "));
            }
            let tail = r.output_tail.trim_end();
            let skip = tail.chars().count().saturating_sub(TAIL_MAX);
            let tail: String = tail.chars().skip(skip).collect();
            if !tail.is_empty() {
                let _ = write!(
                    b,
                    "\n<details><summary>Output</summary>\n\n```\n{tail}\n```\n</details>\n"
                );
            }
        }
        None => b.push_str("No tests were run.\n"),
    }
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diffstat() {
        let patch = "diff --git a/src/a.rs b/src/a.rs\n--- a/src/a.rs\n+++ b/src/a.rs\n@@ -1,2 +1,2 @@\n-old\n+new\n+more\n ctx\n\
                     diff --git a/b.txt b/b.txt\nnew file mode 100644\n--- /dev/null\n+++ b/b.txt\n@@ -0,0 +1 @@\n+x\n";
        assert_eq!(
            diff_summary(patch),
            "src/a.rs | +2 -1\nb.txt | +1 -0\n2 file(s) changed, +3 -1"
        );
        assert_eq!(request_title("  \nfix it\nmore"), "fix it");
        assert_eq!(request_title(&"x".repeat(100)).chars().count(), 72);
    }
}
