//! The runtime root a sandbox owns, the ids of its runs, and deleting what a dead runner left.
//!
//! Layout: `state/<id>` (libcontainer's container state), `runs/<id>` (bundle and workspace
//! copy), `trash/<id>` (a finished run's directory, moved out of `runs/` in one rename and deleted
//! off the run's critical path: deleting a workspace copy file by file took 6–11 ms per run on a
//! busy disk), `rootfs/` (the shared read-only skeleton), `caches/<name>` (build caches kept across
//! runs, see `cache.rs`; never touched by the stale-run cleanup). A run id names its owner, the
//! runner process, by pid *and start time*, so a later runner can tell a live sibling's container
//! (kept) from a dead runner's (deleted), even after the pid was reused.

use super::{cgroups, quietly};
use libcontainer::container::Container;
use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use tracing::{info, warn};

/// Prefix of every run id (container id and cgroup name).
const PREFIX: &str = "cadre";

/// The directories under a runtime root.
#[derive(Debug, Clone)]
pub(crate) struct RuntimeRoot {
    pub(crate) state: PathBuf,
    pub(crate) runs: PathBuf,
    pub(crate) trash: PathBuf,
    pub(crate) rootfs: PathBuf,
    pub(crate) caches: PathBuf,
}

impl RuntimeRoot {
    /// Creates (or reuses) the layout under `root`.
    ///
    /// # Errors
    /// When a directory cannot be created.
    pub(crate) fn create(root: &Path) -> io::Result<RuntimeRoot> {
        // Traversable but not listable by others: with a user namespace the container's setup runs
        // as an unprivileged host uid and must reach its bundle.
        std::fs::DirBuilder::new().recursive(true).mode(0o711).create(root)?;
        let layout = RuntimeRoot {
            state: root.join("state"),
            runs: root.join("runs"),
            trash: root.join("trash"),
            rootfs: root.join("rootfs"),
            caches: root.join("caches"),
        };
        for dir in [&layout.state, &layout.runs, &layout.trash, &layout.caches] {
            std::fs::DirBuilder::new().recursive(true).mode(0o711).create(dir)?;
        }
        Ok(layout)
    }
}

/// The process that owns a run: a pid and that process's start time (clock ticks since boot).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Owner {
    pid: u32,
    start: u64,
}

impl Owner {
    /// This process.
    pub(crate) fn current() -> io::Result<Owner> {
        let pid = std::process::id();
        let start = start_time(pid)?.ok_or_else(|| {
            io::Error::new(io::ErrorKind::NotFound, "cannot read this process's start time")
        })?;
        Ok(Owner { pid, start })
    }

    /// Whether the owner still runs (the same process, not a reuse of its pid).
    fn is_alive(self) -> bool {
        matches!(start_time(self.pid), Ok(Some(start)) if start == self.start)
    }
}

/// Field 22 of `/proc/<pid>/stat`; `None` when the process does not exist.
fn start_time(pid: u32) -> io::Result<Option<u64>> {
    let stat = match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    // Fields after the command name, which is parenthesised and may contain spaces.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    // `rest` starts at field 3 (state), so field 22 is its 20th.
    Ok(rest.split_whitespace().nth(19).and_then(|f| f.parse().ok()))
}

/// Hands out run ids: `cadre-<pid>-<start>-<n>`.
#[derive(Debug)]
pub(crate) struct Ids {
    owner: Owner,
    next: AtomicU64,
}

impl Ids {
    pub(crate) fn new(owner: Owner) -> Ids {
        Ids { owner, next: AtomicU64::new(0) }
    }

    pub(crate) fn next(&self) -> String {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        format!("{PREFIX}-{}-{}-{n}", self.owner.pid, self.owner.start)
    }
}

/// The owner named in a run id, if it is one of ours.
fn owner_of(id: &str) -> Option<Owner> {
    let mut parts = id.strip_prefix(PREFIX)?.strip_prefix('-')?.split('-');
    let pid = parts.next()?.parse().ok()?;
    let start = parts.next()?.parse().ok()?;
    parts.next()?.parse::<u64>().ok()?;
    Some(Owner { pid, start })
}

