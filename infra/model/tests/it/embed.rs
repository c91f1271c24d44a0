//! Embeddings at the wire: the three providers behind `EmbedGateway`, against a local axum server that
//! speaks `:batchEmbedContents`, Vertex `:predict` and OpenAI `/v1/embeddings`. Every test checks the
//! ledger: one row per provider request, whatever the outcome. Real time with short durations, because
//! the server does real I/O.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use cadre_domain::ports::clock::ManualClock;
use cadre_domain::ports::knowledge::{EmbedError, EmbedPurpose, Embedder};
use cadre_domain::ports::model::{ModelError, TokenUsage};
use cadre_domain::ports::usage::{CallOutcome, UsageRecord};
use cadre_domain::Timestamp;
use cadre_model::embed::{
    AccessTokenSource, EmbedGateway, EmbedGatewayConfig, EmbeddingProvider, GeminiEmbeddings,
    GeminiEmbeddingsConfig, OpenAiEmbeddings, OpenAiEmbeddingsConfig, VertexEmbeddings,
    VertexEmbeddingsConfig,
};
use cadre_model::gateway::{
    BreakerConfig, MemoryUsageLedger, ModelPrice, PriceTable, RateLimit, RetryPolicy,
};
use cadre_model::ApiKey;
use serde_json::{json, Value};

use crate::dead_port_url;

const NOW: Timestamp = Timestamp(1_795_564_800_000);
const DIMS: usize = 4;

/// One scripted answer of the fake embedding server.
#[derive(Debug, Clone)]
enum Reply {
    /// Well-formed vectors of `dims` numbers for every text, in the request's own wire format.
    Vectors { dims: usize },
    /// One vector fewer than asked for.
    TooFew,
    /// A status with a JSON body.
    Status(u16, Value),
    /// A 200 whose body is not JSON.
    Garbage,
    /// Waits, then answers.
    Delay(u64, Box<Reply>),
}

#[derive(Debug, Clone)]
struct Seen {
    path: String,
    headers: HeaderMap,
    body: Value,
}

#[derive(Default)]
struct FakeState {
    script: VecDeque<Reply>,
    seen: Vec<Seen>,
}

type Shared = Arc<Mutex<FakeState>>;

/// A local server answering every POST from its script (a 500 when the script is empty).
struct Fake {
    base_url: String,
    state: Shared,
}

impl Fake {
    async fn start(script: impl IntoIterator<Item = Reply>) -> Fake {
        let state: Shared = Arc::new(Mutex::new(FakeState {
            script: script.into_iter().collect(),
            seen: Vec::new(),
        }));
        let app = Router::new().fallback(handle).with_state(Arc::clone(&state));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Fake { base_url: format!("http://{addr}"), state }
    }

    fn seen(&self) -> Vec<Seen> {
        self.state.lock().unwrap().seen.clone()
    }
}

async fn handle(
    State(state): State<Shared>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let reply = {
        let mut state = state.lock().unwrap();
        state.seen.push(Seen { path: uri.path().to_owned(), headers, body: body.clone() });
        state.script.pop_front()
    };
    let mut reply =
        reply.unwrap_or(Reply::Status(500, json!({"error": {"message": "unscripted"}})));
    while let Reply::Delay(ms, then) = reply {
        tokio::time::sleep(Duration::from_millis(ms)).await;
        reply = *then;
    }
    match reply {
        Reply::Vectors { dims } => vectors(uri.path(), &body, dims, 0).into_response(),
        Reply::TooFew => vectors(uri.path(), &body, DIMS, 1).into_response(),
        Reply::Status(code, body) => {
            (StatusCode::from_u16(code).unwrap(), axum::Json(body)).into_response()
        }
        Reply::Garbage => (StatusCode::OK, "<html>proxy</html>").into_response(),
        Reply::Delay(..) => unreachable!(),
    }
}

