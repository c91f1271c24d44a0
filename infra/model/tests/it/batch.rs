//! The Gemini Batch API client against a local axum server that serves `:batchGenerateContent`, the
//! job's operation (`GET /v1beta/batches/{id}`, scripted state by state) and `:cancel`. Every test
//! checks the ledger: one row per submitted request, whatever became of the job.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use cadre_domain::ports::clock::ManualClock;
use cadre_domain::ports::model::{
    ChatMessage, FinishReason, ModelError, ModelRequest, TokenUsage, ToolCall,
};
use cadre_domain::{TaskId, Timestamp};
use cadre_model::batch::{BatchError, BatchItem, GeminiBatch, GeminiBatchConfig};
use cadre_model::gateway::{MemoryUsageLedger, ModelPrice, PriceTable, RetryPolicy};
use cadre_model::ApiKey;
use serde_json::{json, Value};

use crate::dead_port_url;

const NOW: Timestamp = Timestamp(1_795_564_800_000);
const JOB: &str = "batches/job-1";

#[derive(Debug, Clone)]
struct Seen {
    method: Method,
    path: String,
    headers: HeaderMap,
    body: Value,
}

#[derive(Default)]
struct FakeState {
    /// Answers to submits, in order; a job operation when empty.
    submits: VecDeque<(u16, Value)>,
    /// Answers to polls, in order; the last one repeats.
    polls: VecDeque<(u16, Value)>,
    seen: Vec<Seen>,
}

type Shared = Arc<Mutex<FakeState>>;

struct Fake {
    base_url: String,
    state: Shared,
}

impl Fake {
    async fn start(polls: Vec<(u16, Value)>) -> Fake {
        let state: Shared =
            Arc::new(Mutex::new(FakeState { polls: polls.into(), ..FakeState::default() }));
        let app = Router::new().fallback(handle).with_state(Arc::clone(&state));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Fake { base_url: format!("http://{addr}"), state }
    }

    fn submit_answers(&self, answers: Vec<(u16, Value)>) {
        self.state.lock().unwrap().submits = answers.into();
    }

    fn seen(&self) -> Vec<Seen> {
        self.state.lock().unwrap().seen.clone()
    }

    fn count(&self, method: &Method, suffix: &str) -> usize {
        self.seen().iter().filter(|s| s.method == method && s.path.ends_with(suffix)).count()
    }

