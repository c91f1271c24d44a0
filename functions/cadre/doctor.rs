//! `cadre doctor`: checks that this machine and configuration can run tasks, and says how to fix
//! what cannot.
//!
//! Each check is independent and ends in a [`Check`]: ok, a warning (tasks still run, but worse) or a
//! failure (tasks cannot run), always with the fix for anything not ok. The checks exercise the real
//! thing where that is cheap — one free `countTokens` call (or a one-token completion for
//! OpenAI-compatible servers, which have no free call), one container running `true` — because a
//! configuration that only looks right is what users debug for an hour.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::Result;
use cadre_domain::ports::model::{ChatMessage, Model, ModelError, ModelRequest};
use cadre_domain::ports::sandbox::{NetworkAccess, RunSpec, Sandbox};
use cadre_knowledge::EmbeddedKnowledge;

use crate::cli::{DoctorArgs, SandboxKind};
use crate::wiring::{self, Core, Environment, Home};

/// How long the model check waits for its one call.
const MODEL_CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// How a check ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Ok,
    /// Tasks run, but something is worse than it should be (e.g. a stale index).
    Warn,
    /// Tasks cannot run until this is fixed.
    Fail,
    /// Nothing to check (e.g. no cloud configured).
    Skipped,
}

/// One check's outcome: what was found and, when not ok, how to fix it.
#[derive(Debug)]
struct Check {
    name: &'static str,
    verdict: Verdict,
    detail: String,
    fix: Option<String>,
}

impl Check {
    fn ok(name: &'static str, detail: impl Into<String>) -> Check {
        Check { name, verdict: Verdict::Ok, detail: detail.into(), fix: None }
    }

    fn warn(name: &'static str, detail: impl Into<String>, fix: impl Into<String>) -> Check {
        Check { name, verdict: Verdict::Warn, detail: detail.into(), fix: Some(fix.into()) }
    }

    fn fail(name: &'static str, detail: impl Into<String>, fix: impl Into<String>) -> Check {
        Check { name, verdict: Verdict::Fail, detail: detail.into(), fix: Some(fix.into()) }
    }

    fn skipped(name: &'static str, detail: impl Into<String>) -> Check {
        Check { name, verdict: Verdict::Skipped, detail: detail.into(), fix: None }
    }
}

