//! Jest and Vitest, which print alike: jest's `● group › test` sections (message, code frame,
//! `at fn (file:line:col)`), vitest's ` FAIL  file > group > test` sections (message, then
//! ` ❯ file:line:col`), and their `Tests:` summary lines.

use super::message;
use cadre_domain::report::{TestCounts, TestFailure};

/// Jest's `● …` sections, named as jest prints them (`group › test`).
pub(crate) fn jest_failures(output: &str) -> Vec<TestFailure> {
    let mut failures = Vec::new();
    let mut suite_file: Option<String> = None;
    let mut current: Option<(String, Vec<&str>)> = None;
    for line in output.lines() {
        if let Some(file) = line.strip_prefix("FAIL ").filter(|f| !f.starts_with(' ')) {
            failures
                .extend(current.take().map(|(n, b)| jest_failure(n, &b, suite_file.as_deref())));
            suite_file = Some(file.trim().to_owned());
        } else if let Some(head) = line.strip_prefix("  ● ") {
            failures
                .extend(current.take().map(|(n, b)| jest_failure(n, &b, suite_file.as_deref())));
            current = Some((head.trim().to_owned(), Vec::new()));
        } else if !line.is_empty() && !line.starts_with(' ') {
            // `PASS …`, `Test Suites:`, `Tests:` end the section.
            failures
                .extend(current.take().map(|(n, b)| jest_failure(n, &b, suite_file.as_deref())));
        } else if let Some((_, body)) = current.as_mut() {
            body.push(line);
        }
    }
    failures.extend(current.map(|(n, b)| jest_failure(n, &b, suite_file.as_deref())));
    failures
}

fn jest_failure(name: String, body: &[&str], suite_file: Option<&str>) -> TestFailure {
    let is_frame_line = |l: &str| {
        let t = l.trim_start().trim_start_matches('>').trim_start();
        t.starts_with('|') || t.split_once(" |").is_some_and(|(n, _)| n.parse::<u32>().is_ok())
    };
    let location = body
        .iter()
        .filter(|l| l.trim_start().starts_with("at ") && !l.contains("node_modules"))
        .find_map(|l| message::location_in_parens(l));
    let text: Vec<&str> = body
        .iter()
        .filter(|l| !is_frame_line(l) && !l.trim_start().starts_with("at "))
        .map(|l| l.strip_prefix("    ").unwrap_or(l))
        .collect();
    let file = location.as_ref().map(|(f, _)| f.clone()).or_else(|| suite_file.map(str::to_owned));
    TestFailure {
        name,
        message: message::trim(&text.join("\n")),
        file,
        line: location.map(|(_, l)| l),
    }
}

/// Vitest's ` FAIL  file > group > test` sections, named as vitest prints them.
pub(crate) fn vitest_failures(output: &str) -> Vec<TestFailure> {
    let mut failures = Vec::new();
    let mut current: Option<(String, Vec<&str>)> = None;
    for line in output.lines() {
        if let Some(head) = line.strip_prefix(" FAIL  ").filter(|h| h.contains(" > ")) {
            failures.extend(current.take().map(|(n, b)| vitest_failure(n, &b)));
            current = Some((head.trim().to_owned(), Vec::new()));
        } else if line.starts_with('⎯') {
            failures.extend(current.take().map(|(n, b)| vitest_failure(n, &b)));
        } else if let Some((_, body)) = current.as_mut() {
            body.push(line);
        }
    }
    failures.extend(current.map(|(n, b)| vitest_failure(n, &b)));
    failures
}

fn vitest_failure(name: String, body: &[&str]) -> TestFailure {
    let at = body.iter().position(|l| l.trim_start().starts_with("❯ "));
    let location =
        at.and_then(|i| message::location(body[i].trim_start().trim_start_matches("❯ ")));
    let text = body[..at.unwrap_or(body.len())].join("\n");
    TestFailure {
        name,
        message: message::trim(&text),
        file: location.as_ref().map(|(f, _)| f.clone()),
        line: location.map(|(_, l)| l),
    }
}

/// Jest's `Tests:       2 failed, 1 skipped, 1 passed, 4 total` or vitest's
/// `Tests  2 failed | 1 passed (3)`.
pub(crate) fn counts(output: &str) -> Option<TestCounts> {
    let line = output.lines().rev().find_map(|l| {
        let t = l.trim_start();
        t.strip_prefix("Tests:").or_else(|| t.strip_prefix("Tests  "))
    })?;
    let mut counts = TestCounts::default();
    let mut any = false;
    for part in line.split([',', '|']) {
        let mut words = part.split_whitespace();
        let (Some(n), Some(word)) = (words.next(), words.next()) else { continue };
        let Ok(n) = n.parse::<u32>() else { continue };
        match word {
            "passed" => counts.passed += n,
            "failed" => counts.failed += n,
            "skipped" | "todo" => counts.skipped += n,
            _ => continue,
        }
        any = true;
    }
    any.then_some(counts)
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
    fn jest_sections() {
        let out = include_str!("testdata/jest.txt");
        expect![[r#"
            adds wrong @ Some("src/calc.test.js"):Some(8)
            expect(received).toBe(expected) // Object.is equality

            Expected: 5
            Received: 4
            group › throws inside @ Some("src/calc.test.js"):Some(13)
            boom inside
        "#]]
        .assert_eq(&show(&jest_failures(out)));
        assert_eq!(counts(out), Some(TestCounts { passed: 1, failed: 2, skipped: 0 }));
    }

    #[test]
    fn vitest_sections() {
        let out = include_str!("testdata/vitest.txt");
        expect![[r#"
            src/calc.test.js > adds wrong @ Some("src/calc.test.js"):Some(9)
            AssertionError: expected 4 to be 5 // Object.is equality

            - Expected
            + Received

            - 5
            + 4
            src/calc.test.js > group > throws inside @ Some("src/calc.test.js"):Some(14)
            Error: boom inside
        "#]]
        .assert_eq(&show(&vitest_failures(out)));
        assert_eq!(counts(out), Some(TestCounts { passed: 1, failed: 2, skipped: 0 }));
        assert!(jest_failures(out).is_empty());
        assert!(vitest_failures(include_str!("testdata/jest.txt")).is_empty());
    }
}
