//! [`GitWorkspace`]: worktrees as shared clones under a directory Cadre owns, driven by the `git` CLI.

mod cli;
mod paths;

use async_trait::async_trait;
use cadre_domain::ids::CommitId;
use cadre_domain::ports::workspace::{FileWrite, RepoStatus, Workspace, WorkspaceError, Worktree};
use cli::Git;
use std::ffi::OsString;
use std::io;
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};
use tracing::debug;

/// The committer identity set in every worktree, so a `git commit` there never fails for want of one.
const USER_NAME: &str = "Cadre";
const USER_EMAIL: &str = "cadre@localhost";

/// A [`Workspace`] over real git repositories.
///
/// Worktrees live at `<worktrees_root>/<label>`. Each is a `git clone --shared --no-checkout` of the
/// user's repository checked out at the base commit, so the user's `.git` is only ever read (no
/// `git worktree add`, which would register the worktree inside it). A shared clone borrows the
/// repository's objects, so a worktree must not outlive a `git gc --prune=now` of the repository
/// that drops its base; worktrees are short-lived and rebuilt per attempt, which keeps that safe.
#[derive(Debug, Clone)]
pub struct GitWorkspace {
    root: PathBuf,
}

impl GitWorkspace {
    /// A workspace keeping its worktrees under `worktrees_root` (created on first checkout).
    #[must_use]
    pub fn new(worktrees_root: PathBuf) -> Self {
        GitWorkspace { root: worktrees_root }
    }

    /// The directory holding the worktrees.
    #[must_use]
    pub fn worktrees_root(&self) -> &Path {
        &self.root
    }

    /// The top-level directory of the repository containing `path`.
    async fn toplevel(path: &Path) -> Result<PathBuf, WorkspaceError> {
        match Git::new(path).args(["rev-parse", "--show-toplevel"]).run().await {
            Ok(out) => Ok(path_from_output(out)),
            Err(f) if f.is_not_a_repository() => {
                Err(WorkspaceError::NotARepository(path.to_path_buf()))
            }
            Err(f) => Err(f.into()),
        }
    }

    /// Builds a checkout of `base` in `dir` (which does not exist yet), then applies `patch`.
    ///
    /// Not `git clone --shared`: a clone copies hook samples, refs and config and costs ~60 ms even for
    /// a tiny repository, on every step. Instead an empty repository borrows the user's objects through
    /// `objects/info/alternates` (as `--shared` does) and `read-tree -u` writes the index and files in one
    /// process. Nothing is written into the user's repository either way.
    async fn build(
        repo: &Path,
        base: &CommitId,
        patch: Option<&str>,
        dir: &Path,
        parent: &Path,
    ) -> Result<(), WorkspaceError> {
        let top = Self::toplevel(repo).await?;
        let common = Git::new(&top)
            .args(["rev-parse", "--path-format=absolute", "--git-common-dir"])
            .run()
            .await
            .map(path_from_output)?;
        Git::new(parent).args(["init", "-q", "--template="]).arg("--").arg(dir).run().await?;
        let git_dir = dir.join(".git");
        let (objects, sha) = (common.join("objects"), base.as_str().to_owned());
        blocking(move || {
            let info = git_dir.join("objects").join("info");
            let write = |path: &Path, text: String| {
                std::fs::write(path, text).map_err(|e| {
                    WorkspaceError::Git(format!("cannot write {}: {e}", path.display()))
                })
            };
            std::fs::create_dir_all(&info).map_err(|e| {
                WorkspaceError::Git(format!("cannot create {}: {e}", info.display()))
            })?;
            write(&info.join("alternates"), format!("{}\n", objects.display()))?;
            // A detached HEAD at the base commit, as `checkout --detach` would leave it.
            write(&git_dir.join("HEAD"), format!("{sha}\n"))?;
            let config = git_dir.join("config");
            let existing = std::fs::read_to_string(&config).unwrap_or_default();
            write(
                &config,
                format!("{existing}[user]\n\tname = {USER_NAME}\n\temail = {USER_EMAIL}\n"),
            )
        })
        .await?;
        Git::new(dir).args(["read-tree", "-u", "--reset", base.as_str()]).run().await?;
        if let Some(patch) = patch.filter(|p| !p.trim().is_empty()) {
            let patch = with_final_newline(patch);
            Git::new(dir)
                .args(["apply", "--whitespace=nowarn", "-"])
                .stdin(patch.as_bytes())
                .run()
                .await
                .map_err(|f| conflict(repo, f))?;
        }
        Ok(())
    }

    /// Refuses to touch a directory that is not one of our worktrees, so a mixed-up path can never
    /// make `remove` delete the user's repository.
    fn owned(&self, worktree: &Worktree) -> Result<(), WorkspaceError> {
        let root = std::fs::canonicalize(&self.root).unwrap_or_else(|_| self.root.clone());
        let parent = worktree.path.parent().map(std::fs::canonicalize);
        let label_ok = worktree
            .path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| check_label(n).is_ok());
        match parent {
            Some(Ok(parent)) if parent == root && label_ok => Ok(()),
            _ => Err(WorkspaceError::Git(format!(
                "refusing to touch {}: it is not a worktree under {}",
                worktree.path.display(),
                self.root.display()
            ))),
        }
    }
}

