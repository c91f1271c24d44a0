//! [`HostSandbox`]: runs a command as a plain host subprocess, in its own process group.
//!
//! The process group is what makes cleanup whole: `sh -c` is the group leader, everything it starts
//! joins the group, and one `SIGKILL` to the group ends them all, whether the run timed out, the
//! future was dropped (the engine cancelled the step), or the shell exited leaving background jobs.
//! A process that leaves the group on purpose (`setsid`) escapes it; closing that gap is the
//! container sandbox's job.
//!
//! Build caches ([`RunSpec::cache`]) get the container sandbox's environment (`CARGO_TARGET_DIR`
//! and the like) pointing into `<state dir>/caches/<escaped key>/data`, so a task's rounds build
//! incrementally here too. They are **not isolated**: any run, and anything else this user runs,
//! can read and write every cache. The state dir must be a directory owned by this user, since a
//! default under the shared temp directory could otherwise be planted by another user.

use crate::cache::{self, Caches};
use crate::capture::Capture;
use crate::limits;
use async_trait::async_trait;
use cadre_domain::ports::sandbox::{RunOutput, RunSpec, Sandbox, SandboxError};
use cadre_domain::report::Isolation;
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Once};
use std::time::Duration;
use tokio::process::Command;
use tokio::time::Instant;
use tracing::{debug, warn};

static WARN_UNISOLATED: Once = Once::new();

/// A [`Sandbox`] that runs commands directly on the host, **without isolation**.
///
/// This is not a security boundary: the command runs as the current user and can read, write and
/// reach anything that user can. It gives timeouts, a bounded output tail and whole-tree cleanup,
/// nothing more, and says so through [`Isolation::HostUnisolated`] in every [`RunOutput`].
/// Use it only for code you would run yourself.
///
/// It cannot restrict the network: [`RunSpec::network`] is ignored, and every run reaches
/// whatever the host reaches, `NetworkAccess::LoopbackOnly` included (a plain subprocess shares
/// the host's network namespace; making a new one needs the privileges this runner does without).
///
/// Build caches live under its state dir ([`HostSandbox::with_state_dir`]; by default
/// `cadre-host-sandbox-<uid>` in the temp directory), unisolated like everything else; see the
/// module docs.
#[derive(Debug)]
pub struct HostSandbox {
    state_dir: PathBuf,
    caches: Arc<Caches>,
}

impl HostSandbox {
    /// A host sandbox. Logs a warning (once per process) that tests will run unisolated.
    #[must_use]
    pub fn new() -> Self {
        WARN_UNISOLATED.call_once(|| {
            warn!(
                isolation = "host-unisolated",
                "tests run as plain host processes without isolation; \
                 the code under test can touch anything this user can"
            );
        });
        let uid = nix::unistd::geteuid();
        let state_dir = std::env::temp_dir().join(format!("cadre-host-sandbox-{uid}"));
        Self::build(state_dir, cache::DEFAULT_CACHE_MAX_AGE)
    }

    fn build(state_dir: PathBuf, max_age: Duration) -> Self {
        let caches = Arc::new(Caches::new(state_dir.join("caches"), max_age));
        HostSandbox { state_dir, caches }
    }

    /// Keeps build caches under `dir` (created on first use, mode 0700) instead of the temp
    /// directory.
    #[must_use]
    pub fn with_state_dir(self, dir: impl Into<PathBuf>) -> Self {
        Self::build(dir.into(), self.caches.max_age())
    }

    /// Deletes build caches unused for longer than `age` (default 7 days): at the first run, then
    /// at most hourly.
    #[must_use]
    pub fn with_cache_max_age(self, age: Duration) -> Self {
        Self::build(self.state_dir, age)
    }

    /// Creates the state dir and its cache root, refusing a state dir this user does not own.
    fn prepare_state(&self) -> io::Result<()> {
        let dir = &self.state_dir;
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
        let meta = std::fs::symlink_metadata(dir)?;
        let me = nix::unistd::geteuid().as_raw();
        if !meta.is_dir() || meta.uid() != me {
            return Err(io::Error::other(format!(
                "{} is not a directory owned by uid {me}; remove it, or choose another with \
                 HostSandbox::with_state_dir",
                dir.display()
            )));
        }
        match std::fs::DirBuilder::new().mode(0o700).create(dir.join("caches")) {
            Err(e) if e.kind() != io::ErrorKind::AlreadyExists => Err(e),
            _ => Ok(()),
        }
    }

    /// The run's build cache directory, created if new, and stamped used.
    fn open_cache(&self, name: &str) -> io::Result<PathBuf> {
        self.prepare_state()?;
        let (uid, gid) = (nix::unistd::geteuid().as_raw(), nix::unistd::getegid().as_raw());
        self.caches.open(name, uid, gid)
    }
}

