use std::sync::Arc;

use cadre_domain::ports::model::TokenUsage;
use cadre_domain::ports::usage::{
    CallOutcome, UsageError, UsageFilter, UsageGroup, UsageLedger, UsageRecord, UsageTotal,
};
use cadre_domain::{TaskId, Timestamp};
use cadre_usage::SqliteUsageLedger;

use crate::db_file;

/// 2026-11-25T00:00:00Z.
const DAY1: i64 = 1_795_564_800_000;
const DAY_MS: i64 = 86_400_000;

fn row(task: Option<&TaskId>, step: &str, model: &str, at: i64, cost: u64) -> UsageRecord {
    UsageRecord {
        at: Timestamp(at),
        model: model.to_owned(),
        task: task.cloned(),
        step: step.to_owned(),
        template: Some(format!("{step}@1")),
        tokens: TokenUsage { input: 100, output: 10, cached: 40, thinking: 5 },
        latency_ms: 200,
        cost_micros: cost,
        cache_hit: false,
        outcome: CallOutcome::Ok,
        attempts: 1,
        // Each task belongs to a team; calls without a task to none.
        team: None,
    }
}

/// Two tasks over two days and two models, one failure, one cache hit, one call without a task.
fn story(a: &TaskId, b: &TaskId) -> Vec<UsageRecord> {
    let failed = UsageRecord {
        tokens: TokenUsage::default(),
        cost_micros: 0,
        outcome: CallOutcome::Failed { kind: "rate_limited".into() },
        attempts: 4,
        ..row(Some(a), "plan", "flash", DAY1 + 1_000, 0)
    };
    let hit = UsageRecord {
        tokens: TokenUsage::default(),
        cache_hit: true,
        attempts: 0,
        ..row(Some(b), "plan", "flash", DAY1 + DAY_MS, 0)
    };
    vec![
        row(Some(a), "plan", "flash", DAY1, 700),
        failed,
        row(Some(a), "generate", "pro", DAY1 + DAY_MS - 1, 5_000),
        row(Some(b), "generate", "flash", DAY1 + DAY_MS, 300),
        hit,
        row(None, "index", "flash", DAY1 + DAY_MS + 5, 11),
    ]
}

async fn recorded(ledger: &dyn UsageLedger) -> (TaskId, TaskId) {
    let (a, b) = (TaskId::generate(), TaskId::generate());
    for record in story(&a, &b) {
        ledger.record(&record).await.unwrap();
    }
    (a, b)
}

fn keys(totals: &[UsageTotal]) -> Vec<Option<String>> {
    totals.iter().map(|t| t.key.clone()).collect()
}

#[tokio::test]
async fn an_empty_ledger_has_no_spend_and_no_totals() {
    let (_dir, path) = db_file();
    let ledger = SqliteUsageLedger::open(&path).unwrap();
    assert_eq!(ledger.task_spend_micros(&TaskId::generate()).await.unwrap(), 0);
    for group in [UsageGroup::Task, UsageGroup::Step, UsageGroup::Day, UsageGroup::Model] {
        assert_eq!(ledger.totals(&UsageFilter::default(), group).await.unwrap(), vec![]);
    }
}

#[tokio::test]
async fn spend_is_the_sum_of_a_tasks_rows() {
    let (_dir, path) = db_file();
    let ledger = SqliteUsageLedger::open(&path).unwrap();
    let (a, b) = recorded(&ledger).await;
    assert_eq!(ledger.task_spend_micros(&a).await.unwrap(), 5_700);
    assert_eq!(ledger.task_spend_micros(&b).await.unwrap(), 300);
    assert_eq!(ledger.task_spend_micros(&TaskId::generate()).await.unwrap(), 0);
}

#[tokio::test]
async fn totals_by_task_put_calls_without_a_task_first() {
    let (_dir, path) = db_file();
    let ledger = SqliteUsageLedger::open(&path).unwrap();
    let (a, b) = recorded(&ledger).await;
    let totals = ledger.totals(&UsageFilter::default(), UsageGroup::Task).await.unwrap();
    let mut expected = vec![Some(a.to_string()), Some(b.to_string())];
    expected.sort();
    expected.insert(0, None);
    assert_eq!(keys(&totals), expected);
    let of_a = totals.iter().find(|t| t.key.as_deref() == Some(a.as_str())).unwrap();
    assert_eq!(
        *of_a,
        UsageTotal {
            key: Some(a.to_string()),
            calls: 3,
            failed: 1,
            cache_hits: 0,
            tokens: TokenUsage { input: 200, output: 20, cached: 80, thinking: 10 },
            cost_micros: 5_700,
            latency_ms: 600,
        }
    );
}

