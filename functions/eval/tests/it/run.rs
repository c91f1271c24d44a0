//! A run's settings and lock.

use cadre_eval::{EvalError, Manifest, RunDir};

fn manifest(model: &str) -> Manifest {
    Manifest {
        suite: "/suites/fixture".into(),
        suite_name: "fixture".into(),
        format: "local".into(),
        model: model.into(),
        harness: "edit-blocks".into(),
        budget_usd: 0.5,
        max_rounds: 3,
        started_at_ms: 1,
    }
}

#[test]
fn a_resumed_run_must_keep_the_settings_that_change_results() {
    let dir = tempfile::tempdir().unwrap();
    let run = RunDir::new(dir.path());
    let (stored, resumed) = manifest("gemini").settle(&run).unwrap();
    assert!(!resumed);
    assert_eq!(stored.started_at_ms, 1);

    let mut later = manifest("gemini");
    later.started_at_ms = 99;
    let (stored, resumed) = later.settle(&run).unwrap();
    assert!(resumed);
    assert_eq!(stored.started_at_ms, 1, "the first start is kept");
    assert_eq!(Manifest::read(dir.path()).unwrap(), stored);

    let err = manifest("openai:qwen@http://localhost:8080/v1").settle(&run).unwrap_err();
    assert!(matches!(err, EvalError::SettingsDiffer { field: "--model", .. }), "{err:?}");
    assert!(err.to_string().contains("holds a run with --model gemini, not openai:qwen"), "{err}");
    assert!(err.to_string().contains("pass another --out"), "{err}");
    let mut cheaper = manifest("gemini");
    cheaper.budget_usd = 0.25;
    let err = cheaper.settle(&run).unwrap_err();
    assert!(matches!(err, EvalError::SettingsDiffer { field: "--budget-usd", .. }), "{err:?}");
}

#[test]
fn a_live_process_holds_the_lock_and_a_dead_ones_lock_is_taken_over() {
    let dir = tempfile::tempdir().unwrap();
    let run = RunDir::new(dir.path().join("run"));
    let lock = run.lock().unwrap();
    let pid = std::fs::read_to_string(run.root().join("lock")).unwrap();
    assert_eq!(pid, std::process::id().to_string());
    drop(lock);
    assert!(!run.root().join("lock").exists());

    // pid 1 is always alive.
    std::fs::write(run.root().join("lock"), "1").unwrap();
    let err = run.lock().unwrap_err();
    assert!(matches!(err, EvalError::Locked { pid: 1, .. }), "{err:?}");
    assert!(err.to_string().contains("another cadre eval (pid 1) is running"), "{err}");

    // A process that has exited.
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let dead = child.id();
    child.wait().unwrap();
    std::fs::write(run.root().join("lock"), dead.to_string()).unwrap();
    let _lock = run.lock().unwrap();
    assert_eq!(
        std::fs::read_to_string(run.root().join("lock")).unwrap(),
        std::process::id().to_string()
    );
}
