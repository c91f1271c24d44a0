//! Reading test runners' output into counts, failing names and structured failures (name,
//! message, file:line), so that `generate` receives precise failures rather than a wall of text.
//!
//! One module per runner family, each a pure function of the captured text: libtest (text and
//! `--format json`), pytest, unittest, go test, jest/vitest, and JUnit XML reports, which the
//! test command prints into its own output when it fails (see [`junit`]). The output tail is
//! capped, so every reader accepts a cut-off beginning and reads what is left.

mod gotest;
mod jest;
pub mod junit;
mod libtest;
mod message;
mod pytest;
mod unittest;

use cadre_domain::report::{TestCounts, TestFailure};

/// What the output says about the tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Parsed {
    /// Passed / failed / skipped, from the runner's summary, when one was recognised.
    pub counts: Option<TestCounts>,
    /// Every failing test's name.
    pub failing_tests: Vec<String>,
    /// Each failing test with its message and location, when the runner printed them. A test
    /// named in a summary line but with nothing printed about it has an empty message.
    pub failures: Vec<TestFailure>,
}

/// Where the container sandbox mounts the worktree: paths under it are repository-relative.
const CONTAINER_WORKSPACE: &str = "/workspace/";

/// Reads `output` (with any JUnit report sections already split off, see [`junit::split`]) and the
/// reports' XML. Files under `roots` (e.g. the worktree's host path) or the container's
/// `/workspace` are made repository-relative.
#[must_use]
pub fn parse(output: &str, reports: &[(String, String)], roots: &[&str]) -> Parsed {
    let mut failures: Vec<TestFailure> = Vec::new();
    let found = [
        libtest::json_failures(output),
        libtest::text_failures(output),
        pytest::failures(output),
        unittest::failures(output),
        gotest::failures(output),
        jest::jest_failures(output),
        jest::vitest_failures(output),
    ];
    for failure in found.into_iter().flatten() {
        if !failures.iter().any(|f| f.name == failure.name) {
            failures.push(failure);
        }
    }
    let (junit_failures, junit_counts) = junit::failures(reports);
    // The reports repeat what the text said, under other names; they are the source only when the
    // text gave nothing (maven, gradle, or a runner this module cannot read).
    if failures.is_empty() {
        failures = junit_failures;
    }
    for name in failing_names(output) {
        // A go parent test fails with its subtests; they carry the message.
        let sub = format!("{name}/");
        if !failures.iter().any(|f| f.name == name || f.name.starts_with(&sub)) {
            failures.push(TestFailure { name, message: String::new(), file: None, line: None });
        }
    }
    for failure in &mut failures {
        if let Some(file) = &failure.file {
            failure.file = Some(relative(file, roots));
        }
    }
    let counts = libtest_text_counts(output)
        .or_else(|| libtest::json_counts(output))
        .or_else(|| pytest_counts(output))
        .or_else(|| unittest_counts(output))
        .or_else(|| jest::counts(output))
        .or(junit_counts);
    Parsed { counts, failing_tests: failures.iter().map(|f| f.name.clone()).collect(), failures }
}

/// `file` without the first of `roots` (or the container workspace) it starts with.
fn relative(file: &str, roots: &[&str]) -> String {
    roots
        .iter()
        .map(|r| format!("{}/", r.trim_end_matches('/')))
        .chain([CONTAINER_WORKSPACE.to_owned()])
        .find_map(|root| file.strip_prefix(&root).map(str::to_owned))
        .unwrap_or_else(|| file.to_owned())
}

/// `test result: FAILED. 3 passed; 1 failed; 0 ignored; …` (summed over every test binary).
fn libtest_text_counts(output: &str) -> Option<TestCounts> {
    let mut total: Option<TestCounts> = None;
    for line in output.lines().filter(|l| l.starts_with("test result:")) {
        let c = total.get_or_insert_with(TestCounts::default);
        c.passed += number_before(line, " passed").unwrap_or(0);
        c.failed += number_before(line, " failed").unwrap_or(0);
        c.skipped += number_before(line, " ignored").unwrap_or(0);
    }
    total
}

/// `==== 1 failed, 3 passed, 1 skipped in 0.12s ====` or `3 passed in 0.01s`.
fn pytest_counts(output: &str) -> Option<TestCounts> {
    let line = output.lines().rev().find(|l| {
        (l.contains(" passed") || l.contains(" failed") || l.contains(" error"))
            && l.contains(" in ")
            && !l.starts_with("test result:")
    })?;
    let passed = number_before(line, " passed");
    let failed =
        number_before(line, " failed").unwrap_or(0) + number_before(line, " error").unwrap_or(0);
    let skipped = number_before(line, " skipped").unwrap_or(0);
    (passed.is_some() || failed > 0).then(|| TestCounts {
        passed: passed.unwrap_or(0),
        failed,
        skipped,
    })
}

