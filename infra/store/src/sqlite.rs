//! The state store in an SQLite file (WAL mode), shared safely by every connection and process that opens
//! the file, including the embedded queue (tables here are prefixed `store_`, the queue's `queue_`).
//!
//! Four tables: `store_tasks` (the task as created), `store_events` (the log, keyed by task and 1-based
//! seq), `store_artifacts` (bytes by task and name, replaced on write) and `store_step_commits` (one row
//! per idempotency key, holding the next messages that commit recorded). Every check-then-write runs in
//! one `BEGIN IMMEDIATE` transaction, which takes SQLite's write lock up front: two processes committing
//! the same key are serialised, and the second sees the first's row.

use async_trait::async_trait;
use cadre_domain::ports::store::{CommitOutcome, StateStore, StepCommit, StoreError, TaskSummary};
use cadre_domain::{
    ArtifactName, Envelope, Event, EventRecord, IdempotencyKey, Task, TaskId, TaskState, Timestamp,
};
use cadre_sqlite::Fault;
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use serde::de::DeserializeOwned;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tracing::debug;

/// Task ids are ASCII, so every id starting with a prefix sorts before the prefix followed by this.
const PREFIX_END: char = char::MAX;

/// A prefix shorter than this is refused even when it matches one task: it would soon stop being unique.
const MIN_PREFIX: usize = 4;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS store_tasks (
    id         TEXT    NOT NULL PRIMARY KEY,
    created_at INTEGER NOT NULL,
    task       TEXT    NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS store_tasks_by_creation ON store_tasks (created_at, id);
CREATE TABLE IF NOT EXISTS store_events (
    task_id TEXT    NOT NULL,
    seq     INTEGER NOT NULL,
    at      INTEGER NOT NULL,
    event   TEXT    NOT NULL,
    PRIMARY KEY (task_id, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS store_artifacts (
    task_id TEXT NOT NULL,
    name    TEXT NOT NULL,
    bytes   BLOB NOT NULL,
    PRIMARY KEY (task_id, name)
);
CREATE TABLE IF NOT EXISTS store_step_commits (
    key     TEXT    NOT NULL PRIMARY KEY,
    task_id TEXT    NOT NULL,
    at      INTEGER NOT NULL,
    next    TEXT    NOT NULL
);
";

/// Tasks, event logs, artifacts and step commits in an SQLite file.
///
/// Several instances (in one process or many) may open the same file at once.
pub struct SqliteStore {
    conn: cadre_sqlite::Shared,
    path: Arc<PathBuf>,
}

impl fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteStore").field("path", &self.path).finish_non_exhaustive()
    }
}

/// What went wrong inside a database closure: an SQLite error still to be described, or a store error.
enum Failure {
    Db(rusqlite::Error),
    Store(StoreError),
}

impl From<rusqlite::Error> for Failure {
    fn from(e: rusqlite::Error) -> Self {
        Failure::Db(e)
    }
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        Failure::Store(e)
    }
}

/// Maps an SQLite error to the port's error, naming the file.
fn db_error(path: &Path, e: &rusqlite::Error) -> StoreError {
    let path = path.display();
    match cadre_sqlite::classify(e) {
        Fault::Busy => StoreError::Unavailable(format!(
            "state store {path} stayed locked by another process for more than {} s ({e}); retry later",
            cadre_sqlite::BUSY_LIMIT.as_secs()
        )),
        Fault::Corrupt => StoreError::Corrupt(format!(
            "state store {path} is damaged or is not an sqlite database ({e}); move it aside and start with a new file"
        )),
        Fault::Unreadable => StoreError::Corrupt(format!(
            "state store {path} holds a row this build cannot read ({e}); it was written by another version of cadre"
        )),
        Fault::Other => StoreError::Unavailable(format!("state store {path}: {e}")),
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the store in the SQLite file at `path`.
    ///
    /// # Errors
    /// Returns [`StoreError::Unavailable`] when the file cannot be opened or created, and
    /// [`StoreError::Corrupt`] when it is not an SQLite database.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let conn = cadre_sqlite::open_shared(path, SCHEMA).map_err(|e| db_error(path, &e))?;
        debug!(path = %path.display(), "opened sqlite store");
        Ok(SqliteStore { conn, path: Arc::new(path.to_path_buf()) })
    }

    /// Runs `work` on the connection in the blocking pool, so SQLite never stalls the async runtime.
    async fn run<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, Failure> + Send + 'static,
    {
        let path = Arc::clone(&self.path);
        cadre_sqlite::run(&self.conn, move |conn| {
            work(conn).map_err(|f| match f {
                Failure::Db(e) => db_error(&path, &e),
                Failure::Store(e) => e,
            })
        })
        .await
        .unwrap_or_else(|cancelled| {
            Err(StoreError::Unavailable(format!(
                "state store {}: {cancelled}; retry",
                self.path.display()
            )))
        })
    }
}