impl Default for HostSandbox {
    fn default() -> Self {
        Self::new()
    }
}

/// Owns a running command's process group: killing it on demand, and on drop no matter what.
struct ProcessGroup {
    pgid: Pid,
    alive: bool,
}

impl ProcessGroup {
    /// Sends `SIGKILL` to every process in the group (once; later calls do nothing).
    fn kill(&mut self) {
        if self.alive {
            self.alive = false;
            // ESRCH only means the group is already empty.
            if let Err(e) = killpg(self.pgid, Signal::SIGKILL) {
                if e != nix::errno::Errno::ESRCH {
                    warn!(pgid = self.pgid.as_raw(), error = %e, "could not kill process group");
                }
            }
        }
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        self.kill();
    }
}

#[async_trait]
impl Sandbox for HostSandbox {
    async fn run(&self, spec: &RunSpec) -> Result<RunOutput, SandboxError> {
        match tokio::fs::metadata(&spec.workdir).await {
            Ok(meta) if meta.is_dir() => {}
            _ => return Err(SandboxError::NoWorkdir(spec.workdir.clone())),
        }
        let spawn_error =
            |reason: String| SandboxError::Spawn { command: spec.command.clone(), reason };
        let started = Instant::now();
        if self.caches.sweep_due() {
            let caches = Arc::clone(&self.caches);
            drop(tokio::task::spawn_blocking(move || caches.sweep()));
        }
        // Held until the run is over (declared before the process group, so dropped after it).
        let lease = spec.cache.as_ref().map(|key| self.caches.lease(key)).transpose();
        let lease = lease.map_err(spawn_error)?;
        let cache_env = match &lease {
            Some(lease) => {
                let data = self.open_cache(lease.name()).map_err(|e| {
                    SandboxError::Runtime(format!(
                        "cannot prepare the build cache under {}: {e}",
                        self.state_dir.display()
                    ))
                })?;
                cache::env(&data)
            }
            None => Vec::new(),
        };

        let (stdout, stderr, pump) =
            Capture::start(spec.output_limit).map_err(spawn_error)?.into_parts();

        let mut cmd = Command::new("/bin/sh");
        cmd.arg("-c")
            .arg(&spec.command)
            .current_dir(&spec.workdir)
            .envs(cache_env.iter().chain(&spec.env).map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::from(stdout))
            .stderr(Stdio::from(stderr))
            .process_group(0)
            .kill_on_drop(true);
        let spawned = cmd.spawn();
        // The command still holds our copies of the pipe's write end; end-of-file needs them closed.
        drop(cmd);
        let mut child = spawned.map_err(|e| spawn_error(e.to_string()))?;
        let pgid =
            child.id().and_then(|id| i32::try_from(id).ok()).map(Pid::from_raw).ok_or_else(
                || SandboxError::Runtime("the started shell has no process id".into()),
            )?;
        let mut group = ProcessGroup { pgid, alive: true };
        debug!(pgid = pgid.as_raw(), workdir = %spec.workdir.display(), "started command");

        let wait_error = |e: io::Error| {
            SandboxError::Runtime(format!("waiting for `{}` failed: {e}", spec.command))
        };
        let exited: Option<ExitStatus> =
            match tokio::time::timeout(spec.timeout, child.wait()).await {
                Ok(status) => Some(status.map_err(wait_error)?),
                Err(_) => None,
            };
        // On timeout this ends the whole tree; after a normal exit it ends what the shell left
        // running in the background, which would otherwise outlive the run and hold the pipe open.
        group.kill();
        if exited.is_none() {
            child.wait().await.map_err(wait_error)?;
        }
        let (output, truncated) = pump.finish(&spec.command).await?;
        drop(group);
        drop(lease);
        let timed_out = exited.is_none();
        let exit_code = exited.and_then(|s| s.code());
        let duration = started.elapsed();
        debug!(
            ?exit_code,
            timed_out,
            truncated,
            duration_ms = duration.as_millis() as u64,
            "command finished"
        );
        Ok(RunOutput {
            exit_code,
            timed_out,
            output,
            truncated,
            duration,
            isolation: self.isolation(),
            killed_by: timed_out.then(|| limits::describe_timeout(spec.timeout)),
        })
    }

    /// Deletes the cache directory of `key` (renamed away first; see `cache.rs`).
    async fn remove_cache(&self, key: &str) -> Result<bool, SandboxError> {
        let (caches, key) = (Arc::clone(&self.caches), key.to_owned());
        tokio::task::spawn_blocking(move || caches.remove(&key))
            .await
            .map_err(|e| SandboxError::Runtime(format!("removing the build cache failed: {e}")))?
    }

    fn isolation(&self) -> Isolation {
        Isolation::HostUnisolated
    }
}
