//! The forge port: where a team reviews and ships code (GitHub, GitLab).
//!
//! A task's change leaves Cadre as a commit on its own branch and a pull (merge) request carrying
//! the plan, a diff summary and the test report; later rounds update the same branch and request.
//! Review comments and CI check results come back through the same port.
//!
//! One forge value serves one repository: which repository, the token and the URLs are the adapter's
//! configuration, so nothing here names a host or carries a secret.

use crate::ids::CommitId;
use std::path::PathBuf;
use std::time::Duration;

/// A change to commit and push: the uncommitted work in `worktree`, on top of `base`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushRequest {
    /// A git work tree whose `HEAD` is `base` and whose files hold the change (not yet committed).
    pub worktree: PathBuf,
    /// The commit the change was made on.
    pub base: CommitId,
    /// The branch to push to (e.g. `cadre/0193a1b2-fix-the-parser`); replaced if it exists, since a
    /// later round rebuilds the change from `base`.
    pub branch: String,
    /// The commit message: what the change does and why, the plan and the tests run.
    pub message: String,
}

/// What [`Forge::push_branch`] pushed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pushed {
    /// The branch.
    pub branch: String,
    /// The commit now at the branch's tip.
    pub commit: CommitId,
}

/// A pull / merge request to open, or to update when one is already open from `branch`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeRequest {
    /// The branch holding the change.
    pub branch: String,
    /// The branch the change is proposed into (e.g. `main`).
    pub target: String,
    /// The title.
    pub title: String,
    /// The description (Markdown): plan, diff summary, test report.
    pub body: String,
}

/// An open pull / merge request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullRequest {
    /// Its number (GitHub `number`, GitLab `iid`).
    pub number: u64,
    /// Where people see it.
    pub url: String,
    /// Whether this call opened it (`false`: an open one was updated).
    pub created: bool,
}

/// A reviewer's comment on a pull request: a review's body or a line comment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReviewComment {
    /// The forge's id of the comment.
    pub id: u64,
    /// Who wrote it (login / username).
    pub author: String,
    /// What they wrote.
    pub body: String,
    /// The file a line comment is on.
    pub path: Option<String>,
    /// The line (in the new version) a line comment is on.
    pub line: Option<u32>,
}

/// How a CI check (GitHub check run, GitLab job) stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckState {
    /// Queued or running.
    Pending,
    /// Finished successfully.
    Passed,
    /// Finished with a failure (including timed out).
    Failed,
    /// Skipped, cancelled or neutral: neither a pass nor a failure of the change.
    Skipped,
}

/// One CI check on a pull request's head commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckResult {
    /// The check's (job's) name.
    pub name: String,
    /// How it stands.
    pub state: CheckState,
    /// The id to pass to [`Forge::job_log`], when the forge keeps a log for it.
    pub job: Option<String>,
    /// Where people see it.
    pub url: Option<String>,
}

/// Why a forge call failed.
#[derive(Debug, thiserror::Error)]
pub enum ForgeError {
    /// The token is missing, wrong, expired or lacks a permission the call needs.
    #[error("the forge refused the token for {what}: {detail}; check the token and its scopes (repo / api)")]
    Auth {
        /// The call.
        what: String,
        /// What the forge said.
        detail: String,
    },
    /// The repository, request, job or branch does not exist (or the token cannot see it).
    #[error("{what} was not found on the forge; check the repository name and that the token can see it")]
    NotFound {
        /// What was looked for.
        what: String,
    },
    /// The forge refused the change as it stands (a rejected push, a request that already exists in
    /// another form, a branch protected against it).
    #[error("the forge refused {what}: {detail}")]
    Conflict {
        /// The call.
        what: String,
        /// What the forge said.
        detail: String,
    },
    /// The forge's rate limit is spent; calls may succeed again after `retry_after`.
    #[error("the forge's rate limit is spent; retry after {} s", retry_after.as_secs())]
    RateLimited {
        /// How long to wait.
        retry_after: Duration,
    },
    /// The forge could not be reached or failed (network, 5xx, a reply in an unexpected shape).
    #[error("the forge is unavailable for {what}: {detail}")]
    Unavailable {
        /// The call.
        what: String,
        /// What went wrong.
        detail: String,
    },
}

impl ForgeError {
    /// Whether the same call may succeed later.
    #[must_use]
    pub fn is_retryable(&self) -> bool {
        matches!(self, ForgeError::RateLimited { .. } | ForgeError::Unavailable { .. })
    }
}

/// A code forge holding one repository: branches, pull requests, review comments and CI results.
#[async_trait::async_trait]
pub trait Forge: Send + Sync {
    /// Commits the work in `request.worktree` on top of `request.base` and pushes it to
    /// `request.branch`, replacing what the branch held.
    ///
    /// # Errors
    /// MUST return [`ForgeError::Auth`] when the forge refuses the credentials,
    /// [`ForgeError::Conflict`] when it refuses the push itself (e.g. a protected branch), and
    /// [`ForgeError::Unavailable`] when it cannot be reached. The token MUST NOT appear in any error,
    /// log line or process argument.
    async fn push_branch(&self, request: &PushRequest) -> Result<Pushed, ForgeError>;

    /// Opens a pull request from `change.branch`, or updates the title and body of the one already
    /// open from it (a later round), so one branch has at most one open request.
    ///
    /// # Errors
    /// MUST return [`ForgeError::NotFound`] when the repository or branch is unknown,
    /// [`ForgeError::Auth`] for a refused token and [`ForgeError::RateLimited`] (with the wait the
    /// forge asked for) when its rate limit is spent.
    async fn open_or_update(&self, change: &ChangeRequest) -> Result<PullRequest, ForgeError>;

    /// Adds a comment to pull request `number`.
    ///
    /// # Errors
    /// MUST return [`ForgeError::NotFound`] when there is no such request.
    async fn comment(&self, number: u64, body: &str) -> Result<(), ForgeError>;

    /// Every review comment on pull request `number` (all pages): review bodies and line comments,
    /// each in the forge's order (oldest first).
    ///
    /// # Errors
    /// MUST return [`ForgeError::NotFound`] when there is no such request.
    async fn review_comments(&self, number: u64) -> Result<Vec<ReviewComment>, ForgeError>;

    /// The CI checks on pull request `number`'s head commit (all pages).
    ///
    /// # Errors
    /// MUST return [`ForgeError::NotFound`] when there is no such request.
    async fn checks(&self, number: u64) -> Result<Vec<CheckResult>, ForgeError>;

    /// The log of the CI job `job` (a [`CheckResult::job`]), as text.
    ///
    /// # Errors
    /// MUST return [`ForgeError::NotFound`] when the job or its log does not exist (e.g. expired).
    async fn job_log(&self, job: &str) -> Result<String, ForgeError>;
}
