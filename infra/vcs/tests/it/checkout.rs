//! `checkout` and `remove`: isolated from the user's repository, rebuilt from scratch per label, and
//! Conflict when the patch does not apply.

use crate::support::{git, snapshot, workspace, Repo};
use cadre_domain::ports::workspace::{FileWrite, Workspace, WorkspaceError, Worktree};

#[tokio::test]
async fn checkout_leaves_the_repository_untouched() {
    let (repo, base) = Repo::with(&[("a.txt", "one\n"), ("src/lib.rs", "fn f() {}\n")]);
    repo.write("dirty.txt", "uncommitted\n");
    let status_before = repo.status();
    let before = snapshot(repo.path());
    let (_tmp, ws) = workspace();

    let wt = ws.checkout(repo.path(), &base, None, "t1").await.unwrap();
    assert_eq!(wt.base, base);
    assert!(wt.path.ends_with("worktrees/t1"));
    assert_eq!(ws.list_files(&wt).await.unwrap(), ["a.txt", "src/lib.rs"]);
    ws.write_files(&wt, &[FileWrite { path: "a.txt".into(), content: Some("two\n".into()) }])
        .await
        .unwrap();
    assert!(!ws.diff(&wt).await.unwrap().is_empty());
    // The worktree is a clone at the base, not a view of the user's (dirty) working tree.
    assert_eq!(ws.read_file(&wt, "dirty.txt").await.unwrap(), None);

    assert_eq!(repo.status(), status_before);
    assert_eq!(snapshot(repo.path()), before, "the repository's files or .git changed");
    assert!(!repo.path().join(".git/worktrees").exists());
    assert_eq!(repo.read("a.txt").as_deref(), Some("one\n"));
}

#[tokio::test]
async fn checkout_at_an_older_base_with_a_patch() {
    let (repo, base) = Repo::with(&[("a.txt", "one\n")]);
    repo.write("a.txt", "newer\n");
    repo.commit("newer");
    let (_tmp, ws) = workspace();
    let patch = "\
diff --git a/a.txt b/a.txt
--- a/a.txt
+++ b/a.txt
@@ -1 +1 @@
-one
+patched";
    // No final newline on the patch text: tolerated.
    let wt = ws.checkout(repo.path(), &base, Some(patch), "p").await.unwrap();
    assert_eq!(ws.read_file(&wt, "a.txt").await.unwrap().as_deref(), Some("patched\n"));
    let wt = ws.checkout(repo.path(), &base, Some(""), "empty").await.unwrap();
    assert_eq!(ws.read_file(&wt, "a.txt").await.unwrap().as_deref(), Some("one\n"));
    assert_eq!(ws.diff(&wt).await.unwrap(), "");
}

#[tokio::test]
async fn checkout_with_a_patch_that_does_not_apply_is_a_conflict() {
    let (repo, base) = Repo::with(&[("a.txt", "one\n")]);
    let (_tmp, ws) = workspace();
    let patch = "\
diff --git a/a.txt b/a.txt
--- a/a.txt
+++ b/a.txt
@@ -1 +1 @@
-something else
+patched
";
    let err = ws.checkout(repo.path(), &base, Some(patch), "c").await.unwrap_err();
    match &err {
        WorkspaceError::Conflict { repo: r, detail } => {
            assert_eq!(r, repo.path());
            assert!(detail.contains("a.txt"), "{detail}");
        }
        other => panic!("expected Conflict, got {other:?}"),
    }
    assert!(!ws.worktrees_root().join("c").exists(), "half-made worktree left behind");
}

#[tokio::test]
async fn checkout_of_an_unknown_commit_fails_cleanly() {
    let (repo, _) = Repo::with(&[("a.txt", "one\n")]);
    let (_tmp, ws) = workspace();
    let unknown = cadre_domain::ids::CommitId::parse(&"1".repeat(40)).unwrap();
    let err = ws.checkout(repo.path(), &unknown, None, "u").await.unwrap_err();
    let WorkspaceError::Git(msg) = &err else { panic!("expected Git, got {err:?}") };
    assert!(msg.contains("`git read-tree -u --reset 1111"), "{msg}");
    assert!(!ws.worktrees_root().join("u").exists());
}

#[tokio::test]
async fn checkout_twice_with_one_label_starts_over() {
    let (repo, base) = Repo::with(&[("a.txt", "one\n")]);
    let (_tmp, ws) = workspace();
    let first = ws.checkout(repo.path(), &base, None, "same").await.unwrap();
    ws.write_files(&first, &[FileWrite { path: "stray/x.txt".into(), content: Some("x".into()) }])
        .await
        .unwrap();
    std::fs::write(first.path.join("ignored-by-nothing.tmp"), "y").unwrap();

    let second = ws.checkout(repo.path(), &base, None, "same").await.unwrap();
    assert_eq!(second.path, first.path);
    assert_eq!(ws.read_file(&second, "stray/x.txt").await.unwrap(), None);
    assert!(!second.path.join("stray").exists());
    assert_eq!(ws.list_files(&second).await.unwrap(), ["a.txt"]);
    assert_eq!(ws.diff(&second).await.unwrap(), "");
}

#[tokio::test]
async fn unsafe_labels_are_refused() {
    let (repo, base) = Repo::with(&[("a.txt", "one\n")]);
    let (tmp, ws) = workspace();
    for label in ["../escape", "a/b", "..", "", ".git", "sp ace"] {
        let err = ws.checkout(repo.path(), &base, None, label).await.unwrap_err();
        assert!(matches!(err, WorkspaceError::BadPath { .. }), "{label:?}: {err:?}");
    }
    assert!(!tmp.path().join("escape").exists());
}

#[tokio::test]
async fn checkout_outside_a_repository() {
    let dir = tempfile::tempdir().unwrap();
    let (_tmp, ws) = workspace();
    let base = cadre_domain::ids::CommitId::parse(&"a".repeat(40)).unwrap();
    let err = ws.checkout(dir.path(), &base, None, "x").await.unwrap_err();
    assert!(matches!(err, WorkspaceError::NotARepository(_)), "{err:?}");
}

#[tokio::test]
async fn remove_deletes_and_tolerates_a_missing_worktree() {
    let (repo, base) = Repo::with(&[("a.txt", "one\n")]);
    let (_tmp, ws) = workspace();
    let wt = ws.checkout(repo.path(), &base, None, "gone").await.unwrap();
    ws.remove(&wt).await.unwrap();
    assert!(!wt.path.exists());
    ws.remove(&wt).await.unwrap();
    // The repository itself dressed up as a worktree is refused, not deleted.
    let fake = Worktree { path: repo.path().to_path_buf(), base };
    let err = ws.remove(&fake).await.unwrap_err();
    assert!(matches!(err, WorkspaceError::Git(_)), "{err:?}");
    assert!(repo.path().join(".git").exists());
    git(repo.path(), &["rev-parse", "HEAD"]);
}
