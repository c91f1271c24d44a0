//! A run's directory: what is kept where, the settings it was started with, and the lock that keeps
//! two processes from running it at once.
//!
//! ```text
//! RUN/
//!   run.json        the settings (suite, model, harness, budget, rounds); a resume must match them
//!   results.jsonl   one line per finished task: the source of truth
//!   summary.json    the summary of the last finished pass
//!   report.html     the self-contained report
//!   home/           the Cadre home of the run's tasks (store, queue, ledger): their trajectories
//!   work/TASK/      each task's repository as given to the agent
//!   logs/TASK.check.txt  what each check printed
//!   cache/          bare clones of repositories fetched by URL
//!   lock            the pid of the process running the eval
//! ```

use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::EvalError;

/// The results file's name in a run directory.
pub const RESULTS: &str = "results.jsonl";
/// The settings file's name in a run directory.
pub const MANIFEST: &str = "run.json";

/// The layout of one run's directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunDir {
    root: PathBuf,
}

impl RunDir {
    /// The run kept in `root` (nothing is created yet).
    #[must_use]
    pub fn new(root: impl Into<PathBuf>) -> RunDir {
        RunDir { root: root.into() }
    }

    /// The directory itself.
    #[must_use]
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `results.jsonl`.
    #[must_use]
    pub fn results(&self) -> PathBuf {
        self.root.join(RESULTS)
    }

    /// `run.json`.
    #[must_use]
    pub fn manifest(&self) -> PathBuf {
        self.root.join(MANIFEST)
    }

    /// `summary.json`.
    #[must_use]
    pub fn summary(&self) -> PathBuf {
        self.root.join("summary.json")
    }

    /// `report.html`.
    #[must_use]
    pub fn report(&self) -> PathBuf {
        self.root.join("report.html")
    }

    /// The Cadre home of the run's tasks.
    #[must_use]
    pub fn home(&self) -> PathBuf {
        self.root.join("home")
    }

    /// Where task `file_name`'s repository for the agent is built.
    #[must_use]
    pub fn work(&self, file_name: &str) -> PathBuf {
        self.root.join("work").join(file_name)
    }

    /// Where a check's output is kept.
    #[must_use]
    pub fn check_log(&self, file_name: &str) -> PathBuf {
        self.root.join("logs").join(format!("{file_name}.check.txt"))
    }

    /// Bare clones of repositories fetched by URL.
    #[must_use]
    pub fn cache(&self) -> PathBuf {
        self.root.join("cache")
    }

    /// Creates the directory and takes its lock.
    ///
    /// # Errors
    /// [`EvalError::Locked`] when a live process holds it; [`EvalError::Io`].
    pub fn lock(&self) -> Result<RunLock, EvalError> {
        std::fs::create_dir_all(&self.root)
            .map_err(EvalError::io("create the run directory", &self.root))?;
        RunLock::acquire(&self.root)
    }
}

/// The settings a run was started with, kept in `run.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// The suite's path as given.
    pub suite: String,
    /// The suite's short name.
    pub suite_name: String,
    /// `swe-bench` or `local`.
    pub format: String,
    /// The `--model` spec.
    pub model: String,
    /// The harness name.
    pub harness: String,
    /// The budget per task, in USD.
    pub budget_usd: f64,
    /// Generate→test rounds per task.
    pub max_rounds: u32,
    /// When the run was first started (milliseconds since the Unix epoch).
    pub started_at_ms: i64,
}

