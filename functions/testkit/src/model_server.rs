//! A local model server speaking the Gemini and the OpenAI chat-completions wire formats on one port,
//! scripted by the test, so model adapters (and the `cadre` binary as a subprocess) are tested at the wire.
//!
//! It serves from a task spawned on the caller's tokio runtime. A test that blocks its thread (waiting on
//! a subprocess, say) must use `#[tokio::test(flavor = "multi_thread")]` so the server keeps answering.
//!
//! ```ignore
//! let server = ModelServer::start().await;
//! server.push(Scripted::Text("hello".into()));
//! // point a GeminiModel at server.base_url(), call it, then:
//! assert_eq!(server.requests()[0].last_user_text, "hi");
//! ```

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use serde_json::{json, Value};

/// One scripted answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Scripted {
    /// A normal reply with this text, in the request's own wire format (finish `STOP` / `stop`).
    Text(String),
    /// An HTTP status with a JSON body, e.g. a 429 with a `google.rpc.RetryInfo` detail.
    Status {
        /// The HTTP status.
        code: u16,
        /// The JSON body.
        body: Value,
    },
    /// Waits, then answers with `then` (to test client timeouts).
    Delay {
        /// How long to wait.
        millis: u64,
        /// The answer after the wait.
        then: Box<Scripted>,
    },
    /// A reply with this text and a verbatim finish reason (`MAX_TOKENS`, `SAFETY`, `length`, …).
    /// Empty text sends a candidate without content (Gemini) or a null content (OpenAI).
    Finish {
        /// The text; may be empty.
        text: String,
        /// The finish reason, sent as is.
        reason: String,
    },
    /// Adds response headers (e.g. `Retry-After`) to the answer `then`.
    Headers {
        /// Header names and values.
        headers: Vec<(String, String)>,
        /// The answer the headers go with.
        then: Box<Scripted>,
    },
    /// A raw body that need not be JSON (an HTML error page from a proxy, a truncated reply).
    Raw {
        /// The HTTP status.
        code: u16,
        /// The `Content-Type` header.
        content_type: String,
        /// The body, sent as is.
        body: String,
    },
}

/// Which wire format a request came in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wire {
    /// `POST /v1beta/models/{model}:generateContent` (or `/v1/…`).
    Gemini,
    /// `POST /v1/chat/completions`.
    OpenAi,
}

/// A request as the server received it.
#[derive(Debug, Clone, PartialEq)]
pub struct CapturedRequest {
    /// The wire format.
    pub wire: Wire,
    /// The request path, e.g. `/v1beta/models/gemini-3-flash-preview:generateContent`.
    pub path: String,
    /// Headers with lowercase names, in arrival order.
    pub headers: Vec<(String, String)>,
    /// The JSON body (`Value::Null` when it was not JSON).
    pub body: Value,
    /// The text of the last user turn.
    pub last_user_text: String,
    /// The system instruction's text.
    pub system_text: String,
}

impl CapturedRequest {
    /// The first value of a header (case-insensitive name).
    #[must_use]
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

type Responder = Arc<dyn Fn(&CapturedRequest) -> Scripted + Send + Sync>;

#[derive(Default)]
struct Shared {
    script: Mutex<VecDeque<Scripted>>,
    responder: Mutex<Option<Responder>>,
    requests: Mutex<Vec<CapturedRequest>>,
    /// When each request arrived, in the order of `requests` (pushed under its lock).
    arrivals: Mutex<Vec<tokio::time::Instant>>,
}

/// The running server; it stops when dropped.
pub struct ModelServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl ModelServer {
    /// Binds 127.0.0.1 on a free port and serves from a task spawned on the current tokio runtime.
    ///
    /// # Panics
    /// When no local port can be bound (a broken test machine).
    pub async fn start() -> ModelServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("the model test server cannot bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("a bound listener has an address");
        let shared = Arc::new(Shared::default());
        let app = Router::new()
            .route("/v1beta/models/{*rest}", post(gemini))
            .route("/v1/models/{*rest}", post(gemini))
            .route("/v1/chat/completions", post(openai))
            .with_state(Arc::clone(&shared));
        let task = tokio::spawn(async move {
            // The server runs until the task is aborted on drop; an accept error ends it early.
            let _ = axum::serve(listener, app).await;
        });
        ModelServer { addr, shared, task }
    }

