//! The language server: protocol entry points, each handing off to a handler module.

use std::path::PathBuf;
use std::sync::Arc;

use cadre_domain::TaskState;
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncWrite};
use tower_lsp::jsonrpc::Result;
use tower_lsp::lsp_types::{
    CodeAction, CodeActionKind, CodeActionOptions, CodeActionParams, CodeActionProviderCapability,
    CodeActionResponse, DidChangeConfigurationParams, DidChangeTextDocumentParams,
    DidCloseTextDocumentParams, DidOpenTextDocumentParams, DidSaveTextDocumentParams,
    ExecuteCommandOptions, ExecuteCommandParams, InitializeParams, InitializeResult,
    InitializedParams, MessageType, SaveOptions, ServerCapabilities, ServerInfo,
    TextDocumentSyncCapability, TextDocumentSyncKind, TextDocumentSyncOptions,
    TextDocumentSyncSaveOptions, WorkDoneProgressCancelParams, WorkDoneProgressOptions,
    WorkspaceFoldersServerCapabilities, WorkspaceServerCapabilities,
};
use tower_lsp::{ClientSocket, LanguageServer, LspService};

use crate::agents::{Agents, Intent};
use crate::documents::Document;
use crate::handlers::{code_action, commands, progress, save};
use crate::settings::Settings;
use crate::state::{lock, ClientCaps, ServerOptions, State};

/// How many requests are handled at once. A `cadre.start` that waits for its task (client-created
/// progress) holds one slot until the task is ready, so this is well above the usual 4.
pub const CONCURRENCY: usize = 64;

/// Tasks listed at start to find the ones still running in the workspace.
const RESUMED_TASKS: usize = 50;

/// Cadre's language server.
pub struct Server {
    state: Arc<State>,
}

/// Builds the service and its client socket, for [`tower_lsp::Server`] or an in-process test.
#[must_use]
pub fn service(
    agents: Arc<dyn Agents>,
    options: ServerOptions,
) -> (LspService<Server>, ClientSocket) {
    LspService::build(|client| Server { state: Arc::new(State::new(client, agents, options)) })
        .custom_method("window/workDoneProgress/cancel", Server::work_done_progress_cancel)
        .finish()
}

/// Serves the protocol on `input` / `output` (the process's stdin and stdout in `cadre lsp`) until the
/// client sends `exit` or closes the stream.
pub async fn serve<I, O>(input: I, output: O, agents: Arc<dyn Agents>, options: ServerOptions)
where
    I: AsyncRead + Unpin,
    O: AsyncWrite + Unpin,
{
    let (service, socket) = service(agents, options);
    // The server reads and writes through in-memory pipes behind the framing guard.
    let (to_server, server_input) = tokio::io::duplex(1 << 16);
    let (server_output, from_server) = tokio::io::duplex(1 << 16);
    let (errors, error_frames) = tokio::sync::mpsc::unbounded_channel();
    let server = tower_lsp::Server::new(server_input, server_output, socket)
        .concurrency_level(CONCURRENCY)
        .serve(service);
    let output = crate::framing::merge_output(from_server, error_frames, output);
    let running = async {
        tokio::join!(server, output);
    };
    let reading = crate::framing::filter_input(input, to_server, errors);
    tokio::pin!(running, reading);
    tokio::select! {
        () = &mut running => {}
        // The client's input ended: the server sees the end of its input and stops by itself.
        () = &mut reading => running.await,
    }
}

/// Serves the protocol on this process's stdin and stdout (`cadre lsp`).
pub async fn serve_stdio(agents: Arc<dyn Agents>, options: ServerOptions) {
    serve(tokio::io::stdin(), tokio::io::stdout(), agents, options).await;
}

impl Server {
    /// `window/workDoneProgress/cancel`: the person cancelled a task's progress in the editor.
    async fn work_done_progress_cancel(&self, params: WorkDoneProgressCancelParams) {
        progress::cancel_by_token(&self.state, &params.token).await;
    }

    async fn apply_settings(&self, value: Option<&Value>) {
        let (settings, notes) = Settings::from_json(value);
        for key in &notes.dropped_secrets {
            tracing::warn!(key = %key, "a secret in the editor's settings was ignored");
            self.state
                .client
                .show_message(
                    MessageType::WARNING,
                    format!(
                        "Cadre ignored the setting `{key}`: secrets are never taken from editor \
                         settings; set GEMINI_API_KEY (or OPENAI_API_KEY) in the server's environment"
                    ),
                )
                .await;
        }
        if let Some(error) = notes.error {
            self.state.client.show_message(MessageType::WARNING, error).await;
        }
        if let Some(ms) = settings.poll_ms {
            *lock(&self.state.poll) = std::time::Duration::from_millis(ms.clamp(10, 10_000));
        }
        if let Err(error) = self.state.agents.configure(&settings).await {
            self.state.client.show_message(MessageType::ERROR, error.to_string()).await;
        }
    }

