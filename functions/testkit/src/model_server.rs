//! A local model server speaking the Gemini and the OpenAI chat-completions wire formats on one port,
//! scripted by the test, so model adapters (and the `cadre` binary as a subprocess) are tested at the wire.
//!
//! Served on the one port:
//! - Gemini API `POST /v1beta/models/{model}:{generateContent|streamGenerateContent|countTokens}` (and
//!   `/v1/…`), Vertex AI `POST /v1/projects/{p}/locations/{l}/publishers/google/models/{model}:{method}`
//!   (which wants a bearer token this server issued), and OpenAI `POST /v1/chat/completions`
//!   (`"stream": true` included). Model calls take the next scripted reply; a streamed call gets the same
//!   reply as SSE frames (`data: {json}\r\n\r\n` for Gemini, `data: …\n\n` and `data: [DONE]` for OpenAI).
//! - Context caches: `POST/GET/DELETE /v1beta/cachedContents[/{id}]` and the Vertex equivalents; a call
//!   naming a `cachedContent` is billed its tokens as `cachedContentTokenCount`.
//! - Google auth: the metadata server's token path (with `Metadata-Flavor: Google`) and an OAuth token
//!   endpoint at `/token` (refresh-token and JWT-bearer grants).
//!
//! `countTokens`, caches and auth answer by themselves, unless [`ModelServer::push_side`] scripted their
//! next answer; they are listed by [`ModelServer::side_requests`], not [`ModelServer::requests`].
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

use std::collections::BTreeMap;

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
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
    /// A reply that calls tools, in the request's wire format: Gemini `functionCall` parts after the
    /// text (finish `STOP`), or OpenAI `tool_calls` with arguments as a JSON string (finish `tool_calls`).
    ToolCalls {
        /// Text before the calls; may be empty.
        text: String,
        /// The calls, in order.
        calls: Vec<ScriptedCall>,
    },
    /// The reply `text` whose body stops half-way and the connection is then aborted (a reset): the
    /// first frames of a stream, or the first half of a JSON body.
    Reset {
        /// The text of the reply that is cut.
        text: String,
    },
    /// The reply `text` whose body ends cleanly half-way: a stream without its final frame (Gemini's
    /// `finishReason`, OpenAI's `[DONE]`), or half a JSON body.
    Cut {
        /// The text of the reply that is cut.
        text: String,
    },
    /// Raw SSE events, each sent as one `data:` frame, then a clean end (for error frames and other
    /// streams no reply renders).
    Frames(Vec<String>),
}

/// One tool call of a [`Scripted::ToolCalls`] reply.
#[derive(Debug, Clone, PartialEq)]
pub struct ScriptedCall {
    /// The call id (OpenAI needs one: `call_{n}` is made up when absent).
    pub id: Option<String>,
    /// The tool's name.
    pub name: String,
    /// The arguments object (sent as a JSON string on OpenAI).
    pub args: Value,
    /// Gemini's `thoughtSignature` on the call's part.
    pub thought_signature: Option<String>,
}

impl ScriptedCall {
    /// A call without id or signature.
    #[must_use]
    pub fn new(name: impl Into<String>, args: Value) -> ScriptedCall {
        ScriptedCall { id: None, name: name.into(), args, thought_signature: None }
    }
}

/// Which wire format a request came in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wire {
    /// `POST /v1beta/models/{model}:generateContent` (or `/v1/…`).
    Gemini,
    /// `POST /v1/chat/completions`.
    OpenAi,
    /// The metadata server's token path or the OAuth token endpoint.
    GoogleAuth,
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
    /// The HTTP method.
    pub method: String,
    /// The query string, e.g. `alt=sse`.
    pub query: String,
    /// Whether the reply was asked for as a stream.
    pub stream: bool,
    /// The raw body, for form-encoded requests (the OAuth token endpoint).
    pub raw_body: String,
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
    /// Scripted answers for side endpoints (countTokens, caches, auth), before their computed ones.
    side_script: Mutex<VecDeque<Scripted>>,
    side_requests: Mutex<Vec<CapturedRequest>>,
    /// Live cached contents by resource name.
    caches: Mutex<BTreeMap<String, CachedEntry>>,
    /// Caches smaller than this are refused, as the real API does below a model's minimum.
    min_cache_tokens: Mutex<u64>,
    /// Access tokens issued and not revoked.
    tokens: Mutex<Vec<String>>,
    /// `expires_in` of issued tokens, in seconds.
    token_lifetime: Mutex<u64>,
    /// A counter for names and tokens.
    serial: Mutex<u64>,
}