/// `Ran 4 tests in 0.001s` followed by `OK`, `OK (skipped=1)` or `FAILED (failures=1, errors=1)`.
fn unittest_counts(output: &str) -> Option<TestCounts> {
    let ran_line = output.lines().rev().find(|l| l.starts_with("Ran ") && l.contains(" test"))?;
    let ran = ran_line.split_whitespace().nth(1)?.parse::<u32>().ok()?;
    let verdict =
        output.lines().rev().find(|l| l.starts_with("OK") || l.starts_with("FAILED ("))?;
    let failed = number_after(verdict, "failures=").unwrap_or(0)
        + number_after(verdict, "errors=").unwrap_or(0);
    let skipped = number_after(verdict, "skipped=").unwrap_or(0);
    Some(TestCounts { passed: ran.saturating_sub(failed + skipped), failed, skipped })
}

/// Names of failing tests from one-line verdicts (`test x ... FAILED`, `--- FAIL: TestX`), which
/// name a failure even when its details were cut off or never printed.
fn failing_names(output: &str) -> Vec<String> {
    let mut names = Vec::new();
    for line in output.lines() {
        let name = if let Some(rest) =
            line.strip_prefix("test ").and_then(|r| r.strip_suffix(" ... FAILED"))
        {
            Some(rest.to_owned())
        } else if let Some(rest) = line.strip_prefix("FAILED ").filter(|r| !r.starts_with('(')) {
            Some(rest.split(" - ").next().unwrap_or(rest).trim().to_owned())
        } else if let Some(rest) =
            line.strip_prefix("FAIL: ").or_else(|| line.strip_prefix("ERROR: "))
        {
            Some(rest.trim().to_owned())
        } else {
            line.strip_prefix("--- FAIL: ")
                .map(|rest| rest.split_whitespace().next().unwrap_or(rest).to_owned())
        };
        if let Some(name) = name {
            if !name.is_empty() && !names.contains(&name) {
                names.push(name);
            }
        }
    }
    names
}

fn number_before(line: &str, word: &str) -> Option<u32> {
    let at = line.find(word)?;
    line[..at].split(|c: char| !c.is_ascii_digit()).next_back()?.parse().ok()
}

