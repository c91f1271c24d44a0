//! The embedded queue: named queues in an SQLite file (WAL mode), shared safely by every connection and
//! process that opens the file.
//!
//! A queued message is one row of `queue_messages`. Receiving a message stamps the row with a fresh random
//! receipt, bumps its delivery count and pushes its `visible_at` past the visibility timeout; acking deletes
//! the row. Rows of settled messages are never kept, so the table holds only live work and `receive` costs
//! the same with an empty history as with millions of past messages. `receive` reads the head of the
//! `(queue, visible_at, seq)` index, which is O(log n) whatever the backlog.
//!
//! ```text
//! publish ──▶ ready ──receive──▶ in flight ──ack──▶ (row deleted)
//!               ▲                  │   │
//!               └──timeout/retry───┘   └──dead_letter / too many deliveries──▶ queue_dead_letters
//! ```
//!
//! A receipt is `<row seq>.<random token>`: the seq finds the row through its primary key, and the token,
//! renewed at every delivery, proves the holder got the *latest* delivery.

use async_trait::async_trait;
use cadre_domain::ports::clock::Clock;
use cadre_domain::ports::queue::{
    DeadLetter, Delivery, OutgoingMessage, Queue, QueueDepth, QueueError, Receipt,
};
use cadre_domain::{MessageId, Timestamp};
use cadre_sqlite::Fault;
use rusqlite::{params, Connection, Transaction, TransactionBehavior};
use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tracing::{debug, error};

/// Tables are prefixed `queue_` so the queue can share one file with the state store.
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS queue_messages (
    seq          INTEGER PRIMARY KEY,
    queue        TEXT    NOT NULL,
    id           TEXT    NOT NULL,
    body         BLOB    NOT NULL,
    published_at INTEGER NOT NULL,
    visible_at   INTEGER NOT NULL,
    deliveries   INTEGER NOT NULL DEFAULT 0,
    receipt      TEXT,
    UNIQUE (queue, id)
);
CREATE INDEX IF NOT EXISTS queue_messages_by_visibility
    ON queue_messages (queue, visible_at, seq);
CREATE TABLE IF NOT EXISTS queue_dead_letters (
    seq          INTEGER PRIMARY KEY,
    queue        TEXT    NOT NULL,
    id           TEXT    NOT NULL,
    body         BLOB    NOT NULL,
    reason       TEXT    NOT NULL,
    deliveries   INTEGER NOT NULL,
    published_at INTEGER NOT NULL,
    dead_at      INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS queue_dead_letters_by_queue ON queue_dead_letters (queue, seq);
";

/// The oldest deliverable messages, in delivery order. Reads the head of the visibility index.
pub(crate) const HEAD_SQL: &str = "
SELECT seq, deliveries, receipt IS NULL FROM queue_messages
WHERE queue = ?1 AND visible_at <= ?2
ORDER BY visible_at, seq LIMIT ?3";

/// Whether anything is deliverable: a plain read, which in WAL mode takes no lock that blocks a writer,
/// so idle receivers polling an empty queue do not stall publishers.
const PEEK_SQL: &str = "
SELECT EXISTS (SELECT 1 FROM queue_messages WHERE queue = ?1 AND visible_at <= ?2)";

/// Claims the oldest deliverable messages in one statement, each with a fresh random receipt token.
pub(crate) const CLAIM_SQL: &str = "
UPDATE queue_messages
SET deliveries = deliveries + 1, visible_at = ?3, receipt = lower(hex(randomblob(12)))
WHERE seq IN (
    SELECT seq FROM queue_messages
    WHERE queue = ?1 AND visible_at <= ?2
    ORDER BY visible_at, seq LIMIT ?4
)
RETURNING seq, id, body, deliveries, published_at, receipt";

const PUBLISH_SQL: &str = "
INSERT OR IGNORE INTO queue_messages (queue, id, body, published_at, visible_at)
VALUES (?1, ?2, ?3, ?4, ?5)";

const ACK_SQL: &str = "DELETE FROM queue_messages WHERE seq = ?1 AND queue = ?2 AND receipt = ?3";

const RETRY_SQL: &str = "
UPDATE queue_messages SET visible_at = ?4, receipt = NULL
WHERE seq = ?1 AND queue = ?2 AND receipt = ?3";

const EXTEND_SQL: &str = "
UPDATE queue_messages SET visible_at = ?4
WHERE seq = ?1 AND queue = ?2 AND receipt = ?3";

/// Copies a message row to the dead letters; the caller deletes the row in the same transaction.
const BURY_SQL: &str = "
INSERT INTO queue_dead_letters (queue, id, body, reason, deliveries, published_at, dead_at)
SELECT queue, id, body, ?2, deliveries, published_at, ?3 FROM queue_messages WHERE seq = ?1";

const DELETE_SQL: &str = "DELETE FROM queue_messages WHERE seq = ?1";

const DEPTH_SQL: &str = "
SELECT
    (SELECT count(*) FROM queue_messages WHERE queue = ?1 AND visible_at <= ?2),
    (SELECT count(*) FROM queue_messages WHERE queue = ?1 AND visible_at > ?2),
    (SELECT count(*) FROM queue_dead_letters WHERE queue = ?1)";

const DEAD_LETTERS_SQL: &str = "
SELECT id, body, reason, deliveries, dead_at FROM queue_dead_letters
WHERE queue = ?1 ORDER BY seq LIMIT ?2";

/// Knobs of an [`EmbeddedQueue`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueConfig {
    /// A message delivered this many times without an ack is dead-lettered instead of delivered again
    /// (a poison message must not crash workers forever). Values below 1 count as 1.
    pub max_deliveries: u32,
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig { max_deliveries: 5 }
    }
}

