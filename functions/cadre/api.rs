//! `cadre serve-api`: the authenticated task API (`cadre-api`) over the same store and queue the
//! workers use, so an editor (`cadre lsp --remote URL`) or the CLI can use a deployment.
//!
//! Locally the API serves the embedded home (`$CADRE_HOME/cadre.db`) while `cadre serve-worker` runs
//! the tasks; on Cloud Run (`--backend gcp`) it builds the Firestore store, usage ledger and Pub/Sub
//! queue exactly as `cadre serve-push` does, so a task it creates is pushed to the step services.
//! Repositories are paths the API can read; a git URL is refused as not supported yet.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use cadre_api::{ApiConfig, ApiPorts, Tokens};
use cadre_domain::ports::clock::SystemClock;
use cadre_domain::ports::Clock;
use cadre_gcp::{
    CloudStorage, FirestoreConfig, FirestoreStore, FirestoreUsageLedger, GoogleAuth, PubSubConfig,
    PubSubQueue, StorageConfig, DEFAULT_BLOB_THRESHOLD,
};
use cadre_vcs::GitWorkspace;
use clap::{Args, ValueEnum};

use crate::wiring::{self, Core, Home};

/// `cadre serve-api` flags; each has the environment variable the Terraform module sets.
#[derive(Debug, Args)]
pub(crate) struct ServeApiArgs {
    /// The address to listen on [default: 0.0.0.0:$PORT when PORT is set (Cloud Run), else
    /// 127.0.0.1:8080].
    #[arg(long, env = "CADRE_API_LISTEN")]
    listen: Option<String>,
    /// The port Cloud Run gives the service.
    #[arg(long, env = "PORT", hide = true)]
    port: Option<u16>,
    /// Team tokens as SHA-256 digests: `team:hexdigest`, comma-separated (a digest is
    /// `printf %s TOKEN | sha256sum`); tokens themselves are never configured.
    #[arg(long, env = "CADRE_API_TOKENS", hide_env_values = true)]
    tokens: Option<String>,
    /// A file of `team:hexdigest` lines, instead of or besides --tokens (a mounted secret).
    #[arg(long, env = "CADRE_API_TOKENS_FILE")]
    tokens_file: Option<PathBuf>,
    /// The budget of a task created without one, in USD.
    #[arg(long, env = "CADRE_TASK_BUDGET_USD", default_value_t = 2.0)]
    budget_usd: f64,
    /// Most one team may spend on model calls per UTC day, in USD: new tasks are refused past it
    /// (the gateway stops running ones at the same limit).
    #[arg(long, env = "CADRE_TEAM_DAILY_BUDGET_USD")]
    team_daily_budget_usd: Option<f64>,
    /// Where tasks live: the embedded home, or Firestore + Pub/Sub (`gcp`, as `serve-push`).
    #[arg(long, env = "CADRE_API_BACKEND", value_enum, default_value_t = Backend::Embedded)]
    backend: Backend,
    /// With `--backend gcp`: the Google Cloud project.
    #[arg(long, env = "GOOGLE_CLOUD_PROJECT")]
    project: Option<String>,
    /// With `--backend gcp`: the team's Firestore database.
    #[arg(long, env = "CADRE_FIRESTORE_DATABASE", default_value = "(default)")]
    database: String,
    /// With `--backend gcp`: the team's topic prefix (`{prefix}{step}`).
    #[arg(long, env = "CADRE_TOPIC_PREFIX")]
    topic_prefix: Option<String>,
    /// With `--backend gcp`: the bucket of large artifacts.
    #[arg(long, env = "CADRE_GCS_BUCKET")]
    gcs_bucket: Option<String>,
    /// Use the Pub/Sub emulator at HOST:PORT.
    #[arg(long, env = "PUBSUB_EMULATOR_HOST")]
    pubsub_emulator: Option<String>,
    /// Use the Firestore emulator at HOST:PORT.
    #[arg(long, env = "FIRESTORE_EMULATOR_HOST")]
    firestore_emulator: Option<String>,
    /// Cloud Storage's JSON API at this URL instead of Google's.
    #[arg(long, env = "CADRE_GCS_URL")]
    gcs_url: Option<String>,
    /// The metadata server that hands out access tokens.
    #[arg(long, env = "GCE_METADATA_HOST")]
    metadata_host: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Backend {
    Embedded,
    Gcp,
}

fn tokens(args: &ServeApiArgs) -> Result<Tokens> {
    let mut text = args.tokens.clone().unwrap_or_default();
    if let Some(file) = &args.tokens_file {
        let lines = std::fs::read_to_string(file)
            .with_context(|| format!("cannot read the tokens file {}", file.display()))?;
        text.push('\n');
        text.push_str(&lines);
    }
    Ok(Tokens::parse(&text)?)
}

fn ports(args: &ServeApiArgs, home: &Home) -> Result<ApiPorts> {
    let workspace = Arc::new(GitWorkspace::new(home.worktrees()));
    if args.backend == Backend::Embedded {
        let core = Core::open(home)?;
        return Ok(ApiPorts {
            store: core.store,
            queue: core.queue,
            ledger: core.ledger,
            workspace,
            clock: core.clock,
        });
    }
    let project = args
        .project
        .as_deref()
        .context("--backend gcp needs the project; set GOOGLE_CLOUD_PROJECT or pass --project")?;
    let prefix = args.topic_prefix.as_deref().context(
        "--backend gcp needs the topic prefix; set CADRE_TOPIC_PREFIX or pass --topic-prefix",
    )?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let auth = GoogleAuth::metadata_server(args.metadata_host.as_deref());
    let firestore = match &args.firestore_emulator {
        Some(host) => FirestoreConfig::emulator(host, project),
        None => FirestoreConfig {
            auth: auth.clone(),
            ..FirestoreConfig::cloud(project, &args.database)
        },
    };
    let mut store = FirestoreStore::new(&firestore).context("cannot reach Firestore")?;
    if let Some(bucket) = &args.gcs_bucket {
        let mut storage = StorageConfig { auth: auth.clone(), ..StorageConfig::cloud(bucket) };
        if let Some(url) = &args.gcs_url {
            storage.base_url.clone_from(url);
        }
        store = store.with_blobs(CloudStorage::new(&storage)?, DEFAULT_BLOB_THRESHOLD);
    }
    let pubsub = match &args.pubsub_emulator {
        Some(host) => PubSubConfig::emulator(host, project, prefix),
        None => PubSubConfig { auth, ..PubSubConfig::cloud(project, prefix) },
    };
    let queue = PubSubQueue::new(pubsub, clock.clone()).context("cannot reach Pub/Sub")?;
    Ok(ApiPorts {
        store: Arc::new(store),
        queue: Arc::new(queue),
        ledger: Arc::new(FirestoreUsageLedger::new(&firestore)?),
        workspace,
        clock,
    })
}

pub(crate) async fn serve_api(args: ServeApiArgs, home: &Home) -> Result<ExitCode> {
    let tokens = tokens(&args)?;
    let config = ApiConfig {
        default_budget_micros: Some(wiring::usd_to_micros(args.budget_usd, "--budget-usd")?),
        team_daily_budget_micros: args
            .team_daily_budget_usd
            .map(|usd| wiring::usd_to_micros(usd, "--team-daily-budget-usd"))
            .transpose()?,
        ..ApiConfig::default()
    };
    let ports = ports(&args, home)?;
    let listen = match (&args.listen, args.port) {
        (Some(listen), _) => listen.clone(),
        (None, Some(port)) => format!("0.0.0.0:{port}"),
        (None, None) => "127.0.0.1:8080".to_owned(),
    };
    let listener = tokio::net::TcpListener::bind(&listen)
        .await
        .with_context(|| format!("cannot listen on {listen}; pass another --listen ADDR"))?;
    let teams: Vec<&str> = tokens.teams().map(|t| t.0.as_str()).collect();
    tracing::info!(listen = %listen, backend = ?args.backend, teams = ?teams, "serving the task api");
    cadre_api::serve(listener, cadre_api::router(ports, tokens, config), shutdown_signal())
        .await
        .context("the task api server failed")?;
    tracing::info!("stopped after finishing the requests in flight");
    Ok(ExitCode::SUCCESS)
}

/// SIGTERM (Cloud Run's stop) or Ctrl-C.
async fn shutdown_signal() {
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(error) => {
            tracing::warn!(%error, "cannot listen for SIGTERM; only Ctrl-C stops the server");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// The client of `--remote URL`, with the token from `CADRE_API_TOKEN`.
fn remote_client(url: &str, token: Option<cadre_api::ApiToken>) -> Result<cadre_api::ApiClient> {
    let token = token.with_context(|| {
        format!("CADRE_API_TOKEN is not set; export your team's API token for {url}")
    })?;
    Ok(cadre_api::ApiClient::new(url, token)?)
}

/// `cadre task --remote URL`: creates the task on the deployment and follows it through the events
/// long-poll until it awaits review or ends (or returns at once with `--detach`).
pub(crate) async fn task_remote(
    args: crate::cli::TaskArgs,
    url: &str,
    token: Option<cadre_api::ApiToken>,
) -> Result<ExitCode> {
    use cadre_api::wire::{CreateSettings, CreateTask};
    use cadre_domain::TaskState;
    let client = remote_client(url, token)?;
    let repo = args
        .repo
        .canonicalize()
        .with_context(|| format!("cannot find the repository {}", args.repo.display()))?;
    let request = CreateTask {
        goal: args.goal.clone(),
        repository: repo.display().to_string(),
        settings: CreateSettings {
            budget_usd: Some(args.model.budget_usd),
            harness: Some(args.harness.into()),
            rounds: Some(args.max_rounds),
            test_command: args.test_cmd.clone(),
            scan: Some(args.scan.into()),
        },
    };
    let view = client.create(&request).await?;
    let id = view.task.id.as_str().to_owned();
    let short = view.task.id.short().to_owned();
    crate::out::line(format!("task {id} on {} at {url}", view.task.repo));
    if args.detach {
        crate::out::line(format!("queued; follow it with `cadre status {short} --remote {url}`"));
        return Ok(ExitCode::SUCCESS);
    }
    let mut after = 0;
    loop {
        let page = client.events(&id, after, std::time::Duration::from_secs(20)).await?;
        let spent = cadre_domain::event::micros_to_usd(page.cost_micros.unwrap_or(0));
        for record in &page.events {
            if !matches!(record.event, cadre_domain::Event::Created { .. }) {
                crate::out::line(format!("  [${spent:.4}] {}", record.event.describe()));
            }
        }
        after = page.next_after;
        match page.state {
            TaskState::AwaitingReview { .. } => {
                crate::out::line(format!(
                    "ready for review on the deployment: `cadre status {short} --remote {url}`, or review it in your editor (`cadre lsp --remote`)"
                ));
                return Ok(ExitCode::SUCCESS);
            }
            state @ TaskState::BudgetExhausted { .. } => {
                crate::out::line(format!("task stopped: {state}; everything is kept"));
                return Ok(ExitCode::from(3));
            }
            state if state.is_terminal() => {
                crate::out::line(format!("task ended {state}"));
                return Ok(ExitCode::from(1));
            }
            _ => {}
        }
    }
}

/// `cadre status [TASK] --remote URL`: the team's tasks, or one task's state, cost and log.
pub(crate) async fn status_remote(
    task: Option<String>,
    url: &str,
    token: Option<cadre_api::ApiToken>,
) -> Result<ExitCode> {
    let client = remote_client(url, token)?;
    let Some(task) = task else {
        for view in client.list(50).await?.tasks {
            let goal = view.task.goal.lines().next().unwrap_or_default().to_owned();
            crate::out::line(format!(
                "{}  {:<24} {goal}",
                view.task.id.short(),
                view.state.to_string()
            ));
        }
        return Ok(ExitCode::SUCCESS);
    };
    let view = client.task(&task).await?;
    crate::out::line(format!("task {} ({})", view.task.id, view.state));
    crate::out::line(format!("repo: {}", view.task.repo));
    crate::out::line(format!("cost: ${:.4}", view.cost_usd.unwrap_or(0.0)));
    crate::out::line("log:");
    let page = client.events(view.task.id.as_str(), 0, std::time::Duration::ZERO).await?;
    for record in page.events {
        crate::out::line(format!("  {:>3}  {}", record.seq, record.event.describe()));
    }
    Ok(ExitCode::SUCCESS)
}