fn number_after(line: &str, key: &str) -> Option<u32> {
    let at = line.find(key)? + key.len();
    line[at..].chars().take_while(char::is_ascii_digit).collect::<String>().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use expect_test::expect;

    fn summary(output: &str) -> String {
        let p = parse(output, &[], &[]);
        format!("{:?} {:?}", p.counts, p.failing_tests)
    }

    #[test]
    fn reads_libtest_pytest_unittest_and_go() {
        let cases = [
            "running 2 tests\ntest a ... ok\ntest tests::b ... FAILED\n\ntest result: FAILED. 1 passed; 1 failed; 2 ignored; 0 measured\n",
            "FAILED test_calc.py::test_add - assert 1 == 2\n==== 1 failed, 3 passed, 1 skipped in 0.12s ====\n",
            "test_add (test_calc.CalcTest.test_add) ... FAIL\n======\nFAIL: test_add (test_calc.CalcTest.test_add)\n----\nRan 3 tests in 0.001s\n\nFAILED (failures=1)\n",
            "Ran 2 tests in 0.000s\n\nOK (skipped=1)\n",
            "--- FAIL: TestAdd (0.00s)\nFAIL\n",
        ];
        let got: Vec<String> = cases.iter().map(|c| summary(c)).collect();
        expect![[r#"
            [
                "Some(TestCounts { passed: 1, failed: 1, skipped: 2 }) [\"tests::b\"]",
                "Some(TestCounts { passed: 3, failed: 1, skipped: 1 }) [\"test_calc.py::test_add\"]",
                "Some(TestCounts { passed: 2, failed: 1, skipped: 0 }) [\"test_add (test_calc.CalcTest.test_add)\"]",
                "Some(TestCounts { passed: 1, failed: 0, skipped: 1 }) []",
                "None [\"TestAdd\"]",
            ]
        "#]]
        .assert_debug_eq(&got);
    }

    /// Every captured runner output, through the one entry point: names, messages and counts.
    #[test]
    fn every_runner_through_parse() {
        let outputs = [
            ("libtest", include_str!("testdata/libtest.txt")),
            ("libtest json", include_str!("testdata/libtest_json.txt")),
            ("pytest", include_str!("testdata/pytest.txt")),
            ("unittest", include_str!("testdata/unittest.txt")),
            ("go", include_str!("testdata/gotest_panic.txt")),
            ("jest", include_str!("testdata/jest.txt")),
            ("vitest", include_str!("testdata/vitest.txt")),
        ];
        let mut shown = String::new();
        for (runner, output) in outputs {
            let p = parse(output, &[], &["/tmp/cap/ut", "/tmp/cap/go"]);
            shown.push_str(&format!("== {runner}: {:?}\n", p.counts));
            for f in &p.failures {
                let first = f.message.lines().next().unwrap_or("");
                shown.push_str(&format!("{} @ {:?}:{:?}: {first}\n", f.name, f.file, f.line));
            }
        }
        expect![[r#"
            == libtest: Some(TestCounts { passed: 2, failed: 4, skipped: 1 })
            tests::divides_by_zero @ Some("src/lib.rs"):Some(6): attempt to divide by zero
            tests::adds_wrong @ Some("src/lib.rs"):Some(20): assertion `left == right` failed: two and two
            tests::explicit_panic @ Some("src/lib.rs"):Some(31): expected a non-empty vector
            integration_fails @ Some("tests/api.rs"):Some(8): assertion `left != right` failed
            == libtest json: Some(TestCounts { passed: 2, failed: 4, skipped: 1 })
            tests::adds_wrong @ Some("src/lib.rs"):Some(20): assertion `left == right` failed: two and two
            tests::divides_by_zero @ Some("src/lib.rs"):Some(6): attempt to divide by zero
            tests::explicit_panic @ Some("src/lib.rs"):Some(31): expected a non-empty vector
            integration_fails @ Some("tests/api.rs"):Some(8): assertion `left != right` failed
            == pytest: Some(TestCounts { passed: 1, failed: 4, skipped: 1 })
            tests/test_calc.py::test_add_wrong @ Some("tests/test_calc.py"):Some(11): assert 4 == 5
            tests/test_calc.py::test_parse @ Some("calc/__init__.py"):Some(6): ValueError: invalid literal for int() with base 10: 'x'
            tests/test_calc.py::TestGroup::test_in_class @ Some("tests/test_calc.py"):Some(25): AssertionError: lists differ
            tests/test_calc.py::test_with_broken_fixture @ Some("tests/test_calc.py"):Some(30): RuntimeError: fixture exploded
            == unittest: Some(TestCounts { passed: 1, failed: 2, skipped: 1 })
            test_error (tests.test_calc.T.test_error) @ Some("tests/test_calc.py"):Some(13): KeyError: 'missing'
            test_wrong (tests.test_calc.T.test_wrong) @ Some("tests/test_calc.py"):Some(10): AssertionError: 4 != 5 : two and two
            == go: None
            TestAddWrong @ Some("calc_test.go"):Some(13): Add(2, 2) = 4, want 5
            TestTable/two @ Some("calc_test.go"):Some(22): got 4 want 5
            TestPanics @ Some("panic_test.go"):Some(7): panic: runtime error: index out of range [3] with length 0
            == jest: Some(TestCounts { passed: 1, failed: 2, skipped: 0 })
            adds wrong @ Some("src/calc.test.js"):Some(8): expect(received).toBe(expected) // Object.is equality
            group › throws inside @ Some("src/calc.test.js"):Some(13): boom inside
            == vitest: Some(TestCounts { passed: 1, failed: 2, skipped: 0 })
            src/calc.test.js > adds wrong @ Some("src/calc.test.js"):Some(9): AssertionError: expected 4 to be 5 // Object.is equality
            src/calc.test.js > group > throws inside @ Some("src/calc.test.js"):Some(14): Error: boom inside
        "#]]
        .assert_eq(&shown);
    }

    #[test]
    fn junit_reports_are_the_source_when_the_text_says_nothing() {
        let xml = include_str!("testdata/pytest_junit.xml");
        let reports = [("junit.xml".to_owned(), xml.to_owned())];
        let p = parse("[ERROR] There are test failures.\n", &reports, &[]);
        assert_eq!(p.failures.len(), 4);
        assert_eq!(p.counts, Some(TestCounts { passed: 1, failed: 4, skipped: 1 }));
        // With readable text, the text wins and the report adds no duplicates under other names.
        let p = parse(include_str!("testdata/pytest.txt"), &reports, &[]);
        assert_eq!(p.failures.len(), 4);
        assert!(p.failing_tests.iter().all(|n| n.starts_with("tests/test_calc.py::")));
    }

    #[test]
    fn container_and_host_roots_are_stripped() {
        assert_eq!(relative("/workspace/src/lib.rs", &[]), "src/lib.rs");
        assert_eq!(relative("/w/t/x.py", &["/w/t"]), "x.py");
        assert_eq!(relative("/w/t/x.py", &["/w/t/"]), "x.py");
        assert_eq!(relative("src/lib.rs", &["/w"]), "src/lib.rs");
    }
}
