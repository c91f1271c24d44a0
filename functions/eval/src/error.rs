//! What can go wrong while reading a suite, preparing a task's repository, or keeping a run's files.

use std::path::{Path, PathBuf};

/// Why an evaluation operation failed. Messages name the file or task and say what to do.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// The suite cannot be read as a SWE-bench JSONL file or a local task directory.
    #[error("suite {path}{}: {why}", line.map(|l| format!(" line {l}")).unwrap_or_default())]
    Suite {
        /// The suite file or the task directory.
        path: PathBuf,
        /// The 1-based line of a JSONL suite, when one is at fault.
        line: Option<usize>,
        /// What is wrong and how to fix it.
        why: String,
    },
    /// A file or directory could not be read or written.
    #[error("cannot {action} {path}: {reason}")]
    Io {
        /// What was being done, e.g. `read` or `create the directory`.
        action: &'static str,
        /// The path.
        path: PathBuf,
        /// The OS's reason (in the message, so it is not also a source: causes print once).
        reason: std::io::Error,
    },
    /// A git command failed while materialising a repository.
    #[error("git {command} failed: {detail}")]
    Git {
        /// The command's arguments, e.g. `clone --bare https://…`.
        command: String,
        /// What git printed, or why it could not start.
        detail: String,
    },
    /// A patch (a SWE-bench `test_patch`) does not apply to the scratch copy.
    #[error("the patch does not apply: {detail}")]
    PatchDoesNotApply {
        /// What `git apply` said.
        detail: String,
    },
    /// The results file holds a line that is not a result (not the torn last line of a killed run).
    #[error("results file {path} line {line} is not a task result ({why}); fix or delete that line, then run again")]
    CorruptResults {
        /// The file.
        path: PathBuf,
        /// The 1-based line.
        line: usize,
        /// The parse error.
        why: String,
    },
    /// Another `cadre eval` process is using the run directory.
    #[error("another cadre eval (pid {pid}) is running in {dir}; wait for it, stop it, or pass another --out")]
    Locked {
        /// The run directory.
        dir: PathBuf,
        /// The live process holding the lock.
        pid: u32,
    },
    /// The run directory was started with other settings, so its results are not comparable.
    #[error("{dir} holds a run with {field} {was}, not {now}; resume it with the same settings, or pass another --out for a new run")]
    SettingsDiffer {
        /// The run directory.
        dir: PathBuf,
        /// The setting, e.g. `--model`.
        field: &'static str,
        /// The value the run was started with.
        was: String,
        /// The value given now.
        now: String,
    },
}

impl EvalError {
    pub(crate) fn io(
        action: &'static str,
        path: &Path,
    ) -> impl FnOnce(std::io::Error) -> EvalError {
        let path = path.to_path_buf();
        move |reason| EvalError::Io { action, path, reason }
    }

    pub(crate) fn suite(path: &Path, line: Option<usize>, why: impl Into<String>) -> EvalError {
        EvalError::Suite { path: path.to_path_buf(), line, why: why.into() }
    }
}
