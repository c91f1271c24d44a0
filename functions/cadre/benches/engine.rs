//! Orchestration overhead per step on the embedded engine: everything but the model's own time.
//!
//! Runs N tasks through plan → generate → test → review on a real SQLite queue and store, real git
//! checkouts and a real (tiny) test process, with the model behind a local wire-format server. Each
//! port call is timed by a decorator, so every step's wall time splits into model, git (workspace),
//! test run (sandbox) and what is left: the engine itself (queue, store, dispatch, serialization).
//!
//! `cargo bench --bench engine` (50 tasks; `cargo bench --bench engine -- --tasks N` for another count).
#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::expect_used)]

use cadre_domain::ports::clock::SystemClock;
use cadre_domain::ports::model::{Model, ModelError, ModelReply, ModelRequest};
use cadre_domain::ports::sandbox::{RunOutput, RunSpec, Sandbox, SandboxError};
use cadre_domain::ports::workspace::{FileWrite, RepoStatus, Workspace, WorkspaceError, Worktree};
use cadre_domain::ports::{Clock, Queue, StateStore};
use cadre_domain::report::Isolation;
use cadre_domain::{CommitId, Ports, StepKind, Task, TaskId, TaskSettings};
use cadre_engine::{Backoff, Engine, EngineConfig, Handled};
use cadre_knowledge::EmbeddedKnowledge;
use cadre_model::{ApiKey, GeminiConfig, GeminiModel};
use cadre_queue::{EmbeddedQueue, QueueConfig};
use cadre_sandbox::HostSandbox;
use cadre_store::SqliteStore;
use cadre_testkit::model_server::{ModelServer, Scripted};
use cadre_vcs::GitWorkspace;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Default)]
struct Meter(AtomicU64);

impl Meter {
    fn add(&self, since: Instant) {
        self.0.fetch_add(u64::try_from(since.elapsed().as_nanos()).unwrap(), Ordering::Relaxed);
    }
    fn take(&self) -> Duration {
        Duration::from_nanos(self.0.swap(0, Ordering::Relaxed))
    }
}

struct TimedModel(Arc<dyn Model>, Arc<Meter>);
struct TimedSandbox(HostSandbox, Arc<Meter>);
struct TimedWorkspace(GitWorkspace, Arc<Meter>);

#[async_trait::async_trait]
impl Model for TimedModel {
    async fn complete(&self, request: &ModelRequest) -> Result<ModelReply, ModelError> {
        let t = Instant::now();
        let r = self.0.complete(request).await;
        self.1.add(t);
        r
    }
    fn describe(&self) -> String {
        self.0.describe()
    }
}

#[async_trait::async_trait]
impl Sandbox for TimedSandbox {
    async fn run(&self, spec: &RunSpec) -> Result<RunOutput, SandboxError> {
        let t = Instant::now();
        let r = self.0.run(spec).await;
        self.1.add(t);
        r
    }
    fn isolation(&self) -> Isolation {
        self.0.isolation()
    }
}

macro_rules! timed {
    ($self:ident, $e:expr) => {{
        let t = Instant::now();
        let r = $e.await;
        $self.1.add(t);
        r
    }};
}

#[async_trait::async_trait]
impl Workspace for TimedWorkspace {
    async fn inspect(&self, path: &Path) -> Result<RepoStatus, WorkspaceError> {
        timed!(self, self.0.inspect(path))
    }
    async fn checkout(
        &self,
        repo: &Path,
        base: &CommitId,
        patch: Option<&str>,
        label: &str,
    ) -> Result<Worktree, WorkspaceError> {
        timed!(self, self.0.checkout(repo, base, patch, label))
    }
    async fn list_files(&self, w: &Worktree) -> Result<Vec<String>, WorkspaceError> {
        timed!(self, self.0.list_files(w))
    }
    async fn read_file(&self, w: &Worktree, path: &str) -> Result<Option<String>, WorkspaceError> {
        timed!(self, self.0.read_file(w, path))
    }
    async fn write_files(&self, w: &Worktree, files: &[FileWrite]) -> Result<(), WorkspaceError> {
        timed!(self, self.0.write_files(w, files))
    }
    async fn diff(&self, w: &Worktree) -> Result<String, WorkspaceError> {
        timed!(self, self.0.diff(w))
    }
    async fn remove(&self, w: &Worktree) -> Result<(), WorkspaceError> {
        timed!(self, self.0.remove(w))
    }
    async fn apply_to_repo(&self, repo: &Path, patch: &str) -> Result<(), WorkspaceError> {
        timed!(self, self.0.apply_to_repo(repo, patch))
    }
}

#[derive(Default)]
struct Split {
    wall: Vec<Duration>,
    model: Vec<Duration>,
    git: Vec<Duration>,
    sandbox: Vec<Duration>,
    engine: Vec<Duration>,
}

fn pct(v: &[Duration], p: f64) -> f64 {
    let mut s: Vec<f64> = v.iter().map(|d| d.as_secs_f64() * 1000.0).collect();
    s.sort_by(f64::total_cmp);
    if s.is_empty() {
        return 0.0;
    }
    let i = ((s.len() as f64 - 1.0) * p).round() as usize;
    s[i]
}

