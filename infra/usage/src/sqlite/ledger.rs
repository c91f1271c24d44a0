//! The usage ledger in the `usage_calls` table: one row per model call, integers only.

use std::fmt;
use std::path::Path;

use async_trait::async_trait;
use cadre_domain::ports::model::TokenUsage;
use cadre_domain::ports::usage::{
    utc_day, CallOutcome, UsageError, UsageFilter, UsageGroup, UsageLedger, UsageRecord, UsageTotal,
};
use cadre_domain::{TaskId, Timestamp};
use rusqlite::{params, Row};

use super::{from_sql, to_sql, Db, Failure, Problem};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS usage_calls (
    id              INTEGER PRIMARY KEY,
    at              INTEGER NOT NULL,
    model           TEXT    NOT NULL,
    task_id         TEXT,
    step            TEXT    NOT NULL,
    template        TEXT,
    input_tokens    INTEGER NOT NULL,
    output_tokens   INTEGER NOT NULL,
    cached_tokens   INTEGER NOT NULL,
    thinking_tokens INTEGER NOT NULL,
    latency_ms      INTEGER NOT NULL,
    cost_micros     INTEGER NOT NULL,
    cache_hit       INTEGER NOT NULL,
    outcome         TEXT    NOT NULL,
    attempts        INTEGER NOT NULL,
    team            TEXT
);
CREATE INDEX IF NOT EXISTS usage_calls_by_task ON usage_calls (task_id, cost_micros);
CREATE INDEX IF NOT EXISTS usage_calls_by_time ON usage_calls (at);
";

/// Milliseconds in a day, for grouping by UTC day in SQL.
const DAY_MS: i64 = 86_400_000;

/// Model usage in an SQLite file. Several instances (in one process or many) may share the file.
pub struct SqliteUsageLedger {
    db: Db,
}

impl fmt::Debug for SqliteUsageLedger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteUsageLedger").field("path", &self.db.path()).finish_non_exhaustive()
    }
}

impl SqliteUsageLedger {
    /// Opens (creating if needed) the ledger's table in the SQLite file at `path`.
    ///
    /// # Errors
    /// [`UsageError::Unavailable`] when the file cannot be opened or created, and
    /// [`UsageError::Corrupt`] when it is not an SQLite database.
    pub fn open(path: &Path) -> Result<SqliteUsageLedger, UsageError> {
        let db = Db::open(path, "usage ledger", SCHEMA).map_err(usage_error)?;
        // Files from before team attribution lack the column.
        db.ensure_column(
            "usage_calls",
            "team",
            "TEXT",
            "CREATE INDEX IF NOT EXISTS usage_calls_by_team ON usage_calls (team, at)",
        )
        .map_err(usage_error)?;
        Ok(SqliteUsageLedger { db })
    }
}

fn usage_error(problem: Problem) -> UsageError {
    match problem {
        Problem::Unavailable(m) => UsageError::Unavailable(m),
        Problem::Corrupt(m) => UsageError::Corrupt(m),
    }
}

/// The SQL that computes a row's group key.
fn key_sql(group: UsageGroup) -> String {
    match group {
        UsageGroup::Task => "task_id".to_owned(),
        UsageGroup::Step => "step".to_owned(),
        // Floor division (SQLite's `/` truncates toward zero), so instants before 1970 fall on their day.
        UsageGroup::Day => format!("(at / {DAY_MS}) - (at % {DAY_MS} < 0)"),
        UsageGroup::Model => "model".to_owned(),
        UsageGroup::Team => "team".to_owned(),
    }
}

fn read_total(row: &Row<'_>, group: UsageGroup) -> Result<UsageTotal, Failure> {
    let key = match group {
        UsageGroup::Day => {
            row.get::<_, i64>(0)?.checked_mul(DAY_MS).map(|ms| utc_day(Timestamp(ms)))
        }
        _ => row.get::<_, Option<String>>(0)?,
    };
    let count = |index: usize, column: &str| -> Result<u64, Failure> {
        from_sql(row.get::<_, i64>(index)?, column)
    };
    Ok(UsageTotal {
        key,
        calls: count(1, "calls")?,
        failed: count(2, "failed")?,
        cache_hits: count(3, "cache_hit")?,
        tokens: TokenUsage {
            input: count(4, "input_tokens")?,
            output: count(5, "output_tokens")?,
            cached: count(6, "cached_tokens")?,
            thinking: count(7, "thinking_tokens")?,
        },
        cost_micros: count(8, "cost_micros")?,
        latency_ms: count(9, "latency_ms")?,
    })
}

