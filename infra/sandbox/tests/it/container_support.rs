//! Helpers for the container tests: a sandbox on a private runtime root and cgroup parent, and
//! probes of the host.
//!
//! These tests need root, namespaces and cgroups. On a host without them they fail with the
//! sandbox's own explanation of what is missing; they never skip.

use crate::support::spec;
use cadre_domain::ports::sandbox::{RunOutput, RunSpec, Sandbox};
use cadre_sandbox::{Limits, Runner, YoukiConfig, YoukiSandbox};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The limits the escape tests run under: small, so hitting them is quick.
pub(crate) const TEST_LIMITS: Limits =
    Limits { memory_bytes: 128 << 20, pids: 64, cpu_millicores: 1000 };

/// A sandbox with its own runtime root and cgroup parent, removed when dropped.
pub(crate) struct TestSandbox {
    pub(crate) sandbox: YoukiSandbox,
    pub(crate) dir: tempfile::TempDir,
    pub(crate) cgroup_parent: String,
}

/// The runner binary this package builds.
pub(crate) fn runner() -> Runner {
    Runner { program: env!("CARGO_BIN_EXE_cadre-sandbox-runner").into(), args: Vec::new() }
}

/// A config whose runtime root is under `dir` and whose cgroups are under a parent unique to it,
/// so a test can check that its own runs left no cgroup behind.
pub(crate) fn config(dir: &Path) -> YoukiConfig {
    let mut cfg = YoukiConfig::new(dir.join("runtime"), runner());
    cfg.limits = TEST_LIMITS;
    let unique = dir.file_name().and_then(|n| n.to_str()).unwrap_or("x").replace('.', "");
    cfg.cgroup_parent = format!("cadre-test-{unique}");
    cfg
}

impl TestSandbox {
    pub(crate) fn new() -> TestSandbox {
        Self::with(|_| {})
    }

    pub(crate) fn with(change: impl FnOnce(&mut YoukiConfig)) -> TestSandbox {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = config(dir.path());
        change(&mut cfg);
        let cgroup_parent = cfg.cgroup_parent.clone();
        TestSandbox { sandbox: new_sandbox(cfg), dir, cgroup_parent }
    }

    pub(crate) async fn run(&self, spec: &RunSpec) -> RunOutput {
        self.sandbox.run(spec).await.unwrap()
    }

    /// The cgroups (in any hierarchy) left under this sandbox's parent.
    pub(crate) fn cgroups_left(&self) -> Vec<PathBuf> {
        cgroup_children(&self.cgroup_parent)
    }

    /// The container state and run directories left in the runtime root.
    pub(crate) fn runs_left(&self) -> Vec<PathBuf> {
        let runtime = self.dir.path().join("runtime");
        ["state", "runs"]
            .iter()
            .flat_map(|sub| {
                std::fs::read_dir(runtime.join(sub)).unwrap().flatten().map(|e| e.path())
            })
            .collect()
    }

    /// Waits (boundedly) for a cancelled run's background cleanup to finish.
    pub(crate) async fn wait_until_clean(&self) {
        for _ in 0..500 {
            if self.cgroups_left().is_empty() && self.runs_left().is_empty() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// After any run, however it ended: nothing left, and the next run works.
    pub(crate) async fn assert_clean_and_usable(&self, workdir: &Path) {
        assert_eq!(self.cgroups_left(), Vec::<PathBuf>::new(), "cgroups left behind");
        assert_eq!(self.runs_left(), Vec::<PathBuf>::new(), "container state or runs left behind");
        let next = self.run(&spec(workdir, "echo next")).await;
        assert_eq!((next.exit_code, next.output.as_str()), (Some(0), "next\n"), "{next:?}");
        assert_eq!(next.killed_by, None);
    }
}

impl Drop for TestSandbox {
    fn drop(&mut self) {
        remove_cgroup_parent(&self.cgroup_parent);
    }
}

/// Removes a test's cgroup parent from every hierarchy. A just-removed child cgroup lingers for a
/// moment while the kernel takes it offline, during which the parent is busy: retry briefly.
pub(crate) fn remove_cgroup_parent(parent: &str) {
    for hierarchy in cgroup_hierarchies() {
        let dir = hierarchy.join(parent);
        for _ in 0..100 {
            match std::fs::remove_dir(&dir) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    std::thread::sleep(Duration::from_millis(10));
                }
                _ => break,
            }
        }
    }
}

pub(crate) fn new_sandbox(cfg: YoukiConfig) -> YoukiSandbox {
    YoukiSandbox::new(cfg).unwrap_or_else(|e| {
        panic!("the container sandbox cannot run on this host (these tests need root, namespaces and cgroups): {e}")
    })
}

fn cgroup_hierarchies() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/sys/fs/cgroup")
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.push(PathBuf::from("/sys/fs/cgroup"));
    dirs
}

pub(crate) fn cgroup_children(parent: &str) -> Vec<PathBuf> {
    cgroup_hierarchies()
        .into_iter()
        .filter_map(|h| std::fs::read_dir(h.join(parent)).ok())
        .flat_map(|entries| entries.flatten().map(|e| e.path()).filter(|p| p.is_dir()))
        .collect()
}

/// The pids of host processes whose command line contains `marker`.
pub(crate) fn host_processes_with(marker: &str) -> Vec<u32> {
    let me = std::process::id();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| pid != me)
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains(marker))
        })
        .filter(|&pid| crate::support::alive(pid))
        .collect()
}

/// A value unlikely to appear anywhere else on the host.
pub(crate) fn marker(what: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let unique = dir.path().file_name().unwrap().to_str().unwrap().replace('.', "");
    format!("cadre{what}{unique}")
}

/// A spec with a timeout.
pub(crate) fn timed(workdir: &Path, command: &str, timeout: Duration) -> RunSpec {
    let mut s = spec(workdir, command);
    s.timeout = timeout;
    s
}

/// A snapshot of a directory tree: every path with its content (files) or target (symlinks).
pub(crate) fn snapshot(dir: &Path) -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            let t = e.file_type().unwrap();
            let rel = p.strip_prefix(dir).unwrap().to_path_buf();
            if t.is_dir() {
                out.push((rel, "<dir>".into()));
                stack.push(p);
            } else if t.is_symlink() {
                out.push((rel, format!("-> {}", std::fs::read_link(&p).unwrap().display())));
            } else {
                out.push((rel, String::from_utf8_lossy(&std::fs::read(&p).unwrap()).into()));
            }
        }
    }
    out.sort();
    out
}