/// Deletes one run completely: its container (killing what is left in it), its cgroup in every
/// hierarchy, its state and its run directory. Safe to call on a half-created run.
pub(crate) fn remove_run(root: &RuntimeRoot, cgroup_parent: &str, id: &str) {
    if let Some(trash) = retire_run(root, cgroup_parent, id) {
        delete_trash(&trash);
    }
}

/// [`remove_run`] but for the run directory, which is only moved to `trash/` (one rename) and
/// returned for [`delete_trash`] to delete later; `None` when there was nothing to move (or the
/// move failed and it was deleted here). Everything that runs or holds a cgroup is gone on return.
pub(crate) fn retire_run(root: &RuntimeRoot, cgroup_parent: &str, id: &str) -> Option<PathBuf> {
    let state = root.state.join(id);
    if state.exists() {
        let deleted = quietly(|| Container::load(state.clone()).and_then(|mut c| c.delete(true)));
        if let Err(e) = deleted {
            warn!(id, error = %e, "libcontainer could not delete the container; removing by hand");
            if let Err(e) = std::fs::remove_dir_all(&state) {
                warn!(id, error = %e, "could not remove the container state");
            }
        }
    }
    cgroups::sweep(cgroup_parent, id);
    let run = root.runs.join(id);
    let trash = root.trash.join(id);
    match std::fs::rename(&run, &trash) {
        Ok(()) => return Some(trash),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return None,
        Err(e) => warn!(id, error = %e, "could not move the run directory to the trash"),
    }
    if let Err(e) = std::fs::remove_dir_all(&run) {
        if e.kind() != io::ErrorKind::NotFound {
            warn!(id, error = %e, path = %run.display(), "could not remove the run directory");
        }
    }
    None
}

/// Deletes a retired run directory (see [`retire_run`]).
pub(crate) fn delete_trash(trash: &Path) {
    if let Err(e) = std::fs::remove_dir_all(trash) {
        if e.kind() != io::ErrorKind::NotFound {
            let path = trash.display();
            warn!(error = %e, path = %path, "could not delete a finished run's directory");
        }
    }
}

/// Deletes every run under `root` (and every cgroup under `cgroup_parent`) whose owner is dead.
/// Returns how many were deleted.
pub(crate) fn clean_stale(root: &RuntimeRoot, cgroup_parent: &str) -> usize {
    let mut ids = Vec::new();
    for dir in [&root.state, &root.runs] {
        if let Ok(entries) = std::fs::read_dir(dir) {
            ids.extend(entries.flatten().filter_map(|e| e.file_name().to_str().map(str::to_owned)));
        }
    }
    ids.extend(cgroups::ids_under(cgroup_parent));
    // Retired run directories whose deletion a stopped sandbox did not finish.
    if let Ok(entries) = std::fs::read_dir(&root.trash) {
        for entry in entries.flatten() {
            if owner_of(&entry.file_name().to_string_lossy()).is_some_and(|o| !o.is_alive()) {
                delete_trash(&entry.path());
            }
        }
    }
    ids.sort();
    ids.dedup();
    let mut removed = 0;
    for id in ids {
        match owner_of(&id) {
            Some(owner) if !owner.is_alive() => {
                remove_run(root, cgroup_parent, &id);
                removed += 1;
            }
            Some(_) => {}
            None => warn!(id, "unknown entry in the sandbox runtime root; left alone"),
        }
    }
    if removed > 0 {
        info!(removed, "deleted containers left by an interrupted runner");
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_name_a_live_owner() {
        let me = Owner::current().unwrap();
        assert!(me.is_alive());
        let ids = Ids::new(me);
        let (a, b) = (ids.next(), ids.next());
        assert_ne!(a, b);
        assert_eq!(owner_of(&a), Some(me));
        // Same pid, other start time: a reused pid, so the owner is dead.
        assert!(!Owner { start: me.start + 1, ..me }.is_alive());
        assert_eq!(owner_of("other-1-2-3"), None);
        assert_eq!(owner_of("cadre-1-2"), None);
    }
}
