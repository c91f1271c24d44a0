//! The OCI runtime spec of one run: namespaces, limits, mounts, user and capabilities.
//!
//! Everything a run may touch is decided here, so this is the file to read when asking "can a
//! test do X". Written as a bundle `config.json`, the form libcontainer loads.

use super::config::{Network, YoukiConfig};
use super::rootfs::{Bind, CACHE, WORKSPACE};
use libcontainer::oci_spec::runtime::{
    get_default_maskedpaths, get_default_readonly_paths, LinuxBuilder, LinuxCapabilitiesBuilder,
    LinuxCpuBuilder, LinuxIdMappingBuilder, LinuxMemoryBuilder, LinuxNamespaceBuilder,
    LinuxNamespaceType, LinuxPidsBuilder, LinuxResourcesBuilder, Mount, MountBuilder,
    ProcessBuilder, RootBuilder, Spec, SpecBuilder, UserBuilder,
};
use std::collections::HashSet;
use std::path::Path;

/// CFS period the CPU quota is expressed in (the kernel default).
const CPU_PERIOD_US: u64 = 100_000;
/// Size of the private `/dev/shm` (Python's multiprocessing needs one).
const SHM_BYTES: u64 = 64 << 20;

/// What a run needs beyond the sandbox config.
pub(crate) struct RunParts<'a> {
    pub(crate) command: &'a str,
    pub(crate) env: &'a [(String, String)],
    pub(crate) rootfs: &'a Path,
    pub(crate) binds: &'a [Bind],
    pub(crate) workspace: &'a Path,
    /// The host directory of the run's build cache, mounted read-write at [`CACHE`].
    pub(crate) cache: Option<&'a Path>,
    pub(crate) cgroup_path: String,
    /// Loopback only (a new network namespace) or the host's network (none).
    pub(crate) network: Network,
}

/// Builds the spec.
///
/// # Errors
/// A variable that the OS cannot carry (a NUL byte, or `=` in a name), or an invalid value.
pub(crate) fn build(cfg: &YoukiConfig, run: &RunParts<'_>) -> Result<Spec, String> {
    // The cache's variables over the base (the host's pip cache, say, is read-only inside), and
    // the run's own over both.
    let cache_env = match run.cache {
        Some(_) => crate::cache::env(Path::new(CACHE)),
        None => Vec::new(),
    };
    let env = environment(&[&cfg.env, &cache_env, run.env])?;
    let no_caps = LinuxCapabilitiesBuilder::default()
        .bounding(HashSet::new())
        .effective(HashSet::new())
        .inheritable(HashSet::new())
        .permitted(HashSet::new())
        .ambient(HashSet::new())
        .build()
        .map_err(err)?;
    let process = ProcessBuilder::default()
        .terminal(false)
        .user(UserBuilder::default().uid(cfg.uid).gid(cfg.gid).build().map_err(err)?)
        .args(vec!["/bin/sh".to_owned(), "-c".to_owned(), run.command.to_owned()])
        .env(env)
        .cwd(WORKSPACE)
        .capabilities(no_caps)
        .no_new_privileges(true)
        // No rlimits: the runner's own are inherited (raising one past the host's hard limit
        // fails the start with EPERM); the cgroup limits are what bound a run.
        .rlimits(Vec::new())
        .build()
        .map_err(err)?;

    let mut namespaces = vec![
        LinuxNamespaceType::Pid,
        LinuxNamespaceType::Mount,
        LinuxNamespaceType::Ipc,
        LinuxNamespaceType::Uts,
        LinuxNamespaceType::Cgroup,
    ];
    if run.network == Network::LoopbackOnly {
        namespaces.push(LinuxNamespaceType::Network);
    }
    if cfg.user_namespace.is_some() {
        namespaces.push(LinuxNamespaceType::User);
    }
    let namespaces = namespaces
        .into_iter()
        .map(|typ| LinuxNamespaceBuilder::default().typ(typ).build())
        .collect::<Result<Vec<_>, _>>()
        .map_err(err)?;

    let limits = &cfg.limits;
    let memory = i64::try_from(limits.memory_bytes).map_err(err)?;
    let resources = LinuxResourcesBuilder::default()
        // Swap equal to the limit: memory + swap may not exceed it, so no swapping past it.
        .memory(LinuxMemoryBuilder::default().limit(memory).swap(memory).build().map_err(err)?)
        .pids(LinuxPidsBuilder::default().limit(i64::from(limits.pids)).build().map_err(err)?)
        .cpu(
            LinuxCpuBuilder::default()
                .shares(crate::limits::cpu_shares(limits.cpu_millicores))
                .period(CPU_PERIOD_US)
                .quota(i64::from(limits.cpu_millicores) * CPU_PERIOD_US as i64 / 1000)
                .build()
                .map_err(err)?,
        )
        .build()
        .map_err(err)?;

    let mut linux = LinuxBuilder::default()
        .namespaces(namespaces)
        .resources(resources)
        .cgroups_path(run.cgroup_path.clone())
        .masked_paths(get_default_maskedpaths())
        .readonly_paths(get_default_readonly_paths());
    if let Some(userns) = cfg.user_namespace {
        let map = || {
            LinuxIdMappingBuilder::default()
                .container_id(0u32)
                .host_id(userns.host_id_base)
                .size(65_536u32)
                .build()
        };
        linux =
            linux.uid_mappings(vec![map().map_err(err)?]).gid_mappings(vec![map().map_err(err)?]);
    }

    SpecBuilder::default()
        .version("1.0.2")
        .hostname("sandbox")
        .root(RootBuilder::default().path(run.rootfs).readonly(true).build().map_err(err)?)
        .process(process)
        .mounts(mounts(run, limits.memory_bytes)?)
        .linux(linux.build().map_err(err)?)
        .build()
        .map_err(err)
}

