//! pytest: the short summary (`FAILED tests/test_x.py::test_y - AssertionError: …`) names every
//! failure; the `____ test_y ____` sections of the failures and errors report hold the full
//! assertion (`E   …` lines) and where it failed (`tests/test_x.py:12: AssertionError`).

use super::message;
use cadre_domain::report::TestFailure;

/// One `____ head ____` section: its head as pytest prints it (`test_y`, `TestGroup.test_y`,
/// `ERROR at setup of test_y`), its `E` lines and the last location line.
struct Section {
    head: String,
    errors: Vec<String>,
    location: Option<(String, u32)>,
}

/// Failures and errors, named by node id when the short summary was printed (the default), by the
/// section head otherwise.
pub(crate) fn failures(output: &str) -> Vec<TestFailure> {
    let sections = sections(output);
    let mut failures = Vec::new();
    for line in output.lines() {
        let Some(rest) = line.strip_prefix("FAILED ").or_else(|| line.strip_prefix("ERROR "))
        else {
            continue;
        };
        // `FAILED (failures=1)` is unittest's verdict, not a test.
        if rest.starts_with('(') {
            continue;
        }
        let (node, summary) = rest.split_once(" - ").unwrap_or((rest, ""));
        let node = node.trim();
        if !node.contains("::") && !node.ends_with(".py") {
            continue;
        }
        let section = sections.iter().find(|s| head_matches(&s.head, node));
        failures.push(match section {
            Some(s) => from_section(node.to_owned(), s),
            None => TestFailure {
                name: node.to_owned(),
                message: message::trim(summary),
                file: node.split("::").next().filter(|f| f.ends_with(".py")).map(str::to_owned),
                line: None,
            },
        });
    }
    if failures.is_empty() {
        // `-r N` or a cut output: the sections alone.
        failures = sections.iter().map(|s| from_section(s.head.clone(), s)).collect();
    }
    failures
}

fn from_section(name: String, s: &Section) -> TestFailure {
    TestFailure {
        name,
        message: message::trim(&s.errors.join("\n")),
        file: s.location.as_ref().map(|(f, _)| f.clone()),
        line: s.location.as_ref().map(|(_, l)| *l),
    }
}

/// Whether a section head belongs to a node id: `TestGroup.test_y` to `t.py::TestGroup::test_y`,
/// `ERROR at setup of test_y` to `t.py::test_y`.
fn head_matches(head: &str, node: &str) -> bool {
    let head = ["ERROR at setup of ", "ERROR at teardown of ", "ERROR collecting "]
        .iter()
        .find_map(|p| head.strip_prefix(p))
        .unwrap_or(head);
    match node.split_once("::") {
        Some((_, path)) => path.replace("::", ".") == head,
        None => node == head,
    }
}

/// The sections of the `FAILURES` and `ERRORS` reports.
fn sections(output: &str) -> Vec<Section> {
    let mut sections = Vec::new();
    let mut in_report = false;
    let mut current: Option<Section> = None;
    for line in output.lines() {
        if let Some(title) = banner(line, '=') {
            sections.extend(current.take());
            in_report = title == "FAILURES" || title == "ERRORS";
            continue;
        }
        if !in_report {
            continue;
        }
        if let Some(head) = banner(line, '_') {
            sections.extend(current.take());
            current = Some(Section { head: head.to_owned(), errors: Vec::new(), location: None });
            continue;
        }
        let Some(s) = current.as_mut() else { continue };
        if let Some(err) = line.strip_prefix('E') {
            if err.is_empty() || err.starts_with(' ') {
                // pytest indents `E` lines to the source's column; keep the message's own indent.
                s.errors.push(err.strip_prefix("       ").unwrap_or(err.trim_start()).to_owned());
            }
        } else if !line.starts_with(' ') {
            if let Some(loc) = message::location(line) {
                s.location = Some(loc);
            }
        }
    }
    sections.extend(current);
    sections
}

/// The title of a `==== title ====` or `____ title ____` line.
fn banner(line: &str, fill: char) -> Option<&str> {
    let two = [fill, fill];
    let inner = line.strip_prefix(&two[..])?.trim_start_matches(fill);
    let inner = inner.strip_suffix(&two[..])?.trim_end_matches(fill);
    let title = inner.strip_prefix(' ')?.strip_suffix(' ')?;
    (!title.is_empty()).then_some(title)
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
    fn summary_names_with_section_messages() {
        let got = failures(include_str!("testdata/pytest.txt"));
        expect![[r#"
            tests/test_calc.py::test_add_wrong @ Some("tests/test_calc.py"):Some(11)
            assert 4 == 5
             +  where 4 = add(2, 2)
            tests/test_calc.py::test_parse @ Some("calc/__init__.py"):Some(6)
            ValueError: invalid literal for int() with base 10: 'x'
            tests/test_calc.py::TestGroup::test_in_class @ Some("tests/test_calc.py"):Some(25)
            AssertionError: lists differ
            assert [1, 2, 3] == [1, 2, 4]
              At index 2 diff: 3 != 4
              Use -v to get more diff
            tests/test_calc.py::test_with_broken_fixture @ Some("tests/test_calc.py"):Some(30)
            RuntimeError: fixture exploded
        "#]]
        .assert_eq(&show(&got));
    }

    #[test]
    fn quiet_mode_is_read_the_same() {
        let got = failures(include_str!("testdata/pytest_q.txt"));
        assert_eq!(show(&got), show(&failures(include_str!("testdata/pytest.txt"))));
    }

    #[test]
    fn without_sections_the_summary_line_is_the_message() {
        let out = "FAILED tests/test_x.py::test_y - AssertionError: boom\n\
                   ==== 1 failed in 0.01s ====\n";
        expect![[r#"
            tests/test_x.py::test_y @ Some("tests/test_x.py"):None
            AssertionError: boom
        "#]]
        .assert_eq(&show(&failures(out)));
    }

    #[test]
    fn without_a_summary_the_sections_name_the_failures() {
        let out = "=== FAILURES ===\n___ test_y ___\n\n>   assert 1 == 2\nE   assert 1 == 2\n\n\
                   t.py:2: AssertionError\n=== 1 failed in 0.01s ===\n";
        expect![[r#"
            test_y @ Some("t.py"):Some(2)
            assert 1 == 2
        "#]]
        .assert_eq(&show(&failures(out)));
    }
}
