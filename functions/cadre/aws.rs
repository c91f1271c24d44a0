//! The AWS entry points: `cadre lambda` (a Lambda function's bootstrap: SQS event batches in, partial
//! batch failures out) and the SQS bus of `cadre serve-worker --bus sqs://QUEUE_URL`.
//!
//! Both run the same engine handler over an `SqsQueue`; only who receives differs (Lambda's event
//! source mapping, or the worker's long polls). State stays where `Core` keeps it (SQLite in the Cadre
//! home): see ARCHITECTURE.md, `infra/aws/`, for what an AWS deployment needs instead.

use anyhow::{Context, Result};
use cadre_aws::{parse_routes, Credentials, QueueUrl, SqsConfig, SqsQueue};
use cadre_domain::ports::clock::SystemClock;
use cadre_domain::ports::Queue;
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
    #[command(flatten)]
    model: ModelArgs,
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
    // A Lambda invocation already waited for its records: no long poll is ever made here.
    let queue = connect(&args.queue_url, &args.sqs_routes, std::time::Duration::ZERO).await?;
    let mut core = Core::open(home)?;
    core.queue = queue.clone();
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
