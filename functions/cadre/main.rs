//! `cadre`: the command line and the composition root.
//!
//! Parses arguments, installs logging, builds adapters (`wiring.rs`) and runs one command. Errors are
//! printed once, with their causes, and mapped to exit codes: 0 success, 1 a task failed or was
//! refused, 2 bad usage or configuration.

mod acp;
mod api;
mod aws;
mod cli;
mod doctor;
mod eval;
mod forge;
mod gcp;
mod knowledge;
mod local;
mod lsp;
mod lsp_remote;
mod out;
mod review;
mod usage;
mod wiring;

use clap::Parser;
use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use cadre_engine::EngineConfig;

use cli::{Cli, Command, LogFormat};
use wiring::{Environment, Home};

fn main() -> ExitCode {
    // A container is created by a short-lived, single-threaded copy of this binary: libcontainer must
    // not run inside a multi-threaded process. Dispatch it before the runtime or logging start.
    let mut args = std::env::args_os();
    if args.nth(1).as_deref() == Some(wiring::SANDBOX_RUNNER_ARG.as_ref()) {
        let code = cadre_sandbox::runner_main(args.collect());
        return ExitCode::from(u8::try_from(code).unwrap_or(1));
    }
    let cli = Cli::parse();
    let env = Environment::read();
    install_logging(cli.log_format, &cli.command, env.log_filter.as_deref());
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            return report(&anyhow::Error::new(error).context("cannot start the async runtime"))
        }
    };
    match runtime.block_on(run(cli, &env)) {
        Ok(code) => code,
        Err(error) => report(&error),
    }
}

async fn run(cli: Cli, env: &Environment) -> anyhow::Result<ExitCode> {
    if let Command::Doctor(args) = cli.command {
        // Before the data directory is resolved: an unusable one is one of the things it reports.
        return doctor::doctor(args, cli.home, cli.sandbox, env).await;
    }
    let home = Home::resolve(cli.home, env)?;
    if cli.visibility_timeout == 0 {
        anyhow::bail!("--visibility-timeout 0 would hand every message to every worker; use 1 or more seconds");
    }
    let engine = EngineConfig {
        visibility: Duration::from_secs(cli.visibility_timeout),
        ..EngineConfig::default()
    };
    match cli.command {
        Command::Task(mut args) if args.remote.is_some() => {
            let (url, token) = (args.remote.take().unwrap_or_default(), args.api_token.take());
            api::task_remote(args, &url, token).await
        }
        Command::Task(args) => local::task(args, engine, cli.sandbox, &home, env).await,
        Command::ServeWorker { model, until_idle, concurrency, bus, sqs_routes, state } => {
            let config = EngineConfig { concurrency, ..engine };
            let mut shared = local::Shared::default();
            if let Some(url) = bus {
                shared.queue = Some(aws::sqs_bus(&url, &sqs_routes).await?);
            }
            if let Some(state) = state {
                shared.state = aws::shared_state(&state).await?;
            }
            local::serve_worker(&model, until_idle, config, cli.sandbox, &home, env, shared).await
        }
        Command::Lambda(args) => aws::lambda(*args, engine, cli.sandbox, &home, env).await,
        Command::Lsp { model, concurrency, stdio: _, remote, api_token } => {
            let config = EngineConfig { concurrency, ..engine };
            lsp::lsp(model, config, cli.sandbox, &home, remote, api_token).await
        }
        Command::ServeApi(args) => api::serve_api(*args, &home).await,
        Command::Acp { model, concurrency } => {
            acp::acp(model, EngineConfig { concurrency, ..engine }, cli.sandbox, &home).await
        }
        Command::ServePush(args) => gcp::serve_push(*args, engine, cli.sandbox, &home, env).await,
        Command::Status { task, remote: Some(url), api_token } => {
            api::status_remote(task, &url, api_token).await
        }
        Command::Status { task, .. } => review::status(task, &home).await,
        Command::Show { task, only, candidate } => {
            review::show(&task, only, candidate, &home).await
        }
        Command::Apply { task } => review::apply(&task, &home).await,
        Command::Reject { task, reason } => review::reject(&task, reason, &home).await,
        Command::Cancel { task } => review::cancel(&task, &home).await,
        Command::Resume { task, budget_usd } => review::resume(&task, budget_usd, &home).await,
        Command::Usage { task, by } => usage::usage(task, by, &home).await,
        Command::Index(args) => knowledge::index(args, &home, env).await,
        Command::Search(args) => knowledge::search(args, &home, env).await,
        Command::Doctor(args) => doctor::doctor(args, Some(home.root), cli.sandbox, env).await,
        Command::Eval(args) => eval::eval(args, engine, cli.sandbox, &home, env).await,
        Command::Pr(args) => forge::pr(*args, &home, env).await,
        Command::ServeWebhooks(args) => forge::serve_webhooks(*args, &home, env).await,
    }
}

/// Prints an error and its causes once each (ripgrep style) and returns exit code 2.
fn report(error: &anyhow::Error) -> ExitCode {
    let mut stderr = std::io::stderr().lock();
    let _ = writeln!(stderr, "cadre: error: {error}");
    for cause in error.chain().skip(1) {
        let _ = writeln!(stderr, "  caused by: {cause}");
    }
    ExitCode::from(2)
}

/// Logs go to stderr, filtered by `CADRE_LOG`. Interactive commands default to warnings only so their
/// progress output stays readable; the worker defaults to `info`.
fn install_logging(format: LogFormat, command: &Command, filter: Option<&str>) {
    let default = if matches!(
        command,
        Command::ServeWorker { .. }
            | Command::ServePush(_)
            | Command::Lambda(_)
            | Command::ServeWebhooks(_)
            | Command::ServeApi(_)
    ) {
        "info"
    } else {
        "warn"
    };
    let filter = tracing_subscriber::EnvFilter::try_new(filter.unwrap_or(default))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Pretty => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}
