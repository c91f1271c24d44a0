//! Git workspaces: the adapter behind [`cadre_domain::ports::Workspace`].
//!
//! Key design decision: a worktree is a `git clone --shared` of the user's repository in a directory
//! Cadre owns, not a `git worktree add`, so building, editing and deleting worktrees never writes into
//! the user's `.git` (objects are borrowed through the alternates file, which keeps clones cheap).
//! Everything goes through the `git` command line, a trusted host tool; the model's code never runs here.
//!
//! This crate must not run repository hooks or filters chosen by the repository, must not write outside
//! the worktrees root except through [`Workspace::apply_to_repo`](cadre_domain::ports::Workspace::apply_to_repo),
//! and must not depend on another infra crate.

mod git;

pub use git::GitWorkspace;
