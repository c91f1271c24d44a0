//! The Interactions API provider against a local axum server speaking `POST /v1beta/interactions`
//! (unary JSON and server-sent events), plus a raw TCP server for a stream cut mid-body. Error paths
//! also run behind the `Gateway`, to check each ends in a typed error and a ledger row.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use cadre_domain::ports::clock::ManualClock;
use cadre_domain::ports::model::{
    CachePolicy, ChatMessage, FinishReason, Model, ModelError, ModelReply, ModelRequest,
    TokenUsage, ToolCall, ToolResult, ToolSpec,
};
use cadre_domain::ports::usage::CallOutcome;
use cadre_domain::Timestamp;
use cadre_model::gateway::{
    Gateway, GatewayConfig, GatewayPorts, MemoryModelCache, MemoryUsageLedger, ModelPrice,
    PriceTable, RetryPolicy,
};
use cadre_model::interactions::{InteractionsConfig, InteractionsModel};
use cadre_model::ApiKey;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::{ask, dead_port_url};

#[derive(Debug, Clone)]
enum Reply {
    Json(u16, Value),
    /// Server-sent events, each `{"event_type": …}` object as one frame.
    Events(Vec<Value>),
    Garbage,
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

struct Fake {
    base_url: String,
    state: Shared,
}

impl Fake {
    async fn start(script: Vec<Reply>) -> Fake {
        let state: Shared =
            Arc::new(Mutex::new(FakeState { script: script.into(), seen: Vec::new() }));
        let app = Router::new().fallback(handle).with_state(Arc::clone(&state));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Fake { base_url: format!("http://{addr}"), state }
    }

    fn seen(&self) -> Vec<Seen> {
        self.state.lock().unwrap().seen.clone()
    }

