//! `cadre lsp`: the language server on stdio, with the engine running in this process on the embedded
//! queue.
//!
//! [`LocalAgents`] implements `cadre_lsp::Agents` over the same store, queue, ledger and knowledge base
//! as the other commands, so a task started from the editor is an ordinary task: `cadre status` lists
//! it, `cadre serve-worker` can finish it, and one queued when the editor quits resumes the next time
//! `cadre lsp` (or a worker) starts. stdout carries only the protocol; logs go to stderr.

use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use anyhow::Result;
use cadre_domain::event::Event;
use cadre_domain::ports::knowledge::{
    IndexReport, IndexScope, KnowledgeBase, SearchFilter, SearchMode, SearchQuery, SearchResults,
};
use cadre_domain::ports::model::{ModelError, ModelReply, ModelRequest};
use cadre_domain::ports::store::{StoreError, TaskSummary};
use cadre_domain::ports::workspace::WorkspaceError;
use cadre_domain::ports::{Model, Sandbox, Workspace};
use cadre_domain::step::ArtifactName;
use cadre_domain::{Plan, Ports, Task, TaskId, TaskSettings, TaskState, TestReport};
use cadre_engine::{Engine, EngineConfig};
use cadre_knowledge::EmbeddedKnowledge;
use cadre_lsp::{
    Agents, AgentsError, Proposal, ServerOptions, Settings, TaskRequest, TaskSnapshot,
};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::cli::{ModelArgs, SandboxKind};
use crate::lsp_remote::{RemoteAgents, Routed};
use crate::wiring::{self, Core, Environment, Home};

/// How long `shutdown` waits for steps in flight before leaving them to be redelivered next start.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

/// Runs the server until the editor sends `exit` or closes stdin.
pub(crate) async fn lsp(
    model: ModelArgs,
    config: EngineConfig,
    sandbox: SandboxKind,
    home: &Home,
    remote: Option<String>,
    token: Option<cadre_api::ApiToken>,
) -> Result<ExitCode> {
    if config.concurrency == 0 {
        anyhow::bail!("--concurrency 0 would never run a task; use 1 or more");
    }
    let agents: Arc<dyn Agents> = match remote {
        // Tasks run on the deployment: no store, queue or worker in this process.
        Some(url) => {
            tracing::info!(remote = %url, "cadre lsp serving on stdio, tasks on a deployment");
            Arc::new(RemoteAgents::new(&url, token).map_err(|e| anyhow::anyhow!("{e}"))?)
        }
        None => {
            let local = Arc::new(LocalAgents::open(model, config, sandbox, home)?);
            tracing::info!(home = %home.root.display(), "cadre lsp serving on stdio");
            // The editor's `remote` setting may still send tasks to a deployment.
            Arc::new(Routed::new(local, token))
        }
    };
    cadre_lsp::serve_stdio(agents.clone(), ServerOptions::default()).await;
    // `exit` without `shutdown` (or a closed stdin) still stops the worker the same way.
    agents.shutdown().await;
    Ok(ExitCode::SUCCESS)
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A model that can be replaced while the engine runs, so `workspace/didChangeConfiguration` takes
/// effect for the next model call without restarting the worker.
struct SwitchModel(RwLock<Arc<dyn Model>>);

impl SwitchModel {
    fn current(&self) -> Arc<dyn Model> {
        self.0.read().unwrap_or_else(PoisonError::into_inner).clone()
    }
}

#[cadre_lsp::async_trait]
impl Model for SwitchModel {
    async fn complete(&self, request: &ModelRequest) -> Result<ModelReply, ModelError> {
        self.current().complete(request).await
    }

    async fn stream(
        &self,
        request: &ModelRequest,
        on_text: &(dyn for<'t> Fn(&'t str) + Send + Sync),
    ) -> Result<ModelReply, ModelError> {
        self.current().stream(request, on_text).await
    }

    async fn count_tokens(&self, request: &ModelRequest) -> Result<u64, ModelError> {
        self.current().count_tokens(request).await
    }

    fn describe(&self) -> String {
        self.current().describe()
    }
}

/// The engine worker while it runs.
struct Worker {
    stop: watch::Sender<bool>,
    handle: JoinHandle<()>,
}