/// Decodes a JSON column, naming the row in the error (`what`, e.g. "event 3 of task …").
fn decode<T: DeserializeOwned>(json: &str, what: impl FnOnce() -> String) -> Result<T, Failure> {
    serde_json::from_str(json).map_err(|e| {
        Failure::Store(StoreError::Corrupt(format!(
            "{} holds invalid json ({e}); it was written by another version of cadre or edited by hand",
            what()
        )))
    })
}

fn encode<T: serde::Serialize>(
    value: &T,
    what: impl FnOnce() -> String,
) -> Result<String, Failure> {
    serde_json::to_string(value).map_err(|e| {
        Failure::Store(StoreError::Corrupt(format!("cannot encode {} as json: {e}", what())))
    })
}

fn seq_to_sql(seq: u64) -> i64 {
    i64::try_from(seq).unwrap_or(i64::MAX)
}

/// The task as created, or `None` for an unknown id.
fn find_task(conn: &Connection, id: &TaskId) -> Result<Option<Task>, Failure> {
    let json: Option<String> = conn
        .prepare_cached("SELECT task FROM store_tasks WHERE id = ?1")?
        .query_row(params![id.as_str()], |r| r.get(0))
        .optional()?;
    json.map(|json| decode(&json, || format!("the task row of task {id}"))).transpose()
}

fn require_task(conn: &Connection, id: &TaskId) -> Result<Task, Failure> {
    find_task(conn, id)?.ok_or_else(|| Failure::Store(StoreError::TaskNotFound(id.clone())))
}

fn task_exists(conn: &Connection, id: &TaskId) -> Result<bool, Failure> {
    let found = conn
        .prepare_cached("SELECT 1 FROM store_tasks WHERE id = ?1")?
        .query_row(params![id.as_str()], |_| Ok(()))
        .optional()?;
    Ok(found.is_some())
}

/// Fails with `TaskNotFound` unless the task exists; cheaper than [`require_task`], which decodes it.
fn require_exists(conn: &Connection, id: &TaskId) -> Result<(), Failure> {
    if task_exists(conn, id)? {
        Ok(())
    } else {
        Err(StoreError::TaskNotFound(id.clone()).into())
    }
}

/// The task's log after `after_seq`, in order.
fn load_events(
    conn: &Connection,
    id: &TaskId,
    after_seq: u64,
) -> Result<Vec<EventRecord>, Failure> {
    let mut stmt = conn.prepare_cached(
        "SELECT seq, at, event FROM store_events WHERE task_id = ?1 AND seq > ?2 ORDER BY seq",
    )?;
    let rows = stmt.query_map(params![id.as_str(), seq_to_sql(after_seq)], |r| {
        Ok((r.get::<_, u64>(0)?, r.get::<_, i64>(1)?, r.get::<_, String>(2)?))
    })?;
    let mut records = Vec::new();
    for row in rows {
        let (seq, at, json) = row?;
        let event = decode(&json, || format!("event {seq} of task {id}"))?;
        records.push(EventRecord { seq, at: Timestamp(at), event });
    }
    Ok(records)
}

