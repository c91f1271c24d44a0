//! `go test`: `--- FAIL: TestX (0.00s)` names a failure (subtests as `TestX/case`), and the test's
//! `x_test.go:12: message` log lines are its message. Without `-v` the log lines follow the
//! `--- FAIL` line; with `-v` they come earlier, after `=== RUN   TestX`. A panic is reported with
//! its first line and the test file's frame from the goroutine trace.

use super::message;
use cadre_domain::report::TestFailure;
use std::collections::HashMap;

/// One log entry of a test: where it was logged and its (possibly multi-line) text.
struct Entry {
    location: Option<(String, u32)>,
    text: String,
}

/// Failing tests and subtests in the order their `--- FAIL` lines appear. A parent that failed
/// only because a subtest did (it logged nothing itself) is left out: the subtest says it all.
pub(crate) fn failures(output: &str) -> Vec<TestFailure> {
    let lines: Vec<&str> = output.lines().collect();
    let mut logs: HashMap<String, Vec<Entry>> = HashMap::new();
    let mut failed: Vec<String> = Vec::new();
    let mut current: Option<String> = None;
    for (i, line) in lines.iter().enumerate() {
        let trimmed = line.trim_start();
        if let Some(name) = ["=== RUN ", "=== CONT ", "--- PASS: ", "--- SKIP: "]
            .iter()
            .find_map(|p| trimmed.strip_prefix(p))
        {
            current = Some(test_name(name));
        } else if let Some(rest) = trimmed.strip_prefix("--- FAIL: ") {
            let name = test_name(rest);
            if !failed.contains(&name) {
                failed.push(name.clone());
            }
            current = Some(name);
        } else if line.starts_with("FAIL") || line.starts_with("ok ") || line.starts_with("PASS") {
            current = None;
        } else if let Some(panic) = line.strip_prefix("panic: ") {
            let Some(name) = current.clone() else { continue };
            let text = format!("panic: {}", panic.trim_end_matches(" [recovered]"));
            let location = panic_frame(&lines[i + 1..], &name);
            logs.entry(name).or_default().push(Entry { location, text });
            current = None;
        } else if let Some(name) = &current {
            if !line.starts_with("    ") {
                continue;
            }
            let entries = logs.entry(name.clone()).or_default();
            match message::location(trimmed).filter(|(f, _)| f.ends_with(".go")) {
                Some(loc) => {
                    let text = trimmed.splitn(3, ':').nth(2).unwrap_or("").trim().to_owned();
                    entries.push(Entry { location: Some(loc), text });
                }
                // A continuation line of the entry before.
                None => {
                    if let Some(last) = entries.last_mut() {
                        last.text.push('\n');
                        last.text.push_str(trimmed);
                    }
                }
            }
        }
    }
    failed
        .iter()
        .filter_map(|name| {
            let entries = logs.get(name).map(Vec::as_slice).unwrap_or_default();
            let has_failing_child =
                failed.iter().any(|n| n.len() > name.len() && n.starts_with(&format!("{name}/")));
            if entries.is_empty() && has_failing_child {
                return None;
            }
            let first = entries.first().and_then(|e| e.location.clone());
            let text: Vec<&str> = entries.iter().map(|e| e.text.as_str()).collect();
            Some(TestFailure {
                name: name.clone(),
                message: message::trim(&text.join("\n")),
                file: first.as_ref().map(|(f, _)| f.clone()),
                line: first.map(|(_, l)| l),
            })
        })
        .collect()
}

/// `TestX (0.00s)` → `TestX`.
fn test_name(rest: &str) -> String {
    rest.split_whitespace().next().unwrap_or(rest).to_owned()
}

/// The frame of the test function in a goroutine trace: the line after `pkg.TestX(…)`.
fn panic_frame(trace: &[&str], name: &str) -> Option<(String, u32)> {
    let func = format!(".{}(", name.split('/').next().unwrap_or(name));
    let at = trace.iter().position(|l| l.contains(&func))?;
    let frame = trace.get(at + 1)?.trim();
    message::location(frame.split(" +0x").next().unwrap_or(frame))
}

#[cfg(test)]
mod tests {
    use super::*;
    use expect_test::expect;

    fn show(failures: &[TestFailure]) -> String {
        failures
            .iter()
            .map(|f| format!("{} @ {:?}:{:?}\n{}\n", f.name, f.file, f.line, f.message))
            .collect()
    }

    #[test]
    fn plain_output() {
        expect![[r#"
            TestAddWrong @ Some("calc_test.go"):Some(13)
            Add(2, 2) = 4, want 5
            second complaint
            with two lines
            TestTable/two @ Some("calc_test.go"):Some(22)
            got 4 want 5
        "#]]
        .assert_eq(&show(&failures(include_str!("testdata/gotest.txt"))));
    }

    #[test]
    fn verbose_output_reads_the_same() {
        assert_eq!(
            show(&failures(include_str!("testdata/gotest_v.txt"))),
            show(&failures(include_str!("testdata/gotest.txt")))
        );
    }

    #[test]
    fn a_panic_gives_its_first_line_and_the_test_frame() {
        let got = failures(include_str!("testdata/gotest_panic.txt"));
        expect![[r#"
            TestAddWrong @ Some("calc_test.go"):Some(13)
            Add(2, 2) = 4, want 5
            second complaint
            with two lines
            TestTable/two @ Some("calc_test.go"):Some(22)
            got 4 want 5
            TestPanics @ Some("/tmp/cap/go/panic_test.go"):Some(7)
            panic: runtime error: index out of range [3] with length 0
        "#]]
        .assert_eq(&show(&got));
    }
}
