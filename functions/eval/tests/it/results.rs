//! The results file: appended and synced line by line, a torn last line dropped, a task never twice.

use cadre_eval::{EvalError, Outcome, ResultsFile};

use crate::support::result;

#[test]
fn results_survive_a_reopen_and_a_task_is_recorded_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("results.jsonl");
    let mut file = ResultsFile::open(&path).unwrap();
    assert!(file.results().is_empty());
    assert!(file.append(result("a", Outcome::Solved, 10, 1000)).unwrap());
    assert!(file.append(result("b", Outcome::Budget, 20, 2000)).unwrap());
    assert!(!file.append(result("a", Outcome::Error, 0, 0)).unwrap(), "a has a result already");
    drop(file);

    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(text.lines().count(), 2);
    let first: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(first["outcome"], "solved");
    assert_eq!(first["solved"], true);
    assert_eq!(first["trajectory"]["home"], "/runs/a/home");

    let reopened = ResultsFile::open(&path).unwrap();
    assert_eq!(reopened.results().len(), 2);
    assert_eq!(reopened.results()[1], result("b", Outcome::Budget, 20, 2000));
    assert!(reopened.has("a") && !reopened.has("c"));
    assert_eq!(
        cadre_eval::results::read(dir.path()).unwrap().len(),
        2,
        "a run directory reads too"
    );
}

#[test]
fn a_torn_last_line_is_dropped_so_the_task_runs_again() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("results.jsonl");
    let mut file = ResultsFile::open(&path).unwrap();
    file.append(result("a", Outcome::Solved, 10, 1000)).unwrap();
    drop(file);
    let whole = std::fs::read(&path).unwrap();
    // A killed run wrote half of b's line.
    let b = serde_json::to_string(&result("b", Outcome::Solved, 1, 1)).unwrap();
    let mut torn = whole.clone();
    torn.extend_from_slice(&b.as_bytes()[..b.len() / 2]);
    std::fs::write(&path, &torn).unwrap();

    let mut file = ResultsFile::open(&path).unwrap();
    assert_eq!(file.results().len(), 1);
    assert!(!file.has("b"));
    assert_eq!(std::fs::read(&path).unwrap(), whole, "the torn bytes are cut off");
    file.append(result("b", Outcome::TestsFailed, 1, 1)).unwrap();
    drop(file);
    let again = ResultsFile::open(&path).unwrap();
    let tasks: Vec<&str> = again.results().iter().map(|r| r.task.as_str()).collect();
    assert_eq!(tasks, ["a", "b"]);

    // A whole line without its newline was not synced as a record either.
    std::fs::write(&path, [whole.as_slice(), b.as_bytes()].concat()).unwrap();
    assert_eq!(ResultsFile::open(&path).unwrap().results().len(), 1);
}

#[test]
fn a_bad_line_before_the_end_is_an_error_naming_it_and_duplicates_keep_the_first() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("results.jsonl");
    let a = serde_json::to_string(&result("a", Outcome::Solved, 10, 1000)).unwrap();
    let a_again = serde_json::to_string(&result("a", Outcome::Error, 0, 0)).unwrap();
    std::fs::write(&path, format!("{a}\n\n{a_again}\n")).unwrap();
    let file = ResultsFile::open(&path).unwrap();
    assert_eq!(file.results().len(), 1);
    assert_eq!(file.results()[0].outcome, Outcome::Solved);

    std::fs::write(&path, format!("{a}\nnot a result\n{a}\n")).unwrap();
    let err = ResultsFile::open(&path).unwrap_err();
    assert!(matches!(err, EvalError::CorruptResults { line: 2, .. }), "{err:?}");
    assert!(err.to_string().contains("line 2 is not a task result"), "{err}");
    assert!(err.to_string().contains("fix or delete that line"), "{err}");
}
