//! `FirestoreUsageLedger` and `FirestoreModelCache` against the Firestore emulator, checked against the
//! MUST sentences of their ports' `# Errors` docs.

use cadre_domain::ports::model::{FinishReason, ModelReply, TokenUsage};
use cadre_domain::ports::model_cache::{CacheError, CacheKey, ModelCache};
use cadre_domain::ports::usage::{
    CallOutcome, UsageFilter, UsageGroup, UsageLedger, UsageRecord, UsageTotal,
};
use cadre_domain::{TaskId, Timestamp};
use cadre_gcp::{FirestoreConfig, FirestoreModelCache, FirestoreUsageLedger};

use crate::emulators::{emulators, fresh_project};

fn config() -> FirestoreConfig {
    FirestoreConfig::emulator(&emulators().firestore, &fresh_project())
}

fn row(task: Option<&TaskId>, step: &str, model: &str, at: i64, cost: u64) -> UsageRecord {
    UsageRecord {
        at: Timestamp(at),
        model: model.into(),
        task: task.cloned(),
        step: step.into(),
        template: Some("plan@1".into()),
        tokens: TokenUsage { input: 100, output: 10, cached: 5, thinking: 1 },
        latency_ms: 20,
        cost_micros: cost,
        cache_hit: cost == 0,
        outcome: if step == "bad" {
            CallOutcome::Failed { kind: "rate_limited".into() }
        } else {
            CallOutcome::Ok
        },
        attempts: 1,
        team: Some(if model == "m2" { "web" } else { "core" }.into()),
    }
}

#[tokio::test]
async fn the_ledger_adds_up_spend_and_totals_with_filters() {
    let ledger = FirestoreUsageLedger::new(&config()).unwrap();
    let (a, b) = (TaskId::generate(), TaskId::generate());
    assert_eq!(ledger.task_spend_micros(&a).await.unwrap(), 0, "no rows MUST be Ok(0)");
    assert!(ledger.totals(&UsageFilter::default(), UsageGroup::Task).await.unwrap().is_empty());
    let day = 86_400_000;
    for record in [
        row(Some(&a), "plan", "m1", 1_000, 300),
        row(Some(&a), "generate", "m1", day + 5, 700),
        row(Some(&b), "plan", "m2", day + 6, 50),
        row(None, "bad", "m1", 2 * day, 0),
    ] {
        ledger.record(&record).await.unwrap();
    }
    assert_eq!(ledger.task_spend_micros(&a).await.unwrap(), 1_000);
    let by_task = ledger.totals(&UsageFilter::default(), UsageGroup::Task).await.unwrap();
    let keys: Vec<Option<String>> = by_task.iter().map(|t| t.key.clone()).collect();
    let mut want = vec![None, Some(a.to_string()), Some(b.to_string())];
    want[1..].sort();
    assert_eq!(keys, want, "calls without a task first, then by key");
    assert_eq!(
        by_task[0],
        UsageTotal {
            key: None,
            calls: 1,
            failed: 1,
            cache_hits: 1,
            tokens: TokenUsage { input: 100, output: 10, cached: 5, thinking: 1 },
            cost_micros: 0,
            latency_ms: 20,
        }
    );
    let by_day = ledger.totals(&UsageFilter::default(), UsageGroup::Day).await.unwrap();
    let days: Vec<(Option<String>, u64)> =
        by_day.iter().map(|t| (t.key.clone(), t.calls)).collect();
    assert_eq!(
        days,
        [
            (Some("1970-01-01".into()), 1),
            (Some("1970-01-02".into()), 2),
            (Some("1970-01-03".into()), 1)
        ]
    );
    let window = UsageFilter {
        since: Some(Timestamp(day)),
        until: Some(Timestamp(2 * day)),
        model: Some("m1".into()),
        ..UsageFilter::default()
    };
    let by_step = ledger.totals(&window, UsageGroup::Step).await.unwrap();
    let steps: Vec<(Option<String>, u64)> =
        by_step.iter().map(|t| (t.key.clone(), t.cost_micros)).collect();
    assert_eq!(
        steps,
        [(Some("generate".into()), 700)],
        "since inclusive, until exclusive, model matched"
    );
    let team = UsageFilter { team: Some("web".into()), ..UsageFilter::default() };
    let by_team = ledger.totals(&team, UsageGroup::Team).await.unwrap();
    assert_eq!(
        by_team.iter().map(|t| (t.key.clone(), t.calls)).collect::<Vec<_>>(),
        [(Some("web".into()), 1)]
    );
}

#[tokio::test]
async fn an_unreachable_ledger_is_unavailable_and_reports_no_success() {
    let ledger =
        FirestoreUsageLedger::new(&FirestoreConfig::emulator("127.0.0.1:9", "cadre-test-x"))
            .unwrap();
    let error = ledger.record(&row(None, "plan", "m1", 1, 1)).await.unwrap_err();
    assert!(error.is_retryable(), "{error}");
    assert!(ledger.task_spend_micros(&TaskId::generate()).await.unwrap_err().is_retryable());
}

fn reply(text: &str) -> ModelReply {
    ModelReply {
        text: text.into(),
        finish: FinishReason::Stop,
        usage: TokenUsage { input: 3, output: 4, cached: 0, thinking: 0 },
        ..ModelReply::default()
    }
}

#[tokio::test]
async fn the_cache_returns_what_was_put_and_replaces_it() {
    let config = config();
    let cache = FirestoreModelCache::new(&config).unwrap();
    let key = CacheKey::new("ab".repeat(32));
    assert_eq!(cache.get(&key).await.unwrap(), None, "a key never stored MUST be None");
    cache.put(&key, &reply("one"), Timestamp(10)).await.unwrap();
    let got = cache.get(&key).await.unwrap().unwrap();
    assert_eq!((got.reply, got.stored_at), (reply("one"), Timestamp(10)));
    cache.put(&key, &reply("two"), Timestamp(20)).await.unwrap();
    let got = cache.get(&key).await.unwrap().unwrap();
    assert_eq!((got.reply.text.as_str(), got.stored_at), ("two", Timestamp(20)));
    let other = FirestoreModelCache::new(&config).unwrap();
    assert!(other.get(&key).await.unwrap().is_some(), "another instance sees the entry");
}

#[tokio::test]
async fn a_cache_entry_that_does_not_decode_is_corrupt() {
    let config = config();
    let cache = FirestoreModelCache::new(&config).unwrap();
    let key = CacheKey::new("cd".repeat(32));
    cache.put(&key, &reply("x"), Timestamp(1)).await.unwrap();
    // Overwrite the stored reply with text that is not a reply, as another version might write it.
    let client = reqwest::Client::new();
    let listed: serde_json::Value = client
        .get(format!(
            "http://{}/v1/projects/{}/databases/(default)/documents/model_cache",
            emulators().firestore,
            config.project
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let name = listed["documents"][0]["name"].as_str().unwrap().to_owned();
    let body = serde_json::json!({ "fields": { "reply": { "stringValue": "{not a reply" }, "stored_at": { "integerValue": "1" } } });
    let status = client
        .patch(format!("http://{}/v1/{name}", emulators().firestore))
        .json(&body)
        .send()
        .await
        .unwrap()
        .status();
    assert!(status.is_success());
    match cache.get(&key).await {
        Err(CacheError::Corrupt(why)) => assert!(why.contains("reply"), "{why}"),
        other => panic!("an undecodable entry MUST be Corrupt, got {other:?}"),
    }
}
