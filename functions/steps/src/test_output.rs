//! Reading pass/fail counts and failing test names out of common test runners' text output, so that
//! `generate` receives precise failures rather than a wall of text.

use cadre_domain::report::TestCounts;

/// Counts and failing names found in `output`.
#[must_use]
pub fn summarize(output: &str) -> (Option<TestCounts>, Vec<String>) {
    let counts = libtest(output).or_else(|| pytest(output)).or_else(|| unittest(output));
    (counts, failing_names(output))
}

/// `test result: FAILED. 3 passed; 1 failed; 0 ignored; …` (summed over every test binary).
fn libtest(output: &str) -> Option<TestCounts> {
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
fn pytest(output: &str) -> Option<TestCounts> {
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
fn unittest(output: &str) -> Option<TestCounts> {
    let ran_line = output.lines().rev().find(|l| l.starts_with("Ran ") && l.contains(" test"))?;
    let ran = ran_line.split_whitespace().nth(1)?.parse::<u32>().ok()?;
    let verdict =
        output.lines().rev().find(|l| l.starts_with("OK") || l.starts_with("FAILED ("))?;
    let failed = number_after(verdict, "failures=").unwrap_or(0)
        + number_after(verdict, "errors=").unwrap_or(0);
    let skipped = number_after(verdict, "skipped=").unwrap_or(0);
    Some(TestCounts { passed: ran.saturating_sub(failed + skipped), failed, skipped })
}

/// Names of failing tests as libtest, pytest and unittest print them.
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

    #[test]
    fn reads_libtest_pytest_unittest_and_go() {
        let cases = [
            "running 2 tests\ntest a ... ok\ntest tests::b ... FAILED\n\ntest result: FAILED. 1 passed; 1 failed; 2 ignored; 0 measured\n",
            "FAILED test_calc.py::test_add - assert 1 == 2\n==== 1 failed, 3 passed, 1 skipped in 0.12s ====\n",
            "test_add (test_calc.CalcTest.test_add) ... FAIL\n======\nFAIL: test_add (test_calc.CalcTest.test_add)\n----\nRan 3 tests in 0.001s\n\nFAILED (failures=1)\n",
            "Ran 2 tests in 0.000s\n\nOK (skipped=1)\n",
            "--- FAIL: TestAdd (0.00s)\nFAIL\n",
        ];
        let got: Vec<String> = cases.iter().map(|c| format!("{:?}", summarize(c))).collect();
        expect![[r#"
            [
                "(Some(TestCounts { passed: 1, failed: 1, skipped: 2 }), [\"tests::b\"])",
                "(Some(TestCounts { passed: 3, failed: 1, skipped: 1 }), [\"test_calc.py::test_add\"])",
                "(Some(TestCounts { passed: 2, failed: 1, skipped: 0 }), [\"test_add (test_calc.CalcTest.test_add)\"])",
                "(Some(TestCounts { passed: 1, failed: 0, skipped: 1 }), [])",
                "(None, [\"TestAdd\"])",
            ]
        "#]]
        .assert_debug_eq(&got);
    }
}
