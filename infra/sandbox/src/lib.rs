//! Sandboxes: the adapters behind [`cadre_domain::ports::Sandbox`], where a task's tests run.
//!
//! Today there is one, [`HostSandbox`]: a plain host subprocess with a timeout, a bounded output tail
//! and process-group cleanup. It is **not** a security boundary; it reports
//! [`Isolation::HostUnisolated`](cadre_domain::report::Isolation::HostUnisolated) so every report
//! says so. The isolated container runner (youki) is a later adapter in this crate.
//!
//! Key design decision: stdout and stderr share one pipe, so the captured output is in the exact
//! order the command wrote it, and only its last `output_limit` bytes are ever held in memory.
//!
//! This crate must not leave a process behind after a timed-out or cancelled run, must not buffer
//! unbounded output, and must not depend on another infra crate.

mod host;
mod tail;

pub use host::HostSandbox;
