//! Build caches: writable directories that outlive a run and are handed to later runs with the
//! same key ([`RunSpec::cache`](cadre_domain::ports::sandbox::RunSpec::cache)), so the second
//! round of a task's `cargo test` reuses the first round's build instead of starting cold.
//!
//! Layout under a sandbox's cache root: `<root>/<name>/` is the *entry*, owned by the sandbox,
//! whose modification time records when the cache was last used; `<root>/<name>/data/` is the
//! cache itself, owned by the user the command runs as. Only `data/` is ever shown to a run, so a
//! run can neither move the last-used time (say, into the future, to outlive every sweep) nor
//! reach another key's cache.
//!
//! Names: a key becomes a directory name by an injective escape (ASCII letters, digits and `-`
//! kept, every other byte written `_xx`), so distinct keys never share a cache, and no key can
//! name `..`, a path with `/`, or a hidden file.
//!
//! Deleting: [`Caches::remove`] for one key, and a sweep of every cache unused for longer than a
//! maximum age. Both first rename the entry to `.trash-…` (atomic: a later run is never handed a
//! half-deleted cache) and then delete it without following symlinks, so a link a run planted in
//! its cache cannot make the sandbox delete anything outside it. A cache leased by a run of this
//! sandbox is never deleted; across processes sharing a root, a cache in use was stamped when its
//! run started, so only a run longer than the maximum age could lose its cache to another
//! process's sweep.

use cadre_domain::ports::sandbox::SandboxError;
use std::collections::HashMap;
use std::io;
use std::os::unix::fs::{lchown, DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};
use tracing::{debug, info, warn};

/// How long a cache may go unused before a sweep deletes it, unless configured otherwise.
pub const DEFAULT_CACHE_MAX_AGE: Duration = Duration::from_secs(7 * 24 * 3600);

/// The longest key accepted: escaped, it must still fit a file name (255 bytes).
const MAX_KEY_BYTES: usize = 80;

/// How often a long-lived sandbox sweeps again after its first sweep.
const SWEEP_EVERY: Duration = Duration::from_secs(3600);

/// Entries being deleted; never a cache name, since names never start with `.`.
const TRASH: &str = ".trash-";

/// The variables that point build tools at a cache, and the sub-directory each gets. Each tool
/// creates its directory on first use.
const TOOL_DIRS: [(&str, &str); 5] = [
    ("CARGO_TARGET_DIR", "cargo-target"),
    ("PIP_CACHE_DIR", "pip"),
    ("npm_config_cache", "npm"),
    ("GOCACHE", "go-build"),
    ("XDG_CACHE_HOME", "xdg"),
];

/// The environment that sends build outputs into the cache at `dir` (as the command sees it).
pub(crate) fn env(dir: &Path) -> Vec<(String, String)> {
    TOOL_DIRS
        .iter()
        .map(|(var, sub)| ((*var).to_owned(), dir.join(sub).display().to_string()))
        .collect()
}

/// The directory name of `key`.
///
/// # Errors
/// An empty key, or one longer than [`MAX_KEY_BYTES`], with the fix.
pub(crate) fn name(key: &str) -> Result<String, String> {
    if key.is_empty() {
        return Err(
            "the build cache key is empty; pass a key such as the task id, or no cache".into()
        );
    }
    if key.len() > MAX_KEY_BYTES {
        return Err(format!(
            "the build cache key {key:?} is {} bytes long; keep keys to {MAX_KEY_BYTES} bytes \
             (a task id is 36)",
            key.len()
        ));
    }
    let mut name = String::with_capacity(key.len());
    for byte in key.bytes() {
        if byte.is_ascii_alphanumeric() || byte == b'-' {
            name.push(char::from(byte));
        } else {
            name.push_str(&format!("_{byte:02x}"));
        }
    }
    Ok(name)
}

/// The caches under one root, and which of them runs of this sandbox hold.
#[derive(Debug)]
pub(crate) struct Caches {
    root: PathBuf,
    max_age: Duration,
    state: Mutex<State>,
    trashed: AtomicU64,
}

#[derive(Debug, Default)]
struct State {
    /// Leases per cache name.
    in_use: HashMap<String, usize>,
    /// When the last sweep started; `None` before the first.
    last_sweep: Option<std::time::Instant>,
}

