//! `cadre serve-push`: one step's Cloud Run service. Pub/Sub pushes the step's messages to it; each
//! push runs the engine's handler with Firestore as the store, Pub/Sub as the queue, and the
//! request's own `PushQueue` settling it (see `infra/gcp`).
//!
//! One image serves every step: `CADRE_STEP` says which one this service is (Terraform sets it), so
//! logs name it and a message for another step is dead-lettered as misrouted. Configuration comes from
//! flags or the environment Terraform gives the service; nothing here is read elsewhere.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use cadre_domain::ports::clock::SystemClock;
use cadre_domain::ports::model::{Model, ModelError, ModelReply, ModelRequest};
use cadre_domain::ports::queue::{Delivery, Queue};
use cadre_domain::ports::Clock;
use cadre_domain::{Ports, StepKind};
use cadre_engine::{Engine, EngineConfig};
use cadre_gcp::{
    CloudStorage, FirestoreConfig, FirestoreModelCache, FirestoreStore, FirestoreUsageLedger,
    GoogleAuth, OidcConfig, OidcVerifier, PubSubConfig, PubSubQueue, PushAuth, PushRunner,
    PushService, StorageConfig, DEFAULT_BLOB_THRESHOLD,
};
use cadre_knowledge::EmbeddedKnowledge;
use cadre_vcs::GitWorkspace;
use clap::{Args, ValueEnum};

use crate::cli::{ModelArgs, SandboxKind};
use crate::wiring::{self, Core, Environment, Home};

/// `cadre serve-push` flags; each has the environment variable the Terraform module sets.
#[derive(Debug, Args)]
pub(crate) struct ServePushArgs {
    /// The Google Cloud project.
    #[arg(long, env = "GOOGLE_CLOUD_PROJECT")]
    project: String,
    /// The team's Firestore database.
    #[arg(long, env = "CADRE_FIRESTORE_DATABASE", default_value = "(default)")]
    database: String,
    /// The team's topic prefix: steps publish to `{prefix}{step}`, dead letters go to `{prefix}dead`.
    #[arg(long, env = "CADRE_TOPIC_PREFIX")]
    topic_prefix: String,
    /// The step this service runs; a message for another step is dead-lettered as misrouted.
    #[arg(long, env = "CADRE_STEP", value_enum)]
    step: Option<StepArg>,
    /// The bucket for artifacts too large for a Firestore document.
    #[arg(long, env = "CADRE_GCS_BUCKET")]
    gcs_bucket: Option<String>,
    /// The OIDC audience push requests must carry (the push subscription's `oidcToken.audience`).
    #[arg(long, env = "CADRE_PUSH_AUDIENCE", required_unless_present = "no_push_auth")]
    audience: Option<String>,
    /// The service account push tokens must be signed as.
    #[arg(long, env = "CADRE_PUSH_SERVICE_ACCOUNT")]
    push_service_account: Option<String>,
    /// Accept pushes without a token: only for the Pub/Sub emulator, which sends none.
    #[arg(long, conflicts_with = "audience")]
    no_push_auth: bool,
    /// The port to listen on (Cloud Run sets `PORT`).
    #[arg(long, env = "PORT", default_value_t = 8080)]
    port: u16,
    /// Use the Pub/Sub emulator at HOST:PORT.
    #[arg(long, env = "PUBSUB_EMULATOR_HOST")]
    pubsub_emulator: Option<String>,
    /// Use the Firestore emulator at HOST:PORT.
    #[arg(long, env = "FIRESTORE_EMULATOR_HOST")]
    firestore_emulator: Option<String>,
    /// Cloud Storage's JSON API at this URL instead of Google's (a local server, in tests).
    #[arg(long, env = "CADRE_GCS_URL")]
    gcs_url: Option<String>,
    /// The metadata server that hands out access tokens (`GCE_METADATA_HOST`, as Google's libraries).
    #[arg(long, env = "GCE_METADATA_HOST")]
    metadata_host: Option<String>,
    #[command(flatten)]
    model: ModelArgs,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum StepArg {
    Index,
    Plan,
    Generate,
    Test,
    Review,
}

impl From<StepArg> for StepKind {
    fn from(step: StepArg) -> StepKind {
        match step {
            StepArg::Index => StepKind::Index,
            StepArg::Plan => StepKind::Plan,
            StepArg::Generate => StepKind::Generate,
            StepArg::Test => StepKind::Test,
            StepArg::Review => StepKind::Review,
        }
    }
}

/// The engine's handler over the service's ports, with each request's queue in place of the queue.
struct EngineRunner {
    ports: Ports,
    config: EngineConfig,
}

#[cadre_gcp::async_trait]
impl PushRunner for EngineRunner {
    async fn run(&self, queue: Arc<dyn Queue>, delivery: Delivery) {
        let mut ports = self.ports.clone();
        ports.queue = queue;
        Engine::new(ports, self.config).handle(delivery).await;
    }
}

/// The model of a step that never calls one (index, test, review), whose service is not given the key.
struct NoModel(String);

#[cadre_gcp::async_trait]
impl Model for NoModel {
    async fn complete(&self, _request: &ModelRequest) -> Result<ModelReply, ModelError> {
        Err(ModelError::NotConfigured { hint: self.0.clone() })
    }