    /// Follows tasks left running in the workspace by an earlier session, so their progress and
    /// review show up again.
    async fn resume_following(&self) {
        let roots: Vec<PathBuf> = lock(&self.state.roots).clone();
        let tasks = match self.state.agents.list(RESUMED_TASKS).await {
            Ok(tasks) => tasks,
            Err(error) => {
                tracing::warn!(%error, "cannot list earlier tasks");
                return;
            }
        };
        for summary in tasks {
            let repo = PathBuf::from(&summary.task.repo);
            let mine = roots.iter().any(|r| r.starts_with(&repo) || repo.starts_with(r));
            if !mine || summary.state.is_terminal() {
                continue;
            }
            let first = summary.task.goal.lines().next().unwrap_or_default();
            let title = format!("Cadre: {}", first.chars().take(60).collect::<String>());
            let token = match summary.state {
                TaskState::AwaitingReview { .. } => None,
                _ => progress::create_token(&self.state, &summary.task.id).await,
            };
            progress::follow(&self.state, summary.task.id, Intent::Plan, title, token);
        }
    }
}

#[tower_lsp::async_trait]
impl LanguageServer for Server {
    async fn initialize(&self, params: InitializeParams) -> Result<InitializeResult> {
        *lock(&self.state.caps) = ClientCaps::read(&params.capabilities);
        let mut roots: Vec<PathBuf> = params
            .workspace_folders
            .iter()
            .flatten()
            .filter_map(|f| f.uri.to_file_path().ok())
            .collect();
        #[allow(deprecated)] // Older clients send only rootUri.
        if let Some(root) = params.root_uri.as_ref().and_then(|u| u.to_file_path().ok()) {
            if !roots.contains(&root) {
                roots.push(root);
            }
        }
        *lock(&self.state.roots) = roots;
        self.apply_settings(params.initialization_options.as_ref()).await;
        let code_actions = CodeActionOptions {
            code_action_kinds: Some(vec![
                CodeActionKind::QUICKFIX,
                code_action::refactor_kind(),
                code_action::source_kind(),
            ]),
            resolve_provider: Some(true),
            work_done_progress_options: WorkDoneProgressOptions::default(),
        };
        Ok(InitializeResult {
            capabilities: ServerCapabilities {
                text_document_sync: Some(TextDocumentSyncCapability::Options(
                    TextDocumentSyncOptions {
                        open_close: Some(true),
                        change: Some(TextDocumentSyncKind::INCREMENTAL),
                        save: Some(TextDocumentSyncSaveOptions::SaveOptions(SaveOptions {
                            include_text: Some(false),
                        })),
                        ..TextDocumentSyncOptions::default()
                    },
                )),
                code_action_provider: Some(CodeActionProviderCapability::Options(code_actions)),
                execute_command_provider: Some(ExecuteCommandOptions {
                    commands: commands::names::ALL.iter().map(|c| (*c).to_owned()).collect(),
                    work_done_progress_options: WorkDoneProgressOptions {
                        work_done_progress: Some(true),
                    },
                }),
                workspace: Some(WorkspaceServerCapabilities {
                    workspace_folders: Some(WorkspaceFoldersServerCapabilities {
                        supported: Some(true),
                        change_notifications: None,
                    }),
                    file_operations: None,
                }),
                ..ServerCapabilities::default()
            },
            server_info: Some(ServerInfo {
                name: "cadre-lsp".to_owned(),
                version: Some(env!("CARGO_PKG_VERSION").to_owned()),
            }),
        })
    }

    async fn initialized(&self, _: InitializedParams) {
        for problem in self.state.agents.check().await {
            self.state.client.show_message(MessageType::WARNING, problem).await;
        }
        self.resume_following().await;
    }

    async fn shutdown(&self) -> Result<()> {
        self.state.stop.send_replace(true);
        self.state.agents.shutdown().await;
        Ok(())
    }

    async fn did_open(&self, params: DidOpenTextDocumentParams) {
        let doc = params.text_document;
        lock(&self.state.documents)
            .open(doc.uri, Document::new(doc.version, doc.language_id, doc.text));
    }

    async fn did_change(&self, params: DidChangeTextDocumentParams) {
        let doc = params.text_document;
        lock(&self.state.documents).change(&doc.uri, doc.version, &params.content_changes);
    }

    async fn did_save(&self, params: DidSaveTextDocumentParams) {
        lock(&self.state.documents).saved(&params.text_document.uri);
        save::saved(&self.state, &params.text_document.uri);
    }

    async fn did_close(&self, params: DidCloseTextDocumentParams) {
        lock(&self.state.documents).close(&params.text_document.uri);
    }

    async fn did_change_configuration(&self, params: DidChangeConfigurationParams) {
        self.apply_settings(Some(&params.settings)).await;
    }

    async fn code_action(&self, params: CodeActionParams) -> Result<Option<CodeActionResponse>> {
        Ok(Some(code_action::code_actions(&self.state, &params)))
    }

    async fn code_action_resolve(&self, action: CodeAction) -> Result<CodeAction> {
        code_action::resolve(&self.state, action).await
    }

    async fn execute_command(&self, params: ExecuteCommandParams) -> Result<Option<Value>> {
        commands::execute(&self.state, params).await
    }
}