impl Caches {
    /// Caches under `root` (created on first use by [`Caches::open`]'s caller's layout).
    pub(crate) fn new(root: PathBuf, max_age: Duration) -> Caches {
        Caches { root, max_age, state: Mutex::default(), trashed: AtomicU64::new(0) }
    }

    /// The age past which an unused cache is deleted.
    pub(crate) fn max_age(&self) -> Duration {
        self.max_age
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Marks the cache of `key` in use until the lease is dropped: neither a sweep nor
    /// [`Caches::remove`] deletes it meanwhile.
    ///
    /// # Errors
    /// A key [`name`] refuses.
    pub(crate) fn lease(self: &Arc<Self>, key: &str) -> Result<Lease, String> {
        let name = name(key)?;
        *self.lock().in_use.entry(name.clone()).or_default() += 1;
        Ok(Lease { caches: Arc::clone(self), name })
    }

    /// Creates (or reuses) the cache `name`, its data directory owned by `uid:gid`, stamps it
    /// used, and returns the data directory. A data directory of another owner (the sandbox's user
    /// changed) or anything but a directory is replaced by an empty one: it is only a cache.
    ///
    /// # Errors
    /// The I/O failure, naming the path.
    pub(crate) fn open(&self, name: &str, uid: u32, gid: u32) -> io::Result<PathBuf> {
        let entry = self.root.join(name);
        match std::fs::DirBuilder::new().mode(0o711).create(&entry) {
            Err(e) if e.kind() != io::ErrorKind::AlreadyExists => return Err(named(e, &entry)),
            _ => {}
        }
        if !std::fs::symlink_metadata(&entry).map_err(|e| named(e, &entry))?.is_dir() {
            return Err(io::Error::other(format!(
                "{} is not a directory; remove it",
                entry.display()
            )));
        }
        let data = entry.join("data");
        let usable = match std::fs::symlink_metadata(&data) {
            Ok(meta) => meta.is_dir() && meta.uid() == uid && meta.gid() == gid,
            Err(e) if e.kind() == io::ErrorKind::NotFound => false,
            Err(e) => return Err(named(e, &data)),
        };
        if !usable {
            remove_tree(&data).map_err(|e| named(e, &data))?;
            std::fs::DirBuilder::new().mode(0o700).create(&data).map_err(|e| named(e, &data))?;
            lchown(&data, Some(uid), Some(gid)).map_err(|e| named(e, &data))?;
        }
        stamp(&entry).map_err(|e| named(e, &entry))?;
        Ok(data)
    }

    /// Whether a sweep is due (none yet, or the last one is [`SWEEP_EVERY`] old); if so, records
    /// that one starts now, so concurrent callers do not start another.
    pub(crate) fn sweep_due(&self) -> bool {
        let mut state = self.lock();
        let due = state.last_sweep.is_none_or(|at| at.elapsed() >= SWEEP_EVERY);
        if due {
            state.last_sweep = Some(std::time::Instant::now());
        }
        due
    }

    /// Deletes every cache unused for longer than the maximum age and not leased here, and what
    /// interrupted deletions left. Returns how many caches it deleted.
    pub(crate) fn sweep(&self) -> usize {
        let now = wall_clock_now();
        let mut doomed = Vec::new();
        let mut swept = 0;
        {
            let mut state = self.lock();
            state.last_sweep = Some(std::time::Instant::now());
            let Ok(entries) = std::fs::read_dir(&self.root) else { return 0 };
            for entry in entries.flatten() {
                let file_name = entry.file_name();
                let Some(name) = file_name.to_str() else { continue };
                if name.starts_with(TRASH) {
                    doomed.push(entry.path());
                    continue;
                }
                if state.in_use.contains_key(name) {
                    continue;
                }
                let age = std::fs::symlink_metadata(entry.path())
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|used| now.duration_since(used).ok());
                if age.is_some_and(|age| age > self.max_age) {
                    match self.to_trash(name) {
                        Ok(trash) => {
                            doomed.push(trash);
                            swept += 1;
                        }
                        Err(e) => warn!(cache = name, error = %e, "could not retire an old cache"),
                    }
                }
            }
        }
        for path in doomed {
            if let Err(e) = remove_tree(&path) {
                warn!(path = %path.display(), error = %e, "could not delete an old build cache");
            }
        }
        if swept > 0 {
            let (max_age_s, root) = (self.max_age.as_secs(), self.root.display());
            info!(swept, max_age_s, root = %root, "deleted unused build caches");
        }
        swept
    }

