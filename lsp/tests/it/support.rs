//! A JSON-RPC client speaking to the server through its stdio framing (Content-Length headers over a
//! byte stream), and an in-memory `Agents` whose tasks follow a script.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cadre_domain::event::{Event, EventRecord};
use cadre_domain::ports::knowledge::{IndexReport, SearchResults};
use cadre_domain::ports::store::TaskSummary;
use cadre_domain::{CommitId, Plan, Task, TaskId, TaskSettings, TaskState, TestReport, Timestamp};
use cadre_lsp::{
    Agents, AgentsError, Proposal, ServerOptions, Settings, TaskRequest, TaskSnapshot,
};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, DuplexStream, WriteHalf};
use tokio::sync::mpsc;

/// What the fake agents were asked, for assertions.
#[derive(Debug, Default)]
pub(crate) struct Calls {
    pub(crate) configured: Vec<Settings>,
    pub(crate) started: Vec<TaskRequest>,
    pub(crate) cancelled: Vec<(TaskId, Option<String>)>,
    pub(crate) accepted: Vec<(TaskId, u32)>,
    pub(crate) rejected: Vec<TaskId>,
    pub(crate) reindexed: Vec<(PathBuf, Vec<(String, String)>)>,
    pub(crate) reindexed_files: Vec<(PathBuf, Vec<String>)>,
    pub(crate) shutdown: bool,
}

struct FakeTask {
    task: Task,
    log: Vec<Event>,
    script: Vec<Event>,
}

/// Tasks whose events appear one per `snapshot` call, from a script set before they start.
pub(crate) struct FakeAgents {
    pub(crate) repo: PathBuf,
    pub(crate) calls: Mutex<Calls>,
    script: Mutex<Vec<Event>>,
    tasks: Mutex<HashMap<TaskId, FakeTask>>,
    pub(crate) patch: Mutex<String>,
    pub(crate) report: Mutex<Option<TestReport>>,
    /// When set, `reindex_files` records its call and then never returns.
    pub(crate) hang_reindex: std::sync::atomic::AtomicBool,
}

