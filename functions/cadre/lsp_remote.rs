//! `cadre lsp --remote URL`: the language server's [`Agents`] over a deployment's task API
//! ([`ApiClient`]) instead of an engine in this process; and [`Routed`], which lets the editor's
//! `remote` setting (`initializationOptions` / `didChangeConfiguration`) switch a local server to a
//! deployment.
//!
//! The token comes from `CADRE_API_TOKEN` in the server's environment, never from editor settings
//! (the settings reader drops a `token` key), and is never logged. Progress is followed with the
//! API's events long-poll, so a waiting editor costs one held request per task, not a poll storm.
//! Search and re-index stay with a local knowledge base: the deployment does not serve them yet.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use cadre_api::wire::{CreateSettings, CreateTask};
use cadre_api::{ApiClient, ApiError, ApiToken};
use cadre_domain::ports::knowledge::{IndexReport, SearchResults};
use cadre_domain::ports::store::TaskSummary;
use cadre_domain::{Plan, Task, TaskId, TaskState, TestReport};
use cadre_lsp::{Agents, AgentsError, Proposal, Settings, TaskRequest, TaskSnapshot};

/// How long one events request may be held by the API while the task is quiet.
const FOLLOW_WAIT: Duration = Duration::from_secs(10);

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn agents_error(error: ApiError) -> AgentsError {
    if error.is_retryable() {
        AgentsError::Unavailable(error.to_string())
    } else {
        AgentsError::Refused(error.to_string())
    }
}

fn task_id(text: &str) -> Result<TaskId, AgentsError> {
    TaskId::parse(text)
        .map_err(|e| AgentsError::Refused(format!("the deployment sent task id {text}: {e}")))
}

/// `cadre_lsp::Agents` over a deployment's task API.
pub(crate) struct RemoteAgents {
    client: ApiClient,
    /// Why the client cannot be used (no token), shown by `check` and returned by every call.
    problem: Option<String>,
    settings: Mutex<Settings>,
    /// Tasks as created: they never change, so following one needs only its events.
    tasks: Mutex<HashMap<TaskId, Task>>,
}

impl RemoteAgents {
    /// Agents for the API at `url`; without a token every call is refused with how to set one.
    pub(crate) fn new(url: &str, token: Option<ApiToken>) -> Result<RemoteAgents, AgentsError> {
        let problem = token.is_none().then(|| {
            format!("CADRE_API_TOKEN is not set; export your team's API token for {url} in the editor's environment")
        });
        let client = ApiClient::new(url, token.unwrap_or_else(|| ApiToken::new("")))
            .map_err(|e| AgentsError::Refused(e.to_string()))?;
        Ok(RemoteAgents {
            client,
            problem,
            settings: Mutex::new(Settings::default()),
            tasks: Mutex::new(HashMap::new()),
        })
    }

    fn ready(&self) -> Result<&ApiClient, AgentsError> {
        match &self.problem {
            Some(problem) => Err(AgentsError::Refused(problem.clone())),
            None => Ok(&self.client),
        }
    }

    async fn task(&self, id: &TaskId) -> Result<Task, AgentsError> {
        if let Some(task) = lock(&self.tasks).get(id) {
            return Ok(task.clone());
        }
        let view = self.ready()?.task(id.as_str()).await.map_err(agents_error)?;
        lock(&self.tasks).insert(id.clone(), view.task.clone());
        Ok(view.task)
    }
}

/// The top-level directory of the git repository holding `path`.
fn repo_root(path: &Path) -> Option<PathBuf> {
    path.ancestors().skip(1).find(|dir| dir.join(".git").exists()).map(Path::to_path_buf)
}

#[cadre_lsp::async_trait]
impl Agents for RemoteAgents {
    async fn check(&self) -> Vec<String> {
        let client = match self.ready() {
            Ok(client) => client,
            Err(problem) => return vec![format!("Cadre cannot reach its deployment: {problem}")],
        };
        match client.list(1).await {
            Ok(_) => Vec::new(),
            Err(error) => {
                vec![format!("Cadre cannot use the deployment at {}: {error}", client.base_url())]
            }
        }
    }