/// Text `i` of a request embeds to `[i, i, …]`, so order is checkable; `missing` vectors are left out.
fn vectors(path: &str, body: &Value, dims: usize, missing: usize) -> axum::Json<Value> {
    let texts = |key: &str| body[key].as_array().map_or(0, Vec::len).saturating_sub(missing);
    #[allow(clippy::cast_precision_loss)]
    let vector = |i: usize| vec![i as f32; dims];
    let reply = if path.ends_with(":batchEmbedContents") {
        json!({"embeddings": (0..texts("requests")).map(|i| json!({"values": vector(i)})).collect::<Vec<_>>()})
    } else if path.ends_with(":predict") {
        json!({"predictions": (0..texts("instances")).map(|i| json!({"embeddings": {
            "values": vector(i), "statistics": {"token_count": 3.0, "truncated": false}}}))
            .collect::<Vec<_>>()})
    } else {
        // OpenAI-compatible: answered in reverse, with `index`, so the client must sort.
        let n = texts("input");
        json!({"object": "list", "data": (0..n).rev().map(|i| json!({"object": "embedding",
            "embedding": vector(i), "index": i})).collect::<Vec<_>>(),
            "usage": {"prompt_tokens": 7, "total_tokens": 7}})
    };
    axum::Json(reply)
}

fn fast_retry(max_attempts: u32) -> RetryPolicy {
    RetryPolicy {
        max_attempts,
        base_delay: Duration::from_millis(5),
        max_delay: Duration::from_millis(20),
    }
}

/// $1 per 1M input tokens: a token costs one micro-dollar.
fn config() -> EmbedGatewayConfig {
    EmbedGatewayConfig {
        retry: fast_retry(3),
        breaker: BreakerConfig { failure_threshold: 50, cool_down: Duration::from_millis(300) },
        deadline: Duration::from_secs(5),
        prices: PriceTable::default()
            .with("gemini-embedding-001", ModelPrice::per_million_usd(1.0, 0.0, 0.0))
            .with("text-embedding-005", ModelPrice::per_million_usd(1.0, 0.0, 0.0))
            .with("nomic-embed-text", ModelPrice::per_million_usd(1.0, 0.0, 0.0)),
        ..EmbedGatewayConfig::default()
    }
}

fn gemini(base_url: &str) -> GeminiEmbeddings {
    let mut config = GeminiEmbeddingsConfig::new(ApiKey::new("test-key-123").unwrap(), DIMS);
    config.base_url = base_url.to_owned();
    config.timeout = Duration::from_secs(5);
    GeminiEmbeddings::new(config).unwrap()
}

struct Fixture {
    embedder: EmbedGateway,
    ledger: Arc<MemoryUsageLedger>,
}

impl Fixture {
    fn new(provider: impl EmbeddingProvider + 'static, config: EmbedGatewayConfig) -> Fixture {
        let ledger = Arc::new(MemoryUsageLedger::new());
        let clock = Arc::new(ManualClock::new(NOW));
        let embedder =
            EmbedGateway::new(Arc::new(provider), config, ledger.clone(), clock).unwrap();
        Fixture { embedder, ledger }
    }

    fn rows(&self) -> Vec<UsageRecord> {
        self.ledger.records()
    }

    fn row(&self) -> UsageRecord {
        let [row] = self.rows().try_into().unwrap();
        row
    }
}

fn texts(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("fn f{i}() {{}}")).collect()
}

fn failed(kind: &str) -> CallOutcome {
    CallOutcome::Failed { kind: kind.to_owned() }
}