impl FakeAgents {
    pub(crate) fn new(repo: &Path) -> Arc<FakeAgents> {
        Arc::new(FakeAgents {
            repo: repo.to_path_buf(),
            calls: Mutex::new(Calls::default()),
            script: Mutex::new(Vec::new()),
            tasks: Mutex::new(HashMap::new()),
            patch: Mutex::new(String::new()),
            report: Mutex::new(None),
            hang_reindex: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// The events the next started task goes through.
    pub(crate) fn script(&self, events: Vec<Event>) {
        *self.script.lock().unwrap() = events;
    }

    pub(crate) fn calls(&self) -> std::sync::MutexGuard<'_, Calls> {
        self.calls.lock().unwrap()
    }

    fn append(&self, task: &TaskId, event: Event) -> TaskState {
        let mut tasks = self.tasks.lock().unwrap();
        let t = tasks.get_mut(task).unwrap();
        let before = fold(&t.log);
        if !before.is_terminal() {
            t.log.push(event);
        }
        fold(&t.log)
    }

    fn state(&self, task: &TaskId) -> Result<TaskState, AgentsError> {
        let tasks = self.tasks.lock().unwrap();
        let t = tasks.get(task).ok_or_else(|| AgentsError::Refused(format!("no task {task}")))?;
        Ok(fold(&t.log))
    }
}

fn records(events: &[Event]) -> Vec<EventRecord> {
    events
        .iter()
        .enumerate()
        .map(|(i, e)| EventRecord { seq: i as u64 + 1, at: Timestamp(0), event: e.clone() })
        .collect()
}

fn fold(events: &[Event]) -> TaskState {
    TaskState::fold(&records(events))
}

#[async_trait::async_trait]
impl Agents for FakeAgents {
    async fn check(&self) -> Vec<String> {
        Vec::new()
    }

    async fn configure(&self, settings: &Settings) -> Result<(), AgentsError> {
        self.calls().configured.push(settings.clone());
        Ok(())
    }

    async fn start(&self, request: TaskRequest) -> Result<TaskId, AgentsError> {
        let task = Task {
            id: TaskId::generate(),
            repo: self.repo.display().to_string(),
            goal: request.goal.clone(),
            base_commit: CommitId::parse(&"a".repeat(40)).unwrap(),
            settings: TaskSettings::default(),
            created_at: Timestamp(0),
        };
        let id = task.id.clone();
        let created = Event::Created { task: task.clone() };
        let script = self.script.lock().unwrap().clone();
        self.tasks
            .lock()
            .unwrap()
            .insert(id.clone(), FakeTask { task, log: vec![created], script });
        self.calls().started.push(request);
        Ok(id)
    }

    async fn snapshot(&self, task: &TaskId, after_seq: u64) -> Result<TaskSnapshot, AgentsError> {
        let mut tasks = self.tasks.lock().unwrap();
        let t =
            tasks.get_mut(task).ok_or_else(|| AgentsError::Refused(format!("no task {task}")))?;
        // Each look moves the script on by one event.
        if after_seq != u64::MAX && !t.script.is_empty() && !fold(&t.log).is_terminal() {
            let next = t.script.remove(0);
            t.log.push(next);
        }
        let events = if after_seq == u64::MAX {
            Vec::new()
        } else {
            records(&t.log).into_iter().filter(|r| r.seq > after_seq).collect()
        };
        Ok(TaskSnapshot {
            task: t.task.clone(),
            state: fold(&t.log),
            events,
            cost_micros: Some(1234),
        })
    }

    async fn cancel(
        &self,
        task: &TaskId,
        reason: Option<String>,
    ) -> Result<(TaskState, bool), AgentsError> {
        let before = self.state(task)?;
        self.calls().cancelled.push((task.clone(), reason.clone()));
        if before.is_terminal() {
            return Ok((before, false));
        }
        Ok((self.append(task, Event::Cancelled { reason }), true))
    }

    async fn plan(&self, _task: &TaskId) -> Result<Option<Plan>, AgentsError> {
        Ok(Some(Plan {
            summary: "add() subtracts; make it add".into(),
            steps: vec![cadre_domain::PlanItem {
                description: "return a + b".into(),
                files: vec!["calc.py".into()],
            }],
            acceptance_criteria: vec![],
        }))
    }

    async fn report(&self, _task: &TaskId, _round: u32) -> Result<Option<TestReport>, AgentsError> {
        Ok(self.report.lock().unwrap().clone())
    }

    async fn proposal(&self, task: &TaskId) -> Result<Proposal, AgentsError> {
        let TaskState::AwaitingReview { round } = self.state(task)? else {
            return Err(AgentsError::Refused(format!(
                "task {} is not awaiting review",
                task.short()
            )));
        };
        let plan = self.plan(task).await?;
        let patch = self.patch.lock().unwrap().clone();
        Ok(Proposal {
            round,
            repo: self.repo.clone(),
            patch,
            plan,
            report: self.report.lock().unwrap().clone(),
        })
    }

    async fn accept(&self, task: &TaskId, round: u32) -> Result<(), AgentsError> {
        self.append(task, Event::Applied { round });
        self.calls().accepted.push((task.clone(), round));
        Ok(())
    }

    async fn reject(&self, task: &TaskId, reason: Option<String>) -> Result<(), AgentsError> {
        self.append(task, Event::Rejected { reason });
        self.calls().rejected.push(task.clone());
        Ok(())
    }

    async fn list(&self, _limit: usize) -> Result<Vec<TaskSummary>, AgentsError> {
        let tasks = self.tasks.lock().unwrap();
        Ok(tasks
            .values()
            .map(|t| TaskSummary {
                task: t.task.clone(),
                state: fold(&t.log),
                updated_at: Timestamp(0),
            })
            .collect())
    }

    async fn resolve(&self, text: &str) -> Result<TaskId, AgentsError> {
        let tasks = self.tasks.lock().unwrap();
        let found: Vec<&TaskId> = tasks.keys().filter(|id| id.as_str().starts_with(text)).collect();
        match found.as_slice() {
            [one] => Ok((*one).clone()),
            _ => Err(AgentsError::Refused(format!("`{text}` matches {} tasks", found.len()))),
        }
    }

    async fn search(
        &self,
        root: &Path,
        _query: &str,
        _limit: usize,
    ) -> Result<SearchResults, AgentsError> {
        Err(AgentsError::Refused(format!(
            "{} is not indexed; run cadre.reindex first",
            root.display()
        )))
    }

    async fn reindex(
        &self,
        root: &Path,
        overlays: &[(String, String)],
    ) -> Result<IndexReport, AgentsError> {
        self.calls().reindexed.push((root.to_path_buf(), overlays.to_vec()));
        Err(AgentsError::Refused("the fake does not index".into()))
    }

    async fn reindex_files(
        &self,
        root: &Path,
        paths: &[String],
    ) -> Result<IndexReport, AgentsError> {
        self.calls().reindexed_files.push((root.to_path_buf(), paths.to_vec()));
        if self.hang_reindex.load(std::sync::atomic::Ordering::SeqCst) {
            std::future::pending::<()>().await;
        }
        Err(AgentsError::Refused("the fake does not index".into()))
    }

    async fn shutdown(&self) {
        self.calls().shutdown = true;
    }
}

/// The client end of a server running on in-memory pipes, framed exactly as on stdio.
pub(crate) struct Client {
    writer: Arc<tokio::sync::Mutex<WriteHalf<DuplexStream>>>,
    incoming: mpsc::UnboundedReceiver<Value>,
    /// Everything the server sent that was not a response, in order.
    pub(crate) seen: Vec<Value>,
    next_id: i64,
    server: tokio::task::JoinHandle<()>,
    root: PathBuf,
    /// Edits the server asked the client to apply.
    pub(crate) applied: Arc<Mutex<Vec<Value>>>,
}

impl Client {
    /// Starts the server over `agents` with a fast poll.
    pub(crate) fn start(agents: Arc<FakeAgents>) -> Client {
        let options = ServerOptions { poll: Duration::from_millis(5), ..ServerOptions::default() };
        Client::start_with(agents, options)
    }

    /// Starts the server over `agents` with these options.
    pub(crate) fn start_with(agents: Arc<FakeAgents>, options: ServerOptions) -> Client {
        let root = agents.repo.clone();
        let (client_end, server_end) = tokio::io::duplex(1 << 20);
        let (server_read, server_write) = tokio::io::split(server_end);
        let server = tokio::spawn(cadre_lsp::serve(server_read, server_write, agents, options));
        let (client_read, client_write) = tokio::io::split(client_end);
        let writer = Arc::new(tokio::sync::Mutex::new(client_write));
        let (tx, incoming) = mpsc::unbounded_channel();
        let applied = Arc::new(Mutex::new(Vec::new()));
        tokio::spawn(read_loop(client_read, writer.clone(), tx, applied.clone()));
        Client { writer, incoming, seen: Vec::new(), next_id: 1, server, root, applied }
    }

    /// Writes raw bytes as one framed message.
    pub(crate) async fn send_raw(&self, body: &[u8]) {
        let mut w = self.writer.lock().await;
        w.write_all(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes()).await.unwrap();
        w.write_all(body).await.unwrap();
        w.flush().await.unwrap();
    }

    pub(crate) async fn notify(&self, method: &str, params: Value) {
        let mut msg = json!({"jsonrpc": "2.0", "method": method, "params": params});
        if params_absent(&msg) {
            msg.as_object_mut().unwrap().remove("params");
        }
        self.send_raw(msg.to_string().as_bytes()).await;
    }

    /// Sends a request and returns its id without waiting.
    pub(crate) async fn send_request(&mut self, method: &str, params: Value) -> i64 {
        let id = self.next_id;
        self.next_id += 1;
        let mut msg = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        if params_absent(&msg) {
            msg.as_object_mut().unwrap().remove("params");
        }
        self.send_raw(msg.to_string().as_bytes()).await;
        id
    }

    /// Sends a request and returns the whole response (`result` or `error`).
    pub(crate) async fn request(&mut self, method: &str, params: Value) -> Value {
        let id = self.send_request(method, params).await;
        self.response(id).await
    }

    /// Waits for the response to request `id`, keeping other messages in `seen`.
    pub(crate) async fn response(&mut self, id: i64) -> Value {
        self.next_matching(|m| m.get("id") == Some(&json!(id)) && m.get("method").is_none()).await
    }

    /// Waits for a message matching `want` (at most 10 s), keeping the others in `seen`.
    pub(crate) async fn next_matching(&mut self, want: impl Fn(&Value) -> bool) -> Value {
        if let Some(i) = self.seen.iter().position(&want) {
            return self.seen.remove(i);
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let msg = tokio::time::timeout_at(deadline, self.incoming.recv())
                .await
                .unwrap_or_else(|_| {
                    panic!("no matching message within 10 s; seen: {:#?}", self.seen)
                })
                .expect("the server closed the connection");
            if want(&msg) {
                return msg;
            }
            self.seen.push(msg);
        }
    }

    /// Waits for a notification of `method` whose params satisfy `want`.
    pub(crate) async fn notification(
        &mut self,
        method: &str,
        want: impl Fn(&Value) -> bool,
    ) -> Value {
        self.next_matching(|m| m["method"] == method && m.get("id").is_none() && want(&m["params"]))
            .await["params"]
            .clone()
    }

    /// `initialize` with these client capabilities and options, then `initialized`.
    pub(crate) async fn initialize(&mut self, capabilities: Value, options: Value) -> Value {
        let root = format!("file://{}", self.root_hint());
        let response = self
            .request(
                "initialize",
                json!({"processId": null, "rootUri": root, "capabilities": capabilities,
                       "initializationOptions": options}),
            )
            .await;
        self.notify("initialized", json!({})).await;
        response
    }

    fn root_hint(&self) -> String {
        self.root.display().to_string()
    }

    /// `shutdown` then `exit`; returns once the server stopped.
    pub(crate) async fn shutdown(mut self) {
        let response = self.request("shutdown", Value::Null).await;
        assert!(response.get("error").is_none() && response["result"].is_null(), "{response}");
        self.notify("exit", Value::Null).await;
        tokio::time::timeout(Duration::from_secs(10), self.server)
            .await
            .expect("the server did not stop after exit")
            .unwrap();
    }
}

/// `Value::Null` params are left out, as editors do for `shutdown` and `exit`.
fn params_absent(msg: &Value) -> bool {
    msg["params"].is_null()
}

/// Reads framed messages; answers the server's own requests the way an editor would.
async fn read_loop(
    read: tokio::io::ReadHalf<DuplexStream>,
    writer: Arc<tokio::sync::Mutex<WriteHalf<DuplexStream>>>,
    tx: mpsc::UnboundedSender<Value>,
    applied: Arc<Mutex<Vec<Value>>>,
) {
    let mut reader = BufReader::new(read);
    loop {
        let mut length = 0usize;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).await.unwrap_or(0) == 0 {
                return;
            }
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some(n) = line.strip_prefix("Content-Length: ") {
                length = n.parse().unwrap();
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).await.unwrap();
        let msg: Value = serde_json::from_slice(&body).unwrap();
        if let (Some(id), Some(method)) = (msg.get("id"), msg["method"].as_str()) {
            let result = match method {
                "workspace/applyEdit" => {
                    applied.lock().unwrap().push(msg["params"].clone());
                    json!({"applied": true})
                }
                "window/showDocument" => json!({"success": true}),
                _ => Value::Null,
            };
            let reply = json!({"jsonrpc": "2.0", "id": id, "result": result}).to_string();
            let mut w = writer.lock().await;
            w.write_all(format!("Content-Length: {}\r\n\r\n{reply}", reply.len()).as_bytes())
                .await
                .unwrap();
            w.flush().await.unwrap();
        }
        if tx.send(msg).is_err() {
            return;
        }
    }
}

/// Client capabilities like a modern editor's: progress, lazy resolve of edit and command,
/// versioned document changes, file creation.
pub(crate) fn full_capabilities() -> Value {
    json!({
        "window": {"workDoneProgress": true},
        "textDocument": {"codeAction": {
            "codeActionLiteralSupport": {"codeActionKind": {"valueSet": ["quickfix", "refactor", "source"]}},
            "resolveSupport": {"properties": ["edit", "command"]},
            "dataSupport": true
        }},
        "workspace": {"applyEdit": true, "workspaceEdit": {"documentChanges": true, "resourceOperations": ["create", "delete"]}}
    })
}

/// Capabilities of a plain client: code action literals, no lazy resolve, no progress.
pub(crate) fn plain_capabilities() -> Value {
    json!({
        "textDocument": {"codeAction": {
            "codeActionLiteralSupport": {"codeActionKind": {"valueSet": ["quickfix", "refactor", "source"]}}
        }},
        "workspace": {"applyEdit": true, "workspaceEdit": {"documentChanges": true}}
    })
}
