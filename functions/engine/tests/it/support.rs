//! A fixture world for engine tests.

use cadre_domain::ports::clock::SystemClock;
use cadre_domain::ports::queue::{Delivery, OutgoingMessage};
use cadre_domain::ports::{Clock, Model, Queue, StateStore};
use cadre_domain::{CommitId, MessageId, Ports, Task, TaskId, TaskSettings};
use cadre_engine::{Backoff, Engine, EngineConfig};
use cadre_knowledge::EmbeddedKnowledge;
use cadre_model::{ApiKey, GeminiConfig, GeminiModel};
use cadre_queue::{EmbeddedQueue, QueueConfig};
use cadre_sandbox::HostSandbox;
use cadre_store::SqliteStore;
use cadre_testkit::model_server::ModelServer;
use cadre_vcs::GitWorkspace;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

pub(crate) struct World {
    pub dir: tempfile::TempDir,
    pub store: Arc<dyn StateStore>,
    pub queue: Arc<dyn Queue>,
    pub server: ModelServer,
    pub engine: Engine,
}

pub(crate) const PLAN_JSON: &str = r#"{"summary":"fix add","steps":[{"description":"use +","files":["calc.py"]}],"acceptance_criteria":["tests pass"]}"#;

impl World {
    pub(crate) async fn new() -> World {
        let server = ModelServer::start().await;
        let mut config = GeminiConfig::new(ApiKey::new("k").unwrap());
        config.base_url = server.base_url();
        config.timeout = Duration::from_secs(5);
        Self::with_model(server, Arc::new(GeminiModel::new(config).unwrap())).await
    }

    pub(crate) async fn with_model(server: ModelServer, model: Arc<dyn Model>) -> World {
        Self::wrapped(server, model, |store, queue| (store, queue)).await
    }

    /// A world whose engine reaches the store and queue through `wrap` (e.g. to stop at a point, or
    /// count what is published); `World::store` and `World::queue` stay the real ones.
    pub(crate) async fn wrapped(
        server: ModelServer,
        model: Arc<dyn Model>,
        wrap: impl FnOnce(Arc<dyn StateStore>, Arc<dyn Queue>) -> (Arc<dyn StateStore>, Arc<dyn Queue>),
    ) -> World {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("cadre.db");
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let store: Arc<dyn StateStore> = Arc::new(SqliteStore::open(&db).unwrap());
        let queue: Arc<dyn Queue> = Arc::new(
            EmbeddedQueue::open(&db, "steps", QueueConfig { max_deliveries: 10 }, clock.clone())
                .unwrap(),
        );
        let (engine_store, engine_queue) = wrap(store.clone(), queue.clone());
        let ports = Ports {
            store: engine_store,
            queue: engine_queue,
            model,
            sandbox: Arc::new(HostSandbox::new()),
            workspace: Arc::new(GitWorkspace::new(dir.path().join("worktrees"))),
            clock,
            knowledge: Arc::new(EmbeddedKnowledge::open(dir.path().join("knowledge")).unwrap()),
        };
        let config = EngineConfig {
            visibility: Duration::from_secs(30),
            max_attempts: 3,
            backoff: Backoff { base: Duration::from_millis(1), max: Duration::from_millis(2) },
            concurrency: 2,
            idle_poll: Duration::from_millis(5),
        };
        World { dir, store, queue, server, engine: Engine::new(ports, config) }
    }

    /// A repository with a failing `add` and a unittest suite, committed once.
    pub(crate) fn repo(&self) -> (String, CommitId) {
        let repo = self.dir.path().join("repo");
        std::fs::create_dir_all(&repo).unwrap();
        std::fs::write(repo.join("calc.py"), "def add(a, b):\n    return a - b\n").unwrap();
        std::fs::write(
            repo.join("test_calc.py"),
            "import unittest\nfrom calc import add\n\nclass T(unittest.TestCase):\n    def test_add(self):\n        self.assertEqual(add(2, 3), 5)\n",
        )
        .unwrap();
        git(&repo, &["init", "-q"]);
        git(&repo, &["add", "-A"]);
        git(&repo, &["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "init"]);
        let head = git(&repo, &["rev-parse", "HEAD"]);
        (repo.display().to_string(), CommitId::parse(&head).unwrap())
    }

    pub(crate) async fn submit(&self) -> Task {
        self.submit_with(TaskSettings {
            max_rounds: 2,
            test_command: None,
            test_timeout_secs: 60,
            ..Default::default()
        })
        .await
    }

    pub(crate) async fn submit_with(&self, settings: TaskSettings) -> Task {
        let (repo, base) = self.repo();
        let task = Task {
            id: TaskId::generate(),
            repo,
            goal: "make test_add pass".into(),
            base_commit: base,
            settings,
            created_at: cadre_domain::Timestamp(0),
        };
        cadre_engine::submit(self.engine.ports(), &task).await.unwrap();
        task
    }

    /// Submits a task and runs its `index` step, so the plan message is next in the queue.
    pub(crate) async fn submit_indexed(&self) -> Task {
        let task = self.submit().await;
        let index = self.receive_one().await;
        let handled = self.engine.handle(index).await;
        assert!(matches!(handled, cadre_engine::Handled::Completed { next: 1, .. }), "{handled:?}");
        task
    }

    pub(crate) async fn publish_raw(&self, id: &str, body: &[u8]) {
        let message =
            OutgoingMessage { id: MessageId::new(id), body: body.to_vec(), delay: Duration::ZERO };
        self.queue.publish(vec![message]).await.unwrap();
    }

    pub(crate) async fn receive_one(&self) -> Delivery {
        let mut got = self.queue.receive(1, Duration::from_secs(30)).await.unwrap();
        assert_eq!(got.len(), 1, "expected one deliverable message");
        got.remove(0)
    }

    pub(crate) async fn log(&self, task: &TaskId) -> Vec<String> {
        self.store.events(task).await.unwrap().iter().map(|r| r.event.describe()).collect()
    }
}

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git").args(args).current_dir(dir).output().unwrap();
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}
