//! Resident memory of an idle language server whose workspace (about 1M lines of real code) has been
//! indexed through `cadre.reindex`, with the real embedded knowledge base behind `Agents::reindex`.
//!
//! Run: `cargo bench -p cadre-lsp --bench idle_memory -- [CORPUS_DIR] [MIN_LINES]`. Without a corpus,
//! crates from `~/.cargo/registry/src/*/` are copied (sorted by name) into a temporary directory until
//! their source files hold at least `MIN_LINES` lines (default 1,000,000); the bench prints the
//! lines, bytes and files indexed. It measures the whole bench process (server + knowledge base),
//! which is what `cadre lsp` would hold, minus the engine worker.

#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cadre_domain::ports::knowledge::{IndexReport, IndexScope, KnowledgeBase, SearchResults};
use cadre_domain::ports::store::TaskSummary;
use cadre_domain::{Plan, TaskId, TaskState, TestReport};
use cadre_knowledge::EmbeddedKnowledge;
use cadre_lsp::{
    Agents, AgentsError, Proposal, ServerOptions, Settings, TaskRequest, TaskSnapshot,
};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

/// Agents that only index, into a real embedded knowledge base.
struct Indexing {
    kb: EmbeddedKnowledge,
}

fn refused<T>() -> Result<T, AgentsError> {
    Err(AgentsError::Refused("the bench only indexes".into()))
}

#[async_trait::async_trait]
impl Agents for Indexing {
    async fn check(&self) -> Vec<String> {
        Vec::new()
    }
    async fn configure(&self, _: &Settings) -> Result<(), AgentsError> {
        Ok(())
    }
    async fn start(&self, _: TaskRequest) -> Result<TaskId, AgentsError> {
        refused()
    }
    async fn snapshot(&self, _: &TaskId, _: u64) -> Result<TaskSnapshot, AgentsError> {
        refused()
    }
    async fn cancel(
        &self,
        _: &TaskId,
        _: Option<String>,
    ) -> Result<(TaskState, bool), AgentsError> {
        refused()
    }
    async fn plan(&self, _: &TaskId) -> Result<Option<Plan>, AgentsError> {
        refused()
    }
    async fn report(&self, _: &TaskId, _: u32) -> Result<Option<TestReport>, AgentsError> {
        refused()
    }
    async fn proposal(&self, _: &TaskId) -> Result<Proposal, AgentsError> {
        refused()
    }
    async fn accept(&self, _: &TaskId, _: u32) -> Result<(), AgentsError> {
        refused()
    }
    async fn reject(&self, _: &TaskId, _: Option<String>) -> Result<(), AgentsError> {
        refused()
    }
    async fn list(&self, _: usize) -> Result<Vec<TaskSummary>, AgentsError> {
        Ok(Vec::new())
    }
    async fn resolve(&self, _: &str) -> Result<TaskId, AgentsError> {
        refused()
    }
    async fn search(&self, _: &Path, _: &str, _: usize) -> Result<SearchResults, AgentsError> {
        refused()
    }
    async fn reindex(
        &self,
        root: &Path,
        _: &[(String, String)],
    ) -> Result<IndexReport, AgentsError> {
        let key = EmbeddedKnowledge::repo_key(root).unwrap();
        self.kb
            .index(&key, root, IndexScope::Changed)
            .await
            .map_err(|e| AgentsError::Refused(e.to_string()))
    }
    async fn shutdown(&self) {}
}

const SOURCE: &[&str] = &["rs", "py", "js", "ts", "go", "java", "c", "h", "cc", "cpp"];

