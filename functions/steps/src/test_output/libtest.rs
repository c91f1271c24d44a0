//! Rust's libtest: the text format (`---- name stdout ----` sections holding the panic) and the
//! JSON format (`--format json`: one event per line, a failed test's output in `stdout`).

use super::message;
use cadre_domain::report::{TestCounts, TestFailure};
use serde_json::Value;

/// Failures from the text format's `---- name stdout ----` sections, in the order printed.
pub(crate) fn text_failures(output: &str) -> Vec<TestFailure> {
    let mut failures = Vec::new();
    let mut current: Option<(String, Vec<&str>)> = None;
    for line in output.lines() {
        if let Some(name) = section_header(line) {
            failures.extend(current.take().map(|(n, body)| from_captured(n, &body.join("\n"))));
            current = Some((name.to_owned(), Vec::new()));
        } else if let Some((_, body)) = current.as_mut() {
            // The list of names and the summary close the last section.
            if line == "failures:" || line.starts_with("test result:") {
                failures.extend(current.take().map(|(n, body)| from_captured(n, &body.join("\n"))));
            } else {
                body.push(line);
            }
        }
    }
    failures.extend(current.map(|(n, body)| from_captured(n, &body.join("\n"))));
    failures
}

/// `---- tests::adds stdout ----` (also `stderr`, which `--format` variants use).
fn section_header(line: &str) -> Option<&str> {
    let inner = line.strip_prefix("---- ")?.strip_suffix(" ----")?;
    inner.strip_suffix(" stdout").or_else(|| inner.strip_suffix(" stderr"))
}

/// Failures from `--format json` lines: `{"type":"test","event":"failed","name":…,"stdout":…}`.
pub(crate) fn json_failures(output: &str) -> Vec<TestFailure> {
    json_events(output)
        .filter(|e| e["type"] == "test" && e["event"] == "failed")
        .filter_map(|e| {
            let name = e["name"].as_str()?.to_owned();
            let captured = e["stdout"].as_str().or_else(|| e["message"].as_str()).unwrap_or("");
            Some(from_captured(name, captured))
        })
        .collect()
}

/// Counts summed over the `suite` events of every test binary in `--format json` output.
pub(crate) fn json_counts(output: &str) -> Option<TestCounts> {
    let mut total: Option<TestCounts> = None;
    for event in json_events(output).filter(|e| e["type"] == "suite" && e["event"] != "started") {
        let count =
            |key: &str| event[key].as_u64().and_then(|n| u32::try_from(n).ok()).unwrap_or(0);
        let c = total.get_or_insert_with(TestCounts::default);
        c.passed += count("passed");
        c.failed += count("failed");
        c.skipped += count("ignored");
    }
    total
}

fn json_events(output: &str) -> impl Iterator<Item = Value> + '_ {
    output
        .lines()
        .filter(|l| l.starts_with('{') && l.contains("\"type\""))
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
}

/// A failure from what a test printed: the panic's message and location when it panicked
/// (`thread 'x' panicked at src/lib.rs:20:9:` then the message; before Rust 1.73,
/// `panicked at 'message', src/lib.rs:20:9`), else everything it printed (e.g. the `Error: …`
/// of a test returning `Result`).
fn from_captured(name: String, captured: &str) -> TestFailure {
    let lines: Vec<&str> = captured.lines().collect();
    let Some(at) =
        lines.iter().position(|l| l.starts_with("thread '") && l.contains(" panicked at "))
    else {
        return TestFailure { name, message: message::trim(captured), file: None, line: None };
    };
    let after = lines[at].split_once(" panicked at ").map_or("", |(_, rest)| rest);
    if let Some(quoted) = after.strip_prefix('\'') {
        // Old format: the message is quoted on this line, the location after it.
        let (text, place) = quoted.rsplit_once("', ").unwrap_or((quoted, ""));
        let loc = message::location(place);
        return TestFailure {
            name,
            message: message::trim(text),
            file: loc.as_ref().map(|(f, _)| f.clone()),
            line: loc.map(|(_, l)| l),
        };
    }
    let loc = message::location(after);
    let body: Vec<&str> = lines[at + 1..]
        .iter()
        .take_while(|l| !l.starts_with("note: ") && !l.starts_with("stack backtrace:"))
        .copied()
        .collect();
    TestFailure {
        name,
        message: message::trim(&body.join("\n")),
        file: loc.as_ref().map(|(f, _)| f.clone()),
        line: loc.map(|(_, l)| l),
    }
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
    fn text_sections_of_two_test_binaries() {
        let got = text_failures(include_str!("testdata/libtest.txt"));
        expect![[r#"
            tests::divides_by_zero @ Some("src/lib.rs"):Some(6)
            attempt to divide by zero
            tests::adds_wrong @ Some("src/lib.rs"):Some(20)
            assertion `left == right` failed: two and two
              left: 4
             right: 5
            tests::explicit_panic @ Some("src/lib.rs"):Some(31)
            expected a non-empty vector
            second line of the message
            integration_fails @ Some("tests/api.rs"):Some(8)
            assertion `left != right` failed
              left: 2
             right: 2
        "#]]
        .assert_eq(&show(&got));
    }

    #[test]
    fn backtraces_are_cut_from_the_message() {
        let got = text_failures(include_str!("testdata/libtest_backtrace.txt"));
        assert_eq!(got.len(), 3);
        let wrong = got.iter().find(|f| f.name == "tests::adds_wrong").unwrap();
        assert_eq!(
            wrong.message,
            "assertion `left == right` failed: two and two\n  left: 4\n right: 5"
        );
        assert_eq!((wrong.file.as_deref(), wrong.line), (Some("src/lib.rs"), Some(20)));
        assert!(got.iter().all(|f| !f.message.contains("backtrace")), "{got:?}");
    }

    #[test]
    fn json_events() {
        let out = include_str!("testdata/libtest_json.txt");
        let got = json_failures(out);
        expect![[r#"
            tests::adds_wrong @ Some("src/lib.rs"):Some(20)
            assertion `left == right` failed: two and two
              left: 4
             right: 5
            tests::divides_by_zero @ Some("src/lib.rs"):Some(6)
            attempt to divide by zero
            tests::explicit_panic @ Some("src/lib.rs"):Some(31)
            expected a non-empty vector
            second line of the message
            integration_fails @ Some("tests/api.rs"):Some(8)
            assertion `left != right` failed
              left: 2
             right: 2
        "#]]
        .assert_eq(&show(&got));
        assert_eq!(json_counts(out), Some(TestCounts { passed: 2, failed: 4, skipped: 1 }));
        assert_eq!(json_counts("test result: ok. 1 passed"), None);
    }

    #[test]
    fn old_panic_format_and_result_errors() {
        let out = "---- a stdout ----\nthread 'a' panicked at 'assertion failed: x', src/lib.rs:3:5\n\
                   note: run with `RUST_BACKTRACE=1`\n\n---- b stdout ----\nError: \"no config\"\n\n\
                   failures:\n    a\n    b\n";
        expect![[r#"
            a @ Some("src/lib.rs"):Some(3)
            assertion failed: x
            b @ None:None
            Error: "no config"
        "#]]
        .assert_eq(&show(&text_failures(out)));
    }
}
