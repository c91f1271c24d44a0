//! A directory of local tasks: one sub-directory per task, named by its id.
//!
//! ```text
//! SUITE/
//!   fix-average/
//!     goal.txt      what the agent is asked, in a person's words (required)
//!     check         the shell command that exits 0 when the task is solved (required)
//!     repo/         the repository: a git repository (HEAD is used) or plain files
//!     repo.bundle   …or a git bundle instead of repo/
//!     hidden/       files copied over the scratch copy only for the check (optional)
//!     test_cmd      the test command the agent's pipeline runs (optional: detected when absent)
//! ```
//!
//! The agent's repository is built from `repo/` (or the bundle) alone: `hidden/`, `check` and the rest
//! of the task directory stay outside it, so the hidden tests are never shown to the agent.

use std::path::Path;

use super::{Check, EvalTask, RepoSource};
use crate::error::EvalError;

/// Reads every sub-directory of `dir` as a task, sorted by name; files beside them are ignored.
///
/// # Errors
/// [`EvalError::Suite`] naming the task directory and what it lacks; [`EvalError::Io`].
pub fn read(dir: &Path) -> Result<Vec<EvalTask>, EvalError> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(EvalError::io("read the suite directory", dir))?
        .collect::<Result<_, _>>()
        .map_err(EvalError::io("read the suite directory", dir))?;
    entries.sort_by_key(std::fs::DirEntry::file_name);
    let mut tasks = Vec::new();
    for entry in entries {
        let path = entry.path();
        if !path.is_dir() || entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        tasks.push(read_task(&path)?);
    }
    Ok(tasks)
}

fn read_task(dir: &Path) -> Result<EvalTask, EvalError> {
    let id = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let goal = required_text(dir, "goal.txt", "what the agent is asked to do")?;
    let check = required_text(dir, "check", "the shell command that exits 0 when solved")?;
    let repo = match (dir.join("repo").is_dir(), dir.join("repo.bundle").is_file()) {
        (true, false) => RepoSource::Directory(dir.join("repo")),
        (false, true) => RepoSource::Bundle(dir.join("repo.bundle")),
        (true, true) => {
            return Err(EvalError::suite(dir, None, "has both repo/ and repo.bundle; keep one"))
        }
        (false, false) => {
            return Err(EvalError::suite(
                dir,
                None,
                "has no repo/ directory or repo.bundle; every task needs its repository",
            ))
        }
    };
    let test_command = optional_text(dir, "test_cmd")?;
    let hidden = dir.join("hidden");
    Ok(EvalTask {
        id,
        goal,
        repo,
        base_commit: None,
        test_command,
        check: Check {
            command: check,
            hidden_files: hidden.is_dir().then_some(hidden),
            test_patch: None,
        },
    })
}

fn required_text(dir: &Path, name: &str, what: &str) -> Result<String, EvalError> {
    optional_text(dir, name)?.ok_or_else(|| {
        EvalError::suite(dir, None, format!("has no {name} (or it is empty); write {what} there"))
    })
}

/// A file's trimmed text, `None` when absent or blank.
fn optional_text(dir: &Path, name: &str) -> Result<Option<String>, EvalError> {
    let path = dir.join(name);
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok(Some(text.trim().to_owned()).filter(|t| !t.is_empty())),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(EvalError::Io { action: "read", path, reason: error }),
    }
}
