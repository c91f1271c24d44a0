//! [`YoukiSandbox`]: each run in a fresh container built with youki's `libcontainer`.
//!
//! A run gets its own PID, mount, IPC, UTS, cgroup and (unless granted the host's) network
//! namespace; memory, pids and CPU cgroup limits, and a CPU weight to match (the runs' parent
//! cgroup weighs as many host processes as a run may use cores, so a busy host does not starve
//! them); no capabilities, `no_new_privs` and a seccomp deny-list; a read-only root made of the
//! host's toolchain directories (or an unpacked OCI image or debootstrap tree, see [`RootFs`]);
//! and, as its only writable tree, a private copy of the worktree at `/workspace` plus a private
//! `/tmp`. The original worktree is only read. The container and its cgroup are deleted after
//! every run, and a new sandbox deletes those an interrupted runner left in its runtime root.
//!
//! A run with a build cache ([`RunSpec::cache`]) also gets the directory
//! `<runtime root>/caches/<escaped key>/data`, owned by the container's user, read-write at
//! `/cache`, with `CARGO_TARGET_DIR`, `PIP_CACHE_DIR`, `npm_config_cache`, `GOCACHE` and
//! `XDG_CACHE_HOME` pointing into it (the run's own variables still win), and its workspace copy
//! leaves out the worktree's cargo build directories. That directory is the only host path a run
//! writes besides its workspace copy, and only runs with the same key see it. Caches are deleted
//! by `Sandbox::remove_cache` and by a sweep of those unused for
//! [`YoukiConfig::cache_max_age`] (at start, then at most hourly).
//!
//! Each container is created, waited for and deleted by a short-lived single-threaded runner
//! process ([`runner_main`]); see `runner.rs` for why libcontainer must not be called from a
//! multi-threaded process. This side prepares the bundle, starts the runner with the run's output
//! pipe as its stdout and stderr, enforces the timeout by killing the run's cgroup, and reads the
//! runner's report.
//!
//! No user namespace by default: libcontainer sets up mounts from inside the user namespace, as an
//! unprivileged host uid, so it cannot reach toolchains under a private home (`/root` is `0700`
//! here, and cargo, rustup and pyenv live in it). The command instead runs as a non-root uid with
//! every capability dropped. [`UserNamespace`] turns it on where the mounted paths are
//! world-traversable.

mod cgroups;
mod config;
mod container;
mod netns;
mod phases;
mod preflight;
mod root;
mod rootfs;
mod runner;
mod seccomp;
mod spec;
mod workspace;

pub use config::{Network, RootFs, Runner, UserNamespace, YoukiConfig};
pub use phases::RunPhases;
pub use preflight::preflight;
pub use runner::runner_main;

use crate::cache::{Caches, Lease};
use crate::capture::Capture;
use crate::limits;
use async_trait::async_trait;
use cadre_domain::ports::sandbox::{RunOutput, RunSpec, Sandbox, SandboxError};
use cadre_domain::report::Isolation;
use container::Prepare;
use phases::Marks;
use root::{Ids, Owner, RuntimeRoot};
use rootfs::Bind;
use runner::{Outcome, RunnerArgs};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;
use tokio::process::Child;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{debug, info, warn};

/// How long past a run's timeout the runner kills the run by itself (only matters when this
/// process died and cannot).
const RUNNER_DEADLINE_GRACE: Duration = Duration::from_secs(5);

/// How often a timed-out run's cgroup is swept while its runner winds down: a run still being
/// created has processes joining its cgroup.
const KILL_SWEEP: Duration = Duration::from_millis(50);

/// Runs `f` with libcontainer's logging silenced: libcgroups warns on every container about
/// controllers this host lacks, which would flood the host log. Errors still come back as values.
pub(crate) fn quietly<T>(f: impl FnOnce() -> T) -> T {
    tracing::subscriber::with_default(tracing::subscriber::NoSubscriber::default(), f)
}

/// A [`Sandbox`] that runs each command in its own youki container. See the module docs.
#[derive(Debug, Clone)]
pub struct YoukiSandbox {
    inner: Arc<Inner>,
}

struct Inner {
    config: YoukiConfig,
    root: RuntimeRoot,
    binds: Vec<Bind>,
    /// The container's `/`.
    rootfs: PathBuf,
    ids: Ids,
    caches: Arc<Caches>,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("YoukiSandbox").field("config", &self.config).finish_non_exhaustive()
    }
}

