//! `DynamoDbUsageLedger` and `DynamoDbModelCache` on a real DynamoDB-protocol server (moto), in a state
//! table made as `terraform/aws` makes it: each `# Errors` MUST sentence of their ports, and totals by
//! task, step, day and team over the filters the gateway's budgets use.

use cadre_aws::{DynamoDbModelCache, DynamoDbUsageLedger};
use cadre_domain::ports::model::{ModelReply, TokenUsage};
use cadre_domain::ports::model_cache::{CacheKey, ModelCache};
use cadre_domain::ports::usage::{
    utc_day_start, CallOutcome, UsageFilter, UsageGroup, UsageLedger, UsageRecord,
};
use cadre_domain::{TaskId, Timestamp};

use crate::moto;

const DAY: i64 = 86_400_000;
/// 2025-11-25 00:00 UTC.
const DAY1: i64 = 20_417 * DAY;

fn row(task: Option<&TaskId>, at: i64, cost: u64, team: &str) -> UsageRecord {
    UsageRecord {
        at: Timestamp(at),
        model: "gemini-3-flash-preview".into(),
        task: task.cloned(),
        step: "plan".into(),
        template: None,
        tokens: TokenUsage { input: cost * 10, output: cost, ..TokenUsage::default() },
        latency_ms: 100,
        cost_micros: cost,
        cache_hit: false,
        outcome: CallOutcome::Ok,
        attempts: 1,
        team: Some(team.into()),
    }
}

#[tokio::test]
async fn usage_rows_count_at_once_and_add_up_by_every_grouping() {
    let ledger = DynamoDbUsageLedger::connect(&moto::fresh_table("ledger").await).await;
    let (a, b) = (TaskId::generate(), TaskId::generate());
    assert_eq!(ledger.task_spend_micros(&a).await.unwrap(), 0, "a task with no rows MUST be 0");
    let all = UsageFilter::default();
    assert!(ledger.totals(&all, UsageGroup::Task).await.unwrap().is_empty(), "no row, no total");

    let mut failed = row(Some(&a), DAY1 + 3_600_000, 7, "payments");
    failed.outcome = CallOutcome::Failed { kind: "rate_limited".into() };
    failed.step = "generate".into();
    for record in [
        row(Some(&a), DAY1 + 1_000, 5, "payments"),
        failed,
        row(None, DAY1 + DAY + 1_000, 3, "payments"),
        row(Some(&b), DAY1 + DAY + 2_000, 11, "search"),
        // Two calls of one instant are two rows.
        row(Some(&b), DAY1 + DAY + 2_000, 11, "search"),
    ] {
        ledger.record(&record).await.unwrap();
    }
    assert_eq!(ledger.task_spend_micros(&a).await.unwrap(), 12, "an acknowledged row MUST count");
    assert_eq!(ledger.task_spend_micros(&b).await.unwrap(), 22);

    let by_task: Vec<(Option<String>, u64, u64, u64)> = ledger
        .totals(&all, UsageGroup::Task)
        .await
        .unwrap()
        .into_iter()
        .map(|t| (t.key, t.calls, t.failed, t.cost_micros))
        .collect();
    let mut want = vec![(Some(a.to_string()), 2, 1, 12), (Some(b.to_string()), 2, 0, 22)];
    want.sort();
    want.insert(0, (None, 1, 0, 3));
    assert_eq!(by_task, want, "no key first, then keys in order");

    // The gateway's daily team budget: the team's calls since the start of its day.
    let today = UsageFilter {
        team: Some("payments".into()),
        since: Some(utc_day_start(Timestamp(DAY1 + DAY + 5_000))),
        ..UsageFilter::default()
    };
    let team = ledger.totals(&today, UsageGroup::Team).await.unwrap();
    assert_eq!(team.len(), 1);
    assert_eq!((team[0].key.as_deref(), team[0].cost_micros), (Some("payments"), 3));

    let first_day = UsageFilter {
        since: Some(Timestamp(DAY1)),
        until: Some(Timestamp(DAY1 + DAY)),
        ..UsageFilter::default()
    };
    let by_step: Vec<(Option<String>, u64)> = ledger
        .totals(&first_day, UsageGroup::Step)
        .await
        .unwrap()
        .into_iter()
        .map(|t| (t.key, t.tokens.input))
        .collect();
    assert_eq!(by_step, [(Some("generate".into()), 70), (Some("plan".into()), 50)]);
    let by_day: Vec<(Option<String>, u64)> = ledger
        .totals(&all, UsageGroup::Day)
        .await
        .unwrap()
        .into_iter()
        .map(|t| (t.key, t.calls))
        .collect();
    assert_eq!(by_day, [(Some("2025-11-25".into()), 2), (Some("2025-11-26".into()), 3)]);
    let only_a = UsageFilter { task: Some(a.clone()), ..first_day };
    assert_eq!(ledger.totals(&only_a, UsageGroup::Model).await.unwrap()[0].cost_micros, 12);
    let nobody = UsageFilter { model: Some("other".into()), ..UsageFilter::default() };
    assert!(ledger.totals(&nobody, UsageGroup::Model).await.unwrap().is_empty());
}

#[tokio::test]
async fn cached_replies_are_shared_and_replaced() {
    let config = moto::fresh_table("cache").await;
    let (one, other) =
        (DynamoDbModelCache::connect(&config).await, DynamoDbModelCache::connect(&config).await);
    let key = CacheKey::new("9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08");
    assert_eq!(one.get(&key).await.unwrap(), None, "a key never stored MUST be None");
    let reply = ModelReply {
        text: "{\"plan\": []}".into(),
        usage: TokenUsage { input: 12, output: 3, ..TokenUsage::default() },
        model: "gemini-3-flash-preview".into(),
        ..ModelReply::default()
    };
    one.put(&key, &reply, Timestamp(1_000)).await.unwrap();
    let got = other.get(&key).await.unwrap().expect("stored by another instance");
    assert_eq!((got.reply, got.stored_at), (reply.clone(), Timestamp(1_000)));
    let newer = ModelReply { text: "{\"plan\": [1]}".into(), ..reply };
    other.put(&key, &newer, Timestamp(2_000)).await.unwrap();
    let got = one.get(&key).await.unwrap().expect("replaced");
    assert_eq!((got.reply, got.stored_at), (newer, Timestamp(2_000)));
}