/// Runs every check, prints them, and exits 1 when any failed.
pub(crate) async fn doctor(
    args: DoctorArgs,
    home_flag: Option<PathBuf>,
    sandbox: SandboxKind,
    env: &Environment,
) -> Result<ExitCode> {
    let mut checks = Vec::new();
    let home = check_home(home_flag, env, &mut checks);
    let core = match &home {
        Some(home) => match Core::open(home) {
            Ok(core) => Some(core),
            Err(error) => {
                checks.push(Check::fail(
                    "state",
                    format!("{error:#}"),
                    "the store in the data directory cannot be opened: check the disk and its \
                     permissions, or move cadre.db aside and pass --home to start afresh",
                ));
                None
            }
        },
        None => None,
    };
    checks.push(match &core {
        Some(core) => check_model(&args, env, core).await,
        None => Check::skipped("model", "needs the data directory (see above)"),
    });
    checks.push(match &home {
        Some(home) => check_sandbox(sandbox, home, env).await,
        None => Check::skipped("sandbox", "needs the data directory (see above)"),
    });
    checks.push(check_git().await);
    checks.push(match &home {
        Some(home) => check_index(&args.repo, home).await,
        None => Check::skipped("index", "needs the data directory (see above)"),
    });
    checks.push(check_google_credentials(env));
    checks.push(check_aws_credentials(env));
    print(&checks);
    let failed = checks.iter().filter(|c| c.verdict == Verdict::Fail).count();
    Ok(if failed == 0 { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

fn print(checks: &[Check]) {
    let mut out = String::new();
    for check in checks {
        let mark = match check.verdict {
            Verdict::Ok => "ok  ",
            Verdict::Warn => "warn",
            Verdict::Fail => "FAIL",
            Verdict::Skipped => "-   ",
        };
        out.push_str(&format!("{mark}  {:<8} {}\n", check.name, check.detail));
        if let Some(fix) = &check.fix {
            out.push_str(&format!("            fix: {fix}\n"));
        }
    }
    let failed = checks.iter().filter(|c| c.verdict == Verdict::Fail).count();
    let warned = checks.iter().filter(|c| c.verdict == Verdict::Warn).count();
    out.push_str(&match (failed, warned) {
        (0, 0) => "all checks passed\n".to_owned(),
        (0, w) => format!("no failures, {w} warning(s)\n"),
        (f, w) => format!("{f} check(s) failed, {w} warning(s): tasks cannot run until fixed\n"),
    });
    crate::out::line(out.trim_end());
}

/// The data directory exists (or can be made) and is writable.
fn check_home(flag: Option<PathBuf>, env: &Environment, checks: &mut Vec<Check>) -> Option<Home> {
    let home = match Home::resolve(flag, env) {
        Ok(home) => home,
        Err(error) => {
            checks.push(Check::fail(
                "home",
                format!("{error:#}"),
                "pass --home DIR (or set CADRE_HOME) to a directory you can write",
            ));
            return None;
        }
    };
    let probe = home.root.join(".doctor-probe");
    match std::fs::write(&probe, b"ok").and_then(|()| std::fs::remove_file(&probe)) {
        Ok(()) => {
            checks.push(Check::ok("home", format!("{} (writable)", home.root.display())));
            Some(home)
        }
        Err(error) => {
            checks.push(Check::fail(
                "home",
                format!("{} is not writable: {error}", home.root.display()),
                "fix the directory's permissions, or pass --home DIR (or CADRE_HOME) elsewhere",
            ));
            None
        }
    }
}

/// The configured model answers one cheap call with the configured key.
async fn check_model(args: &DoctorArgs, env: &Environment, core: &Core) -> Check {
    let (model, endpoint) = match wiring::model(&args.model, env, core) {
        Ok(built) => built,
        Err(error) => {
            return Check::fail(
                "model",
                format!("{error:#}"),
                "set the model with --model or CADRE_MODEL and its key as the message says",
            )
        }
    };
    if let Some(endpoint) = &endpoint {
        if let Err(error) = wiring::check_reachable(endpoint).await {
            return Check::fail(
                "model",
                format!("{error:#}"),
                format!(
                    "check that {endpoint} is reachable from here: the server running, the URL \
                     (CADRE_GEMINI_BASE_URL or --model openai:MODEL@URL), DNS and any proxy"
                ),
            );
        }
    }
    if args.offline {
        return Check::warn(
            "model",
            format!("{} configured; not called (--offline)", model.describe()),
            "run without --offline to check the key with one free call",
        );
    }
    let started = Instant::now();
    let called =
        tokio::time::timeout(MODEL_CALL_TIMEOUT, one_cheap_call(&args.model.model, &model));
    let verdict = match called.await {
        Ok(result) => result,
        Err(_) => {
            return Check::fail(
                "model",
                format!(
                    "{} did not answer within {} s",
                    model.describe(),
                    MODEL_CALL_TIMEOUT.as_secs()
                ),
                "check the network path to the endpoint, or the server's load",
            )
        }
    };
    let ms = started.elapsed().as_millis();
    match verdict {
        Ok(what) => Check::ok("model", format!("{} answered {what} in {ms} ms", model.describe())),
        Err(error) => model_failure(&model, &error),
    }
}

/// `countTokens` where the provider has it (free on Gemini and Vertex AI; it still checks the key
/// and the model name), else a completion capped at one token.
async fn one_cheap_call(spec: &str, model: &Arc<dyn Model>) -> Result<String, ModelError> {
    let request = ModelRequest {
        max_output_tokens: Some(1),
        ..ModelRequest::new("doctor", "", vec![ChatMessage::user("ping")])
    };
    if spec.starts_with("gemini") || spec.starts_with("vertex") {
        let tokens = model.count_tokens(&request).await?;
        Ok(format!("countTokens ({tokens} tokens)"))
    } else {
        let reply = model.complete(&request).await?;
        Ok(format!("a one-token completion ({} in, {} out)", reply.usage.input, reply.usage.output))
    }
}

/// The fix for a failed model call, by what the provider said.
fn model_failure(model: &Arc<dyn Model>, error: &ModelError) -> Check {
    let name = model.describe();
    let fix = match error {
        ModelError::Rejected { status: 400 | 401 | 403, message } if mentions_key(message) => {
            "the provider refused the key: check GEMINI_API_KEY (or OPENAI_API_KEY) is a current key \
             for this endpoint, e.g. a new one from Google AI Studio"
                .to_owned()
        }
        ModelError::Rejected { status: 401 | 403, .. } => "the provider refused the credentials: \
             check the API key, or for Vertex AI that the account has roles/aiplatform.user"
            .to_owned(),
        ModelError::Rejected { status: 404, .. } => {
            "the endpoint does not know this model: check the model id in --model / CADRE_MODEL"
                .to_owned()
        }
        ModelError::Unreachable { .. } => "start the model server or correct its URL".to_owned(),
        ModelError::RateLimited { .. } => {
            "the key works but is throttled now: wait, or raise the project's quota".to_owned()
        }
        ModelError::ServerError { .. } | ModelError::CircuitOpen { .. } => {
            "the provider is failing on its side; retry later or check its status page".to_owned()
        }
        _ => "see the error above; `cadre doctor` calls the model exactly as tasks do".to_owned(),
    };
    Check::fail("model", format!("{name}: {error}"), fix)
}

fn mentions_key(message: &str) -> bool {
    let lower = message.to_ascii_lowercase();
    lower.contains("api key") || lower.contains("api_key") || lower.contains("apikey")
}

/// A container starts, runs `true` and is cleaned up; the host runner is flagged as unisolated.
async fn check_sandbox(kind: SandboxKind, home: &Home, env: &Environment) -> Check {
    let sandbox: Arc<dyn Sandbox> =
        match wiring::sandbox(kind, home, env) {
            Ok(sandbox) => sandbox,
            Err(error) => return Check::fail(
                "sandbox",
                format!("{error:#}; kernel: {}", kernel_features()),
                "fix what is listed (run as root or enable user namespaces, mount cgroups), or \
                 choose --sandbox host knowing tests then run unisolated",
            ),
        };
    // A scratch workdir in the data directory, not /tmp: the sandbox copies it like a task's worktree.
    let workdir = home.root.join("doctor-scratch");
    if let Err(error) = std::fs::create_dir_all(&workdir) {
        return Check::fail(
            "sandbox",
            format!("cannot create {}: {error}", workdir.display()),
            "check the data directory's permissions",
        );
    }
    let spec = RunSpec {
        workdir: workdir.clone(),
        command: "true".to_owned(),
        env: Vec::new(),
        timeout: Duration::from_secs(30),
        output_limit: 4096,
        network: NetworkAccess::LoopbackOnly,
        cache: None,
    };
    let ran = sandbox.run(&spec).await;
    let _ = std::fs::remove_dir_all(&workdir);
    match ran {
        Ok(out) if out.exit_code == Some(0) => {
            let ms = out.duration.as_millis();
            if matches!(kind, SandboxKind::Host) {
                Check::warn(
                    "sandbox",
                    format!("host runner ({ms} ms): generated code runs UNISOLATED"),
                    "drop --sandbox host (CADRE_SANDBOX=host) to run tests in containers",
                )
            } else {
                Check::ok(
                    "sandbox",
                    format!("a container ran `true` in {ms} ms; kernel: {}", kernel_features()),
                )
            }
        }
        Ok(out) => Check::fail(
            "sandbox",
            format!(
                "`true` in the sandbox exited {:?}{}: {}",
                out.exit_code,
                out.killed_by.map(|k| format!(" (killed: {k})")).unwrap_or_default(),
                out.output.trim()
            ),
            "fix what the output names; `cadre doctor --sandbox host` tells whether the host can run it",
        ),
        Err(error) => Check::fail(
            "sandbox",
            format!("{error}; kernel: {}", kernel_features()),
            "fix what is listed, or choose --sandbox host knowing tests then run unisolated",
        ),
    }
}

/// What the kernel offers containers, read from /proc and /sys (for the report only).
fn kernel_features() -> String {
    let read = |path: &str| std::fs::read_to_string(path).ok().map(|s| s.trim().to_owned());
    let userns = match read("/proc/sys/user/max_user_namespaces").as_deref() {
        Some("0") => "user namespaces disabled".to_owned(),
        Some(_) => "user namespaces".to_owned(),
        None => "user namespaces unknown".to_owned(),
    };
    let cgroup = if Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        "cgroup v2"
    } else if Path::new("/sys/fs/cgroup/memory").exists() {
        "cgroup v1"
    } else {
        "no cgroup hierarchy found"
    };
    let seccomp = if read("/proc/sys/kernel/seccomp/actions_avail").is_some() {
        "seccomp"
    } else {
        "seccomp unknown"
    };
    format!("{userns}, {cgroup}, {seccomp}")
}

/// git is installed and new enough for what the workspace adapter uses.
async fn check_git() -> Check {
    let output = tokio::process::Command::new("git").arg("--version").output().await;
    match output {
        Ok(out) if out.status.success() => {
            let version = String::from_utf8_lossy(&out.stdout).trim().to_owned();
            match parse_git_version(&version) {
                Some((major, minor)) if (major, minor) >= (2, 25) => Check::ok("git", version),
                Some(_) => Check::fail(
                    "git",
                    format!("{version} is too old"),
                    "install git 2.25 or newer (e.g. apt-get install git)",
                ),
                None => Check::warn(
                    "git",
                    format!("cannot read the version from {version:?}"),
                    "check that `git` on PATH is git",
                ),
            }
        }
        Ok(out) => Check::fail(
            "git",
            format!("`git --version` exited {}", out.status),
            "reinstall git (e.g. apt-get install git)",
        ),
        Err(error) => Check::fail(
            "git",
            format!("git is not runnable: {error}"),
            "install git (e.g. apt-get install git) and put it on PATH",
        ),
    }
}

fn parse_git_version(text: &str) -> Option<(u32, u32)> {
    let version = text.strip_prefix("git version ")?;
    let mut parts = version.split(|c: char| !c.is_ascii_digit());
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

/// The repository's index exists and is newer than its last commit. Tasks index on their own (the
/// `index` step), so a stale index is a warning: the first step of the next task is just slower.
async fn check_index(repo: &Path, home: &Home) -> Check {
    let Ok(root) = repo.canonicalize() else {
        return Check::fail(
            "index",
            format!("{} does not exist", repo.display()),
            "pass --repo PATH naming a git repository",
        );
    };
    let head = tokio::process::Command::new("git")
        .args(["log", "-1", "--format=%ct"])
        .current_dir(&root)
        .output()
        .await;
    let commit_time = match head {
        Ok(out) if out.status.success() => {
            String::from_utf8_lossy(&out.stdout).trim().parse::<u64>().ok()
        }
        _ => None,
    };
    let Some(commit_time) = commit_time else {
        return Check::skipped(
            "index",
            format!("{} is not a git repository with a commit (nothing to index)", root.display()),
        );
    };
    let Ok(key) = EmbeddedKnowledge::repo_key(&root) else {
        return Check::skipped("index", format!("{} has no index key", root.display()));
    };
    let kb = match EmbeddedKnowledge::open(home.knowledge()) {
        Ok(kb) => kb,
        Err(error) => {
            return Check::fail(
                "index",
                error.to_string(),
                "check the data directory's permissions, or pass --home",
            )
        }
    };
    let stats = match kb.stats(&key).await {
        Ok(stats) => stats,
        Err(_) => {
            return Check::warn(
                "index",
                format!("{} has never been indexed", root.display()),
                format!("cadre index {}", root.display()),
            )
        }
    };
    let summary = format!("{} files, {} chunks", stats.totals.files, stats.totals.chunks);
    // The index's directory is named by its key (see `EmbeddedKnowledge`); its newest file is the
    // last time anything was indexed.
    let written = newest_mtime(&home.knowledge().join(key.as_str()));
    match written {
        Some(written) if written >= commit_time => {
            Check::ok("index", format!("{}: {summary}, newer than HEAD", root.display()))
        }
        Some(_) => Check::warn(
            "index",
            format!("{}: {summary}, older than the last commit", root.display()),
            format!("cadre index {} (tasks also re-index on their first step)", root.display()),
        ),
        None => Check::ok("index", format!("{}: {summary}", root.display())),
    }
}

/// The newest modification time of the files directly in `dir`, in Unix seconds.
fn newest_mtime(dir: &Path) -> Option<u64> {
    std::fs::read_dir(dir)
        .ok()?
        .filter_map(|entry| entry.ok()?.metadata().ok()?.modified().ok())
        .filter_map(|time| time.duration_since(SystemTime::UNIX_EPOCH).ok())
        .map(|d| d.as_secs())
        .max()
}

/// Google credentials, when configured, are a readable key or user-credentials file.
fn check_google_credentials(env: &Environment) -> Check {
    let Some(path) = env.google_var("GOOGLE_APPLICATION_CREDENTIALS") else {
        let detail = match env.google_var("GOOGLE_CLOUD_PROJECT") {
            Some(project) => format!(
                "project {project}; credentials from gcloud's application-default login or the \
                 metadata server (not checked here)"
            ),
            None => "not configured (only needed for --model vertex and the Google Cloud \
                     deployment)"
                .to_owned(),
        };
        return Check::skipped("google", detail);
    };
    let text =
        match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(error) => return Check::fail(
                "google",
                format!("GOOGLE_APPLICATION_CREDENTIALS={path} cannot be read: {error}"),
                "point GOOGLE_APPLICATION_CREDENTIALS at an existing key file, or unset it to use \
                 `gcloud auth application-default login`",
            ),
        };
    let kind = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| v.get("type").and_then(|t| t.as_str()).map(str::to_owned));
    match kind.as_deref() {
        Some(kind @ ("service_account" | "authorized_user" | "external_account")) => {
            Check::ok("google", format!("{kind} credentials in {path}"))
        }
        Some(other) => Check::fail(
            "google",
            format!("{path} holds credentials of type {other:?}, which Cadre cannot use"),
            "use a service-account key, `gcloud auth application-default login`, or workload \
             identity federation (external_account)",
        ),
        None => Check::fail(
            "google",
            format!("{path} is not a Google credentials JSON file (no \"type\")"),
            "download the key again from the Cloud console, or unset GOOGLE_APPLICATION_CREDENTIALS",
        ),
    }
}

/// AWS credentials, when an AWS bus is configured, are present as the SDK reads them.
fn check_aws_credentials(env: &Environment) -> Check {
    let wants_aws = env.aws_var("CADRE_BUS").is_some_and(|bus| bus.starts_with("sqs://"));
    if !wants_aws {
        return Check::skipped("aws", "not configured (only needed with --bus sqs://…)");
    }
    let has_keys = env.aws_var("AWS_ACCESS_KEY_ID").is_some()
        && env.aws_var("AWS_SECRET_ACCESS_KEY").is_some();
    let has_other = env.aws_var("AWS_PROFILE").is_some()
        || env.aws_var("AWS_WEB_IDENTITY_TOKEN_FILE").is_some()
        || env.aws_var("AWS_CONTAINER_CREDENTIALS_FULL_URI").is_some()
        || env.aws_var("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI").is_some();
    let region = env.aws_var("AWS_REGION").or_else(|| env.aws_var("AWS_DEFAULT_REGION"));
    match (has_keys || has_other, region) {
        (true, Some(region)) => Check::ok("aws", format!("credentials present; region {region}")),
        (false, _) => Check::fail(
            "aws",
            "CADRE_BUS is an SQS queue but no AWS credentials are set",
            "export AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE); on Lambda the \
             function's role provides them",
        ),
        (true, None) => Check::fail(
            "aws",
            "AWS credentials are set but no region",
            "export AWS_REGION (e.g. eu-west-1)",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn git_versions_parse_with_vendor_suffixes() {
        assert_eq!(parse_git_version("git version 2.39.5"), Some((2, 39)));
        assert_eq!(parse_git_version("git version 2.45.1.windows.1"), Some((2, 45)));
        assert_eq!(parse_git_version("git version 2.24.0 (Apple Git-128)"), Some((2, 24)));
        assert_eq!(parse_git_version("hub version 2.14"), None);
    }

    #[test]
    fn key_problems_are_recognised_in_provider_messages() {
        assert!(mentions_key("API key not valid. Please pass a valid API key."));
        assert!(mentions_key("reason: API_KEY_INVALID"));
        assert!(!mentions_key("model not found"));
    }
}
