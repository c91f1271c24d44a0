//! `workspace/executeCommand`: Cadre's commands. `lsp/EXTENSIONS.md` documents each one's arguments
//! and result; keep the two in step.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use cadre_domain::{TaskId, TaskState};
use serde::Deserialize;
use serde_json::{json, Value};
use tower_lsp::jsonrpc::{Error, Result};
use tower_lsp::lsp_types::{Diagnostic, ExecuteCommandParams, Position, Range, Url};

use crate::agents::{Intent, TaskRequest};
use crate::context::{self, GoalInput, Target};
use crate::documents::Document;
use crate::handlers::{agents_error, failed, progress, review};
use crate::state::{lock, relative, repo_root, State};
use crate::to_proto;

/// Command names.
pub(crate) mod names {
    pub(crate) const START: &str = "cadre.start";
    pub(crate) const STATUS: &str = "cadre.status";
    pub(crate) const LIST: &str = "cadre.list";
    pub(crate) const ACCEPT: &str = "cadre.accept";
    pub(crate) const ACCEPTED: &str = "cadre.accepted";
    pub(crate) const REJECT: &str = "cadre.reject";
    pub(crate) const CANCEL: &str = "cadre.cancel";
    pub(crate) const SHOW: &str = "cadre.show";
    pub(crate) const REINDEX: &str = "cadre.reindex";
    pub(crate) const SEARCH: &str = "cadre.search";

