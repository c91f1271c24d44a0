//! The sandbox port: run a command over a worktree with limits, and capture what it printed.

use crate::report::Isolation;
use std::path::PathBuf;
use std::time::Duration;

/// What network a run may reach.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NetworkAccess {
    /// Its own loopback only: the default, so generated code cannot reach the host or the internet.
    #[default]
    LoopbackOnly,
    /// The host's network, granted explicitly for one run (e.g. a dependency download); reports say so.
    Granted,
}

/// What to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunSpec {
    /// The directory the command runs in (a task's worktree); the only tree it should write.
    pub workdir: PathBuf,
    /// A shell command line, run with `sh -c`.
    pub command: String,
    /// Extra environment variables.
    pub env: Vec<(String, String)>,
    /// Wall-clock limit; the whole process tree is killed when it runs out.
    pub timeout: Duration,
    /// How many bytes of combined output to keep (the end is kept, as failures print last).
    pub output_limit: usize,
    /// What network the run may reach.
    pub network: NetworkAccess,
    /// A key naming a writable build cache kept across runs with the same key, or `None` for
    /// none. The test step passes the task id, so every round of a task reuses the build outputs
    /// of the last one and tasks never share one. Sandboxes point build tools at it
    /// (`CARGO_TARGET_DIR` and the like) and delete it when told or after it went unused for a
    /// while; each adapter documents where it lives and how isolated it is.
    pub cache: Option<String>,
}

/// What a run produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunOutput {
    /// Exit code; absent when killed by a signal or the timeout.
    pub exit_code: Option<i32>,
    /// True when the timeout killed it.
    pub timed_out: bool,
    /// The last `output_limit` bytes of stdout and stderr, interleaved as they arrived.
    pub output: String,
    /// True when output beyond the limit was dropped.
    pub truncated: bool,
    /// Wall time.
    pub duration: Duration,
    /// How the run was isolated.
    pub isolation: Isolation,
    /// The limit that ended or crippled the run, when one did, e.g. "memory limit 512 MiB",
    /// "timeout 30 s" or "pids limit 256"; reports show it so a killed run is not read as a test failure.
    pub killed_by: Option<String>,
}

/// Why a run could not be carried out (a failing command is not an error: it is a [`RunOutput`]).
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// The working directory does not exist.
    #[error("working directory {0} does not exist")]
    NoWorkdir(PathBuf),
    /// The process could not be started.
    #[error("could not start `{command}`: {reason}")]
    Spawn {
        /// The command.
        command: String,
        /// The OS's reason.
        reason: String,
    },
    /// The runtime failed mid-run (I/O on the pipes, container runtime error).
    #[error("sandbox runtime failure: {0}")]
    Runtime(String),
}

impl SandboxError {
    /// Whether the same run may succeed later.
    #[must_use]
    pub fn is_retryable(&self) -> bool {
        matches!(self, SandboxError::Runtime(_))
    }
}

/// A place to run untrusted commands.
#[async_trait::async_trait]
pub trait Sandbox: Send + Sync {
    /// Runs `spec` to completion or timeout.
    ///
    /// # Errors
    /// MUST return [`SandboxError::NoWorkdir`] when the directory is missing and
    /// [`SandboxError::Spawn`] when the command cannot start. A command that runs and fails, or
    /// times out, MUST be an `Ok` [`RunOutput`], and a timed-out run MUST leave no process behind.
    async fn run(&self, spec: &RunSpec) -> Result<RunOutput, SandboxError>;

    /// Deletes the build cache of `key` (what runs with [`RunSpec::cache`] `= Some(key)` share),
    /// e.g. when its task has ended, and returns whether there was one. The default, for
    /// sandboxes that keep no build caches, has nothing to delete and returns `Ok(false)`.
    ///
    /// # Errors
    /// A sandbox that keeps build caches MUST return [`SandboxError::Spawn`] for a key no cache
    /// can have (e.g. an empty one), and [`SandboxError::Runtime`] while a run uses the cache or
    /// when deleting it fails.
    async fn remove_cache(&self, key: &str) -> Result<bool, SandboxError> {
        let _ = key;
        Ok(false)
    }

    /// How this sandbox isolates, for reports.
    fn isolation(&self) -> Isolation;
}