impl YoukiSandbox {
    /// Checks the host ([`preflight`]) and the runner program, prepares the runtime root and the
    /// read-only root skeleton, and deletes containers an interrupted runner left behind.
    ///
    /// # Errors
    /// [`SandboxError::Spawn`] when the host cannot run containers or the runtime root cannot be
    /// prepared, saying what is missing.
    pub fn new(mut config: YoukiConfig) -> Result<Self, SandboxError> {
        preflight()?;
        let setup = |reason: String| SandboxError::Spawn {
            command: "container sandbox setup".into(),
            reason,
        };
        if config.uid == 0 {
            return Err(setup(
                "the container user must not be root (uid 0); set YoukiConfig::uid".into(),
            ));
        }
        if !config.runner.program.is_file() {
            return Err(setup(format!(
                "the container runner {} does not exist; build it (the cadre-sandbox-runner \
                 binary) or point YoukiConfig::runner at a program that calls runner_main",
                config.runner.program.display()
            )));
        }
        let runtime_root = config.runtime_root.clone();
        let under = |what: &str, e: std::io::Error| {
            setup(format!("{what} under {} failed: {e}", runtime_root.display()))
        };
        let root = RuntimeRoot::create(&config.runtime_root)
            .map_err(|e| under("creating the runtime root", e))?;
        let (rootfs, binds, image_env) = match &config.root {
            RootFs::HostBinds => {
                let binds = rootfs::prepare(&root.rootfs, &config.read_only_mounts)
                    .map_err(|e| under("building the root skeleton", e))?;
                (root.rootfs.clone(), binds, Vec::new())
            }
            RootFs::Directory(dir) => {
                let image_error = |e: std::io::Error| {
                    setup(format!(
                        "cannot use {} as the container's root: {e}; point RootFs::Directory at \
                         an unpacked OCI bundle (rootfs/ + config.json) or a root tree",
                        dir.display()
                    ))
                };
                let (tree, env) = rootfs::image(dir).map_err(image_error)?;
                let binds =
                    rootfs::prepare(&tree, &config.read_only_mounts).map_err(image_error)?;
                (tree, binds, env)
            }
        };
        // The image's own variables (its PATH above all) over the configured base.
        for (key, value) in image_env {
            config.set_env(&key, &value);
        }
        let owner = Owner::current().map_err(|e| under("identifying this runner", e))?;
        root::clean_stale(&root, &config.cgroup_parent);
        cgroups::weigh_parent(
            &config.cgroup_parent,
            limits::cpu_shares(config.limits.cpu_millicores),
        );
        let caches = Arc::new(Caches::new(root.caches.clone(), config.cache_max_age));
        caches.sweep();
        info!(
            runtime_root = %config.runtime_root.display(),
            seccomp = config.seccomp,
            network = ?config.network,
            root = %rootfs.display(),
            "container sandbox ready"
        );
        let inner = Inner { config, root, binds, rootfs, ids: Ids::new(owner), caches };
        Ok(YoukiSandbox { inner: Arc::new(inner) })
    }

    /// The configuration this sandbox was built with.
    #[must_use]
    pub fn config(&self) -> &YoukiConfig {
        &self.inner.config
    }

    /// The syscalls the seccomp filter denies, for documentation and reports.
    #[must_use]
    pub fn denied_syscalls() -> Vec<&'static str> {
        seccomp::denied_names()
    }
}

/// Owns a run's leftovers until the run is over: dropped early (the engine cancelled the step, or
/// an error returned), it kills the run's cgroup and removes the rest in the background.
struct RunGuard {
    root: RuntimeRoot,
    cgroup_parent: String,
    id: String,
    prepare: Option<JoinHandle<Result<(PathBuf, Marks), SandboxError>>>,
    runner: Option<Child>,
    /// The run's hold on its build cache, released once nothing of the run is left.
    cache: Option<Lease>,
    armed: bool,
}

impl RunGuard {
    fn remove_now(&self) -> impl FnOnce() + Send + 'static {
        let (root, parent, id) = (self.root.clone(), self.cgroup_parent.clone(), self.id.clone());
        move || quietly(|| root::remove_run(&root, &parent, &id))
    }

    /// Ends the run early and removes everything it left: what an error or a cancellation needs.
    fn abandon(&mut self) -> impl std::future::Future<Output = ()> + Send + 'static {
        self.armed = false;
        cgroups::kill_all(&self.cgroup_parent, &self.id);
        let remove = self.remove_now();
        let (prepare, runner) = (self.prepare.take(), self.runner.take());
        let (parent, id) = (self.cgroup_parent.clone(), self.id.clone());
        let cache = self.cache.take();
        async move {
            if let Some(prepare) = prepare {
                let _ = prepare.await;
            }
            if let Some(mut runner) = runner {
                // Keep killing until the runner is gone: it may still be creating the container.
                loop {
                    cgroups::kill_all(&parent, &id);
                    if tokio::time::timeout(KILL_SWEEP, runner.wait()).await.is_ok() {
                        break;
                    }
                }
            }
            let _ = tokio::task::spawn_blocking(remove).await;
            drop(cache);
        }
    }
}

