//! A running API over a fresh home, two teams' tokens, and a git repository to work on.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use cadre_api::{ApiClient, ApiConfig, ApiPorts, ApiToken, Tokens};
use cadre_domain::ports::clock::SystemClock;
use cadre_domain::ports::store::StepCommit;
use cadre_domain::ports::usage::UsageLedger;
use cadre_domain::ports::{Clock, Queue, StateStore};
use cadre_domain::{ArtifactName, Event, IdempotencyKey, TaskId};
use cadre_queue::{EmbeddedQueue, QueueConfig};
use cadre_store::SqliteStore;
use cadre_usage::SqliteUsageLedger;
use cadre_vcs::GitWorkspace;

pub(crate) const ALPHA_TOKEN: &str = "alpha-token-3f9c";
pub(crate) const BETA_TOKEN: &str = "beta-token-77aa";

pub(crate) struct Api {
    pub(crate) dir: tempfile::TempDir,
    pub(crate) url: String,
    pub(crate) store: Arc<dyn StateStore>,
    pub(crate) queue: Arc<dyn Queue>,
    pub(crate) ledger: Arc<dyn UsageLedger>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) repo: PathBuf,
}

fn git(dir: &Path, args: &[&str]) {
    let ok = std::process::Command::new("git")
        .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap()
        .status
        .success();
    assert!(ok, "git {args:?} failed");
}

impl Api {
    pub(crate) async fn start() -> Api {
        Api::start_with(ApiConfig { poll: Duration::from_millis(20), ..ApiConfig::default() }).await
    }

    pub(crate) async fn start_with(config: ApiConfig) -> Api {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("cadre.db");
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let store: Arc<dyn StateStore> = Arc::new(SqliteStore::open(&db).unwrap());
        let queue: Arc<dyn Queue> = Arc::new(
            EmbeddedQueue::open(&db, "steps", QueueConfig::default(), clock.clone()).unwrap(),
        );
        let ledger: Arc<dyn UsageLedger> = Arc::new(SqliteUsageLedger::open(&db).unwrap());
        let repo = dir.path().join("repo");
        std::fs::create_dir(&repo).unwrap();
        std::fs::write(repo.join("calc.py"), "def add(a, b):\n    return a - b\n").unwrap();
        git(&repo, &["init", "-q"]);
        git(&repo, &["add", "."]);
        git(&repo, &["commit", "-q", "-m", "base"]);
        let ports = ApiPorts {
            store: store.clone(),
            queue: queue.clone(),
            ledger: ledger.clone(),
            workspace: Arc::new(GitWorkspace::new(dir.path().join("worktrees"))),
            clock: clock.clone(),
        };
        let tokens = Tokens::parse(&format!(
            "alpha:{},beta:{}",
            ApiToken::new(ALPHA_TOKEN).digest_hex(),
            ApiToken::new(BETA_TOKEN).digest_hex()
        ))
        .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let router = cadre_api::router(ports, tokens, config);
        tokio::spawn(cadre_api::serve(listener, router, std::future::pending()));
        Api { dir, url, store, queue, ledger, clock, repo }
    }

    pub(crate) fn client(&self, token: &str) -> ApiClient {
        ApiClient::new(&self.url, ApiToken::new(token)).unwrap()
    }

    pub(crate) fn repo_path(&self) -> String {
        self.repo.display().to_string()
    }

    /// Takes the task to review of round 1 as the pipeline would: plan, patch and report stored.
    pub(crate) async fn to_review(&self, task: &TaskId) {
        let plan = serde_json::json!({"summary": "make add add", "steps": [{"description": "return a + b", "files": ["calc.py"]}], "acceptance_criteria": []});
        let report = serde_json::json!({
            "command": "python3 -m unittest", "passed": true, "exit_code": 0, "timed_out": false,
            "duration_ms": 12, "counts": null, "failing_tests": [], "output_tail": "OK",
            "output_truncated": false, "isolation": "container"
        });
        let commit = StepCommit {
            task_id: task.clone(),
            key: IdempotencyKey::new(format!("{task}/test/r1")),
            events: vec![
                Event::TestsFinished { round: 1, passed: true, summary: "1 passed".into() },
                Event::AwaitingReview { round: 1 },
            ],
            artifacts: vec![
                (ArtifactName::plan(), plan.to_string().into_bytes()),
                (ArtifactName::patch(1), b"--- a/calc.py\n+++ b/calc.py\n".to_vec()),
                (ArtifactName::report(1), report.to_string().into_bytes()),
            ],
            next: vec![],
            at: self.clock.now(),
        };
        self.store.commit_step(commit).await.unwrap();
    }
}
