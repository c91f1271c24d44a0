//! [`YoukiConfig`]: what every container of a [`YoukiSandbox`](crate::YoukiSandbox) gets.
//!
//! Everything is explicit (no environment variables are read here): the composition root decides
//! the runtime root, the limits and which host toolchains are visible.

use crate::cache::DEFAULT_CACHE_MAX_AGE;
use crate::limits::Limits;
use cadre_domain::ports::sandbox::NetworkAccess;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Which network a container run gets.
///
/// As [`YoukiConfig::network`] it is the sandbox's floor: `LoopbackOnly` (the default) isolates
/// every run except those whose [`RunSpec`](cadre_domain::ports::sandbox::RunSpec) carries
/// [`NetworkAccess::Granted`]; `Host` gives every run the host's network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Network {
    /// A fresh network namespace whose only interface is `lo`, brought up: tests may listen on and
    /// connect to 127.0.0.1 inside the container, and nothing outside it is reachable (not even
    /// the host's own 127.0.0.1).
    #[default]
    LoopbackOnly,
    /// The host's network namespace, for runs explicitly granted the network (e.g. downloads).
    /// Every other namespace and limit still applies.
    Host,
}

/// What the container's `/` is.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum RootFs {
    /// An empty read-only skeleton with the host paths of [`YoukiConfig::read_only_mounts`]
    /// bind-mounted on it: the host's own toolchains, nothing copied. The default.
    #[default]
    HostBinds,
    /// A directory tree used as `/` (read-only): either an unpacked OCI image bundle, a directory
    /// holding `rootfs/` and `config.json` as `umoci unpack` or `skopeo` + `umoci` write it, or a
    /// plain root tree such as `debootstrap` makes. For a bundle, the `process.env` of its
    /// `config.json` is applied over [`YoukiConfig::env`] (the image knows its own `PATH`); the
    /// rest of that file is not used, since the sandbox decides user, limits and mounts.
    ///
    /// [`YoukiConfig::read_only_mounts`] are still bind-mounted on top (e.g. a cargo registry
    /// cache); [`YoukiConfig::with_root_directory`] clears the host defaults. The sandbox creates
    /// the empty mount points it needs in the tree (`/proc`, `/dev`, `/tmp`, `/workspace` and
    /// those of the read-only mounts) when it starts, so the directory must be writable by the
    /// sandbox then; runs never write it.
    Directory(PathBuf),
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
    /// Network access of every run; a run granted the network ([`NetworkAccess::Granted`]) gets
    /// the host's even when this is `LoopbackOnly`. See [`Network`].
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
    /// The container's root filesystem: host binds (the default) or an image directory.
    pub root: RootFs,
    /// How long a build cache ([`RunSpec::cache`](cadre_domain::ports::sandbox::RunSpec::cache))
    /// may go unused before it is deleted: by the sweep when a sandbox starts, and then at most
    /// hourly while it runs. Default [`DEFAULT_CACHE_MAX_AGE`] (7 days).
    pub cache_max_age: Duration,
}

/// System directories every toolchain needs.
const SYSTEM_DIRS: [&str; 6] = ["/usr", "/bin", "/sbin", "/lib", "/lib64", "/etc"];

/// The `PATH` of a run before toolchains are added.
const SYSTEM_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

impl YoukiConfig {
    /// Defaults: [`Limits::default`], the system directories read-only, loopback-only network,
    /// seccomp on, uid/gid 60000, no user namespace, cgroups under `cadre-sandbox`, build caches
    /// kept 7 days after their last use.
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
            root: RootFs::HostBinds,
            cache_max_age: DEFAULT_CACHE_MAX_AGE,
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

    /// Uses `dir` (an unpacked OCI image bundle or a plain root tree, see [`RootFs::Directory`])
    /// as the container's root instead of the host's directories: the host defaults are dropped
    /// from [`read_only_mounts`](Self::read_only_mounts), and `PATH` becomes the standard one
    /// (an image's own `PATH` still wins).
    #[must_use]
    pub fn with_root_directory(mut self, dir: impl Into<PathBuf>) -> Self {
        self.root = RootFs::Directory(dir.into());
        self.read_only_mounts.retain(|m| !SYSTEM_DIRS.iter().any(|s| m == Path::new(s)));
        self.set_env("PATH", SYSTEM_PATH);
        self
    }

    /// The network one run gets: the host's when the run was granted it or every run is,
    /// loopback only otherwise.
    #[must_use]
    pub fn network_for(&self, access: NetworkAccess) -> Network {
        match (self.network, access) {
            (Network::Host, _) | (_, NetworkAccess::Granted) => Network::Host,
            (Network::LoopbackOnly, NetworkAccess::LoopbackOnly) => Network::LoopbackOnly,
        }
    }

    /// Sets (or replaces) a variable of the base environment.
    pub fn set_env(&mut self, key: &str, value: &str) {
        self.env.retain(|(k, _)| k != key);
        self.env.push((key.to_owned(), value.to_owned()));
    }

    pub(crate) fn env_value(&self, key: &str) -> Option<&str> {
        self.env.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_grant_opens_the_host_network_and_the_config_can_open_it_for_all() {
        let runner = Runner { program: "/bin/runner".into(), args: Vec::new() };
        let mut cfg = YoukiConfig::new("/run/x", runner);
        assert_eq!(cfg.network_for(NetworkAccess::LoopbackOnly), Network::LoopbackOnly);
        assert_eq!(cfg.network_for(NetworkAccess::Granted), Network::Host);
        cfg.network = Network::Host;
        assert_eq!(cfg.network_for(NetworkAccess::LoopbackOnly), Network::Host);
    }

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
