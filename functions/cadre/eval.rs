//! `cadre eval SUITE` and `cadre eval compare RUN_A RUN_B`: Cadre measured on a suite of tasks.
//!
//! Every task runs through the real pipeline on the embedded engine in this process, with no person in
//! the loop: its repository is prepared in the run directory, a Cadre task is submitted, and when the
//! task stops (awaiting review, at its budget, failed, or past `--task-timeout`) the proposed patch is
//! applied to a scratch checkout, the hidden tests are added, and the suite's check runs in the
//! configured sandbox. Each result is appended to `results.jsonl` as it comes; the same command run
//! again skips the tasks recorded there and re-runs the rest (tasks in flight when a run was killed are
//! cancelled in the store and started afresh), so no task is counted twice.
//!
//! The tasks live in the run's own Cadre home (`RUN/home`), so their trajectories can be read with
//! `cadre --home RUN/home status|show TASK` and never mix with a person's tasks.

use anyhow::{bail, Context, Result};
use cadre_domain::event::EventRecord;
use cadre_domain::ports::sandbox::{NetworkAccess, RunSpec};
use cadre_domain::ports::usage::{UsageFilter, UsageGroup};
use cadre_domain::ports::workspace::WorkspaceError;
use cadre_domain::ports::Workspace;
use cadre_domain::step::ArtifactName;
use cadre_domain::{Ports, Task, TaskId, TaskSettings, TaskState};
use cadre_engine::{Engine, EngineConfig};
use cadre_eval::suite::file_name;
use cadre_eval::{
    Comparison, EvalTask, Manifest, Outcome, ResultsFile, RunDir, Suite, SuiteOptions, Summary,
    TaskResult, Trajectory,
};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

use crate::cli::{EvalArgs, EvalCommand, SandboxKind};
use crate::out;
use crate::wiring::{self, Core, Environment, Home};

/// How often a running task's state is read.
const POLL: Duration = Duration::from_millis(100);

/// Output of a check kept in its log.
const CHECK_OUTPUT_LIMIT: usize = 64 * 1024;

pub(crate) async fn eval(
    args: EvalArgs,
    engine: EngineConfig,
    sandbox: SandboxKind,
    home: &Home,
    env: &Environment,
) -> Result<ExitCode> {
    if let Some(EvalCommand::Compare { run_a, run_b }) = &args.command {
        return compare(run_a, run_b);
    }
    let (suite, suite_path) = load_suite(&args)?;
    let harness: cadre_domain::Harness = args.harness.into();
    let root = match &args.out {
        Some(dir) => dir.clone(),
        None => home.root.join("evals").join(file_name(&format!(
            "{}-{}-{}",
            suite.name,
            args.model.model,
            harness.name()
        ))),
    };
    let run = RunDir::new(std::path::absolute(&root)?);
    let _lock = run.lock()?;
    let run_home = Home::resolve(Some(run.home()), env)?;
    let core = Arc::new(Core::open(&run_home)?);
    let manifest = Manifest {
        suite: suite_path.display().to_string(),
        suite_name: suite.name.clone(),
        format: suite.format.name().to_owned(),
        model: args.model.model.clone(),
        harness: harness.name().to_owned(),
        budget_usd: args.model.budget_usd,
        max_rounds: args.max_rounds,
        started_at_ms: core.clock.now().0,
    };
    let (manifest, resumed) = manifest.settle(&run)?;
    let results = ResultsFile::open(&run.results())?;
    cancel_unrecorded(&core, &results).await?;

    let pending: Vec<EvalTask> =
        suite.tasks.iter().filter(|t| !results.has(&t.id)).cloned().collect();
    let done = suite.tasks.len() - pending.len();
    out::line(format!(
        "eval {} ({}, {} task(s)) with {} [{}], ${:.2} per task → {}",
        suite.name,
        suite.format.name(),
        suite.tasks.len(),
        args.model.model,
        harness.name(),
        args.model.budget_usd,
        run.root().display()
    ));
    if resumed {
        out::line(format!("resuming: {done} task(s) recorded, {} to run", pending.len()));
    }
    let results = Arc::new(Mutex::new(results));
    let interrupted = if pending.is_empty() {
        false
    } else {
        let settings = TaskSettings {
            max_rounds: args.max_rounds,
            test_timeout_secs: args.test_timeout,
            harness,
            budget_micros: Some(wiring::usd_to_micros(args.model.budget_usd, "--budget-usd")?),
            ..TaskSettings::default()
        };
        let (model, endpoint) = wiring::model(&args.model, env, &core)?;
        if let Some(endpoint) = &endpoint {
            wiring::check_reachable(endpoint).await?;
        }
        let runner = Arc::new(Runner {
            core: core.clone(),
            ports: core.ports(model, wiring::sandbox(sandbox, &run_home, env)?),
            run: run.clone(),
            settings,
            task_timeout: Duration::from_secs(args.task_timeout),
            check_timeout: Duration::from_secs(args.test_timeout),
            results: results.clone(),
            total: suite.tasks.len(),
            recorded: AtomicUsize::new(done),
        });
        run_pending(&runner, pending, EngineConfig { concurrency: args.jobs, ..engine }).await
    };

    let recorded: Vec<TaskResult> = {
        let file = results.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        suite
            .tasks
            .iter()
            .filter_map(|t| file.results().iter().find(|r| r.task == t.id).cloned())
            .collect()
    };
    summarise(&run, &manifest, &recorded, core.clock.now().0)?;
    if interrupted {
        out::line(format!(
            "interrupted with {} of {} task(s) recorded; run the same command to resume",
            recorded.len(),
            suite.tasks.len()
        ));
        return Ok(ExitCode::from(130));
    }
    Ok(ExitCode::SUCCESS)
}

