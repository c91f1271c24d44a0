//! `ruff check --output-format=json`: one JSON array of violations with absolute file names.

use super::{json_array, relative, Finding, Severity};

/// Every violation; syntax errors (`invalid-syntax`, or ruff's `severity: error` on them) are
/// errors, lint rules warnings (ruff has no per-rule severity).
pub(crate) fn parse(output: &str, roots: &[&str]) -> Vec<Finding> {
    let Some(violations) = json_array(output) else { return Vec::new() };
    violations
        .iter()
        .map(|v| {
            let rule = v["code"].as_str().unwrap_or("").to_owned();
            let syntax = rule.is_empty() || rule == "invalid-syntax" || rule.starts_with("E9");
            Finding {
                tool: "ruff".to_owned(),
                severity: if syntax { Severity::Error } else { Severity::Warning },
                file: v["filename"].as_str().map(|f| relative(f, roots)),
                line: v["location"]["row"].as_u64().and_then(|l| u32::try_from(l).ok()),
                rule: if rule.is_empty() { "invalid-syntax".to_owned() } else { rule },
                message: v["message"].as_str().unwrap_or("").to_owned(),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_real_ruff_output() {
        let got: Vec<String> = parse(include_str!("testdata/ruff.json"), &["/tmp/cap/py2"])
            .iter()
            .map(|f| format!("{:?} {:?}:{:?} {} {}", f.severity, f.file, f.line, f.rule, f.message))
            .collect();
        assert_eq!(
            got,
            [
                "Error Some(\"pkg/bad.py\"):Some(1) invalid-syntax Expected a parameter or the end of the parameter list",
                "Error Some(\"pkg/bad.py\"):Some(2) invalid-syntax unexpected EOF while parsing",
                "Warning Some(\"pkg/mod.py\"):Some(1) F401 `os` imported but unused",
                "Warning Some(\"pkg/mod.py\"):Some(2) F401 `sys` imported but unused",
                "Warning Some(\"pkg/mod.py\"):Some(8) F841 Local variable `l` is assigned to but never used",
                "Warning Some(\"pkg/mod.py\"):Some(9) F821 Undefined name `undefined_name`",
            ]
        );
        assert!(parse("[]\n", &[]).is_empty());
        assert!(parse("ruff: error: unexpected argument\n", &[]).is_empty());
    }
}