/// `cadre_lsp::Agents` over this process's Core and an in-process engine worker.
pub(crate) struct LocalAgents {
    pub(crate) core: Core,
    home: Home,
    env: Environment,
    base_model: ModelArgs,
    config: EngineConfig,
    settings: Mutex<Settings>,
    /// The model behind the engine, once one could be built.
    model: Mutex<Option<Arc<SwitchModel>>>,
    /// Its endpoint, checked for reachability before a task starts.
    endpoint: Mutex<Option<String>>,
    /// Why no model could be built, shown to the person.
    model_problem: Mutex<Option<String>>,
    sandbox: std::result::Result<Arc<dyn Sandbox>, String>,
    worker: Mutex<Option<Worker>>,
    knowledge: Mutex<Option<Arc<EmbeddedKnowledge>>>,
    overlays: AtomicU64,
}

impl LocalAgents {
    pub(crate) fn open(
        base_model: ModelArgs,
        config: EngineConfig,
        sandbox: SandboxKind,
        home: &Home,
    ) -> Result<LocalAgents> {
        let core = Core::open(home)?;
        // The server keeps the environment for rebuilding the model when the editor's settings change;
        // it is read through wiring, as everywhere.
        let env = Environment::read();
        let sandbox = wiring::sandbox(sandbox, home, &env).map_err(|e| format!("{e:#}"));
        let agents = LocalAgents {
            core,
            home: home.clone(),
            env,
            base_model,
            config,
            settings: Mutex::new(Settings::default()),
            model: Mutex::new(None),
            endpoint: Mutex::new(None),
            model_problem: Mutex::new(None),
            sandbox,
            worker: Mutex::new(None),
            knowledge: Mutex::new(None),
            overlays: AtomicU64::new(0),
        };
        // The command line's model, until the editor's settings say otherwise.
        if let Err(problem) = agents.build_model(&Settings::default()) {
            *lock(&agents.model_problem) = Some(problem);
        }
        Ok(agents)
    }

    /// The model arguments the settings ask for.
    fn model_args(&self, settings: &Settings) -> std::result::Result<ModelArgs, String> {
        let mut args = self.base_model.clone();
        if let Some(model) = &settings.model {
            args.model.clone_from(model);
        }
        if let Some(endpoint) = &settings.endpoint {
            let Some(rest) = args.model.strip_prefix("openai:") else {
                return Err(format!(
                    "the endpoint setting ({endpoint}) applies to `openai:MODEL@URL` models; a Gemini \
                     endpoint comes from CADRE_GEMINI_BASE_URL in the server's environment"
                ));
            };
            let name = rest.split("@http").next().unwrap_or(rest);
            args.model = format!("openai:{name}@{endpoint}");
        }
        if let Some(budget) = settings.budget_usd {
            args.budget_usd = budget;
        }
        Ok(args)
    }

    /// Builds the model for `settings` and swaps it in; starts the worker the first time.
    fn build_model(&self, settings: &Settings) -> std::result::Result<(), String> {
        let args = self.model_args(settings)?;
        let (model, endpoint) =
            wiring::model(&args, &self.env, &self.core).map_err(|e| format!("{e:#}"))?;
        let mut slot = lock(&self.model);
        match slot.as_ref() {
            Some(switch) => *switch.0.write().unwrap_or_else(PoisonError::into_inner) = model,
            None => *slot = Some(Arc::new(SwitchModel(RwLock::new(model)))),
        }
        *lock(&self.endpoint) = endpoint;
        *lock(&self.model_problem) = None;
        Ok(())
    }

    /// Starts the engine worker once a model and a sandbox are there; a no-op when it runs already.
    /// Tasks queued by an earlier session are re-published first, so none waits for a lost message.
    fn ensure_worker(&self) -> std::result::Result<(), AgentsError> {
        let mut worker = lock(&self.worker);
        if worker.is_some() {
            return Ok(());
        }
        let model = lock(&self.model).clone().ok_or_else(|| {
            AgentsError::Refused(
                lock(&self.model_problem)
                    .clone()
                    .unwrap_or_else(|| "no model is configured".into()),
            )
        })?;
        let sandbox = self.sandbox.clone().map_err(AgentsError::Refused)?;
        let ports: Ports = self.core.ports(model, sandbox);
        let engine = Engine::new(ports, self.config);
        let (stop, stopped) = watch::channel(false);
        let store = self.core.store.clone();
        let queue = self.core.queue.clone();
        let handle = tokio::spawn(async move {
            resume_unfinished(store.as_ref(), queue.as_ref()).await;
            engine.run(stopped).await;
        });
        *worker = Some(Worker { stop, handle });
        Ok(())
    }

    fn knowledge(&self) -> std::result::Result<Arc<EmbeddedKnowledge>, AgentsError> {
        let mut slot = lock(&self.knowledge);
        if let Some(kb) = slot.as_ref() {
            return Ok(kb.clone());
        }
        let dir = self.home.root.join("knowledge");
        let kb = EmbeddedKnowledge::open(&dir).map_err(|e| {
            AgentsError::Unavailable(format!(
                "cannot open the knowledge base in {}: {e}",
                dir.display()
            ))
        })?;
        let kb = Arc::new(kb);
        *slot = Some(kb.clone());
        Ok(kb)
    }