impl Manifest {
    /// Records `self` as the settings of the run in `dir`, or, when the run was started before,
    /// checks that the settings that change results are the same and returns the stored manifest.
    /// The second value is true for a resumed run.
    ///
    /// # Errors
    /// [`EvalError::SettingsDiffer`] naming the first setting that differs; [`EvalError::Io`].
    pub fn settle(self, run: &RunDir) -> Result<(Manifest, bool), EvalError> {
        let path = run.manifest();
        match std::fs::read(&path) {
            Ok(bytes) => {
                let stored: Manifest =
                    serde_json::from_slice(&bytes).map_err(|e| EvalError::Io {
                        action: "read the run settings in",
                        path: path.clone(),
                        reason: std::io::Error::other(e),
                    })?;
                let differ = |field: &'static str, was: String, now: String| {
                    Err(EvalError::SettingsDiffer {
                        dir: run.root().to_path_buf(),
                        field,
                        was,
                        now,
                    })
                };
                if stored.model != self.model {
                    return differ("--model", stored.model, self.model);
                }
                if stored.harness != self.harness {
                    return differ("--harness", stored.harness, self.harness);
                }
                if (stored.budget_usd - self.budget_usd).abs() > 1e-9 {
                    return differ(
                        "--budget-usd",
                        stored.budget_usd.to_string(),
                        self.budget_usd.to_string(),
                    );
                }
                if stored.max_rounds != self.max_rounds {
                    return differ(
                        "--max-rounds",
                        stored.max_rounds.to_string(),
                        self.max_rounds.to_string(),
                    );
                }
                if stored.suite_name != self.suite_name {
                    return differ("suite", stored.suite, self.suite);
                }
                Ok((stored, true))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                write_atomically(&path, &serde_json::to_vec_pretty(&self).unwrap_or_default())?;
                Ok((self, false))
            }
            Err(e) => Err(EvalError::Io { action: "read", path, reason: e }),
        }
    }

    /// The manifest of the run in `dir`, if it has one.
    #[must_use]
    pub fn read(dir: &Path) -> Option<Manifest> {
        let path = if dir.is_dir() { dir.join(MANIFEST) } else { dir.with_file_name(MANIFEST) };
        serde_json::from_slice(&std::fs::read(path).ok()?).ok()
    }
}

/// Writes `bytes` to `path` through a temporary file and a rename, so a reader never sees half of it.
///
/// # Errors
/// [`EvalError::Io`].
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), EvalError> {
    let partial = path.with_extension("partial");
    let mut file = std::fs::File::create(&partial).map_err(EvalError::io("create", &partial))?;
    file.write_all(bytes).map_err(EvalError::io("write", &partial))?;
    file.sync_all().map_err(EvalError::io("sync", &partial))?;
    std::fs::rename(&partial, path).map_err(EvalError::io("replace", path))
}

/// The run directory's lock: a `lock` file holding this process's id, removed when dropped. A lock
/// left by a process that no longer exists (a killed run) is taken over.
#[derive(Debug)]
pub struct RunLock {
    path: PathBuf,
}

impl RunLock {
    fn acquire(dir: &Path) -> Result<RunLock, EvalError> {
        let path = dir.join("lock");
        let me = std::process::id();
        for _ in 0..2 {
            match std::fs::OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(mut file) => {
                    file.write_all(me.to_string().as_bytes())
                        .map_err(EvalError::io("write", &path))?;
                    return Ok(RunLock { path });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let holder = std::fs::read_to_string(&path)
                        .ok()
                        .and_then(|t| t.trim().parse::<u32>().ok());
                    if let Some(pid) = holder.filter(|&pid| pid != me && alive(pid)) {
                        return Err(EvalError::Locked { dir: dir.to_path_buf(), pid });
                    }
                    tracing::info!(?holder, "taking over the lock of a run that stopped");
                    std::fs::remove_file(&path)
                        .map_err(EvalError::io("remove the stale lock", &path))?;
                }
                Err(e) => return Err(EvalError::Io { action: "create", path, reason: e }),
            }
        }
        Err(EvalError::Io {
            action: "take the lock",
            path,
            reason: std::io::Error::other("another process keeps re-creating it"),
        })
    }
}

impl Drop for RunLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Whether a process with this id exists (Linux: `/proc/PID`).
fn alive(pid: u32) -> bool {
    Path::new("/proc").join(pid.to_string()).exists()
}
