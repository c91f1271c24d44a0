//! Best of N in the engine: candidates run as separate messages in their own lanes, and the join that
//! ranks them is committed and published exactly once, even when the last two end at the same moment.

use cadre_domain::envelope::Envelope;
use cadre_domain::event::{Event, EventRecord};
use cadre_domain::ids::{IdempotencyKey, TaskId};
use cadre_domain::ports::queue::{
    DeadLetter, Delivery, OutgoingMessage, Queue, QueueDepth, QueueError, Receipt,
};
use cadre_domain::ports::store::{CommitOutcome, StateStore, StepCommit, StoreError, TaskSummary};
use cadre_domain::step::ArtifactName;
use cadre_domain::time::Timestamp;
use cadre_domain::{StepPayload, Task, TaskSettings, TaskState};
use cadre_engine::Handled;
use cadre_model::{ApiKey, GeminiConfig, GeminiModel};
use cadre_testkit::model_server::{CapturedRequest, ModelServer, Scripted};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Barrier;

use crate::support::{World, PLAN_JSON};

const WRONG: &str =
    "calc.py\n<<<<<<< SEARCH\n    return a - b\n=======\n    return a * b\n>>>>>>> REPLACE\n";
const RIGHT: &str =
    "calc.py\n<<<<<<< SEARCH\n    return a - b\n=======\n    return a + b\n>>>>>>> REPLACE\n";

/// Plans, then answers candidate 2 with the fix and every other candidate with a wrong change.
fn model(req: &CapturedRequest) -> Scripted {
    if req.system_text.contains("planning engineer") {
        Scripted::Text(PLAN_JSON.into())
    } else if req.system_text.contains("Candidate 2 of") {
        Scripted::Text(RIGHT.into())
    } else {
        Scripted::Text(WRONG.into())
    }
}

/// Holds each candidate's test commit until both are committed, so both handlings then look for the
/// join at once: the interleaving in which both could publish it.
struct GateStore {
    inner: Arc<dyn StateStore>,
    gate: Barrier,
}

#[async_trait::async_trait]
impl StateStore for GateStore {
    async fn create_task(&self, task: &Task) -> Result<(), StoreError> {
        self.inner.create_task(task).await
    }
    async fn events(&self, task: &TaskId) -> Result<Vec<EventRecord>, StoreError> {
        self.inner.events(task).await
    }
    async fn events_after(
        &self,
        task: &TaskId,
        after: u64,
    ) -> Result<Vec<EventRecord>, StoreError> {
        self.inner.events_after(task, after).await
    }
    async fn append(
        &self,
        task: &TaskId,
        events: Vec<Event>,
        at: Timestamp,
        only_if: Option<fn(TaskState) -> bool>,
    ) -> Result<(TaskState, bool), StoreError> {
        self.inner.append(task, events, at, only_if).await
    }
    async fn commit_step(&self, commit: StepCommit) -> Result<CommitOutcome, StoreError> {
        let gated = commit.key.as_str().contains("/test/c");
        let outcome = self.inner.commit_step(commit).await;
        if gated {
            self.gate.wait().await;
        }
        outcome
    }
    async fn committed_next(
        &self,
        key: &IdempotencyKey,
    ) -> Result<Option<Vec<Envelope>>, StoreError> {
        self.inner.committed_next(key).await
    }
    async fn artifact(
        &self,
        task: &TaskId,
        name: &ArtifactName,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.artifact(task, name).await
    }
    async fn task(&self, task: &TaskId) -> Result<TaskSummary, StoreError> {
        self.inner.task(task).await
    }
    async fn list_tasks(&self, limit: usize) -> Result<Vec<TaskSummary>, StoreError> {
        self.inner.list_tasks(limit).await
    }
    async fn resolve_prefix(&self, prefix: &str) -> Result<TaskId, StoreError> {
        self.inner.resolve_prefix(prefix).await
    }
}

/// Counts the review messages published (the real queue would drop a duplicate id silently).
struct CountingQueue {
    inner: Arc<dyn Queue>,
    reviews: Arc<AtomicUsize>,
}

#[async_trait::async_trait]
impl Queue for CountingQueue {
    async fn publish(&self, messages: Vec<OutgoingMessage>) -> Result<(), QueueError> {
        let reviews = messages.iter().filter(|m| m.id.as_str().contains("/review/")).count();
        self.reviews.fetch_add(reviews, Ordering::SeqCst);
        self.inner.publish(messages).await
    }
    async fn receive(&self, max: usize, visibility: Duration) -> Result<Vec<Delivery>, QueueError> {
        self.inner.receive(max, visibility).await
    }
    async fn ack(&self, receipts: &[Receipt]) -> Result<(), QueueError> {
        self.inner.ack(receipts).await
    }
    async fn extend(&self, receipt: &Receipt, visibility: Duration) -> Result<(), QueueError> {
        self.inner.extend(receipt, visibility).await
    }
    async fn retry_later(&self, receipt: &Receipt, delay: Duration) -> Result<(), QueueError> {
        self.inner.retry_later(receipt, delay).await
    }
    async fn dead_letter(&self, receipt: &Receipt, reason: &str) -> Result<(), QueueError> {
        self.inner.dead_letter(receipt, reason).await
    }
    async fn dead_letters(&self, limit: usize) -> Result<Vec<DeadLetter>, QueueError> {
        self.inner.dead_letters(limit).await
    }
    async fn depth(&self) -> Result<QueueDepth, QueueError> {
        self.inner.depth().await
    }
}

