//! JUnit XML reports (maven surefire, gradle, `pytest --junitxml`, jest-junit, …): the files a
//! test command writes in its workspace.
//!
//! The [`Sandbox`](cadre_domain::ports::Sandbox) port hands back only the output, and a
//! container's workspace copy is deleted with it, so the reports travel in the output: the
//! command is wrapped ([`with_reports`]) so that, when it fails, a shell trailer prints each
//! report file it finds between markers, bounded in bytes; [`split`] takes those sections out of
//! the output again and [`failures`] reads them. A passing run prints nothing extra.

use super::message;
use cadre_domain::report::{TestCounts, TestFailure};
use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;

/// Where runners write JUnit reports by default, as shell globs relative to the workdir.
const REPORT_GLOBS: [&str; 8] = [
    "target/surefire-reports/*.xml",
    "target/failsafe-reports/*.xml",
    "build/test-results/*/*.xml",
    "test-results/*.xml",
    "test-reports/*.xml",
    "reports/junit*.xml",
    "junit*.xml",
    "report.xml",
];

/// Report bytes printed at most, over all files; [`REPORT_BUDGET`] plus the test's own output
/// limit is what the run must keep.
pub const REPORT_BUDGET: usize = 256 * 1024;

const START: &str = "<<<cadre-junit ";
const END: &str = "cadre-junit>>>";

/// `command`, followed (when it fails) by the JUnit reports it left, each between markers. The
/// command runs in a subshell, so its own `exit` ends only the subshell, and its exit status is
/// kept.
#[must_use]
pub fn with_reports(command: &str) -> String {
    format!(
        "(\n{command}\n)\ncadre_status=$?\n\
         if [ \"$cadre_status\" -ne 0 ]; then\n\
         for cadre_f in {globs}; do\n\
         [ -f \"$cadre_f\" ] && printf '\\n{START}%s\\n' \"$cadre_f\" && cat \"$cadre_f\" && printf '\\n{END}\\n'\n\
         done 2>/dev/null | head -c {REPORT_BUDGET}\n\
         fi\n\
         exit $cadre_status",
        globs = REPORT_GLOBS.join(" ")
    )
}

/// The output without the report sections, and each report's path and XML (the last one may be
/// cut short by the byte budget).
#[must_use]
pub fn split(output: &str) -> (String, Vec<(String, String)>) {
    let mut rest = String::with_capacity(output.len());
    let mut reports = Vec::new();
    let mut tail = output;
    while let Some(at) = tail.find(START) {
        // The trailer's own newline before the marker belongs to it.
        rest.push_str(tail[..at].strip_suffix('\n').unwrap_or(&tail[..at]));
        let after = &tail[at + START.len()..];
        let (path, body) = after.split_once('\n').unwrap_or((after, ""));
        let (xml, next) = match body.find(END) {
            Some(end) => (&body[..end], body[end + END.len()..].strip_prefix('\n').unwrap_or("")),
            None => (body, ""),
        };
        reports.push((path.to_owned(), xml.trim_end().to_owned()));
        tail = next;
    }
    rest.push_str(tail);
    (rest, reports)
}

/// What the reports say: the failing test cases, and counts when there was a report.
#[must_use]
pub fn failures(reports: &[(String, String)]) -> (Vec<TestFailure>, Option<TestCounts>) {
    let mut failures = Vec::new();
    let mut counts: Option<TestCounts> = None;
    for (_, xml) in reports {
        read_report(xml, &mut failures, counts.get_or_insert_with(TestCounts::default));
    }
    (failures, counts)
}

/// The test case being read.
struct Case {
    name: String,
    file: Option<String>,
    line: Option<u32>,
    outcome: Outcome,
    message: String,
    text: String,
}

impl Case {
    fn new(e: &BytesStart<'_>) -> Case {
        Case {
            name: case_name(e),
            file: attr(e, "file"),
            line: attr(e, "line").and_then(|l| l.parse().ok()),
            outcome: Outcome::Passed,
            message: String::new(),
            text: String::new(),
        }
    }
}

#[derive(PartialEq)]
enum Outcome {
    Passed,
    Failed,
    Skipped,
}

