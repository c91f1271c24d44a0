//! A minimal ACP client written against the wire, not the SDK: it writes JSON-RPC lines to the server
//! over an in-memory pipe, collects `session/update`s, and answers the agent's requests
//! (`session/request_permission`, `fs/read_text_file`, `fs/write_text_file`) as the test says.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, DuplexStream, Lines, WriteHalf};
use tokio::task::JoinHandle;

use crate::fake::FakeAgents;

const WAIT: Duration = Duration::from_secs(10);

/// How the client answers the agent's requests.
#[derive(Debug, Clone)]
pub(crate) struct Answers {
    /// The option id chosen for a permission request; `None` answers `cancelled`.
    pub(crate) permission: Option<&'static str>,
    /// Buffers the editor holds (absolute path → text), read through `fs/read_text_file`.
    pub(crate) buffers: HashMap<String, String>,
}

impl Default for Answers {
    fn default() -> Self {
        Answers { permission: Some("allow-once"), buffers: HashMap::new() }
    }
}

pub(crate) struct Client {
    writer: WriteHalf<DuplexStream>,
    reader: Lines<BufReader<tokio::io::ReadHalf<DuplexStream>>>,
    next_id: u64,
    pub(crate) answers: Answers,
    /// Every `session/update` param, in order.
    pub(crate) updates: Vec<Value>,
    /// Every request the agent sent (method, params), in order.
    pub(crate) agent_requests: Vec<(String, Value)>,
    /// Responses that arrived while waiting for something else, by id.
    responses: HashMap<u64, Value>,
    /// Error responses with a null id (to input that was not a request), in order.
    null_responses: Vec<Value>,
    pub(crate) server: JoinHandle<Result<(), cadre_acp::ServeError>>,
}

impl Client {
    /// Starts a server over `agents` and connects to it.
    pub(crate) fn connect(agents: Arc<FakeAgents>, sessions: Option<&Path>) -> Client {
        let (client_side, server_side) = tokio::io::duplex(1 << 20);
        let (server_read, server_write) = tokio::io::split(server_side);
        let options = cadre_acp::ServerOptions {
            poll_interval: Duration::from_millis(2),
            sessions_dir: sessions.map(Path::to_path_buf),
        };
        let server = tokio::spawn(cadre_acp::serve(agents, options, server_read, server_write));
        let (read, writer) = tokio::io::split(client_side);
        Client {
            writer,
            reader: BufReader::new(read).lines(),
            next_id: 0,
            answers: Answers::default(),
            updates: Vec::new(),
            agent_requests: Vec::new(),
            responses: HashMap::new(),
            null_responses: Vec::new(),
            server,
        }
    }

    pub(crate) async fn send_raw(&mut self, line: &str) {
        self.send_bytes(line.as_bytes()).await;
    }

    /// Sends one line of arbitrary bytes (a newline is added).
    pub(crate) async fn send_bytes(&mut self, line: &[u8]) {
        self.writer.write_all(line).await.unwrap();
        self.writer.write_all(b"\n").await.unwrap();
        self.writer.flush().await.unwrap();
    }

    /// The error codes of the null-id responses so far.
    pub(crate) fn responses_seen(&self) -> Vec<i64> {
        self.null_responses.iter().map(|r| r["error"]["code"].as_i64().unwrap_or(0)).collect()
    }

    async fn send(&mut self, message: Value) {
        self.send_raw(&message.to_string()).await;
    }