    /// Every command, as announced in the server's capabilities.
    pub(crate) const ALL: [&str; 10] =
        [START, STATUS, LIST, ACCEPT, ACCEPTED, REJECT, CANCEL, SHOW, REINDEX, SEARCH];
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct StartArgs {
    intent: Intent,
    uri: Url,
    range: Option<Range>,
    #[serde(default)]
    diagnostics: Vec<Diagnostic>,
    goal: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct TaskArgs {
    task: String,
    reason: Option<String>,
    round: Option<u32>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct RootArgs {
    root: Option<String>,
    query: Option<String>,
    limit: Option<usize>,
}

/// The first argument, read as `T`; a missing or malformed one is a JSON-RPC invalid-params error.
fn argument<T: serde::de::DeserializeOwned>(params: &ExecuteCommandParams) -> Result<T> {
    let value = params.arguments.first().cloned().unwrap_or(Value::Null);
    serde_json::from_value(value).map_err(|e| {
        Error::invalid_params(format!(
            "{} takes one JSON object argument ({e}); lsp/EXTENSIONS.md lists its fields",
            params.command
        ))
    })
}

/// Runs one command.
pub(crate) async fn execute(
    state: &Arc<State>,
    params: ExecuteCommandParams,
) -> Result<Option<Value>> {
    let result = match params.command.as_str() {
        names::START => start(state, &params).await?,
        names::LIST => list(state).await?,
        names::REINDEX => reindex(state, argument_or_default(&params)?).await?,
        names::SEARCH => search(state, argument_or_default(&params)?).await?,
        names::STATUS
        | names::ACCEPT
        | names::ACCEPTED
        | names::REJECT
        | names::CANCEL
        | names::SHOW => {
            let args: TaskArgs = argument(&params)?;
            let task = state.agents.resolve(&args.task).await.map_err(agents_error)?;
            match params.command.as_str() {
                names::STATUS => status(state, &task).await?,
                names::ACCEPT => review::accept(state, &task).await?,
                names::ACCEPTED => review::accepted(state, &task, args.round.unwrap_or(0)).await?,
                names::REJECT => review::reject(state, &task, args.reason).await?,
                names::CANCEL => cancel(state, &task, args.reason).await?,
                _ => show(state, &task).await?,
            }
        }
        other => {
            return Err(Error::invalid_params(format!(
                "unknown command `{other}`; Cadre's commands are {}",
                names::ALL.join(", ")
            )))
        }
    };
    Ok(Some(result))
}

fn argument_or_default<T: serde::de::DeserializeOwned + Default>(
    params: &ExecuteCommandParams,
) -> Result<T> {
    if params.arguments.first().is_none_or(Value::is_null) {
        return Ok(T::default());
    }
    argument(params)
}

/// The buffer the editor has for `uri`, or the file on disk when it is not open.
async fn document(state: &State, uri: &Url, path: &Path) -> Result<Document> {
    if let Some(doc) = lock(&state.documents).get(uri).cloned() {
        return Ok(doc);
    }
    match tokio::fs::read_to_string(path).await {
        Ok(text) => Ok(Document::new(0, language_of(path), text)),
        Err(error) => Err(failed(format!(
            "cannot read {} ({error}); open it in the editor, or check the path",
            path.display()
        ))),
    }
}

fn language_of(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()).unwrap_or_default() {
        "rs" => "rust",
        "py" => "python",
        "js" | "mjs" | "cjs" => "javascript",
        "ts" | "tsx" => "typescript",
        "go" => "go",
        "java" => "java",
        "c" | "h" => "c",
        "cc" | "cpp" | "hpp" => "cpp",
        _ => "text",
    }
}

/// Where the task is about and how to name it.
fn target(
    intent: Intent,
    doc: &Document,
    range: Range,
    file: String,
) -> std::result::Result<(Target, Option<String>), String> {
    let lines = |first: usize, last: usize| -> String {
        (first..=last).filter_map(|l| doc.line(l)).collect::<Vec<_>>().join("\n")
    };
    let first = range.start.line as usize;
    let mut last = (range.end.line as usize).max(first);
    // A selection that ends at column 0 does not include that line.
    if last > first && range.end.character == 0 {
        last -= 1;
    }
    let last = last.min(doc.line_count().saturating_sub(1)).max(first);
    let at_lines = |first: usize, last: usize| {
        if first == last {
            format!("line {}", first + 1)
        } else {
            format!("lines {}-{}", first + 1, last + 1)
        }
    };
    let make = |first: usize, last: usize, label: String| Target {
        file: file.clone(),
        language: doc.language.clone(),
        first,
        last,
        label,
        text: lines(first, last),
    };
    match intent {
        Intent::Fix | Intent::Plan => Ok((make(first, last, at_lines(first, last)), None)),
        Intent::Todo => match context::todo_in(doc, range) {
            Some((line, todo)) => {
                Ok((make(line, line, format!("the comment at line {}", line + 1)), Some(todo)))
            }
            None => Err(format!(
                "there is no TODO or FIXME comment at {file} line {}; put the cursor on one",
                first + 1
            )),
        },
        Intent::Implement | Intent::Tests | Intent::Explain | Intent::Refactor => {
            if range.start != range.end {
                return Ok((make(first, last, "the selected code".to_owned()), None));
            }
            match context::function_at(doc, first) {
                Some(f) => {
                    let f = context::function_end(doc, &f);
                    Ok((make(f.start, f.end, format!("function `{}`", f.name)), None))
                }
                None => Ok((make(first, last, at_lines(first, last)), None)),
            }
        }
    }
}

/// `cadre.start`: builds the goal from the editor's context and starts the task. With a client
/// progress token (`workDoneToken`) the request stays open until the task is ready or ends, and
/// cancelling the request cancels the task; without one it answers at once and progress goes to a
/// server-created token.
async fn start(state: &Arc<State>, params: &ExecuteCommandParams) -> Result<Value> {
    let args: StartArgs = argument(params)?;
    let path = args.uri.to_file_path().map_err(|()| {
        Error::invalid_params(format!(
            "{} is not a file URI; Cadre works on files on disk",
            args.uri
        ))
    })?;
    if args.intent == Intent::Plan && args.goal.as_deref().is_none_or(|g| g.trim().is_empty()) {
        return Err(Error::invalid_params(
            "cadre.start with intent plan needs a goal: pass {\"goal\": \"what to change\"} \
             (lsp/README.md shows editor bindings that ask for it)",
        ));
    }
    let doc = document(state, &args.uri, &path).await?;
    let repo = repo_root(&path);
    let file = relative(&path, repo.as_deref().or(state.root_for(Some(&path)).as_deref()));
    let range = args.range.unwrap_or_else(|| Range::new(Position::new(0, 0), Position::new(0, 0)));
    let (target, todo) = target(args.intent, &doc, range, file).map_err(failed)?;
    let others: Vec<(String, String)> = lock(&state.documents)
        .iter()
        .filter(|(uri, d)| **uri != args.uri && d.dirty)
        .filter_map(|(uri, d)| {
            let other = uri.to_file_path().ok()?;
            let inside = repo.as_ref().is_none_or(|r| other.starts_with(r));
            inside.then(|| (relative(&other, repo.as_deref()), d.text().to_owned()))
        })
        .collect();
    let goal = context::goal(&GoalInput {
        intent: args.intent,
        target: &target,
        wish: args.goal.as_deref(),
        diagnostics: &args.diagnostics,
        todo: todo.as_deref(),
        buffer: Some(doc.text()),
        unsaved: doc.dirty,
        others: &others,
    });
    let request = TaskRequest { intent: args.intent, goal, file: path };
    let task = state.agents.start(request).await.map_err(agents_error)?;
    let title = format!("{} ({} {})", args.intent.title(), target.file, target.label);
    let client_token = params.work_done_progress_params.work_done_token.clone();
    let token = match &client_token {
        Some(token) => Some(token.clone()),
        None => progress::create_token(state, &task).await,
    };
    progress::follow(state, task.clone(), args.intent, title.clone(), token);
    if client_token.is_none() {
        return Ok(json!({"task": task, "title": title}));
    }
    let guard = CancelOnDrop { state: state.clone(), task: Some(task.clone()) };
    let settled = wait_settled(state, &task).await;
    guard.disarm();
    Ok(json!({"task": task, "title": title, "state": settled}))
}

/// Waits until a followed task is ready for review or ended.
async fn wait_settled(state: &State, task: &TaskId) -> TaskState {
    let receiver = lock(&state.tasks).get(task).map(|t| t.state.subscribe());
    let Some(mut receiver) = receiver else { return TaskState::Queued };
    loop {
        let now = *receiver.borrow_and_update();
        if to_proto::settled(now) {
            return now;
        }
        if receiver.changed().await.is_err() {
            return now;
        }
    }
}

/// Cancels the task when a waiting `cadre.start` request is dropped: the editor sent
/// `$/cancelRequest` for it (or the connection closed).
struct CancelOnDrop {
    state: Arc<State>,
    task: Option<TaskId>,
}

impl CancelOnDrop {
    fn disarm(mut self) {
        self.task = None;
    }
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        let Some(task) = self.task.take() else { return };
        let state = self.state.clone();
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let reason = Some("the editor cancelled the request".to_owned());
                if let Err(error) = state.agents.cancel(&task, reason).await {
                    tracing::warn!(%error, task = %task, "cannot cancel the task of a cancelled request");
                }
            });
        }
    }
}

