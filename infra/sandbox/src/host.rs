//! [`HostSandbox`]: runs a command as a plain host subprocess, in its own process group.
//!
//! The process group is what makes cleanup whole: `sh -c` is the group leader, everything it starts
//! joins the group, and one `SIGKILL` to the group ends them all, whether the run timed out, the
//! future was dropped (the engine cancelled the step), or the shell exited leaving background jobs.
//! A process that leaves the group on purpose (`setsid`) escapes it; closing that gap is the
//! container sandbox's job.

use crate::capture::Capture;
use crate::limits;
use async_trait::async_trait;
use cadre_domain::ports::sandbox::{RunOutput, RunSpec, Sandbox, SandboxError};
use cadre_domain::report::Isolation;
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use std::io;
use std::process::{ExitStatus, Stdio};
use std::sync::Once;
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
#[derive(Debug)]
pub struct HostSandbox {
    _private: (),
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
        HostSandbox { _private: () }
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

        let (stdout, stderr, pump) =
            Capture::start(spec.output_limit).map_err(spawn_error)?.into_parts();

        let mut cmd = Command::new("/bin/sh");
        cmd.arg("-c")
            .arg(&spec.command)
            .current_dir(&spec.workdir)
            .envs(spec.env.iter().map(|(k, v)| (k, v)))
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

    fn isolation(&self) -> Isolation {
        Isolation::HostUnisolated
    }
}