    /// Deletes the cache of `key`. Returns whether there was one.
    ///
    /// # Errors
    /// [`SandboxError::Spawn`] for a key [`name`] refuses, [`SandboxError::Runtime`] when a run of
    /// this sandbox holds the cache or the deletion fails.
    pub(crate) fn remove(&self, key: &str) -> Result<bool, SandboxError> {
        let name = name(key)
            .map_err(|reason| SandboxError::Spawn { command: "remove_cache".into(), reason })?;
        let trash = {
            let state = self.lock();
            if state.in_use.contains_key(&name) {
                return Err(SandboxError::Runtime(format!(
                    "the build cache {key:?} is in use by a run; remove it after the run ends"
                )));
            }
            match self.to_trash(&name) {
                Ok(trash) => trash,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
                Err(e) => {
                    return Err(SandboxError::Runtime(format!(
                        "cannot remove the build cache {key:?}: {e}"
                    )))
                }
            }
        };
        remove_tree(&trash).map_err(|e| {
            SandboxError::Runtime(format!(
                "cannot delete the build cache {key:?} at {}: {e}",
                trash.display()
            ))
        })?;
        debug!(key, "build cache removed");
        Ok(true)
    }

    /// Renames the entry `name` to a fresh `.trash-…` name and returns that path.
    fn to_trash(&self, name: &str) -> io::Result<PathBuf> {
        let n = self.trashed.fetch_add(1, Ordering::Relaxed);
        let trash = self.root.join(format!("{TRASH}{}-{n}-{name}", std::process::id()));
        std::fs::rename(self.root.join(name), &trash)?;
        Ok(trash)
    }
}

/// One run's hold on a cache; dropping it releases the hold and stamps the cache used.
#[derive(Debug)]
pub(crate) struct Lease {
    caches: Arc<Caches>,
    name: String,
}

impl Lease {
    /// The cache's directory name.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let mut state = self.caches.lock();
        if let Some(n) = state.in_use.get_mut(&self.name) {
            *n -= 1;
            if *n == 0 {
                state.in_use.remove(&self.name);
            }
        }
        drop(state);
        // The age counts from the end of the last use; a cache never opened has no entry.
        let _ = stamp(&self.caches.root.join(&self.name));
    }
}

/// Sets the modification time of the existing `path` to now.
fn stamp(path: &Path) -> io::Result<()> {
    std::fs::File::open(path)?.set_modified(wall_clock_now())
}

/// Now, as file times count it. Cache ages are file times, stamped and compared with the system
/// clock; no task logic reads this, so the `Clock` port has no say.
#[allow(clippy::disallowed_methods)] // The one read of the system clock for cache ages.
fn wall_clock_now() -> SystemTime {
    SystemTime::now()
}

/// Deletes the tree at `path` without following symlinks; a missing one is fine. Directories a
/// run made unwritable are made writable first when the deletion is refused (matters for a
/// sandbox that is not root).
pub(crate) fn remove_tree(path: &Path) -> io::Result<()> {
    match std::fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
            make_writable(path);
            match std::fs::remove_dir_all(path) {
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
                other => other,
            }
        }
        Err(e) => Err(e),
    }
}

/// Gives the owner full access to every real directory under `dir` (symlinks are not followed).
fn make_writable(dir: &Path) {
    let Ok(meta) = std::fs::symlink_metadata(dir) else { return };
    if !meta.is_dir() {
        return;
    }
    let mode = meta.permissions().mode() | 0o700;
    let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode));
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        make_writable(&entry.path());
    }
}