async fn status(state: &State, task: &TaskId) -> Result<Value> {
    let snapshot = state.agents.snapshot(task, 0).await.map_err(agents_error)?;
    let events: Vec<String> = snapshot.events.iter().map(|r| r.event.describe()).collect();
    #[allow(clippy::cast_precision_loss)]
    let cost = snapshot.cost_micros.map(|m| m as f64 / 1e6);
    Ok(json!({
        "task": task,
        "state": snapshot.state,
        "stateText": snapshot.state.to_string(),
        "goal": snapshot.task.goal.lines().next().unwrap_or_default(),
        "repo": snapshot.task.repo,
        "events": events,
        "costUsd": cost,
    }))
}

async fn list(state: &State) -> Result<Value> {
    let tasks = state.agents.list(50).await.map_err(agents_error)?;
    let rows: Vec<Value> = tasks
        .iter()
        .map(|t| {
            json!({
                "task": t.task.id,
                "short": t.task.id.short(),
                "state": t.state.to_string(),
                "goal": t.task.goal.lines().next().unwrap_or_default(),
                "repo": t.task.repo,
            })
        })
        .collect();
    Ok(Value::Array(rows))
}

async fn cancel(state: &State, task: &TaskId, reason: Option<String>) -> Result<Value> {
    let (found, cancelled) = state.agents.cancel(task, reason).await.map_err(agents_error)?;
    if !cancelled {
        return Err(failed(format!("task {} is already {found}", task.short())));
    }
    Ok(json!({"task": task, "cancelled": true}))
}