/// A named, durable queue in an SQLite file.
///
/// Cloning is not offered: open the file again for another connection. Several instances (in one
/// process or many) may use the same file and the same queue name at once; SQLite's write lock makes each
/// call atomic, so two receivers never get the same message within its visibility timeout.
pub struct EmbeddedQueue {
    conn: cadre_sqlite::Shared,
    site: Arc<Site>,
    max_deliveries: u32,
    clock: Arc<dyn Clock>,
}

impl fmt::Debug for EmbeddedQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmbeddedQueue")
            .field("path", &self.site.path)
            .field("name", &self.site.name)
            .field("max_deliveries", &self.max_deliveries)
            .finish_non_exhaustive()
    }
}

/// Which file and queue a call is about, for error messages.
#[derive(Debug)]
struct Site {
    path: PathBuf,
    name: String,
}

/// What went wrong inside a database closure: an SQLite error still to be described, or a queue error.
enum Failure {
    Db(rusqlite::Error),
    Queue(QueueError),
}

impl From<rusqlite::Error> for Failure {
    fn from(e: rusqlite::Error) -> Self {
        Failure::Db(e)
    }
}

impl Site {
    /// Maps an SQLite error to the port's error, naming the file and the queue.
    fn error(&self, e: &rusqlite::Error) -> QueueError {
        let (path, name) = (self.path.display(), &self.name);
        match cadre_sqlite::classify(e) {
            Fault::Busy => QueueError::Unavailable(format!(
                "queue `{name}` in {path} stayed locked by another process for more than {} s ({e}); retry later",
                cadre_sqlite::BUSY_LIMIT.as_secs()
            )),
            Fault::Corrupt => QueueError::Corrupt(format!(
                "queue `{name}`: {path} is damaged or is not an sqlite database ({e}); move it aside and start with a new file"
            )),
            Fault::Unreadable => QueueError::Corrupt(format!(
                "queue `{name}` in {path} holds a row this build cannot read ({e}); it was written by another version of cadre"
            )),
            Fault::Other => QueueError::Unavailable(format!("queue `{name}` in {path}: {e}")),
        }
    }

    fn fail(&self, failure: Failure) -> QueueError {
        match failure {
            Failure::Db(e) => self.error(&e),
            Failure::Queue(e) => e,
        }
    }
}