    async fn configure(&self, settings: &Settings) -> Result<(), AgentsError> {
        if let Some(budget) = settings.budget_usd {
            if !budget.is_finite() || budget <= 0.0 {
                return Err(AgentsError::Refused(format!(
                    "budgetUsd {budget} is not a positive amount of dollars; give e.g. 2.5"
                )));
            }
        }
        if settings.model.is_some() || settings.endpoint.is_some() {
            tracing::info!(
                "model and endpoint settings are the deployment's own; ignored in remote mode"
            );
        }
        *lock(&self.settings) = settings.clone();
        Ok(())
    }

    async fn start(&self, request: TaskRequest) -> Result<TaskId, AgentsError> {
        let client = self.ready()?;
        let repository = repo_root(&request.file).ok_or_else(|| {
            AgentsError::Refused(format!(
                "{} is not in a git repository; Cadre works on a checkout the deployment can read",
                request.file.display()
            ))
        })?;
        let settings = lock(&self.settings).clone();
        let create = CreateTask {
            goal: request.goal,
            repository: repository.display().to_string(),
            settings: CreateSettings {
                budget_usd: settings.budget_usd,
                rounds: settings.max_rounds,
                test_command: settings.test_command,
                ..CreateSettings::default()
            },
        };
        let view = client.create(&create).await.map_err(agents_error)?;
        tracing::info!(task = %view.task.id, intent = request.intent.name(), "task started on the deployment");
        let id = view.task.id.clone();
        lock(&self.tasks).insert(id.clone(), view.task);
        Ok(id)
    }

    async fn snapshot(&self, id: &TaskId, after_seq: u64) -> Result<TaskSnapshot, AgentsError> {
        let client = self.ready()?;
        let task = self.task(id).await?;
        if after_seq == u64::MAX {
            let view = client.task(id.as_str()).await.map_err(agents_error)?;
            return Ok(TaskSnapshot {
                task,
                state: view.state,
                events: Vec::new(),
                cost_micros: view.cost_micros,
            });
        }
        // A follower asks again as soon as this answers: the API holds it while nothing happens.
        let wait = if after_seq == 0 { Duration::ZERO } else { FOLLOW_WAIT };
        let page = client.events(id.as_str(), after_seq, wait).await.map_err(agents_error)?;
        Ok(TaskSnapshot {
            task,
            state: page.state,
            events: page.events,
            cost_micros: page.cost_micros,
        })
    }

    async fn cancel(
        &self,
        id: &TaskId,
        reason: Option<String>,
    ) -> Result<(TaskState, bool), AgentsError> {
        let decision = self.ready()?.cancel(id.as_str(), reason).await.map_err(agents_error)?;
        Ok((decision.state, decision.changed))
    }

    async fn plan(&self, id: &TaskId) -> Result<Option<Plan>, AgentsError> {
        self.ready()?.plan(id.as_str()).await.map_err(agents_error)
    }

    async fn report(&self, id: &TaskId, round: u32) -> Result<Option<TestReport>, AgentsError> {
        self.ready()?.report(id.as_str(), round).await.map_err(agents_error)
    }

    async fn proposal(&self, id: &TaskId) -> Result<Proposal, AgentsError> {
        let p = self.ready()?.proposal(id.as_str()).await.map_err(agents_error)?;
        Ok(Proposal {
            round: p.round,
            repo: PathBuf::from(p.repository),
            patch: p.patch,
            plan: p.plan,
            report: p.report,
        })
    }

    async fn accept(&self, id: &TaskId, round: u32) -> Result<(), AgentsError> {
        self.ready()?.accept(id.as_str(), round).await.map(drop).map_err(agents_error)
    }

    async fn reject(&self, id: &TaskId, reason: Option<String>) -> Result<(), AgentsError> {
        self.ready()?.reject(id.as_str(), reason).await.map(drop).map_err(agents_error)
    }

    async fn list(&self, limit: usize) -> Result<Vec<TaskSummary>, AgentsError> {
        let list = self.ready()?.list(limit).await.map_err(agents_error)?;
        Ok(list
            .tasks
            .into_iter()
            .map(|v| TaskSummary { task: v.task, state: v.state, updated_at: v.updated_at })
            .collect())
    }

    async fn resolve(&self, text: &str) -> Result<TaskId, AgentsError> {
        let view = self.ready()?.task(text).await.map_err(agents_error)?;
        task_id(view.task.id.as_str())
    }

    async fn search(
        &self,
        root: &Path,
        _query: &str,
        _limit: usize,
    ) -> Result<SearchResults, AgentsError> {
        Err(AgentsError::Refused(format!(
            "searching {} is not available through a remote deployment yet; run `cadre search` locally",
            root.display()
        )))
    }

