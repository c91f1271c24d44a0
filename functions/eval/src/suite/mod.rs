//! A suite: the tasks an evaluation runs, read from a SWE-bench-format JSONL file ([`swebench`]) or a
//! directory of local tasks ([`local`]), both turned into the same [`EvalTask`].
//!
//! An [`EvalTask`] says what the agent is shown (a repository at a commit, a goal, a test command it
//! may run) and, separately, how the result is judged ([`Check`]): the hidden tests live only in the
//! check, so nothing the agent can read reveals them.

pub mod local;
pub mod swebench;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::error::EvalError;

/// One task of a suite.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvalTask {
    /// Unique within the suite: the SWE-bench `instance_id`, or the local task's directory name.
    pub id: String,
    /// What the agent is asked to do.
    pub goal: String,
    /// Where the repository comes from.
    pub repo: RepoSource,
    /// The commit to start from; `None` means the source's `HEAD` (or its files as they are).
    pub base_commit: Option<String>,
    /// The test command the agent's pipeline runs; `None` lets Cadre detect one.
    pub test_command: Option<String>,
    /// How the proposed change is judged.
    pub check: Check,
}

/// Where a task's repository comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RepoSource {
    /// A directory: a git repository, or plain files that become a one-commit repository.
    Directory(PathBuf),
    /// A git bundle file (`git bundle create`).
    Bundle(PathBuf),
    /// Something `git clone` takes: a local mirror's path or a URL.
    Clone(String),
}

/// How a task's result is judged, on a scratch copy of the repository with the agent's patch applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// A shell command run in the scratch copy (in the sandbox); exit code 0 means solved.
    pub command: String,
    /// A directory whose files are copied over the scratch copy before the command (local tasks).
    pub hidden_files: Option<PathBuf>,
    /// A unified diff applied to the scratch copy before the command (SWE-bench's `test_patch`).
    pub test_patch: Option<String>,
}

/// The format a suite was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SuiteFormat {
    /// SWE-bench JSONL: one instance per line.
    SweBench,
    /// A directory with one sub-directory per task.
    Local,
}

impl SuiteFormat {
    /// The name shown in reports.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            SuiteFormat::SweBench => "swe-bench",
            SuiteFormat::Local => "local",
        }
    }
}

/// A suite as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Suite {
    /// A short name: the file's or directory's name without extension.
    pub name: String,
    /// The format it was read from.
    pub format: SuiteFormat,
    /// Its tasks, in the suite's order.
    pub tasks: Vec<EvalTask>,
}

/// Settings that complete what a suite does not say.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SuiteOptions {
    /// A directory of repositories named `owner__name` (SWE-bench `repo` with `/` as `__`), bare or
    /// not; repositories not found there are cloned from GitHub.
    pub mirror: Option<PathBuf>,
    /// The test command of SWE-bench instances that carry none (`test_cmd`).
    pub test_cmd: Option<String>,
}

impl Suite {
    /// Reads `path`: a directory is a local suite, a file is SWE-bench JSONL.
    ///
    /// # Errors
    /// [`EvalError::Suite`] naming the file, line or task directory at fault and the fix;
    /// [`EvalError::Io`] when it cannot be read.
    pub fn load(path: &Path, options: &SuiteOptions) -> Result<Suite, EvalError> {
        let (format, tasks) = if path.is_dir() {
            (SuiteFormat::Local, local::read(path)?)
        } else if path.is_file() {
            let text = std::fs::read_to_string(path).map_err(EvalError::io("read", path))?;
            (SuiteFormat::SweBench, swebench::read(path, &text, options)?)
        } else {
            return Err(EvalError::suite(
                path,
                None,
                "no such file or directory; give a SWE-bench JSONL file or a directory of tasks",
            ));
        };
        if tasks.is_empty() {
            return Err(EvalError::suite(path, None, "it holds no task"));
        }
        let mut seen = BTreeSet::new();
        for task in &tasks {
            if !seen.insert(task.id.as_str()) {
                return Err(EvalError::suite(
                    path,
                    None,
                    format!("task id `{}` appears twice; ids must be unique", task.id),
                ));
            }
        }
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "suite".to_owned());
        Ok(Suite { name, format, tasks })
    }

    /// Keeps only the tasks named in `only` (all when empty).
    ///
    /// # Errors
    /// [`EvalError::Suite`] when a name matches no task, listing a few that exist.
    pub fn select(mut self, path: &Path, only: &[String]) -> Result<Suite, EvalError> {
        if only.is_empty() {
            return Ok(self);
        }
        for wanted in only {
            if !self.tasks.iter().any(|t| &t.id == wanted) {
                let some: Vec<&str> = self.tasks.iter().take(5).map(|t| t.id.as_str()).collect();
                return Err(EvalError::suite(
                    path,
                    None,
                    format!("--only {wanted}: no such task; tasks include {}", some.join(", ")),
                ));
            }
        }
        self.tasks.retain(|t| only.contains(&t.id));
        Ok(self)
    }
}

/// A task id made safe as a file name: anything but ASCII letters, digits, `.`, `_` and `-` becomes `_`.
#[must_use]
pub fn file_name(id: &str) -> String {
    let name: String = id
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') { c } else { '_' })
        .collect();
    if name.is_empty() || name.starts_with('.') {
        format!("_{name}")
    } else {
        name
    }
}

/// Quotes `word` for `sh` (single quotes, `'` written as `'\''`), leaving plain words as they are.
#[must_use]
pub fn shell_quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word.chars().all(|c| c.is_ascii_alphanumeric() || "-_./:=@%+,".contains(c));
    if plain {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    }
}
