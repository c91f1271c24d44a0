//! A whole Cadre deployment in one test process, as Cloud Run would run it: the push handler served over
//! HTTP, the engine's handler behind it, Firestore and Pub/Sub on their emulators, a fake Gemini
//! server, git worktrees and the host sandbox.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use axum::Router;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use cadre_domain::ports::clock::SystemClock;
use cadre_domain::ports::queue::{Delivery, Queue};
use cadre_domain::ports::{Clock, StateStore};
use cadre_domain::{CommitId, Ports, StepKind, Task, TaskId, TaskSettings};
use cadre_engine::{Backoff, Engine, EngineConfig};
use cadre_gcp::{
    push_router, FirestoreConfig, FirestoreStore, PubSubConfig, PubSubQueue, PushAuth, PushRunner,
    PushService,
};
use cadre_knowledge::EmbeddedKnowledge;
use cadre_model::{ApiKey, GeminiConfig, GeminiModel};
use cadre_sandbox::HostSandbox;
use cadre_testkit::model_server::ModelServer;
use cadre_vcs::GitWorkspace;
use serde_json::{json, Value};

use crate::emulators::{emulators, fresh_project};
use crate::support::PubSubAdmin;

/// The team's topic prefix in every test project.
pub(crate) const PREFIX: &str = "cadre-t-";

/// The engine's handler as the binary wires it: the deployment's ports with the request's queue.
pub(crate) struct EngineRunner {
    pub(crate) ports: Ports,
    pub(crate) config: EngineConfig,
}

#[async_trait]
impl PushRunner for EngineRunner {
    async fn run(&self, queue: Arc<dyn Queue>, delivery: Delivery) {
        let mut ports = self.ports.clone();
        ports.queue = queue;
        Engine::new(ports, self.config).handle(delivery).await;
    }
}

/// Wraps the engine's runner (to inject faults), given the deployment's ports.
pub(crate) type WrapRunner = Box<dyn FnOnce(Arc<dyn PushRunner>, &Ports) -> Arc<dyn PushRunner>>;

/// What a test may change about the deployment.
pub(crate) struct Options {
    pub(crate) auth: PushAuth,
    pub(crate) step: Option<StepKind>,
    pub(crate) store: Option<Arc<dyn StateStore>>,
    pub(crate) wrap_runner: WrapRunner,
    pub(crate) wrap_router: Box<dyn FnOnce(Router) -> Router>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            auth: PushAuth::Unauthenticated,
            step: None,
            store: None,
            wrap_runner: Box::new(|runner, _| runner),
            wrap_router: Box::new(|router| router),
        }
    }
}

pub(crate) struct Deployment {
    pub(crate) dir: tempfile::TempDir,
    pub(crate) admin: PubSubAdmin,
    pub(crate) queue: PubSubQueue,
    pub(crate) store: Arc<dyn StateStore>,
    pub(crate) model: ModelServer,
    pub(crate) ports: Ports,
    /// `http://127.0.0.1:PORT/push`.
    pub(crate) push_url: String,
    client: reqwest::Client,
}

impl Deployment {
    pub(crate) async fn start(options: Options) -> Deployment {
        let emulators = emulators();
        let project = fresh_project();
        let admin = PubSubAdmin::new(&emulators.pubsub, &project);
        admin.team(PREFIX).await;
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let queue = PubSubQueue::new(
            PubSubConfig::emulator(&emulators.pubsub, &project, PREFIX),
            clock.clone(),
        )
        .unwrap();
        let store: Arc<dyn StateStore> = options.store.unwrap_or_else(|| {
            Arc::new(
                FirestoreStore::new(&FirestoreConfig::emulator(&emulators.firestore, &project))
                    .unwrap(),
            )
        });
        let model = ModelServer::start().await;
        let mut gemini = GeminiConfig::new(ApiKey::new("test-key").unwrap());
        gemini.base_url = model.base_url();
        gemini.timeout = Duration::from_secs(10);
        let dir = tempfile::tempdir().unwrap();
        let ports = Ports {
            store: store.clone(),
            queue: Arc::new(queue.clone()),
            model: Arc::new(GeminiModel::new(gemini).unwrap()),
            sandbox: Arc::new(HostSandbox::new()),
            workspace: Arc::new(GitWorkspace::new(dir.path().join("worktrees"))),
            clock: clock.clone(),
            knowledge: Arc::new(EmbeddedKnowledge::open(dir.path().join("knowledge")).unwrap()),
        };
        let config = EngineConfig {
            visibility: Duration::from_secs(60),
            max_attempts: 3,
            backoff: Backoff { base: Duration::from_millis(10), max: Duration::from_millis(20) },
            concurrency: 1,
            idle_poll: Duration::from_millis(10),
        };
        let runner: Arc<dyn PushRunner> = Arc::new(EngineRunner { ports: ports.clone(), config });
        let runner = (options.wrap_runner)(runner, &ports);
        let service = PushService::new(queue.clone(), options.auth, runner, options.step, clock);
        let router = (options.wrap_router)(push_router(Arc::new(service)));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(cadre_gcp::serve(listener, router, std::future::pending()));
        Deployment {
            dir,
            admin,
            queue,
            store,
            model,
            ports,
            push_url: format!("http://{addr}/push"),
            client: reqwest::Client::new(),
        }
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

    /// Creates a task and publishes its first (`index`) message to the index topic.
    pub(crate) async fn submit(&self) -> Task {
        let (repo, base_commit) = self.repo();
        let task = Task {
            id: TaskId::generate(),
            repo,
            goal: "make test_add pass".into(),
            base_commit,
            settings: TaskSettings {
                max_rounds: 2,
                test_timeout_secs: 60,
                ..TaskSettings::default()
            },
            created_at: self.ports.clock.now(),
        };
        cadre_engine::submit(&self.ports, &task).await.unwrap();
        task
    }

    /// Posts a push request as Pub/Sub would, with an optional `Authorization` value.
    pub(crate) async fn push(&self, body: &Value, authorization: Option<&str>) -> (u16, Value) {
        let mut request = self.client.post(&self.push_url).json(body);
        if let Some(value) = authorization {
            request = request.header("authorization", value);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    pub(crate) async fn log(&self, task: &TaskId) -> Vec<String> {
        self.store.events(task).await.unwrap().iter().map(|r| r.event.describe()).collect()
    }
}

/// A push request body in Pub/Sub's format, carrying `data` as given (normally base64).
pub(crate) fn push_body(
    data: &str,
    attributes: Value,
    message_id: &str,
    delivery_attempt: Option<u32>,
) -> Value {
    let mut body = json!({
        "message": {
            "data": data,
            "attributes": attributes,
            "messageId": message_id,
            "publishTime": "2026-11-25T17:00:48.468Z",
        },
        "subscription": "projects/cadre-test/subscriptions/cadre-t-index",
    });
    if let Some(attempt) = delivery_attempt {
        body["deliveryAttempt"] = attempt.into();
    }
    body
}

/// A push request for bytes published as-is.
pub(crate) fn push_of(bytes: &[u8], attributes: Value, message_id: &str, attempt: u32) -> Value {
    push_body(&STANDARD.encode(bytes), attributes, message_id, Some(attempt))
}

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git").args(args).current_dir(dir).output().unwrap();
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}
