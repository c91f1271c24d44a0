//! An in-memory [`UsageLedger`], for tests and runs that keep no database; the SQLite one is in
//! `cadre-usage`. Both answer `totals` the same way (the same filter and grouping rules).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, PoisonError};

use async_trait::async_trait;
use cadre_domain::ports::usage::{
    utc_day, CallOutcome, UsageError, UsageFilter, UsageGroup, UsageLedger, UsageRecord, UsageTotal,
};
use cadre_domain::TaskId;

/// Every row in a vector, plus each task's running spend so the budget check stays O(1).
#[derive(Debug, Default)]
pub struct MemoryUsageLedger {
    rows: Mutex<Rows>,
}

#[derive(Debug, Default)]
struct Rows {
    all: Vec<UsageRecord>,
    spend: HashMap<TaskId, u64>,
}

impl MemoryUsageLedger {
    /// An empty ledger.
    #[must_use]
    pub fn new() -> MemoryUsageLedger {
        MemoryUsageLedger::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Rows> {
        self.rows.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Every row recorded so far, in order.
    #[must_use]
    pub fn records(&self) -> Vec<UsageRecord> {
        self.lock().all.clone()
    }
}

/// Whether `row` passes every set field of `filter` (`since` inclusive, `until` exclusive).
fn matches(filter: &UsageFilter, row: &UsageRecord) -> bool {
    filter.task.as_ref().is_none_or(|t| row.task.as_ref() == Some(t))
        && filter.step.as_ref().is_none_or(|s| *s == row.step)
        && filter.model.as_ref().is_none_or(|m| *m == row.model)
        && filter.since.is_none_or(|since| row.at >= since)
        && filter.until.is_none_or(|until| row.at < until)
        && filter.team.as_ref().is_none_or(|t| row.team.as_ref() == Some(t))
}

/// The key of `row` under `group`.
fn group_key(group: UsageGroup, row: &UsageRecord) -> Option<String> {
    match group {
        UsageGroup::Task => row.task.as_ref().map(TaskId::to_string),
        UsageGroup::Step => Some(row.step.clone()),
        UsageGroup::Day => Some(utc_day(row.at)),
        UsageGroup::Model => Some(row.model.clone()),
        UsageGroup::Team => row.team.clone(),
    }
}

/// Adds `row` into `total`.
fn add_row(total: &mut UsageTotal, row: &UsageRecord) {
    total.calls += 1;
    total.failed += u64::from(row.outcome != CallOutcome::Ok);
    total.cache_hits += u64::from(row.cache_hit);
    total.tokens = total.tokens.plus(row.tokens);
    total.cost_micros = total.cost_micros.saturating_add(row.cost_micros);
    total.latency_ms = total.latency_ms.saturating_add(row.latency_ms);
}

#[async_trait]
impl UsageLedger for MemoryUsageLedger {
    async fn record(&self, record: &UsageRecord) -> Result<(), UsageError> {
        let mut rows = self.lock();
        if let Some(task) = &record.task {
            let spend = rows.spend.entry(task.clone()).or_insert(0);
            *spend = spend.saturating_add(record.cost_micros);
        }
        rows.all.push(record.clone());
        Ok(())
    }

    async fn task_spend_micros(&self, task: &TaskId) -> Result<u64, UsageError> {
        Ok(self.lock().spend.get(task).copied().unwrap_or(0))
    }

    async fn totals(
        &self,
        filter: &UsageFilter,
        group: UsageGroup,
    ) -> Result<Vec<UsageTotal>, UsageError> {
        let rows = self.lock();
        // `None` sorts before every `Some`, as the port asks.
        let mut groups: BTreeMap<Option<String>, UsageTotal> = BTreeMap::new();
        for row in rows.all.iter().filter(|r| matches(filter, r)) {
            let key = group_key(group, row);
            let total = groups
                .entry(key.clone())
                .or_insert_with(|| UsageTotal { key, ..UsageTotal::default() });
            add_row(total, row);
        }
        Ok(groups.into_values().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cadre_domain::ports::model::TokenUsage;
    use cadre_domain::Timestamp;

    fn row(
        task: Option<&TaskId>,
        step: &str,
        at: i64,
        cost: u64,
        outcome: CallOutcome,
    ) -> UsageRecord {
        UsageRecord {
            at: Timestamp(at),
            model: "flash".into(),
            task: task.cloned(),
            step: step.into(),
            template: None,
            tokens: TokenUsage { input: 10, output: 1, cached: 0, thinking: 0 },
            latency_ms: 5,
            cost_micros: cost,
            cache_hit: false,
            outcome,
            attempts: 1,
            team: None,
        }
    }

    /// The same rules as the SQLite ledger's contract tests in `cadre-usage`.
    #[tokio::test]
    async fn totals_group_filter_and_sort_like_the_sqlite_ledger() {
        let ledger = MemoryUsageLedger::new();
        let task = TaskId::generate();
        let failed = CallOutcome::Failed { kind: "blocked".into() };
        for record in [
            row(Some(&task), "plan", 86_400_000, 7, CallOutcome::Ok),
            row(Some(&task), "plan", 86_400_001, 0, failed),
            row(None, "index", -1, 2, CallOutcome::Ok),
        ] {
            ledger.record(&record).await.unwrap();
        }
        assert_eq!(ledger.task_spend_micros(&task).await.unwrap(), 7);
        assert_eq!(ledger.task_spend_micros(&TaskId::generate()).await.unwrap(), 0);
        let all = UsageFilter::default();
        let by_task = ledger.totals(&all, UsageGroup::Task).await.unwrap();
        let keys: Vec<_> = by_task.iter().map(|t| t.key.clone()).collect();
        assert_eq!(keys, [None, Some(task.to_string())]);
        assert_eq!((by_task[1].calls, by_task[1].failed, by_task[1].cost_micros), (2, 1, 7));
        let by_day = ledger.totals(&all, UsageGroup::Day).await.unwrap();
        let days: Vec<_> = by_day.iter().map(|t| t.key.clone().unwrap()).collect();
        assert_eq!(days, ["1969-12-31", "1970-01-02"]);
        let window = UsageFilter {
            since: Some(Timestamp(86_400_000)),
            until: Some(Timestamp(86_400_001)),
            ..UsageFilter::default()
        };
        let by_step = ledger.totals(&window, UsageGroup::Step).await.unwrap();
        assert_eq!(by_step.iter().map(|t| t.calls).collect::<Vec<_>>(), [1]);
        let none = UsageFilter { step: Some("review".into()), ..UsageFilter::default() };
        assert!(ledger.totals(&none, UsageGroup::Model).await.unwrap().is_empty());
    }
}
