//! Reading suites: SWE-bench JSONL in the datasets' real shape, and local task directories.

use cadre_eval::{EvalError, RepoSource, Suite, SuiteFormat, SuiteOptions};
use serde_json::json;
use std::path::Path;

/// An instance as the published datasets export it: FAIL_TO_PASS and PASS_TO_PASS are strings that
/// hold JSON lists, and there are fields the reader must ignore.
fn instance(id: &str, extra: serde_json::Value) -> String {
    let mut v = json!({
        "repo": "astropy/astropy",
        "instance_id": id,
        "base_commit": "d16bfe05a744909de4b27f5875fe0d4ed41ce607",
        "patch": "diff --git a/x b/x\n",
        "test_patch": "diff --git a/astropy/tests/test_x.py b/astropy/tests/test_x.py\n",
        "problem_statement": "Modeling's `separability_matrix` does not compute separability correctly for nested CompoundModels\n",
        "hints_text": "",
        "created_at": "2022-03-03T15:14:54Z",
        "version": "4.3",
        "FAIL_TO_PASS": "[\"astropy/modeling/tests/test_separable.py::test_separable[compound_model6-result6]\"]",
        "PASS_TO_PASS": "[\"astropy/modeling/tests/test_separable.py::test_coord_matrix\", \"astropy/modeling/tests/test_separable.py::test_cdot\"]",
        "environment_setup_commit": "298ccb478e6bf092953bca67a3d29dc6c35f6752",
    });
    if let (Some(map), Some(extra)) = (v.as_object_mut(), extra.as_object()) {
        for (k, val) in extra {
            map.insert(k.clone(), val.clone());
        }
    }
    v.to_string()
}

fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn swe_bench_instances_in_the_real_format_become_tasks() {
    let dir = tempfile::tempdir().unwrap();
    let mirror = dir.path().join("mirror");
    std::fs::create_dir_all(mirror.join("astropy__astropy")).unwrap();
    let lines = [
        instance("astropy__astropy-12907", json!({"test_cmd": "pytest -rA"})),
        String::new(),
        instance("psf__requests-1", json!({"repo": "psf/requests", "PASS_TO_PASS": "[]"})),
    ];
    let path = write(dir.path(), "verified.jsonl", &lines.join("\n"));
    let options =
        SuiteOptions { mirror: Some(mirror.clone()), test_cmd: Some("python -m pytest -q".into()) };
    let suite = Suite::load(&path, &options).unwrap();
    assert_eq!((suite.name.as_str(), suite.format), ("verified", SuiteFormat::SweBench));
    assert_eq!(suite.tasks.len(), 2);

    let astropy = &suite.tasks[0];
    assert_eq!(astropy.id, "astropy__astropy-12907");
    assert!(astropy.goal.starts_with("Modeling's `separability_matrix`"));
    assert_eq!(
        astropy.repo,
        RepoSource::Clone(mirror.join("astropy__astropy").display().to_string())
    );
    assert_eq!(astropy.base_commit.as_deref(), Some("d16bfe05a744909de4b27f5875fe0d4ed41ce607"));
    // The check runs FAIL_TO_PASS and PASS_TO_PASS, quoting what the shell would mangle.
    assert_eq!(
        astropy.check.command,
        "pytest -rA 'astropy/modeling/tests/test_separable.py::test_separable[compound_model6-result6]' \
         astropy/modeling/tests/test_separable.py::test_coord_matrix astropy/modeling/tests/test_separable.py::test_cdot"
    );
    // The agent runs only the tests that exist before the fix.
    assert_eq!(
        astropy.test_command.as_deref(),
        Some("pytest -rA astropy/modeling/tests/test_separable.py::test_coord_matrix astropy/modeling/tests/test_separable.py::test_cdot")
    );
    assert!(astropy.check.test_patch.as_deref().unwrap().starts_with("diff --git"));
    assert_eq!(astropy.check.hidden_files, None);

    // Not in the mirror: cloned from GitHub; no test_cmd: --test-cmd; no PASS_TO_PASS: the whole command.
    let requests = &suite.tasks[1];
    assert_eq!(requests.repo, RepoSource::Clone("https://github.com/psf/requests.git".into()));
    assert_eq!(requests.test_command.as_deref(), Some("python -m pytest -q"));
    assert!(requests.check.command.starts_with("python -m pytest -q 'astropy/"));
}

#[test]
fn plain_lists_urls_and_a_tests_placeholder_are_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let line = instance(
        "x-1",
        json!({
            "repo": "file:///srv/git/x.git",
            "FAIL_TO_PASS": ["test_a (tests.T)"],
            "PASS_TO_PASS": null,
            "test_command": "./runtests.py {tests} --parallel 1",
        }),
    );
    let path = write(dir.path(), "django.jsonl", &line);
    let task = &Suite::load(&path, &SuiteOptions::default()).unwrap().tasks[0];
    assert_eq!(task.repo, RepoSource::Clone("file:///srv/git/x.git".into()));
    assert_eq!(task.check.command, "./runtests.py 'test_a (tests.T)' --parallel 1");
    assert_eq!(task.test_command.as_deref(), Some("./runtests.py  --parallel 1"));
}

