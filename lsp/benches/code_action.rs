//! `textDocument/codeAction` latency on a large open file while 100 tasks run, measured through the
//! server's stdio framing (in-memory pipes), plus the bench process's resident memory with the server
//! idle.
//!
//! Run: `cargo bench -p cadre-lsp --bench code_action` (add `-- <lines> <requests>` to change the file
//! size, default 200000 lines, and the number of timed requests, default 2000).

#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cadre_domain::ports::knowledge::{IndexReport, SearchResults};
use cadre_domain::ports::store::TaskSummary;
use cadre_domain::{CommitId, Plan, Task, TaskId, TaskSettings, TaskState, TestReport, Timestamp};
use cadre_lsp::{
    Agents, AgentsError, Proposal, ServerOptions, Settings, TaskRequest, TaskSnapshot,
};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

/// Agents whose every task is forever generating: the server keeps polling all of them.
struct Busy;

fn task(id: &TaskId) -> Task {
    Task {
        id: id.clone(),
        repo: "/tmp".into(),
        goal: "busy".into(),
        base_commit: CommitId::parse(&"a".repeat(40)).unwrap(),
        settings: TaskSettings::default(),
        created_at: Timestamp(0),
    }
}

#[async_trait::async_trait]
impl Agents for Busy {
    async fn check(&self) -> Vec<String> {
        Vec::new()
    }
    async fn configure(&self, _: &Settings) -> Result<(), AgentsError> {
        Ok(())
    }
    async fn start(&self, _: TaskRequest) -> Result<TaskId, AgentsError> {
        Ok(TaskId::generate())
    }
    async fn snapshot(&self, id: &TaskId, _: u64) -> Result<TaskSnapshot, AgentsError> {
        Ok(TaskSnapshot {
            task: task(id),
            state: TaskState::Generating { round: 1 },
            events: Vec::<cadre_domain::EventRecord>::new(),
            cost_micros: Some(1),
        })
    }
    async fn cancel(
        &self,
        _: &TaskId,
        _: Option<String>,
    ) -> Result<(TaskState, bool), AgentsError> {
        Ok((TaskState::Cancelled, true))
    }
    async fn plan(&self, _: &TaskId) -> Result<Option<Plan>, AgentsError> {
        Ok(None)
    }
    async fn report(&self, _: &TaskId, _: u32) -> Result<Option<TestReport>, AgentsError> {
        Ok(None)
    }
    async fn proposal(&self, _: &TaskId) -> Result<Proposal, AgentsError> {
        Err(AgentsError::Refused("busy".into()))
    }
    async fn accept(&self, _: &TaskId, _: u32) -> Result<(), AgentsError> {
        Ok(())
    }
    async fn reject(&self, _: &TaskId, _: Option<String>) -> Result<(), AgentsError> {
        Ok(())
    }
    async fn list(&self, _: usize) -> Result<Vec<TaskSummary>, AgentsError> {
        Ok(Vec::new())
    }
    async fn resolve(&self, _: &str) -> Result<TaskId, AgentsError> {
        Err(AgentsError::Refused("busy".into()))
    }
    async fn search(&self, _: &Path, _: &str, _: usize) -> Result<SearchResults, AgentsError> {
        Err(AgentsError::Refused("busy".into()))
    }
    async fn reindex(&self, _: &Path, _: &[(String, String)]) -> Result<IndexReport, AgentsError> {
        Err(AgentsError::Refused("busy".into()))
    }
    async fn shutdown(&self) {}
}

struct Wire {
    write: tokio::io::WriteHalf<tokio::io::DuplexStream>,
    read: BufReader<tokio::io::ReadHalf<tokio::io::DuplexStream>>,
    next: i64,
}

impl Wire {
    async fn send(&mut self, msg: &Value) {
        let body = msg.to_string();
        self.write
            .write_all(format!("Content-Length: {}\r\n\r\n{body}", body.len()).as_bytes())
            .await
            .unwrap();
        self.write.flush().await.unwrap();
    }

    async fn recv(&mut self) -> Value {
        let mut length = 0;
        loop {
            let mut line = String::new();
            self.read.read_line(&mut line).await.unwrap();
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some(n) = line.strip_prefix("Content-Length: ") {
                length = n.parse().unwrap();
            }
        }
        let mut body = vec![0; length];
        self.read.read_exact(&mut body).await.unwrap();
        serde_json::from_slice(&body).unwrap()
    }

