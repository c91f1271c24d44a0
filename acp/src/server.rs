//! The ACP agent: one connection, its handlers, and the state they share.
//!
//! Handlers run inside the SDK's dispatch loop, which waits for each one, so none of them waits on
//! anything the client must answer: a prompt turn (which asks for permission and may read and write
//! files through the client) runs in a task spawned on the connection and answers its request when
//! the task it started stops.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use agent_client_protocol::v1::schema as acp;
use agent_client_protocol::v1::{ConnectionTo, Responder};
use agent_client_protocol::{Agent, Client, ErrorCode};
use tokio::io::{AsyncRead, AsyncWrite};

use crate::agents::{Agents, AgentsError};
use crate::prompt;
use crate::sessions::{Session, SessionBook};
use crate::transport;
use crate::updates::{message, Progress};

/// How the server behaves; the defaults suit an editor.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// How often a prompt turn looks for new events of its task.
    pub poll_interval: Duration,
    /// Where session records are kept for `session/load`; `None` keeps none (tasks can still be
    /// loaded by id).
    pub sessions_dir: Option<PathBuf>,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions { poll_interval: Duration::from_millis(150), sessions_dir: None }
    }
}

/// Why serving stopped early.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The connection failed (the transport broke, or the SDK gave up on it).
    #[error("the ACP connection failed: {0}")]
    Connection(String),
}

/// What the client said it can do in `initialize`.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ClientFs {
    pub(crate) read: bool,
    pub(crate) write: bool,
}

/// State shared by the handlers and the prompt turns of one connection.
pub(crate) struct Shared {
    pub(crate) agents: Arc<dyn Agents>,
    pub(crate) options: ServerOptions,
    pub(crate) book: SessionBook,
    client_fs: Mutex<ClientFs>,
    sessions: Mutex<HashMap<String, Arc<Session>>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    pub(crate) fn client_fs(&self) -> ClientFs {
        *lock(&self.client_fs)
    }

    fn session(&self, id: &acp::SessionId) -> Result<Arc<Session>, agent_client_protocol::Error> {
        lock(&self.sessions).get(id.0.as_ref()).cloned().ok_or_else(|| {
            invalid_params(format!(
                "unknown session {}; open one with session/new or session/load",
                id.0
            ))
        })
    }

    fn initialize(&self, request: &acp::InitializeRequest) -> acp::InitializeResponse {
        let fs = &request.client_capabilities.fs;
        *lock(&self.client_fs) = ClientFs { read: fs.read_text_file, write: fs.write_text_file };
        tracing::info!(
            client = request.client_info.as_ref().map_or("unknown", |i| i.name.as_str()),
            fs_read = fs.read_text_file,
            fs_write = fs.write_text_file,
            "acp client connected"
        );
        // Cadre reads text (and the text of resources) only: no image, no audio. It keeps every task,
        // so any earlier session can be loaded. It does not use MCP servers.
        let capabilities = acp::AgentCapabilities::new()
            .load_session(true)
            .prompt_capabilities(
                acp::PromptCapabilities::new().image(false).audio(false).embedded_context(true),
            )
            .mcp_capabilities(acp::McpCapabilities::new().http(false).sse(false));
        // Cadre speaks the stable protocol v1 only; a client asking for another version gets v1
        // and decides whether it can go on.
        acp::InitializeResponse::new(agent_client_protocol::schema::ProtocolVersion::V1)
            .agent_capabilities(capabilities)
            .agent_info(acp::Implementation::new("cadre", env!("CARGO_PKG_VERSION")).title("Cadre"))
    }

    /// Checks the working directory and opens a session on its repository.
    async fn new_session(
        &self,
        request: &acp::NewSessionRequest,
    ) -> Result<(Arc<Session>, Vec<String>), agent_client_protocol::Error> {
        let repo = self.repository(&request.cwd).await?;
        let id = format!("cadre-{}", uuid::Uuid::new_v4().simple());
        let session = Arc::new(Session::new(id.clone(), repo, Vec::new()));
        self.book.save(&id, &session.record()).await;
        lock(&self.sessions).insert(id, session.clone());
        let mut notes = self.agents.check().await;
        if !request.mcp_servers.is_empty() {
            let names: Vec<&str> = request.mcp_servers.iter().map(mcp_name).collect();
            tracing::info!(servers = ?names, "mcp servers offered by the client are ignored");
            notes.push(format!(
                "Cadre does not use MCP servers; ignored: {}. Its agents search, read, edit and test \
                 the repository with their own tools.",
                names.join(", ")
            ));
        }
        Ok((session, notes))
    }