    async fn summary(&self, task: &TaskId) -> std::result::Result<TaskSummary, AgentsError> {
        self.core.store.task(task).await.map_err(store_error)
    }

    async fn artifact<T: serde::de::DeserializeOwned>(
        &self,
        task: &TaskId,
        name: &ArtifactName,
    ) -> std::result::Result<Option<T>, AgentsError> {
        let Some(bytes) = self.core.store.artifact(task, name).await.map_err(store_error)? else {
            return Ok(None);
        };
        serde_json::from_slice(&bytes).map(Some).map_err(|e| {
            AgentsError::Unavailable(format!(
                "the stored {name} of task {} is corrupt: {e}",
                task.short()
            ))
        })
    }

    /// Indexes unsaved buffers: written under Cadre's data directory (never into the repository),
    /// indexed as those paths of the repository, then removed.
    async fn index_overlays(
        &self,
        kb: &EmbeddedKnowledge,
        key: &cadre_domain::ports::knowledge::RepoKey,
        overlays: &[(String, String)],
    ) -> std::result::Result<Option<IndexReport>, AgentsError> {
        if overlays.is_empty() {
            return Ok(None);
        }
        let n = self.overlays.fetch_add(1, Ordering::Relaxed);
        let dir = self.home.root.join("lsp").join(format!("overlay-{}-{n}", std::process::id()));
        let write = async {
            for (path, text) in overlays {
                let file = dir.join(path);
                if let Some(parent) = file.parent() {
                    tokio::fs::create_dir_all(parent).await?;
                }
                tokio::fs::write(&file, text).await?;
            }
            std::io::Result::Ok(())
        };
        let written = write.await;
        let report = match written {
            Ok(()) => {
                kb.index(
                    key,
                    &dir,
                    IndexScope::Paths(overlays.iter().map(|(p, _)| p.clone()).collect()),
                )
                .await
                .map_err(|e| AgentsError::Refused(format!("cannot index the unsaved buffers: {e}")))
            }
            Err(e) => Err(AgentsError::Unavailable(format!(
                "cannot stage unsaved buffers in {}: {e}",
                dir.display()
            ))),
        };
        let _ = tokio::fs::remove_dir_all(&dir).await;
        report.map(Some)
    }
}

/// Re-publishes the next message of every unfinished task (safe: a message still queued has the same
/// id and is not duplicated), so work interrupted when the last session quit goes on.
async fn resume_unfinished(
    store: &dyn cadre_domain::ports::StateStore,
    queue: &dyn cadre_domain::ports::Queue,
) {
    let tasks = match store.list_tasks(200).await {
        Ok(tasks) => tasks,
        Err(error) => {
            tracing::warn!(%error, "cannot list tasks to resume");
            return;
        }
    };
    for summary in tasks.iter().filter(|t| !t.state.is_terminal()) {
        if let Err(error) = cadre_engine::resume(store, queue, &summary.task.id).await {
            tracing::warn!(%error, task = %summary.task.id, "cannot resume a task");
        }
    }
}

fn store_error(error: StoreError) -> AgentsError {
    match error {
        StoreError::TaskNotFound(_) | StoreError::AmbiguousPrefix { .. } => {
            AgentsError::Refused(error.to_string())
        }
        other => AgentsError::Unavailable(other.to_string()),
    }
}

fn engine_error(error: cadre_engine::EngineError) -> AgentsError {
    match error {
        cadre_engine::EngineError::Store(e) => store_error(e),
        other => AgentsError::Unavailable(other.to_string()),
    }
}

#[cadre_lsp::async_trait]
impl Agents for LocalAgents {
    async fn check(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if let Some(problem) = lock(&self.model_problem).clone() {
            problems.push(format!("Cadre cannot run tasks yet: {problem}"));
        }
        if let Err(problem) = &self.sandbox {
            problems.push(format!("Cadre cannot run tests: {problem}"));
        }
        if problems.is_empty() {
            // Work queued by an earlier session goes on now.
            if let Err(error) = self.ensure_worker() {
                problems.push(error.to_string());
            }
        }
        problems
    }