impl Drop for RunGuard {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let cleanup = self.abandon();
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                handle.spawn(cleanup);
            }
            // No runtime to finish on: at least nothing of the run keeps running.
            Err(_) => warn!(
                id = self.id,
                "run dropped outside a runtime; its files stay until the next sandbox starts"
            ),
        }
    }
}

#[async_trait]
impl Sandbox for YoukiSandbox {
    async fn run(&self, spec: &RunSpec) -> Result<RunOutput, SandboxError> {
        self.run_with_phases(spec).await.map(|(output, _)| output)
    }

    /// Deletes the cache directory of `key` (renamed away first; see `cache.rs`). Caches nobody
    /// removes are deleted [`YoukiConfig::cache_max_age`] after their last use.
    async fn remove_cache(&self, key: &str) -> Result<bool, SandboxError> {
        let (caches, key) = (Arc::clone(&self.inner.caches), key.to_owned());
        tokio::task::spawn_blocking(move || caches.remove(&key))
            .await
            .map_err(|e| SandboxError::Runtime(format!("removing the build cache failed: {e}")))?
    }

    fn isolation(&self) -> Isolation {
        Isolation::Container
    }
}

impl YoukiSandbox {
    /// [`Sandbox::run`], also returning where the run's time went ([`RunPhases`]), for
    /// benchmarks and for diagnosing a slow run.
    ///
    /// # Errors
    /// As [`Sandbox::run`].
    pub async fn run_with_phases(
        &self,
        spec: &RunSpec,
    ) -> Result<(RunOutput, RunPhases), SandboxError> {
        let marks = Marks::start();
        match tokio::fs::metadata(&spec.workdir).await {
            Ok(meta) if meta.is_dir() => {}
            _ => return Err(SandboxError::NoWorkdir(spec.workdir.clone())),
        }
        let inner = &self.inner;
        let lease = |key: &String| {
            let refused = |reason| SandboxError::Spawn { command: spec.command.clone(), reason };
            inner.caches.lease(key).map_err(refused)
        };
        let cache = spec.cache.as_ref().map(lease).transpose()?;
        if inner.caches.sweep_due() {
            let caches = Arc::clone(&inner.caches);
            drop(tokio::task::spawn_blocking(move || caches.sweep()));
        }
        let mut guard = RunGuard {
            root: inner.root.clone(),
            cgroup_parent: inner.config.cgroup_parent.clone(),
            id: inner.ids.next(),
            prepare: None,
            runner: None,
            cache,
            armed: true,
        };
        let result = self.run_in(spec, &mut guard, marks).await;
        if result.is_err() {
            guard.abandon().await;
        }
        result
    }