#[derive(Debug, Clone)]
struct CachedEntry {
    tokens: u64,
    body: Value,
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
        *lock(&shared.token_lifetime) = 3600;
        let app = Router::new()
            .route("/v1beta/models/{*rest}", post(gemini))
            .route("/v1/models/{*rest}", post(gemini))
            .route("/v1beta/cachedContents", post(api_caches))
            .route("/v1beta/cachedContents/{id}", any(api_cache))
            .route("/v1/projects/{*rest}", any(vertex))
            .route("/v1/chat/completions", post(openai))
            .route(
                "/computeMetadata/v1/instance/service-accounts/default/token",
                get(metadata_token),
            )
            .route("/token", post(oauth_token))
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

    /// `host:port`, as `GCE_METADATA_HOST` takes it.
    #[must_use]
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// Scripts the next answer of a side endpoint (countTokens, cachedContents, metadata or OAuth
    /// token), instead of the one it computes; FIFO, shared by all side endpoints.
    pub fn push_side(&self, reply: Scripted) {
        lock(&self.shared.side_script).push_back(reply);
    }

    /// Requests to side endpoints, in order.
    #[must_use]
    pub fn side_requests(&self) -> Vec<CapturedRequest> {
        lock(&self.shared.side_requests).clone()
    }

    /// Resource names of the cached contents that exist now.
    #[must_use]
    pub fn cached_contents(&self) -> Vec<String> {
        lock(&self.shared.caches).keys().cloned().collect()
    }

    /// Refuses (400) caches under `tokens` tokens, as the real API does below a model's minimum.
    pub fn set_min_cache_tokens(&self, tokens: u64) {
        *lock(&self.shared.min_cache_tokens) = tokens;
    }

    /// The `expires_in` of tokens issued from now on (default 3600 s).
    pub fn set_token_lifetime(&self, seconds: u64) {
        *lock(&self.shared.token_lifetime) = seconds;
    }