    async fn reindex(
        &self,
        root: &Path,
        _overlays: &[(String, String)],
    ) -> Result<IndexReport, AgentsError> {
        Err(AgentsError::Refused(format!(
            "re-indexing {} is not available through a remote deployment yet; the deployment indexes each task's base commit itself",
            root.display()
        )))
    }

    async fn reindex_files(
        &self,
        root: &Path,
        _paths: &[String],
    ) -> Result<IndexReport, AgentsError> {
        self.reindex(root, &[]).await
    }

    async fn shutdown(&self) {}
}

/// A local server that the editor's `remote` setting can point at a deployment: calls go to the
/// local agents until a `remote` URL is configured, then to that deployment.
pub(crate) struct Routed {
    local: Arc<dyn Agents>,
    token: Option<ApiToken>,
    remote: RwLock<Option<(String, Arc<RemoteAgents>)>>,
}

impl Routed {
    pub(crate) fn new(local: Arc<dyn Agents>, token: Option<ApiToken>) -> Routed {
        Routed { local, token, remote: RwLock::new(None) }
    }

    fn current(&self) -> Arc<dyn Agents> {
        match &*self.remote.read().unwrap_or_else(PoisonError::into_inner) {
            Some((_, remote)) => remote.clone(),
            None => self.local.clone(),
        }
    }
}

#[cadre_lsp::async_trait]
impl Agents for Routed {
    async fn check(&self) -> Vec<String> {
        self.current().check().await
    }

    async fn configure(&self, settings: &Settings) -> Result<(), AgentsError> {
        let wanted = settings.remote.as_deref().map(str::trim).filter(|u| !u.is_empty());
        let now = self
            .remote
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .map(|(u, _)| u.clone());
        if wanted != now.as_deref() {
            let next = match wanted {
                Some(url) => {
                    Some((url.to_owned(), Arc::new(RemoteAgents::new(url, self.token.clone())?)))
                }
                None => None,
            };
            tracing::info!(remote = wanted.unwrap_or("(local)"), "editor chose where tasks run");
            *self.remote.write().unwrap_or_else(PoisonError::into_inner) = next;
        }
        self.current().configure(settings).await
    }

    async fn start(&self, request: TaskRequest) -> Result<TaskId, AgentsError> {
        self.current().start(request).await
    }

    async fn snapshot(&self, task: &TaskId, after_seq: u64) -> Result<TaskSnapshot, AgentsError> {
        self.current().snapshot(task, after_seq).await
    }

    async fn cancel(
        &self,
        task: &TaskId,
        reason: Option<String>,
    ) -> Result<(TaskState, bool), AgentsError> {
        self.current().cancel(task, reason).await
    }

    async fn plan(&self, task: &TaskId) -> Result<Option<Plan>, AgentsError> {
        self.current().plan(task).await
    }

    async fn report(&self, task: &TaskId, round: u32) -> Result<Option<TestReport>, AgentsError> {
        self.current().report(task, round).await
    }

    async fn proposal(&self, task: &TaskId) -> Result<Proposal, AgentsError> {
        self.current().proposal(task).await
    }

    async fn accept(&self, task: &TaskId, round: u32) -> Result<(), AgentsError> {
        self.current().accept(task, round).await
    }

    async fn reject(&self, task: &TaskId, reason: Option<String>) -> Result<(), AgentsError> {
        self.current().reject(task, reason).await
    }

    async fn list(&self, limit: usize) -> Result<Vec<TaskSummary>, AgentsError> {
        self.current().list(limit).await
    }

    async fn resolve(&self, text: &str) -> Result<TaskId, AgentsError> {
        self.current().resolve(text).await
    }

    async fn search(
        &self,
        root: &Path,
        query: &str,
        limit: usize,
    ) -> Result<SearchResults, AgentsError> {
        // The knowledge base is local either way.
        self.local.search(root, query, limit).await
    }

    async fn reindex(
        &self,
        root: &Path,
        overlays: &[(String, String)],
    ) -> Result<IndexReport, AgentsError> {
        self.local.reindex(root, overlays).await
    }

    async fn reindex_files(
        &self,
        root: &Path,
        paths: &[String],
    ) -> Result<IndexReport, AgentsError> {
        self.local.reindex_files(root, paths).await
    }

    async fn shutdown(&self) {
        self.local.shutdown().await;
    }
}
