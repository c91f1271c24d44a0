//! ACP sessions: which tasks each one ran, kept on disk so `session/load` works after the editor
//! (and this process) restarted, and the live state of the sessions this connection has open.
//!
//! A session is a sequence of tasks, one per prompt, in one repository. Its record is a small JSON
//! file named after the session id; a session id that has no record but names a task (`cadre status`
//! shows the ids) loads that task, so work started elsewhere can be followed from the editor.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use cadre_domain::TaskId;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

/// What is kept of a session between runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SessionRecord {
    /// The repository's top-level directory.
    pub(crate) repo: PathBuf,
    /// Its tasks, oldest first.
    pub(crate) tasks: Vec<TaskId>,
}

/// Session records in a directory (none kept when there is no directory).
#[derive(Debug, Clone)]
pub(crate) struct SessionBook {
    dir: Option<PathBuf>,
}

impl SessionBook {
    pub(crate) fn new(dir: Option<PathBuf>) -> SessionBook {
        SessionBook { dir }
    }

    /// The record's file, for a session id made only of characters safe in a file name.
    fn file(&self, id: &str) -> Option<PathBuf> {
        let safe = !id.is_empty()
            && id.len() <= 128
            && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        self.dir.as_ref().filter(|_| safe).map(|dir| dir.join(format!("{id}.json")))
    }

    pub(crate) async fn load(&self, id: &str) -> Option<SessionRecord> {
        let file = self.file(id)?;
        let bytes = tokio::fs::read(&file).await.ok()?;
        match serde_json::from_slice(&bytes) {
            Ok(record) => Some(record),
            Err(error) => {
                tracing::warn!(file = %file.display(), %error, "unreadable session record ignored");
                None
            }
        }
    }

    /// Writes the record (through a temporary file, so a crash never leaves half a record).
    pub(crate) async fn save(&self, id: &str, record: &SessionRecord) {
        let Some(file) = self.file(id) else { return };
        let write = async {
            if let Some(dir) = file.parent() {
                tokio::fs::create_dir_all(dir).await?;
            }
            let temp = file.with_extension("json.tmp");
            tokio::fs::write(&temp, serde_json::to_vec_pretty(record)?).await?;
            tokio::fs::rename(&temp, &file).await
        };
        if let Err(error) = write.await {
            tracing::warn!(file = %file.display(), %error, "cannot save the session record; session/load will not find it");
        }
    }
}

/// A session open on this connection.
#[derive(Debug)]
pub(crate) struct Session {
    pub(crate) id: String,
    pub(crate) repo: PathBuf,
    tasks: Mutex<Vec<TaskId>>,
    /// The last event shown of the last task, so a later prompt goes on from there.
    pub(crate) shown_seq: AtomicU64,
    /// Set while a prompt turn runs; a second prompt is refused meanwhile.
    busy: AtomicBool,
    /// Bumped by `session/cancel`; a prompt turn watches it.
    cancel: watch::Sender<u64>,
    /// Set when the person chose "allow always": later proposals are written without asking.
    pub(crate) allow_always: AtomicBool,
}

impl Session {
    pub(crate) fn new(id: String, repo: PathBuf, tasks: Vec<TaskId>) -> Session {
        Session {
            id,
            repo,
            tasks: Mutex::new(tasks),
            shown_seq: AtomicU64::new(0),
            busy: AtomicBool::new(false),
            cancel: watch::channel(0).0,
            allow_always: AtomicBool::new(false),
        }
    }

    pub(crate) fn record(&self) -> SessionRecord {
        SessionRecord { repo: self.repo.clone(), tasks: self.tasks().clone() }
    }

    fn tasks(&self) -> std::sync::MutexGuard<'_, Vec<TaskId>> {
        self.tasks.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn last_task(&self) -> Option<TaskId> {
        self.tasks().last().cloned()
    }

    pub(crate) fn push_task(&self, task: TaskId) {
        self.tasks().push(task);
        self.shown_seq.store(0, Ordering::SeqCst);
    }

    /// Marks a prompt turn as running; `false` when one already is.
    pub(crate) fn begin_turn(&self) -> bool {
        !self.busy.swap(true, Ordering::SeqCst)
    }

    pub(crate) fn end_turn(&self) {
        self.busy.store(false, Ordering::SeqCst);
    }

    pub(crate) fn cancel(&self) {
        self.cancel.send_modify(|n| *n += 1);
    }

    pub(crate) fn cancellations(&self) -> watch::Receiver<u64> {
        self.cancel.subscribe()
    }
}