/// The suite named on the command line, with `--only` applied, and its absolute path.
fn load_suite(args: &EvalArgs) -> Result<(Suite, PathBuf)> {
    let Some(path) = &args.suite else {
        bail!(
            "give the suite to run: cadre eval SUITE (a SWE-bench JSONL file or a task directory)"
        );
    };
    if args.jobs == 0 {
        bail!("--jobs 0 would run nothing; use 1 or more");
    }
    if args.max_rounds == 0 {
        bail!("--max-rounds 0 leaves no round to generate a change; use 1 or more");
    }
    wiring::usd_to_micros(args.model.budget_usd, "--budget-usd")?;
    let mirror = match &args.mirror {
        Some(dir) if !dir.is_dir() => bail!(
            "--mirror {} is not a directory; give the directory holding owner__name repositories",
            dir.display()
        ),
        Some(dir) => Some(std::path::absolute(dir)?),
        None => None,
    };
    let path = std::path::absolute(path)
        .with_context(|| format!("cannot resolve the suite path {}", path.display()))?;
    let options = SuiteOptions { mirror, test_cmd: args.test_cmd.clone() };
    let suite = Suite::load(&path, &options)?.select(&path, &args.only)?;
    Ok((suite, path))
}

/// Runs the pending tasks on an engine in this process, stopped once they are done. Returns true
/// when Ctrl-C interrupted the run.
async fn run_pending(runner: &Arc<Runner>, pending: Vec<EvalTask>, config: EngineConfig) -> bool {
    let engine = Engine::new(runner.ports.clone(), config);
    let (stop, stopped) = watch::channel(false);
    let worker = tokio::spawn({
        let engine = engine.clone();
        async move { engine.run(stopped).await }
    });
    let interrupted = run_all(runner, pending, config.concurrency).await;
    let _ = stop.send(true);
    if interrupted {
        worker.abort();
    } else if worker.await.is_err() {
        tracing::warn!("the eval's worker stopped abnormally");
    }
    interrupted
}

/// Prints the per-task table and the summary, and writes `summary.json` and `report.html`.
fn summarise(
    run: &RunDir,
    manifest: &Manifest,
    recorded: &[TaskResult],
    now_ms: i64,
) -> Result<()> {
    let summary = Summary::of(recorded);
    out::line("");
    out::line(cadre_eval::summary::task_table(recorded));
    out::line("");
    out::line(summary.table());
    cadre_eval::run::write_atomically(
        &run.summary(),
        &serde_json::to_vec_pretty(&summary).context("cannot encode the summary")?,
    )?;
    let html = cadre_eval::report::render(&cadre_eval::report::ReportInput {
        manifest: Some(manifest),
        summary: &summary,
        results: recorded,
        generated_at_ms: now_ms,
    });
    cadre_eval::run::write_atomically(&run.report(), html.as_bytes())?;
    out::line(format!("results {}", run.results().display()));
    out::line(format!("report  {}", run.report().display()));
    Ok(())
}

