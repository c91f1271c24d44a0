//! Commands that run the pipeline in this process on the embedded queue: `task` and `serve-worker`.

use anyhow::{bail, Context, Result};
use cadre_domain::ports::Model;
use cadre_domain::{Task, TaskId, TaskSettings, TaskState};
use cadre_engine::{Engine, EngineConfig};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

use crate::cli::{ModelArgs, SandboxKind, TaskArgs};
use crate::out;
use crate::wiring::{self, Core, Environment, Home};

/// How often progress is polled from the store.
const FOLLOW_POLL: Duration = Duration::from_millis(50);

pub(crate) async fn task(
    args: TaskArgs,
    config: EngineConfig,
    sandbox: SandboxKind,
    home: &Home,
    env: &Environment,
) -> Result<ExitCode> {
    let goal = args.goal.trim();
    if goal.is_empty() {
        bail!("the goal is empty; say what you want done, e.g. cadre task --repo . \"make test_add pass\"");
    }
    if args.max_rounds == 0 {
        bail!("--max-rounds 0 leaves no round to generate a change; use 1 or more");
    }
    if args.candidates == 0 || args.candidates > cadre_domain::MAX_CANDIDATES {
        bail!(
            "--candidates {} is not possible; use 1 to {} (each candidate is a whole generate→test loop on the task's one budget)",
            args.candidates,
            cadre_domain::MAX_CANDIDATES
        );
    }
    let thinking = cadre_domain::StepThinking::default()
        .with(&args.thinking)
        .map_err(|problem| anyhow::anyhow!("--thinking: {problem}"))?;
    let core = Core::open_with_embeddings(home, env)?;
    let repo = cadre_domain::ports::Workspace::inspect(core.workspace.as_ref(), &args.repo).await?;
    if !repo.dirty.is_empty() && !args.allow_dirty {
        let shown: Vec<&str> = repo.dirty.iter().take(5).map(String::as_str).collect();
        let more = if repo.dirty.len() > 5 {
            format!(" and {} more", repo.dirty.len() - 5)
        } else {
            String::new()
        };
        bail!(
            "{} has uncommitted changes ({}{more}); Cadre works from the last commit and would not see them: \
             commit or stash them, or pass --allow-dirty to work from HEAD anyway",
            repo.root.display(),
            shown.join(", ")
        );
    }
    let (model, endpoint) = wiring::model(&args.model, env, &core)?;
    let unpriced = wiring::unpriced_note(&args.model)?;
    if !args.detach {
        if let Some(endpoint) = &endpoint {
            wiring::check_reachable(endpoint).await?;
        }
    }
    let task = Task {
        id: TaskId::generate(),
        repo: repo.root.display().to_string(),
        goal: goal.to_owned(),
        base_commit: repo.head.clone(),
        settings: TaskSettings {
            max_rounds: args.max_rounds,
            test_command: args.test_cmd.clone(),
            test_timeout_secs: args.test_timeout,
            harness: args.harness.into(),
            scan: args.scan.into(),
            team: args.team.clone(),
            budget_micros: Some(wiring::usd_to_micros(args.model.budget_usd, "--budget-usd")?),
            candidates: args.candidates,
            thinking,
        },
        created_at: core.clock.now(),
    };
    let sandbox = wiring::sandbox(sandbox, home, env)?;
    let ports = core.ports(model.clone(), sandbox);
    cadre_engine::submit(&ports, &task).await.context("cannot queue the task")?;
    out::line(format!(
        "task {} on {} at {} ({})",
        task.id,
        task.repo,
        &repo.head.as_str()[..12],
        model.describe()
    ));
    if let Some(note) = unpriced {
        out::line(note);
    }
    if args.detach {
        out::line(format!(
            "queued; run `cadre serve-worker` to work on it, and `cadre status {}` to follow it",
            task.id.short()
        ));
        return Ok(ExitCode::SUCCESS);
    }
    let engine = Engine::new(ports, config);
    let (stop, stopped) = watch::channel(false);
    let worker = tokio::spawn({
        let engine = engine.clone();
        async move { engine.run(stopped).await }
    });
    let outcome = follow(&core, &task.id).await;
    let _ = stop.send(true);
    if worker.await.is_err() {
        tracing::warn!("the worker stopped abnormally");
    }
    finish(&task.id, outcome?)
}

