//! `eslint -f json`: one JSON array, one entry per file with its messages (severity 2 = error,
//! 1 = warning; a parse error has no rule and `fatal: true`).

use super::{json_array, relative, Finding, Severity};

/// Every message of every file.
pub(crate) fn parse(output: &str, roots: &[&str]) -> Vec<Finding> {
    let Some(files) = json_array(output) else { return Vec::new() };
    let mut findings = Vec::new();
    for file in &files {
        let path = file["filePath"].as_str().map(|f| relative(f, roots));
        for m in file["messages"].as_array().into_iter().flatten() {
            let fatal = m["fatal"] == true;
            findings.push(Finding {
                tool: "eslint".to_owned(),
                severity: if fatal || m["severity"] == 2 {
                    Severity::Error
                } else {
                    Severity::Warning
                },
                file: path.clone(),
                line: m["line"].as_u64().and_then(|l| u32::try_from(l).ok()),
                rule: m["ruleId"].as_str().map_or_else(
                    || if fatal { "parse-error".into() } else { String::new() },
                    str::to_owned,
                ),
                message: m["message"].as_str().unwrap_or("").to_owned(),
            });
        }
    }
    findings
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_real_eslint_output() {
        let got: Vec<String> = parse(include_str!("testdata/eslint.json"), &["/tmp/cap/es"])
            .iter()
            .map(|f| format!("{:?} {:?}:{:?} {} {}", f.severity, f.file, f.line, f.rule, f.message))
            .collect();
        assert_eq!(
            got,
            [
                "Error Some(\"src/a.js\"):Some(1) no-unused-vars 'unused' is assigned a value but never used.",
                "Warning Some(\"src/a.js\"):Some(3) eqeqeq Expected '===' and instead saw '=='.",
                "Error Some(\"src/a.js\"):Some(4) no-undef 'missing' is not defined.",
                "Error Some(\"src/bad.js\"):Some(1) parse-error Parsing error: Unexpected token (",
            ]
        );
        assert!(parse("Oops! Something went wrong!\n", &[]).is_empty());
    }
}