async fn world(reviews: Arc<AtomicUsize>) -> World {
    let server = ModelServer::start().await;
    server.respond_with(model);
    let mut config = GeminiConfig::new(ApiKey::new("k").unwrap());
    config.base_url = server.base_url();
    config.timeout = Duration::from_secs(5);
    let model = Arc::new(GeminiModel::new(config).unwrap());
    World::wrapped(server, model, move |store, queue| {
        (
            Arc::new(GateStore { inner: store, gate: Barrier::new(2) }) as Arc<dyn StateStore>,
            Arc::new(CountingQueue { inner: queue, reviews }) as Arc<dyn Queue>,
        )
    })
    .await
}

async fn receive(world: &World, n: usize) -> Vec<Delivery> {
    let got = world.queue.receive(n, Duration::from_secs(30)).await.unwrap();
    assert_eq!(got.len(), n, "expected {n} deliverable messages");
    got
}

fn payload(delivery: &Delivery) -> StepPayload {
    Envelope::from_bytes(&delivery.body).unwrap().payload
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn candidates_ending_at_once_publish_the_join_exactly_once_and_the_passing_one_is_proposed() {
    let reviews = Arc::new(AtomicUsize::new(0));
    let world = world(reviews.clone()).await;
    let task = world
        .submit_with(TaskSettings {
            max_rounds: 1,
            test_command: Some("python3 -m unittest -q".into()),
            test_timeout_secs: 60,
            candidates: 2,
            ..TaskSettings::default()
        })
        .await;
    let index = receive(&world, 1).await.remove(0);
    world.engine.handle(index).await;
    let plan = receive(&world, 1).await.remove(0);
    let handled = world.engine.handle(plan).await;
    assert!(
        matches!(handled, Handled::Completed { next: 2, .. }),
        "one generate per candidate: {handled:?}"
    );

    let generates = receive(&world, 2).await;
    let mut keys: Vec<String> = generates
        .iter()
        .map(|d| Envelope::from_bytes(&d.body).unwrap().idempotency_key.as_str().to_owned())
        .collect();
    keys.sort();
    assert!(keys[0].ends_with("/generate/c1r1") && keys[1].ends_with("/generate/c2r1"), "{keys:?}");
    for generate in generates {
        assert!(matches!(world.engine.handle(generate).await, Handled::Completed { next: 1, .. }));
    }
    // Each candidate's patch is its own artifact; neither is the task's yet.
    let patch = |name: &str| {
        let store = world.store.clone();
        let id = task.id.clone();
        let name = ArtifactName::new(name);
        async move { store.artifact(&id, &name).await.unwrap().map(|b| String::from_utf8(b).unwrap()) }
    };
    assert!(patch("c1-patch-r1").await.unwrap().contains("a * b"));
    assert!(patch("c2-patch-r1").await.unwrap().contains("a + b"));
    assert_eq!(patch("patch-r1").await, None);

    let tests = receive(&world, 2).await;
    assert!(tests.iter().all(|d| matches!(payload(d), StepPayload::Candidate { ref of, .. } if **of == StepPayload::Test { round: 1 })));
    let mut tests = tests.into_iter();
    let (a, b) = (tests.next().unwrap(), tests.next().unwrap());
    let (ha, hb) = tokio::join!(world.engine.handle(a), world.engine.handle(b));
    assert!(
        matches!(ha, Handled::Completed { .. }) && matches!(hb, Handled::Completed { .. }),
        "{ha:?} {hb:?}"
    );

    assert_eq!(reviews.load(Ordering::SeqCst), 1, "the join is published exactly once");
    let log = world.log(&task.id).await;
    let ranked: Vec<&String> = log.iter().filter(|l| l.starts_with("candidates ranked")).collect();
    assert_eq!(ranked.len(), 1, "{log:#?}");
    assert!(ranked[0].contains("proposing candidate 2"), "{}", ranked[0]);
    assert!(
        log.iter().any(|l| l.starts_with("candidate 1: failed in test: tests still fail")),
        "candidate 1's failure ended only candidate 1: {log:#?}"
    );

    let review = receive(&world, 1).await.remove(0);
    assert_eq!(payload(&review), StepPayload::Review { round: 1 });
    world.engine.handle(review).await;
    let state = world.store.task(&task.id).await.unwrap().state;
    assert_eq!(state, TaskState::AwaitingReview { round: 1 });
    assert!(patch("patch-r1").await.unwrap().contains("a + b"), "the chosen patch is the task's");
    assert_eq!(world.queue.depth().await.unwrap().ready, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_no_candidate_passes_the_task_fails_naming_each_one() {
    let world = World::new().await;
    world.server.respond_with(|req| {
        if req.system_text.contains("planning engineer") {
            Scripted::Text(PLAN_JSON.into())
        } else {
            Scripted::Text(WRONG.into())
        }
    });
    let task = world
        .submit_with(TaskSettings {
            max_rounds: 1,
            test_command: Some("python3 -m unittest -q".into()),
            test_timeout_secs: 60,
            candidates: 2,
            ..TaskSettings::default()
        })
        .await;
    // Index, plan, two generates, two tests: one at a time, in the order they come.
    for _ in 0..6 {
        let delivery = receive(&world, 1).await.remove(0);
        let handled = world.engine.handle(delivery).await;
        assert!(matches!(handled, Handled::Completed { .. }), "{handled:?}");
    }
    let summary = world.store.task(&task.id).await.unwrap();
    assert_eq!(summary.state, TaskState::Failed);
    let log = world.log(&task.id).await;
    let failed = log.iter().find(|l| l.starts_with("failed:")).unwrap();
    assert!(
        failed.contains("none of the 2 candidates passed")
            && failed.contains("candidate 2: tests still fail"),
        "{failed}"
    );
    assert_eq!(world.queue.depth().await.unwrap().ready, 0);
}