    async fn configure(&self, settings: &Settings) -> std::result::Result<(), AgentsError> {
        if let Some(budget) = settings.budget_usd {
            if !budget.is_finite() || budget <= 0.0 {
                return Err(AgentsError::Refused(format!(
                    "budgetUsd {budget} is not a positive amount of dollars; give e.g. 2.5"
                )));
            }
        }
        let model_changed = settings.model.is_some()
            || settings.endpoint.is_some()
            || settings.budget_usd.is_some();
        if model_changed {
            self.build_model(settings).map_err(|problem| {
                *lock(&self.model_problem) = Some(problem.clone());
                AgentsError::Refused(format!("Cadre kept its previous model: {problem}"))
            })?;
        }
        *lock(&self.settings) = settings.clone();
        tracing::info!(
            model = settings.model.as_deref().unwrap_or("(command line)"),
            endpoint_set = settings.endpoint.is_some(),
            budget_usd = settings.budget_usd,
            "editor settings applied"
        );
        Ok(())
    }

    async fn start(&self, request: TaskRequest) -> std::result::Result<TaskId, AgentsError> {
        self.ensure_worker()?;
        let endpoint = lock(&self.endpoint).clone();
        if let Some(endpoint) = endpoint {
            wiring::check_reachable(&endpoint)
                .await
                .map_err(|e| AgentsError::Refused(format!("{e:#}")))?;
        }
        let dir = request.file.parent().unwrap_or(Path::new("/"));
        let repo = self.core.workspace.inspect(dir).await.map_err(|e| match e {
            WorkspaceError::NotARepository(_) | WorkspaceError::NoCommits(_) => {
                AgentsError::Refused(e.to_string())
            }
            other => AgentsError::Unavailable(other.to_string()),
        })?;
        let settings = lock(&self.settings).clone();
        let task = Task {
            id: TaskId::generate(),
            repo: repo.root.display().to_string(),
            goal: request.goal,
            base_commit: repo.head,
            settings: TaskSettings {
                max_rounds: settings.max_rounds.unwrap_or(3).max(1),
                test_command: settings.test_command.clone(),
                // Dollars to micro-dollars; `configure` only accepts positive, finite budgets.
                #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                budget_micros: settings.budget_usd.map(|usd| (usd * 1_000_000.0).round() as u64),
                ..TaskSettings::default()
            },
            created_at: self.core.clock.now(),
        };
        let model = lock(&self.model)
            .clone()
            .ok_or_else(|| AgentsError::Refused("no model is configured".into()))?;
        let sandbox = self.sandbox.clone().map_err(AgentsError::Refused)?;
        let ports = self.core.ports(model, sandbox);
        cadre_engine::submit(&ports, &task).await.map_err(engine_error)?;
        tracing::info!(task = %task.id, intent = request.intent.name(), "task started from the editor");
        Ok(task.id)
    }

    async fn snapshot(
        &self,
        task: &TaskId,
        after_seq: u64,
    ) -> std::result::Result<TaskSnapshot, AgentsError> {
        let summary = self.summary(task).await?;
        let events = if after_seq == u64::MAX {
            Vec::new()
        } else {
            self.core.store.events_after(task, after_seq).await.map_err(store_error)?
        };
        let cost_micros = self.core.ledger.task_spend_micros(task).await.ok();
        Ok(TaskSnapshot { task: summary.task, state: summary.state, events, cost_micros })
    }

    async fn cancel(
        &self,
        task: &TaskId,
        reason: Option<String>,
    ) -> std::result::Result<(TaskState, bool), AgentsError> {
        cadre_engine::cancel(self.core.store.as_ref(), self.core.clock.as_ref(), task, reason)
            .await
            .map_err(engine_error)
    }

    async fn plan(&self, task: &TaskId) -> std::result::Result<Option<Plan>, AgentsError> {
        self.artifact(task, &ArtifactName::plan()).await
    }

    async fn report(
        &self,
        task: &TaskId,
        round: u32,
    ) -> std::result::Result<Option<TestReport>, AgentsError> {
        self.artifact(task, &ArtifactName::report(round)).await
    }

    async fn proposal(&self, task: &TaskId) -> std::result::Result<Proposal, AgentsError> {
        let summary = self.summary(task).await?;
        let TaskState::AwaitingReview { round } = summary.state else {
            return Err(AgentsError::Refused(format!(
                "task {} is {}, not awaiting review; only a proposed change can be applied",
                task.short(),
                summary.state
            )));
        };
        let patch = self
            .core
            .store
            .artifact(task, &ArtifactName::patch(round))
            .await
            .map_err(store_error)?
            .ok_or_else(|| {
                AgentsError::Unavailable(format!(
                    "task {} has no stored patch for round {round}",
                    task.short()
                ))
            })?;
        let patch = String::from_utf8(patch).map_err(|_| {
            AgentsError::Unavailable(format!(
                "the stored patch of task {} is not UTF-8",
                task.short()
            ))
        })?;
        Ok(Proposal {
            round,
            repo: summary.task.repo.clone().into(),
            patch,
            plan: self.plan(task).await?,
            report: self.report(task, round).await?,
        })
    }

