//! `write_files`, `read_file`, `diff` and `apply_to_repo`: a diff round-trips through a fresh checkout
//! and into the repository, and a diff that no longer fits is a Conflict that changes nothing.

use crate::support::{snapshot, workspace, Repo};
use cadre_domain::ports::workspace::{FileWrite, Workspace, WorkspaceError};

fn put(path: &str, content: &str) -> FileWrite {
    FileWrite { path: path.into(), content: Some(content.into()) }
}

fn delete(path: &str) -> FileWrite {
    FileWrite { path: path.into(), content: None }
}

const BASE_FILES: &[(&str, &str)] =
    &[("a.txt", "one\ntwo\nthree\n"), ("gone.txt", "bye\n"), ("keep/k.txt", "k\n")];

#[tokio::test]
async fn write_diff_and_checkout_round_trip() {
    let (repo, base) = Repo::with(BASE_FILES);
    let (_tmp, ws) = workspace();
    let wt = ws.checkout(repo.path(), &base, None, "edit").await.unwrap();
    assert_eq!(ws.diff(&wt).await.unwrap(), "", "no change yet");

    ws.write_files(
        &wt,
        &[put("a.txt", "one\nTWO\nthree\n"), put("new/dir/n.txt", "fresh\n"), delete("gone.txt")],
    )
    .await
    .unwrap();
    assert_eq!(ws.list_files(&wt).await.unwrap(), ["a.txt", "keep/k.txt", "new/dir/n.txt"]);
    assert_eq!(ws.read_file(&wt, "new/dir/n.txt").await.unwrap().as_deref(), Some("fresh\n"));
    assert_eq!(ws.read_file(&wt, "gone.txt").await.unwrap(), None);

    let diff = ws.diff(&wt).await.unwrap();
    assert!(diff.contains("+TWO"), "{diff}");
    assert!(diff.contains("new file mode"), "{diff}");
    assert!(diff.contains("deleted file mode"), "{diff}");
    // diff is idempotent: asking twice gives the same cumulative change.
    assert_eq!(ws.diff(&wt).await.unwrap(), diff);

    let replay = ws.checkout(repo.path(), &base, Some(&diff), "replay").await.unwrap();
    assert_eq!(ws.list_files(&replay).await.unwrap(), ws.list_files(&wt).await.unwrap());
    for file in ws.list_files(&wt).await.unwrap() {
        assert_eq!(
            ws.read_file(&replay, &file).await.unwrap(),
            ws.read_file(&wt, &file).await.unwrap(),
            "{file}"
        );
    }
    assert_eq!(ws.diff(&replay).await.unwrap(), diff);
}

#[tokio::test]
async fn diff_applies_to_the_repository() {
    let (repo, base) = Repo::with(BASE_FILES);
    let (_tmp, ws) = workspace();
    let wt = ws.checkout(repo.path(), &base, None, "apply").await.unwrap();
    ws.write_files(
        &wt,
        &[put("a.txt", "one\nTWO\nthree\n"), put("new/dir/n.txt", "fresh\n"), delete("gone.txt")],
    )
    .await
    .unwrap();
    let diff = ws.diff(&wt).await.unwrap();

    ws.apply_to_repo(repo.path(), &diff).await.unwrap();
    assert_eq!(repo.read("a.txt").as_deref(), Some("one\nTWO\nthree\n"));
    assert_eq!(repo.read("new/dir/n.txt").as_deref(), Some("fresh\n"));
    assert_eq!(repo.read("gone.txt"), None);
    assert_eq!(repo.read("keep/k.txt").as_deref(), Some("k\n"));
}

#[tokio::test]
async fn apply_from_a_subdirectory_still_patches_the_whole_repository() {
    let (repo, base) = Repo::with(BASE_FILES);
    let (_tmp, ws) = workspace();
    let wt = ws.checkout(repo.path(), &base, None, "sub").await.unwrap();
    ws.write_files(&wt, &[put("a.txt", "changed\n")]).await.unwrap();
    let diff = ws.diff(&wt).await.unwrap();
    ws.apply_to_repo(&repo.path().join("keep"), &diff).await.unwrap();
    assert_eq!(repo.read("a.txt").as_deref(), Some("changed\n"));
}