fn git(dir: &Path, args: &[&str]) -> String {
    let out = std::process::Command::new("git").args(args).current_dir(dir).output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let tasks: usize = std::env::args()
        .skip_while(|a| a != "--tasks")
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(50);
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    std::fs::write(repo.join("calc.py"), "def add(a, b):\n    return a - b\n").unwrap();
    std::fs::write(repo.join("test.sh"), "exit 0\n").unwrap();
    git(&repo, &["init", "-q"]);
    git(&repo, &["add", "-A"]);
    git(&repo, &["-c", "user.name=b", "-c", "user.email=b@b", "commit", "-q", "-m", "init"]);
    let base = CommitId::parse(&git(&repo, &["rev-parse", "HEAD"])).unwrap();

    let server = ModelServer::start().await;
    server.respond_with(|req| {
        if req.system_text.contains("planning engineer") {
            Scripted::Text(r#"{"summary":"s","steps":[{"description":"d","files":["calc.py"]}],"acceptance_criteria":[]}"#.into())
        } else {
            Scripted::Text("calc.py\n<<<<<<< SEARCH\n    return a - b\n=======\n    return a + b\n>>>>>>> REPLACE\n".into())
        }
    });
    let mut gemini = GeminiConfig::new(ApiKey::new("bench").unwrap());
    gemini.base_url = server.base_url();
    let (model_t, git_t, sandbox_t) =
        (Arc::new(Meter::default()), Arc::new(Meter::default()), Arc::new(Meter::default()));
    let db = dir.path().join("cadre.db");
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let store: Arc<dyn StateStore> = Arc::new(SqliteStore::open(&db).unwrap());
    let queue: Arc<dyn Queue> =
        Arc::new(EmbeddedQueue::open(&db, "steps", QueueConfig::default(), clock.clone()).unwrap());
    let ports = Ports {
        store,
        queue: queue.clone(),
        model: Arc::new(TimedModel(Arc::new(GeminiModel::new(gemini).unwrap()), model_t.clone())),
        sandbox: Arc::new(TimedSandbox(HostSandbox::new(), sandbox_t.clone())),
        workspace: Arc::new(TimedWorkspace(
            GitWorkspace::new(dir.path().join("worktrees")),
            git_t.clone(),
        )),
        clock: clock.clone(),
        knowledge: Arc::new(EmbeddedKnowledge::open(dir.path().join("knowledge")).unwrap()),
    };
    let config = EngineConfig {
        visibility: Duration::from_secs(60),
        max_attempts: 3,
        backoff: Backoff { base: Duration::from_millis(1), max: Duration::from_millis(1) },
        concurrency: 1,
        idle_poll: Duration::from_millis(1),
    };
    let engine = Engine::new(ports.clone(), config);
    let mut per_step: BTreeMap<&'static str, Split> = BTreeMap::new();
    let started = Instant::now();
    for _ in 0..tasks {
        let task = Task {
            id: TaskId::generate(),
            repo: repo.display().to_string(),
            goal: "fix add".into(),
            base_commit: base.clone(),
            settings: TaskSettings {
                max_rounds: 1,
                test_command: Some("sh test.sh".into()),
                test_timeout_secs: 30,
                ..Default::default()
            },
            created_at: clock.now(),
        };
        cadre_engine::submit(&ports, &task).await.unwrap();
        loop {
            let mut got = queue.receive(1, Duration::from_secs(60)).await.unwrap();
            let Some(delivery) = got.pop() else { break };
            let step = cadre_domain::Envelope::from_bytes(&delivery.body).unwrap().step;
            let t = Instant::now();
            let handled = engine.handle(delivery).await;
            let wall = t.elapsed();
            assert!(matches!(handled, Handled::Completed { .. }), "{handled:?}");
            let (m, g, s) = (model_t.take(), git_t.take(), sandbox_t.take());
            let split = per_step.entry(step_name(step)).or_default();
            split.wall.push(wall);
            split.model.push(m);
            split.git.push(g);
            split.sandbox.push(s);
            split.engine.push(wall.saturating_sub(m + g + s));
        }
    }
    let total = started.elapsed();
    println!(
        "engine bench: {tasks} tasks, {:.1} s, {:.1} tasks/s",
        total.as_secs_f64(),
        tasks as f64 / total.as_secs_f64()
    );
    println!(
        "{:<9} {:>9} {:>9} {:>9} {:>9} {:>12} {:>12}",
        "step", "wall p50", "model", "git", "tests", "engine p50", "engine p99"
    );
    for (step, s) in &per_step {
        println!(
            "{step:<9} {:>7.2}ms {:>7.2}ms {:>7.2}ms {:>7.2}ms {:>10.3}ms {:>10.3}ms",
            pct(&s.wall, 0.5),
            pct(&s.model, 0.5),
            pct(&s.git, 0.5),
            pct(&s.sandbox, 0.5),
            pct(&s.engine, 0.5),
            pct(&s.engine, 0.99)
        );
    }
    let all_engine: Vec<Duration> =
        per_step.values().flat_map(|s| s.engine.iter().copied()).collect();
    let all_wall: Vec<Duration> = per_step.values().flat_map(|s| s.wall.iter().copied()).collect();
    let all_git: Vec<Duration> = per_step.values().flat_map(|s| s.git.iter().copied()).collect();
    println!(
        "all steps: engine overhead p50 {:.3} ms, p99 {:.3} ms; engine + git p50 {:.2} ms; wall p50 {:.2} ms",
        pct(&all_engine, 0.5),
        pct(&all_engine, 0.99),
        pct(&all_engine.iter().zip(&all_git).map(|(a, b)| *a + *b).collect::<Vec<_>>(), 0.5),
        pct(&all_wall, 0.5)
    );
}

fn step_name(step: StepKind) -> &'static str {
    step.as_str()
}