#[tokio::test]
async fn gemini_splits_into_batches_of_100_with_task_types_and_one_row_per_request() {
    let fake = Fake::start(vec![Reply::Vectors { dims: DIMS }; 3]).await;
    let f = Fixture::new(gemini(&fake.base_url), config());
    let input = texts(250);
    let vectors = f.embedder.embed(&input, EmbedPurpose::Document).await.unwrap();
    assert_eq!(vectors.len(), 250);
    // Each request numbers its texts from 0, so text 120 is the 21st of the second request.
    assert_eq!(
        (vectors[0][0], vectors[99][0], vectors[120][0], vectors[249][0]),
        (0.0, 99.0, 20.0, 49.0)
    );
    assert_eq!(f.embedder.model_id(), "gemini-embedding-001");
    assert_eq!(f.embedder.dimensions(), DIMS);

    let seen = fake.seen();
    let sizes: Vec<_> = seen.iter().map(|s| s.body["requests"].as_array().unwrap().len()).collect();
    assert_eq!(sizes, [100, 100, 50]);
    let first = &seen[0];
    assert_eq!(first.path, "/v1beta/models/gemini-embedding-001:batchEmbedContents");
    assert_eq!(first.headers["x-goog-api-key"], "test-key-123");
    assert_eq!(
        first.body["requests"][1],
        json!({"model": "models/gemini-embedding-001", "content": {"parts": [{"text": "fn f1() {}"}]},
               "taskType": "RETRIEVAL_DOCUMENT", "outputDimensionality": DIMS})
    );

    let rows = f.rows();
    assert_eq!(rows.len(), 3);
    // No usage in the reply: ~4 characters a token, 10-11 characters a text here.
    let expected_tokens: u64 = input[..100].iter().map(|t| t.len().div_ceil(4) as u64).sum();
    let row = &rows[0];
    assert_eq!(
        (row.model.as_str(), row.step.as_str(), &row.outcome, row.attempts, row.at),
        ("gemini-embedding-001", "embed", &CallOutcome::Ok, 1, NOW)
    );
    assert_eq!(row.tokens, TokenUsage { input: expected_tokens, ..TokenUsage::default() });
    assert_eq!(row.cost_micros, expected_tokens);

    let fake = Fake::start([Reply::Vectors { dims: DIMS }]).await;
    let f = Fixture::new(gemini(&fake.base_url), config());
    f.embedder.embed(&texts(1), EmbedPurpose::Query).await.unwrap();
    assert_eq!(fake.seen()[0].body["requests"][0]["taskType"], "RETRIEVAL_QUERY");
    assert!(f.embedder.embed(&[], EmbedPurpose::Query).await.unwrap().is_empty());
    assert_eq!(fake.seen().len(), 1, "no texts, no request");
}

#[tokio::test]
async fn vertex_sends_a_fresh_bearer_token_and_counts_the_reported_tokens() {
    let fake = Fake::start(vec![Reply::Vectors { dims: DIMS }; 2]).await;
    let calls = Arc::new(Mutex::new(0));
    let counter = Arc::clone(&calls);
    let tokens: Arc<dyn AccessTokenSource> = Arc::new(move || {
        let counter = Arc::clone(&counter);
        async move {
            let mut n = counter.lock().unwrap();
            *n += 1;
            Ok(format!("ya29.token-{n}"))
        }
    });
    let mut vertex =
        VertexEmbeddingsConfig::new("proj", "us-central1", "text-embedding-005", DIMS, tokens);
    assert_eq!(vertex.max_batch, 250);
    vertex.max_batch = 2;
    vertex.base_url = Some(fake.base_url.clone());
    let f = Fixture::new(VertexEmbeddings::new(vertex).unwrap(), config());
    let vectors = f.embedder.embed(&texts(3), EmbedPurpose::Query).await.unwrap();
    assert_eq!(vectors, vec![vec![0.0; DIMS], vec![1.0; DIMS], vec![0.0; DIMS]]);

    let seen = fake.seen();
    assert_eq!(
        seen[0].path,
        "/v1/projects/proj/locations/us-central1/publishers/google/models/text-embedding-005:predict"
    );
    assert_eq!(seen[0].headers["authorization"], "Bearer ya29.token-1");
    assert_eq!(seen[1].headers["authorization"], "Bearer ya29.token-2");
    assert_eq!(
        seen[0].body,
        json!({"instances": [{"content": "fn f0() {}", "task_type": "RETRIEVAL_QUERY"},
                             {"content": "fn f1() {}", "task_type": "RETRIEVAL_QUERY"}],
               "parameters": {"outputDimensionality": DIMS}})
    );
    // Three tokens per text, as the fake reports in `statistics.token_count`.
    let tokens: Vec<_> = f.rows().iter().map(|r| (r.tokens.input, r.cost_micros)).collect();
    assert_eq!(tokens, [(6, 6), (3, 3)]);

    let gemini_on_vertex = VertexEmbeddingsConfig::new(
        "p",
        "global",
        "gemini-embedding-001",
        DIMS,
        Arc::new(|| async { Ok("t".to_owned()) }),
    );
    assert_eq!(gemini_on_vertex.max_batch, 1, "gemini-embedding takes one instance per request");
}

