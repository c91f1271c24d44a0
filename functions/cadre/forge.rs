//! `cadre pr` and `cadre serve-webhooks`: Cadre's side of a team's forge (GitHub or GitLab).
//!
//! `pr` pushes a task's change to its branch (`cadre/<id>-<slug>`) as one commit explaining it, and
//! opens or updates the pull request. `serve-webhooks` turns a labelled issue or a `/cadre …` comment
//! into a queued task (a `cadre serve-worker` runs it); a review on a Cadre pull request is recorded as
//! a follow-up, because the engine cannot yet add a round to a task that awaits review or ended.
//!
//! Tokens and secrets come from the environment only (read once in `wiring.rs`), never from flags,
//! which every user of the machine can see.

use anyhow::{bail, Context, Result};
use cadre_domain::event::Event;
use cadre_domain::ports::forge::{ChangeRequest, Forge, PushRequest};
use cadre_domain::ports::{Clock, Workspace};
use cadre_domain::step::ArtifactName;
use cadre_domain::{Harness, Plan, ScanLevel, Task, TaskId, TaskSettings, TaskState, TestReport};
use cadre_forge::async_trait;
use cadre_forge::webhook::{
    DeliveryLog, StartError, Started, TaskStarter, Trigger, TriggerEvent, WebhookConfig, Webhooks,
};
use cadre_forge::{
    GitHubConfig, GitHubForge, GitIdentity, GitLabConfig, GitLabForge, GitRemote, Secret,
};
use clap::{Args, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use crate::out;
use crate::wiring::{self, Core, Environment, Home};

/// What the forge commands read from the environment (secrets redacted in `Debug`).
#[derive(Debug, Default)]
pub(crate) struct ForgeEnv {
    /// `CADRE_FORGE_TOKEN`, the token for either forge.
    token: Option<Secret>,
    /// `GITHUB_TOKEN`.
    github_token: Option<Secret>,
    /// `GITLAB_TOKEN`.
    gitlab_token: Option<Secret>,
    /// `CADRE_GITHUB_WEBHOOK_SECRET`.
    github_webhook_secret: Option<Secret>,
    /// `CADRE_GITLAB_WEBHOOK_TOKEN`.
    gitlab_webhook_token: Option<Secret>,
    /// `CADRE_GIT_AUTHOR` (`Name <email>`).
    git_author: Option<String>,
    /// `CADRE_GIT_COMMITTER` (`Name <email>`; the author when absent).
    git_committer: Option<String>,
}

impl ForgeEnv {
    pub(crate) fn read(var: &dyn Fn(&str) -> Option<String>) -> Self {
        let secret = |name: &'static str| var(name).and_then(|v| Secret::new(v, name).ok());
        ForgeEnv {
            token: secret("CADRE_FORGE_TOKEN"),
            github_token: secret("GITHUB_TOKEN"),
            gitlab_token: secret("GITLAB_TOKEN"),
            github_webhook_secret: secret("CADRE_GITHUB_WEBHOOK_SECRET"),
            gitlab_webhook_token: secret("CADRE_GITLAB_WEBHOOK_TOKEN"),
            git_author: var("CADRE_GIT_AUTHOR"),
            git_committer: var("CADRE_GIT_COMMITTER"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum ForgeKindArg {
    Github,
    Gitlab,
}

/// Which forge and repository (`cadre pr`).
#[derive(Debug, Args)]
pub(crate) struct ForgeArgs {
    /// The forge: `github` or `gitlab`.
    #[arg(long, env = "CADRE_FORGE", value_enum)]
    forge: ForgeKindArg,
    /// The repository on the forge: `owner/name` (GitHub) or `group/…/project` (GitLab). The token
    /// comes from CADRE_FORGE_TOKEN, or GITHUB_TOKEN / GITLAB_TOKEN.
    #[arg(long = "forge-repo", env = "CADRE_FORGE_REPO")]
    repository: String,
    /// The REST API's base URL [default: https://api.github.com, https://gitlab.com/api/v4].
    #[arg(long, env = "CADRE_FORGE_API_URL")]
    api_url: Option<String>,
    /// The HTTPS URL branches are pushed to [default: the repository on github.com / gitlab.com].
    #[arg(long, env = "CADRE_FORGE_GIT_URL")]
    git_url: Option<String>,
}

/// `cadre pr TASK`.
#[derive(Debug, Args)]
pub(crate) struct PrArgs {
    /// A task id or unique prefix; its latest round's change is pushed.
    task: String,
    /// The branch the pull request proposes the change into.
    #[arg(long, default_value = "main")]
    target: String,
    #[command(flatten)]
    forge: ForgeArgs,
}

/// `cadre serve-webhooks`.
#[derive(Debug, Args)]
pub(crate) struct ServeWebhooksArgs {
    /// Where to listen, e.g. 0.0.0.0:8090 (port 0 picks a free one; the address is printed).
    #[arg(long, default_value = "127.0.0.1:8090")]
    listen: String,
    /// A repository tasks may be started on, as FORGE_NAME=LOCAL_PATH (e.g. octo/widgets=/src/widgets);
    /// repeat for more. Events from other repositories are ignored.
    #[arg(long = "repo", value_name = "NAME=PATH", required = true)]
    repos: Vec<String>,
    /// The issue label that starts a task.
    #[arg(long, default_value = "cadre")]
    label: String,
    /// Hours a delivery id is remembered (and the oldest event accepted).
    #[arg(long, default_value_t = 72)]
    replay_window_hours: u64,
    /// Generate→test rounds of the tasks started.
    #[arg(long, default_value_t = 3)]
    max_rounds: u32,
    /// Most a started task may spend on model calls, in USD.
    #[arg(long, env = "CADRE_TASK_BUDGET_USD", default_value_t = 2.0)]
    budget_usd: f64,
}

fn identity(text: Option<&str>) -> Result<Option<GitIdentity>> {
    text.map(GitIdentity::parse).transpose().map_err(Into::into)
}

/// The forge the flags and environment describe.
fn build_forge(args: &ForgeArgs, env: &ForgeEnv, core: &Core) -> Result<Arc<dyn Forge>> {
    let author = identity(env.git_author.as_deref())?;
    let committer = identity(env.git_committer.as_deref())?.or_else(|| author.clone());
    let configure = |remote: &mut GitRemote| {
        if let Some(url) = &args.git_url {
            remote.url.clone_from(url);
        }
        if let Some(a) = &author {
            remote.author = a.clone();
        }
        if let Some(c) = &committer {
            remote.committer = c.clone();
        }
    };
    let clock: Arc<dyn Clock> = core.clock.clone();
    Ok(match args.forge {
        ForgeKindArg::Github => {
            let Some(token) = env.token.clone().or_else(|| env.github_token.clone()) else {
                bail!("no GitHub token; export CADRE_FORGE_TOKEN or GITHUB_TOKEN (contents and pull-requests write)");
            };
            let mut config = GitHubConfig::new(&args.repository, token)?;
            if let Some(url) = &args.api_url {
                config.api_url.clone_from(url);
            }
            configure(&mut config.remote);
            Arc::new(GitHubForge::new(config, clock)?)
        }
        ForgeKindArg::Gitlab => {
            let Some(token) = env.token.clone().or_else(|| env.gitlab_token.clone()) else {
                bail!("no GitLab token; export CADRE_FORGE_TOKEN or GITLAB_TOKEN (api scope)");
            };
            let mut config = GitLabConfig::new(&args.repository, token)?;
            if let Some(url) = &args.api_url {
                config.api_url.clone_from(url);
            }
            configure(&mut config.remote);
            Arc::new(GitLabForge::new(config, clock)?)
        }
    })
}

async fn artifact<T: serde::de::DeserializeOwned>(
    core: &Core,
    id: &TaskId,
    name: &ArtifactName,
) -> Result<Option<T>> {
    match core.store.artifact(id, name).await? {
        Some(bytes) => Ok(Some(
            serde_json::from_slice(&bytes)
                .with_context(|| format!("the stored {name:?} is corrupt"))?,
        )),
        None => Ok(None),
    }
}

pub(crate) async fn pr(args: PrArgs, home: &Home, env: &Environment) -> Result<ExitCode> {
    let core = Core::open(home)?;
    let id = core.store.resolve_prefix(args.task.trim()).await?;
    let summary = core.store.task(&id).await?;
    if !matches!(summary.state, TaskState::AwaitingReview { .. } | TaskState::Applied) {
        bail!(
            "task {} is {}; only a change awaiting review or applied can become a pull request",
            id.short(),
            summary.state
        );
    }
    let events = core.store.events(&id).await?;
    let Some(round) = events.iter().rev().find_map(|r| match r.event {
        Event::PatchReady { round, .. } => Some(round),
        _ => None,
    }) else {
        bail!("task {} has no proposed change", id.short());
    };
    let patch =
        core.store.artifact(&id, &ArtifactName::patch(round)).await?.with_context(|| {
            format!("task {} has no stored patch for round {round}", id.short())
        })?;
    let patch = String::from_utf8(patch).context("the stored patch is not UTF-8")?;
    if patch.trim().is_empty() {
        bail!("task {}'s change is empty; there is nothing to propose", id.short());
    }
    let plan: Option<Plan> = artifact(&core, &id, &ArtifactName::plan()).await?;
    let report: Option<TestReport> = artifact(&core, &id, &ArtifactName::report(round)).await?;
    let forge = build_forge(&args.forge, &env.forge, &core)?;
    let task = &summary.task;
    let branch = cadre_forge::branch_name(&id, &task.goal);
    let repo = PathBuf::from(&task.repo);
    let worktree = core
        .workspace
        .checkout(&repo, &task.base_commit, Some(&patch), &format!("pr-{}", id.short()))
        .await
        .context("cannot rebuild the task's change in a worktree")?;
    let pushed = forge
        .push_branch(&PushRequest {
            worktree: worktree.path.clone(),
            base: task.base_commit.clone(),
            branch: branch.clone(),
            message: cadre_forge::commit_message(task, plan.as_ref(), report.as_ref()),
        })
        .await;
    if let Err(error) = core.workspace.remove(&worktree).await {
        tracing::warn!(%error, "cannot remove the pull request's worktree");
    }
    let pushed = pushed.with_context(|| format!("cannot push branch {branch}"))?;
    out::line(format!(
        "pushed round {round} of task {} to {branch} ({})",
        id.short(),
        pushed.commit
    ));
    let request = forge
        .open_or_update(&ChangeRequest {
            branch,
            target: args.target,
            title: cadre_forge::request_title(&task.goal),
            body: cadre_forge::request_body(task, plan.as_ref(), &patch, report.as_ref()),
        })
        .await
        .context("the branch is pushed, but the pull request could not be opened or updated")?;
    if !request.created {
        // An update changes the description silently; a comment tells the reviewers a round arrived.
        let tests = match &report {
            Some(r) if r.passed => format!("`{}` passed", r.command),
            Some(r) => format!("`{}` failed", r.command),
            None => "no tests were run".to_owned(),
        };
        let note = format!("Cadre pushed round {round} ({}): {tests}.", pushed.commit);
        if let Err(error) = forge.comment(request.number, &note).await {
            tracing::warn!(%error, "cannot comment on the updated pull request");
        }
    }
    let verb = if request.created { "opened" } else { "updated" };
    out::line(format!("{verb} pull request #{}: {}", request.number, request.url));
    Ok(ExitCode::SUCCESS)
}

/// Turns triggers into queued tasks on the repositories this receiver serves.
struct Starter {
    core: Core,
    repos: Vec<(String, PathBuf)>,
    deliveries: DeliveryLog,
    settings: TaskSettings,
}

impl Starter {
    /// The task whose branch this is (`cadre/<first 8>-<last 6>-<slug>`, see `branch_name`): the
    /// prefix alone may name several tasks started the same minute, the tail tells them apart.
    async fn task_of_branch(&self, branch: &str) -> Option<String> {
        let mut parts = branch.strip_prefix("cadre/")?.split('-');
        let (short, tail) = (parts.next()?, parts.next()?);
        if let Ok(id) = self.core.store.resolve_prefix(short).await {
            let id = id.to_string();
            return id.ends_with(tail).then_some(id);
        }
        let tasks = self.core.store.list_tasks(10_000).await.ok()?;
        tasks
            .into_iter()
            .map(|summary| summary.task.id.to_string())
            .find(|id| id.starts_with(short) && id.ends_with(tail))
    }

    async fn queue(
        &self,
        event: &TriggerEvent,
        repo: &std::path::Path,
        goal: String,
    ) -> Result<Started, StartError> {
        let fail = |e: &dyn std::fmt::Display| StartError(e.to_string());
        let status = self.core.workspace.inspect(repo).await.map_err(|e| fail(&e))?;
        let task = Task {
            id: TaskId::generate(),
            repo: status.root.display().to_string(),
            goal,
            base_commit: status.head,
            settings: self.settings.clone(),
            created_at: self.core.clock.now(),
        };
        self.core.store.create_task(&task).await.map_err(|e| fail(&e))?;
        cadre_engine::resume(self.core.store.as_ref(), self.core.queue.as_ref(), &task.id)
            .await
            .map_err(|e| fail(&e))?;
        tracing::info!(task = %task.id, repository = %event.repository, delivery = %event.delivery, "task started from the forge");
        Ok(Started::Task { id: task.id.to_string() })
    }
}

#[async_trait]
impl TaskStarter for Starter {
    async fn start(&self, event: &TriggerEvent) -> Result<Started, StartError> {
        let Some((_, repo)) =
            self.repos.iter().find(|(name, _)| name.eq_ignore_ascii_case(&event.repository))
        else {
            return Ok(Started::Ignored {
                reason: format!(
                    "repository {} is not served here; add --repo {}=PATH",
                    event.repository, event.repository
                ),
            });
        };
        let source = format!(
            "{} #{} in {}",
            event.forge.name(),
            trigger_number(&event.trigger),
            event.repository
        );
        let origin = |by: Option<&str>| match by {
            Some(author) => format!("(from {source}, asked by {author})"),
            None => format!("(from {source})"),
        };
        let parts: Vec<String> = match &event.trigger {
            Trigger::Labeled { title, body, .. } => vec![title.clone(), body.clone(), origin(None)],
            Trigger::Command { text, title, body, author, .. } if text.is_empty() => {
                vec![title.clone(), body.clone(), origin(Some(author))]
            }
            Trigger::Command { text, title, body, author, .. } => {
                vec![text.clone(), format!("Context: {title}"), body.clone(), origin(Some(author))]
            }
            Trigger::Review { branch, .. } => {
                let task = self.task_of_branch(branch).await;
                self.deliveries
                    .record_follow_up(event, task.as_deref(), self.core.clock.now())
                    .await
                    .map_err(|e| StartError(e.to_string()))?;
                tracing::warn!(branch = %branch, "review recorded; follow-up rounds on a finished task are not supported yet");
                return Ok(Started::FollowUpRecorded { task });
            }
        };
        let goal: Vec<&str> = parts.iter().map(|p| p.trim()).filter(|p| !p.is_empty()).collect();
        let goal = goal.join("\n\n");
        self.queue(event, repo, goal).await
    }
}

fn trigger_number(trigger: &Trigger) -> u64 {
    match trigger {
        Trigger::Labeled { number, .. }
        | Trigger::Command { number, .. }
        | Trigger::Review { number, .. } => *number,
    }
}

pub(crate) async fn serve_webhooks(
    args: ServeWebhooksArgs,
    home: &Home,
    env: &Environment,
) -> Result<ExitCode> {
    let forge_env = &env.forge;
    if forge_env.github_webhook_secret.is_none() && forge_env.gitlab_webhook_token.is_none() {
        bail!("no webhook secret; export CADRE_GITHUB_WEBHOOK_SECRET and/or CADRE_GITLAB_WEBHOOK_TOKEN (the secret set on the forge's webhook)");
    }
    let mut repos = Vec::new();
    for spec in &args.repos {
        let Some((name, path)) = spec.split_once('=') else {
            bail!("--repo {spec} is not NAME=PATH; give e.g. --repo octo/widgets=/src/widgets");
        };
        repos.push((name.trim().to_owned(), PathBuf::from(path.trim())));
    }
    let core = Core::open(home)?;
    for (name, path) in &repos {
        core.workspace
            .inspect(path)
            .await
            .with_context(|| format!("--repo {name}={}", path.display()))?;
    }
    let db = home.database();
    let deliveries = DeliveryLog::open(&db)
        .with_context(|| format!("cannot open the webhook delivery log in {}", db.display()))?;
    let mut config = WebhookConfig::new(
        forge_env.github_webhook_secret.clone(),
        forge_env.gitlab_webhook_token.clone(),
    );
    config.label = args.label;
    config.replay_window = Duration::from_secs(args.replay_window_hours.saturating_mul(3600));
    // Settings this command has no flag for keep their defaults, including ones added later.
    #[allow(clippy::needless_update)]
    let settings = TaskSettings {
        max_rounds: args.max_rounds.max(1),
        test_command: None,
        test_timeout_secs: 600,
        harness: Harness::EditBlocks,
        scan: ScanLevel::Secrets,
        team: None,
        budget_micros: Some(wiring::usd_to_micros(args.budget_usd, "--budget-usd")?),
        ..TaskSettings::default()
    };
    let clock = core.clock.clone();
    let starter = Arc::new(Starter { core, repos, deliveries: deliveries.clone(), settings });
    let listener = tokio::net::TcpListener::bind(&args.listen).await.with_context(|| {
        format!("cannot listen on {}; pick another address with --listen", args.listen)
    })?;
    let addr = listener.local_addr().context("cannot read the listening address")?;
    out::line(format!("listening on http://{addr} (POST /github, POST /gitlab)"));
    tracing::info!(%addr, "webhook receiver starting");
    let webhooks = Webhooks { config, deliveries, starter, clock };
    cadre_forge::webhook::serve(listener, webhooks, shutdown())
        .await
        .context("the webhook server failed")?;
    Ok(ExitCode::SUCCESS)
}

/// Ctrl-C, or SIGTERM as sent by service managers.
async fn shutdown() {
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
