//! The AWS entry points: `cadre lambda` (a Lambda function's bootstrap: SQS event batches in, partial
//! batch failures out) and the SQS bus of `cadre serve-worker --bus sqs://QUEUE_URL`.
//!
//! Both run the same engine handler over an `SqsQueue`; only who receives differs (Lambda's event
//! source mapping, or the worker's long polls). Task state goes to the DynamoDB table named by
//! `--state dynamodb://TABLE` (`CADRE_STATE`), shared by every function instance; `cadre lambda`
//! refuses to start without it unless `--state sqlite` asks for the home's store on purpose. The usage
//! ledger and model cache live in the same table; the knowledge base stays in the home (per instance on
//! Lambda).

use anyhow::bail;
use anyhow::{Context, Result};
use cadre_aws::{
    parse_routes, Credentials, DynamoDbConfig, DynamoDbModelCache, DynamoDbStore,
    DynamoDbUsageLedger, QueueUrl, SqsConfig, SqsQueue,
};
use cadre_domain::ports::clock::SystemClock;
use cadre_domain::ports::model_cache::ModelCache;
use cadre_domain::ports::usage::UsageLedger;
use cadre_domain::ports::{Queue, StateStore};
use cadre_engine::{Engine, EngineConfig};
use clap::Args;
use std::process::ExitCode;
use std::sync::Arc;

use crate::cli::{ModelArgs, SandboxKind};
use crate::wiring::{self, Core, Environment, Home};

/// `cadre lambda` flags; each has the environment variable `terraform/aws` sets.
#[derive(Debug, Args)]
pub(crate) struct LambdaArgs {
    /// The function's SQS queue (its event source), as its https URL or sqs://HOST/ACCOUNT/NAME.
    #[arg(long, env = "CADRE_SQS_QUEUE_URL")]
    queue_url: String,
    /// Where each step's messages go: STEP=QUEUE_URL, comma-separated; other steps stay on the
    /// function's own queue.
    #[arg(long = "sqs-route", env = "CADRE_SQS_ROUTES", value_delimiter = ',')]
    sqs_routes: Vec<String>,
    /// Where task state lives: `dynamodb://TABLE` (terraform/aws sets it), or
    /// `dynamodb://http://HOST:PORT/TABLE` for a local server, shared by every instance of every step's
    /// function, with the usage ledger and model cache; or `sqlite`, the store in CADRE_HOME, which on
    /// Lambda is one instance's scratch disk: only for local runs and tests. Required.
    #[arg(long, env = "CADRE_STATE")]
    state: Option<String>,
    #[command(flatten)]
    model: ModelArgs,
}

/// The state a deployment's instances share, all in the table `--state dynamodb://TABLE` names: the
/// task store, and the gateway's usage ledger and model cache (so budgets and cached replies hold
/// across instances).
pub(crate) struct SharedState {
    store: Arc<dyn StateStore>,
    ledger: Arc<dyn UsageLedger>,
    cache: Arc<dyn ModelCache>,
}

impl SharedState {
    /// Puts the shared adapters in place of the home's.
    pub(crate) fn apply(self, core: &mut Core) {
        core.store = self.store;
        core.ledger = self.ledger;
        core.cache = self.cache;
    }
}

/// The state `--state` names: `None` for `sqlite` (the home's store), the table's adapters for
/// `dynamodb://…` (the table checked at start, so a typo fails here and not at the first message).
pub(crate) async fn shared_state(text: &str) -> Result<Option<SharedState>> {
    if text.trim() == "sqlite" {
        return Ok(None);
    }
    if !text.trim().starts_with("dynamodb://") {
        bail!("--state {text:?} is not a state store; give dynamodb://TABLE (or dynamodb://http://HOST:PORT/TABLE for a local server), or sqlite for the store in the Cadre home");
    }
    // Region and keys come from the AWS default chain, as for SQS.
    let config = DynamoDbConfig::parse(text)?;
    let store = DynamoDbStore::connect(&config)
        .await
        .with_context(|| format!("cannot use {config} as the state store"))?;
    tracing::info!(table = store.table(), "dynamodb state store connected");
    Ok(Some(SharedState {
        store: Arc::new(store),
        ledger: Arc::new(DynamoDbUsageLedger::connect(&config).await),
        cache: Arc::new(DynamoDbModelCache::connect(&config).await),
    }))
}

/// The SQS queue at `url` (`sqs://…`) as the worker's bus.
pub(crate) async fn sqs_bus(url: &str, routes: &[String]) -> Result<Arc<dyn Queue>> {
    let queue = connect(url, routes, cadre_aws::config::MAX_WAIT).await?;
    tracing::info!(queue = %queue.queue_url(), dead = %queue.dead_letter_url(), "sqs bus connected");
    Ok(queue)
}

/// Serves Lambda invocations until the function's environment is torn down.
pub(crate) async fn lambda(
    args: LambdaArgs,
    config: EngineConfig,
    sandbox: SandboxKind,
    home: &Home,
    env: &Environment,
) -> Result<ExitCode> {
    let Some(state) = &args.state else {
        bail!("cadre lambda has no state store: each function instance would keep its own; set CADRE_STATE=dynamodb://TABLE \
               (terraform/aws does) or pass --state dynamodb://TABLE, or --state sqlite for a local run");
    };
    let shared = shared_state(state).await?;
    // A Lambda invocation already waited for its records: no long poll is ever made here.
    let queue = connect(&args.queue_url, &args.sqs_routes, std::time::Duration::ZERO).await?;
    let mut core = Core::open(home)?;
    core.queue = queue.clone();
    match shared {
        Some(shared) => shared.apply(&mut core),
        None => {
            tracing::warn!(home = %home.root.display(), "--state sqlite: task state stays in this instance's home; use it for local runs only")
        }
    }
    let (model, _endpoint) = wiring::model(&args.model, env, &core)?;
    let sandbox = wiring::sandbox(sandbox, home, env)?;
    let engine = Engine::new(core.ports(model, sandbox), config);
    tracing::info!(queue = %queue.queue_url(), max_receives = queue.max_receives(), "lambda function ready");
    cadre_aws::lambda::serve(queue, move |delivery| {
        let engine = engine.clone();
        async move {
            engine.handle(delivery).await;
        }
    })
    .await?;
    Ok(ExitCode::SUCCESS)
}

async fn connect(url: &str, routes: &[String], wait: std::time::Duration) -> Result<Arc<SqsQueue>> {
    let mut config = SqsConfig::new(QueueUrl::parse(url)?);
    config.routes = parse_routes(routes.iter().map(String::as_str))?;
    config.wait = wait;
    // Region and keys come from the AWS default chain: the function's role on Lambda, the task role
    // on ECS, instance metadata on EC2, or AWS_* variables and profiles elsewhere.
    config.credentials = Credentials::Chain;
    let queue = SqsQueue::connect(config, Arc::new(SystemClock))
        .await
        .with_context(|| format!("cannot use {url} as the message bus"))?;
    Ok(Arc::new(queue))
}