/// Reads one report; a malformed or cut report yields what was read before the fault.
fn read_report(xml: &str, failures: &mut Vec<TestFailure>, counts: &mut TestCounts) {
    let mut reader = Reader::from_str(xml);
    let mut case: Option<Case> = None;
    // Inside `<failure>`/`<error>`: collect its text.
    let mut in_failure = false;
    loop {
        let event = match reader.read_event() {
            Ok(Event::Eof) | Err(_) => break,
            Ok(event) => event,
        };
        match event {
            Event::Start(e) if e.local_name().as_ref() == b"testcase" => {
                finish(case.take(), failures, counts);
                case = Some(Case::new(&e));
            }
            // `<testcase …/>`: a pass with nothing inside.
            Event::Empty(e) if e.local_name().as_ref() == b"testcase" => {
                finish(case.take(), failures, counts);
                finish(Some(Case::new(&e)), failures, counts);
            }
            Event::Start(e) | Event::Empty(e) => {
                let Some(c) = case.as_mut() else { continue };
                match e.local_name().as_ref() {
                    b"failure" | b"error" => {
                        if c.outcome != Outcome::Failed {
                            c.outcome = Outcome::Failed;
                            c.message = attr(&e, "message").unwrap_or_default();
                        }
                        in_failure = true;
                    }
                    b"skipped" => c.outcome = Outcome::Skipped,
                    _ => {}
                }
            }
            Event::End(e) => match e.local_name().as_ref() {
                b"failure" | b"error" => in_failure = false,
                b"testcase" => finish(case.take(), failures, counts),
                _ => {}
            },
            Event::Text(t) if in_failure => {
                if let (Some(c), Ok(text)) = (case.as_mut(), t.decode()) {
                    c.text.push_str(&text);
                }
            }
            Event::CData(t) if in_failure => {
                if let (Some(c), Ok(text)) = (case.as_mut(), t.decode()) {
                    c.text.push_str(&text);
                }
            }
            Event::GeneralRef(r) if in_failure => {
                let Some(c) = case.as_mut() else { continue };
                if let Ok(Some(ch)) = r.resolve_char_ref() {
                    c.text.push(ch);
                } else if let Some(s) =
                    r.decode().ok().and_then(|n| quick_xml::escape::resolve_predefined_entity(&n))
                {
                    c.text.push_str(s);
                }
            }
            _ => {}
        }
    }
    finish(case, failures, counts);
}

/// Counts a finished case and keeps it when it failed.
fn finish(case: Option<Case>, failures: &mut Vec<TestFailure>, counts: &mut TestCounts) {
    let Some(case) = case else { return };
    match case.outcome {
        Outcome::Passed => counts.passed += 1,
        Outcome::Skipped => counts.skipped += 1,
        Outcome::Failed => {
            counts.failed += 1;
            // The message attribute is the summary; the text is the trace, which often holds the
            // location (`tests/test_x.py:12: AssertionError`, `at pkg.T.m(CalcTest.java:12)`).
            let location = case.text.lines().rev().find_map(|l| {
                let l = l.trim();
                message::location(l).or_else(|| message::location_in_parens(l))
            });
            let message = if case.message.trim().is_empty() { &case.text } else { &case.message };
            failures.push(TestFailure {
                name: case.name,
                message: message::trim(message),
                file: case.file.or_else(|| location.as_ref().map(|(f, _)| f.clone())),
                line: case.line.or(location.map(|(_, l)| l)),
            });
        }
    }
}

/// `classname.name` (`com.example.CalcTest.testAdd`, `tests.test_calc.test_add`), or the name.
fn case_name(e: &BytesStart<'_>) -> String {
    let name = attr(e, "name").unwrap_or_default();
    match attr(e, "classname").filter(|c| !c.is_empty()) {
        Some(class) => format!("{class}.{name}"),
        None => name,
    }
}