impl EmbeddedQueue {
    /// Opens (creating if needed) the queue `name` in the SQLite file at `path`.
    ///
    /// The file may be shared with other queues, with the state store and with other processes.
    ///
    /// # Errors
    /// Returns [`QueueError::Unavailable`] when the file cannot be opened or created, and
    /// [`QueueError::Corrupt`] when it is not an SQLite database.
    pub fn open(
        path: &Path,
        name: &str,
        config: QueueConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, QueueError> {
        let site = Site { path: path.to_path_buf(), name: name.to_owned() };
        let conn = cadre_sqlite::open_shared(path, SCHEMA).map_err(|e| site.error(&e))?;
        debug!(path = %path.display(), queue = name, "opened embedded queue");
        Ok(EmbeddedQueue {
            conn,
            site: Arc::new(site),
            max_deliveries: config.max_deliveries.max(1),
            clock,
        })
    }

    /// Runs `work` on the connection in the blocking pool, so SQLite never stalls the async runtime.
    async fn run<T, F>(&self, work: F) -> Result<T, QueueError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection, &str) -> Result<T, Failure> + Send + 'static,
    {
        let site = Arc::clone(&self.site);
        cadre_sqlite::run(&self.conn, move |conn| work(conn, &site.name).map_err(|f| site.fail(f)))
            .await
            .unwrap_or_else(|cancelled| {
                Err(QueueError::Unavailable(format!(
                    "queue `{}`: {cancelled}; retry",
                    self.site.name
                )))
            })
    }

    /// Settles one delivery with `sql` (bound to seq, queue, token and `extra`), refusing a stale receipt.
    async fn settle(
        &self,
        receipt: &Receipt,
        sql: &'static str,
        extra: i64,
    ) -> Result<(), QueueError> {
        let Some((seq, token)) = parse_receipt(receipt) else {
            return Err(QueueError::StaleReceipt(receipt.clone()));
        };
        let receipt = receipt.clone();
        self.run(move |conn, name| {
            let changed = conn.prepare_cached(sql)?.execute(params![seq, name, token, extra])?;
            if changed == 0 {
                return Err(Failure::Queue(QueueError::StaleReceipt(receipt)));
            }
            Ok(())
        })
        .await
    }
}