    /// Makes every token issued so far invalid: Vertex calls carrying one get a 401.
    pub fn revoke_tokens(&self) {
        lock(&self.shared.tokens).clear();
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
    gemini_method(&shared, &rest, "models/", uri, &headers, &body).await
}

/// `{model}:{method}` on either endpoint; `model_prefix` is how caches name the model.
async fn gemini_method(
    shared: &Shared,
    rest: &str,
    model_prefix: &str,
    uri: Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Response {
    let (model, method) = rest.split_once(':').unwrap_or((rest, ""));
    let model = model.to_owned();
    match method {
        "generateContent" | "streamGenerateContent" => {
            handle(shared, Wire::Gemini, model, uri, headers, body).await
        }
        "countTokens" => {
            count_tokens(shared, uri, headers, body, &format!("{model_prefix}{model}")).await
        }
        _ => {
            let message = format!(
                "the model test server serves :generateContent, :streamGenerateContent and :countTokens, not {rest:?}"
            );
            error_response(StatusCode::NOT_FOUND, &message, "NOT_FOUND")
        }
    }
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

/// A request as captured, before it is answered.
fn capture(
    wire: Wire,
    method: &str,
    uri: &Uri,
    headers: &HeaderMap,
    raw: &[u8],
) -> CapturedRequest {
    let body: Value = serde_json::from_slice(raw).unwrap_or(Value::Null);
    let (system_text, last_user_text) = match wire {
        Wire::Gemini => gemini_texts(&body),
        Wire::OpenAi => openai_texts(&body),
        Wire::GoogleAuth => (String::new(), String::new()),
    };
    let stream = uri.path().ends_with(":streamGenerateContent")
        || body.get("stream").and_then(Value::as_bool) == Some(true);
    CapturedRequest {
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
        method: method.to_owned(),
        query: uri.query().unwrap_or("").to_owned(),
        stream,
        raw_body: String::from_utf8_lossy(raw).into_owned(),
    }
}

async fn handle(
    shared: &Shared,
    wire: Wire,
    model: String,
    uri: Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Response {
    let request = capture(wire, "POST", &uri, headers, body);
    let cache = match cached_content(shared, &request) {
        Ok(cache) => cache,
        Err(response) => {
            record(shared, &request);
            return *response;
        }
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
    render(scripted, &request, &model, cache).await
}

fn record(shared: &Shared, request: &CapturedRequest) {
    let mut requests = lock(&shared.requests);
    lock(&shared.arrivals).push(tokio::time::Instant::now());
    requests.push(request.clone());
}

/// The tokens of the cached content a Gemini call names, or the 403 the real API gives for an unknown one.
fn cached_content(shared: &Shared, request: &CapturedRequest) -> Result<u64, Box<Response>> {
    let Some(name) = request.body.get("cachedContent").and_then(Value::as_str) else {
        return Ok(0);
    };
    match lock(&shared.caches).get(name) {
        Some(entry) => Ok(entry.tokens),
        None => Err(Box::new(error_response(
            StatusCode::FORBIDDEN,
            &format!("CachedContent not found (or permission denied): {name}"),
            "PERMISSION_DENIED",
        ))),
    }
}

async fn render(
    scripted: Scripted,
    request: &CapturedRequest,
    model: &str,
    cached: u64,
) -> Response {
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
                let reason = natural_finish(request.wire);
                let reply = Reply { text: &text, reason, calls: &[], cached };
                break reply_response(request, model, &reply, Ending::Whole);
            }
            Scripted::Finish { text, reason } => {
                let reply = Reply { text: &text, reason: &reason, calls: &[], cached };
                break reply_response(request, model, &reply, Ending::Whole);
            }
            Scripted::ToolCalls { text, calls } => {
                let reason = match request.wire {
                    Wire::OpenAi => "tool_calls",
                    Wire::Gemini | Wire::GoogleAuth => "STOP",
                };
                let reply = Reply { text: &text, reason, calls: &calls, cached };
                break reply_response(request, model, &reply, Ending::Whole);
            }
            Scripted::Reset { text } => {
                let reply =
                    Reply { text: &text, reason: natural_finish(request.wire), calls: &[], cached };
                break reply_response(request, model, &reply, Ending::Reset);
            }
            Scripted::Cut { text } => {
                let ending = Ending::Cut;
                let reply =
                    Reply { text: &text, reason: natural_finish(request.wire), calls: &[], cached };
                break reply_response(request, model, &reply, ending);
            }
            Scripted::Frames(frames) => {
                let events = frames.iter().map(|f| sse_event(request.wire, f)).collect();
                break sse_response(events, Ending::Whole);
            }
            Scripted::Status { code: 200, body } if request.stream => {
                break sse_response(
                    vec![sse_event(request.wire, &body.to_string())],
                    Ending::Whole,
                );
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

/// What a scripted reply says, whatever its wire format.
struct Reply<'a> {
    text: &'a str,
    reason: &'a str,
    calls: &'a [ScriptedCall],
    /// Tokens of a cached content the request used.
    cached: u64,
}

/// How a reply's body ends.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Ending {
    Whole,
    /// Half the body, then the connection aborts.
    Reset,
    /// Half the body, then a clean end.
    Cut,
}

fn natural_finish(wire: Wire) -> &'static str {
    match wire {
        Wire::OpenAi => "stop",
        Wire::Gemini | Wire::GoogleAuth => "STOP",
    }
}

fn reply_response(
    request: &CapturedRequest,
    model: &str,
    reply: &Reply<'_>,
    ending: Ending,
) -> Response {
    if request.stream {
        let events = match request.wire {
            Wire::OpenAi => openai_frames(request, model, reply),
            Wire::Gemini | Wire::GoogleAuth => gemini_frames(request, model, reply),
        };
        let events: Vec<String> = events.iter().map(|e| sse_event(request.wire, e)).collect();
        let events = if ending == Ending::Whole {
            events
        } else {
            // Everything but the final frame(s): no finishReason, no [DONE].
            let keep = match request.wire {
                Wire::OpenAi => events.len().saturating_sub(3),
                Wire::Gemini | Wire::GoogleAuth => events.len().saturating_sub(1),
            };
            events.into_iter().take(keep.max(1)).collect()
        };
        return sse_response(events, ending);
    }
    let body = success_body(request, model, reply).to_string();
    match ending {
        Ending::Whole => {
            (StatusCode::OK, [(axum::http::header::CONTENT_TYPE, "application/json")], body)
                .into_response()
        }
        Ending::Cut | Ending::Reset => {
            let half = body.char_indices().nth(body.chars().count() / 2).map_or(0, |(i, _)| i);
            let head = body[..half].to_owned();
            if ending == Ending::Cut {
                (StatusCode::OK, [(axum::http::header::CONTENT_TYPE, "application/json")], head)
                    .into_response()
            } else {
                aborted_body("application/json", vec![head])
            }
        }
    }
}

/// One SSE event in the wire's own line endings.
fn sse_event(wire: Wire, data: &str) -> String {
    match wire {
        Wire::OpenAi => format!("data: {data}\n\n"),
        Wire::Gemini | Wire::GoogleAuth => format!("data: {data}\r\n\r\n"),
    }
}

fn sse_response(events: Vec<String>, ending: Ending) -> Response {
    if ending == Ending::Reset {
        return aborted_body("text/event-stream", events);
    }
    let chunks = events.into_iter().map(|e| Ok::<_, std::io::Error>(Bytes::from(e)));
    let mut response = Body::from_stream(futures_util::stream::iter(chunks)).into_response();
    response
        .headers_mut()
        .insert(axum::http::header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    response
}

/// A chunked body that sends `chunks` and then fails, so the server aborts the connection mid-body.
fn aborted_body(content_type: &'static str, chunks: Vec<String>) -> Response {
    let items = chunks.into_iter().map(|c| Ok(Bytes::from(c))).chain(std::iter::once(Err(
        std::io::Error::new(std::io::ErrorKind::ConnectionReset, "scripted reset"),
    )));
    // The error waits a moment, so the chunks before it are on the wire before the connection drops.
    let items =
        futures_util::StreamExt::then(futures_util::stream::iter(items), |item| async move {
            if item.is_err() {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            item
        });
    let mut response = Body::from_stream(items).into_response();
    response
        .headers_mut()
        .insert(axum::http::header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// Up to three pieces of `text`, split on char boundaries.
fn pieces(text: &str) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    if chars.is_empty() {
        return Vec::new();
    }
    let size = chars.len().div_ceil(3);
    chars.chunks(size).map(|c| c.iter().collect()).collect()
}

fn gemini_usage(prompt: usize, output: usize, cached: u64) -> Value {
    let mut usage = json!({
        "promptTokenCount": prompt,
        "candidatesTokenCount": output,
        "totalTokenCount": prompt + output,
    });
    if cached > 0 {
        usage["cachedContentTokenCount"] = json!(cached);
    }
    usage
}

fn gemini_call_parts(calls: &[ScriptedCall]) -> Vec<Value> {
    calls
        .iter()
        .map(|call| {
            let mut function_call = json!({"name": call.name, "args": call.args});
            if let Some(id) = &call.id {
                function_call["id"] = json!(id);
            }
            let mut part = json!({ "functionCall": function_call });
            if let Some(signature) = &call.thought_signature {
                part["thoughtSignature"] = json!(signature);
            }
            part
        })
        .collect()
}

fn openai_tool_calls(calls: &[ScriptedCall]) -> Vec<Value> {
    calls
        .iter()
        .enumerate()
        .map(|(i, call)| {
            json!({"id": call.id.clone().unwrap_or_else(|| format!("call_{i}")), "type": "function",
                   "function": {"name": call.name, "arguments": call.args.to_string()}})
        })
        .collect()
}

/// The prompt and output token counts of a reply, the cached tokens included in the prompt.
fn counts(request: &CapturedRequest, reply: &Reply<'_>) -> (usize, usize) {
    let cached = usize::try_from(reply.cached).unwrap_or(usize::MAX);
    let calls: usize = reply.calls.iter().map(|c| c.name.len() + c.args.to_string().len()).sum();
    (tokens(prompt_chars(request)) + cached, tokens(reply.text.chars().count() + calls))
}

fn success_body(request: &CapturedRequest, model: &str, reply: &Reply<'_>) -> Value {
    let (prompt, output) = counts(request, reply);
    match request.wire {
        Wire::Gemini | Wire::GoogleAuth => {
            let mut candidate = json!({"finishReason": reply.reason, "index": 0});
            let mut parts = Vec::new();
            if !reply.text.is_empty() {
                parts.push(json!({"text": reply.text}));
            }
            parts.extend(gemini_call_parts(reply.calls));
            if !parts.is_empty() {
                candidate["content"] = json!({"role": "model", "parts": parts});
            }
            json!({
                "candidates": [candidate],
                "usageMetadata": gemini_usage(prompt, output, reply.cached),
                "modelVersion": model,
            })
        }
        Wire::OpenAi => {
            let content = if reply.text.is_empty() { Value::Null } else { Value::from(reply.text) };
            let mut message = json!({"role": "assistant", "content": content});
            if !reply.calls.is_empty() {
                message["tool_calls"] = Value::from(openai_tool_calls(reply.calls));
            }
            json!({
                "id": "chatcmpl-test",
                "object": "chat.completion",
                "created": 0,
                "model": model,
                "choices": [{"index": 0, "message": message, "finish_reason": reply.reason}],
                "usage": {"prompt_tokens": prompt, "completion_tokens": output, "total_tokens": prompt + output},
            })
        }
    }
}

/// Text in up to three frames, then one frame with the calls, the finish reason and the full usage.
fn gemini_frames(request: &CapturedRequest, model: &str, reply: &Reply<'_>) -> Vec<String> {
    let (prompt, output) = counts(request, reply);
    let mut frames: Vec<String> = pieces(reply.text)
        .into_iter()
        .map(|piece| {
            json!({
                "candidates": [{"content": {"role": "model", "parts": [{"text": piece}]}, "index": 0}],
                "usageMetadata": {"promptTokenCount": prompt, "totalTokenCount": prompt},
                "modelVersion": model,
            })
            .to_string()
        })
        .collect();
    let mut last = json!({"finishReason": reply.reason, "index": 0});
    let parts = gemini_call_parts(reply.calls);
    last["content"] = json!({"role": "model", "parts": if parts.is_empty() { vec![json!({"text": ""})] } else { parts }});
    frames.push(
        json!({"candidates": [last], "usageMetadata": gemini_usage(prompt, output, reply.cached), "modelVersion": model})
            .to_string(),
    );
    frames
}

/// A role delta, text deltas, tool-call deltas (arguments in two pieces), the finish chunk, the usage
/// chunk (when `stream_options.include_usage`), then `[DONE]`.
fn openai_frames(request: &CapturedRequest, model: &str, reply: &Reply<'_>) -> Vec<String> {
    let (prompt, output) = counts(request, reply);
    let chunk = |choices: Value| {
        json!({"id": "chatcmpl-test", "object": "chat.completion.chunk", "created": 0, "model": model, "choices": choices})
            .to_string()
    };
    let mut frames =
        vec![chunk(json!([{"index": 0, "delta": {"role": "assistant", "content": ""}}]))];
    for piece in pieces(reply.text) {
        frames.push(chunk(json!([{"index": 0, "delta": {"content": piece}}])));
    }
    for (i, call) in openai_tool_calls(reply.calls).into_iter().enumerate() {
        let arguments = call["function"]["arguments"].as_str().unwrap_or("").to_owned();
        let split =
            arguments.char_indices().nth(arguments.chars().count() / 2).map_or(0, |(at, _)| at);
        frames.push(chunk(json!([{"index": 0, "delta": {"tool_calls": [{"index": i, "id": call["id"], "type": "function",
            "function": {"name": call["function"]["name"], "arguments": &arguments[..split]}}]}}])));
        frames.push(chunk(json!([{"index": 0, "delta": {"tool_calls": [{"index": i,
            "function": {"arguments": &arguments[split..]}}]}}])));
    }
    frames.push(chunk(json!([{"index": 0, "delta": {}, "finish_reason": reply.reason}])));
    let include_usage = request.body.pointer("/stream_options/include_usage") == Some(&json!(true));
    let usage = json!({"prompt_tokens": prompt, "completion_tokens": output, "total_tokens": prompt + output});
    frames.push(if include_usage {
        json!({"id": "chatcmpl-test", "object": "chat.completion.chunk", "created": 0, "model": model,
               "choices": [], "usage": usage})
        .to_string()
    } else {
        chunk(json!([]))
    });
    frames.push("[DONE]".to_owned());
    frames
}

/// Characters of every text the request sent (system and turns), for the prompt token count.
fn prompt_chars(request: &CapturedRequest) -> usize {
    let texts: Vec<&str> = match request.wire {
        Wire::Gemini => {
            let contents = request.body.get("contents").and_then(Value::as_array);
            contents.into_iter().flatten().flat_map(parts_texts).collect()
        }
        Wire::GoogleAuth => Vec::new(),
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

/// Answers a side endpoint: the next [`ModelServer::push_side`] reply if any, else `compute()`.
async fn side(
    shared: &Shared,
    request: CapturedRequest,
    compute: impl FnOnce() -> Response,
) -> Response {
    lock(&shared.side_requests).push(request.clone());
    let scripted = lock(&shared.side_script).pop_front();
    match scripted {
        Some(scripted) => render(scripted, &request, "side", 0).await,
        None => compute(),
    }
}

/// The text characters of a `contents` array, a system instruction and tools, for token counts.
fn content_chars(body: &Value) -> usize {
    let contents = body.get("contents").and_then(Value::as_array);
    let texts: usize =
        contents.into_iter().flatten().flat_map(parts_texts).map(|t| t.chars().count()).sum();
    let system =
        body.get("systemInstruction").map_or(0, |s| parts_texts(s).concat().chars().count());
    let tools = body.get("tools").map_or(0, |t| t.to_string().len());
    texts + system + tools
}

async fn count_tokens(
    shared: &Shared,
    uri: Uri,
    headers: &HeaderMap,
    body: &[u8],
    _model: &str,
) -> Response {
    let request = capture(Wire::Gemini, "POST", &uri, headers, body);
    let counted = request.body.get("generateContentRequest").unwrap_or(&request.body).clone();
    side(shared, request, || {
        let total = tokens(content_chars(&counted));
        axum::Json(json!({"totalTokens": total,
            "promptTokensDetails": [{"modality": "TEXT", "tokenCount": total}]}))
        .into_response()
    })
    .await
}

fn next_serial(shared: &Shared) -> u64 {
    let mut serial = lock(&shared.serial);
    *serial += 1;
    *serial
}

/// Creates, reads or deletes a cached content; `parent` prefixes new names (`` or `projects/p/locations/l/`).
async fn caches(
    shared: &Shared,
    method: &Method,
    name: Option<String>,
    parent: &str,
    uri: Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Response {
    let request = capture(Wire::Gemini, method.as_str(), &uri, headers, body);
    let create = request.body.clone();
    let method = method.clone();
    let parent = parent.to_owned();
    side(shared, request, move || match (method, name) {
        (Method::POST, None) => {
            let Some(model) = create.get("model").and_then(Value::as_str) else {
                return error_response(StatusCode::BAD_REQUEST, "cachedContent.model is required", "INVALID_ARGUMENT");
            };
            let total = u64::try_from(tokens(content_chars(&create))).unwrap_or(u64::MAX);
            let min = *lock(&shared.min_cache_tokens);
            if total < min {
                let message = format!(
                    "Cached content is too small. total_token_count={total}, min_total_token_count={min}"
                );
                return error_response(StatusCode::BAD_REQUEST, &message, "INVALID_ARGUMENT");
            }
            let name = format!("{parent}cachedContents/c{}", next_serial(shared));
            let answer = json!({"name": name, "model": model,
                "displayName": create.get("displayName").cloned().unwrap_or(Value::Null),
                "createTime": "2026-01-01T00:00:00Z", "updateTime": "2026-01-01T00:00:00Z",
                "expireTime": "2026-01-01T01:00:00Z", "usageMetadata": {"totalTokenCount": total}});
            lock(&shared.caches).insert(name, CachedEntry { tokens: total, body: create });
            axum::Json(answer).into_response()
        }
        (Method::GET, Some(name)) => match lock(&shared.caches).get(&name) {
            Some(entry) => axum::Json(json!({"name": name, "model": entry.body.get("model"),
                "usageMetadata": {"totalTokenCount": entry.tokens}}))
            .into_response(),
            None => error_response(StatusCode::NOT_FOUND, &format!("{name} not found"), "NOT_FOUND"),
        },
        (Method::DELETE, Some(name)) => match lock(&shared.caches).remove(&name) {
            Some(_) => axum::Json(json!({})).into_response(),
            None => error_response(StatusCode::NOT_FOUND, &format!("{name} not found"), "NOT_FOUND"),
        },
        (method, _) => error_response(
            StatusCode::METHOD_NOT_ALLOWED,
            &format!("the model test server does not serve {method} here"),
            "UNIMPLEMENTED",
        ),
    })
    .await
}

async fn api_caches(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    caches(&shared, &method, None, "", uri, &headers, &body).await
}

async fn api_cache(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    caches(&shared, &method, Some(format!("cachedContents/{id}")), "", uri, &headers, &body).await
}

/// Vertex AI: `{project}/locations/{location}/publishers/google/models/{model}:{method}` or
/// `{project}/locations/{location}/cachedContents[/{id}]`, with a bearer token this server issued.
async fn vertex(
    State(shared): State<Arc<Shared>>,
    Path(rest): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let bearer = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_owned);
    if !bearer.is_some_and(|token| lock(&shared.tokens).contains(&token)) {
        let request = capture(Wire::Gemini, method.as_str(), &uri, &headers, &body);
        lock(&shared.side_requests).push(request);
        return error_response(
            StatusCode::UNAUTHORIZED,
            "Request had invalid authentication credentials. Expected OAuth 2 access token.",
            "UNAUTHENTICATED",
        );
    }
    let segments: Vec<&str> = rest.split('/').collect();
    match segments.as_slice() {
        [project, "locations", location, "publishers", "google", "models", model_method] => {
            let prefix =
                format!("projects/{project}/locations/{location}/publishers/google/models/");
            gemini_method(&shared, model_method, &prefix, uri, &headers, &body).await
        }
        [project, "locations", location, "cachedContents"] => {
            let parent = format!("projects/{project}/locations/{location}/");
            caches(&shared, &method, None, &parent, uri, &headers, &body).await
        }
        [project, "locations", location, "cachedContents", id] => {
            let name = format!("projects/{project}/locations/{location}/cachedContents/{id}");
            caches(&shared, &method, Some(name), "", uri, &headers, &body).await
        }
        _ => error_response(
            StatusCode::NOT_FOUND,
            &format!("the model test server does not serve /v1/projects/{rest}"),
            "NOT_FOUND",
        ),
    }
}

fn issue_token(shared: &Shared, kind: &str) -> Response {
    let token = format!("ya29.{kind}-{}", next_serial(shared));
    lock(&shared.tokens).push(token.clone());
    let lifetime = *lock(&shared.token_lifetime);
    axum::Json(json!({"access_token": token, "expires_in": lifetime, "token_type": "Bearer"}))
        .into_response()
}

async fn metadata_token(
    State(shared): State<Arc<Shared>>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let request = capture(Wire::GoogleAuth, "GET", &uri, &headers, b"");
    let flavored = request.header("metadata-flavor") == Some("Google");
    side(&shared, request, || {
        if !flavored {
            return (StatusCode::FORBIDDEN, "Missing Metadata-Flavor:Google header.")
                .into_response();
        }
        issue_token(&shared, "metadata")
    })
    .await
}

/// `application/x-www-form-urlencoded` pairs, percent-decoded.
fn form(body: &str) -> BTreeMap<String, String> {
    let decode = |s: &str| {
        let bytes = s.replace('+', " ").into_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
            match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
                (b'%', Some(byte)) => {
                    out.push(byte);
                    i += 3;
                }
                (byte, _) => {
                    out.push(byte);
                    i += 1;
                }
            }
        }
        String::from_utf8_lossy(&out).into_owned()
    };
    body.split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (decode(k), decode(v)))
        .collect()
}

/// An OAuth token endpoint: the refresh-token and JWT-bearer grants, checked for their fields only
/// (a test verifies the JWT's signature itself, from [`ModelServer::side_requests`]).
async fn oauth_token(
    State(shared): State<Arc<Shared>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let request = capture(Wire::GoogleAuth, "POST", &uri, &headers, &body);
    let fields = form(&request.raw_body);
    side(&shared, request, || {
        let has = |name: &str| fields.get(name).is_some_and(|v| !v.is_empty());
        let grant = fields.get("grant_type").map_or("", String::as_str);
        let ok = match grant {
            "refresh_token" => has("refresh_token") && has("client_id") && has("client_secret"),
            "urn:ietf:params:oauth:grant-type:jwt-bearer" => {
                fields.get("assertion").is_some_and(|a| a.split('.').count() == 3)
            }
            _ => false,
        };
        if !ok {
            let error = json!({"error": "invalid_grant", "error_description": format!("bad {grant:?} grant")});
            return (StatusCode::BAD_REQUEST, axum::Json(error)).into_response();
        }
        issue_token(&shared, "oauth")
    })
    .await
}

/// Form fields of a captured request's body, for tests of the token endpoint.
#[must_use]
pub fn form_fields(request: &CapturedRequest) -> BTreeMap<String, String> {
    form(&request.raw_body)
}