    /// `http://127.0.0.1:PORT`: a Gemini base URL as is, and with `/v1` appended an OpenAI one.
    #[must_use]
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Appends a reply to the FIFO script, used when no responder is set.
    pub fn push(&self, reply: Scripted) {
        lock(&self.shared.script).push_back(reply);
    }

    /// Answers every later request with `f`, overriding the script.
    pub fn respond_with(&self, f: impl Fn(&CapturedRequest) -> Scripted + Send + Sync + 'static) {
        *lock(&self.shared.responder) = Some(Arc::new(f));
    }

    /// Every request received so far, in order.
    #[must_use]
    pub fn requests(&self) -> Vec<CapturedRequest> {
        lock(&self.shared.requests).clone()
    }

    /// How many requests have been received so far.
    #[must_use]
    pub fn request_count(&self) -> usize {
        lock(&self.shared.requests).len()
    }

    /// When each request arrived (tokio time, read as the handler started), in the order of
    /// [`ModelServer::requests`]; for tests of client-side rate limits and retry delays.
    #[must_use]
    pub fn arrivals(&self) -> Vec<tokio::time::Instant> {
        lock(&self.shared.arrivals).clone()
    }
}

impl Drop for ModelServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl std::fmt::Debug for ModelServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModelServer").field("addr", &self.addr).finish_non_exhaustive()
    }
}

/// A panicking responder must not take the whole server down with a poisoned lock.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

async fn gemini(
    State(shared): State<Arc<Shared>>,
    Path(rest): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (model, method) = rest.split_once(':').unwrap_or((rest.as_str(), ""));
    let model = model.to_owned();
    if method != "generateContent" {
        let message = format!("the model test server only serves :generateContent, not {rest:?}");
        return error_response(StatusCode::NOT_FOUND, &message, "NOT_FOUND");
    }
    handle(&shared, Wire::Gemini, model, uri, &headers, &body).await
}

async fn openai(
    State(shared): State<Arc<Shared>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let model = json.get("model").and_then(Value::as_str).unwrap_or("unknown").to_owned();
    handle(&shared, Wire::OpenAi, model, uri, &headers, &body).await
}