fn parse_receipt(receipt: &Receipt) -> Option<(i64, String)> {
    let (seq, token) = receipt.0.split_once('.')?;
    Some((seq.parse().ok()?, token.to_owned()))
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Why a message that used up its deliveries is dead-lettered. A row without a receipt was handed back
/// with `retry_later`; one with a receipt timed out, which means its worker died or hung.
fn exhausted_reason(deliveries: u32, max: u32, retried: bool) -> String {
    let why = if retried {
        "its last delivery was handed back with retry_later and no deliveries are left"
    } else {
        "the worker handling it probably crashed"
    };
    format!("delivered {deliveries} times without being acked (max {max}); {why}")
}

/// Moves the message row `seq` to the dead letters.
fn bury(tx: &Transaction<'_>, seq: i64, reason: &str, now: Timestamp) -> rusqlite::Result<()> {
    tx.prepare_cached(BURY_SQL)?.execute(params![seq, reason, now.0])?;
    tx.prepare_cached(DELETE_SQL)?.execute(params![seq])?;
    Ok(())
}

#[async_trait]
impl Queue for EmbeddedQueue {
    async fn publish(&self, messages: Vec<OutgoingMessage>) -> Result<(), QueueError> {
        if messages.is_empty() {
            return Ok(());
        }
        let now = self.clock.now();
        self.run(move |conn, name| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let mut added = 0usize;
            {
                let mut insert = tx.prepare_cached(PUBLISH_SQL)?;
                for m in &messages {
                    let visible_at = now.plus_millis(millis(m.delay));
                    added += insert.execute(params![
                        name,
                        m.id.as_str(),
                        m.body,
                        now.0,
                        visible_at.0
                    ])?;
                }
            }
            tx.commit()?;
            debug!(queue = name, messages = messages.len(), added, "published");
            Ok(())
        })
        .await
    }

    async fn receive(&self, max: usize, visibility: Duration) -> Result<Vec<Delivery>, QueueError> {
        if max == 0 {
            return Ok(Vec::new());
        }
        let now = self.clock.now();
        let hidden_until = now.plus_millis(millis(visibility));
        let limit = i64::try_from(max).unwrap_or(i64::MAX);
        let max_deliveries = self.max_deliveries;
        self.run(move |conn, name| {
            let any: bool = conn.prepare_cached(PEEK_SQL)?.query_row(params![name, now.0], |r| r.get(0))?;
            if !any {
                return Ok(Vec::new());
            }
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            // Dead-letter exhausted messages at the head until the head is all deliverable. Each pass
            // reads at most `max` index entries, so the cost stays O(max · log n).
            let head = loop {
                let head: Vec<(i64, u32, bool)> = tx
                    .prepare_cached(HEAD_SQL)?
                    .query_map(params![name, now.0, limit], |r| {
                        Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                    })?
                    .collect::<Result<_, _>>()?;
                let mut buried = 0;
                for &(seq, deliveries, retried) in &head {
                    if deliveries >= max_deliveries {
                        let reason = exhausted_reason(deliveries, max_deliveries, retried);
                        error!(queue = name, seq, deliveries, reason = %reason, "dead-lettered a message");
                        bury(&tx, seq, &reason, now)?;
                        buried += 1;
                    }
                }
                // Buried rows are gone from the head, so every pass makes progress.
                if buried == 0 {
                    break head;
                }
            };
            if head.is_empty() {
                tx.commit()?;
                return Ok(Vec::new());
            }
            let position: HashMap<i64, usize> =
                head.iter().enumerate().map(|(i, &(seq, _, _))| (seq, i)).collect();
            let mut claimed: Vec<(usize, Delivery)> = tx
                .prepare_cached(CLAIM_SQL)?
                .query_map(params![name, now.0, hidden_until.0, limit], |r| {
                    let seq: i64 = r.get(0)?;
                    let token: String = r.get(5)?;
                    let delivery = Delivery {
                        receipt: Receipt(format!("{seq}.{token}")),
                        id: MessageId::new(r.get::<_, String>(1)?),
                        body: r.get(2)?,
                        delivery_count: r.get(3)?,
                        published_at: Timestamp(r.get(4)?),
                    };
                    Ok((position.get(&seq).copied().unwrap_or(usize::MAX), delivery))
                })?
                .collect::<Result<_, _>>()?;
            tx.commit()?;
            claimed.sort_by_key(|(pos, _)| *pos);
            debug!(queue = name, received = claimed.len(), "received");
            Ok(claimed.into_iter().map(|(_, d)| d).collect())
        })
        .await
    }

    async fn ack(&self, receipts: &[Receipt]) -> Result<(), QueueError> {
        if receipts.is_empty() {
            return Ok(());
        }
        let receipts = receipts.to_vec();
        self.run(move |conn, name| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let mut stale = None;
            {
                let mut delete = tx.prepare_cached(ACK_SQL)?;
                for receipt in &receipts {
                    let deleted = match parse_receipt(receipt) {
                        Some((seq, token)) => delete.execute(params![seq, name, token])?,
                        None => 0,
                    };
                    if deleted == 0 && stale.is_none() {
                        stale = Some(receipt.clone());
                    }
                }
            }
            tx.commit()?;
            match stale {
                Some(receipt) => Err(Failure::Queue(QueueError::StaleReceipt(receipt))),
                None => Ok(()),
            }
        })
        .await
    }

    async fn retry_later(&self, receipt: &Receipt, delay: Duration) -> Result<(), QueueError> {
        let visible_at = self.clock.now().plus_millis(millis(delay));
        self.settle(receipt, RETRY_SQL, visible_at.0).await
    }

    async fn extend(&self, receipt: &Receipt, visibility: Duration) -> Result<(), QueueError> {
        let visible_at = self.clock.now().plus_millis(millis(visibility));
        self.settle(receipt, EXTEND_SQL, visible_at.0).await
    }

    async fn dead_letter(&self, receipt: &Receipt, reason: &str) -> Result<(), QueueError> {
        let Some((seq, token)) = parse_receipt(receipt) else {
            return Err(QueueError::StaleReceipt(receipt.clone()));
        };
        let now = self.clock.now();
        let (receipt, reason) = (receipt.clone(), reason.to_owned());
        self.run(move |conn, name| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let current: usize = tx.query_row(
                "SELECT count(*) FROM queue_messages WHERE seq = ?1 AND queue = ?2 AND receipt = ?3",
                params![seq, name, token],
                |r| r.get(0),
            )?;
            if current == 0 {
                return Err(Failure::Queue(QueueError::StaleReceipt(receipt)));
            }
            bury(&tx, seq, &reason, now)?;
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn dead_letters(&self, limit: usize) -> Result<Vec<DeadLetter>, QueueError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.run(move |conn, name| {
            let letters = conn
                .prepare_cached(DEAD_LETTERS_SQL)?
                .query_map(params![name, limit], |r| {
                    Ok(DeadLetter {
                        id: MessageId::new(r.get::<_, String>(0)?),
                        body: r.get(1)?,
                        reason: r.get(2)?,
                        delivery_count: r.get(3)?,
                        dead_at: Timestamp(r.get(4)?),
                    })
                })?
                .collect::<Result<_, _>>()?;
            Ok(letters)
        })
        .await
    }

    async fn depth(&self) -> Result<QueueDepth, QueueError> {
        let now = self.clock.now();
        self.run(move |conn, name| {
            let depth = conn.prepare_cached(DEPTH_SQL)?.query_row(params![name, now.0], |r| {
                Ok(QueueDepth { ready: r.get(0)?, pending: r.get(1)?, dead: r.get(2)? })
            })?;
            Ok(depth)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The query plans of the hot statements, one line per plan row.
    fn plan(conn: &Connection, sql: &str, params: impl rusqlite::Params) -> String {
        let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
        let rows = stmt.query_map(params, |r| r.get::<_, String>(3)).unwrap();
        rows.map(Result::unwrap).collect::<Vec<_>>().join("\n")
    }

    #[test]
    fn receive_reads_the_visibility_index_without_sorting() {
        let dir = tempfile::tempdir().unwrap();
        let shared = cadre_sqlite::open_shared(&dir.path().join("q.db"), SCHEMA).unwrap();
        let conn = shared.lock().unwrap();
        for (sql, plan) in [
            (HEAD_SQL, plan(&conn, HEAD_SQL, params!["q", 0, 10])),
            (CLAIM_SQL, plan(&conn, CLAIM_SQL, params!["q", 0, 0, 10])),
        ] {
            assert!(plan.contains("queue_messages_by_visibility"), "{sql}\n{plan}");
            assert!(!plan.contains("TEMP B-TREE"), "{sql}\n{plan}");
            for line in plan.lines().filter(|l| l.contains("queue_messages")) {
                assert!(line.starts_with("SEARCH"), "{sql}\n{plan}");
            }
        }
    }

    #[test]
    fn a_busy_file_is_unavailable_and_a_damaged_one_corrupt() {
        let site = Site { path: PathBuf::from("/tmp/q.db"), name: "work".into() };
        let failure = |code| rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(code), None);
        let busy = site.error(&failure(rusqlite::ffi::SQLITE_BUSY));
        assert!(matches!(&busy, QueueError::Unavailable(m) if m.contains("/tmp/q.db")), "{busy:?}");
        assert!(busy.is_retryable());
        let locked = site.error(&failure(rusqlite::ffi::SQLITE_LOCKED));
        assert!(matches!(locked, QueueError::Unavailable(_)), "{locked:?}");
        let corrupt = site.error(&failure(rusqlite::ffi::SQLITE_CORRUPT));
        assert!(matches!(corrupt, QueueError::Corrupt(_)), "{corrupt:?}");
    }

    #[test]
    fn receipts_parse_only_in_their_own_shape() {
        assert_eq!(parse_receipt(&Receipt("12.ab".into())), Some((12, "ab".into())));
        assert_eq!(parse_receipt(&Receipt("ab".into())), None);
        assert_eq!(parse_receipt(&Receipt("x.ab".into())), None);
    }
}