/// Cancels the tasks of earlier runs that were in flight when they stopped (no result names them),
/// so their queued messages are dropped instead of spending the model's money; their eval tasks are
/// run again from scratch.
async fn cancel_unrecorded(core: &Core, results: &ResultsFile) -> Result<()> {
    let recorded: Vec<&str> =
        results.results().iter().filter_map(|r| r.trajectory.cadre_task.as_deref()).collect();
    for summary in core.store.list_tasks(usize::MAX).await? {
        if summary.state.is_terminal() || recorded.contains(&summary.task.id.as_str()) {
            continue;
        }
        tracing::info!(task = %summary.task.id, state = %summary.state, "cancelling a task left by an interrupted eval");
        cadre_engine::cancel(
            core.store.as_ref(),
            core.clock.as_ref(),
            &summary.task.id,
            Some("in flight when an eval stopped; the eval runs the task again".to_owned()),
        )
        .await?;
    }
    Ok(())
}

/// What every task of a run shares.
struct Runner {
    core: Arc<Core>,
    ports: Ports,
    run: RunDir,
    settings: TaskSettings,
    task_timeout: Duration,
    check_timeout: Duration,
    results: Arc<Mutex<ResultsFile>>,
    total: usize,
    recorded: AtomicUsize,
}

/// Runs `tasks`, `jobs` at a time, started in the suite's order, recording each result as it comes.
/// Returns true when Ctrl-C interrupted the run (tasks in flight are dropped, to run again on resume).
async fn run_all(runner: &Arc<Runner>, tasks: Vec<EvalTask>, jobs: usize) -> bool {
    let permits = Arc::new(Semaphore::new(jobs));
    let work = async {
        let mut set = JoinSet::new();
        for task in tasks {
            let Ok(permit) = permits.clone().acquire_owned().await else { break };
            let runner = runner.clone();
            set.spawn(async move {
                let _permit = permit;
                let result = run_one(&runner, &task).await;
                runner.record(result);
            });
        }
        while set.join_next().await.is_some() {}
    };
    tokio::select! {
        () = work => false,
        _ = tokio::signal::ctrl_c() => true,
    }
}

impl Runner {
    fn record(&self, result: TaskResult) {
        let mut file = self.results.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        match file.append(result.clone()) {
            Ok(true) => {}
            Ok(false) => return,
            Err(error) => {
                tracing::error!(%error, task = %result.task, "the result could not be recorded; the task runs again on resume");
                return;
            }
        }
        let n = self.recorded.fetch_add(1, Ordering::SeqCst) + 1;
        let why =
            result.reason.as_deref().filter(|_| !result.solved).map_or_else(String::new, |r| {
                let mut short: String = r.chars().take(200).collect();
                if short.len() < r.len() {
                    short.push('…');
                }
                format!("  ({short})")
            });
        out::line(format!(
            "[{n}/{}] {}  {}  {}  {}  {} call(s)  {} round(s){why}",
            self.total,
            result.task,
            result.outcome,
            cadre_eval::summary::usd(result.cost_micros),
            cadre_eval::summary::seconds(result.wall_ms),
            result.model_calls,
            result.rounds
        ));
    }
}

/// Runs one task to its result; failures of the eval's own machinery become an `error` result.
async fn run_one(runner: &Runner, task: &EvalTask) -> TaskResult {
    let started = Instant::now();
    let home = runner.run.home().display().to_string();
    let mut result = match attempt(runner, task).await {
        Ok(result) => result,
        Err(error) => {
            tracing::warn!(task = %task.id, error = format!("{error:#}"), "task could not be run");
            let mut result =
                TaskResult::new(&task.id, Outcome::Error, Trajectory { cadre_task: None, home });
            result.reason = Some(format!("{error:#}"));
            result
        }
    };
    result.wall_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    result.finished_at_ms = runner.core.clock.now().0;
    result
}

