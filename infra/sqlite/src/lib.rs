//! SQLite plumbing shared by the embedded adapters (queue, store, usage ledger, knowledge metadata):
//! one connection per database file per process, WAL settings, a busy handler that waits in
//! microseconds, running calls off the async runtime, and classifying SQLite's errors.
//!
//! Key decision: every adapter in a process that opens the same file gets the *same* connection.
//! SQLite allows one writer per file; two connections in one process would fight for that lock, and
//! SQLite's default busy handler waits in steps that quickly reach milliseconds, so a 30 µs commit
//! becomes a multi-millisecond stall. Sharing one connection turns that fight into a mutex hand-off.
//! Between processes (a worker and the CLI) the custom busy handler keeps waits short.
//!
//! This crate knows nothing of Cadre's ports or domain; adapters map [`Fault`] to their port's error.

use rusqlite::{Connection, ErrorCode};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, Weak};
use std::time::Duration;

/// A connection shared by every adapter of this process that uses the same file.
pub type Shared = Arc<Mutex<Connection>>;

/// How long a call waits for another process's write lock before giving up with [`Fault::Busy`].
pub const BUSY_LIMIT: Duration = Duration::from_secs(5);

/// Opens the process's connection to the database at `path` (creating the file), then applies
/// `schema` (idempotent `CREATE … IF NOT EXISTS` statements) in one immediate transaction.
///
/// # Errors
/// Any SQLite error while opening, configuring or applying the schema; see [`classify`].
pub fn open_shared(path: &Path, schema: &str) -> rusqlite::Result<Shared> {
    let shared = connection_for(path)?;
    apply(&shared, schema)?;
    Ok(shared)
}

/// Applies idempotent statements (`CREATE … IF NOT EXISTS`) in one immediate transaction.
///
/// # Errors
/// Any SQLite error while applying them.
pub fn apply(shared: &Shared, statements: &str) -> rusqlite::Result<()> {
    let mut conn = shared.lock().unwrap_or_else(PoisonError::into_inner);
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    tx.execute_batch(statements)?;
    tx.commit()
}

/// Adds `column` (with its SQL declaration, e.g. `TEXT`) to `table` when a file written by an older
/// build lacks it, so upgrading never loses a database. `ALTER TABLE … ADD COLUMN` is not idempotent in
/// SQLite, hence the check first, in the same immediate transaction.
///
/// # Errors
/// Any SQLite error while reading the table's columns or altering it.
pub fn ensure_column(
    shared: &Shared,
    table: &str,
    column: &str,
    declaration: &str,
) -> rusqlite::Result<()> {
    let mut conn = shared.lock().unwrap_or_else(PoisonError::into_inner);
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let exists = {
        let mut stmt = tx.prepare(&format!("PRAGMA table_info({table})"))?;
        let names = stmt.query_map([], |row| row.get::<_, String>(1))?;
        let mut found = false;
        for name in names {
            found |= name? == column;
        }
        found
    };
    if !exists {
        tx.execute_batch(&format!("ALTER TABLE {table} ADD COLUMN {column} {declaration}"))?;
    }
    tx.commit()
}

fn connection_for(path: &Path) -> rusqlite::Result<Shared> {
    static OPEN: OnceLock<Mutex<HashMap<PathBuf, Weak<Mutex<Connection>>>>> = OnceLock::new();
    let key = registry_key(path);
    let mut open = OPEN.get_or_init(Mutex::default).lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(existing) = open.get(&key).and_then(Weak::upgrade) {
        return Ok(existing);
    }
    let shared = Arc::new(Mutex::new(configure(Connection::open(path)?)?));
    open.retain(|_, weak| weak.strong_count() > 0);
    open.insert(key, Arc::downgrade(&shared));
    Ok(shared)
}

/// The same file reached by different spellings of its path maps to one key.
fn registry_key(path: &Path) -> PathBuf {
    let parent = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    match (parent.canonicalize(), path.file_name()) {
        (Ok(dir), Some(name)) => dir.join(name),
        _ => path.to_path_buf(),
    }
}

fn configure(conn: Connection) -> rusqlite::Result<Connection> {
    conn.busy_handler(Some(wait_for_lock))?;
    // WAL lets readers run beside the one writer; NORMAL syncs at checkpoints only, which in WAL mode
    // can lose the last commits on power loss but never corrupts the file.
    let _mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    // Under steady traffic checkpoints rarely catch the WAL with no reader, so it can grow large;
    // cut it back to this size whenever it restarts.
    conn.pragma_update(None, "journal_size_limit", 32 * 1024 * 1024)?;
    // Checkpoints are where NORMAL syncs; every 1,000 pages (SQLite's default) means an fsync every few
    // hundred small commits. 8,000 pages (32 MiB of WAL) keeps them rare without letting the WAL grow far.
    conn.pragma_update(None, "wal_autocheckpoint", 8000)?;
    conn.pragma_update(None, "cache_size", -32_000)?;
    Ok(conn)
}

/// Busy-callback schedule: yield this many times first (the other writer's commit is usually
/// microseconds away), then sleep [`SHORT_SLEEP`] until [`SHORT_UNTIL`] calls, then [`LONG_SLEEP`].
const YIELDS: u64 = 10;
const SHORT_UNTIL: u64 = 100;
const SHORT_SLEEP: Duration = Duration::from_micros(50);
const LONG_SLEEP: Duration = Duration::from_millis(1);