    fn describe(&self) -> String {
        "none".to_owned()
    }
}

pub(crate) async fn serve_push(
    args: ServePushArgs,
    config: EngineConfig,
    sandbox: SandboxKind,
    home: &Home,
    env: &Environment,
) -> Result<ExitCode> {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let auth = GoogleAuth::metadata_server(args.metadata_host.as_deref());
    let firestore = match &args.firestore_emulator {
        Some(host) => FirestoreConfig::emulator(host, &args.project),
        None => FirestoreConfig {
            auth: auth.clone(),
            ..FirestoreConfig::cloud(&args.project, &args.database)
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
        Some(host) => PubSubConfig::emulator(host, &args.project, &args.topic_prefix),
        None => PubSubConfig { auth, ..PubSubConfig::cloud(&args.project, &args.topic_prefix) },
    };
    let queue = PubSubQueue::new(pubsub, clock.clone()).context("cannot reach Pub/Sub")?;
    let core = Core {
        store: Arc::new(store),
        queue: Arc::new(queue.clone()),
        ledger: Arc::new(FirestoreUsageLedger::new(&firestore)?),
        cache: Arc::new(FirestoreModelCache::new(&firestore)?),
        workspace: Arc::new(GitWorkspace::new(home.worktrees())),
        clock: clock.clone(),
        knowledge: Arc::new(EmbeddedKnowledge::open(home.knowledge()).with_context(|| {
            format!("cannot open the knowledge base in {}", home.knowledge().display())
        })?),
    };
    let step = args.step.map(StepKind::from);
    let model: Arc<dyn Model> = match (wiring::model(&args.model, env, &core), step) {
        (Ok((model, _)), _) => model,
        (Err(error), Some(StepKind::Index | StepKind::Test | StepKind::Review)) => {
            tracing::info!(%error, "no model for a step that calls none");
            Arc::new(NoModel(format!(
                "the {} service has no model: {error:#}",
                step.map_or("", StepKind::as_str)
            )))
        }
        (Err(error), _) => return Err(error),
    };
    let sandbox = wiring::sandbox(sandbox, home, env)?;
    let ports = core.ports(model, sandbox);
    let push_auth = if args.no_push_auth {
        tracing::warn!(
            "--no-push-auth: push requests are not authenticated; use it with the emulator only"
        );
        PushAuth::Unauthenticated
    } else {
        let Some(audience) = &args.audience else {
            bail!("CADRE_PUSH_AUDIENCE is not set; set it to the push subscription's OIDC audience, or pass --no-push-auth for the emulator");
        };
        let mut oidc = OidcConfig::google(audience);
        oidc.service_account.clone_from(&args.push_service_account);
        PushAuth::Oidc(Box::new(OidcVerifier::new(oidc, clock.clone())?))
    };
    let runner = Arc::new(EngineRunner { ports, config });
    let service = PushService::new(queue, push_auth, runner, step, clock);
    let listener = tokio::net::TcpListener::bind(("0.0.0.0", args.port))
        .await
        .with_context(|| format!("cannot listen on port {}; set PORT or --port", args.port))?;
    tracing::info!(port = args.port, step = step.map_or("any", StepKind::as_str), project = %args.project, "serving pub/sub pushes");
    cadre_gcp::serve(listener, cadre_gcp::push_router(Arc::new(service)), shutdown_signal())
        .await
        .context("the push server failed")?;
    tracing::info!("stopped after finishing the requests in flight");
    Ok(ExitCode::SUCCESS)
}

/// SIGTERM (Cloud Run's stop) or Ctrl-C.
async fn shutdown_signal() {
    let term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate());
    match term {
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