fn attr(e: &BytesStart<'_>, key: &str) -> Option<String> {
    let a = e.try_get_attribute(key).ok()??;
    a.unescape_value().ok().map(|v| v.into_owned())
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

    /// A maven surefire report in surefire's own layout (written by hand from its schema: this
    /// machine cannot download maven plugins), with a failure, an error and a skip.
    const SUREFIRE: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<testsuite xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:noNamespaceSchemaLocation="https://maven.apache.org/surefire/maven-surefire-plugin/xsd/surefire-test-report.xsd" version="3.0" name="com.example.CalcTest" time="0.031" tests="4" errors="1" skipped="1" failures="1">
  <properties>
    <property name="java.version" value="17.0.13"/>
  </properties>
  <testcase name="adds" classname="com.example.CalcTest" time="0.002"/>
  <testcase name="addsWrong" classname="com.example.CalcTest" time="0.011">
    <failure message="expected: &lt;5&gt; but was: &lt;4&gt;" type="org.opentest4j.AssertionFailedError"><![CDATA[org.opentest4j.AssertionFailedError: expected: <5> but was: <4>
	at org.junit.jupiter.api.AssertionUtils.fail(AssertionUtils.java:151)
	at com.example.CalcTest.addsWrong(CalcTest.java:14)
]]></failure>
  </testcase>
  <testcase name="parses" classname="com.example.CalcTest" time="0.001">
    <error message="For input string: &quot;x&quot;" type="java.lang.NumberFormatException">java.lang.NumberFormatException: For input string: "x"
	at java.base/java.lang.Integer.parseInt(Integer.java:652)
	at com.example.CalcTest.parses(CalcTest.java:19)
</error>
    <system-out><![CDATA[parsing x
]]></system-out>
  </testcase>
  <testcase name="later" classname="com.example.CalcTest" time="0">
    <skipped message="not yet"/>
  </testcase>
</testsuite>
"#;

    #[test]
    fn surefire_report() {
        let (got, counts) =
            failures(&[("target/surefire-reports/TEST-x.xml".into(), SUREFIRE.into())]);
        expect![[r#"
            com.example.CalcTest.addsWrong @ Some("CalcTest.java"):Some(14)
            expected: <5> but was: <4>
            com.example.CalcTest.parses @ Some("CalcTest.java"):Some(19)
            For input string: "x"
        "#]]
        .assert_eq(&show(&got));
        assert_eq!(counts, Some(TestCounts { passed: 1, failed: 2, skipped: 1 }));
    }

    #[test]
    fn pytest_junitxml_report() {
        let xml = include_str!("testdata/pytest_junit.xml");
        let (got, counts) = failures(&[("junit.xml".into(), xml.into())]);
        expect![[r#"
            tests.test_calc.test_add_wrong @ Some("tests/test_calc.py"):Some(11)
            assert 4 == 5
             +  where 4 = add(2, 2)
            tests.test_calc.test_parse @ Some("calc/__init__.py"):Some(6)
            ValueError: invalid literal for int() with base 10: 'x'
            tests.test_calc.TestGroup.test_in_class @ Some("tests/test_calc.py"):Some(25)
            AssertionError: lists differ
            assert [1, 2, 3] == [1, 2, 4]
              At index 2 diff: 3 != 4
              Use -v to get more diff
            tests.test_calc.test_with_broken_fixture @ Some("tests/test_calc.py"):Some(30)
            failed on setup with "RuntimeError: fixture exploded"
        "#]]
        .assert_eq(&show(&got));
        assert_eq!(counts, Some(TestCounts { passed: 1, failed: 4, skipped: 1 }));
    }

    #[test]
    fn a_cut_or_broken_report_keeps_what_was_read() {
        let cut = &SUREFIRE[..SUREFIRE.find("<testcase name=\"parses\"").unwrap() + 30];
        let (got, _) = failures(&[("a.xml".into(), cut.into())]);
        assert_eq!(got.len(), 1, "{got:?}");
        let (got, counts) = failures(&[("b.xml".into(), "not xml at all".into())]);
        assert!(got.is_empty());
        assert_eq!(counts, Some(TestCounts::default()));
        assert_eq!(failures(&[]), (Vec::new(), None));
    }

    #[test]
    fn reports_are_split_out_of_the_output() {
        let output = format!(
            "[ERROR] Tests run: 4, Failures: 1\n\n{START}target/surefire-reports/TEST-a.xml\n<a/>\n{END}\n\n\
             {START}junit.xml\n<b>cut sh"
        );
        let (rest, reports) = split(&output);
        assert_eq!(rest, "[ERROR] Tests run: 4, Failures: 1\n");
        assert_eq!(
            reports,
            [
                ("target/surefire-reports/TEST-a.xml".to_owned(), "<a/>".to_owned()),
                ("junit.xml".to_owned(), "<b>cut sh".to_owned())
            ]
        );
        assert_eq!(split("plain"), ("plain".to_owned(), Vec::new()));
    }
}