#[tokio::test]
async fn vertex_token_failures_are_refusals_with_a_row() {
    let fake = Fake::start([]).await;
    let tokens: Arc<dyn AccessTokenSource> = Arc::new(|| async {
        Err(ModelError::NotConfigured { hint: "no Google credentials found".into() })
    });
    let mut vertex =
        VertexEmbeddingsConfig::new("p", "us-central1", "text-embedding-005", DIMS, tokens);
    vertex.base_url = Some(fake.base_url.clone());
    let f = Fixture::new(VertexEmbeddings::new(vertex).unwrap(), config());
    let error = f.embedder.embed(&texts(1), EmbedPurpose::Document).await.unwrap_err();
    assert!(
        matches!(&error, EmbedError::Refused(m) if m.contains("no Google credentials")),
        "{error:?}"
    );
    assert!(!error.is_retryable());
    assert!(fake.seen().is_empty());
    assert_eq!(f.row().outcome, failed("not_configured"));
}

#[tokio::test]
async fn openai_compatible_sorts_by_index_applies_prefixes_and_reads_usage() {
    let fake = Fake::start(vec![Reply::Vectors { dims: DIMS }; 2]).await;
    let mut openai =
        OpenAiEmbeddingsConfig::new(format!("{}/v1", fake.base_url), "nomic-embed-text", DIMS);
    openai.query_prefix = "search_query: ".into();
    let f = Fixture::new(OpenAiEmbeddings::new(openai.clone()).unwrap(), config());
    let vectors = f.embedder.embed(&texts(3), EmbedPurpose::Query).await.unwrap();
    assert_eq!(vectors, vec![vec![0.0; DIMS], vec![1.0; DIMS], vec![2.0; DIMS]]);
    let seen = fake.seen();
    assert_eq!(seen[0].path, "/v1/embeddings");
    assert!(seen[0].headers.get("authorization").is_none());
    assert_eq!(
        seen[0].body,
        json!({"model": "nomic-embed-text", "encoding_format": "float",
               "input": ["search_query: fn f0() {}", "search_query: fn f1() {}", "search_query: fn f2() {}"]})
    );
    assert_eq!((f.row().tokens.input, f.row().cost_micros), (7, 7));

    openai.send_dimensions = true;
    openai.api_key = Some(ApiKey::new("sk-local").unwrap());
    let f = Fixture::new(OpenAiEmbeddings::new(openai).unwrap(), config());
    f.embedder.embed(&texts(1), EmbedPurpose::Document).await.unwrap();
    let seen = &fake.seen()[1];
    assert_eq!(
        (&seen.body["dimensions"], &seen.body["input"][0]),
        (&json!(DIMS), &json!("fn f0() {}"))
    );
    assert_eq!(seen.headers["authorization"], "Bearer sk-local");
}

