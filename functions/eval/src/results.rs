//! The results file: one JSON line per finished task, the run's only source of truth.
//!
//! A line is written with one `write` of the whole line and then `fsync`ed, so a killed run leaves at
//! most a torn last line, never a half-counted task. Opening the file drops a torn last line (it is
//! cut off, so the next line starts clean) and keeps the first result of a task should one appear twice.

use cadre_domain::ports::model::TokenUsage;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::EvalError;
use crate::outcome::Outcome;

/// What one task did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskResult {
    /// The suite's task id.
    pub task: String,
    /// Whether the check passed (the same as `outcome == solved`, kept for readers of the JSON).
    pub solved: bool,
    /// Solved, or why not.
    pub outcome: Outcome,
    /// Why not, in more words (Cadre's failure reason, the check's exit code, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Model tokens over all the task's calls.
    pub tokens: TokenUsage,
    /// Cost of the task's model calls, in micro-dollars, from the usage ledger.
    pub cost_micros: u64,
    /// Wall time from the start of preparing the repository to the end of the check.
    pub wall_ms: u64,
    /// Model calls as the gateway's ledger counts them: failed calls, and a call refused because it
    /// could pass the budget (never sent), included.
    pub model_calls: u64,
    /// Generate rounds begun.
    pub rounds: u32,
    /// Where the task's trajectory (events, plan, transcripts, patches) can be read.
    pub trajectory: Trajectory,
    /// When the result was recorded (milliseconds since the Unix epoch).
    pub finished_at_ms: i64,
}

/// Where a task's trajectory is kept: `cadre --home HOME status TASK` and `cadre --home HOME show TASK`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trajectory {
    /// The Cadre task id; absent when the task failed before Cadre started it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cadre_task: Option<String>,
    /// The Cadre home holding it.
    pub home: String,
}

impl TaskResult {
    /// A result with `outcome`, keeping `solved` consistent with it.
    #[must_use]
    pub fn new(task: impl Into<String>, outcome: Outcome, trajectory: Trajectory) -> TaskResult {
        TaskResult {
            task: task.into(),
            solved: outcome == Outcome::Solved,
            outcome,
            reason: None,
            tokens: TokenUsage::default(),
            cost_micros: 0,
            wall_ms: 0,
            model_calls: 0,
            rounds: 0,
            trajectory,
            finished_at_ms: 0,
        }
    }
}

/// An open results file: the results read from it, and the handle new ones are appended through.
#[derive(Debug)]
pub struct ResultsFile {
    path: PathBuf,
    file: File,
    results: Vec<TaskResult>,
}

impl ResultsFile {
    /// Opens (creating) `path`, reads its results and cuts off a torn last line.
    ///
    /// # Errors
    /// [`EvalError::CorruptResults`] for a bad line that is not the last; [`EvalError::Io`].
    pub fn open(path: &Path) -> Result<ResultsFile, EvalError> {
        let bytes = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => {
                return Err(EvalError::Io { action: "read", path: path.to_path_buf(), reason: e })
            }
        };
        let (results, good_len) = parse(path, &bytes)?;
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(EvalError::io("open", path))?;
        if good_len < bytes.len() {
            tracing::warn!(path = %path.display(), dropped = bytes.len() - good_len, "dropping the torn last line of an interrupted run");
            file.set_len(good_len as u64).map_err(EvalError::io("truncate", path))?;
            file.sync_all().map_err(EvalError::io("sync", path))?;
        }
        Ok(ResultsFile { path: path.to_path_buf(), file, results })
    }

    /// The results read or appended so far, one per task, in the order they were recorded.
    #[must_use]
    pub fn results(&self) -> &[TaskResult] {
        &self.results
    }

    /// Whether `task` has a result.
    #[must_use]
    pub fn has(&self, task: &str) -> bool {
        self.results.iter().any(|r| r.task == task)
    }

    /// Appends `result` as one line and syncs it to disk before returning. A task that already has a
    /// result is not written again (returns `false`).
    ///
    /// # Errors
    /// [`EvalError::Io`] when the line cannot be written or synced.
    pub fn append(&mut self, result: TaskResult) -> Result<bool, EvalError> {
        if self.has(&result.task) {
            tracing::warn!(task = %result.task, "a result is recorded already; keeping the first");
            return Ok(false);
        }
        let mut line = serde_json::to_vec(&result).map_err(|e| EvalError::Io {
            action: "encode a result for",
            path: self.path.clone(),
            reason: std::io::Error::other(e),
        })?;
        line.push(b'\n');
        self.file.write_all(&line).map_err(EvalError::io("append to", &self.path))?;
        self.file.sync_data().map_err(EvalError::io("sync", &self.path))?;
        self.results.push(result);
        Ok(true)
    }
}

/// Reads the results of a run: a run directory (its `results.jsonl`) or a results file, without
/// changing it.
///
/// # Errors
/// [`EvalError::CorruptResults`], [`EvalError::Io`].
pub fn read(path: &Path) -> Result<Vec<TaskResult>, EvalError> {
    let file = if path.is_dir() { path.join(crate::run::RESULTS) } else { path.to_path_buf() };
    let bytes = std::fs::read(&file).map_err(EvalError::io("read", &file))?;
    Ok(parse(&file, &bytes)?.0)
}

/// The results in `bytes` and the length of the part made of whole, valid lines.
fn parse(path: &Path, bytes: &[u8]) -> Result<(Vec<TaskResult>, usize), EvalError> {
    let mut results: Vec<TaskResult> = Vec::new();
    let mut seen = BTreeSet::new();
    let mut offset = 0;
    let mut line_no = 0;
    while offset < bytes.len() {
        line_no += 1;
        let rest = &bytes[offset..];
        let (line, next, whole) = match rest.iter().position(|&b| b == b'\n') {
            Some(end) => (&rest[..end], offset + end + 1, true),
            None => (rest, bytes.len(), false),
        };
        if line.iter().all(u8::is_ascii_whitespace) {
            offset = next;
            continue;
        }
        if !whole {
            // A last line without its newline was being written when the run stopped: the task was
            // not recorded and runs again.
            return Ok((results, offset));
        }
        let result =
            serde_json::from_slice::<TaskResult>(line).map_err(|e| EvalError::CorruptResults {
                path: path.to_path_buf(),
                line: line_no,
                why: e.to_string(),
            })?;
        if seen.insert(result.task.clone()) {
            results.push(result);
        } else {
            tracing::warn!(task = %result.task, line = line_no, "a second result for a task; keeping the first");
        }
        offset = next;
    }
    Ok((results, offset))
}