/// Labels become directory names, so only a plain, safe file name is accepted.
fn check_label(label: &str) -> Result<(), WorkspaceError> {
    let bad = |why: &str| WorkspaceError::BadPath { path: label.to_owned(), why: why.to_owned() };
    if label.is_empty() || label.len() > 128 {
        return Err(bad("a worktree label must be 1 to 128 characters"));
    }
    if label.starts_with('.') {
        return Err(bad("a worktree label must not start with `.`"));
    }
    if !label.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.')) {
        return Err(bad("a worktree label may use only ASCII letters, digits, `-`, `_` and `.`"));
    }
    Ok(())
}

/// Git prints paths followed by a newline; the bytes are the path, whatever their encoding.
fn path_from_output(mut out: Vec<u8>) -> PathBuf {
    while out.last() == Some(&b'\n') {
        out.pop();
    }
    PathBuf::from(OsString::from_vec(out))
}

/// `git apply` calls a patch whose last line lacks its newline corrupt.
fn with_final_newline(patch: &str) -> String {
    let mut p = patch.to_owned();
    if !p.ends_with('\n') {
        p.push('\n');
    }
    p
}

/// The paths in `git status --porcelain=v1 -z` output (both sides of a rename), sorted.
fn parse_status(out: &[u8]) -> Vec<String> {
    let mut paths = Vec::new();
    let mut records = out.split(|&b| b == 0).filter(|r| !r.is_empty());
    while let Some(record) = records.next() {
        let Some(path) = record.get(3..) else { continue };
        paths.push(String::from_utf8_lossy(path).into_owned());
        if matches!(record.first(), Some(b'R' | b'C')) || matches!(record.get(1), Some(b'R' | b'C'))
        {
            if let Some(orig) = records.next() {
                paths.push(String::from_utf8_lossy(orig).into_owned());
            }
        }
    }
    paths.sort();
    paths.dedup();
    paths
}

/// A `git apply` that ran and refused is a conflict; one that could not run is a git failure.
fn conflict(repo: &Path, f: cli::GitFailure) -> WorkspaceError {
    if f.status.is_none() {
        return f.into();
    }
    WorkspaceError::Conflict { repo: repo.to_path_buf(), detail: f.stderr.trim().to_owned() }
}

/// Removes a directory tree; one that is already gone is fine.
async fn remove_dir(dir: &Path) -> Result<(), WorkspaceError> {
    match tokio::fs::remove_dir_all(dir).await {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(WorkspaceError::Git(format!("cannot remove {}: {e}", dir.display()))),
    }
}

/// Runs filesystem work off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, WorkspaceError> + Send + 'static,
) -> Result<T, WorkspaceError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| WorkspaceError::Git(format!("filesystem task failed: {e}")))?
}

#[async_trait]
impl Workspace for GitWorkspace {
    async fn inspect(&self, path: &Path) -> Result<RepoStatus, WorkspaceError> {
        let root = Self::toplevel(path).await?;
        let head = match Git::new(&root)
            .args(["rev-parse", "--verify", "-q", "HEAD^{commit}"])
            .run()
            .await
        {
            Ok(out) => String::from_utf8_lossy(&out).trim().to_owned(),
            // `--verify -q` fails silently exactly when HEAD names no commit yet.
            Err(f) if f.stderr.trim().is_empty() => return Err(WorkspaceError::NoCommits(root)),
            Err(f) => return Err(f.into()),
        };
        let head = CommitId::parse(&head)
            .map_err(|e| WorkspaceError::Git(format!("git printed an unexpected HEAD: {e}")))?;
        let status = Git::new(&root)
            .args(["status", "--porcelain=v1", "-z", "--untracked-files=all", "--ignored=no"])
            .run()
            .await?;
        Ok(RepoStatus { root, head, dirty: parse_status(&status) })
    }

    async fn checkout(
        &self,
        repo: &Path,
        base: &CommitId,
        patch: Option<&str>,
        label: &str,
    ) -> Result<Worktree, WorkspaceError> {
        check_label(label)?;
        tokio::fs::create_dir_all(&self.root).await.map_err(|e| {
            WorkspaceError::Git(format!(
                "cannot create worktrees root {}: {e}",
                self.root.display()
            ))
        })?;
        let parent = tokio::fs::canonicalize(&self.root).await.map_err(|e| {
            WorkspaceError::Git(format!(
                "cannot resolve worktrees root {}: {e}",
                self.root.display()
            ))
        })?;
        let dir = parent.join(label);
        remove_dir(&dir).await?;
        debug!(repo = %repo.display(), base = %base, label, "checkout");
        if let Err(e) = Self::build(repo, base, patch, &dir, &parent).await {
            // Never leave a half-built worktree for a retry to trip over.
            let _ = remove_dir(&dir).await;
            return Err(e);
        }
        Ok(Worktree { path: dir, base: base.clone() })
    }