fn named(e: io::Error, path: &Path) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn me() -> (u32, u32) {
        (nix::unistd::getuid().as_raw(), nix::unistd::getgid().as_raw())
    }

    #[test]
    fn names_are_injective_and_never_escape() {
        assert_eq!(name("0193a1b2-c3d4").unwrap(), "0193a1b2-c3d4");
        assert_eq!(name("a/b").unwrap(), "a_2fb");
        assert_eq!(name("a_2fb").unwrap(), "a_5f2fb");
        assert_eq!(name("..").unwrap(), "_2e_2e");
        assert_eq!(name(".trash-x").unwrap(), "_2etrash-x");
        assert_eq!(name("é").unwrap(), "_c3_a9");
        assert!(name("").unwrap_err().contains("empty"));
        assert!(name(&"k".repeat(81)).unwrap_err().contains("81 bytes"));
        assert!(name(&"/".repeat(80)).unwrap().len() <= 255);
    }

    #[test]
    fn env_points_every_tool_into_the_cache() {
        let env = env(Path::new("/cache"));
        let get = |k: &str| env.iter().find(|(key, _)| key == k).map(|(_, v)| v.as_str());
        assert_eq!(get("CARGO_TARGET_DIR"), Some("/cache/cargo-target"));
        assert_eq!(get("PIP_CACHE_DIR"), Some("/cache/pip"));
        assert_eq!(get("npm_config_cache"), Some("/cache/npm"));
        assert_eq!(get("GOCACHE"), Some("/cache/go-build"));
        assert_eq!(get("XDG_CACHE_HOME"), Some("/cache/xdg"));
    }

    #[test]
    fn open_reuses_a_cache_and_replaces_a_foreign_one() {
        let dir = tempfile::tempdir().unwrap();
        let caches = Caches::new(dir.path().to_path_buf(), DEFAULT_CACHE_MAX_AGE);
        let (uid, gid) = me();
        let data = caches.open("k", uid, gid).unwrap();
        assert_eq!(data, dir.path().join("k/data"));
        std::fs::write(data.join("f"), "kept").unwrap();
        assert_eq!(caches.open("k", uid, gid).unwrap(), data);
        assert_eq!(std::fs::read_to_string(data.join("f")).unwrap(), "kept");
        // A data "directory" that is a symlink is replaced, and its target left alone.
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("victim"), "safe").unwrap();
        std::fs::remove_dir_all(&data).unwrap();
        std::os::unix::fs::symlink(outside.path(), &data).unwrap();
        caches.open("k", uid, gid).unwrap();
        assert!(std::fs::symlink_metadata(&data).unwrap().is_dir());
        assert_eq!(std::fs::read_to_string(outside.path().join("victim")).unwrap(), "safe");
    }

    #[test]
    fn a_sweep_deletes_old_unleased_caches_only() {
        let dir = tempfile::tempdir().unwrap();
        let caches = Arc::new(Caches::new(dir.path().to_path_buf(), Duration::from_secs(3600)));
        let (uid, gid) = me();
        for key in ["old", "fresh", "held"] {
            caches.open(key, uid, gid).unwrap();
        }
        let long_ago = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
        for key in ["old", "held"] {
            std::fs::File::open(dir.path().join(key)).unwrap().set_modified(long_ago).unwrap();
        }
        // A cache being deleted when a process died.
        std::fs::create_dir_all(dir.path().join(".trash-1-0-gone/data")).unwrap();
        let lease = caches.lease("held").unwrap();
        assert_eq!(lease.name(), "held");
        assert_eq!(caches.sweep(), 1);
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(left, ["fresh", "held"]);
        assert!(!caches.sweep_due(), "a sweep just ran");
        // Leased, it cannot be removed either; released, it can (once).
        let err = caches.remove("held").unwrap_err().to_string();
        assert!(err.contains("in use"), "{err}");
        drop(lease);
        assert!(caches.remove("held").unwrap());
        assert!(!caches.remove("held").unwrap());
        assert!(matches!(caches.remove(""), Err(SandboxError::Spawn { .. })));
    }

    #[test]
    fn removing_follows_no_symlink_and_beats_read_only_dirs() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("victim"), "safe").unwrap();
        let tree = dir.path().join("t");
        std::fs::create_dir_all(tree.join("ro/sub")).unwrap();
        std::fs::write(tree.join("ro/sub/f"), "x").unwrap();
        std::os::unix::fs::symlink(outside.path(), tree.join("link")).unwrap();
        std::os::unix::fs::symlink(outside.path().join("victim"), tree.join("ro/file-link"))
            .unwrap();
        std::fs::set_permissions(tree.join("ro"), std::fs::Permissions::from_mode(0o500)).unwrap();
        remove_tree(&tree).unwrap();
        assert!(!tree.exists());
        assert_eq!(std::fs::read_to_string(outside.path().join("victim")).unwrap(), "safe");
        remove_tree(&tree).unwrap();
    }
}
