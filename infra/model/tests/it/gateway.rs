//! The gateway over a real provider (`GeminiModel`, once `OpenAiCompatModel`) talking to the local
//! `ModelServer`: every failure is produced at the wire, never by mocking the `Model` trait. Real time
//! with short durations throughout, because the server does real I/O.
//!
//! Every test checks the ledger: one row per call, whatever the outcome.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use cadre_domain::ports::clock::ManualClock;
use cadre_domain::ports::model::{
    CachePolicy, FinishReason, Model, ModelError, ModelReply, ModelRequest, TokenUsage,
};
use cadre_domain::ports::usage::{
    CallOutcome, UsageError, UsageFilter, UsageGroup, UsageLedger, UsageRecord, UsageTotal,
};
use cadre_domain::{TaskId, Timestamp};
use cadre_model::gateway::{
    complete_json, estimate_tokens, BreakerConfig, Gateway, GatewayConfig, GatewayPorts,
    MemoryModelCache, MemoryUsageLedger, ModelPrice, PriceTable, RateLimit, RetryPolicy,
};
use cadre_testkit::model_server::{ModelServer, Scripted};
use serde_json::json;
use tokio::time::Instant;

use crate::{ask, dead_port_url, gemini_at, openai_at};

const NOW: Timestamp = Timestamp(1_795_564_800_000);

/// $1 per 1M input tokens, $2 per 1M output, $0.10 per 1M cached: a token costs 1 or 2 micro-dollars.
pub(crate) fn config() -> GatewayConfig {
    let mut config = GatewayConfig::new("gemini-test");
    config.prices =
        PriceTable::default().with("gemini-test", ModelPrice::per_million_usd(1.0, 2.0, 0.1));
    config.retry = RetryPolicy {
        max_attempts: 4,
        base_delay: Duration::from_millis(5),
        max_delay: Duration::from_millis(20),
    };
    config.breaker = BreakerConfig { failure_threshold: 50, cool_down: Duration::from_millis(300) };
    config.deadline = Duration::from_secs(5);
    config
}

pub(crate) struct Fixture {
    pub(crate) gateway: Gateway,
    pub(crate) ledger: Arc<MemoryUsageLedger>,
    pub(crate) cache: Arc<MemoryModelCache>,
}

impl Fixture {
    pub(crate) fn new(provider: Arc<dyn Model>, config: GatewayConfig) -> Fixture {
        let ledger = Arc::new(MemoryUsageLedger::new());
        let cache = Arc::new(MemoryModelCache::default());
        let ports = GatewayPorts {
            ledger: ledger.clone(),
            cache: cache.clone(),
            clock: Arc::new(ManualClock::new(NOW)),
        };
        Fixture { gateway: Gateway::new(provider, config, ports).unwrap(), ledger, cache }
    }

    pub(crate) fn at(server: &ModelServer, config: GatewayConfig) -> Fixture {
        Fixture::new(Arc::new(gemini_at(&server.base_url(), Duration::from_secs(10))), config)
    }

    /// The only ledger row, after the only call.
    pub(crate) fn row(&self) -> UsageRecord {
        let [row] = self.ledger.records().try_into().unwrap();
        row
    }

    pub(crate) fn outcomes(&self) -> Vec<String> {
        self.ledger.records().iter().map(|r| r.outcome.label().to_owned()).collect()
    }
}

fn failed(kind: &str) -> CallOutcome {
    CallOutcome::Failed { kind: kind.to_owned() }
}

fn rpc_error(code: u16, status: &str) -> Scripted {
    Scripted::Status {
        code,
        body: json!({"error": {"code": code, "message": format!("{status} from the test"), "status": status}}),
    }
}

fn bypass(text: &str) -> ModelRequest {
    ModelRequest { cache: CachePolicy::Bypass, ..ask(text) }
}