#[async_trait]
impl UsageLedger for SqliteUsageLedger {
    async fn record(&self, record: &UsageRecord) -> Result<(), UsageError> {
        let r = record.clone();
        self.db
            .run(move |conn| {
                conn.prepare_cached(
                    "INSERT INTO usage_calls (at, model, task_id, step, template, input_tokens, output_tokens,
                         cached_tokens, thinking_tokens, latency_ms, cost_micros, cache_hit, outcome, attempts, team)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
                )?
                .execute(params![
                    r.at.0,
                    r.model,
                    r.task.as_ref().map(TaskId::as_str),
                    r.step,
                    r.template,
                    to_sql(r.tokens.input),
                    to_sql(r.tokens.output),
                    to_sql(r.tokens.cached),
                    to_sql(r.tokens.thinking),
                    to_sql(r.latency_ms),
                    to_sql(r.cost_micros),
                    r.cache_hit,
                    r.outcome.label(),
                    r.attempts,
                    r.team,
                ])?;
                Ok(())
            })
            .await
            .map_err(usage_error)
    }

    async fn task_spend_micros(&self, task: &TaskId) -> Result<u64, UsageError> {
        let task = task.clone();
        self.db
            .run(move |conn| {
                let sum: i64 = conn
                    .prepare_cached(
                        "SELECT COALESCE(SUM(cost_micros), 0) FROM usage_calls WHERE task_id = ?1",
                    )?
                    .query_row(params![task.as_str()], |r| r.get(0))?;
                from_sql(sum, "cost_micros")
            })
            .await
            .map_err(usage_error)
    }

    async fn totals(
        &self,
        filter: &UsageFilter,
        group: UsageGroup,
    ) -> Result<Vec<UsageTotal>, UsageError> {
        // Only the filters given become conditions: `(?1 IS NULL OR team = ?1)` would keep SQLite from
        // using the `(team, at)` index, and the team's daily spend is read before every model call.
        let mut conditions: Vec<&str> = Vec::new();
        let mut values: Vec<rusqlite::types::Value> = Vec::new();
        let mut condition = |sql: &'static str, value: Option<rusqlite::types::Value>| {
            if let Some(value) = value {
                conditions.push(sql);
                values.push(value);
            }
        };
        condition("task_id = ?", filter.task.as_ref().map(|t| t.as_str().to_owned().into()));
        condition("step = ?", filter.step.clone().map(Into::into));
        condition("model = ?", filter.model.clone().map(Into::into));
        condition("at >= ?", filter.since.map(|t| t.0.into()));
        condition("at < ?", filter.until.map(|t| t.0.into()));
        condition("team = ?", filter.team.clone().map(Into::into));
        let where_sql = if conditions.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", conditions.join(" AND "))
        };
        let sql = format!(
            "SELECT {key} AS key, COUNT(*), SUM(outcome != '{ok}'), SUM(cache_hit),
                    SUM(input_tokens), SUM(output_tokens), SUM(cached_tokens), SUM(thinking_tokens),
                    SUM(cost_micros), SUM(latency_ms)
             FROM usage_calls {where_sql}
             GROUP BY key ORDER BY key",
            key = key_sql(group),
            ok = CallOutcome::Ok.label(),
        );
        self.db
            .run(move |conn| {
                let mut stmt = conn.prepare_cached(&sql)?;
                let mut rows = stmt.query(rusqlite::params_from_iter(values))?;
                let mut totals = Vec::new();
                while let Some(row) = rows.next()? {
                    totals.push(read_total(row, group)?);
                }
                Ok(totals)
            })
            .await
            .map_err(usage_error)
    }
}