    async fn repository(&self, cwd: &Path) -> Result<PathBuf, agent_client_protocol::Error> {
        if !cwd.is_absolute() {
            return Err(invalid_params(format!(
                "cwd {} is not an absolute path; open a folder in the editor first",
                cwd.display()
            )));
        }
        self.agents.repository(cwd).await.map_err(|e| match e {
            AgentsError::Refused(m) => invalid_params(format!(
                "{m}; Cadre works on a git repository with at least one commit (run `git init` and commit)"
            )),
            AgentsError::Unavailable(m) => internal(m),
        })
    }

    /// Opens a session kept by an earlier run (or a task named by its id) and replays its history.
    async fn load_session(
        &self,
        request: &acp::LoadSessionRequest,
        cx: &ConnectionTo<Client>,
    ) -> Result<(), agent_client_protocol::Error> {
        let id = request.session_id.0.to_string();
        let record = match self.book.load(&id).await {
            Some(record) => record,
            None => {
                let task = self.agents.resolve(&id).await.map_err(|e| {
                    invalid_params(format!(
                        "no session or task {id}: {e}; `cadre status` lists the tasks"
                    ))
                })?;
                let snapshot = self.agents.snapshot(&task, u64::MAX).await.map_err(agents_error)?;
                crate::sessions::SessionRecord {
                    repo: snapshot.task.repo.into(),
                    tasks: vec![task],
                }
            }
        };
        let session = Arc::new(Session::new(id.clone(), record.repo, record.tasks.clone()));
        for task in &record.tasks {
            let last = self.replay(&request.session_id, task, cx).await?;
            session.shown_seq.store(last, std::sync::atomic::Ordering::SeqCst);
        }
        lock(&self.sessions).insert(id, session);
        Ok(())
    }

    /// Sends one task's history as updates: the goal as the person's message, then its events.
    /// Returns the last event's position.
    async fn replay(
        &self,
        session: &acp::SessionId,
        task: &cadre_domain::TaskId,
        cx: &ConnectionTo<Client>,
    ) -> Result<u64, agent_client_protocol::Error> {
        let snapshot = self.agents.snapshot(task, 0).await.map_err(agents_error)?;
        let send =
            |update| cx.send_notification(acp::SessionNotification::new(session.clone(), update));
        send(acp::SessionUpdate::UserMessageChunk(acp::ContentChunk::new(
            acp::ContentBlock::from(snapshot.task.goal.clone()),
        )))?;
        let mut progress = Progress::new(&snapshot.task);
        let mut last = 0;
        for record in &snapshot.events {
            if matches!(record.event, cadre_domain::Event::PlanReady { .. }) {
                if let Ok(Some(plan)) = self.agents.plan(task).await {
                    progress.set_plan(&plan);
                }
            }
            for update in progress.on_event(record, None) {
                send(update)?;
            }
            last = record.seq;
        }
        send(message(format!(
            "Task {} is {}{}\n",
            task.short(),
            snapshot.state,
            progress.money(snapshot.cost_micros)
        )))?;
        Ok(last)
    }
}

fn mcp_name(server: &acp::McpServer) -> &str {
    match server {
        acp::McpServer::Http(s) => &s.name,
        acp::McpServer::Sse(s) => &s.name,
        acp::McpServer::Stdio(s) => &s.name,
        _ => "(unnamed)",
    }
}

pub(crate) fn invalid_params(message: String) -> agent_client_protocol::Error {
    agent_client_protocol::Error::new(ErrorCode::INVALID_PARAMS, message)
}

pub(crate) fn internal(message: String) -> agent_client_protocol::Error {
    agent_client_protocol::Error::new(ErrorCode::INTERNAL_ERROR, message)
}

/// A refused call is the request's fault (invalid params); an unavailable backend is ours.
pub(crate) fn agents_error(error: AgentsError) -> agent_client_protocol::Error {
    match error {
        AgentsError::Refused(m) => invalid_params(m),
        AgentsError::Unavailable(m) => internal(m),
    }
}