/// `/proc`, a minimal `/dev`, a private `/tmp`, the read-only binds, the workspace and the cache.
fn mounts(run: &RunParts<'_>, tmp_bytes: u64) -> Result<Vec<Mount>, String> {
    let mount = |dest: &str, typ: &str, source: &str, options: &[&str]| {
        MountBuilder::default()
            .destination(dest)
            .typ(typ)
            .source(source)
            .options(options.iter().map(|o| (*o).to_owned()).collect::<Vec<_>>())
            .build()
            .map_err(err)
    };
    let shm = format!("size={SHM_BYTES}");
    // tmpfs pages are charged to the run's memory cgroup, so this size is a ceiling, not a grant.
    let tmp = format!("size={tmp_bytes}");
    let mut mounts = vec![
        mount("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"])?,
        mount("/dev", "tmpfs", "tmpfs", &["nosuid", "strictatime", "mode=755", "size=65536k"])?,
        mount(
            "/dev/pts",
            "devpts",
            "devpts",
            &["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"],
        )?,
        mount("/dev/shm", "tmpfs", "shm", &["nosuid", "noexec", "nodev", "mode=1777", &shm])?,
        mount("/tmp", "tmpfs", "tmpfs", &["nosuid", "nodev", "mode=1777", &tmp])?,
    ];
    for bind in run.binds {
        let path = bind
            .path
            .to_str()
            .ok_or_else(|| format!("read-only mount {} is not valid UTF-8", bind.path.display()))?;
        mounts.push(mount(path, "bind", path, &["rbind", "ro", "nosuid", "nodev"])?);
    }
    let workspace = run
        .workspace
        .to_str()
        .ok_or_else(|| format!("workspace copy {} is not valid UTF-8", run.workspace.display()))?;
    mounts.push(mount(WORKSPACE, "bind", workspace, &["rbind", "rw", "nosuid", "nodev"])?);
    if let Some(cache) = run.cache {
        let cache = cache
            .to_str()
            .ok_or_else(|| format!("build cache {} is not valid UTF-8", cache.display()))?;
        mounts.push(mount(CACHE, "bind", cache, &["rbind", "rw", "nosuid", "nodev"])?);
    }
    Ok(mounts)
}

/// `KEY=value` pairs: the layers in order, a later layer's value replacing an earlier one's.
fn environment(layers: &[&[(String, String)]]) -> Result<Vec<String>, String> {
    let mut env: Vec<(&str, &str)> = Vec::new();
    for (k, v) in layers.iter().flat_map(|layer| layer.iter()) {
        if k.is_empty() || k.contains(['=', '\0']) || v.contains('\0') {
            return Err(format!("environment variable {k:?} cannot be passed to a process"));
        }
        env.retain(|(old, _)| old != k);
        env.push((k, v));
    }
    Ok(env.into_iter().map(|(k, v)| format!("{k}={v}")).collect())
}