    /// Sends a request and returns its id without waiting.
    pub(crate) async fn start(&mut self, method: &str, params: Value) -> u64 {
        self.next_id += 1;
        let id = self.next_id;
        self.send(json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})).await;
        id
    }

    pub(crate) async fn notify(&mut self, method: &str, params: Value) {
        self.send(json!({"jsonrpc": "2.0", "method": method, "params": params})).await;
    }

    /// Sends a request and waits for its response (the whole message: `result` or `error`).
    pub(crate) async fn request(&mut self, method: &str, params: Value) -> Value {
        let id = self.start(method, params).await;
        self.response(id).await
    }

    /// Waits for the response to request `id`, handling everything that arrives meanwhile.
    pub(crate) async fn response(&mut self, id: u64) -> Value {
        loop {
            if let Some(response) = self.responses.remove(&id) {
                return response;
            }
            self.step().await;
        }
    }

    /// Handles messages until an update satisfies `wanted`.
    pub(crate) async fn until_update(&mut self, wanted: impl Fn(&Value) -> bool) {
        let mut seen = 0;
        loop {
            if self.updates[seen..].iter().any(&wanted) {
                return;
            }
            seen = self.updates.len();
            self.step().await;
        }
    }

    /// Reads and handles one message.
    pub(crate) async fn step(&mut self) {
        let line = tokio::time::timeout(WAIT, self.reader.next_line())
            .await
            .unwrap_or_else(|_| {
                panic!("no message from the agent in {WAIT:?}; updates so far: {:#?}", self.updates)
            })
            .unwrap()
            .expect("the agent closed the connection");
        let message: Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("the agent wrote a line that is not JSON ({e}): {line}"));
        let method = message.get("method").and_then(Value::as_str).map(str::to_owned);
        match (method, message.get("id").cloned()) {
            (Some(method), Some(id)) => {
                let params = message["params"].clone();
                self.agent_requests.push((method.clone(), params.clone()));
                let reply = self.answer(&method, &params);
                self.send(json!({"jsonrpc": "2.0", "id": id, "result": reply})).await;
            }
            (Some(method), None) => {
                assert_eq!(method, "session/update", "unexpected notification {message}");
                self.updates.push(message["params"].clone());
            }
            (None, Some(Value::Null)) => self.null_responses.push(message),
            (None, Some(id)) => {
                let id = id
                    .as_u64()
                    .unwrap_or_else(|| panic!("a response with a foreign id: {message}"));
                self.responses.insert(id, message);
            }
            (None, None) => {
                panic!("a message that is neither request, notification nor response: {message}")
            }
        }
    }

    fn answer(&self, method: &str, params: &Value) -> Value {
        match method {
            "session/request_permission" => match self.answers.permission {
                Some(option) => json!({"outcome": {"outcome": "selected", "optionId": option}}),
                None => json!({"outcome": {"outcome": "cancelled"}}),
            },
            "fs/read_text_file" => {
                let path = params["path"].as_str().unwrap_or_default();
                let text = self.answers.buffers.get(path).cloned().unwrap_or_else(|| {
                    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {path}: {e}"))
                });
                json!({"content": text})
            }
            "fs/write_text_file" => json!({}),
            other => panic!("the agent sent an unexpected request {other}: {params}"),
        }
    }

    /// `initialize`, declaring file-system support or not.
    pub(crate) async fn initialize(&mut self, fs: bool) -> Value {
        let response = self
            .request(
                "initialize",
                json!({
                    "protocolVersion": 1,
                    "clientCapabilities": {"fs": {"readTextFile": fs, "writeTextFile": fs}},
                    "clientInfo": {"name": "cadre-test", "version": "0"}
                }),
            )
            .await;
        response["result"].clone()
    }

    /// `session/new` in `cwd`; returns the session id.
    pub(crate) async fn new_session(&mut self, cwd: &Path) -> String {
        let response = self.request("session/new", json!({"cwd": cwd, "mcpServers": []})).await;
        response["result"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("session/new failed: {response}"))
            .to_owned()
    }

    /// `session/prompt` with one text block; returns the whole response.
    pub(crate) async fn prompt(&mut self, session: &str, text: &str) -> Value {
        self.request(
            "session/prompt",
            json!({"sessionId": session, "prompt": [{"type": "text", "text": text}]}),
        )
        .await
    }

    /// The kinds of the updates so far, e.g. `plan`, `tool_call`, `agent_message_chunk`.
    pub(crate) fn kinds(&self) -> Vec<String> {
        self.updates
            .iter()
            .map(|u| u["update"]["sessionUpdate"].as_str().unwrap_or("?").to_owned())
            .collect()
    }

    /// The text of every agent message chunk, joined.
    pub(crate) fn text(&self) -> String {
        self.updates
            .iter()
            .filter(|u| u["update"]["sessionUpdate"] == "agent_message_chunk")
            .filter_map(|u| u["update"]["content"]["text"].as_str())
            .collect()
    }

    /// Closes the client's side, as an editor quitting does.
    pub(crate) async fn close(mut self) -> Result<(), cadre_acp::ServeError> {
        self.writer.shutdown().await.unwrap();
        drop(self.writer);
        tokio::time::timeout(WAIT, self.server).await.expect("the server did not stop").unwrap()
    }
}