#[tokio::test]
async fn totals_by_step_day_and_model() {
    let (_dir, path) = db_file();
    let ledger = SqliteUsageLedger::open(&path).unwrap();
    recorded(&ledger).await;
    let all = UsageFilter::default();
    let summary = |totals: Vec<UsageTotal>| -> Vec<(String, u64, u64, u64, u64)> {
        totals
            .into_iter()
            .map(|t| (t.key.unwrap(), t.calls, t.failed, t.cache_hits, t.cost_micros))
            .collect()
    };
    assert_eq!(
        summary(ledger.totals(&all, UsageGroup::Step).await.unwrap()),
        [
            ("generate".into(), 2, 0, 0, 5_300),
            ("index".into(), 1, 0, 0, 11),
            ("plan".into(), 3, 1, 1, 700)
        ]
    );
    assert_eq!(
        summary(ledger.totals(&all, UsageGroup::Day).await.unwrap()),
        [("2026-11-25".into(), 3, 1, 0, 5_700), ("2026-11-26".into(), 3, 0, 1, 311)]
    );
    assert_eq!(
        summary(ledger.totals(&all, UsageGroup::Model).await.unwrap()),
        [("flash".into(), 5, 1, 1, 1_011), ("pro".into(), 1, 0, 0, 5_000)]
    );
}

#[tokio::test]
async fn filters_combine_with_since_inclusive_and_until_exclusive() {
    let (_dir, path) = db_file();
    let ledger = SqliteUsageLedger::open(&path).unwrap();
    let (a, _) = recorded(&ledger).await;
    let calls = |totals: Vec<UsageTotal>| totals.iter().map(|t| t.calls).sum::<u64>();
    let filter = UsageFilter { task: Some(a.clone()), ..UsageFilter::default() };
    assert_eq!(calls(ledger.totals(&filter, UsageGroup::Step).await.unwrap()), 3);
    let filter = UsageFilter { step: Some("plan".into()), model: Some("flash".into()), ..filter };
    assert_eq!(calls(ledger.totals(&filter, UsageGroup::Step).await.unwrap()), 2);
    let day2 = UsageFilter {
        since: Some(Timestamp(DAY1 + DAY_MS)),
        until: Some(Timestamp(DAY1 + DAY_MS + 5)),
        ..UsageFilter::default()
    };
    assert_eq!(calls(ledger.totals(&day2, UsageGroup::Day).await.unwrap()), 2);
    let nothing = UsageFilter { model: Some("none".into()), ..UsageFilter::default() };
    assert_eq!(ledger.totals(&nothing, UsageGroup::Model).await.unwrap(), vec![]);
}

#[tokio::test]
async fn days_before_1970_group_on_their_own_day() {
    let (_dir, path) = db_file();
    let ledger = SqliteUsageLedger::open(&path).unwrap();
    ledger.record(&row(None, "plan", "flash", -1, 1)).await.unwrap();
    ledger.record(&row(None, "plan", "flash", 0, 1)).await.unwrap();
    let totals = ledger.totals(&UsageFilter::default(), UsageGroup::Day).await.unwrap();
    assert_eq!(keys(&totals), [Some("1969-12-31".into()), Some("1970-01-01".into())]);
}

#[tokio::test]
async fn rows_survive_reopening_and_are_shared_between_instances() {
    let (_dir, path) = db_file();
    let first = SqliteUsageLedger::open(&path).unwrap();
    let (a, _) = recorded(&first).await;
    let second = SqliteUsageLedger::open(&path).unwrap();
    second.record(&row(Some(&a), "review", "flash", DAY1, 1)).await.unwrap();
    assert_eq!(first.task_spend_micros(&a).await.unwrap(), 5_701);
    drop((first, second));
    let reopened = SqliteUsageLedger::open(&path).unwrap();
    assert_eq!(reopened.task_spend_micros(&a).await.unwrap(), 5_701);
}

