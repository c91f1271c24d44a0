//! What the server remembers between messages: open buffers, the client's capabilities, workspace
//! roots, the tasks it follows and the diagnostics it published for them.
//!
//! Every lock is a short, synchronous `std::sync::Mutex` section that never spans an `.await`, so a
//! notification's state change happens in the order the editor sent it.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use cadre_domain::{TaskId, TaskState};
use tokio::sync::watch;
use tower_lsp::lsp_types::{
    ClientCapabilities, Diagnostic, NumberOrString, ResourceOperationKind, Url,
};
use tower_lsp::Client;

use crate::agents::{Agents, Intent};
use crate::documents::Documents;

/// Locks a mutex, recovering the data if a panicking holder poisoned it: a panic in one handler must
/// not take the server down with it.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What the client said it can do, reduced to what the server asks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct ClientCaps {
    /// `window.workDoneProgress`: the server may create progress tokens.
    pub(crate) work_done_progress: bool,
    /// `codeAction.resolveSupport` lists `edit`: the proposed change can be computed on resolve.
    pub(crate) resolve_edit: bool,
    /// `codeAction.resolveSupport` lists `command`.
    pub(crate) resolve_command: bool,
    /// `codeActionLiteralSupport`: code actions, not bare commands, may be returned.
    pub(crate) code_action_literals: bool,
    /// `workspace.workspaceEdit.documentChanges`: versioned edits.
    pub(crate) document_changes: bool,
    /// Resource operations: create and delete files.
    pub(crate) create_files: bool,
    pub(crate) delete_files: bool,
    /// `window.showDocument.support`: the server may ask the client to open a document.
    pub(crate) show_document: bool,
}

impl ClientCaps {
    pub(crate) fn read(caps: &ClientCapabilities) -> ClientCaps {
        let action = caps.text_document.as_ref().and_then(|t| t.code_action.as_ref());
        let resolve = action.and_then(|a| a.resolve_support.as_ref()).map(|r| &r.properties);
        let has = |p: &str| resolve.is_some_and(|props| props.iter().any(|x| x == p));
        let edit = caps.workspace.as_ref().and_then(|w| w.workspace_edit.as_ref());
        let ops = edit.and_then(|e| e.resource_operations.as_ref());
        let op = |k: ResourceOperationKind| ops.is_some_and(|o| o.contains(&k));
        ClientCaps {
            work_done_progress: caps
                .window
                .as_ref()
                .and_then(|w| w.work_done_progress)
                .unwrap_or(false),
            resolve_edit: has("edit"),
            resolve_command: has("command"),
            code_action_literals: action
                .and_then(|a| a.code_action_literal_support.as_ref())
                .is_some(),
            // Resource operations exist only inside `documentChanges`, so a client that lists them
            // takes `documentChanges` even if it does not say so (Neovim 0.7 does exactly this).
            document_changes: edit.and_then(|e| e.document_changes).unwrap_or(false)
                || ops.is_some_and(|o| !o.is_empty()),
            show_document: caps
                .window
                .as_ref()
                .and_then(|w| w.show_document.as_ref())
                .is_some_and(|d| d.support),
            create_files: op(ResourceOperationKind::Create),
            delete_files: op(ResourceOperationKind::Delete),
        }
    }
}

/// A task the server follows: where its progress goes and where it stands.
#[derive(Debug)]
pub(crate) struct Tracked {
    pub(crate) intent: Intent,
    pub(crate) title: String,
    /// The progress token, when the client shows progress.
    pub(crate) token: Option<NumberOrString>,
    /// The task's state as last seen; waiters subscribe to it.
    pub(crate) state: watch::Sender<TaskState>,
}

/// An edit handed out on `codeAction/resolve`: what the open buffers must read once it is applied, so
/// `cadre.accepted` records an accept only for an edit the editor really applied.
#[derive(Debug, Clone)]
pub(crate) struct PendingEdit {
    pub(crate) round: u32,
    pub(crate) expected: Vec<(Url, String)>,
}