async fn handle(
    shared: &Shared,
    wire: Wire,
    model: String,
    uri: Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Response {
    let body: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let (system_text, last_user_text) = match wire {
        Wire::Gemini => gemini_texts(&body),
        Wire::OpenAi => openai_texts(&body),
    };
    let request = CapturedRequest {
        wire,
        path: uri.path().to_owned(),
        headers: headers
            .iter()
            .map(|(n, v)| {
                (n.as_str().to_owned(), String::from_utf8_lossy(v.as_bytes()).into_owned())
            })
            .collect(),
        body,
        last_user_text,
        system_text,
    };
    let number = {
        let mut requests = lock(&shared.requests);
        lock(&shared.arrivals).push(tokio::time::Instant::now());
        requests.push(request.clone());
        requests.len()
    };
    let responder = lock(&shared.responder).clone();
    let scripted = match responder {
        Some(f) => f(&request),
        None => match lock(&shared.script).pop_front() {
            Some(next) => next,
            None => {
                let message = format!(
                    "the model test server's script ran out: no reply scripted for request #{number} to {}; \
                     push more replies or set respond_with",
                    request.path
                );
                return error_response(StatusCode::INTERNAL_SERVER_ERROR, &message, "INTERNAL");
            }
        },
    };
    render(scripted, &request, &model).await
}

async fn render(scripted: Scripted, request: &CapturedRequest, model: &str) -> Response {
    let mut extra = Vec::new();
    let mut next = scripted;
    let mut response = loop {
        match next {
            Scripted::Delay { millis, then } => {
                tokio::time::sleep(Duration::from_millis(millis)).await;
                next = *then;
            }
            Scripted::Headers { headers, then } => {
                extra.extend(headers);
                next = *then;
            }
            Scripted::Text(text) => {
                let reason = match request.wire {
                    Wire::Gemini => "STOP",
                    Wire::OpenAi => "stop",
                };
                break axum::Json(success_body(request, model, &text, reason)).into_response();
            }
            Scripted::Finish { text, reason } => {
                break axum::Json(success_body(request, model, &text, &reason)).into_response();
            }
            Scripted::Status { code, body } => {
                break (status(code), axum::Json(body)).into_response()
            }
            Scripted::Raw { code, content_type, body } => {
                let mut response = (status(code), body).into_response();
                if let Ok(value) = HeaderValue::from_str(&content_type) {
                    response.headers_mut().insert(axum::http::header::CONTENT_TYPE, value);
                }
                break response;
            }
        }
    };
    for (name, value) in extra {
        if let (Ok(name), Ok(value)) = (HeaderName::try_from(name), HeaderValue::try_from(value)) {
            response.headers_mut().append(name, value);
        }
    }
    response
}

fn status(code: u16) -> StatusCode {
    StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

/// Both wire formats accept this error shape; Gemini clients also read `status`.
fn error_response(code: StatusCode, message: &str, rpc_status: &str) -> Response {
    let body = json!({"error": {"code": code.as_u16(), "message": message, "status": rpc_status}});
    (code, axum::Json(body)).into_response()
}

/// A plausible token count: a quarter of the characters, at least one for any text.
fn tokens(chars: usize) -> usize {
    chars.div_ceil(4)
}

fn success_body(request: &CapturedRequest, model: &str, text: &str, reason: &str) -> Value {
    let prompt = tokens(prompt_chars(request));
    let output = tokens(text.chars().count());
    match request.wire {
        Wire::Gemini => {
            let mut candidate = json!({"finishReason": reason, "index": 0});
            if !text.is_empty() {
                candidate["content"] = json!({"role": "model", "parts": [{"text": text}]});
            }
            json!({
                "candidates": [candidate],
                "usageMetadata": {
                    "promptTokenCount": prompt,
                    "candidatesTokenCount": output,
                    "totalTokenCount": prompt + output,
                },
                "modelVersion": model,
            })
        }
        Wire::OpenAi => {
            let content = if text.is_empty() { Value::Null } else { Value::from(text) };
            json!({
                "id": "chatcmpl-test",
                "object": "chat.completion",
                "created": 0,
                "model": model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": reason}],
                "usage": {"prompt_tokens": prompt, "completion_tokens": output, "total_tokens": prompt + output},
            })
        }
    }
}

/// Characters of every text the request sent (system and turns), for the prompt token count.
fn prompt_chars(request: &CapturedRequest) -> usize {
    let texts: Vec<&str> = match request.wire {
        Wire::Gemini => {
            let contents = request.body.get("contents").and_then(Value::as_array);
            contents.into_iter().flatten().flat_map(parts_texts).collect()
        }
        Wire::OpenAi => {
            let messages = request.body.get("messages").and_then(Value::as_array);
            messages.into_iter().flatten().flat_map(message_texts).collect()
        }
    };
    request.system_text.chars().count() + texts.iter().map(|t| t.chars().count()).sum::<usize>()
}

fn parts_texts(content: &Value) -> Vec<&str> {
    let parts = content.get("parts").and_then(Value::as_array);
    parts.into_iter().flatten().filter_map(|p| p.get("text").and_then(Value::as_str)).collect()
}

/// `content` is a string, or an array of `{type: "text", text}` parts.
fn message_texts(message: &Value) -> Vec<&str> {
    match message.get("content") {
        Some(Value::String(text)) => vec![text.as_str()],
        Some(Value::Array(parts)) => {
            parts.iter().filter_map(|p| p.get("text").and_then(Value::as_str)).collect()
        }
        _ => Vec::new(),
    }
}

fn gemini_texts(body: &Value) -> (String, String) {
    let system = body.get("systemInstruction").map(|s| parts_texts(s).concat()).unwrap_or_default();
    let contents = body.get("contents").and_then(Value::as_array);
    let last_user = contents
        .into_iter()
        .flatten()
        .rev()
        .find(|c| c.get("role").and_then(Value::as_str).is_none_or(|r| r == "user"))
        .map(|c| parts_texts(c).concat())
        .unwrap_or_default();
    (system, last_user)
}

fn openai_texts(body: &Value) -> (String, String) {
    let messages: Vec<&Value> =
        body.get("messages").and_then(Value::as_array).into_iter().flatten().collect();
    let role_is = |m: &&Value, role: &str| m.get("role").and_then(Value::as_str) == Some(role);
    let system = messages
        .iter()
        .filter(|m| role_is(m, "system") || role_is(m, "developer"))
        .map(|m| message_texts(m).concat())
        .collect::<Vec<_>>()
        .join("\n");
    let last_user = messages
        .iter()
        .rev()
        .find(|m| role_is(m, "user"))
        .map(|m| message_texts(m).concat())
        .unwrap_or_default();
    (system, last_user)
}