#[tokio::test]
async fn the_file_may_hold_other_cadre_tables() {
    let (_dir, path) = db_file();
    let other = rusqlite::Connection::open(&path).unwrap();
    other
        .execute_batch(
            "CREATE TABLE store_tasks (id TEXT PRIMARY KEY); INSERT INTO store_tasks VALUES ('t');",
        )
        .unwrap();
    let ledger = SqliteUsageLedger::open(&path).unwrap();
    ledger.record(&row(None, "plan", "flash", DAY1, 3)).await.unwrap();
    let kept: String = other.query_row("SELECT id FROM store_tasks", [], |r| r.get(0)).unwrap();
    assert_eq!(kept, "t");
    let tables: Vec<String> = other
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(tables, ["store_tasks", "usage_calls"]);
}

#[tokio::test]
async fn concurrent_records_are_all_counted() {
    let (_dir, path) = db_file();
    let ledger = Arc::new(SqliteUsageLedger::open(&path).unwrap());
    let task = TaskId::generate();
    let mut writers = tokio::task::JoinSet::new();
    for i in 0..40 {
        let (ledger, task) = (Arc::clone(&ledger), task.clone());
        writers.spawn(async move {
            ledger.record(&row(Some(&task), "plan", "flash", DAY1 + i, 2)).await
        });
    }
    for written in writers.join_all().await {
        written.unwrap();
    }
    assert_eq!(ledger.task_spend_micros(&task).await.unwrap(), 80);
}

#[tokio::test]
async fn a_file_that_is_not_a_database_is_corrupt_and_a_missing_directory_unavailable() {
    let (dir, path) = db_file();
    std::fs::write(
        &path,
        b"this is not an sqlite database, just some text long enough to have a header",
    )
    .unwrap();
    let error = SqliteUsageLedger::open(&path).unwrap_err();
    assert!(matches!(&error, UsageError::Corrupt(m) if m.contains("cadre.db")), "{error}");
    assert!(!error.is_retryable());
    let error = SqliteUsageLedger::open(&dir.path().join("no/such/dir/cadre.db")).unwrap_err();
    assert!(matches!(error, UsageError::Unavailable(_)), "{error}");
}

#[tokio::test]
async fn totals_group_and_filter_by_team_and_old_files_gain_the_column() {
    let (_dir, path) = db_file();
    // A ledger file written before teams existed: the same table without the `team` column.
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(
            "CREATE TABLE usage_calls (id INTEGER PRIMARY KEY, at INTEGER NOT NULL, model TEXT NOT NULL,
                task_id TEXT, step TEXT NOT NULL, template TEXT, input_tokens INTEGER NOT NULL,
                output_tokens INTEGER NOT NULL, cached_tokens INTEGER NOT NULL, thinking_tokens INTEGER NOT NULL,
                latency_ms INTEGER NOT NULL, cost_micros INTEGER NOT NULL, cache_hit INTEGER NOT NULL,
                outcome TEXT NOT NULL, attempts INTEGER NOT NULL);
             INSERT INTO usage_calls VALUES (1, 5, 'flash', NULL, 'plan', NULL, 1, 1, 0, 0, 1, 9, 0, 'ok', 1);",
        )
        .unwrap();
    }
    let ledger = SqliteUsageLedger::open(&path).unwrap();
    let team = |name: &str, cost: u64| UsageRecord {
        team: Some(name.to_owned()),
        ..row(None, "plan", "flash", DAY1, cost)
    };
    for record in [team("web", 100), team("web", 20), team("data", 7)] {
        ledger.record(&record).await.unwrap();
    }
    let by_team = ledger.totals(&UsageFilter::default(), UsageGroup::Team).await.unwrap();
    let keyed: Vec<(Option<&str>, u64)> =
        by_team.iter().map(|t| (t.key.as_deref(), t.cost_micros)).collect();
    assert_eq!(
        keyed,
        [(None, 9), (Some("data"), 7), (Some("web"), 120)],
        "the old row kept, with no team"
    );
    let web_today = UsageFilter {
        team: Some("web".into()),
        since: Some(cadre_domain::ports::usage::utc_day_start(Timestamp(DAY1 + 5))),
        ..UsageFilter::default()
    };
    let totals = ledger.totals(&web_today, UsageGroup::Team).await.unwrap();
    assert_eq!(totals.iter().map(|t| t.cost_micros).sum::<u64>(), 120);
    // Reopening (the column exists now) is a no-op.
    drop(ledger);
    SqliteUsageLedger::open(&path).unwrap();
}
