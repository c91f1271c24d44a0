//! [`YoukiConfig`]: what every container of a [`YoukiSandbox`](crate::YoukiSandbox) gets.
//!
//! Everything is explicit (no environment variables are read here): the composition root decides
//! the runtime root, the limits and which host toolchains are visible.

use crate::limits::Limits;
use std::path::{Path, PathBuf};

/// Whether runs may reach the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Network {
    /// A fresh network namespace whose only interface is `lo`, brought up: tests may listen on and
    /// connect to 127.0.0.1 inside the container, and nothing outside it is reachable.
    #[default]
    LoopbackOnly,
    /// The host's network namespace, for runs explicitly granted the network (e.g. downloads).
    /// Every other namespace and limit still applies.
    Host,
}

/// A user namespace for the container: container ids `0..65536` map to host ids
/// `host_id_base..host_id_base + 65536`, so even the container's root is an unprivileged host user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UserNamespace {
    /// The first host uid and gid of the mapped range.
    pub host_id_base: u32,
}

/// How to start the container runner: a program whose `main` calls
/// [`runner_main`](crate::runner_main) with the arguments after `args`.
///
/// The crate ships one as the `cadre-sandbox-runner` binary; a program can instead dispatch a
/// hidden subcommand of its own to `runner_main` (e.g. `cadre __sandbox-runner`) and point this at
/// itself. See the crate docs for why containers are created from a separate process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Runner {
    /// The executable.
    pub program: PathBuf,
    /// Arguments placed before the runner's own (e.g. the hidden subcommand).
    pub args: Vec<String>,
}

/// How a [`YoukiSandbox`](crate::YoukiSandbox) builds its containers.
#[derive(Debug, Clone)]
pub struct YoukiConfig {
    /// A directory the sandbox owns: container state, bundles, workspace copies and the root
    /// skeleton live here, and stale containers found here at start are deleted.
    pub runtime_root: PathBuf,
    /// Memory, process and CPU limits of each run.
    pub limits: Limits,
    /// Host paths (directories or files) bind-mounted read-only at the same path inside. A path
    /// that is a symlink on the host (e.g. `/bin -> usr/bin`) is recreated as the same symlink.
    /// Paths missing on the host are skipped.
    pub read_only_mounts: Vec<PathBuf>,
    /// The environment every run starts from; a run's own variables override these.
    pub env: Vec<(String, String)>,
    /// Network access.
    pub network: Network,
    /// Whether to install the seccomp deny-list (ptrace, mount, kexec, bpf, modules, reboot, swap,
    /// clock setting, namespace creation, …). Off only for measuring its cost.
    pub seccomp: bool,
    /// The uid the command runs as inside the container (never 0).
    pub uid: u32,
    /// The gid the command runs as inside the container.
    pub gid: u32,
    /// A user namespace, or `None` for none (see the crate docs for why it is off by default).
    pub user_namespace: Option<UserNamespace>,
    /// The cgroup directory (under each controller's hierarchy) holding one cgroup per run.
    pub cgroup_parent: String,
    /// The process that creates, waits for and deletes each container.
    pub runner: Runner,
}

/// System directories every toolchain needs.
const SYSTEM_DIRS: [&str; 6] = ["/usr", "/bin", "/sbin", "/lib", "/lib64", "/etc"];

/// The `PATH` of a run before toolchains are added.
const SYSTEM_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

impl YoukiConfig {
    /// Defaults: [`Limits::default`], the system directories read-only, loopback-only network,
    /// seccomp on, uid/gid 60000, no user namespace, cgroups under `cadre-sandbox`.
    #[must_use]
    pub fn new(runtime_root: impl Into<PathBuf>, runner: Runner) -> Self {
        YoukiConfig {
            runtime_root: runtime_root.into(),
            limits: Limits::default(),
            read_only_mounts: SYSTEM_DIRS.iter().map(PathBuf::from).collect(),
            env: vec![
                ("PATH".into(), SYSTEM_PATH.into()),
                ("HOME".into(), "/tmp".into()),
                ("TMPDIR".into(), "/tmp".into()),
                ("LANG".into(), "C.UTF-8".into()),
            ],
            network: Network::LoopbackOnly,
            seccomp: true,
            uid: 60_000,
            gid: 60_000,
            user_namespace: None,
            cgroup_parent: "cadre-sandbox".into(),
            runner,
        }
    }

    /// Adds the toolchains and caches found under `home` read-only (cargo, rustup, pyenv, pip's
    /// cache), points their variables at them and puts their binaries first on `PATH`, so offline
    /// builds inside see what the host sees. Missing ones are skipped.
    #[must_use]
    pub fn with_home_toolchains(mut self, home: &Path) -> Self {
        // (directory under home, variable naming it, its binaries)
        let toolchains: [(&str, &str, &[&str]); 4] = [
            (".cargo", "CARGO_HOME", &["bin"]),
            (".rustup", "RUSTUP_HOME", &[]),
            (".pyenv", "PYENV_ROOT", &["shims", "bin"]),
            (".cache/pip", "PIP_CACHE_DIR", &[]),
        ];
        let mut path_front = Vec::new();
        for (dir, var, bins) in toolchains {
            let dir = home.join(dir);
            if !dir.is_dir() {
                continue;
            }
            for bin in bins {
                path_front.push(dir.join(bin).display().to_string());
            }
            self.set_env(var, &dir.display().to_string());
            self.read_only_mounts.push(dir);
        }
        if !path_front.is_empty() {
            let old = self.env_value("PATH").unwrap_or(SYSTEM_PATH).to_owned();
            path_front.push(old);
            self.set_env("PATH", &path_front.join(":"));
        }
        self
    }

    /// Sets (or replaces) a variable of the base environment.
    pub fn set_env(&mut self, key: &str, value: &str) {
        self.env.retain(|(k, _)| k != key);
        self.env.push((key.to_owned(), value.to_owned()));
    }

    fn env_value(&self, key: &str) -> Option<&str> {
        self.env.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn home_toolchains_are_mounted_and_first_on_path() {
        let home = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(home.path().join(".cargo/bin")).unwrap();
        std::fs::create_dir_all(home.path().join(".rustup")).unwrap();
        let runner = Runner { program: "/bin/runner".into(), args: Vec::new() };
        let cfg = YoukiConfig::new("/run/x", runner).with_home_toolchains(home.path());
        let cargo = home.path().join(".cargo");
        assert!(cfg.read_only_mounts.contains(&cargo));
        assert!(cfg.read_only_mounts.contains(&home.path().join(".rustup")));
        assert!(!cfg.read_only_mounts.contains(&home.path().join(".pyenv")));
        let path = cfg.env_value("PATH").unwrap();
        assert_eq!(path, format!("{}/bin:{SYSTEM_PATH}", cargo.display()));
        assert_eq!(cfg.env_value("CARGO_HOME").unwrap(), cargo.display().to_string());
        assert_eq!(cfg.env.iter().filter(|(k, _)| k == "PATH").count(), 1);
    }
}