/// Appends `events` after `last_seq`, all at `at`.
fn insert_events(
    conn: &Connection,
    id: &TaskId,
    last_seq: u64,
    events: &[Event],
    at: Timestamp,
) -> Result<(), Failure> {
    let mut insert = conn.prepare_cached(
        "INSERT INTO store_events (task_id, seq, at, event) VALUES (?1, ?2, ?3, ?4)",
    )?;
    for (seq, event) in (last_seq + 1..).zip(events) {
        let json = encode(event, || format!("event {seq} of task {id}"))?;
        insert.execute(params![id.as_str(), seq_to_sql(seq), at.0, json])?;
    }
    Ok(())
}

/// The task with its folded state; `updated_at` is its last event's time.
fn summary(conn: &Connection, task: Task) -> Result<TaskSummary, Failure> {
    let events = load_events(conn, &task.id, 0)?;
    let state = TaskState::fold(&events);
    let updated_at = events.last().map_or(task.created_at, |e| e.at);
    Ok(TaskSummary { task, state, updated_at })
}

#[async_trait]
impl StateStore for SqliteStore {
    async fn create_task(&self, task: &Task) -> Result<(), StoreError> {
        let task = task.clone();
        self.run(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            if task_exists(&tx, &task.id)? {
                return Err(StoreError::TaskExists(task.id).into());
            }
            let json = encode(&task, || format!("task {}", task.id))?;
            tx.prepare_cached(
                "INSERT INTO store_tasks (id, created_at, task) VALUES (?1, ?2, ?3)",
            )?
            .execute(params![task.id.as_str(), task.created_at.0, json])?;
            let (id, at) = (task.id.clone(), task.created_at);
            insert_events(&tx, &id, 0, &[Event::Created { task }], at)?;
            tx.commit()?;
            debug!(task_id = %id, "created task");
            Ok(())
        })
        .await
    }

    async fn events(&self, task: &TaskId) -> Result<Vec<EventRecord>, StoreError> {
        self.events_after(task, 0).await
    }

    async fn events_after(
        &self,
        task: &TaskId,
        after_seq: u64,
    ) -> Result<Vec<EventRecord>, StoreError> {
        let id = task.clone();
        self.run(move |conn| {
            let tx = conn.transaction()?;
            require_exists(&tx, &id)?;
            load_events(&tx, &id, after_seq)
        })
        .await
    }

    async fn append(
        &self,
        task: &TaskId,
        events: Vec<Event>,
        at: Timestamp,
        only_if: Option<fn(TaskState) -> bool>,
    ) -> Result<(TaskState, bool), StoreError> {
        let id = task.clone();
        self.run(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            require_exists(&tx, &id)?;
            let log = load_events(&tx, &id, 0)?;
            let state = TaskState::fold(&log);
            if let Some(allowed) = only_if {
                if !allowed(state) {
                    debug!(task_id = %id, state = state.name(), "append refused by its condition");
                    return Ok((state, false));
                }
            }
            let last_seq = log.last().map_or(0, |e| e.seq);
            insert_events(&tx, &id, last_seq, &events, at)?;
            tx.commit()?;
            let state = events.iter().fold(state, |s, e| s.apply(e));
            debug!(task_id = %id, appended = events.len(), state = state.name(), "appended events");
            Ok((state, true))
        })
        .await
    }

    async fn commit_step(&self, commit: StepCommit) -> Result<CommitOutcome, StoreError> {
        self.run(move |conn| {
            let StepCommit { task_id: id, key, events, artifacts, next, at } = commit;
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            require_exists(&tx, &id)?;
            let recorded: Option<String> = tx
                .prepare_cached("SELECT next FROM store_step_commits WHERE key = ?1")?
                .query_row(params![key.as_str()], |r| r.get(0))
                .optional()?;
            if let Some(json) = recorded {
                let next: Vec<Envelope> =
                    decode(&json, || format!("the step commit `{key}` of task {id}"))?;
                debug!(task_id = %id, key = %key, "step committed before; nothing written");
                return Ok(CommitOutcome::AlreadyCommitted { next });
            }
            let log = load_events(&tx, &id, 0)?;
            let state = TaskState::fold(&log);
            if state.is_terminal() {
                debug!(task_id = %id, key = %key, state = state.name(), "task finished; nothing written");
                return Ok(CommitOutcome::TaskFinished { state });
            }
            insert_events(&tx, &id, log.last().map_or(0, |e| e.seq), &events, at)?;
            {
                let mut put = tx.prepare_cached(
                    "INSERT OR REPLACE INTO store_artifacts (task_id, name, bytes) VALUES (?1, ?2, ?3)",
                )?;
                for (name, bytes) in &artifacts {
                    put.execute(params![id.as_str(), name.as_str(), bytes])?;
                }
            }
            let next = encode(&next, || format!("the next messages of step commit `{key}`"))?;
            tx.prepare_cached(
                "INSERT INTO store_step_commits (key, task_id, at, next) VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![key.as_str(), id.as_str(), at.0, next])?;
            tx.commit()?;
            debug!(task_id = %id, key = %key, events = events.len(), artifacts = artifacts.len(), "step committed");
            Ok(CommitOutcome::Committed)
        })
        .await
    }

    async fn committed_next(
        &self,
        key: &IdempotencyKey,
    ) -> Result<Option<Vec<Envelope>>, StoreError> {
        let key = key.clone();
        self.run(move |conn| {
            let recorded: Option<String> = conn
                .prepare_cached("SELECT next FROM store_step_commits WHERE key = ?1")?
                .query_row(params![key.as_str()], |r| r.get(0))
                .optional()?;
            recorded.map(|json| decode(&json, || format!("the step commit `{key}`"))).transpose()
        })
        .await
    }

    async fn artifact(
        &self,
        task: &TaskId,
        name: &ArtifactName,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let (id, name) = (task.clone(), name.clone());
        self.run(move |conn| {
            let tx = conn.transaction()?;
            require_exists(&tx, &id)?;
            let bytes = tx
                .prepare_cached(
                    "SELECT bytes FROM store_artifacts WHERE task_id = ?1 AND name = ?2",
                )?
                .query_row(params![id.as_str(), name.as_str()], |r| r.get(0))
                .optional()?;
            Ok(bytes)
        })
        .await
    }

    async fn task(&self, task: &TaskId) -> Result<TaskSummary, StoreError> {
        let id = task.clone();
        self.run(move |conn| {
            let tx = conn.transaction()?;
            let task = require_task(&tx, &id)?;
            summary(&tx, task)
        })
        .await
    }

    async fn list_tasks(&self, limit: usize) -> Result<Vec<TaskSummary>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.run(move |conn| {
            let tx = conn.transaction()?;
            let rows: Vec<(String, String)> = tx
                .prepare_cached(
                    "SELECT id, task FROM store_tasks ORDER BY created_at DESC, id DESC LIMIT ?1",
                )?
                .query_map(params![limit], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<Result<_, _>>()?;
            rows.into_iter()
                .map(|(id, json)| {
                    let task: Task = decode(&json, || format!("the task row of task {id}"))?;
                    summary(&tx, task)
                })
                .collect()
        })
        .await
    }

    async fn resolve_prefix(&self, prefix: &str) -> Result<TaskId, StoreError> {
        let given = prefix.to_owned();
        self.run(move |conn| {
            let wanted = given.trim().to_ascii_lowercase();
            let tx = conn.transaction()?;
            if let Ok(id) = TaskId::parse(&wanted) {
                require_exists(&tx, &id)?;
                return Ok(id);
            }
            let end = format!("{wanted}{PREFIX_END}");
            let matches: Vec<String> = tx
                .prepare_cached(
                    "SELECT id FROM store_tasks WHERE id >= ?1 AND id < ?2 ORDER BY id LIMIT 2",
                )?
                .query_map(params![wanted, end], |r| r.get(0))?
                .collect::<Result<_, _>>()?;
            match matches.as_slice() {
                [only] if wanted.chars().count() >= MIN_PREFIX => {
                    TaskId::parse(only).map_err(|e| {
                        StoreError::Corrupt(format!("the task row `{only}` has an invalid id: {e}"))
                            .into()
                    })
                }
                _ => {
                    let matches: usize = tx.query_row(
                        "SELECT count(*) FROM store_tasks WHERE id >= ?1 AND id < ?2",
                        params![wanted, end],
                        |r| r.get(0),
                    )?;
                    Err(StoreError::AmbiguousPrefix { prefix: given, matches }.into())
                }
            }
        })
        .await
    }
}