    /// A request; answers the server's own requests meanwhile and drops its notifications.
    async fn request(&mut self, method: &str, params: Value) -> Value {
        self.next += 1;
        let id = self.next;
        self.send(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})).await;
        loop {
            let msg = self.recv().await;
            if msg.get("method").is_some() {
                if let Some(server_id) = msg.get("id") {
                    self.send(&json!({"jsonrpc": "2.0", "id": server_id, "result": null})).await;
                }
                continue;
            }
            if msg["id"] == json!(id) {
                return msg;
            }
        }
    }
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmRSS:")).map(str::to_owned))
        .and_then(|l| l.split_whitespace().nth(1).and_then(|n| n.parse().ok()))
        .unwrap_or(0)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss, clippy::cast_precision_loss)]
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

/// A large Python file: many small functions, some with TODO comments.
fn big_file(lines: usize) -> String {
    let mut out = String::with_capacity(lines * 30);
    let mut n = 0;
    while n * 5 < lines {
        out.push_str(&format!(
            "def f{n}(a, b):\n    # TODO: check {n}\n    x = a + b * {n}\n    return x\n\n"
        ));
        n += 1;
    }
    out
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    let lines: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(200_000);
    let requests: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(2_000);
    let rss_start = rss_kib();

    let (client, server) = tokio::io::duplex(1 << 22);
    let (server_read, server_write) = tokio::io::split(server);
    let options = ServerOptions { poll: Duration::from_millis(200), ..ServerOptions::default() };
    tokio::spawn(cadre_lsp::serve(server_read, server_write, Arc::new(Busy), options));
    let (read, write) = tokio::io::split(client);
    let mut wire = Wire { write, read: BufReader::new(read), next: 0 };

    let caps = json!({"window": {"workDoneProgress": true},
        "textDocument": {"codeAction": {"codeActionLiteralSupport": {"codeActionKind": {"valueSet": ["quickfix"]}},
                                         "resolveSupport": {"properties": ["edit", "command"]}}}});
    wire.request(
        "initialize",
        json!({"processId": null, "rootUri": "file:///tmp", "capabilities": caps}),
    )
    .await;
    wire.send(&json!({"jsonrpc": "2.0", "method": "initialized", "params": {}})).await;
    let rss_idle = rss_kib();

    let text = big_file(lines);
    let bytes = text.len();
    let uri = "file:///tmp/cadre-bench/big.py";
    wire.send(&json!({"jsonrpc": "2.0", "method": "textDocument/didOpen",
        "params": {"textDocument": {"uri": uri, "languageId": "python", "version": 1, "text": text}}}))
        .await;
    drop(text);

    // 100 tasks running, each followed (polled) by the server.
    for i in 0..100 {
        let r = wire
            .request("workspace/executeCommand", json!({"command": "cadre.start",
                "arguments": [{"intent": "plan", "uri": uri, "goal": format!("task {i}"),
                               "range": {"start": {"line": 3, "character": 0}, "end": {"line": 3, "character": 0}}}]}))
            .await;
        assert!(r.get("result").is_some(), "{r}");
    }
    let rss_open = rss_kib();

    let mut latencies = Vec::with_capacity(requests);
    let diagnostic = json!({"range": {"start": {"line": 0, "character": 0}, "end": {"line": 0, "character": 3}}, "message": "x"});
    for i in 0..requests {
        let line = (i * 7919) % lines.max(1);
        let params = json!({"textDocument": {"uri": uri},
            "range": {"start": {"line": line, "character": 4}, "end": {"line": line, "character": 4}},
            "context": {"diagnostics": [diagnostic]}});
        let started = Instant::now();
        let r = wire.request("textDocument/codeAction", params).await;
        latencies.push(started.elapsed());
        assert!(r["result"].as_array().is_some_and(|a| !a.is_empty()), "{r}");
    }
    latencies.sort();
    println!(
        "codeAction on a {lines}-line file ({:.1} MB) with 100 tasks running, {requests} requests:",
        bytes as f64 / 1e6
    );
    println!(
        "  p50 {:?}  p99 {:?}  max {:?}",
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        latencies[latencies.len() - 1]
    );
    println!("memory (VmRSS of the bench process): start {} KiB, idle server {} KiB, file open + 100 tasks {} KiB", rss_start, rss_idle, rss_open);
}
