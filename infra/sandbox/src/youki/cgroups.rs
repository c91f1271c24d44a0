//! The run's cgroup as the host sees it: where it is, which limits it hit, and removing it when
//! libcontainer could not.
//!
//! libcontainer creates and removes the cgroup; this module only reads its event counters before
//! removal (so a report can say "memory limit 512 MiB") and sweeps cgroups left by a crashed runner.

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tracing::{debug, warn};

const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// The cgroup path of a run, relative to every hierarchy's root (`linux.cgroupsPath`).
pub(crate) fn path(parent: &str, id: &str) -> String {
    format!("/{parent}/{id}")
}

/// The limits a run ran into, from the kernel's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct LimitHits {
    /// Processes the OOM killer ended because of the memory limit.
    pub(crate) oom_kills: u64,
    /// Forks refused because of the pids limit.
    pub(crate) pids_refused: u64,
}

/// Reads the counters of the cgroup `/{parent}/{id}` (cgroup v1 or v2). Missing files count as 0.
pub(crate) fn limit_hits(parent: &str, id: &str) -> LimitHits {
    let rel = format!("{parent}/{id}");
    let root = Path::new(CGROUP_ROOT);
    let counter = |file: PathBuf, key: &str| -> Option<u64> {
        let text = std::fs::read_to_string(file).ok()?;
        text.lines().find_map(|l| {
            let (k, v) = l.split_once(' ')?;
            (k == key).then(|| v.trim().parse().ok()).flatten()
        })
    };
    let oom_kills = counter(root.join("memory").join(&rel).join("memory.oom_control"), "oom_kill")
        .or_else(|| counter(root.join(&rel).join("memory.events"), "oom_kill"))
        .unwrap_or(0);
    let pids_refused = counter(root.join("pids").join(&rel).join("pids.events"), "max")
        .or_else(|| counter(root.join(&rel).join("pids.events"), "max"))
        .unwrap_or(0);
    LimitHits { oom_kills, pids_refused }
}

/// Every directory where a cgroup `/{parent}/…` may live: one per v1 hierarchy, plus the v2 root.
fn parent_dirs(parent: &str) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Ok(entries) = std::fs::read_dir(CGROUP_ROOT) {
        for entry in entries.flatten() {
            let dir = entry.path().join(parent);
            if dir.is_dir() {
                dirs.push(dir);
            }
        }
    }
    let unified = Path::new(CGROUP_ROOT).join(parent);
    if unified.is_dir() {
        dirs.push(unified);
    }
    dirs
}

/// The run ids that have a cgroup under `parent` in any hierarchy.
pub(crate) fn ids_under(parent: &str) -> Vec<String> {
    let mut ids: Vec<String> = parent_dirs(parent)
        .iter()
        .filter_map(|d| std::fs::read_dir(d).ok())
        .flat_map(|entries| entries.flatten())
        .filter(|e| e.path().is_dir())
        .filter_map(|e| e.file_name().to_str().map(str::to_owned))
        .collect();
    ids.sort();
    ids.dedup();
    ids
}

/// Gives the parent cgroup of every run the CPU weight `shares` in each cgroup v1 hierarchy with
/// the `cpu` controller, creating it there if needed. The parent competes with the host's own
/// processes: at the default weight all runs together weigh as one host process, however many
/// cores they may use. Cgroup v2 keeps its default weight (its conversion from shares would
/// lower it). Best effort: a host without the controller is only logged.
pub(crate) fn weigh_parent(parent: &str, shares: u64) {
    let Ok(entries) = std::fs::read_dir(CGROUP_ROOT) else { return };
    for entry in entries.flatten() {
        let hierarchy = entry.path();
        if !hierarchy.join("cpu.shares").is_file() {
            continue;
        }
        let dir = hierarchy.join(parent);
        let written = std::fs::create_dir_all(&dir)
            .and_then(|()| std::fs::write(dir.join("cpu.shares"), shares.to_string()));
        if let Err(e) = written {
            debug!(cgroup = %dir.display(), error = %e, "could not set the sandbox's cpu weight");
        }
    }
}

/// Sends `SIGKILL` to every process in the cgroup `/{parent}/{id}`, in every hierarchy.
pub(crate) fn kill_all(parent: &str, id: &str) {
    for dir in parent_dirs(parent) {
        let procs = std::fs::read_to_string(dir.join(id).join("cgroup.procs")).unwrap_or_default();
        for pid in procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
    }
}

/// Kills every process in the cgroup `/{parent}/{id}` and removes it from every hierarchy.
/// Used only for leftovers libcontainer could not delete.
pub(crate) fn sweep(parent: &str, id: &str) {
    for dir in parent_dirs(parent) {
        let cgroup = dir.join(id);
        if !cgroup.is_dir() {
            continue;
        }
        for attempt in 0..20 {
            let procs = std::fs::read_to_string(cgroup.join("cgroup.procs")).unwrap_or_default();
            for pid in procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
            match std::fs::remove_dir(&cgroup) {
                Ok(()) => break,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
                // Busy while killed processes are still exiting.
                Err(e) if attempt == 19 => {
                    warn!(cgroup = %cgroup.display(), error = %e, "could not remove a stale cgroup");
                }
                Err(_) => std::thread::sleep(Duration::from_millis(10)),
            }
        }
    }
}