#[tokio::test]
async fn empty_patch_is_a_no_op() {
    let (repo, _) = Repo::with(BASE_FILES);
    let (_tmp, ws) = workspace();
    let before = snapshot(repo.path());
    ws.apply_to_repo(repo.path(), "").await.unwrap();
    ws.apply_to_repo(repo.path(), "\n  \n").await.unwrap();
    assert_eq!(snapshot(repo.path()), before);
}

#[tokio::test]
async fn conflicting_patch_changes_nothing() {
    let (repo, base) = Repo::with(BASE_FILES);
    let (_tmp, ws) = workspace();
    let wt = ws.checkout(repo.path(), &base, None, "conflict").await.unwrap();
    // The patch touches two files; only the second one conflicts, and the first must stay unapplied.
    ws.write_files(&wt, &[put("keep/k.txt", "k2\n"), put("a.txt", "one\nmine\nthree\n")])
        .await
        .unwrap();
    let diff = ws.diff(&wt).await.unwrap();

    // Meanwhile the user changed the same line.
    repo.write("a.txt", "one\ntheirs\nthree\n");
    repo.commit("theirs");
    let before = snapshot(repo.path());

    let err = ws.apply_to_repo(repo.path(), &diff).await.unwrap_err();
    match &err {
        WorkspaceError::Conflict { repo: r, detail } => {
            assert_eq!(r, repo.path());
            assert!(detail.contains("a.txt"), "{detail}");
        }
        other => panic!("expected Conflict, got {other:?}"),
    }
    assert!(!err.is_retryable());
    assert_eq!(snapshot(repo.path()), before, "a failed apply changed the repository");
    assert_eq!(repo.read("keep/k.txt").as_deref(), Some("k\n"));
}

#[tokio::test]
async fn apply_outside_a_repository() {
    let dir = tempfile::tempdir().unwrap();
    let (_tmp, ws) = workspace();
    let err = ws.apply_to_repo(dir.path(), "diff --git a/x b/x\n").await.unwrap_err();
    assert!(matches!(err, WorkspaceError::NotARepository(_)), "{err:?}");
}

#[tokio::test]
async fn read_of_missing_directory_or_non_utf8_is_none() {
    let (repo, base) = Repo::with(BASE_FILES);
    let (_tmp, ws) = workspace();
    let wt = ws.checkout(repo.path(), &base, None, "read").await.unwrap();
    std::fs::write(wt.path.join("latin1.txt"), b"caf\xe9\n").unwrap();
    assert_eq!(ws.read_file(&wt, "nope.txt").await.unwrap(), None);
    assert_eq!(ws.read_file(&wt, "nope/deeper.txt").await.unwrap(), None);
    assert_eq!(ws.read_file(&wt, "keep").await.unwrap(), None);
    assert_eq!(ws.read_file(&wt, "latin1.txt").await.unwrap(), None);
    assert_eq!(ws.read_file(&wt, "a.txt").await.unwrap().as_deref(), Some("one\ntwo\nthree\n"));
}

#[tokio::test]
async fn binary_changes_round_trip() {
    let (repo, base) = Repo::with(BASE_FILES);
    let (_tmp, ws) = workspace();
    let wt = ws.checkout(repo.path(), &base, None, "bin").await.unwrap();
    let bytes: Vec<u8> = (0..=255u8).cycle().take(2000).collect();
    std::fs::write(wt.path.join("blob.bin"), &bytes).unwrap();
    let diff = ws.diff(&wt).await.unwrap();
    assert!(diff.contains("GIT binary patch"), "{diff}");
    let replay = ws.checkout(repo.path(), &base, Some(&diff), "bin2").await.unwrap();
    assert_eq!(std::fs::read(replay.path.join("blob.bin")).unwrap(), bytes);
}

#[tokio::test]
async fn list_files_skips_ignored_files() {
    let (repo, base) = Repo::with(&[("a.txt", "a\n"), (".gitignore", "target/\n")]);
    let (_tmp, ws) = workspace();
    let wt = ws.checkout(repo.path(), &base, None, "ls").await.unwrap();
    ws.write_files(&wt, &[put("target/out.o", "junk"), put("z/new.rs", "")]).await.unwrap();
    assert_eq!(ws.list_files(&wt).await.unwrap(), [".gitignore", "a.txt", "z/new.rs"]);
    assert!(!ws.diff(&wt).await.unwrap().contains("target/out.o"));
}
