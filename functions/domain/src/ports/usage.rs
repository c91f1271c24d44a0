//! The usage ledger port: one row per model call (success, failure or cache hit), so every token and
//! micro-dollar is attributed to a task, a step and a prompt template, and a task's spend can be checked
//! against its budget before the next call.
//!
//! Money is integer micro-dollars (1 USD = 1,000,000), never floating point, so totals add up exactly.

use serde::{Deserialize, Serialize};

use crate::ids::TaskId;
use crate::ports::model::TokenUsage;
use crate::time::Timestamp;

/// How a call ended, as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallOutcome {
    /// A reply came (from the provider or the cache).
    Ok,
    /// The call failed; `kind` is [`ModelError::kind`](crate::ports::model::ModelError::kind), or
    /// `cancelled` when the caller stopped waiting.
    Failed {
        /// The error's kind, e.g. `rate_limited`.
        kind: String,
    },
}

impl CallOutcome {
    /// `ok` or the error kind, as stored and shown.
    #[must_use]
    pub fn label(&self) -> &str {
        match self {
            CallOutcome::Ok => "ok",
            CallOutcome::Failed { kind } => kind,
        }
    }

    /// The inverse of [`CallOutcome::label`].
    #[must_use]
    pub fn from_label(label: &str) -> CallOutcome {
        if label == "ok" {
            CallOutcome::Ok
        } else {
            CallOutcome::Failed { kind: label.to_owned() }
        }
    }
}

/// One model call, as the gateway saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageRecord {
    /// When the call started (wall clock).
    pub at: Timestamp,
    /// The model id the call was priced as, e.g. `gemini-3-flash-preview`.
    pub model: String,
    /// The task charged, if the request named one.
    pub task: Option<TaskId>,
    /// The step that asked (the request's `purpose`).
    pub step: String,
    /// The prompt template and its version, if the request named one.
    pub template: Option<String>,
    /// Tokens billed over all attempts; zero for a cache hit.
    pub tokens: TokenUsage,
    /// Wall time of the whole call, waits and retries included, in milliseconds.
    pub latency_ms: u64,
    /// What the call cost, in micro-dollars; zero for a cache hit or an unpriced model.
    pub cost_micros: u64,
    /// Whether the reply came from the response cache.
    pub cache_hit: bool,
    /// How the call ended.
    pub outcome: CallOutcome,
    /// How many provider requests were made (0 for a cache hit or a call refused before sending).
    pub attempts: u32,
    /// The team charged, if the request named one (rows written before teams existed have none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team: Option<String>,
}

/// Which rows [`UsageLedger::totals`] adds up; every set field must match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UsageFilter {
    /// Only this task's calls.
    pub task: Option<TaskId>,
    /// Only this step's calls.
    pub step: Option<String>,
    /// Only this model's calls.
    pub model: Option<String>,
    /// Only calls at or after this instant.
    pub since: Option<Timestamp>,
    /// Only calls before this instant.
    pub until: Option<Timestamp>,
    /// Only this team's calls.
    pub team: Option<String>,
}

/// How [`UsageLedger::totals`] groups rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UsageGroup {
    /// One total per task id (calls without a task form one group with no key).
    Task,
    /// One total per step.
    Step,
    /// One total per UTC day, keyed `YYYY-MM-DD` (see [`utc_day`]).
    Day,
    /// One total per model id.
    Model,
    /// One total per team (calls without a team form one group with no key).
    Team,
}

/// The sums over one group of rows.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageTotal {
    /// The group's key (task id, step, day or model); `None` only for calls without a task.
    pub key: Option<String>,
    /// How many calls.
    pub calls: u64,
    /// How many of them failed.
    pub failed: u64,
    /// How many were answered from the cache.
    pub cache_hits: u64,
    /// Tokens billed.
    pub tokens: TokenUsage,
    /// Cost in micro-dollars.
    pub cost_micros: u64,
    /// Summed call latency in milliseconds (divide by `calls` for the mean).
    pub latency_ms: u64,
}

/// Why a ledger operation failed.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum UsageError {
    /// The backend is busy or unreachable for now.
    #[error("usage ledger unavailable: {0}")]
    Unavailable(String),
    /// Stored rows cannot be decoded.
    #[error("usage ledger data is corrupt or of another version: {0}")]
    Corrupt(String),
}

impl UsageError {
    /// Whether the same call may succeed later.
    #[must_use]
    pub fn is_retryable(&self) -> bool {
        matches!(self, UsageError::Unavailable(_))
    }
}

/// Where model usage is recorded and added up.
#[async_trait::async_trait]
pub trait UsageLedger: Send + Sync {
    /// Appends one call's row.
    ///
    /// # Errors
    /// MUST return [`UsageError::Unavailable`] when the row could not be stored, and MUST NOT report
    /// success for a row it did not store; a row, once acknowledged, MUST count in every later total.
    async fn record(&self, record: &UsageRecord) -> Result<(), UsageError>;

    /// What `task` has cost so far, in micro-dollars (the sum of its rows' `cost_micros`).
    ///
    /// # Errors
    /// MUST return `Ok(0)` for a task with no rows (an unknown task is not an error), and
    /// [`UsageError::Unavailable`] when the ledger cannot be read.
    async fn task_spend_micros(&self, task: &TaskId) -> Result<u64, UsageError>;

    /// Sums of the rows matching `filter`, one per group, sorted by key (no key first).
    ///
    /// # Errors
    /// MUST return an empty list when no row matches, [`UsageError::Unavailable`] when the ledger
    /// cannot be read, and [`UsageError::Corrupt`] when a stored row cannot be decoded.
    async fn totals(
        &self,
        filter: &UsageFilter,
        group: UsageGroup,
    ) -> Result<Vec<UsageTotal>, UsageError>;
}

/// The start (00:00 UTC) of the day `at` falls on: the window of per-team daily budgets.
#[must_use]
pub fn utc_day_start(at: Timestamp) -> Timestamp {
    Timestamp(at.0.div_euclid(86_400_000) * 86_400_000)
}

/// The UTC calendar day of an instant, as `YYYY-MM-DD`; the key of [`UsageGroup::Day`].
#[must_use]
pub fn utc_day(at: Timestamp) -> String {
    let days = at.0.div_euclid(86_400_000);
    let (year, month, day) = civil_from_days(days);
    format!("{year:04}-{month:02}-{day:02}")
}

/// Howard Hinnant's `civil_from_days`: days since 1970-01-01 to a proleptic Gregorian date.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    // Both are in range by construction (day 1..=31, month 1..=12).
    (year, u32::try_from(month).unwrap_or(1), u32::try_from(day).unwrap_or(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_days() {
        assert_eq!(utc_day(Timestamp(0)), "1970-01-01");
        assert_eq!(utc_day(Timestamp(86_399_999)), "1970-01-01");
        assert_eq!(utc_day(Timestamp(86_400_000)), "1970-01-02");
        assert_eq!(utc_day(Timestamp(-1)), "1969-12-31");
        // 2024-02-29T12:00:00Z and 2026-11-25T00:00:00Z.
        assert_eq!(utc_day(Timestamp(1_709_208_000_000)), "2024-02-29");
        assert_eq!(utc_day(Timestamp(1_795_564_800_000)), "2026-11-25");
    }

    #[test]
    fn outcome_labels_round_trip() {
        for outcome in [CallOutcome::Ok, CallOutcome::Failed { kind: "rate_limited".into() }] {
            assert_eq!(CallOutcome::from_label(outcome.label()), outcome);
        }
    }
}