    async fn accept(&self, task: &TaskId, round: u32) -> std::result::Result<(), AgentsError> {
        let summary = self.summary(task).await?;
        if summary.state != (TaskState::AwaitingReview { round }) {
            return Err(AgentsError::Refused(format!(
                "task {} is {}, not awaiting review of round {round}; nothing was recorded",
                task.short(),
                summary.state
            )));
        }
        let (state, done) = self
            .core
            .store
            .append(
                task,
                vec![Event::Applied { round }],
                self.core.clock.now(),
                Some(|s| matches!(s, TaskState::AwaitingReview { .. })),
            )
            .await
            .map_err(store_error)?;
        if !done {
            return Err(AgentsError::Refused(format!(
                "task {} became {state} meanwhile; the accept was not recorded",
                task.short()
            )));
        }
        Ok(())
    }

    async fn reject(
        &self,
        task: &TaskId,
        reason: Option<String>,
    ) -> std::result::Result<(), AgentsError> {
        let (state, done) = self
            .core
            .store
            .append(
                task,
                vec![Event::Rejected { reason }],
                self.core.clock.now(),
                Some(|s| matches!(s, TaskState::AwaitingReview { .. })),
            )
            .await
            .map_err(store_error)?;
        if !done {
            return Err(AgentsError::Refused(format!(
                "task {} is {state}, not awaiting review; to stop a running task use cadre.cancel",
                task.short()
            )));
        }
        Ok(())
    }

    async fn list(&self, limit: usize) -> std::result::Result<Vec<TaskSummary>, AgentsError> {
        self.core.store.list_tasks(limit).await.map_err(store_error)
    }

    async fn resolve(&self, text: &str) -> std::result::Result<TaskId, AgentsError> {
        self.core.store.resolve_prefix(text.trim()).await.map_err(store_error)
    }

    async fn search(
        &self,
        root: &Path,
        query: &str,
        limit: usize,
    ) -> std::result::Result<SearchResults, AgentsError> {
        let kb = self.knowledge()?;
        let key =
            EmbeddedKnowledge::repo_key(root).map_err(|e| AgentsError::Refused(e.to_string()))?;
        let query = SearchQuery {
            text: query.to_owned(),
            limit,
            mode: SearchMode::Hybrid,
            filter: SearchFilter::default(),
        };
        kb.search(&key, &query).await.map_err(|e| AgentsError::Refused(e.to_string()))
    }

    async fn reindex(
        &self,
        root: &Path,
        overlays: &[(String, String)],
    ) -> std::result::Result<IndexReport, AgentsError> {
        let kb = self.knowledge()?;
        let key =
            EmbeddedKnowledge::repo_key(root).map_err(|e| AgentsError::Refused(e.to_string()))?;
        let mut report = kb.index(&key, root, IndexScope::Changed).await.map_err(|e| {
            AgentsError::Refused(format!("indexing {} failed: {e}", root.display()))
        })?;
        if let Some(unsaved) = self.index_overlays(&kb, &key, overlays).await? {
            report.files_indexed += unsaved.files_indexed;
            report.lines += unsaved.lines;
            report.totals = unsaved.totals;
            report.elapsed_ms += unsaved.elapsed_ms;
        }
        Ok(report)
    }

    async fn reindex_files(
        &self,
        root: &Path,
        paths: &[String],
    ) -> std::result::Result<IndexReport, AgentsError> {
        let kb = self.knowledge()?;
        let key =
            EmbeddedKnowledge::repo_key(root).map_err(|e| AgentsError::Refused(e.to_string()))?;
        kb.index(&key, root, IndexScope::Paths(paths.to_vec())).await.map_err(|e| {
            AgentsError::Refused(format!(
                "re-indexing saved files of {} failed: {e}",
                root.display()
            ))
        })
    }

    async fn shutdown(&self) {
        let Some(worker) = lock(&self.worker).take() else { return };
        worker.stop.send_replace(true);
        let mut handle = worker.handle;
        if tokio::time::timeout(SHUTDOWN_GRACE, &mut handle).await.is_err() {
            // Steps still running are left to their visibility timeout: the queue hands their
            // messages out again, to this server's next start or to any worker.
            tracing::info!("steps still running at shutdown stay queued and resume next start");
            handle.abort();
        }
    }
}