    fn model(&self) -> InteractionsModel {
        model_at(&self.base_url)
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
        state.seen.push(Seen { path: uri.path().to_owned(), headers, body });
        state.script.pop_front()
    };
    match reply.unwrap_or(Reply::Json(500, json!({"error": {"message": "unscripted"}}))) {
        Reply::Json(code, body) => {
            (StatusCode::from_u16(code).unwrap(), axum::Json(body)).into_response()
        }
        Reply::Events(events) => {
            let frames: String = events
                .iter()
                .map(|e| {
                    format!(
                        "event: {}\r\ndata: {e}\r\n\r\n",
                        e["event_type"].as_str().unwrap_or("")
                    )
                })
                .collect();
            ([(header::CONTENT_TYPE, "text/event-stream")], frames).into_response()
        }
        Reply::Garbage => (StatusCode::OK, "<html>proxy</html>").into_response(),
    }
}

fn model_at(base_url: &str) -> InteractionsModel {
    let mut config = InteractionsConfig::new(ApiKey::new("test-key-123").unwrap());
    config.base_url = base_url.to_owned();
    config.model = "gemini-test".to_owned();
    config.timeout = Duration::from_secs(5);
    InteractionsModel::new(config).unwrap()
}

fn interaction(status: &str, steps: Value) -> Value {
    json!({"id": "v1_abc", "object": "interaction", "model": "gemini-test", "status": status,
           "created": "2026-06-09T12:01:25Z", "steps": steps,
           "usage": {"total_input_tokens": 12, "total_output_tokens": 5, "total_thought_tokens": 40,
                     "total_cached_tokens": 8, "total_tool_use_tokens": 2, "total_tokens": 59}})
}

fn text_step(text: &str) -> Value {
    json!({"type": "model_output", "content": [{"type": "text", "text": text}]})
}

fn tool_request() -> ModelRequest {
    ModelRequest {
        tools: vec![ToolSpec {
            name: "read_file".into(),
            description: "reads a file of the repository".into(),
            parameters: json!({"type": "object", "properties": {"path": {"type": "string"}}}),
        }],
        ..ask("fix the bug")
    }
}

#[tokio::test]
async fn a_unary_interaction_maps_text_signatures_calls_and_usage() {
    let steps = json!([
        {"type": "thought", "signature": "c2lnLXRob3VnaHQ=", "summary": []},
        text_step("I will read it."),
        {"type": "function_call", "id": "call-1", "name": "read_file",
         "arguments": {"path": "src/lib.rs"}, "signature": "c2lnLWNhbGw="},
        {"type": "function_call", "id": "call-2", "name": "read_file", "arguments": {"path": "src/main.rs"}},
    ]);
    let fake = Fake::start(vec![Reply::Json(200, interaction("requires_action", steps))]).await;
    let model = fake.model();
    let reply = model.complete(&tool_request()).await.unwrap();
    assert_eq!(reply.text, "I will read it.");
    assert_eq!(reply.thought_signature.as_deref(), Some("c2lnLXRob3VnaHQ="));
    assert_eq!(reply.finish, FinishReason::Stop);
    assert_eq!(reply.usage, TokenUsage { input: 14, output: 5, cached: 8, thinking: 40 });
    assert_eq!(
        reply.tool_calls,
        [
            ToolCall {
                id: Some("call-1".into()),
                name: "read_file".into(),
                args: json!({"path": "src/lib.rs"}),
                thought_signature: Some("c2lnLWNhbGw=".into()),
            },
            ToolCall {
                id: Some("call-2".into()),
                name: "read_file".into(),
                args: json!({"path": "src/main.rs"}),
                thought_signature: None,
            },
        ]
    );
    assert_eq!(model.describe(), "interactions:gemini-test");

    let [seen] = fake.seen().try_into().unwrap();
    assert_eq!(seen.path, "/v1beta/interactions");
    assert_eq!(seen.headers["x-goog-api-key"], "test-key-123");
    assert_eq!(seen.headers["api-revision"], "2026-05-20");
    assert_eq!(
        seen.body,
        json!({
            "model": "gemini-test",
            "input": [{"type": "user_input", "content": [{"type": "text", "text": "fix the bug"}]}],
            "system_instruction": "you are terse",
            "tools": [{"type": "function", "name": "read_file", "description": "reads a file of the repository",
                       "parameters": {"type": "object", "properties": {"path": {"type": "string"}}}}],
            "generation_config": {"temperature": 0.0, "max_output_tokens": 256},
            "store": false,
        })
    );
}

#[tokio::test]
async fn the_next_turn_sends_every_signature_and_result_back_unchanged() {
    let first = json!([
        {"type": "thought", "signature": "sig-thought"},
        {"type": "function_call", "id": "call-1", "name": "read_file", "arguments": {"path": "a.rs"},
         "signature": "sig-call"},
    ]);
    let fake = Fake::start(vec![
        Reply::Json(200, interaction("requires_action", first)),
        Reply::Json(200, interaction("completed", json!([text_step("Fixed.")]))),
    ])
    .await;
    let model = fake.model();
    let mut request = tool_request();
    let reply = model.complete(&request).await.unwrap();
    request.messages.push(ChatMessage::from_reply(&reply));
    request.messages.push(ChatMessage::tool_results(vec![ToolResult {
        id: Some("call-1".into()),
        name: "read_file".into(),
        response: json!({"content": "fn a() {}"}),
    }]));
    let second = model.complete(&request).await.unwrap();
    assert_eq!((second.text.as_str(), second.tool_calls.len()), ("Fixed.", 0));
    assert_eq!(
        fake.seen()[1].body["input"],
        json!([
            {"type": "user_input", "content": [{"type": "text", "text": "fix the bug"}]},
            {"type": "thought", "signature": "sig-thought"},
            {"type": "function_call", "id": "call-1", "name": "read_file", "arguments": {"path": "a.rs"},
             "signature": "sig-call"},
            {"type": "function_result", "call_id": "call-1", "name": "read_file",
             "result": {"content": "fn a() {}"}},
        ])
    );
}

#[tokio::test]
async fn echoed_input_and_legacy_outputs_are_understood() {
    let echoed = json!([
        {"type": "user_input", "content": [{"type": "text", "text": "hello"}]},
        text_step("Hi there"),
    ]);
    let legacy = json!({"id": "int_1", "status": "completed", "outputs": [
        {"type": "thought", "signature": "s"}, {"type": "text", "text": "Legacy hi"}],
        "usage": {"total_input_tokens": 3, "total_output_tokens": 2}});
    let fake = Fake::start(vec![
        Reply::Json(200, interaction("completed", echoed)),
        Reply::Json(200, legacy),
    ])
    .await;
    let model = fake.model();
    assert_eq!(model.complete(&ask("hello")).await.unwrap().text, "Hi there");
    let reply = model.complete(&ask("hello")).await.unwrap();
    assert_eq!((reply.text.as_str(), reply.thought_signature.as_deref()), ("Legacy hi", Some("s")));
    assert_eq!(reply.model, "gemini-test", "the configured id when the answer names none");
}

#[tokio::test]
async fn statuses_and_in_band_errors_become_the_ports_answers() {
    let failed = |code: &str, message: &str| json!({"id": "i", "status": "failed", "error": {"code": code, "message": message}});
    let fake = Fake::start(vec![
        Reply::Json(200, interaction("incomplete", json!([text_step("cut off mid-")]))),
        Reply::Json(200, interaction("incomplete", json!([{"type": "thought", "signature": "s"}]))),
        Reply::Json(200, failed("SAFETY", "the response was blocked")),
        Reply::Json(200, failed("RESOURCE_EXHAUSTED", "quota")),
        Reply::Json(200, failed("INTERNAL", "boom")),
        Reply::Json(200, interaction("completed", json!([]))),
        Reply::Json(200, interaction("requires_action", json!([
            {"type": "function_call", "id": "c", "name": "read_file", "arguments": "src/lib.rs"}]))),
        Reply::Json(200, interaction("completed", json!([
            {"type": "model_output", "content": [], "error": {"code": "PROHIBITED_CONTENT", "message": "no"}}]))),
        Reply::Json(200, interaction("cancelled", json!([text_step("x")]))),
    ])
    .await;
    let model = fake.model();
    let cut = model.complete(&ask("q")).await.unwrap();
    assert_eq!((cut.text.as_str(), cut.finish), ("cut off mid-", FinishReason::MaxTokens));
    let mut errors = Vec::new();
    for _ in 0..8 {
        errors.push(model.complete(&ask("q")).await.unwrap_err());
    }
    assert!(
        matches!(&errors[0], ModelError::MalformedReply { reason } if reason.contains("output cap")),
        "{:?}",
        errors[0]
    );
    assert!(
        matches!(&errors[1], ModelError::Blocked { reason } if reason.contains("blocked")),
        "{:?}",
        errors[1]
    );
    assert_eq!(errors[2], ModelError::RateLimited { retry_after_ms: None });
    assert!(
        matches!(&errors[3], ModelError::ServerError { status: 500, message } if message.contains("boom"))
    );
    assert!(matches!(&errors[4], ModelError::MalformedReply { .. }), "{:?}", errors[4]);
    assert!(
        matches!(&errors[5], ModelError::MalformedToolCall { finish, .. } if finish == "invalid_arguments")
    );
    assert!(matches!(&errors[6], ModelError::Blocked { .. }), "{:?}", errors[6]);
    assert!(
        matches!(&errors[7], ModelError::MalformedReply { reason } if reason.contains("cancelled"))
    );
}

#[tokio::test]
async fn http_failures_map_as_the_port_requires() {
    let rate_limited = json!({"error": {"code": 429, "status": "RESOURCE_EXHAUSTED", "message": "quota",
        "details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "7s"}]}});
    let fake = Fake::start(vec![
        Reply::Json(429, rate_limited),
        Reply::Json(503, json!({"error": {"code": 503, "message": "overloaded", "status": "UNAVAILABLE"}})),
        Reply::Json(400, json!({"error": {"code": 400, "message": "unknown field", "status": "INVALID_ARGUMENT"}})),
        Reply::Garbage,
    ])
    .await;
    let model = fake.model();
    assert_eq!(
        model.complete(&ask("q")).await.unwrap_err(),
        ModelError::RateLimited { retry_after_ms: Some(7_000) }
    );
    assert!(matches!(
        model.complete(&ask("q")).await.unwrap_err(),
        ModelError::ServerError { status: 503, .. }
    ));
    assert!(matches!(
        model.complete(&ask("q")).await.unwrap_err(),
        ModelError::Rejected { status: 400, message } if message == "unknown field"
    ));
    assert!(matches!(
        model.complete(&ask("q")).await.unwrap_err(),
        ModelError::MalformedReply { .. }
    ));
    let dead = model_at(&dead_port_url()).complete(&ask("q")).await.unwrap_err();
    assert!(matches!(dead, ModelError::Unreachable { .. }), "{dead:?}");
}

#[tokio::test]
async fn behind_the_gateway_every_outcome_leaves_a_row() {
    let fake = Fake::start(vec![
        Reply::Json(200, interaction("completed", json!([text_step("fine")]))),
        Reply::Json(
            200,
            json!({"status": "failed", "error": {"code": "SAFETY", "message": "blocked"}}),
        ),
        Reply::Json(400, json!({"error": {"code": 400, "message": "bad"}})),
        Reply::Json(503, json!({"error": {"message": "down"}})),
    ])
    .await;
    let ledger = Arc::new(MemoryUsageLedger::new());
    let mut config = GatewayConfig::new("gemini-test");
    config.prices =
        PriceTable::default().with("gemini-test", ModelPrice::per_million_usd(1.0, 2.0, 0.1));
    config.retry = RetryPolicy { max_attempts: 1, ..RetryPolicy::default() };
    let ports = GatewayPorts {
        ledger: ledger.clone(),
        cache: Arc::new(MemoryModelCache::default()),
        clock: Arc::new(ManualClock::new(Timestamp(0))),
    };
    let gateway = Gateway::new(Arc::new(fake.model()), config, ports).unwrap();
    let request = ModelRequest { cache: CachePolicy::Bypass, ..ask("q") };
    assert_eq!(gateway.complete(&request).await.unwrap().text, "fine");
    for _ in 0..3 {
        assert!(gateway.complete(&request).await.is_err());
    }
    let rows = ledger.records();
    let outcomes: Vec<_> = rows.iter().map(|r| r.outcome.label().to_owned()).collect();
    assert_eq!(outcomes, ["ok", "blocked", "rejected", "server_error"]);
    assert_eq!(rows[0].tokens, TokenUsage { input: 14, output: 5, cached: 8, thinking: 40 });
    assert!(rows[0].cost_micros > 0);
    assert_eq!(rows[1].outcome, CallOutcome::Failed { kind: "blocked".into() });
}

fn collect_text() -> (Arc<Mutex<Vec<String>>>, impl Fn(&str) + Send + Sync) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&seen);
    (seen, move |t: &str| sink.lock().unwrap().push(t.to_owned()))
}

#[tokio::test]
async fn a_stream_hands_out_text_as_it_comes_and_returns_the_whole_reply() {
    let events = vec![
        json!({"event_type": "interaction.created", "interaction": {"id": "v1_s", "status": "in_progress", "model": "gemini-test"}}),
        json!({"event_type": "step.start", "index": 0, "step": {"type": "thought"}}),
        json!({"event_type": "step.delta", "index": 0, "delta": {"type": "thought_signature", "signature": "sig-stream"}}),
        json!({"event_type": "step.stop", "index": 0}),
        json!({"event_type": "step.start", "index": 1, "step": {"type": "model_output", "content": []}}),
        json!({"event_type": "step.delta", "index": 1, "delta": {"type": "text", "text": "Hello, "}}),
        json!({"event_type": "step.delta", "index": 1, "delta": {"type": "text", "text": "world"}}),
        json!({"event_type": "step.stop", "index": 1}),
        json!({"event_type": "step.start", "index": 2, "step": {"type": "function_call", "id": "c1", "name": "read_file", "arguments": {}}}),
        json!({"event_type": "step.delta", "index": 2, "delta": {"type": "arguments_delta", "arguments": "{\"path\": "}}),
        json!({"event_type": "step.delta", "index": 2, "delta": {"type": "arguments_delta", "arguments": "\"a.rs\"}"}}),
        json!({"event_type": "step.stop", "index": 2}),
        json!({"event_type": "interaction.completed", "interaction": {"id": "v1_s", "status": "requires_action",
               "usage": {"total_input_tokens": 9, "total_output_tokens": 4, "total_thought_tokens": 11}}}),
    ];
    let fake = Fake::start(vec![Reply::Events(events)]).await;
    let (texts, on_text) = collect_text();
    let reply = fake.model().stream(&tool_request(), &on_text).await.unwrap();
    assert_eq!(*texts.lock().unwrap(), ["Hello, ", "world"]);
    assert_eq!(
        reply,
        ModelReply {
            text: "Hello, world".into(),
            usage: TokenUsage { input: 9, output: 4, cached: 0, thinking: 11 },
            finish: FinishReason::Stop,
            model: "gemini-test".into(),
            thought_signature: Some("sig-stream".into()),
            tool_calls: vec![ToolCall {
                id: Some("c1".into()),
                name: "read_file".into(),
                args: json!({"path": "a.rs"}),
                thought_signature: None,
            }],
        }
    );
    let seen = &fake.seen()[0];
    assert_eq!(seen.body["stream"], json!(true));
    assert_eq!(seen.headers["accept"], "text/event-stream");
}

#[tokio::test]
async fn a_stream_that_errors_or_stops_early_is_an_error_never_a_partial_reply() {
    let start = json!({"event_type": "step.start", "index": 0, "step": {"type": "model_output"}});
    let delta = json!({"event_type": "step.delta", "index": 0, "delta": {"type": "text", "text": "partial"}});
    let fake = Fake::start(vec![
        Reply::Events(vec![
            start.clone(),
            delta.clone(),
            json!({"event_type": "error", "error": {"code": "INTERNAL", "message": "the model crashed"}}),
        ]),
        Reply::Events(vec![start, delta]),
        Reply::Json(429, json!({"error": {"code": 429, "status": "RESOURCE_EXHAUSTED", "message": "slow down"}})),
    ])
    .await;
    let model = fake.model();
    let (texts, on_text) = collect_text();
    let error = model.stream(&ask("q"), &on_text).await.unwrap_err();
    assert!(
        matches!(&error, ModelError::ServerError { message, .. } if message.contains("crashed")),
        "{error:?}"
    );
    assert_eq!(
        *texts.lock().unwrap(),
        ["partial"],
        "text handed out before the error is void, not returned"
    );
    let early = model.stream(&ask("q"), &on_text).await.unwrap_err();
    assert!(
        matches!(&early, ModelError::Unreachable { reason, .. } if reason.contains("before interaction.completed")),
        "{early:?}"
    );
    let throttled = model.stream(&ask("q"), &on_text).await.unwrap_err();
    assert_eq!(throttled, ModelError::RateLimited { retry_after_ms: None });
}

#[tokio::test]
async fn a_connection_reset_mid_stream_is_unreachable() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut request = vec![0u8; 64 * 1024];
        let _ = socket.read(&mut request).await.unwrap();
        let frame = json!({"event_type": "step.delta", "index": 0, "delta": {"type": "text", "text": "half"}});
        let head =
            "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncontent-length: 100000\r\n\r\n";
        socket.write_all(format!("{head}data: {frame}\n\n").as_bytes()).await.unwrap();
        socket.flush().await.unwrap();
        // Dropping the socket closes the connection long before the promised length.
    });
    let (texts, on_text) = collect_text();
    let error = model_at(&format!("http://{addr}")).stream(&ask("q"), &on_text).await.unwrap_err();
    assert!(
        matches!(&error, ModelError::Unreachable { reason, .. } if reason.contains("stream broke")),
        "{error:?}"
    );
    assert_eq!(*texts.lock().unwrap(), ["half"]);
}
