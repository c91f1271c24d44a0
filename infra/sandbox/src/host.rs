//! [`HostSandbox`]: runs a command as a plain host subprocess, in its own process group.
//!
//! The process group is what makes cleanup whole: `sh -c` is the group leader, everything it starts
//! joins the group, and one `SIGKILL` to the group ends them all, whether the run timed out, the
//! future was dropped (the engine cancelled the step), or the shell exited leaving background jobs.
//! A process that leaves the group on purpose (`setsid`) escapes it; closing that gap is the
//! container sandbox's job.

use crate::tail::Tail;
use async_trait::async_trait;
use cadre_domain::ports::sandbox::{RunOutput, RunSpec, Sandbox, SandboxError};
use cadre_domain::report::Isolation;
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use std::io;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex, Once, PoisonError};
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::net::unix::pipe;
use tokio::process::Command;
use tokio::task::{AbortHandle, JoinHandle};
use tokio::time::Instant;
use tracing::{debug, warn};

/// How long to wait for the output pipe to close once the group is dead. Only a process that left
/// the group can hold it open longer; its output is then cut off rather than waited for.
const DRAIN_GRACE: Duration = Duration::from_secs(1);

static WARN_UNISOLATED: Once = Once::new();

/// A [`Sandbox`] that runs commands directly on the host, **without isolation**.
///
/// This is not a security boundary: the command runs as the current user and can read, write and
/// reach anything that user can. It gives timeouts, a bounded output tail and whole-tree cleanup,
/// nothing more, and says so through [`Isolation::HostUnisolated`] in every [`RunOutput`].
/// Use it only for code you would run yourself.
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
    pump: Option<AbortHandle>,
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
        if let Some(pump) = &self.pump {
            pump.abort();
        }
    }
}

/// Copies the pipe into the tail until every writer has closed it.
async fn pump(mut rx: pipe::Receiver, tail: Arc<Mutex<Tail>>) -> io::Result<()> {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = rx.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        tail.lock().unwrap_or_else(PoisonError::into_inner).push(&buf[..n]);
    }
}

/// Waits for the pump to see end-of-file; a pipe held open past [`DRAIN_GRACE`] is abandoned.
async fn drain(pump: &mut JoinHandle<io::Result<()>>, command: &str) -> Result<(), SandboxError> {
    match tokio::time::timeout(DRAIN_GRACE, &mut *pump).await {
        Ok(Ok(Ok(()))) => Ok(()),
        Ok(Ok(Err(e))) => {
            Err(SandboxError::Runtime(format!("reading the output of `{command}` failed: {e}")))
        }
        Ok(Err(e)) => {
            Err(SandboxError::Runtime(format!("the output reader of `{command}` failed: {e}")))
        }
        Err(_) => {
            pump.abort();
            warn!(
                command,
                "output pipe still open after the process group was killed; \
                 a process left the group (setsid?) and its later output is lost"
            );
            Ok(())
        }
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

        // One pipe for both streams keeps their relative order exactly as written.
        let (tx, rx) =
            pipe::pipe().map_err(|e| spawn_error(format!("cannot create the output pipe: {e}")))?;
        let stdout = tx
            .into_blocking_fd()
            .map_err(|e| spawn_error(format!("cannot prepare the output pipe: {e}")))?;
        let stderr = stdout
            .try_clone()
            .map_err(|e| spawn_error(format!("cannot prepare the output pipe: {e}")))?;

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
        let tail = Arc::new(Mutex::new(Tail::new(spec.output_limit)));
        let mut pump = tokio::spawn(pump(rx, Arc::clone(&tail)));
        let mut group = ProcessGroup { pgid, alive: true, pump: Some(pump.abort_handle()) };
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
        drain(&mut pump, &spec.command).await?;
        drop(group);

        let tail = std::mem::replace(
            &mut *tail.lock().unwrap_or_else(PoisonError::into_inner),
            Tail::new(0),
        );
        let (output, truncated) = tail.finish();
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
        })
    }

    fn isolation(&self) -> Isolation {
        Isolation::HostUnisolated
    }
}
