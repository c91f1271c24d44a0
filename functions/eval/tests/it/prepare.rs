//! Building the agent's repository with real git: plain files, a repository at a base commit (without
//! its later history), a bundle, a clone by URL kept in the cache; adding hidden files and test patches.

use cadre_eval::prepare::{apply_patch, copy_tree, prepare};
use cadre_eval::{Check, EvalError, EvalTask, RepoSource};
use std::path::Path;
use std::process::Command;

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args([
            "-c",
            "user.name=T",
            "-c",
            "user.email=t@example.invalid",
            "-c",
            "commit.gpgsign=false",
        ])
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

fn task(repo: RepoSource, base: Option<String>) -> EvalTask {
    EvalTask {
        id: "t".into(),
        goal: "g".into(),
        repo,
        base_commit: base,
        test_command: None,
        check: Check { command: "true".into(), hidden_files: None, test_patch: None },
    }
}

/// A repository with two commits: `v1` (returned) and a later `v2`.
fn two_commits(dir: &Path) -> String {
    std::fs::create_dir_all(dir.join("src")).unwrap();
    git(dir, &["init", "-q", "-b", "main"]);
    std::fs::write(dir.join("src/lib.txt"), "v1\n").unwrap();
    git(dir, &["add", "-A"]);
    git(dir, &["commit", "-q", "-m", "one"]);
    let base = git(dir, &["rev-parse", "HEAD"]);
    std::fs::write(dir.join("src/lib.txt"), "v2, the fix\n").unwrap();
    std::fs::write(dir.join("later.txt"), "added later\n").unwrap();
    git(dir, &["add", "-A"]);
    git(dir, &["commit", "-q", "-m", "two"]);
    base
}

fn commits(repo: &Path) -> usize {
    git(repo, &["rev-list", "--count", "HEAD"]).parse().unwrap()
}

#[test]
fn plain_files_become_a_one_commit_repository_with_a_stable_commit_id() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("files");
    std::fs::create_dir_all(src.join("pkg")).unwrap();
    std::fs::write(src.join("pkg/a.py"), "x = 1\n").unwrap();
    let first = prepare(
        &task(RepoSource::Directory(src.clone()), None),
        &dir.path().join("w1"),
        &dir.path().join("c"),
    )
    .unwrap();
    assert_eq!(std::fs::read_to_string(first.path.join("pkg/a.py")).unwrap(), "x = 1\n");
    assert_eq!(commits(&first.path), 1);
    assert_eq!(git(&first.path, &["status", "--porcelain"]), "", "the repository starts clean");
    // Same files, same commit: a replayed run sees the same repository.
    let again = prepare(
        &task(RepoSource::Directory(src), None),
        &dir.path().join("w2"),
        &dir.path().join("c"),
    )
    .unwrap();
    assert_eq!(first.commit, again.commit);
    assert_eq!(first.commit.len(), 40);
}

#[test]
fn a_repository_at_its_base_commit_comes_without_the_later_history() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("upstream");
    let base = two_commits(&src);
    let dest = dir.path().join("work/repo");
    std::fs::create_dir_all(&dest).unwrap();
    std::fs::write(dest.join("stale.txt"), "left by a killed run").unwrap();
    let prepared = prepare(
        &task(RepoSource::Directory(src.clone()), Some(base.clone())),
        &dest,
        &dir.path().join("c"),
    )
    .unwrap();
    assert_eq!(std::fs::read_to_string(dest.join("src/lib.txt")).unwrap(), "v1\n");
    assert!(!dest.join("later.txt").exists());
    assert!(!dest.join("stale.txt").exists(), "an earlier attempt's directory is replaced");
    assert_eq!(commits(&prepared.path), 1, "no history to find the fix in");

    // The same through a bundle, and through a clone by URL that lands in the cache.
    let bundle = dir.path().join("r.bundle");
    git(&src, &["bundle", "create", bundle.to_str().unwrap(), "--all"]);
    let from_bundle = prepare(
        &task(RepoSource::Bundle(bundle), Some(base.clone())),
        &dir.path().join("b/repo"),
        &dir.path().join("c"),
    )
    .unwrap();
    assert_eq!(std::fs::read_to_string(from_bundle.path.join("src/lib.txt")).unwrap(), "v1\n");

    let cache = dir.path().join("cache");
    let url = format!("file://{}", src.display());
    let cloned = prepare(
        &task(RepoSource::Clone(url.clone()), Some(base.clone())),
        &dir.path().join("u/repo"),
        &cache,
    )
    .unwrap();
    assert_eq!(std::fs::read_to_string(cloned.path.join("src/lib.txt")).unwrap(), "v1\n");
    let cached: Vec<_> =
        std::fs::read_dir(&cache).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(cached.len(), 1, "{cached:?}");
    // HEAD when no base is given.
    let head =
        prepare(&task(RepoSource::Clone(url), None), &dir.path().join("h/repo"), &cache).unwrap();
    assert_eq!(std::fs::read_to_string(head.path.join("src/lib.txt")).unwrap(), "v2, the fix\n");
}

#[test]
fn a_missing_base_commit_says_to_update_the_mirror() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("upstream");
    two_commits(&src);
    let missing = "0123456789012345678901234567890123456789".to_owned();
    let err = prepare(
        &task(RepoSource::Directory(src), Some(missing)),
        &dir.path().join("w"),
        &dir.path().join("c"),
    )
    .unwrap_err();
    assert!(matches!(err, EvalError::Git { .. }), "{err:?}");
    assert!(
        err.to_string().contains("commit 0123456789012345678901234567890123456789 is not in"),
        "{err}"
    );
    assert!(err.to_string().contains("update the mirror"), "{err}");
}

#[test]
fn hidden_files_are_copied_over_and_test_patches_apply_all_or_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    git(&work, &["init", "-q"]);
    std::fs::write(work.join("a.txt"), "one\ntwo\n").unwrap();
    let hidden = dir.path().join("hidden");
    std::fs::create_dir_all(hidden.join("tests")).unwrap();
    std::fs::write(hidden.join("tests/test_h.py"), "hidden\n").unwrap();
    std::fs::write(hidden.join("a.txt"), "replaced\n").unwrap();
    copy_tree(&hidden, &work).unwrap();
    assert_eq!(std::fs::read_to_string(work.join("tests/test_h.py")).unwrap(), "hidden\n");
    assert_eq!(std::fs::read_to_string(work.join("a.txt")).unwrap(), "replaced\n");

    let adds = "diff --git a/b.txt b/b.txt\nnew file mode 100644\n--- /dev/null\n+++ b/b.txt\n@@ -0,0 +1 @@\n+bee\n";
    apply_patch(&work, adds).unwrap();
    assert_eq!(std::fs::read_to_string(work.join("b.txt")).unwrap(), "bee\n");
    let conflicting = "diff --git a/a.txt b/a.txt\n--- a/a.txt\n+++ b/a.txt\n@@ -1,2 +1,2 @@\n one\n-two\n+three\n";
    let err = apply_patch(&work, conflicting).unwrap_err();
    assert!(matches!(err, EvalError::PatchDoesNotApply { .. }), "{err:?}");
    assert!(err.to_string().contains("a.txt"), "{err}");
    assert_eq!(std::fs::read_to_string(work.join("a.txt")).unwrap(), "replaced\n");
}
