//! The SQLite file (WAL mode) both adapters use, possibly shared with the state store and the queue.
//!
//! Every adapter of the process on one file shares one connection (`cadre-sqlite`), so the ledger, the
//! cache, the store and the queue never fight each other for SQLite's write lock.
//! Errors are described once here (naming the file and the fix) and mapped to each port's error enum by
//! the adapter.

mod cache;
mod ledger;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use cadre_sqlite::Fault;
use rusqlite::Connection;

pub use cache::SqliteModelCache;
pub use ledger::SqliteUsageLedger;

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
    conn: cadre_sqlite::Shared,
    path: Arc<PathBuf>,
    /// What the file holds for this adapter, for messages ("usage ledger", "model cache").
    what: &'static str,
}

impl Db {
    /// Opens (creating if needed) the file and this adapter's tables.
    pub(crate) fn open(path: &Path, what: &'static str, schema: &str) -> Result<Db, Problem> {
        let conn = cadre_sqlite::open_shared(path, schema).map_err(|e| describe(path, what, &e))?;
        tracing::debug!(path = %path.display(), what, "opened sqlite");
        Ok(Db { conn, path: Arc::new(path.to_path_buf()), what })
    }

    /// Adds a column that files written by older builds lack (see [`cadre_sqlite::ensure_column`]).
    /// Then applies `after` (e.g. an index on the new column).
    pub(crate) fn ensure_column(
        &self,
        table: &str,
        column: &str,
        declaration: &str,
        after: &str,
    ) -> Result<(), Problem> {
        cadre_sqlite::ensure_column(&self.conn, table, column, declaration)
            .and_then(|()| cadre_sqlite::apply(&self.conn, after))
            .map_err(|e| describe(&self.path, self.what, &e))
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
        let path = Arc::clone(&self.path);
        let what = self.what;
        cadre_sqlite::run(&self.conn, move |conn| {
            work(conn).map_err(|f| match f {
                Failure::Db(e) => describe(&path, what, &e),
                Failure::Corrupt(why) => Problem::Corrupt(format!(
                    "{what} {}: {why}; it was written by another version of cadre or edited by hand",
                    path.display()
                )),
            })
        })
        .await
        .unwrap_or_else(|cancelled| {
            Err(Problem::Unavailable(format!("{what} {}: {cancelled}; retry", self.path.display())))
        })
    }
}

/// Describes an SQLite error, naming the file and what to do.
fn describe(path: &Path, what: &str, e: &rusqlite::Error) -> Problem {
    let path = path.display();
    match cadre_sqlite::classify(e) {
        Fault::Busy => Problem::Unavailable(format!(
            "{what} {path} stayed locked by another process for more than {} s ({e}); retry later",
            cadre_sqlite::BUSY_LIMIT.as_secs()
        )),
        Fault::Corrupt => Problem::Corrupt(format!(
            "{what} {path} is damaged or is not an sqlite database ({e}); move it aside and start with a new file"
        )),
        Fault::Unreadable => Problem::Corrupt(format!(
            "{what} {path} holds a row this build cannot read ({e}); it was written by another version of cadre"
        )),
        Fault::Other => Problem::Unavailable(format!("{what} {path}: {e}")),
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