    async fn wait_for_cancel(&self) {
        for _ in 0..200 {
            if self.count(&Method::POST, ":cancel") > 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!("the job was never cancelled: {:?}", self.seen());
    }
}

async fn handle(
    State(state): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let path = uri.path().to_owned();
    let mut state = state.lock().unwrap();
    state.seen.push(Seen { method: method.clone(), path: path.clone(), headers, body });
    let (code, answer) = if path.ends_with(":batchGenerateContent") {
        state.submits.pop_front().unwrap_or((200, operation("BATCH_STATE_PENDING", json!({}))))
    } else if path.ends_with(":cancel") {
        (200, json!({}))
    } else if method == Method::GET && path == format!("/v1beta/{JOB}") {
        if state.polls.len() > 1 {
            state.polls.pop_front().unwrap()
        } else {
            state.polls.front().cloned().unwrap_or((404, json!({"error": {"message": "no job"}})))
        }
    } else {
        (404, json!({"error": {"code": 404, "message": format!("no route {method} {path}")}}))
    };
    (StatusCode::from_u16(code).unwrap(), axum::Json(answer)).into_response()
}

/// The operation of `JOB` in `state`, with `extra` merged into it.
fn operation(state: &str, extra: Value) -> Value {
    let mut op = json!({"name": JOB, "metadata": {
        "@type": "type.googleapis.com/google.ai.generativelanguage.v1main.GenerateContentBatch",
        "model": "models/gemini-test", "displayName": "cadre", "name": JOB, "state": state}});
    for (k, v) in extra.as_object().unwrap() {
        op[k] = v.clone();
    }
    op
}

fn running(state: &str) -> (u16, Value) {
    (200, operation(state, json!({"done": false})))
}

fn succeeded(responses: Vec<Value>) -> (u16, Value) {
    (
        200,
        operation(
            "BATCH_STATE_SUCCEEDED",
            json!({"done": true, "response": {
                "@type": "type.googleapis.com/google.ai.generativelanguage.v1main.GenerateContentBatchOutput",
                "inlinedResponses": {"inlinedResponses": responses}}}),
        ),
    )
}

fn text_response(key: Option<&str>, text: &str, input: u64, output: u64) -> Value {
    let mut response = json!({"response": {
        "candidates": [{"content": {"role": "model", "parts": [{"text": text}]}, "finishReason": "STOP", "index": 0}],
        "usageMetadata": {"promptTokenCount": input, "candidatesTokenCount": output,
                          "totalTokenCount": input + output},
        "modelVersion": "gemini-test-001"}});
    if let Some(key) = key {
        response["metadata"] = json!({"key": key});
    }
    response
}

/// Interactive $2 / $4 per 1M tokens: at the 50% batch price an input token costs 1 micro-dollar and an
/// output token 2.
fn config(base_url: &str) -> GeminiBatchConfig {
    let mut config = GeminiBatchConfig::new(ApiKey::new("test-key-123").unwrap());
    config.base_url = base_url.to_owned();
    config.model = "gemini-test".to_owned();
    config.timeout = Duration::from_secs(5);
    config.poll_first = Duration::from_millis(5);
    config.poll_max = Duration::from_millis(20);
    config.max_wait = Duration::from_secs(10);
    config.submit_retry = RetryPolicy {
        max_attempts: 3,
        base_delay: Duration::from_millis(5),
        max_delay: Duration::from_millis(10),
    };
    config.prices =
        PriceTable::default().with("gemini-test", ModelPrice::per_million_usd(2.0, 4.0, 0.2));
    config
}

fn client(config: GeminiBatchConfig) -> (GeminiBatch, Arc<MemoryUsageLedger>) {
    let ledger = Arc::new(MemoryUsageLedger::new());
    let batch = GeminiBatch::new(config, ledger.clone(), Arc::new(ManualClock::new(NOW))).unwrap();
    (batch, ledger)
}

fn item(key: &str, purpose: &str, text: &str) -> BatchItem {
    BatchItem::new(
        key,
        ModelRequest::new(purpose, "you summarise code", vec![ChatMessage::user(text)]),
    )
}

fn outcomes(ledger: &MemoryUsageLedger) -> Vec<String> {
    ledger.records().iter().map(|r| r.outcome.label().to_owned()).collect()
}

#[tokio::test]
async fn a_job_goes_pending_running_succeeded_and_each_response_finds_its_request() {
    let with_call = json!({"metadata": {"key": "a"}, "response": {
        "candidates": [{"content": {"role": "model", "parts": [
            {"text": "Reading it.", "thoughtSignature": "sig-text"},
            {"functionCall": {"id": "call-1", "name": "read_file", "args": {"path": "src/lib.rs"}},
             "thoughtSignature": "sig-call"}]}, "finishReason": "STOP"}],
        "usageMetadata": {"promptTokenCount": 20, "candidatesTokenCount": 5, "thoughtsTokenCount": 3}}});
    let rejected = json!({"metadata": {"key": "b"},
        "error": {"code": 3, "message": "Request contains an invalid argument.", "status": "INVALID_ARGUMENT"}});
    let fake = Fake::start(vec![
        running("BATCH_STATE_PENDING"),
        running("BATCH_STATE_RUNNING"),
        // Out of order on purpose: responses are matched by key.
        succeeded(vec![text_response(Some("c"), "summary of c", 10, 4), with_call, rejected]),
    ])
    .await;
    let (batch, ledger) = client(config(&fake.base_url));
    let task = TaskId::generate();
    let mut first = item("a", "index", "fn a() {}");
    first.request.task = Some(task.clone());
    first.request.template = Some("summary@2".into());
    let items = vec![first, item("b", "index", "fn b() {}"), item("c", "review", "fn c() {}")];
    let results = batch.run(items).await.unwrap();

    let keys: Vec<_> = results.iter().map(|r| r.key.as_str()).collect();
    assert_eq!(keys, ["a", "b", "c"]);
    let a = results[0].result.as_ref().unwrap();
    assert_eq!(
        (a.text.as_str(), a.thought_signature.as_deref()),
        ("Reading it.", Some("sig-text"))
    );
    assert_eq!(
        a.tool_calls,
        [ToolCall {
            id: Some("call-1".into()),
            name: "read_file".into(),
            args: json!({"path": "src/lib.rs"}),
            thought_signature: Some("sig-call".into()),
        }]
    );
    assert!(
        matches!(&results[1].result, Err(ModelError::Rejected { status: 400, message }) if message.contains("invalid argument")),
        "{:?}",
        results[1].result
    );
    let c = results[2].result.as_ref().unwrap();
    assert_eq!(
        (c.text.as_str(), &c.finish, c.model.as_str()),
        ("summary of c", &FinishReason::Stop, "gemini-test-001")
    );

    let seen = fake.seen();
    let submit = &seen[0];
    assert_eq!(
        (&submit.method, submit.path.as_str()),
        (&Method::POST, "/v1beta/models/gemini-test:batchGenerateContent")
    );
    assert_eq!(submit.headers["x-goog-api-key"], "test-key-123");
    assert_eq!(submit.body["batch"]["displayName"], "cadre");
    let sent = &submit.body["batch"]["inputConfig"]["requests"]["requests"];
    assert_eq!(sent.as_array().unwrap().len(), 3);
    assert_eq!(
        sent[1],
        json!({"metadata": {"key": "b"}, "request": {
            "systemInstruction": {"parts": [{"text": "you summarise code"}]},
            "contents": [{"role": "user", "parts": [{"text": "fn b() {}"}]}],
            "generationConfig": {}}})
    );
    assert_eq!(fake.count(&Method::GET, JOB), 3, "pending, running, succeeded");
    assert_eq!(fake.count(&Method::POST, ":cancel"), 0);

    let rows = ledger.records();
    assert_eq!(outcomes(&ledger), ["ok", "rejected", "ok"]);
    let row_a = &rows[0];
    assert_eq!(
        (
            &row_a.task,
            row_a.step.as_str(),
            row_a.template.as_deref(),
            row_a.model.as_str(),
            row_a.at
        ),
        (&Some(task), "index", Some("summary@2"), "gemini-test", NOW)
    );
    assert_eq!(row_a.tokens, TokenUsage { input: 20, output: 5, cached: 0, thinking: 3 });
    // Batch price: 20 × 1 + (5 + 3) × 2.
    assert_eq!(row_a.cost_micros, 36);
    assert_eq!((rows[1].tokens, rows[1].cost_micros), (TokenUsage::default(), 0));
    assert_eq!(
        (rows[2].step.as_str(), rows[2].cost_micros, rows[2].attempts),
        ("review", 10 + 8, 1)
    );
}

#[tokio::test]
async fn responses_without_keys_are_matched_by_position_and_a_missing_one_is_malformed() {
    let fake = Fake::start(vec![succeeded(vec![text_response(None, "first", 1, 1)])]).await;
    let (batch, ledger) = client(config(&fake.base_url));
    let results =
        batch.run(vec![item("x", "index", "one"), item("y", "index", "two")]).await.unwrap();
    assert_eq!(results[0].result.as_ref().unwrap().text, "first");
    assert!(
        matches!(&results[1].result, Err(ModelError::MalformedReply { reason }) if reason.contains("\"y\"")),
        "{:?}",
        results[1].result
    );
    assert_eq!(outcomes(&ledger), ["ok", "malformed_reply"]);
}

#[tokio::test]
async fn a_failed_job_fails_every_request_with_a_row() {
    let failed = operation(
        "BATCH_STATE_FAILED",
        json!({"done": true, "error": {"code": 13, "message": "internal error while running the batch"}}),
    );
    let fake = Fake::start(vec![running("BATCH_STATE_RUNNING"), (200, failed)]).await;
    let (batch, ledger) = client(config(&fake.base_url));
    let error =
        batch.run(vec![item("a", "index", "x"), item("b", "index", "y")]).await.unwrap_err();
    assert_eq!(
        error,
        BatchError::Failed {
            name: JOB.into(),
            message: "code 13: internal error while running the batch".into()
        }
    );
    assert!(error.is_retryable());
    assert_eq!(outcomes(&ledger), ["server_error", "server_error"]);
    assert_eq!(fake.count(&Method::POST, ":cancel"), 0, "a failed job needs no cancel");
}

#[tokio::test]
async fn expired_and_externally_cancelled_jobs_are_typed_errors() {
    let fake = Fake::start(vec![running("BATCH_STATE_EXPIRED")]).await;
    let (batch, ledger) = client(config(&fake.base_url));
    let error = batch.run(vec![item("a", "index", "x")]).await.unwrap_err();
    assert_eq!(error, BatchError::Expired { name: JOB.into() });
    assert_eq!(outcomes(&ledger), ["deadline_exceeded"]);

    let cancelled =
        (200, operation("", json!({"done": true, "error": {"code": 1, "message": "cancelled"}})));
    let fake = Fake::start(vec![cancelled]).await;
    let (batch, ledger) = client(config(&fake.base_url));
    let error = batch.run(vec![item("a", "index", "x")]).await.unwrap_err();
    assert_eq!(error, BatchError::Cancelled { name: JOB.into() });
    assert!(!error.is_retryable());
    assert_eq!(outcomes(&ledger), ["cancelled"]);
}

#[tokio::test]
async fn submits_are_retried_on_5xx_refused_on_4xx_and_checked_before_sending() {
    let fake = Fake::start(vec![succeeded(vec![text_response(Some("a"), "ok", 1, 1)])]).await;
    fake.submit_answers(vec![(
        503,
        json!({"error": {"code": 503, "message": "overloaded", "status": "UNAVAILABLE"}}),
    )]);
    let (batch, ledger) = client(config(&fake.base_url));
    batch.run(vec![item("a", "index", "x")]).await.unwrap();
    assert_eq!(fake.count(&Method::POST, ":batchGenerateContent"), 2);
    assert_eq!(outcomes(&ledger), ["ok"]);

    let fake = Fake::start(vec![]).await;
    fake.submit_answers(vec![(
        400,
        json!({"error": {"code": 400, "message": "batch too large", "status": "INVALID_ARGUMENT"}}),
    )]);
    let (batch, ledger) = client(config(&fake.base_url));
    let error =
        batch.submit(vec![item("a", "index", "x"), item("b", "index", "y")]).await.unwrap_err();
    assert!(
        matches!(&error, BatchError::Submit(ModelError::Rejected { status: 400, message }) if message == "batch too large"),
        "{error:?}"
    );
    assert_eq!(fake.count(&Method::POST, ":batchGenerateContent"), 1, "a 4xx is not retried");
    assert_eq!(outcomes(&ledger), ["rejected", "rejected"]);
    assert!(ledger.records().iter().all(|r| r.attempts == 1));

    let (batch, ledger) = client(config(&fake.base_url));
    let error =
        batch.submit(vec![item("a", "index", "x"), item("a", "index", "y")]).await.unwrap_err();
    assert!(matches!(&error, BatchError::Invalid(m) if m.contains("appears twice")), "{error:?}");
    assert_eq!(fake.count(&Method::POST, ":batchGenerateContent"), 1, "nothing sent");
    assert_eq!(outcomes(&ledger), ["rejected", "rejected"]);
    assert!(ledger.records().iter().all(|r| r.attempts == 0));

    let (batch, ledger) = client(config(&dead_port_url()));
    let error = batch.submit(vec![item("a", "index", "x")]).await.unwrap_err();
    assert!(matches!(error, BatchError::Submit(ModelError::Unreachable { .. })), "{error:?}");
    assert!(error.is_retryable());
    assert_eq!(outcomes(&ledger), ["unreachable"]);
}

#[tokio::test]
async fn a_job_still_running_at_max_wait_is_cancelled() {
    let fake = Fake::start(vec![running("BATCH_STATE_RUNNING")]).await;
    let mut config = config(&fake.base_url);
    config.max_wait = Duration::from_millis(80);
    let (batch, ledger) = client(config);
    let error = batch.run(vec![item("a", "index", "x")]).await.unwrap_err();
    assert!(matches!(&error, BatchError::TimedOut { name, .. } if name == JOB), "{error:?}");
    assert!(fake.count(&Method::GET, JOB) >= 2, "polled with backoff until the wait ran out");
    assert_eq!(fake.count(&Method::POST, &format!("{JOB}:cancel")), 1);
    assert_eq!(outcomes(&ledger), ["deadline_exceeded"]);
}

#[tokio::test]
async fn a_dropped_job_is_cancelled_and_so_is_one_cancelled_on_request() {
    let fake = Fake::start(vec![running("BATCH_STATE_RUNNING")]).await;
    let (batch, ledger) = client(config(&fake.base_url));
    let job = batch.submit(vec![item("a", "index", "x"), item("b", "index", "y")]).await.unwrap();
    assert_eq!(job.name(), JOB);
    drop(job);
    fake.wait_for_cancel().await;
    for _ in 0..200 {
        if ledger.records().len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(outcomes(&ledger), ["cancelled", "cancelled"]);

    let fake = Fake::start(vec![running("BATCH_STATE_RUNNING")]).await;
    let (batch, ledger) = client(config(&fake.base_url));
    let job = batch.submit(vec![item("a", "index", "x")]).await.unwrap();
    job.cancel().await.unwrap();
    assert_eq!(fake.count(&Method::POST, &format!("{JOB}:cancel")), 1);
    assert_eq!(outcomes(&ledger), ["cancelled"]);

    // Abandoning `run` itself (a caller's timeout) cancels the job too.
    let fake = Fake::start(vec![running("BATCH_STATE_RUNNING")]).await;
    let (batch, ledger) = client(config(&fake.base_url));
    let items = vec![item("a", "index", "x")];
    assert!(tokio::time::timeout(Duration::from_millis(60), batch.run(items)).await.is_err());
    fake.wait_for_cancel().await;
    for _ in 0..200 {
        if !ledger.records().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(outcomes(&ledger), ["cancelled"]);
}

#[tokio::test]
async fn polls_ride_out_transient_errors_but_not_a_missing_job() {
    let busy =
        (503, json!({"error": {"code": 503, "message": "try later", "status": "UNAVAILABLE"}}));
    let fake = Fake::start(vec![
        busy.clone(),
        busy,
        succeeded(vec![text_response(Some("a"), "done", 2, 2)]),
    ])
    .await;
    let (batch, ledger) = client(config(&fake.base_url));
    let results = batch.run(vec![item("a", "index", "x")]).await.unwrap();
    assert_eq!(results[0].result.as_ref().unwrap().text, "done");
    assert_eq!(outcomes(&ledger), ["ok"]);

    let fake = Fake::start(vec![(
        404,
        json!({"error": {"code": 404, "message": "job not found", "status": "NOT_FOUND"}}),
    )])
    .await;
    let (batch, ledger) = client(config(&fake.base_url));
    let error = batch.run(vec![item("a", "index", "x")]).await.unwrap_err();
    assert!(
        matches!(&error, BatchError::Poll { error: ModelError::Rejected { status: 404, .. }, .. }),
        "{error:?}"
    );
    assert_eq!(fake.count(&Method::POST, ":cancel"), 1, "an unobservable job is cancelled");
    assert_eq!(outcomes(&ledger), ["rejected"]);
}

#[tokio::test]
async fn a_finished_job_without_inline_responses_is_malformed() {
    let file = (
        200,
        operation(
            "BATCH_STATE_SUCCEEDED",
            json!({"done": true, "response": {"responsesFile": "files/out-1"}}),
        ),
    );
    let fake = Fake::start(vec![file]).await;
    let (batch, ledger) = client(config(&fake.base_url));
    let error = batch.run(vec![item("a", "index", "x")]).await.unwrap_err();
    assert!(
        matches!(&error, BatchError::Malformed { reason, .. } if reason.contains("files/out-1")),
        "{error:?}"
    );
    assert_eq!(outcomes(&ledger), ["malformed_reply"]);
}

#[test]
fn configuration_is_checked() {
    let ledger = Arc::new(MemoryUsageLedger::new());
    let clock = Arc::new(ManualClock::new(NOW));
    let mut bad = config("http://localhost");
    bad.discount_percent = 150;
    let error = GeminiBatch::new(bad, ledger.clone(), clock.clone()).unwrap_err();
    assert!(error.to_string().contains("150%"), "{error}");
    let mut bad = config("http://localhost");
    bad.model = " ".into();
    assert!(matches!(GeminiBatch::new(bad, ledger, clock), Err(ModelError::NotConfigured { .. })));
}
