//! Sandboxes: the adapters behind [`cadre_domain::ports::Sandbox`], where a task's tests run.
//!
//! - [`YoukiSandbox`]: each run in a fresh container built with youki's `libcontainer`: PID,
//!   mount, IPC, UTS, cgroup and network namespaces (loopback only, unless the run's
//!   [`RunSpec::network`](cadre_domain::ports::sandbox::RunSpec::network) grants the host's),
//!   memory/pids/CPU cgroup limits, no capabilities, `no_new_privs`, a seccomp deny-list, a
//!   read-only root (host toolchain directories bind-mounted on a skeleton, or a configured image
//!   directory: [`RootFs`]) and a private copy of the worktree as the only writable tree. It
//!   reports [`Isolation::Container`](cadre_domain::report::Isolation::Container) and says which
//!   limit ended a run (`killed_by`). It needs root; [`preflight`] says what a host lacks.
//!   A run given a build cache key
//!   ([`RunSpec::cache`](cadre_domain::ports::sandbox::RunSpec::cache)) also writes a cache
//!   directory kept for later runs with that key (`/cache`, where `CARGO_TARGET_DIR` and the like
//!   point), so a task's rounds build incrementally. [`YoukiSandbox::run_with_phases`] also says
//!   where a run's time went ([`RunPhases`]: workspace copy, container create, command, delete…).
//! - [`HostSandbox`]: a plain host subprocess with a timeout, a bounded output tail and
//!   process-group cleanup. It is **not** a security boundary and reports
//!   [`Isolation::HostUnisolated`](cadre_domain::report::Isolation::HostUnisolated), so every
//!   report says so. It cannot restrict the network either. Only for hosts where containers
//!   cannot run. Its build caches are plain directories under its state dir, as reachable as
//!   everything else.
//!
//! Key design decisions: stdout and stderr share one pipe, so the captured output is in the exact
//! order the command wrote it and only its last `output_limit` bytes are held in memory; and each
//! container is created by a separate single-threaded runner process ([`runner_main`], shipped as
//! the `cadre-sandbox-runner` binary), because libcontainer's raw `clone3` from a multi-threaded
//! process can leave the new process deadlocked on a lock another thread held.
//!
//! This crate must not leave a process, container or cgroup behind after a run (timed out,
//! cancelled or failed), must not buffer unbounded output, must never write the caller's worktree
//! from a container run, and must not depend on another infra crate.

mod cache;
mod capture;
mod host;
mod limits;
mod tail;
mod youki;

pub use cache::DEFAULT_CACHE_MAX_AGE;
pub use host::HostSandbox;
pub use limits::Limits;
pub use youki::{
    preflight, runner_main, Network, RootFs, RunPhases, Runner, UserNamespace, YoukiConfig,
    YoukiSandbox,
};