/// Settings of the server itself (not of the agents).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerOptions {
    /// How often a followed task's progress is polled.
    pub poll: Duration,
    /// How long after a `didSave` the saved files are re-indexed: saves within it (a "save all", an
    /// editor's format-on-save) are re-indexed together, once.
    pub reindex_debounce: Duration,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            poll: Duration::from_millis(200),
            reindex_debounce: Duration::from_millis(500),
        }
    }
}

/// The server's shared state.
pub(crate) struct State {
    pub(crate) client: Client,
    pub(crate) agents: Arc<dyn Agents>,
    pub(crate) documents: Mutex<Documents>,
    pub(crate) caps: Mutex<ClientCaps>,
    pub(crate) roots: Mutex<Vec<PathBuf>>,
    pub(crate) tasks: Mutex<HashMap<TaskId, Tracked>>,
    /// Published diagnostics: per file, per task.
    pub(crate) diagnostics: Mutex<HashMap<Url, HashMap<TaskId, Vec<Diagnostic>>>>,
    pub(crate) pending: Mutex<HashMap<TaskId, PendingEdit>>,
    pub(crate) poll: Mutex<Duration>,
    /// Turns true at `shutdown`: followers stop.
    pub(crate) stop: watch::Sender<bool>,
    /// Saved files waiting for their debounced re-index, per repository root; a root is present while
    /// its re-index task runs.
    pub(crate) saves: Mutex<HashMap<PathBuf, BTreeSet<String>>>,
    pub(crate) reindex_debounce: Duration,
}

impl State {
    pub(crate) fn new(client: Client, agents: Arc<dyn Agents>, options: ServerOptions) -> State {
        State {
            client,
            agents,
            documents: Mutex::new(Documents::default()),
            caps: Mutex::new(ClientCaps::default()),
            roots: Mutex::new(Vec::new()),
            tasks: Mutex::new(HashMap::new()),
            diagnostics: Mutex::new(HashMap::new()),
            pending: Mutex::new(HashMap::new()),
            poll: Mutex::new(options.poll),
            stop: watch::channel(false).0,
            saves: Mutex::new(HashMap::new()),
            reindex_debounce: options.reindex_debounce,
        }
    }

    pub(crate) fn caps(&self) -> ClientCaps {
        *lock(&self.caps)
    }

    /// The workspace root containing `path`, else the first root.
    pub(crate) fn root_for(&self, path: Option<&Path>) -> Option<PathBuf> {
        let roots = lock(&self.roots);
        path.and_then(|p| roots.iter().find(|r| p.starts_with(r)).cloned())
            .or_else(|| roots.first().cloned())
    }

    /// Records the task's latest state for waiters.
    pub(crate) fn set_state(&self, task: &TaskId, state: TaskState) {
        if let Some(t) = lock(&self.tasks).get(task) {
            t.state.send_replace(state);
        }
    }

    /// Replaces one task's diagnostics and returns the merged lists of every file that changed.
    pub(crate) fn set_diagnostics(
        &self,
        task: &TaskId,
        by_file: Vec<(Url, Diagnostic)>,
    ) -> Vec<(Url, Vec<Diagnostic>)> {
        let mut all = lock(&self.diagnostics);
        let mut touched: Vec<Url> =
            all.iter().filter(|(_, per)| per.contains_key(task)).map(|(u, _)| u.clone()).collect();
        for per in all.values_mut() {
            per.remove(task);
        }
        for (uri, diagnostic) in by_file {
            all.entry(uri.clone()).or_default().entry(task.clone()).or_default().push(diagnostic);
            if !touched.contains(&uri) {
                touched.push(uri);
            }
        }
        touched
            .into_iter()
            .map(|uri| {
                let merged = all.get(&uri).map(|per| per.values().flatten().cloned().collect());
                (uri, merged.unwrap_or_default())
            })
            .collect()
    }
}

/// The top-level directory of the git repository holding `path`, found by looking for `.git`.
pub(crate) fn repo_root(path: &Path) -> Option<PathBuf> {
    path.ancestors().skip(1).find(|dir| dir.join(".git").exists()).map(Path::to_path_buf)
}

/// `path` relative to `base`, `/`-separated, or the whole path when it is not inside.
pub(crate) fn relative(path: &Path, base: Option<&Path>) -> String {
    base.and_then(|b| path.strip_prefix(b).ok())
        .unwrap_or(path)
        .components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}