/// Serves ACP on stdin/stdout until the client closes stdin.
///
/// # Errors
/// [`ServeError::Connection`] when the connection fails.
pub async fn serve_stdio(
    agents: Arc<dyn Agents>,
    options: ServerOptions,
) -> Result<(), ServeError> {
    serve(agents, options, tokio::io::stdin(), tokio::io::stdout()).await
}

/// Serves ACP over a byte stream pair (newline-delimited JSON-RPC) until `input` ends.
///
/// # Errors
/// [`ServeError::Connection`] when the connection fails.
pub async fn serve<R, W>(
    agents: Arc<dyn Agents>,
    options: ServerOptions,
    input: R,
    output: W,
) -> Result<(), ServeError>
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let book = SessionBook::new(options.sessions_dir.clone());
    let shared = Arc::new(Shared {
        agents,
        options,
        book,
        client_fs: Mutex::new(ClientFs::default()),
        sessions: Mutex::new(HashMap::new()),
    });
    let (s1, s2, s3, s4, s5) =
        (shared.clone(), shared.clone(), shared.clone(), shared.clone(), shared.clone());
    Agent
        .v1()
        .name("cadre")
        .on_receive_request(
            async move |request: acp::InitializeRequest,
                        responder: Responder<acp::InitializeResponse>,
                        _cx: ConnectionTo<Client>| {
                responder.respond(s1.initialize(&request))
            },
            agent_client_protocol::on_receive_request!(),
        )
        .on_receive_request(
            async move |request: acp::NewSessionRequest,
                        responder: Responder<acp::NewSessionResponse>,
                        cx: ConnectionTo<Client>| {
                match s2.new_session(&request).await {
                    Ok((session, notes)) => {
                        let id = acp::SessionId::new(session.id.clone());
                        responder.respond(acp::NewSessionResponse::new(id.clone()))?;
                        for note in notes {
                            cx.send_notification(acp::SessionNotification::new(
                                id.clone(),
                                message(format!("{note}\n")),
                            ))?;
                        }
                        Ok(())
                    }
                    Err(error) => responder.respond_with_error(error),
                }
            },
            agent_client_protocol::on_receive_request!(),
        )
        .on_receive_request(
            async move |request: acp::LoadSessionRequest,
                        responder: Responder<acp::LoadSessionResponse>,
                        cx: ConnectionTo<Client>| {
                // The worker starts now, so a task queued when the editor last closed goes on.
                s3.agents.check().await;
                match s3.load_session(&request, &cx).await {
                    Ok(()) => responder.respond(acp::LoadSessionResponse::new()),
                    Err(error) => responder.respond_with_error(error),
                }
            },
            agent_client_protocol::on_receive_request!(),
        )
        .on_receive_request(
            async move |request: acp::PromptRequest,
                        responder: Responder<acp::PromptResponse>,
                        cx: ConnectionTo<Client>| {
                let session = match s4.session(&request.session_id) {
                    Ok(session) => session,
                    Err(error) => return responder.respond_with_error(error),
                };
                if !session.begin_turn() {
                    return responder.respond_with_error(invalid_params(format!(
                        "session {} is already running a prompt; wait for it or send session/cancel",
                        session.id
                    )));
                }
                let shared = s4.clone();
                let turn_cx = cx.clone();
                cx.spawn(async move {
                    let result = prompt::turn(&shared, &session, request, &turn_cx).await;
                    session.end_turn();
                    if let Err(error) = &result {
                        tracing::warn!(session = %session.id, error = %error.message, "prompt turn failed");
                    }
                    // The client may have gone; nothing else can be told.
                    let _ = responder.respond_with_result(result);
                    Ok(())
                })
            },
            agent_client_protocol::on_receive_request!(),
        )
        .on_receive_notification(
            async move |notification: acp::CancelNotification, _cx: ConnectionTo<Client>| {
                match s5.session(&notification.session_id) {
                    Ok(session) => session.cancel(),
                    Err(error) => tracing::debug!(error = %error.message, "cancel for an unknown session"),
                }
                Ok(())
            },
            agent_client_protocol::on_receive_notification!(),
        )
        .connect_to(transport::lines(input, output))
        .await
        .map_err(|e| ServeError::Connection(e.to_string()))
}