    async fn list_files(&self, worktree: &Worktree) -> Result<Vec<String>, WorkspaceError> {
        let out = Git::new(&worktree.path)
            .args(["ls-files", "-z", "--cached", "--others", "--exclude-standard"])
            .run()
            .await?;
        let root = worktree.path.clone();
        blocking(move || {
            let mut files: Vec<String> = out
                .split(|&b| b == 0)
                .filter(|p| !p.is_empty())
                .map(|p| String::from_utf8_lossy(p).into_owned())
                // The index still lists a file deleted by `write_files`; the disk is the truth.
                .filter(|p| std::fs::symlink_metadata(root.join(p)).is_ok())
                .collect();
            files.sort();
            files.dedup();
            Ok(files)
        })
        .await
    }

    async fn read_file(
        &self,
        worktree: &Worktree,
        path: &str,
    ) -> Result<Option<String>, WorkspaceError> {
        let root = worktree.path.clone();
        let rel = path.to_owned();
        blocking(move || {
            let canonical = paths::canonical_root(&root)?;
            let full = paths::resolve(&root, &canonical, &rel)?;
            match std::fs::read(&full) {
                Ok(bytes) => Ok(String::from_utf8(bytes).ok()),
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::NotFound | io::ErrorKind::IsADirectory
                    ) =>
                {
                    Ok(None)
                }
                Err(e) => Err(WorkspaceError::Git(format!("cannot read {}: {e}", full.display()))),
            }
        })
        .await
    }

    async fn write_files(
        &self,
        worktree: &Worktree,
        files: &[FileWrite],
    ) -> Result<(), WorkspaceError> {
        let root = worktree.path.clone();
        let files = files.to_vec();
        blocking(move || {
            let canonical = paths::canonical_root(&root)?;
            // Every path is checked before any is written: one bad path writes nothing.
            let targets = files
                .iter()
                .map(|f| paths::resolve(&root, &canonical, &f.path))
                .collect::<Result<Vec<_>, _>>()?;
            for (file, target) in files.iter().zip(targets) {
                let fail = |e: io::Error| {
                    WorkspaceError::Git(format!("cannot write {}: {e}", target.display()))
                };
                match &file.content {
                    Some(text) => {
                        if let Some(dir) = target.parent() {
                            std::fs::create_dir_all(dir).map_err(fail)?;
                        }
                        std::fs::write(&target, text).map_err(fail)?;
                    }
                    None => match std::fs::remove_file(&target) {
                        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(fail(e)),
                        _ => {}
                    },
                }
            }
            Ok(())
        })
        .await
    }

    async fn diff(&self, worktree: &Worktree) -> Result<String, WorkspaceError> {
        let dir = &worktree.path;
        Git::new(dir).args(["add", "-A"]).run().await?;
        // Every option that a user's config could flip into an unappliable form is pinned here.
        let out = Git::new(dir)
            .args(["-c", "diff.noprefix=false", "-c", "diff.mnemonicPrefix=false"])
            .args(["diff", "--cached", "--binary", "--no-color", "--no-ext-diff", "--no-textconv"])
            .args(["--no-renames", "--no-relative", "--src-prefix=a/", "--dst-prefix=b/"])
            .arg(worktree.base.as_str())
            .arg("--")
            .run()
            .await?;
        String::from_utf8(out).map_err(|_| {
            WorkspaceError::Git(format!(
                "the diff of {} is not UTF-8 (a changed text file uses another encoding); \
                 convert that file to UTF-8 or mark it binary in .gitattributes",
                dir.display()
            ))
        })
    }

    async fn remove(&self, worktree: &Worktree) -> Result<(), WorkspaceError> {
        if tokio::fs::symlink_metadata(&worktree.path).await.is_err() {
            return Ok(());
        }
        self.owned(worktree)?;
        remove_dir(&worktree.path).await
    }

    async fn apply_to_repo(&self, repo: &Path, patch: &str) -> Result<(), WorkspaceError> {
        if patch.trim().is_empty() {
            return Ok(());
        }
        // From a subdirectory `git apply` silently skips paths outside it, so apply at the top.
        let top = Self::toplevel(repo).await?;
        let patch = with_final_newline(patch);
        let conflict = |f| conflict(repo, f);
        Git::new(&top)
            .args(["apply", "--check", "--whitespace=nowarn", "-"])
            .stdin(patch.as_bytes())
            .run()
            .await
            .map_err(conflict)?;
        Git::new(&top)
            .args(["apply", "--whitespace=nowarn", "-"])
            .stdin(patch.as_bytes())
            .run()
            .await
            .map_err(conflict)?;
        debug!(repo = %top.display(), bytes = patch.len(), "applied patch");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::{check_label, parse_status};

    #[test]
    fn status_paths_include_both_sides_of_a_rename() {
        let out = b" M a.txt\0R  new.txt\0old.txt\0?? dir/n.txt\0";
        assert_eq!(parse_status(out), ["a.txt", "dir/n.txt", "new.txt", "old.txt"]);
    }

    #[test]
    fn labels() {
        assert!(check_label("task-1_r2.a").is_ok());
        for bad in ["", ".", "..", "a/b", "../x", ".hidden", "a b", "é"] {
            assert!(check_label(bad).is_err(), "{bad:?}");
        }
    }
}