#[test]
fn bad_instances_are_refused_with_their_line_and_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let error = |text: &str| {
        let path = write(dir.path(), "bad.jsonl", text);
        let err = Suite::load(&path, &SuiteOptions::default()).unwrap_err();
        assert!(matches!(err, EvalError::Suite { .. }), "{err:?}");
        err.to_string()
    };
    let no_cmd = error(&instance("a-1", json!({})));
    assert!(no_cmd.contains("line 1: instance a-1 has no test command"), "{no_cmd}");
    assert!(no_cmd.contains("--test-cmd"), "{no_cmd}");

    let two = format!(
        "{}\n{}",
        instance("a-1", json!({"test_cmd": "t"})),
        instance("a-2", json!({"test_cmd": "t", "FAIL_TO_PASS": "not json"}))
    );
    let bad_list = error(&two);
    assert!(
        bad_list.contains("line 2: FAIL_TO_PASS is a string but not a JSON list"),
        "{bad_list}"
    );

    let missing = error("{\"instance_id\": \"a-1\", \"repo\": \"o/n\"}");
    assert!(missing.contains("line 1: missing field `base_commit`"), "{missing}");

    let empty = error(&instance("a-1", json!({"test_cmd": "t", "FAIL_TO_PASS": "[]"})));
    assert!(empty.contains("no FAIL_TO_PASS test"), "{empty}");

    let twice = instance("a-1", json!({"test_cmd": "t"}));
    let dup = error(&format!("{twice}\n{twice}"));
    assert!(dup.contains("task id `a-1` appears twice"), "{dup}");
}

#[test]
fn a_local_suite_reads_each_task_directory() {
    let dir = tempfile::tempdir().unwrap();
    let suite_dir = dir.path().join("mine");
    let t = suite_dir.join("b-fix");
    write(&t, "goal.txt", "  make it work \n");
    write(&t, "check", "python3 -m unittest -q\n");
    write(&t, "test_cmd", "python3 -m unittest -q test_visible\n");
    write(&t, "repo/app.py", "x = 1\n");
    write(&t, "hidden/test_hidden.py", "# hidden\n");
    let u = suite_dir.join("a-bundle");
    write(&u, "goal.txt", "add a feature");
    write(&u, "check", "make check");
    write(&u, "repo.bundle", "not really a bundle");
    write(&suite_dir, "README.md", "files beside the tasks are ignored");

    let suite = Suite::load(&suite_dir, &SuiteOptions::default()).unwrap();
    assert_eq!((suite.name.as_str(), suite.format), ("mine", SuiteFormat::Local));
    let ids: Vec<&str> = suite.tasks.iter().map(|t| t.id.as_str()).collect();
    assert_eq!(ids, ["a-bundle", "b-fix"]);
    let bundle = &suite.tasks[0];
    assert_eq!(bundle.repo, RepoSource::Bundle(u.join("repo.bundle")));
    assert_eq!(
        (bundle.test_command.as_deref(), bundle.check.hidden_files.as_deref()),
        (None, None)
    );
    let fix = &suite.tasks[1];
    assert_eq!(fix.goal, "make it work");
    assert_eq!(fix.repo, RepoSource::Directory(t.join("repo")));
    assert_eq!(fix.check.command, "python3 -m unittest -q");
    assert_eq!(fix.test_command.as_deref(), Some("python3 -m unittest -q test_visible"));
    assert_eq!(fix.check.hidden_files.as_deref(), Some(t.join("hidden").as_path()));
    assert_eq!(fix.base_commit, None);

    let only = suite.clone().select(&suite_dir, &["b-fix".to_owned()]).unwrap();
    assert_eq!(only.tasks.len(), 1);
    let wrong = suite.select(&suite_dir, &["c".to_owned()]).unwrap_err().to_string();
    assert!(wrong.contains("--only c: no such task; tasks include a-bundle, b-fix"), "{wrong}");
}

#[test]
fn a_task_directory_without_its_parts_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let t = dir.path().join("suite/t1");
    write(&t, "goal.txt", "do it");
    let err = |path: &Path| Suite::load(path, &SuiteOptions::default()).unwrap_err().to_string();
    let suite = dir.path().join("suite");
    assert!(err(&suite).contains("has no check"), "{}", err(&suite));
    write(&t, "check", "true");
    assert!(err(&suite).contains("has no repo/ directory or repo.bundle"), "{}", err(&suite));
    write(&t, "repo/a", "");
    write(&t, "repo.bundle", "");
    assert!(err(&suite).contains("has both repo/ and repo.bundle"), "{}", err(&suite));
    std::fs::remove_file(t.join("goal.txt")).unwrap();
    assert!(err(&suite).contains("t1: has no goal.txt"), "{}", err(&suite));
    assert!(err(&dir.path().join("absent")).contains("no such file or directory"));
}

#[test]
fn task_ids_become_safe_file_names_and_words_are_quoted_for_sh() {
    use cadre_eval::suite::{file_name, shell_quote};
    assert_eq!(file_name("django__django-11099"), "django__django-11099");
    assert_eq!(file_name("a/b c"), "a_b_c");
    assert_eq!(file_name(".."), "_..");
    assert_eq!(shell_quote("tests/a.py::t"), "tests/a.py::t");
    assert_eq!(shell_quote("t[1-2]"), "'t[1-2]'");
    assert_eq!(shell_quote("it's"), "'it'\\''s'");
    assert_eq!(shell_quote(""), "''");
}
