//! Python's unittest: `FAIL: test_y (pkg.T.test_y)` / `ERROR: …` blocks, each a traceback whose
//! last frame is where it failed and whose last lines are the exception.

use super::message;
use cadre_domain::report::TestFailure;

/// Failures and errors in the order printed.
pub(crate) fn failures(output: &str) -> Vec<TestFailure> {
    let lines: Vec<&str> = output.lines().collect();
    let mut failures = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let Some(name) = line.strip_prefix("FAIL: ").or_else(|| line.strip_prefix("ERROR: "))
        else {
            continue;
        };
        if i == 0 || !lines[i - 1].starts_with("=====") {
            continue;
        }
        // The traceback: after the dashed rule, up to the next rule.
        let body: Vec<&str> = lines[i + 1..]
            .iter()
            .skip_while(|l| l.starts_with("-----"))
            .take_while(|l| !l.starts_with("=====") && !l.starts_with("-----"))
            .copied()
            .collect();
        let mut location = None;
        let mut exception_from = 0;
        for (j, l) in body.iter().enumerate() {
            if let Some(frame) = l.trim_start().strip_prefix("File \"") {
                location = frame.split_once("\", line ").and_then(|(file, rest)| {
                    let n = rest.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()?;
                    Some((file.to_owned(), n))
                });
                exception_from = j + 1;
            }
        }
        // Past the last frame's indented source lines: the exception itself.
        let exception: Vec<&str> = body[exception_from.min(body.len())..]
            .iter()
            .skip_while(|l| l.starts_with(' '))
            .copied()
            .collect();
        let text = if exception.is_empty() { body.join("\n") } else { exception.join("\n") };
        failures.push(TestFailure {
            name: name.trim().to_owned(),
            message: message::trim(&text),
            file: location.as_ref().map(|(f, _): &(String, u32)| f.clone()),
            line: location.map(|(_, l)| l),
        });
    }
    failures
}

#[cfg(test)]
mod tests {
    use super::*;
    use expect_test::expect;

    #[test]
    fn failures_and_errors_with_their_exception_and_frame() {
        let got = failures(include_str!("testdata/unittest.txt"));
        let shown: String = got
            .iter()
            .map(|f| format!("{} @ {:?}:{:?}\n{}\n", f.name, f.file, f.line, f.message))
            .collect();
        expect![[r#"
            test_error (tests.test_calc.T.test_error) @ Some("/tmp/cap/ut/tests/test_calc.py"):Some(13)
            KeyError: 'missing'
            test_wrong (tests.test_calc.T.test_wrong) @ Some("/tmp/cap/ut/tests/test_calc.py"):Some(10)
            AssertionError: 4 != 5 : two and two
        "#]]
        .assert_eq(&shown);
    }
}
