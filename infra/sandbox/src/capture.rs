//! Capturing a run's output: one pipe for stdout and stderr, pumped into a [`Tail`].
//!
//! One pipe for both streams keeps their relative order exactly as written, and the pump keeps only
//! the tail, so memory stays bounded however much the command prints.

use crate::tail::Tail;
use cadre_domain::ports::sandbox::SandboxError;
use std::io;
use std::os::fd::OwnedFd;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::net::unix::pipe;
use tokio::task::JoinHandle;
use tracing::warn;

/// How long to wait for the output pipe to close once every process of the run is dead. Only a
/// process that escaped the cleanup can hold it open longer; its output is then cut off.
const DRAIN_GRACE: Duration = Duration::from_secs(1);

/// The write ends to hand to the command (stdout and stderr), and the pump reading the other end.
pub(crate) struct Capture {
    pub(crate) stdout: OwnedFd,
    pub(crate) stderr: OwnedFd,
    pump: Pump,
}

/// The running pump; aborted on drop so an abandoned run never leaks a reader task.
pub(crate) struct Pump {
    handle: JoinHandle<io::Result<()>>,
    tail: Arc<Mutex<Tail>>,
}

impl Capture {
    /// Creates the pipe and starts pumping it into a tail of `limit` bytes.
    ///
    /// # Errors
    /// The reason the pipe could not be created, for a [`SandboxError::Spawn`].
    pub(crate) fn start(limit: usize) -> Result<Capture, String> {
        let (tx, rx) = pipe::pipe().map_err(|e| format!("cannot create the output pipe: {e}"))?;
        let stdout =
            tx.into_blocking_fd().map_err(|e| format!("cannot prepare the output pipe: {e}"))?;
        let stderr =
            stdout.try_clone().map_err(|e| format!("cannot prepare the output pipe: {e}"))?;
        let tail = Arc::new(Mutex::new(Tail::new(limit)));
        let handle = tokio::spawn(pump(rx, Arc::clone(&tail)));
        Ok(Capture { stdout, stderr, pump: Pump { handle, tail } })
    }

    /// Splits off the write ends; the caller must drop its copies once the command holds them,
    /// or end-of-file never comes.
    pub(crate) fn into_parts(self) -> (OwnedFd, OwnedFd, Pump) {
        (self.stdout, self.stderr, self.pump)
    }
}

impl Pump {
    /// Waits for end-of-file (bounded by [`DRAIN_GRACE`]) and returns the kept text and whether
    /// anything was dropped.
    ///
    /// # Errors
    /// [`SandboxError::Runtime`] when reading the pipe failed.
    pub(crate) async fn finish(mut self, command: &str) -> Result<(String, bool), SandboxError> {
        match tokio::time::timeout(DRAIN_GRACE, &mut self.handle).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => {
                return Err(SandboxError::Runtime(format!(
                    "reading the output of `{command}` failed: {e}"
                )))
            }
            Ok(Err(e)) => {
                return Err(SandboxError::Runtime(format!(
                    "the output reader of `{command}` failed: {e}"
                )))
            }
            Err(_) => {
                self.handle.abort();
                warn!(
                    command,
                    "output pipe still open after the run's processes were killed; \
                     a process escaped the cleanup and its later output is lost"
                );
            }
        }
        let tail = std::mem::replace(
            &mut *self.tail.lock().unwrap_or_else(PoisonError::into_inner),
            Tail::new(0),
        );
        Ok(tail.finish())
    }
}

impl Drop for Pump {
    fn drop(&mut self) {
        self.handle.abort();
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