#[tokio::test]
async fn a_plain_call_is_accounted_with_tokens_cost_and_step() {
    let server = ModelServer::start().await;
    server.push(Scripted::Text("a reply of 24 characters".into()));
    let f = Fixture::at(&server, config());
    let task = TaskId::generate();
    let request =
        ModelRequest { task: Some(task.clone()), template: Some("plan@3".into()), ..ask("hello") };
    let reply = f.gateway.complete(&request).await.unwrap();
    assert_eq!(reply.text, "a reply of 24 characters");
    assert_eq!(f.gateway.describe(), "gemini:gemini-test");
    let row = f.row();
    assert_eq!(row.tokens, reply.usage);
    assert_eq!(row.tokens.output, 6);
    // Each input token costs 1 micro-dollar and each output token 2.
    assert_eq!(row.cost_micros, reply.usage.input + 12);
    assert_eq!(
        (row.at, row.model.as_str(), row.task, row.step.as_str(), row.template.as_deref()),
        (NOW, "gemini-test", Some(task), "plan", Some("plan@3"))
    );
    assert_eq!((row.outcome, row.attempts, row.cache_hit), (CallOutcome::Ok, 1, false));
}

#[tokio::test]
async fn a_429_is_retried_no_sooner_than_its_retry_delay() {
    let server = ModelServer::start().await;
    server.push(Scripted::Status {
        code: 429,
        body: json!({"error": {"code": 429, "status": "RESOURCE_EXHAUSTED", "message": "quota",
            "details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "0.3s"}]}}),
    });
    server.push(Scripted::Text("after the wait".into()));
    let f = Fixture::at(&server, config());
    let reply = f.gateway.complete(&bypass("hello")).await.unwrap();
    assert_eq!(reply.text, "after the wait");
    let arrivals = server.arrivals();
    assert_eq!(arrivals.len(), 2);
    let gap = arrivals[1] - arrivals[0];
    assert!(gap >= Duration::from_millis(300), "retried after {gap:?}, before the 0.3s asked");
    let row = f.row();
    assert_eq!((row.outcome, row.attempts), (CallOutcome::Ok, 2));
}

#[tokio::test]
async fn a_retry_delay_beyond_the_deadline_returns_the_429_at_once() {
    let server = ModelServer::start().await;
    server.push(Scripted::Headers {
        headers: vec![("Retry-After".into(), "30".into())],
        then: Box::new(rpc_error(429, "RESOURCE_EXHAUSTED")),
    });
    let f = Fixture::at(&server, config());
    let started = Instant::now();
    let error = f.gateway.complete(&bypass("hello")).await.unwrap_err();
    assert_eq!(error, ModelError::RateLimited { retry_after_ms: Some(30_000) });
    assert!(started.elapsed() < Duration::from_secs(5), "it must not sleep into the deadline");
    assert_eq!(server.request_count(), 1);
    let row = f.row();
    assert_eq!((row.outcome, row.attempts), (failed("rate_limited"), 1));
}

#[tokio::test]
async fn bursts_of_500_and_503_are_retried_until_success() {
    let server = ModelServer::start().await;
    for code in [500, 503, 503] {
        server.push(rpc_error(code, "UNAVAILABLE"));
    }
    server.push(Scripted::Text("finally".into()));
    let f = Fixture::at(&server, config());
    let reply = f.gateway.complete(&bypass("hello")).await.unwrap();
    assert_eq!(reply.text, "finally");
    assert_eq!(server.request_count(), 4);
    let row = f.row();
    assert_eq!((row.outcome, row.attempts), (CallOutcome::Ok, 4));
    assert_eq!(row.tokens, reply.usage, "failed attempts bill nothing");
}

#[tokio::test]
async fn retries_stop_after_max_attempts_with_the_last_error() {
    let server = ModelServer::start().await;
    server.respond_with(|_| rpc_error(503, "UNAVAILABLE"));
    let f = Fixture::at(&server, config());
    let error = f.gateway.complete(&bypass("hello")).await.unwrap_err();
    assert!(matches!(error, ModelError::ServerError { status: 503, .. }), "{error:?}");
    assert_eq!(server.request_count(), 4);
    let row = f.row();
    assert_eq!((row.outcome, row.attempts, row.cost_micros), (failed("server_error"), 4, 0));
}

#[tokio::test]
async fn a_refused_connection_is_unreachable_after_the_retries() {
    let provider = Arc::new(gemini_at(&dead_port_url(), Duration::from_secs(10)));
    let f = Fixture::new(provider, config());
    let error = f.gateway.complete(&bypass("hello")).await.unwrap_err();
    assert!(matches!(error, ModelError::Unreachable { .. }), "{error:?}");
    let row = f.row();
    assert_eq!((row.outcome, row.attempts), (failed("unreachable"), 4));
}

#[tokio::test]
async fn a_reply_cut_at_max_tokens_is_returned_but_never_cached() {
    let server = ModelServer::start().await;
    server.respond_with(|_| Scripted::Finish {
        text: "the start of a".into(),
        reason: "MAX_TOKENS".into(),
    });
    let f = Fixture::at(&server, config());
    for _ in 0..2 {
        let reply = f.gateway.complete(&ask("hello")).await.unwrap();
        assert_eq!(
            (reply.text.as_str(), reply.finish),
            ("the start of a", FinishReason::MaxTokens)
        );
    }
    assert_eq!(server.request_count(), 2, "a cut reply must not be served from the cache");
    assert!(f.cache.is_empty());
    assert_eq!(f.outcomes(), ["ok", "ok"]);
}

#[tokio::test]
async fn a_safety_block_is_not_retried() {
    let server = ModelServer::start().await;
    server.respond_with(|_| Scripted::Finish { text: String::new(), reason: "SAFETY".into() });
    let f = Fixture::at(&server, config());
    let error = f.gateway.complete(&ask("hello")).await.unwrap_err();
    assert!(matches!(error, ModelError::Blocked { .. }), "{error:?}");
    assert_eq!(server.request_count(), 1);
    let row = f.row();
    assert_eq!((row.outcome, row.attempts), (failed("blocked"), 1));
}

#[tokio::test]
async fn a_400_is_not_retried() {
    let server = ModelServer::start().await;
    server.respond_with(|_| rpc_error(400, "INVALID_ARGUMENT"));
    let f = Fixture::at(&server, config());
    let error = f.gateway.complete(&ask("hello")).await.unwrap_err();
    assert!(matches!(error, ModelError::Rejected { status: 400, .. }), "{error:?}");
    assert_eq!(server.request_count(), 1);
    assert_eq!(f.outcomes(), ["rejected"]);
}

#[derive(Debug, serde::Deserialize, PartialEq)]
struct Plan {
    steps: Vec<String>,
}

fn structured(text: &str) -> ModelRequest {
    let schema = json!({"type": "object", "properties": {"steps": {"type": "array", "items": {"type": "string"}}}});
    ModelRequest { response_schema: Some(schema), ..ask(text) }
}

#[tokio::test]
async fn structured_replies_parse_even_inside_a_json_fence() {
    let server = ModelServer::start().await;
    server.push(Scripted::Text("```json\n{\"steps\": [\"read\", \"write\"]}\n```".into()));
    let f = Fixture::at(&server, config());
    let (plan, reply): (Plan, _) = complete_json(&f.gateway, &structured("plan")).await.unwrap();
    assert_eq!(plan, Plan { steps: vec!["read".into(), "write".into()] });
    assert!(reply.text.starts_with("```json"));
    assert_eq!(server.request_count(), 1);
    assert_eq!(f.outcomes(), ["ok"]);
}

#[tokio::test]
async fn invalid_json_is_retried_once_with_the_parse_error() {
    let server = ModelServer::start().await;
    server.push(Scripted::Text("Sure! Here is the plan.".into()));
    server.push(Scripted::Text("{\"steps\": [\"fixed\"]}".into()));
    let f = Fixture::at(&server, config());
    let (plan, _): (Plan, _) = complete_json(&f.gateway, &structured("plan")).await.unwrap();
    assert_eq!(plan.steps, ["fixed"]);
    let second = &server.requests()[1];
    assert!(second.last_user_text.contains("not valid JSON"), "{}", second.last_user_text);
    assert!(second.last_user_text.contains("expected value"), "{}", second.last_user_text);
    let contents = second.body["contents"].as_array().unwrap();
    assert_eq!(contents[1]["parts"][0]["text"], "Sure! Here is the plan.");
    assert_eq!(f.outcomes(), ["ok", "ok"]);
}

#[tokio::test]
async fn json_still_invalid_after_one_correction_is_a_schema_mismatch_keeping_the_raw_reply() {
    let server = ModelServer::start().await;
    server.push(Scripted::Text("not json".into()));
    server.push(Scripted::Text("{\"steps\": 42}".into()));
    let f = Fixture::at(&server, config());
    let error = complete_json::<Plan>(&f.gateway, &structured("plan")).await.unwrap_err();
    let ModelError::SchemaMismatch { reason, raw } = &error else {
        panic!("expected SchemaMismatch, got {error:?}")
    };
    assert_eq!(raw, "{\"steps\": 42}");
    assert!(reason.contains("invalid type"), "{reason}");
    assert!(!error.is_retryable());
    assert_eq!(server.request_count(), 2, "exactly one correction");
    assert_eq!(f.outcomes(), ["ok", "ok"]);
    // "not json" is never stored; `{"steps": 42}` is JSON, so it is: the gateway checks syntax only,
    // and the typed check belongs to the caller.
    assert_eq!(f.cache.len(), 1);
}

#[tokio::test]
async fn a_slow_reply_past_the_deadline_is_deadline_exceeded() {
    let server = ModelServer::start().await;
    server.push(Scripted::Delay { millis: 3_000, then: Box::new(Scripted::Text("late".into())) });
    let f =
        Fixture::at(&server, GatewayConfig { deadline: Duration::from_millis(200), ..config() });
    let started = Instant::now();
    let error = f.gateway.complete(&ask("hello")).await.unwrap_err();
    assert!(
        matches!(error, ModelError::DeadlineExceeded { after_ms } if after_ms >= 200),
        "{error:?}"
    );
    assert!(error.is_retryable());
    assert!(started.elapsed() < Duration::from_secs(3), "the call must not wait for the reply");
    let row = f.row();
    assert_eq!((row.outcome, row.attempts), (failed("deadline_exceeded"), 1));
}

#[tokio::test]
async fn the_breaker_opens_fails_fast_and_closes_after_the_cool_down() {
    let server = ModelServer::start().await;
    server.push(rpc_error(503, "UNAVAILABLE"));
    server.push(rpc_error(503, "UNAVAILABLE"));
    let config = GatewayConfig {
        retry: RetryPolicy { max_attempts: 1, ..config().retry },
        breaker: BreakerConfig { failure_threshold: 2, cool_down: Duration::from_millis(300) },
        ..config()
    };
    let f = Fixture::at(&server, config);
    for _ in 0..2 {
        let error = f.gateway.complete(&bypass("hello")).await.unwrap_err();
        assert!(matches!(error, ModelError::ServerError { .. }), "{error:?}");
    }
    let error = f.gateway.complete(&bypass("hello")).await.unwrap_err();
    let ModelError::CircuitOpen { provider, retry_in_ms } = &error else {
        panic!("expected CircuitOpen, got {error:?}")
    };
    assert_eq!(provider, "gemini:gemini-test");
    assert!((1..=300).contains(retry_in_ms), "{retry_in_ms}");
    assert_eq!(server.request_count(), 2, "an open breaker must not call the server");
    assert!(f.gateway.breaker().is_open());

    tokio::time::sleep(Duration::from_millis(350)).await;
    server.push(Scripted::Text("back".into()));
    server.push(Scripted::Text("still back".into()));
    assert_eq!(f.gateway.complete(&bypass("probe")).await.unwrap().text, "back");
    assert_eq!(f.gateway.complete(&bypass("after")).await.unwrap().text, "still back");
    assert!(!f.gateway.breaker().is_open());
    assert_eq!(f.outcomes(), ["server_error", "server_error", "circuit_open", "ok", "ok"]);
    assert_eq!(f.ledger.records()[2].attempts, 0);
}

#[tokio::test]
async fn a_cache_hit_skips_the_server_and_is_recorded_at_no_cost() {
    let server = ModelServer::start().await;
    server.push(Scripted::Text("cached answer".into()));
    let f = Fixture::at(&server, config());
    let first = f.gateway.complete(&ask("hello")).await.unwrap();
    let renamed = ModelRequest { purpose: "review".into(), ..ask("hello") };
    let second = f.gateway.complete(&renamed).await.unwrap();
    assert_eq!(server.request_count(), 1, "the second call must come from the cache");
    assert_eq!(second, ModelReply { usage: TokenUsage::default(), ..first });
    let rows = f.ledger.records();
    assert_eq!((rows[0].cache_hit, rows[1].cache_hit), (false, true));
    assert_eq!(
        (rows[1].outcome.clone(), rows[1].attempts, rows[1].cost_micros),
        (CallOutcome::Ok, 0, 0)
    );
    assert_eq!((rows[1].tokens, rows[1].step.as_str()), (TokenUsage::default(), "review"));
}

#[tokio::test]
async fn sampling_and_bypassed_calls_skip_the_cache() {
    let server = ModelServer::start().await;
    server.respond_with(|_| Scripted::Text("fresh".into()));
    let f = Fixture::at(&server, config());
    let sampled = ModelRequest { temperature: Some(0.8), ..ask("hello") };
    for request in [&sampled, &sampled, &bypass("hello"), &bypass("hello")] {
        f.gateway.complete(request).await.unwrap();
    }
    assert_eq!(server.request_count(), 4);
    assert!(f.cache.is_empty());
    assert!(f.ledger.records().iter().all(|r| !r.cache_hit && r.outcome == CallOutcome::Ok));
}

#[tokio::test]
async fn an_over_budget_call_is_refused_before_it_is_sent() {
    let server = ModelServer::start().await;
    server.respond_with(|_| Scripted::Text("ok".into()));
    let task = TaskId::generate();
    let request = ModelRequest { task: Some(task.clone()), ..bypass("hello") };
    // Room for one call's worst case (all 256 output tokens) and 1 µ$ more: the first call fits, and
    // once it has cost anything over 1 µ$ the second cannot.
    let worst = config()
        .prices
        .price("gemini-test")
        .unwrap()
        .worst_case_micros(estimate_tokens(&request, 0));
    let limit = worst + 1;
    let f = Fixture::at(&server, GatewayConfig { task_budget_micros: Some(limit), ..config() });
    f.gateway.complete(&request).await.unwrap();
    assert_eq!(server.request_count(), 1);
    let spent = f.row().cost_micros;
    let error = f.gateway.complete(&request).await.unwrap_err();
    assert!(spent > 1, "{spent}");
    assert_eq!(error, ModelError::BudgetExceeded { spent_micros: spent, limit_micros: limit });
    assert!(!error.is_retryable());
    assert_eq!(server.request_count(), 1, "a refused call must not reach the server");
    let refused = &f.ledger.records()[1];
    assert_eq!((refused.outcome.clone(), refused.attempts), (failed("budget_exceeded"), 0));
    // Another task has its own budget, and calls without a task have none.
    let other = ModelRequest { task: Some(TaskId::generate()), ..bypass("hello") };
    f.gateway.complete(&other).await.unwrap();
    f.gateway.complete(&bypass("hello")).await.unwrap();
    assert_eq!(f.outcomes(), ["ok", "budget_exceeded", "ok", "ok"]);
}

#[tokio::test]
async fn concurrent_callers_never_exceed_the_request_limit_and_all_finish() {
    const CALLERS: usize = 8;
    let window = Duration::from_millis(200);
    let server = ModelServer::start().await;
    server.respond_with(|request| Scripted::Text(format!("re: {}", request.last_user_text)));
    let config =
        GatewayConfig { requests: Some(RateLimit { limit: 3, window, burst: 1 }), ..config() };
    let f = Arc::new(Fixture::at(&server, config));
    let mut callers = tokio::task::JoinSet::new();
    for i in 0..CALLERS {
        let f = Arc::clone(&f);
        callers.spawn(async move { f.gateway.complete(&ask(&format!("caller {i}"))).await });
    }
    for reply in callers.join_all().await {
        assert!(reply.unwrap().text.starts_with("re: caller "));
    }
    let arrivals = server.arrivals();
    assert_eq!(arrivals.len(), CALLERS);
    for (i, start) in arrivals.iter().enumerate() {
        let in_window = arrivals[i..].iter().filter(|t| **t - *start <= window).count();
        assert!(in_window <= 3, "{in_window} requests within {window:?} of request {i}");
    }
    assert_eq!(f.outcomes(), vec!["ok"; CALLERS]);
}

#[tokio::test]
async fn a_call_abandoned_by_its_caller_still_leaves_a_row() {
    let server = ModelServer::start().await;
    server.push(Scripted::Delay { millis: 3_000, then: Box::new(Scripted::Text("late".into())) });
    let f = Fixture::at(&server, config());
    let request = ask("hi");
    let abandoned = tokio::time::timeout(Duration::from_millis(100), f.gateway.complete(&request));
    assert!(abandoned.await.is_err());
    for _ in 0..100 {
        if !f.ledger.records().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let row = f.row();
    assert_eq!((row.outcome, row.attempts), (failed("cancelled"), 1));
    assert!(row.latency_ms >= 100, "{}", row.latency_ms);
}

#[tokio::test]
async fn openai_compatible_providers_get_the_same_treatment() {
    let server = ModelServer::start().await;
    server.push(Scripted::Headers {
        headers: vec![("retry-after-ms".into(), "50".into())],
        then: Box::new(Scripted::Status {
            code: 429,
            body: json!({"error": {"message": "slow down"}}),
        }),
    });
    server.push(Scripted::Text("hello from llama".into()));
    let f = Fixture::new(Arc::new(openai_at(&server.base_url(), None)), config());
    let reply = f.gateway.complete(&ask("hello")).await.unwrap();
    assert_eq!(reply.text, "hello from llama");
    let arrivals = server.arrivals();
    assert!(arrivals[1] - arrivals[0] >= Duration::from_millis(50));
    let row = f.row();
    assert_eq!((row.outcome, row.attempts), (CallOutcome::Ok, 2));
}

/// A ledger whose backend is down: reads and writes fail.
struct DownLedger;

#[async_trait]
impl UsageLedger for DownLedger {
    async fn record(&self, _: &UsageRecord) -> Result<(), UsageError> {
        Err(UsageError::Unavailable("disk full".into()))
    }
    async fn task_spend_micros(&self, _: &TaskId) -> Result<u64, UsageError> {
        Err(UsageError::Unavailable("disk full".into()))
    }
    async fn totals(&self, _: &UsageFilter, _: UsageGroup) -> Result<Vec<UsageTotal>, UsageError> {
        Err(UsageError::Unavailable("disk full".into()))
    }
}

#[tokio::test]
async fn a_ledger_that_is_down_fails_budgeted_calls_closed_but_not_the_others() {
    let server = ModelServer::start().await;
    server.respond_with(|_| Scripted::Text("ok".into()));
    let ports = GatewayPorts {
        ledger: Arc::new(DownLedger),
        cache: Arc::new(MemoryModelCache::default()),
        clock: Arc::new(ManualClock::new(NOW)),
    };
    let provider = Arc::new(gemini_at(&server.base_url(), Duration::from_secs(10)));
    let config = GatewayConfig { task_budget_micros: Some(1_000_000), ..config() };
    let gateway = Gateway::new(provider, config, ports).unwrap();
    let budgeted = ModelRequest { task: Some(TaskId::generate()), ..ask("hello") };
    let error = gateway.complete(&budgeted).await.unwrap_err();
    assert!(
        matches!(&error, ModelError::LedgerUnavailable { reason } if reason.contains("disk full"))
    );
    assert_eq!(server.request_count(), 0, "an unchecked budget must not be spent");
    assert_eq!(gateway.complete(&ask("hello")).await.unwrap().text, "ok");
}

#[tokio::test]
async fn unusable_configurations_are_refused_with_the_setting_named() {
    let provider: Arc<dyn Model> = Arc::new(gemini_at(&dead_port_url(), Duration::from_secs(1)));
    let ports = GatewayPorts {
        ledger: Arc::new(MemoryUsageLedger::new()),
        cache: Arc::new(MemoryModelCache::default()),
        clock: Arc::new(ManualClock::new(NOW)),
    };
    let bad = [
        (GatewayConfig { model: " ".into(), ..config() }, "model id"),
        (
            GatewayConfig { retry: RetryPolicy { max_attempts: 0, ..config().retry }, ..config() },
            "max_attempts",
        ),
        (GatewayConfig { deadline: Duration::ZERO, ..config() }, "deadline"),
        (
            GatewayConfig {
                requests: Some(RateLimit { limit: 5, window: Duration::from_secs(60), burst: 5 }),
                ..config()
            },
            "requests rate limit",
        ),
    ];
    for (config, named) in bad {
        let error = Gateway::new(Arc::clone(&provider), config, ports.clone()).unwrap_err();
        assert!(
            matches!(&error, ModelError::NotConfigured { hint } if hint.contains(named)),
            "{error}"
        );
    }
}

#[tokio::test]
async fn a_prompt_blocked_by_prompt_feedback_is_blocked_not_retried_and_accounted() {
    let server = ModelServer::start().await;
    server.respond_with(|_| Scripted::Status {
        code: 200,
        body: json!({"promptFeedback": {"blockReason": "SAFETY", "blockReasonMessage": "unsafe prompt"},
                     "usageMetadata": {"promptTokenCount": 7}}),
    });
    let f = Fixture::at(&server, config());
    let error = f.gateway.complete(&bypass("hello")).await.unwrap_err();
    assert!(
        matches!(&error, ModelError::Blocked { reason } if reason.contains("SAFETY") && reason.contains("unsafe prompt")),
        "{error:?}"
    );
    assert_eq!(server.request_count(), 1);
    let row = f.row();
    assert_eq!((row.outcome, row.attempts), (failed("blocked"), 1));
}

#[tokio::test]
async fn a_slow_stream_past_the_deadline_is_deadline_exceeded_with_its_row() {
    let server = ModelServer::start().await;
    server.push(Scripted::Delay { millis: 3_000, then: Box::new(Scripted::Text("late".into())) });
    let f =
        Fixture::at(&server, GatewayConfig { deadline: Duration::from_millis(200), ..config() });
    let error = f.gateway.stream(&bypass("hello"), &|_| {}).await.unwrap_err();
    assert!(matches!(error, ModelError::DeadlineExceeded { .. }), "{error:?}");
    let row = f.row();
    assert_eq!((row.outcome, row.attempts), (failed("deadline_exceeded"), 1));
}

#[tokio::test]
async fn concurrent_streaming_callers_never_exceed_the_request_limit_and_all_finish() {
    const CALLERS: usize = 6;
    let window = Duration::from_millis(200);
    let server = ModelServer::start().await;
    server.respond_with(|request| Scripted::Text(format!("re: {}", request.last_user_text)));
    let config =
        GatewayConfig { requests: Some(RateLimit { limit: 3, window, burst: 1 }), ..config() };
    let f = Arc::new(Fixture::at(&server, config));
    let mut callers = tokio::task::JoinSet::new();
    for i in 0..CALLERS {
        let f = Arc::clone(&f);
        callers
            .spawn(async move { f.gateway.stream(&bypass(&format!("caller {i}")), &|_| {}).await });
    }
    for reply in callers.join_all().await {
        assert!(reply.unwrap().text.starts_with("re: caller "));
    }
    let arrivals = server.arrivals();
    assert_eq!(arrivals.len(), CALLERS);
    assert!(server.requests().iter().all(|r| r.stream));
    for (i, start) in arrivals.iter().enumerate() {
        let in_window = arrivals[i..].iter().filter(|t| **t - *start <= window).count();
        assert!(in_window <= 3, "{in_window} requests within {window:?} of request {i}");
    }
    assert_eq!(f.outcomes(), vec!["ok"; CALLERS]);
}
