//! `inspect`: MUST return NotARepository outside a repository and NoCommits without commits.

use crate::support::{workspace, Repo};
use cadre_domain::ports::workspace::{Workspace, WorkspaceError};

#[tokio::test]
async fn clean_repository() {
    let (repo, head) = Repo::with(&[("a.txt", "a\n")]);
    let (_tmp, ws) = workspace();
    let status = ws.inspect(repo.path()).await.unwrap();
    assert_eq!(status.root, repo.path().canonicalize().unwrap());
    assert_eq!(status.head, head);
    assert!(status.dirty.is_empty(), "{:?}", status.dirty);
}

#[tokio::test]
async fn dirty_paths_include_untracked_but_not_ignored() {
    let (repo, _) = Repo::with(&[("a.txt", "a\n"), ("b.txt", "b\n"), (".gitignore", "*.log\n")]);
    repo.write("a.txt", "changed\n");
    std::fs::remove_file(repo.path().join("b.txt")).unwrap();
    repo.write("new/dir/n.txt", "n\n");
    repo.write("debug.log", "ignored\n");
    let (_tmp, ws) = workspace();
    // From a subdirectory too: the repository is found upwards.
    let status = ws.inspect(&repo.path().join("new")).await.unwrap();
    assert_eq!(status.root, repo.path().canonicalize().unwrap());
    assert_eq!(status.dirty, ["a.txt", "b.txt", "new/dir/n.txt"]);
}

#[tokio::test]
async fn not_a_repository() {
    let dir = tempfile::tempdir().unwrap();
    let (_tmp, ws) = workspace();
    let err = ws.inspect(dir.path()).await.unwrap_err();
    assert!(matches!(&err, WorkspaceError::NotARepository(p) if p == dir.path()), "{err:?}");
    let missing = dir.path().join("missing");
    let err = ws.inspect(&missing).await.unwrap_err();
    assert!(matches!(&err, WorkspaceError::NotARepository(p) if *p == missing), "{err:?}");
}

#[tokio::test]
async fn repository_without_commits() {
    let repo = Repo::empty();
    repo.write("a.txt", "a\n");
    let (_tmp, ws) = workspace();
    let err = ws.inspect(repo.path()).await.unwrap_err();
    assert!(matches!(err, WorkspaceError::NoCommits(_)), "{err:?}");
    assert!(!err.is_retryable());
}