async fn show(state: &State, task: &TaskId) -> Result<Value> {
    let snapshot = state.agents.snapshot(task, u64::MAX).await.map_err(agents_error)?;
    let title = lock(&state.tasks).get(task).map_or_else(
        || snapshot.task.goal.lines().next().unwrap_or_default().to_owned(),
        |t| t.title.clone(),
    );
    let (summary, proposal) = progress::review_summary(state, task, &title, snapshot.cost_micros)
        .await
        .map_err(agents_error)?;
    progress::present(state, task, summary.clone()).await;
    Ok(json!({"task": task, "round": proposal.round, "summary": summary, "patch": proposal.patch}))
}

/// The repository a root-taking command works on: the argument, else the workspace root.
fn root_of(state: &State, root: Option<&str>) -> Result<PathBuf> {
    if let Some(root) = root {
        let path = match Url::parse(root) {
            Ok(url) if url.scheme() == "file" => url.to_file_path().ok(),
            _ => Some(PathBuf::from(root)),
        };
        return path.ok_or_else(|| Error::invalid_params(format!("root {root:?} is not a path")));
    }
    state.root_for(None).ok_or_else(|| {
        Error::invalid_params("no workspace folder is open; pass {\"root\": \"/path/to/repo\"}")
    })
}

async fn reindex(state: &State, args: RootArgs) -> Result<Value> {
    let root = root_of(state, args.root.as_deref())?;
    let overlays: Vec<(String, String)> = lock(&state.documents)
        .iter()
        .filter(|(_, d)| d.dirty)
        .filter_map(|(uri, d)| {
            let path = uri.to_file_path().ok()?;
            path.starts_with(&root).then(|| (relative(&path, Some(&root)), d.text().to_owned()))
        })
        .collect();
    let report = state.agents.reindex(&root, &overlays).await.map_err(agents_error)?;
    Ok(json!({
        "root": root,
        "filesSeen": report.files_seen,
        "filesIndexed": report.files_indexed,
        "filesUnchanged": report.files_unchanged,
        "filesRemoved": report.files_removed,
        "unsavedBuffers": overlays.len(),
        "lines": report.lines,
        "chunks": report.totals.chunks,
        "symbols": report.totals.symbols,
        "elapsedMs": report.elapsed_ms,
    }))
}

async fn search(state: &State, args: RootArgs) -> Result<Value> {
    let root = root_of(state, args.root.as_deref())?;
    let Some(query) = args.query.filter(|q| !q.trim().is_empty()) else {
        return Err(Error::invalid_params(
            "cadre.search needs {\"query\": \"words or identifiers\"}",
        ));
    };
    let results = state
        .agents
        .search(&root, &query, args.limit.unwrap_or(20).clamp(1, 200))
        .await
        .map_err(agents_error)?;
    let hits: Vec<Value> = results
        .hits
        .iter()
        .map(|hit| {
            let c = &hit.chunk;
            let uri = Url::from_file_path(root.join(&c.path)).ok();
            json!({
                "path": c.path,
                "uri": uri,
                "line": c.start_line,
                "endLine": c.end_line,
                "symbol": c.symbol,
                "score": hit.score,
            })
        })
        .collect();
    Ok(json!({"mode": format!("{:?}", results.mode), "hits": hits}))
}
