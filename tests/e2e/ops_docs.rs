//! `docs/operations.md` names, for each failure mode, the test that proves its mitigation: every named
//! test must exist, so the table cannot go stale when tests are renamed or removed.

use std::path::Path;

/// The `path::function` entries of the failure-modes table's last column.
fn named_tests(doc: &str) -> Vec<(String, String)> {
    let table = doc
        .split("## Failure modes")
        .nth(1)
        .and_then(|rest| rest.split("\n## ").next())
        .expect("docs/operations.md has a '## Failure modes' section");
    table
        .lines()
        .filter(|line| {
            line.starts_with('|') && !line.starts_with("|---") && !line.starts_with("| mode")
        })
        .map(|line| {
            let cell = line.trim_end_matches('|').rsplit('|').next().unwrap_or("").trim();
            let named = cell.trim_matches('`');
            let (path, function) = named
                .rsplit_once("::")
                .unwrap_or_else(|| panic!("the test cell {cell:?} is not `path::function`"));
            (path.to_owned(), function.to_owned())
        })
        .collect()
}

#[test]
fn every_test_named_in_the_failure_modes_table_exists() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let doc = std::fs::read_to_string(root.join("docs/operations.md")).unwrap();
    let named = named_tests(&doc);
    assert!(named.len() >= 20, "the table names only {} tests", named.len());
    let mut missing = Vec::new();
    for (path, function) in &named {
        let source = std::fs::read_to_string(root.join(path)).unwrap_or_default();
        if !source.contains(&format!("fn {function}(")) {
            missing.push(format!("{path}::{function}"));
        }
    }
    assert!(missing.is_empty(), "docs/operations.md names tests that do not exist: {missing:?}");
}

#[test]
fn a_renamed_test_is_caught() {
    let doc = "## Failure modes\n| mode | test |\n|---|---|\n| x | `tests/e2e/ops_docs.rs::no_such_test` |\n";
    let named = named_tests(doc);
    assert_eq!(named, [("tests/e2e/ops_docs.rs".to_owned(), "no_such_test".to_owned())]);
    let source = include_str!("ops_docs.rs");
    assert!(!source.contains(&format!("fn {}(", "no_such_test")));
}
