//! The workspace port: isolated worktrees of a git repository, and patches between them and the repository.
//!
//! A worktree is always rebuilt from `(repository, base commit, patch)`, never reused from an earlier
//! attempt, so a step that crashed half-way leaves nothing a retry could trip over.

use crate::ids::CommitId;
use std::path::{Path, PathBuf};

/// What [`Workspace::inspect`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoStatus {
    /// The repository's top-level directory, absolute.
    pub root: PathBuf,
    /// The commit `HEAD` points at.
    pub head: CommitId,
    /// Paths with uncommitted changes (tracked or untracked, ignoring ignored files).
    pub dirty: Vec<String>,
}

/// A checked-out worktree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Worktree {
    /// Its directory.
    pub path: PathBuf,
    /// The commit it was built from.
    pub base: CommitId,
}

/// A file to write into a worktree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileWrite {
    /// Repository-relative path, `/`-separated.
    pub path: String,
    /// New content; `None` deletes the file.
    pub content: Option<String>,
}

/// Why a workspace operation failed.
#[derive(Debug, thiserror::Error)]
pub enum WorkspaceError {
    /// The path is not inside a git repository.
    #[error("{0} is not a git repository; run `git init` there, or pass --repo with a repository's path")]
    NotARepository(PathBuf),
    /// The repository has no commit to start from.
    #[error("{0} has no commits yet; commit once so Cadre has a base to work from")]
    NoCommits(PathBuf),
    /// A path escapes the worktree or is otherwise unusable.
    #[error("refusing path `{path}`: {why}")]
    BadPath {
        /// The path.
        path: String,
        /// Why.
        why: String,
    },
    /// The patch does not apply to the repository as it is now.
    #[error("the patch does not apply to {repo}: {detail}")]
    Conflict {
        /// The repository.
        repo: PathBuf,
        /// What git said.
        detail: String,
    },
    /// Git or the filesystem failed.
    #[error("git failed: {0}")]
    Git(String),
}

impl WorkspaceError {
    /// Whether the same call may succeed later.
    #[must_use]
    pub fn is_retryable(&self) -> bool {
        matches!(self, WorkspaceError::Git(_))
    }
}

/// Git worktrees and patches.
#[async_trait::async_trait]
pub trait Workspace: Send + Sync {
    /// Finds the repository containing `path` and its state.
    ///
    /// # Errors
    /// MUST return [`WorkspaceError::NotARepository`] outside a repository and
    /// [`WorkspaceError::NoCommits`] for a repository without commits.
    async fn inspect(&self, path: &Path) -> Result<RepoStatus, WorkspaceError>;

    /// Builds a fresh worktree named `label` at `base`, with `patch` (a unified diff) applied when given,
    /// replacing any earlier worktree of that name.
    ///
    /// # Errors
    /// MUST return [`WorkspaceError::Conflict`] when `patch` does not apply to `base`.
    async fn checkout(
        &self,
        repo: &Path,
        base: &CommitId,
        patch: Option<&str>,
        label: &str,
    ) -> Result<Worktree, WorkspaceError>;

    /// The tracked and new (not ignored) files of a worktree, sorted.
    ///
    /// # Errors
    /// MUST return [`WorkspaceError::Git`] when the worktree cannot be read.
    async fn list_files(&self, worktree: &Worktree) -> Result<Vec<String>, WorkspaceError>;

    /// A file's text, or `None` when it does not exist or is not UTF-8.
    ///
    /// # Errors
    /// MUST return [`WorkspaceError::BadPath`] for a path that escapes the worktree.
    async fn read_file(
        &self,
        worktree: &Worktree,
        path: &str,
    ) -> Result<Option<String>, WorkspaceError>;

    /// Writes (or deletes) files, creating directories as needed.
    ///
    /// # Errors
    /// MUST return [`WorkspaceError::BadPath`], writing nothing, when any path escapes the worktree.
    async fn write_files(
        &self,
        worktree: &Worktree,
        files: &[FileWrite],
    ) -> Result<(), WorkspaceError>;

    /// The worktree's changes against its base as a unified diff (new files included), empty when none.
    ///
    /// # Errors
    /// MUST return [`WorkspaceError::Git`] when git fails.
    async fn diff(&self, worktree: &Worktree) -> Result<String, WorkspaceError>;

    /// Deletes a worktree.
    ///
    /// # Errors
    /// MUST return [`WorkspaceError::Git`] when it cannot be removed.
    async fn remove(&self, worktree: &Worktree) -> Result<(), WorkspaceError>;

    /// Applies a unified diff to the repository's working tree, all or nothing.
    ///
    /// # Errors
    /// MUST return [`WorkspaceError::Conflict`], changing nothing, when the diff does not apply cleanly.
    async fn apply_to_repo(&self, repo: &Path, patch: &str) -> Result<(), WorkspaceError>;
}