fn err(e: impl std::fmt::Display) -> String {
    format!("invalid container spec: {e}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::youki::config::Runner;
    use std::path::PathBuf;

    fn config() -> YoukiConfig {
        YoukiConfig::new("/r", Runner { program: "/bin/runner".into(), args: Vec::new() })
    }

    fn spec(cfg: &YoukiConfig, env: &[(String, String)]) -> Result<Spec, String> {
        spec_with(cfg, env, cfg.network)
    }

    fn spec_with(
        cfg: &YoukiConfig,
        env: &[(String, String)],
        network: Network,
    ) -> Result<Spec, String> {
        spec_full(cfg, env, network, None)
    }

    fn spec_full(
        cfg: &YoukiConfig,
        env: &[(String, String)],
        network: Network,
        cache: Option<&Path>,
    ) -> Result<Spec, String> {
        let binds = [Bind { path: PathBuf::from("/usr") }];
        build(
            cfg,
            &RunParts {
                command: "echo hi",
                env,
                rootfs: Path::new("/r/rootfs"),
                binds: &binds,
                workspace: Path::new("/r/runs/x/work"),
                cache,
                cgroup_path: "/cadre-sandbox/x".into(),
                network,
            },
        )
    }

    fn env_of(spec: &Spec) -> Vec<String> {
        spec.process().as_ref().unwrap().env().clone().unwrap()
    }

    #[test]
    fn a_cache_is_mounted_writable_and_build_outputs_point_at_it() {
        let mut cfg = config();
        cfg.set_env("PIP_CACHE_DIR", "/root/.cache/pip");
        let run_env = [("XDG_CACHE_HOME".to_owned(), "/workspace/.xdg".to_owned())];
        let cached =
            spec_full(&cfg, &run_env, Network::LoopbackOnly, Some(Path::new("/r/caches/k/data")))
                .unwrap();
        let mounts = cached.mounts().as_ref().unwrap();
        let cache = mounts.iter().find(|m| m.destination() == Path::new("/cache")).unwrap();
        assert_eq!(cache.source().as_deref(), Some(Path::new("/r/caches/k/data")));
        let options = cache.options().as_ref().unwrap();
        assert!(options.contains(&"rw".to_owned()) && options.contains(&"nosuid".to_owned()));
        let env = env_of(&cached);
        assert!(env.contains(&"CARGO_TARGET_DIR=/cache/cargo-target".to_owned()), "{env:?}");
        assert!(env.contains(&"GOCACHE=/cache/go-build".to_owned()), "{env:?}");
        // The cache's value over the base's, the run's over the cache's.
        assert!(env.contains(&"PIP_CACHE_DIR=/cache/pip".to_owned()), "{env:?}");
        assert!(env.contains(&"XDG_CACHE_HOME=/workspace/.xdg".to_owned()), "{env:?}");
        assert_eq!(env.iter().filter(|e| e.starts_with("PIP_CACHE_DIR=")).count(), 1);
        // Without a cache: no mount, no variables.
        let plain = spec(&config(), &[]).unwrap();
        let mounts = plain.mounts().as_ref().unwrap();
        assert!(!mounts.iter().any(|m| m.destination() == Path::new("/cache")));
        assert!(!env_of(&plain).iter().any(|e| e.starts_with("CARGO_TARGET_DIR=")));
    }

    #[test]
    fn locked_down_by_default() {
        let cfg = config();
        let spec = spec(&cfg, &[("A".into(), "1".into()), ("HOME".into(), "/w".into())]).unwrap();
        let process = spec.process().as_ref().unwrap();
        assert_eq!(process.user().uid(), 60_000);
        assert_eq!(process.no_new_privileges(), Some(true));
        let caps = process.capabilities().as_ref().unwrap();
        assert!(caps.bounding().as_ref().unwrap().is_empty());
        assert!(caps.permitted().as_ref().unwrap().is_empty());
        let env = process.env().as_ref().unwrap();
        assert!(env.contains(&"A=1".to_owned()));
        assert!(env.contains(&"HOME=/w".to_owned()), "the run's value wins: {env:?}");
        assert_eq!(env.iter().filter(|e| e.starts_with("HOME=")).count(), 1);
        let linux = spec.linux().as_ref().unwrap();
        let ns: Vec<_> = linux.namespaces().as_ref().unwrap().iter().map(|n| n.typ()).collect();
        assert!(ns.contains(&LinuxNamespaceType::Network));
        assert!(ns.contains(&LinuxNamespaceType::Pid));
        let res = linux.resources().as_ref().unwrap();
        assert_eq!(res.pids().unwrap().limit(), 512);
        assert_eq!(res.memory().unwrap().limit(), Some(2 << 30));
        assert_eq!(res.cpu().as_ref().unwrap().quota(), Some(200_000));
        assert_eq!(res.cpu().as_ref().unwrap().shares(), Some(2048));
        assert!(spec.root().as_ref().unwrap().readonly().unwrap());
        let mounts = spec.mounts().as_ref().unwrap();
        let usr = mounts.iter().find(|m| m.destination() == Path::new("/usr")).unwrap();
        assert!(usr.options().as_ref().unwrap().contains(&"ro".to_owned()));
    }

    #[test]
    fn host_network_drops_only_the_network_namespace() {
        let spec = spec_with(&config(), &[], Network::Host).unwrap();
        let linux = spec.linux().as_ref().unwrap();
        let ns: Vec<_> = linux.namespaces().as_ref().unwrap().iter().map(|n| n.typ()).collect();
        assert!(!ns.contains(&LinuxNamespaceType::Network));
        assert!(ns.contains(&LinuxNamespaceType::Mount));
    }

    #[test]
    fn unpassable_variables_are_refused() {
        let cfg = config();
        assert!(spec(&cfg, &[("A".into(), "a\0b".into())]).is_err());
        assert!(spec(&cfg, &[("A=B".into(), "x".into())]).is_err());
        assert!(spec(&cfg, &[(String::new(), "x".into())]).is_err());
    }
}