/// SQLite's busy callback, called with how many times it was already called for this lock; waits
/// about [`BUSY_LIMIT`] in all before giving up. SQLite's own handler sleeps in steps that soon reach
/// milliseconds, which is what makes other SQLite-backed queues stall under two connections.
fn wait_for_lock(attempt: i32) -> bool {
    let attempt = u64::try_from(attempt).unwrap_or(0);
    let short_total = SHORT_SLEEP * u32::try_from(SHORT_UNTIL - YIELDS).unwrap_or(u32::MAX);
    let long_calls = BUSY_LIMIT.saturating_sub(short_total).as_millis() / LONG_SLEEP.as_millis();
    if attempt >= SHORT_UNTIL + u64::try_from(long_calls).unwrap_or(u64::MAX) {
        return false;
    }
    if attempt < YIELDS {
        std::thread::yield_now();
    } else if attempt < SHORT_UNTIL {
        std::thread::sleep(SHORT_SLEEP);
    } else {
        std::thread::sleep(LONG_SLEEP);
    }
    true
}

/// What kind of failure an SQLite error is, for mapping to a port's error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Another connection held the write lock for longer than [`BUSY_LIMIT`]; retrying may succeed.
    Busy,
    /// The file is damaged or not a database.
    Corrupt,
    /// A row holds a value this build cannot read (written by another version).
    Unreadable,
    /// Anything else (I/O, a full disk, a misuse).
    Other,
}

/// Classifies an SQLite error.
#[must_use]
pub fn classify(e: &rusqlite::Error) -> Fault {
    match e {
        rusqlite::Error::SqliteFailure(f, _) => match f.code {
            ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked => Fault::Busy,
            ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase => Fault::Corrupt,
            _ => Fault::Other,
        },
        rusqlite::Error::FromSqlConversionFailure(..)
        | rusqlite::Error::InvalidColumnType(..)
        | rusqlite::Error::IntegralValueOutOfRange(..) => Fault::Unreadable,
        _ => Fault::Other,
    }
}

/// Runs `work` with the connection without stalling the async runtime: on a multi-thread runtime in
/// place (`block_in_place`, which hands this worker's other tasks to another thread, so the call
/// itself costs no thread hop), otherwise on the blocking pool. A panic in `work` is resumed in the
/// caller; a poisoned lock is recovered, as a panic mid-transaction rolled the transaction back.
///
/// # Errors
/// [`Cancelled`] when the runtime is shutting down and the call never ran.
pub async fn run<T, F>(conn: &Shared, work: F) -> Result<T, Cancelled>
where
    T: Send + 'static,
    F: FnOnce(&mut Connection) -> T + Send + 'static,
{
    let in_place = tokio::runtime::Handle::try_current()
        .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
    if in_place {
        return Ok(tokio::task::block_in_place(|| {
            let mut guard = conn.lock().unwrap_or_else(PoisonError::into_inner);
            work(&mut guard)
        }));
    }
    let conn = Arc::clone(conn);
    let joined = tokio::task::spawn_blocking(move || {
        let mut guard = conn.lock().unwrap_or_else(PoisonError::into_inner);
        work(&mut guard)
    })
    .await;
    match joined {
        Ok(value) => Ok(value),
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(_) => Err(Cancelled),
    }
}

/// The database call was cancelled before it ran (the runtime is shutting down).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cancelled;

impl std::fmt::Display for Cancelled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the database call was cancelled before it ran")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_connection_per_file_per_process() {
        let dir = std::env::temp_dir().join(format!("cadre-sqlite-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let a = open_shared(&dir.join("x.db"), "CREATE TABLE IF NOT EXISTS a (v)").unwrap();
        let b = open_shared(&dir.join("./x.db"), "CREATE TABLE IF NOT EXISTS b (v)").unwrap();
        let c = open_shared(&dir.join("y.db"), "").unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        assert!(!Arc::ptr_eq(&a, &c));
        let mode: String =
            a.lock().unwrap().query_row("PRAGMA journal_mode", [], |r| r.get(0)).unwrap();
        assert_eq!(mode, "wal");
        drop((a, b, c));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_writer_waits_for_another_process_lock_instead_of_failing() {
        let dir = std::env::temp_dir().join(format!("cadre-sqlite-busy-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("busy.db");
        let shared = open_shared(&path, "CREATE TABLE IF NOT EXISTS t (v)").unwrap();
        // A second, unshared connection stands for another process holding the write lock.
        let mut other = Connection::open(&path).unwrap();
        let (locked, release) = (std::sync::mpsc::channel(), std::sync::mpsc::channel::<()>());
        let holder = std::thread::spawn(move || {
            let tx =
                other.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).unwrap();
            tx.execute("INSERT INTO t VALUES (1)", []).unwrap();
            locked.0.send(()).unwrap();
            release.1.recv().unwrap();
            tx.commit().unwrap();
        });
        locked.1.recv().unwrap();
        let releaser = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            release.0.send(()).unwrap();
        });
        let inserted = shared.lock().unwrap().execute("INSERT INTO t VALUES (2)", []);
        assert_eq!(inserted.unwrap(), 1, "the write must wait for the lock, not fail");
        holder.join().unwrap();
        releaser.join().unwrap();
        let rows: i64 =
            shared.lock().unwrap().query_row("SELECT count(*) FROM t", [], |r| r.get(0)).unwrap();
        assert_eq!(rows, 2);
        drop(shared);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