/// Prepares the repository, submits the Cadre task, waits for it to stop and judges it.
async fn attempt(runner: &Runner, task: &EvalTask) -> Result<TaskResult> {
    let core = &runner.core;
    let file = file_name(&task.id);
    let dest = runner.run.work(&file).join("repo");
    let cache = runner.run.cache();
    let prepared = tokio::task::spawn_blocking({
        let task = task.clone();
        move || cadre_eval::prepare::prepare(&task, &dest, &cache)
    })
    .await
    .context("preparing the repository crashed")?
    .context("cannot prepare the task's repository")?;
    let repo = Workspace::inspect(core.workspace.as_ref(), &prepared.path).await?;
    let cadre_task = Task {
        id: TaskId::generate(),
        repo: repo.root.display().to_string(),
        goal: task.goal.clone(),
        base_commit: repo.head.clone(),
        settings: TaskSettings {
            test_command: task.test_command.clone(),
            ..runner.settings.clone()
        },
        created_at: core.clock.now(),
    };
    cadre_engine::submit(&runner.ports, &cadre_task).await.context("cannot queue the task")?;
    let id = cadre_task.id.clone();
    let trajectory = Trajectory {
        cadre_task: Some(id.to_string()),
        home: runner.run.home().display().to_string(),
    };
    let (outcome, reason) = match wait_for_stop(core, &id, runner.task_timeout).await {
        Ok(Some(state)) => {
            let events = core.store.events(&id).await?;
            match judge(runner, task, &cadre_task, state, &events).await {
                Ok(judged) => judged,
                Err(error) => (Outcome::Error, Some(format!("the check could not run: {error:#}"))),
            }
        }
        Ok(None) => {
            cadre_engine::cancel(
                core.store.as_ref(),
                core.clock.as_ref(),
                &id,
                Some("the eval's --task-timeout passed".to_owned()),
            )
            .await?;
            let secs = runner.task_timeout.as_secs();
            (Outcome::Timeout, Some(format!("still running after --task-timeout {secs} s")))
        }
        Err(error) => (Outcome::Error, Some(format!("{error:#}"))),
    };
    let mut result = TaskResult::new(&task.id, outcome, trajectory);
    result.reason = reason;
    let events = core.store.events(&id).await?;
    result.rounds = cadre_eval::outcome::rounds(&events);
    let filter = UsageFilter { task: Some(id.clone()), ..UsageFilter::default() };
    if let Some(total) = core.ledger.totals(&filter, UsageGroup::Task).await?.into_iter().next() {
        result.tokens = total.tokens;
        result.cost_micros = total.cost_micros;
        result.model_calls = total.calls;
    }
    Ok(result)
}