/// Prints the task's log as it grows, until it awaits review or ends. Ctrl-C stops following; the task
/// stays queued and resumes with `cadre serve-worker`.
async fn follow(core: &Core, task: &TaskId) -> Result<Option<TaskState>> {
    let mut seen = 0u64;
    let interrupted = tokio::signal::ctrl_c();
    tokio::pin!(interrupted);
    loop {
        let records = core.store.events_after(task, seen).await?;
        if !records.is_empty() {
            // The running cost with each new line, from the ledger every call is written to.
            let spent = core.ledger.task_spend_micros(task).await.unwrap_or(0);
            for record in records {
                seen = record.seq;
                if !matches!(record.event, cadre_domain::Event::Created { .. }) {
                    out::line(format!(
                        "  [${:.4}] {}",
                        cadre_domain::event::micros_to_usd(spent),
                        record.event.describe()
                    ));
                }
            }
        }
        let state = core.store.task(task).await?.state;
        if state.is_terminal()
            || matches!(state, TaskState::AwaitingReview { .. } | TaskState::BudgetExhausted { .. })
        {
            return Ok(Some(state));
        }
        tokio::select! {
            () = tokio::time::sleep(FOLLOW_POLL) => {}
            _ = &mut interrupted => return Ok(None),
        }
    }
}

fn finish(task: &TaskId, state: Option<TaskState>) -> Result<ExitCode> {
    let short = task.short();
    match state {
        Some(TaskState::AwaitingReview { .. }) => {
            out::line(format!(
                "ready for review: `cadre show {short}`, then `cadre apply {short}` or `cadre reject {short}`"
            ));
            Ok(ExitCode::SUCCESS)
        }
        Some(state @ TaskState::BudgetExhausted { .. }) => {
            out::line(format!(
                "task stopped: {state}; everything is kept. Continue with `cadre resume {short} --budget-usd N` and `cadre serve-worker`"
            ));
            Ok(ExitCode::from(3))
        }
        Some(state) => {
            out::line(format!("task ended {state}; details: `cadre status {short}`"));
            Ok(ExitCode::from(1))
        }
        None => {
            out::line(format!(
                "stopped following; the task stays queued: run `cadre serve-worker` to continue it, `cadre status {short}` to see it"
            ));
            Ok(ExitCode::from(130))
        }
    }
}

/// What a worker of a deployment shares with the others instead of the home's embedded adapters:
/// `--bus sqs://…` and `--state dynamodb://…` (see aws.rs).
#[derive(Default)]
pub(crate) struct Shared {
    pub(crate) queue: Option<Arc<dyn cadre_domain::ports::Queue>>,
    pub(crate) state: Option<crate::aws::SharedState>,
}

pub(crate) async fn serve_worker(
    model_args: &ModelArgs,
    until_idle: bool,
    config: EngineConfig,
    sandbox: SandboxKind,
    home: &Home,
    env: &Environment,
    shared: Shared,
) -> Result<ExitCode> {
    if config.concurrency == 0 {
        bail!("--concurrency 0 would never take a message; use 1 or more");
    }
    let mut core = Core::open_with_embeddings(home, env)?;
    if let Some(queue) = shared.queue {
        core.queue = queue;
    }
    if let Some(state) = shared.state {
        state.apply(&mut core);
    }
    let (model, _endpoint): (Arc<dyn Model>, _) = wiring::model(model_args, env, &core)?;
    tracing::info!(model = %model.describe(), home = %home.root.display(), "worker starting");
    let sandbox = wiring::sandbox(sandbox, home, env)?;
    let engine = Engine::new(core.ports(model, sandbox), config);
    let (stop, stopped) = watch::channel(false);
    let worker = tokio::spawn({
        let engine = engine.clone();
        async move { engine.run(stopped).await }
    });
    let interrupted = shutdown_signal();
    tokio::pin!(interrupted);
    let mut idle_checks = 0;
    loop {
        tokio::select! {
            () = &mut interrupted => break,
            () = tokio::time::sleep(Duration::from_millis(100)) => {}
        }
        if until_idle {
            let depth = core.queue.depth().await?;
            idle_checks = if depth.ready == 0 && depth.pending == 0 { idle_checks + 1 } else { 0 };
            if idle_checks >= 2 {
                break;
            }
        }
    }
    tracing::info!("worker stopping; finishing messages in flight");
    let _ = stop.send(true);
    if worker.await.is_err() {
        bail!("the worker stopped abnormally");
    }
    Ok(ExitCode::SUCCESS)
}

/// Ctrl-C, or SIGTERM as sent by service managers and Cloud Run.
async fn shutdown_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(term) => term,
        Err(error) => {
            tracing::warn!(%error, "cannot listen for SIGTERM; only Ctrl-C stops the worker");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
