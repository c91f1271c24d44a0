//! [`DeliveryLog`]: the deliveries already turned into work, kept durably for replay protection,
//! and the follow-up requests recorded for later.

use cadre_domain::Timestamp;
use cadre_sqlite::Shared;
use rusqlite::{params, OptionalExtension};
use std::path::Path;

use super::{ForgeKind, Trigger, TriggerEvent};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS forge_deliveries (
    forge TEXT NOT NULL,
    delivery TEXT NOT NULL,
    received_ms INTEGER NOT NULL,
    outcome TEXT,
    PRIMARY KEY (forge, delivery)
);
CREATE TABLE IF NOT EXISTS forge_follow_ups (
    forge TEXT NOT NULL,
    delivery TEXT NOT NULL,
    repository TEXT NOT NULL,
    number INTEGER NOT NULL,
    branch TEXT NOT NULL,
    author TEXT NOT NULL,
    body TEXT NOT NULL,
    task TEXT,
    received_ms INTEGER NOT NULL,
    PRIMARY KEY (forge, delivery)
);
";

/// The delivery log could not be read or written.
#[derive(Debug, thiserror::Error)]
#[error("the webhook delivery log failed: {0}; check that the Cadre home is writable")]
pub struct DeliveryLogError(String);

impl From<rusqlite::Error> for DeliveryLogError {
    fn from(e: rusqlite::Error) -> Self {
        DeliveryLogError(e.to_string())
    }
}

impl From<cadre_sqlite::Cancelled> for DeliveryLogError {
    fn from(e: cadre_sqlite::Cancelled) -> Self {
        DeliveryLogError(e.to_string())
    }
}

/// A review follow-up recorded because the engine cannot add a round to a finished task yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FollowUp {
    /// `github` or `gitlab`.
    pub forge: String,
    /// The delivery that carried it.
    pub delivery: String,
    /// The repository.
    pub repository: String,
    /// The pull / merge request.
    pub number: u64,
    /// Its branch.
    pub branch: String,
    /// The reviewer.
    pub author: String,
    /// What they asked.
    pub body: String,
    /// The task the branch belongs to, when known.
    pub task: Option<String>,
}

/// Delivery ids seen within the replay window, in SQLite (the Cadre database).
#[derive(Clone)]
pub struct DeliveryLog {
    conn: Shared,
}

impl DeliveryLog {
    /// Opens (creating) the log in the SQLite file at `path`.
    ///
    /// # Errors
    /// [`DeliveryLogError`] when the file cannot be opened or its tables created.
    pub fn open(path: &Path) -> Result<Self, DeliveryLogError> {
        Ok(DeliveryLog { conn: cadre_sqlite::open_shared(path, SCHEMA)? })
    }

    /// Claims `delivery` atomically: `true` when it was not seen within `window_ms` of `now` (and is
    /// now recorded), `false` for a replay. Entries older than the window are forgotten first.
    ///
    /// # Errors
    /// [`DeliveryLogError`] when the database fails.
    pub async fn claim(
        &self,
        forge: ForgeKind,
        delivery: &str,
        now: Timestamp,
        window_ms: u64,
    ) -> Result<bool, DeliveryLogError> {
        let delivery = delivery.to_owned();
        let oldest = now.0.saturating_sub(i64::try_from(window_ms).unwrap_or(i64::MAX));
        cadre_sqlite::run(&self.conn, move |conn| {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            tx.execute("DELETE FROM forge_deliveries WHERE received_ms < ?1", params![oldest])?;
            let inserted = tx.execute(
                "INSERT OR IGNORE INTO forge_deliveries (forge, delivery, received_ms) VALUES (?1, ?2, ?3)",
                params![forge.name(), delivery, now.0],
            )?;
            tx.commit()?;
            Ok::<_, rusqlite::Error>(inserted == 1)
        })
        .await?
        .map_err(Into::into)
    }

    /// Records what a claimed delivery became.
    ///
    /// # Errors
    /// [`DeliveryLogError`] when the database fails.
    pub async fn settle(
        &self,
        forge: ForgeKind,
        delivery: &str,
        outcome: &str,
    ) -> Result<(), DeliveryLogError> {
        let (delivery, outcome) = (delivery.to_owned(), outcome.to_owned());
        cadre_sqlite::run(&self.conn, move |conn| {
            conn.execute(
                "UPDATE forge_deliveries SET outcome = ?3 WHERE forge = ?1 AND delivery = ?2",
                params![forge.name(), delivery, outcome],
            )
            .map(drop)
        })
        .await?
        .map_err(Into::into)
    }