#[tokio::test]
async fn throttling_is_retried_after_the_providers_delay() {
    let rate_limited = json!({"error": {"code": 429, "status": "RESOURCE_EXHAUSTED", "message": "quota",
        "details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "0.05s"}]}});
    let fake = Fake::start([Reply::Status(429, rate_limited), Reply::Vectors { dims: DIMS }]).await;
    let f = Fixture::new(gemini(&fake.base_url), config());
    let started = tokio::time::Instant::now();
    f.embedder.embed(&texts(2), EmbedPurpose::Document).await.unwrap();
    assert!(started.elapsed() >= Duration::from_millis(50), "retried sooner than retryDelay");
    let row = f.row();
    assert_eq!((&row.outcome, row.attempts), (&CallOutcome::Ok, 2));
}

#[tokio::test]
async fn persistent_throttling_stays_rate_limited() {
    let rate_limited = json!({"error": {"code": 429, "status": "RESOURCE_EXHAUSTED", "message": "quota",
        "details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "1s"}]}});
    let fake = Fake::start([Reply::Status(429, rate_limited)]).await;
    let f = Fixture::new(
        gemini(&fake.base_url),
        EmbedGatewayConfig { retry: fast_retry(1), ..config() },
    );
    let error = f.embedder.embed(&texts(1), EmbedPurpose::Document).await.unwrap_err();
    assert_eq!(error, EmbedError::RateLimited { retry_after_ms: Some(1_000) });
    assert!(error.is_retryable());
    assert_eq!(f.row().outcome, failed("rate_limited"));
}

#[tokio::test]
async fn a_5xx_burst_past_the_attempts_is_unavailable() {
    let busy = || {
        Reply::Status(
            503,
            json!({"error": {"code": 503, "status": "UNAVAILABLE", "message": "overloaded"}}),
        )
    };
    let fake = Fake::start([busy(), busy(), busy()]).await;
    let f = Fixture::new(gemini(&fake.base_url), config());
    let error = f.embedder.embed(&texts(1), EmbedPurpose::Document).await.unwrap_err();
    assert!(matches!(&error, EmbedError::Unavailable(m) if m.contains("overloaded")), "{error:?}");
    let row = f.row();
    assert_eq!((&row.outcome, row.attempts, row.tokens.input), (&failed("server_error"), 3, 0));
}

#[tokio::test]
async fn a_4xx_is_refused_at_once() {
    let bad =
        json!({"error": {"code": 400, "status": "INVALID_ARGUMENT", "message": "text too long"}});
    let fake = Fake::start([Reply::Status(400, bad)]).await;
    let f = Fixture::new(gemini(&fake.base_url), config());
    let error = f.embedder.embed(&texts(1), EmbedPurpose::Document).await.unwrap_err();
    assert!(matches!(&error, EmbedError::Refused(m) if m.contains("text too long")), "{error:?}");
    assert_eq!(fake.seen().len(), 1);
    assert_eq!((f.row().outcome, f.row().attempts), (failed("rejected"), 1));
}

#[tokio::test]
async fn replies_of_the_wrong_shape_are_malformed_and_still_billed() {
    let fake =
        Fake::start([Reply::Vectors { dims: DIMS + 1 }, Reply::TooFew, Reply::Garbage]).await;
    let f = Fixture::new(gemini(&fake.base_url), config());
    let dims = f.embedder.embed(&texts(2), EmbedPurpose::Document).await.unwrap_err();
    let EmbedError::Malformed(message) = &dims else { panic!("{dims:?}") };
    assert!(message.contains("5 dimensions, expected 4"), "{message}");
    assert!(!dims.is_retryable());
    let count = f.embedder.embed(&texts(2), EmbedPurpose::Document).await.unwrap_err();
    assert!(
        matches!(&count, EmbedError::Malformed(m) if m.contains("1 vectors for 2 texts")),
        "{count:?}"
    );
    let garbage = f.embedder.embed(&texts(2), EmbedPurpose::Document).await.unwrap_err();
    assert!(matches!(&garbage, EmbedError::Malformed(m) if m.contains("not JSON")), "{garbage:?}");
    assert_eq!(fake.seen().len(), 3, "a malformed reply is not retried");
    let rows: Vec<_> =
        f.rows().iter().map(|r| (r.outcome.label().to_owned(), r.tokens.input > 0)).collect();
    assert_eq!(
        rows,
        [
            ("malformed_reply".to_owned(), true),
            ("malformed_reply".to_owned(), true),
            ("malformed_reply".to_owned(), false),
        ]
    );
}

#[tokio::test]
async fn the_breaker_opens_and_fails_fast_without_calling() {
    let busy = || Reply::Status(500, json!({"error": {"message": "down"}}));
    let fake = Fake::start([busy(), busy()]).await;
    let config = EmbedGatewayConfig {
        retry: fast_retry(1),
        breaker: BreakerConfig { failure_threshold: 2, cool_down: Duration::from_secs(60) },
        ..config()
    };
    let f = Fixture::new(gemini(&fake.base_url), config);
    for _ in 0..2 {
        let error = f.embedder.embed(&texts(1), EmbedPurpose::Document).await.unwrap_err();
        assert!(matches!(error, EmbedError::Unavailable(_)), "{error:?}");
    }
    let open = f.embedder.embed(&texts(1), EmbedPurpose::Document).await.unwrap_err();
    assert!(
        matches!(&open, EmbedError::Unavailable(m) if m.contains("circuit breaker")),
        "{open:?}"
    );
    assert_eq!(fake.seen().len(), 2, "no request while open");
    let last = f.rows().pop().unwrap();
    assert_eq!((last.outcome, last.attempts), (failed("circuit_open"), 0));
}

#[tokio::test]
async fn an_unreachable_provider_and_a_slow_one_are_unavailable() {
    let f = Fixture::new(
        gemini(&dead_port_url()),
        EmbedGatewayConfig { retry: fast_retry(2), ..config() },
    );
    let error = f.embedder.embed(&texts(1), EmbedPurpose::Document).await.unwrap_err();
    assert!(matches!(&error, EmbedError::Unavailable(m) if m.contains("unreachable")), "{error:?}");
    assert_eq!((f.row().outcome, f.row().attempts), (failed("unreachable"), 2));

    let fake = Fake::start([Reply::Delay(2_000, Box::new(Reply::Vectors { dims: DIMS }))]).await;
    let config = EmbedGatewayConfig { deadline: Duration::from_millis(100), ..config() };
    let f = Fixture::new(gemini(&fake.base_url), config);
    let error = f.embedder.embed(&texts(1), EmbedPurpose::Document).await.unwrap_err();
    assert!(matches!(&error, EmbedError::Unavailable(m) if m.contains("deadline")), "{error:?}");
    assert_eq!(f.row().outcome, failed("deadline_exceeded"));
}

#[tokio::test]
async fn an_abandoned_call_still_leaves_a_cancelled_row() {
    let fake = Fake::start([Reply::Delay(2_000, Box::new(Reply::Vectors { dims: DIMS }))]).await;
    let f = Fixture::new(gemini(&fake.base_url), config());
    let input = texts(1);
    let call = f.embedder.embed(&input, EmbedPurpose::Document);
    assert!(tokio::time::timeout(Duration::from_millis(50), call).await.is_err());
    for _ in 0..100 {
        if !f.rows().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let row = f.row();
    assert_eq!((row.outcome, row.attempts), (failed("cancelled"), 1));
}

#[tokio::test]
async fn request_limits_make_callers_wait_instead_of_failing() {
    let fake = Fake::start(vec![Reply::Vectors { dims: DIMS }; 3]).await;
    // 3 per 200 ms with a burst of 1: the steady rate is one request every 100 ms.
    let config = EmbedGatewayConfig {
        requests: Some(RateLimit { limit: 3, window: Duration::from_millis(200), burst: 1 }),
        ..config()
    };
    let mut gemini_config = GeminiEmbeddingsConfig::new(ApiKey::new("k").unwrap(), DIMS);
    gemini_config.base_url = fake.base_url.clone();
    gemini_config.max_batch = 1;
    let f = Fixture::new(GeminiEmbeddings::new(gemini_config).unwrap(), config);
    let started = tokio::time::Instant::now();
    f.embedder.embed(&texts(3), EmbedPurpose::Document).await.unwrap();
    assert!(started.elapsed() >= Duration::from_millis(200), "{:?}", started.elapsed());
    assert_eq!(f.rows().len(), 3);

    let bad = EmbedGatewayConfig {
        requests: Some(RateLimit { limit: 1, window: Duration::from_secs(1), burst: 1 }),
        ..EmbedGatewayConfig::default()
    };
    let error = EmbedGateway::new(
        Arc::new(gemini(&fake.base_url)),
        bad,
        Arc::new(MemoryUsageLedger::new()),
        Arc::new(ManualClock::new(NOW)),
    )
    .unwrap_err();
    assert!(error.to_string().contains("requests rate limit"), "{error}");
}