/// Waits until the task awaits review, stops at its budget or ends; `None` when `timeout` passes first.
async fn wait_for_stop(core: &Core, id: &TaskId, timeout: Duration) -> Result<Option<TaskState>> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let state = core.store.task(id).await?.state;
        if state.is_terminal()
            || matches!(state, TaskState::AwaitingReview { .. } | TaskState::BudgetExhausted { .. })
        {
            return Ok(Some(state));
        }
        if tokio::time::Instant::now() >= deadline {
            return Ok(None);
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Solved or why not: a task awaiting review is checked; any other stop is read off its log.
async fn judge(
    runner: &Runner,
    task: &EvalTask,
    cadre_task: &Task,
    state: TaskState,
    events: &[EventRecord],
) -> Result<(Outcome, Option<String>)> {
    let TaskState::AwaitingReview { round } = state else {
        let (outcome, reason) = cadre_eval::outcome::classify(state, events);
        return Ok((outcome, Some(reason)));
    };
    let store = &runner.core.store;
    let patch = store.artifact(&cadre_task.id, &ArtifactName::patch(round)).await?;
    let patch = String::from_utf8(patch.unwrap_or_default()).context("the patch is not UTF-8")?;
    if patch.trim().is_empty() {
        return Ok((Outcome::NoChange, Some(format!("round {round} proposed an empty patch"))));
    }
    let label = format!("{}-eval-check", cadre_task.id);
    let repo = Path::new(&cadre_task.repo);
    let worktree = match runner
        .core
        .workspace
        .checkout(repo, &cadre_task.base_commit, Some(&patch), &label)
        .await
    {
        Ok(worktree) => worktree,
        Err(WorkspaceError::Conflict { detail, .. }) => {
            let reason = format!("the proposed patch does not apply to a fresh copy: {detail}");
            return Ok((Outcome::DidNotApply, Some(reason)));
        }
        Err(other) => return Err(other.into()),
    };
    let judged = check(runner, task, &worktree.path).await;
    if let Err(error) = runner.core.workspace.remove(&worktree).await {
        tracing::warn!(%error, "could not remove the check's scratch copy");
    }
    judged
}

/// Adds the hidden tests to the scratch copy `dir` (which holds the proposed change) and runs the
/// check in the sandbox.
async fn check(runner: &Runner, task: &EvalTask, dir: &Path) -> Result<(Outcome, Option<String>)> {
    let spec = &task.check;
    let (hidden, test_patch, target) =
        (spec.hidden_files.clone(), spec.test_patch.clone(), dir.to_path_buf());
    let added = tokio::task::spawn_blocking(move || -> Result<(), cadre_eval::EvalError> {
        if let Some(hidden) = &hidden {
            cadre_eval::prepare::copy_tree(hidden, &target)?;
        }
        if let Some(patch) = &test_patch {
            cadre_eval::prepare::apply_patch(&target, patch)?;
        }
        Ok(())
    })
    .await
    .context("adding the hidden tests crashed")?;
    match added {
        Ok(()) => {}
        Err(cadre_eval::EvalError::PatchDoesNotApply { detail }) => {
            let reason = format!(
                "the suite's test patch does not apply after the proposed change: {detail}"
            );
            return Ok((Outcome::DidNotApply, Some(reason)));
        }
        Err(other) => return Err(other).context("cannot add the hidden tests"),
    }
    let run = RunSpec {
        workdir: dir.to_path_buf(),
        command: spec.command.clone(),
        env: vec![("CI".into(), "true".into()), ("PYTHONDONTWRITEBYTECODE".into(), "1".into())],
        timeout: runner.check_timeout,
        output_limit: CHECK_OUTPUT_LIMIT,
        network: NetworkAccess::LoopbackOnly,
        // No build cache: the check builds from scratch, so nothing a task's own runs left behind
        // can stand in for the hidden tests.
        cache: None,
    };
    let output = runner.ports.sandbox.run(&run).await.context("the check could not run")?;
    let log = runner.run.check_log(&file_name(&task.id));
    keep_log(&log, &spec.command, &output.output, output.exit_code);
    if output.exit_code == Some(0) && !output.timed_out {
        return Ok((Outcome::Solved, None));
    }
    let how = match (output.exit_code, output.timed_out, &output.killed_by) {
        (_, _, Some(limit)) => format!("was stopped by the {limit}"),
        (_, true, None) => format!("timed out after {} s", runner.check_timeout.as_secs()),
        (Some(code), false, None) => format!("exited {code}"),
        (None, false, None) => "was killed by a signal".to_owned(),
    };
    let reason = format!("the check `{}` {how}; output in {}", spec.command, log.display());
    Ok((Outcome::TestsFailed, Some(reason)))
}

/// Writes what a check printed to `path` (best effort: a log that cannot be written is only logged).
fn keep_log(path: &PathBuf, command: &str, output: &str, code: Option<i32>) {
    let text = format!("$ {command}\n{output}\n[exit code {code:?}]\n");
    let written = path
        .parent()
        .map_or(Ok(()), std::fs::create_dir_all)
        .and_then(|()| std::fs::write(path, text));
    if let Err(error) = written {
        tracing::warn!(%error, path = %path.display(), "cannot keep the check's output");
    }
}

/// `cadre eval compare RUN_A RUN_B`.
fn compare(a: &Path, b: &Path) -> Result<ExitCode> {
    let read = |path: &Path| {
        cadre_eval::results::read(path)
            .with_context(|| format!("cannot read the results of {}", path.display()))
    };
    let (results_a, results_b) = (read(a)?, read(b)?);
    for (label, path) in [("A", a), ("B", b)] {
        let settings = Manifest::read(path).map_or_else(String::new, |m| {
            format!(
                " ({}, {}, {} harness, ${:.2} per task)",
                m.suite_name, m.model, m.harness, m.budget_usd
            )
        });
        out::line(format!("{label}: {}{settings}", path.display()));
    }
    out::line(Comparison::of(&results_a, &results_b).table());
    Ok(ExitCode::SUCCESS)
}
