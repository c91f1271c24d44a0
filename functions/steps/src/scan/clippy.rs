//! `cargo clippy --message-format=json`: one JSON object per line on stdout
//! (`"reason":"compiler-message"` carries a diagnostic), interleaved with cargo's progress on
//! stderr, which is skipped.

use super::{Finding, Severity};
use serde_json::Value;

/// Diagnostics with a primary span; a repeated diagnostic (the same lint reported for the lib and
/// its test target) is kept once.
pub(crate) fn parse(output: &str) -> Vec<Finding> {
    let mut findings: Vec<Finding> = Vec::new();
    for line in output.lines().filter(|l| l.starts_with('{')) {
        let Ok(event) = serde_json::from_str::<Value>(line) else { continue };
        if event["reason"] != "compiler-message" {
            continue;
        }
        let message = &event["message"];
        let severity = match message["level"].as_str() {
            Some("error" | "error: internal compiler error") => Severity::Error,
            Some("warning") => Severity::Warning,
            Some("note" | "help") => Severity::Info,
            _ => continue,
        };
        let Some(span) = message["spans"]
            .as_array()
            .and_then(|spans| spans.iter().find(|s| s["is_primary"] == true))
        else {
            // "3 warnings emitted" and the like: about the build, not about a line.
            continue;
        };
        let finding = Finding {
            tool: "clippy".to_owned(),
            severity,
            file: span["file_name"].as_str().map(str::to_owned),
            line: span["line_start"].as_u64().and_then(|l| u32::try_from(l).ok()),
            rule: message["code"]["code"].as_str().unwrap_or("").to_owned(),
            message: message["message"].as_str().unwrap_or("").to_owned(),
        };
        if !findings.contains(&finding) {
            findings.push(finding);
        }
    }
    findings
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_real_clippy_output_with_cargos_progress_around_it() {
        let output = format!(
            "    Checking lint v0.1.0 (/tmp/cap/lint)\n{}    Finished `dev` profile\n",
            include_str!("testdata/clippy.json")
        );
        let got: Vec<String> = parse(&output)
            .iter()
            .map(|f| format!("{:?} {:?}:{:?} {} {}", f.severity, f.file, f.line, f.rule, f.message))
            .collect();
        assert_eq!(
            got,
            [
                "Warning Some(\"src/lib.rs\"):Some(10) unused_variables unused variable: `y`",
                "Warning Some(\"src/lib.rs\"):Some(1) clippy::ptr_arg writing `&Vec` instead of `&[_]` involves a new object where a slice will do",
                "Warning Some(\"src/lib.rs\"):Some(2) clippy::len_zero length comparison to zero",
            ]
        );
        // Doubled (lib and test target) and cut-off lines.
        let doubled =
            format!("{0}{0}{{\"reason\":\"compiler-mess", include_str!("testdata/clippy.json"));
        assert_eq!(parse(&doubled).len(), 3);
    }
}
