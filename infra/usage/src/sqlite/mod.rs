//! The SQLite file (WAL mode) both adapters use, possibly shared with the state store and the queue.
//!
//! Each adapter holds one connection behind a mutex and runs every statement on tokio's blocking pool.
//! Errors are described once here (naming the file and the fix) and mapped to each port's error enum by
//! the adapter.

mod cache;
mod ledger;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rusqlite::{Connection, ErrorCode, TransactionBehavior};

pub use cache::SqliteModelCache;
pub use ledger::SqliteUsageLedger;

/// How long a statement waits for another connection's write lock before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// A database problem, described for people; the adapters map it to their port's error.
#[derive(Debug)]
pub(crate) enum Problem {
    /// Busy, unreadable, cancelled: a later call may succeed.
    Unavailable(String),
    /// Data this build cannot read.
    Corrupt(String),
}

/// What went wrong inside a closure: an SQLite error still to be described, or a decoding problem.
pub(crate) enum Failure {
    Db(rusqlite::Error),
    Corrupt(String),
}

impl From<rusqlite::Error> for Failure {
    fn from(e: rusqlite::Error) -> Self {
        Failure::Db(e)
    }
}

/// One connection to the file, for one adapter.
pub(crate) struct Db {
    conn: Arc<Mutex<Connection>>,
    path: Arc<PathBuf>,
    /// What the file holds for this adapter, for messages ("usage ledger", "model cache").
    what: &'static str,
}

impl Db {
    /// Opens (creating if needed) the file and this adapter's tables.
    pub(crate) fn open(path: &Path, what: &'static str, schema: &str) -> Result<Db, Problem> {
        let conn = open_connection(path, schema).map_err(|e| describe(path, what, &e))?;
        tracing::debug!(path = %path.display(), what, "opened sqlite");
        Ok(Db { conn: Arc::new(Mutex::new(conn)), path: Arc::new(path.to_path_buf()), what })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `work` on the connection in the blocking pool, so SQLite never stalls the async runtime.
    pub(crate) async fn run<T, F>(&self, work: F) -> Result<T, Problem>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, Failure> + Send + 'static,
    {
        let conn = Arc::clone(&self.conn);
        let path = Arc::clone(&self.path);
        let what = self.what;
        let joined = tokio::task::spawn_blocking(move || {
            // A panic while holding the lock leaves the connection usable: its transaction rolled back
            // when it was dropped.
            let mut guard = conn.lock().unwrap_or_else(PoisonError::into_inner);
            work(&mut guard).map_err(|f| match f {
                Failure::Db(e) => describe(&path, what, &e),
                Failure::Corrupt(why) => Problem::Corrupt(format!(
                    "{what} {}: {why}; it was written by another version of cadre or edited by hand",
                    path.display()
                )),
            })
        })
        .await;
        match joined {
            Ok(result) => result,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(e) => Err(Problem::Unavailable(format!(
                "{what} {}: the database call was cancelled ({e}); retry",
                self.path.display()
            ))),
        }
    }
}

fn open_connection(path: &Path, schema: &str) -> rusqlite::Result<Connection> {
    let mut conn = Connection::open(path)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    // WAL lets readers run beside the one writer; NORMAL syncs at checkpoints only, which in WAL mode
    // can lose the last commits on power loss but never corrupts the file.
    let _mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    tx.execute_batch(schema)?;
    tx.commit()?;
    Ok(conn)
}

/// Describes an SQLite error, naming the file and what to do.
fn describe(path: &Path, what: &str, e: &rusqlite::Error) -> Problem {
    let path = path.display();
    match e {
        rusqlite::Error::SqliteFailure(f, _) => match f.code {
            ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked => Problem::Unavailable(format!(
                "{what} {path} stayed locked by another connection for more than {} s ({e}); retry later",
                BUSY_TIMEOUT.as_secs()
            )),
            ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase => Problem::Corrupt(format!(
                "{what} {path} is damaged or is not an sqlite database ({e}); move it aside and start with a new file"
            )),
            _ => Problem::Unavailable(format!("{what} {path}: {e}")),
        },
        rusqlite::Error::FromSqlConversionFailure(..)
        | rusqlite::Error::InvalidColumnType(..)
        | rusqlite::Error::IntegralValueOutOfRange(..) => Problem::Corrupt(format!(
            "{what} {path} holds a row this build cannot read ({e}); it was written by another version of cadre"
        )),
        _ => Problem::Unavailable(format!("{what} {path}: {e}")),
    }
}

/// A count as an SQLite integer; counts beyond `i64::MAX` (never in practice) are clamped.
pub(crate) fn to_sql(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// An SQLite integer read back as a count; a negative value means the row was not written by Cadre.
pub(crate) fn from_sql(n: i64, column: &str) -> Result<u64, Failure> {
    u64::try_from(n).map_err(|_| Failure::Corrupt(format!("column {column} holds {n}, below zero")))
}