    /// Forgets a claimed delivery that did not become work, so the forge's redelivery can try again.
    ///
    /// # Errors
    /// [`DeliveryLogError`] when the database fails.
    pub async fn release(&self, forge: ForgeKind, delivery: &str) -> Result<(), DeliveryLogError> {
        let delivery = delivery.to_owned();
        cadre_sqlite::run(&self.conn, move |conn| {
            conn.execute(
                "DELETE FROM forge_deliveries WHERE forge = ?1 AND delivery = ?2",
                params![forge.name(), delivery],
            )
            .map(drop)
        })
        .await?
        .map_err(Into::into)
    }

    /// The recorded deliveries as `(forge, delivery, outcome)`, oldest first.
    ///
    /// # Errors
    /// [`DeliveryLogError`] when the database fails.
    pub async fn deliveries(
        &self,
    ) -> Result<Vec<(String, String, Option<String>)>, DeliveryLogError> {
        cadre_sqlite::run(&self.conn, |conn| {
            let mut stmt = conn.prepare(
                "SELECT forge, delivery, outcome FROM forge_deliveries ORDER BY received_ms, delivery",
            )?;
            let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
            rows.collect::<Result<Vec<_>, _>>()
        })
        .await?
        .map_err(Into::into)
    }

    /// Records a review follow-up (idempotent per delivery); `task` is the task its branch belongs to.
    ///
    /// # Errors
    /// [`DeliveryLogError`] when the database fails.
    pub async fn record_follow_up(
        &self,
        event: &TriggerEvent,
        task: Option<&str>,
        now: Timestamp,
    ) -> Result<(), DeliveryLogError> {
        let Trigger::Review { number, branch, author, body, .. } = &event.trigger else {
            return Ok(());
        };
        let row = (
            event.forge.name(),
            event.delivery.clone(),
            event.repository.clone(),
            i64::try_from(*number).unwrap_or(i64::MAX),
            branch.clone(),
            author.clone(),
            body.clone(),
            task.map(str::to_owned),
        );
        cadre_sqlite::run(&self.conn, move |conn| {
            conn.execute(
                "INSERT OR IGNORE INTO forge_follow_ups
                 (forge, delivery, repository, number, branch, author, body, task, received_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                params![row.0, row.1, row.2, row.3, row.4, row.5, row.6, row.7, now.0],
            )
            .map(drop)
        })
        .await?
        .map_err(Into::into)
    }

    /// The recorded follow-ups, oldest first.
    ///
    /// # Errors
    /// [`DeliveryLogError`] when the database fails.
    pub async fn follow_ups(&self) -> Result<Vec<FollowUp>, DeliveryLogError> {
        cadre_sqlite::run(&self.conn, |conn| {
            let mut stmt = conn.prepare(
                "SELECT forge, delivery, repository, number, branch, author, body, task
                 FROM forge_follow_ups ORDER BY received_ms, delivery",
            )?;
            let rows = stmt.query_map([], |r| {
                Ok(FollowUp {
                    forge: r.get(0)?,
                    delivery: r.get(1)?,
                    repository: r.get(2)?,
                    number: u64::try_from(r.get::<_, i64>(3)?).unwrap_or(0),
                    branch: r.get(4)?,
                    author: r.get(5)?,
                    body: r.get(6)?,
                    task: r.get(7)?,
                })
            })?;
            rows.collect::<Result<Vec<_>, _>>()
        })
        .await?
        .map_err(Into::into)
    }

    /// Whether `delivery` is recorded.
    ///
    /// # Errors
    /// [`DeliveryLogError`] when the database fails.
    pub async fn contains(
        &self,
        forge: ForgeKind,
        delivery: &str,
    ) -> Result<bool, DeliveryLogError> {
        let delivery = delivery.to_owned();
        cadre_sqlite::run(&self.conn, move |conn| {
            conn.query_row(
                "SELECT 1 FROM forge_deliveries WHERE forge = ?1 AND delivery = ?2",
                params![forge.name(), delivery],
                |_| Ok(()),
            )
            .optional()
            .map(|found| found.is_some())
        })
        .await?
        .map_err(Into::into)
    }
}