    /// The run itself; `guard` owns what must be removed if it ends early.
    async fn run_in(
        &self,
        spec: &RunSpec,
        guard: &mut RunGuard,
        marks: Marks,
    ) -> Result<(RunOutput, RunPhases), SandboxError> {
        let spawn_error =
            |reason: String| SandboxError::Spawn { command: spec.command.clone(), reason };
        let started = Instant::now();
        let inner = &self.inner;
        let cfg = &inner.config;
        let id = guard.id.clone();
        let network = cfg.network_for(spec.network);

        let prepare = Prepare {
            id: id.clone(),
            config: cfg.clone(),
            root: inner.root.clone(),
            binds: inner.binds.clone(),
            rootfs: inner.rootfs.clone(),
            workdir: spec.workdir.clone(),
            command: spec.command.clone(),
            env: spec.env.clone(),
            network,
            caches: Arc::clone(&inner.caches),
            cache: guard.cache.as_ref().map(|lease| lease.name().to_owned()),
        };
        let handle = guard.prepare.insert(tokio::task::spawn_blocking(move || prepare.run(marks)));
        let prepared = handle
            .await
            .map_err(|e| SandboxError::Runtime(format!("preparing the container failed: {e}")))?;
        guard.prepare = None;
        let (bundle, mut marks) = prepared?;

        let (stdout, stderr, pump) =
            Capture::start(spec.output_limit).map_err(spawn_error)?.into_parts();
        let runner_args = RunnerArgs {
            state: inner.root.state.clone(),
            bundle: bundle.clone(),
            id: id.clone(),
            cgroup_parent: cfg.cgroup_parent.clone(),
            deadline: (started + spec.timeout).saturating_duration_since(Instant::now())
                + RUNNER_DEADLINE_GRACE,
            seccomp: cfg.seccomp,
            loopback: network == Network::LoopbackOnly,
        };
        let mut cmd = tokio::process::Command::new(&cfg.runner.program);
        cmd.args(&cfg.runner.args)
            .args(runner_args.to_args())
            .env_clear()
            .stdin(Stdio::null())
            .stdout(Stdio::from(stdout))
            .stderr(Stdio::from(stderr))
            .kill_on_drop(false);
        let spawned = cmd.spawn();
        // The command holds our copies of the pipe's write end; end-of-file needs them closed.
        drop(cmd);
        let runner = guard.runner.insert(spawned.map_err(|e| {
            spawn_error(format!(
                "cannot start the container runner {}: {e}",
                cfg.runner.program.display()
            ))
        })?);
        debug!(id, workdir = %spec.workdir.display(), ?network, "container run started");

        let wait_error = |e: std::io::Error| {
            SandboxError::Runtime(format!("waiting for the container runner failed: {e}"))
        };
        // The timeout counts from the start of the run, workspace copy included.
        let mut timed_out = false;
        let status = match tokio::time::timeout_at(started + spec.timeout, runner.wait()).await {
            Ok(status) => status.map_err(wait_error)?,
            Err(_) => {
                timed_out = true;
                loop {
                    cgroups::kill_all(&cfg.cgroup_parent, &id);
                    if let Ok(status) = tokio::time::timeout(KILL_SWEEP, runner.wait()).await {
                        break status.map_err(wait_error)?;
                    }
                }
            }
        };
        let (outcome, runner_marks) = container::outcome(&bundle);
        marks.extend(runner_marks);
        marks.mark("runner exit");
        guard.runner = None;
        guard.armed = false;
        let (root, parent) = (inner.root.clone(), cfg.cgroup_parent.clone());
        let retire_id = id.clone();
        let retire = move || quietly(|| root::retire_run(&root, &parent, &retire_id));
        let removed = tokio::task::spawn_blocking(retire);
        let (output, truncated) = pump.finish(&spec.command).await?;
        marks.mark("output");
        match removed.await {
            // Off the run's critical path: nothing of the run is left but these files.
            Ok(Some(trash)) => {
                drop(tokio::task::spawn_blocking(move || root::delete_trash(&trash)))
            }
            Ok(None) => {}
            Err(e) => warn!(id, error = %e, "removing the container's leftovers failed"),
        }
        marks.mark("cleanup");

        let (exit_code, hits) = match outcome {
            Some(Outcome::Exited(code, hits)) => (Some(code), hits),
            Some(Outcome::Signaled(_, hits)) => (None, hits),
            // Killed while being created: a timed-out run, not a failure to start.
            Some(Outcome::Failed(_)) if timed_out => (None, cgroups::LimitHits::default()),
            Some(Outcome::Failed(reason)) => return Err(spawn_error(reason)),
            None => {
                return Err(SandboxError::Runtime(format!(
                    "the container runner ended ({status}) without reporting how the run ended"
                )))
            }
        };
        let exit_code = exit_code.filter(|_| !timed_out);
        let mut killed_by = Vec::new();
        if timed_out {
            killed_by.push(limits::describe_timeout(spec.timeout));
        }
        if hits.oom_kills > 0 {
            killed_by.push(limits::describe_memory(cfg.limits.memory_bytes));
        }
        if hits.pids_refused > 0 {
            killed_by.push(limits::describe_pids(cfg.limits.pids));
        }
        let duration = started.elapsed();
        debug!(
            id,
            ?exit_code,
            timed_out,
            truncated,
            killed_by = ?killed_by,
            duration_ms = duration.as_millis() as u64,
            "container run finished"
        );
        let output = RunOutput {
            exit_code,
            timed_out,
            output,
            truncated,
            duration,
            isolation: Isolation::Container,
            killed_by: (!killed_by.is_empty()).then(|| killed_by.join("; ")),
        };
        Ok((output, marks.phases()))
    }
}
