//! `cadre acp`: the Agent Client Protocol agent on stdio, with the engine running in this process on
//! the embedded queue.
//!
//! [`AcpAgents`] implements `cadre_acp::Agents` by delegating to the LSP frontend's `LocalAgents`
//! (same store, queue, ledger, sandbox and in-process worker), so a task started from an ACP editor
//! is an ordinary task: `cadre status` lists it, a worker can finish it, and one queued when the
//! editor quits resumes when `cadre acp` (or a worker) next starts. stdout carries only the protocol.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use cadre_acp::{AgentsError, Proposal, ServerOptions, TaskSnapshot};
use cadre_domain::ports::workspace::WorkspaceError;
use cadre_domain::ports::Workspace;
use cadre_domain::{Plan, TaskId, TaskState};
use cadre_engine::EngineConfig;
use cadre_lsp::{Agents as _, Intent, TaskRequest};

use crate::cli::{ModelArgs, SandboxKind};
use crate::lsp::LocalAgents;
use crate::wiring::Home;

/// Serves ACP until the editor closes stdin, then stops the worker (queued work stays queued).
pub(crate) async fn acp(
    model: ModelArgs,
    config: EngineConfig,
    sandbox: SandboxKind,
    home: &Home,
) -> Result<ExitCode> {
    if config.concurrency == 0 {
        anyhow::bail!("--concurrency 0 would never run a task; use 1 or more");
    }
    let local = Arc::new(LocalAgents::open(model, config, sandbox, home)?);
    let options = ServerOptions {
        sessions_dir: Some(home.root.join("acp").join("sessions")),
        ..ServerOptions::default()
    };
    tracing::info!(home = %home.root.display(), "cadre acp serving on stdio");
    let served = cadre_acp::serve_stdio(Arc::new(AcpAgents(local.clone())), options).await;
    local.shutdown().await;
    served.context("cadre acp stopped")?;
    Ok(ExitCode::SUCCESS)
}

/// `cadre_acp::Agents` over `LocalAgents`: each call is the LSP frontend's, with its types mapped.
struct AcpAgents(Arc<LocalAgents>);

fn mapped(error: cadre_lsp::AgentsError) -> AgentsError {
    match error {
        cadre_lsp::AgentsError::Refused(m) => AgentsError::Refused(m),
        cadre_lsp::AgentsError::Unavailable(m) => AgentsError::Unavailable(m),
    }
}

#[cadre_acp::async_trait]
impl cadre_acp::Agents for AcpAgents {
    async fn check(&self) -> Vec<String> {
        self.0.check().await
    }

    async fn repository(&self, dir: &Path) -> Result<PathBuf, AgentsError> {
        match self.0.core.workspace.inspect(dir).await {
            Ok(repo) => Ok(repo.root),
            Err(e @ (WorkspaceError::NotARepository(_) | WorkspaceError::NoCommits(_))) => {
                Err(AgentsError::Refused(e.to_string()))
            }
            Err(e) => Err(AgentsError::Unavailable(e.to_string())),
        }
    }

    async fn start(&self, goal: String, repo: &Path) -> Result<TaskId, AgentsError> {
        // The LSP request names a file whose repository is the task's; any name in `repo` will do.
        let request = TaskRequest { intent: Intent::Plan, goal, file: repo.join(".cadre-acp") };
        self.0.start(request).await.map_err(mapped)
    }

    async fn snapshot(&self, task: &TaskId, after_seq: u64) -> Result<TaskSnapshot, AgentsError> {
        let s = self.0.snapshot(task, after_seq).await.map_err(mapped)?;
        Ok(TaskSnapshot {
            task: s.task,
            state: s.state,
            events: s.events,
            cost_micros: s.cost_micros,
        })
    }

    async fn cancel(
        &self,
        task: &TaskId,
        reason: Option<String>,
    ) -> Result<(TaskState, bool), AgentsError> {
        self.0.cancel(task, reason).await.map_err(mapped)
    }

    async fn plan(&self, task: &TaskId) -> Result<Option<Plan>, AgentsError> {
        self.0.plan(task).await.map_err(mapped)
    }

    async fn proposal(&self, task: &TaskId) -> Result<Proposal, AgentsError> {
        let p = self.0.proposal(task).await.map_err(mapped)?;
        Ok(Proposal { round: p.round, repo: p.repo, patch: p.patch })
    }

    async fn accept(&self, task: &TaskId, round: u32) -> Result<(), AgentsError> {
        self.0.accept(task, round).await.map_err(mapped)
    }

    async fn reject(&self, task: &TaskId, reason: Option<String>) -> Result<(), AgentsError> {
        self.0.reject(task, reason).await.map_err(mapped)
    }

    async fn resolve(&self, text: &str) -> Result<TaskId, AgentsError> {
        self.0.resolve(text).await.map_err(mapped)
    }

    async fn shutdown(&self) {
        self.0.shutdown().await;
    }
}
