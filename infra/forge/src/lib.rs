//! Cadre's forges: the [`Forge`](cadre_domain::ports::forge::Forge) port over GitHub's and GitLab's
//! REST APIs ([`GitHubForge`], [`GitLabForge`]), pushing branches with `git push` over HTTPS, and the
//! webhook receiver ([`webhook::router`]) that turns a labelled issue, a `/cadre …` comment or a review
//! into work.
//!
//! Key design decision: the token never leaves this process except as an HTTP header. REST calls
//! carry it in `Authorization` / `PRIVATE-TOKEN`; `git push` gets it as a URL-scoped
//! `http.<url>.extraHeader` through git's `GIT_CONFIG_*` environment, so it is never in a command line,
//! a remote URL, a credential store or a log line. Webhook checks run before anything is stored: a
//! delivery is recorded (for replay protection) only once it passed its signature and became a task.
//!
//! This crate must not know the engine or another infra crate (a trigger becomes a task through the
//! [`webhook::TaskStarter`] the binary implements; the `cadre-sqlite` plumbing is the one exception,
//! shared so the delivery log uses the process's one connection to the Cadre database), must not retry
//! (rate limits come back as `ForgeError::RateLimited` for the caller to honour), and must not log a
//! secret or a request body.

mod api;
mod branch;
mod change;
mod github;
mod gitlab;
mod push;
mod secret;
mod time;
pub mod webhook;

/// Re-exported so the binary implements [`webhook::TaskStarter`] without its own dependency.
pub use async_trait::async_trait;
pub use branch::branch_name;
pub use change::{commit_message, diff_summary, request_body, request_title};
pub use github::{GitHubConfig, GitHubForge, API_VERSION as GITHUB_API_VERSION};
pub use gitlab::{GitLabConfig, GitLabForge};
pub use push::{GitIdentity, GitRemote};
pub use secret::Secret;

/// A setting that cannot be used, found when the forge is configured (before any call).
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A repository name that is not `owner/name` (GitHub) or `group/…/project` (GitLab).
    #[error("repository `{0}` is not owner/name; give it as it appears in the repository's URL, e.g. octo/widgets")]
    Repository(String),
    /// An identity that is not `Name <email>`.
    #[error("git identity `{0}` is not `Name <email>`; set e.g. CADRE_GIT_AUTHOR=\"Cadre Bot <cadre@example.com>\"")]
    Identity(String),
    /// An empty token or secret.
    #[error(
        "{0} is empty; export the forge token (GITHUB_TOKEN / GITLAB_TOKEN or CADRE_FORGE_TOKEN)"
    )]
    EmptySecret(&'static str),
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
}