fn lines_of_sources(dir: &Path) -> u64 {
    let mut lines = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for e in entries.flatten() {
            let p = e.path();
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(p);
            } else if p.extension().and_then(|x| x.to_str()).is_some_and(|x| SOURCE.contains(&x)) {
                lines += std::fs::read(&p)
                    .map_or(0, |b| b.iter().filter(|c| **c == b'\n').count() as u64);
            }
        }
    }
    lines
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(e.file_name());
        let kind = e.file_type().unwrap();
        if kind.is_dir() {
            copy_dir(&e.path(), &target);
        } else if kind.is_file() {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

/// Copies registry crates into `into` until their sources hold `min_lines`; returns the crate count.
fn registry_corpus(into: &Path, min_lines: u64) -> usize {
    let home = PathBuf::from(std::env::var_os("HOME").expect("HOME is not set"));
    let registry = std::fs::read_dir(home.join(".cargo/registry/src"))
        .expect("no ~/.cargo/registry/src; build the workspace once, or pass a corpus directory")
        .flatten()
        .next()
        .expect("~/.cargo/registry/src is empty")
        .path();
    let mut crates: Vec<PathBuf> =
        std::fs::read_dir(registry).unwrap().flatten().map(|e| e.path()).collect();
    crates.sort();
    let (mut lines, mut n) = (0, 0);
    for c in crates {
        if lines >= min_lines {
            break;
        }
        lines += lines_of_sources(&c);
        copy_dir(&c, &into.join(c.file_name().unwrap()));
        n += 1;
    }
    n
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmRSS:")).map(str::to_owned))
        .and_then(|l| l.split_whitespace().nth(1).and_then(|n| n.parse().ok()))
        .unwrap_or(0)
}

async fn send(write: &mut tokio::io::WriteHalf<tokio::io::DuplexStream>, msg: &Value) {
    let body = msg.to_string();
    write
        .write_all(format!("Content-Length: {}\r\n\r\n{body}", body.len()).as_bytes())
        .await
        .unwrap();
    write.flush().await.unwrap();
}

async fn recv(read: &mut BufReader<tokio::io::ReadHalf<tokio::io::DuplexStream>>) -> Value {
    let mut length = 0;
    loop {
        let mut line = String::new();
        read.read_line(&mut line).await.unwrap();
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some(n) = line.strip_prefix("Content-Length: ") {
            length = n.parse().unwrap();
        }
    }
    let mut body = vec![0; length];
    read.read_exact(&mut body).await.unwrap();
    serde_json::from_slice(&body).unwrap()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    let min_lines: u64 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(1_000_000);
    let scratch = tempfile::tempdir().unwrap();
    let corpus = match args.first() {
        Some(dir) => PathBuf::from(dir),
        None => {
            let dir = scratch.path().join("corpus");
            let crates = registry_corpus(&dir, min_lines);
            println!(
                "corpus: {crates} crates from ~/.cargo/registry/src copied to {}",
                dir.display()
            );
            dir
        }
    };
    let rss_start = rss_kib();
    let kb = EmbeddedKnowledge::open(scratch.path().join("knowledge")).unwrap();
    let (client, server) = tokio::io::duplex(1 << 22);
    let (server_read, server_write) = tokio::io::split(server);
    tokio::spawn(cadre_lsp::serve(
        server_read,
        server_write,
        Arc::new(Indexing { kb }),
        ServerOptions::default(),
    ));
    let (read, mut write) = tokio::io::split(client);
    let mut read = BufReader::new(read);
    let root = format!("file://{}", corpus.display());
    send(
        &mut write,
        &json!({"jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"processId": null, "rootUri": root, "capabilities": {}}}),
    )
    .await;
    recv(&mut read).await;
    send(&mut write, &json!({"jsonrpc": "2.0", "method": "initialized", "params": {}})).await;
    let rss_idle_empty = rss_kib();

    let started = Instant::now();
    send(
        &mut write,
        &json!({"jsonrpc": "2.0", "id": 2, "method": "workspace/executeCommand",
        "params": {"command": "cadre.reindex", "arguments": [{"root": corpus}]}}),
    )
    .await;
    let report = loop {
        let msg = recv(&mut read).await;
        if msg["id"] == 2 {
            break msg;
        }
    };
    let took = started.elapsed();
    assert!(report.get("result").is_some(), "{report}");
    let r = &report["result"];
    let rss_after_index = rss_kib();
    // Idle: no request for a while, as an editor left open.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let rss_idle = rss_kib();
    println!(
        "indexed {} files ({} lines, {} chunks, {} symbols) in {:.1} s",
        r["filesIndexed"],
        r["lines"],
        r["chunks"],
        r["symbols"],
        took.as_secs_f64()
    );
    println!(
        "memory (VmRSS of the bench process): start {rss_start} KiB, idle server before indexing {rss_idle_empty} KiB, \
         right after indexing {rss_after_index} KiB, idle 5 s later {rss_idle} KiB"
    );
}
