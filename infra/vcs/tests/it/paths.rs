//! `read_file` and `write_files` MUST return BadPath for a path that escapes the worktree, and
//! `write_files` MUST then write nothing at all.

use crate::support::{git, snapshot, workspace, Repo};
use cadre_domain::ports::workspace::{FileWrite, Workspace, WorkspaceError, Worktree};
use cadre_vcs::GitWorkspace;
use tempfile::TempDir;

fn put(path: &str) -> FileWrite {
    FileWrite { path: path.into(), content: Some("pwned\n".into()) }
}

/// A repository with committed symlinks pointing outside it, checked out; and the outside dir.
async fn worktree_with_links() -> (Repo, TempDir, TempDir, GitWorkspace, Worktree) {
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret.txt"), "secret\n").unwrap();
    let (repo, _) = Repo::with(&[("a.txt", "a\n"), ("sub/b.txt", "b\n")]);
    std::os::unix::fs::symlink(outside.path(), repo.path().join("out")).unwrap();
    std::os::unix::fs::symlink(outside.path().join("secret.txt"), repo.path().join("leak"))
        .unwrap();
    std::os::unix::fs::symlink(outside.path().join("nothing"), repo.path().join("dangling"))
        .unwrap();
    std::os::unix::fs::symlink("sub", repo.path().join("inside")).unwrap();
    std::os::unix::fs::symlink(".git", repo.path().join("dotgit")).unwrap();
    let base = repo.commit("links");
    assert_eq!(
        git(repo.path(), &["ls-files", "out", "leak"]),
        "leak\nout\n",
        "links are committed"
    );
    let (tmp, ws) = workspace();
    let wt = ws.checkout(repo.path(), &base, None, "links").await.unwrap();
    (repo, outside, tmp, ws, wt)
}

fn assert_bad(result: Result<impl std::fmt::Debug, WorkspaceError>, path: &str) {
    match result {
        Err(WorkspaceError::BadPath { path: p, why }) => {
            assert_eq!(p, path);
            assert!(!why.is_empty());
        }
        other => panic!("{path:?}: expected BadPath, got {other:?}"),
    }
}

const ESCAPES: &[&str] = &[
    "../x",
    "sub/../../x",
    "/etc/passwd",
    ".git/config",
    ".git/hooks/pre-commit",
    "out/evil.txt",
    "out/secret.txt",
    "leak",
    "dangling",
    "dotgit/config",
    "",
    "a//b",
];

#[tokio::test]
async fn escaping_writes_are_refused_and_write_nothing() {
    let (repo, outside, _tmp, ws, wt) = worktree_with_links().await;
    let outside_before = snapshot(outside.path());
    let wt_before = snapshot(&wt.path);
    let parent_before = snapshot(wt.path.parent().unwrap());
    for escape in ESCAPES {
        // A good path first in the batch: it must not be written either.
        let batch = [put("fine.txt"), put(escape)];
        assert_bad(ws.write_files(&wt, &batch).await, escape);
        let delete = [FileWrite { path: (*escape).into(), content: None }];
        assert_bad(ws.write_files(&wt, &delete).await, escape);
    }
    assert_eq!(snapshot(outside.path()), outside_before, "something was written outside");
    assert_eq!(snapshot(&wt.path), wt_before, "a refused batch wrote into the worktree");
    assert_eq!(snapshot(wt.path.parent().unwrap()), parent_before);
    assert!(repo.read("x").is_none());
    assert!(!wt.path.parent().unwrap().join("x").exists());
}

#[tokio::test]
async fn escaping_reads_are_refused() {
    let (_repo, _outside, _tmp, ws, wt) = worktree_with_links().await;
    for escape in ESCAPES {
        assert_bad(ws.read_file(&wt, escape).await, escape);
    }
}

#[tokio::test]
async fn symlinks_that_stay_inside_are_followed() {
    let (_repo, _outside, _tmp, ws, wt) = worktree_with_links().await;
    assert_eq!(ws.read_file(&wt, "inside/b.txt").await.unwrap().as_deref(), Some("b\n"));
    ws.write_files(&wt, &[FileWrite { path: "inside/c.txt".into(), content: Some("c\n".into()) }])
        .await
        .unwrap();
    assert_eq!(ws.read_file(&wt, "sub/c.txt").await.unwrap().as_deref(), Some("c\n"));
    // Files and directories whose names merely start with dots are ordinary.
    ws.write_files(&wt, &[FileWrite { path: ".github/ci.yml".into(), content: Some("x".into()) }])
        .await
        .unwrap();
}
