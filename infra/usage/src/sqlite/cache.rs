//! The model response cache in the `model_cache_entries` table: the reply as JSON under its key.

use std::fmt;
use std::path::Path;

use async_trait::async_trait;
use cadre_domain::ports::model::ModelReply;
use cadre_domain::ports::model_cache::{CacheError, CacheKey, CachedReply, ModelCache};
use cadre_domain::Timestamp;
use rusqlite::{params, OptionalExtension};

use super::{Db, Failure, Problem};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS model_cache_entries (
    key       TEXT    NOT NULL PRIMARY KEY,
    stored_at INTEGER NOT NULL,
    reply     TEXT    NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS model_cache_entries_by_age ON model_cache_entries (stored_at);
";

/// Model replies in an SQLite file. Several instances (in one process or many) may share the file.
pub struct SqliteModelCache {
    db: Db,
}

impl fmt::Debug for SqliteModelCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteModelCache").field("path", &self.db.path()).finish_non_exhaustive()
    }
}

impl SqliteModelCache {
    /// Opens (creating if needed) the cache's table in the SQLite file at `path`.
    ///
    /// # Errors
    /// [`CacheError::Unavailable`] when the file cannot be opened or created, and
    /// [`CacheError::Corrupt`] when it is not an SQLite database.
    pub fn open(path: &Path) -> Result<SqliteModelCache, CacheError> {
        Ok(SqliteModelCache { db: Db::open(path, "model cache", SCHEMA).map_err(cache_error)? })
    }

    /// Deletes entries stored before `before` and returns how many, so the file does not grow forever.
    ///
    /// # Errors
    /// [`CacheError::Unavailable`] when the file cannot be written.
    pub async fn prune(&self, before: Timestamp) -> Result<u64, CacheError> {
        self.db
            .run(move |conn| {
                let deleted = conn
                    .prepare_cached("DELETE FROM model_cache_entries WHERE stored_at < ?1")?
                    .execute(params![before.0])?;
                Ok(u64::try_from(deleted).unwrap_or(u64::MAX))
            })
            .await
            .map_err(cache_error)
    }
}

fn cache_error(problem: Problem) -> CacheError {
    match problem {
        Problem::Unavailable(m) => CacheError::Unavailable(m),
        Problem::Corrupt(m) => CacheError::Corrupt(m),
    }
}

#[async_trait]
impl ModelCache for SqliteModelCache {
    async fn get(&self, key: &CacheKey) -> Result<Option<CachedReply>, CacheError> {
        let key = key.clone();
        self.db
            .run(move |conn| {
                let row: Option<(i64, String)> = conn
                    .prepare_cached(
                        "SELECT stored_at, reply FROM model_cache_entries WHERE key = ?1",
                    )?
                    .query_row(params![key.as_str()], |r| Ok((r.get(0)?, r.get(1)?)))
                    .optional()?;
                let Some((stored_at, json)) = row else { return Ok(None) };
                let reply: ModelReply = serde_json::from_str(&json).map_err(|e| {
                    Failure::Corrupt(format!(
                        "the entry {key} holds a reply that does not decode ({e})"
                    ))
                })?;
                Ok(Some(CachedReply { reply, stored_at: Timestamp(stored_at) }))
            })
            .await
            .map_err(cache_error)
    }

    async fn put(
        &self,
        key: &CacheKey,
        reply: &ModelReply,
        at: Timestamp,
    ) -> Result<(), CacheError> {
        let json = serde_json::to_string(reply).map_err(|e| {
            CacheError::Unavailable(format!("cannot encode the reply for {key}: {e}"))
        })?;
        let key = key.clone();
        self.db
            .run(move |conn| {
                conn.prepare_cached(
                    "INSERT INTO model_cache_entries (key, stored_at, reply) VALUES (?1, ?2, ?3)
                     ON CONFLICT (key) DO UPDATE SET stored_at = excluded.stored_at, reply = excluded.reply",
                )?
                .execute(params![key.as_str(), at.0, json])?;
                Ok(())
            })
            .await
            .map_err(cache_error)
    }
}
