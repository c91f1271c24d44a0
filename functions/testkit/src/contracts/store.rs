//! Contract suite for the `StateStore` port: each story checks a MUST sentence of the trait's docs, and
//! the same stories run against every adapter (atuin's one-suite-many-backends pattern).
//!
//! `make` must build a fresh, empty store for each story (the stories create tasks with fixed ids).
//!
//! ```ignore
//! cadre_testkit::contracts::store::store_contract(|| async {
//!     Arc::new(SqliteStore::open(&fresh_file()).unwrap()) as Arc<dyn StateStore>
//! })
//! .await;
//! ```

use cadre_domain::ports::model::TokenUsage;
use cadre_domain::ports::store::{CommitOutcome, StateStore, StepCommit, StoreError, TaskSummary};
use cadre_domain::{
    ArtifactName, CommitId, Envelope, Event, EventRecord, IdempotencyKey, StepKind, StepPayload,
    Task, TaskId, TaskSettings, TaskState, Timestamp, TraceId,
};
use std::future::Future;
use std::sync::Arc;

/// Runs every story; `make` builds a fresh, empty store per story.
pub async fn store_contract<F, Fut>(make: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Arc<dyn StateStore>>,
{
    create_then_read(&*make().await).await;
    create_twice_is_refused_and_writes_nothing(&*make().await).await;
    an_unknown_task_is_not_found(&*make().await).await;
    append_numbers_events_and_can_be_followed(&*make().await).await;
    append_only_if_checks_the_state_it_appends_to(&*make().await).await;
    commit_step_writes_once_per_key(&*make().await).await;
    commit_step_on_a_finished_task_writes_nothing(&*make().await).await;
    artifacts_are_replaced_and_absent_ones_are_none(&*make().await).await;
    list_tasks_newest_first(&*make().await).await;
    resolve_prefix_finds_one_task_or_says_how_many(&*make().await).await;
}

/// A task with a fixed id.
pub fn sample_task(id: &str, created_at: i64) -> Task {
    Task {
        id: TaskId::parse(id).expect("a valid task id"),
        repo: "/work/repo".into(),
        goal: format!("make task {id} pass"),
        base_commit: CommitId::parse(&"ab".repeat(20)).expect("a valid commit id"),
        settings: TaskSettings::default(),
        created_at: Timestamp(created_at),
    }
}

const T1: &str = "01930000-0000-7000-8000-00000000000a";
const T2: &str = "01930000-0000-7000-8000-00000000000b";
const T3: &str = "0194ffff-0000-7000-8000-00000000000c";

fn started(step: StepKind, round: u32) -> Event {
    Event::StepStarted { step, round, attempt: 1 }
}

fn plan_ready() -> Event {
    Event::PlanReady { summary: "two edits".into(), items: 2, usage: TokenUsage::default() }
}

fn step_commit(task: &Task, key: &str, events: Vec<Event>, at: i64) -> StepCommit {
    StepCommit {
        task_id: task.id.clone(),
        key: IdempotencyKey::new(key),
        events,
        artifacts: Vec::new(),
        next: Vec::new(),
        at: Timestamp(at),
    }
}

fn next_generate(task: &Task) -> Envelope {
    Envelope::new(task.id.clone(), TraceId::generate(), StepPayload::Generate { round: 1 })
}

async fn events(store: &dyn StateStore, id: &TaskId) -> Vec<EventRecord> {
    store.events(id).await.expect("events")
}

fn seqs(records: &[EventRecord]) -> Vec<u64> {
    records.iter().map(|r| r.seq).collect()
}

async fn state(store: &dyn StateStore, id: &TaskId) -> TaskState {
    store.task(id).await.expect("task").state
}

#[track_caller]
fn assert_not_found<T: std::fmt::Debug>(result: Result<T, StoreError>, id: &TaskId, what: &str) {
    match result {
        Err(StoreError::TaskNotFound(found)) => assert_eq!(&found, id, "{what}"),
        other => panic!("{what} MUST return TaskNotFound({id}), got {other:?}"),
    }
}

#[track_caller]
fn assert_ambiguous(result: Result<TaskId, StoreError>, prefix: &str, matches: usize) {
    match result {
        Err(StoreError::AmbiguousPrefix { prefix: p, matches: m }) => {
            assert_eq!((p.as_str(), m), (prefix, matches), "resolve_prefix({prefix:?})");
        }
        other => panic!(
            "resolve_prefix({prefix:?}) MUST return AmbiguousPrefix with {matches} matches, got {other:?}"
        ),
    }
}

/// A new task is queued, its log starts with `Created`, and `updated_at` is its creation time.
async fn create_then_read(store: &dyn StateStore) {
    let task = sample_task(T1, 1_000);
    store.create_task(&task).await.expect("create_task");
    let log = events(store, &task.id).await;
    assert_eq!(
        log,
        [EventRecord {
            seq: 1,
            at: Timestamp(1_000),
            event: Event::Created { task: task.clone() }
        }]
    );
    let summary = store.task(&task.id).await.expect("task");
    assert_eq!(
        summary,
        TaskSummary { task, state: TaskState::Queued, updated_at: Timestamp(1_000) }
    );
}

/// Creating a task whose id is taken is refused and changes nothing.
async fn create_twice_is_refused_and_writes_nothing(store: &dyn StateStore) {
    let task = sample_task(T1, 1_000);
    store.create_task(&task).await.expect("create_task");
    let mut again = sample_task(T1, 2_000);
    again.goal = "something else".into();
    match store.create_task(&again).await {
        Err(StoreError::TaskExists(id)) => assert_eq!(id, task.id),
        other => panic!("a taken id MUST give TaskExists, got {other:?}"),
    }
    assert_eq!(seqs(&events(store, &task.id).await), [1], "TaskExists MUST write nothing");
    assert_eq!(store.task(&task.id).await.expect("task").task, task, "the first task is kept");
}

/// Every read and write of an unknown task id gives `TaskNotFound`.
async fn an_unknown_task_is_not_found(store: &dyn StateStore) {
    store.create_task(&sample_task(T1, 1_000)).await.expect("create_task");
    let ghost = sample_task(T2, 1_000);
    let id = &ghost.id;
    assert_not_found(store.events(id).await, id, "events");
    assert_not_found(store.events_after(id, 0).await, id, "events_after");
    assert_not_found(store.append(id, vec![plan_ready()], Timestamp(5), None).await, id, "append");
    let commit = step_commit(&ghost, "ghost/plan/r0", vec![plan_ready()], 5);
    assert_not_found(store.commit_step(commit).await, id, "commit_step");
    assert_not_found(store.artifact(id, &ArtifactName::plan()).await, id, "artifact");
    assert_not_found(store.task(id).await, id, "task");
}

/// Appended events get consecutive seqs, move the state on, and can be followed with `events_after`.
async fn append_numbers_events_and_can_be_followed(store: &dyn StateStore) {
    let task = sample_task(T1, 1_000);
    store.create_task(&task).await.expect("create_task");
    let (now, appended) = store
        .append(&task.id, vec![started(StepKind::Plan, 0), plan_ready()], Timestamp(2_000), None)
        .await
        .expect("append");
    assert_eq!((now, appended), (TaskState::Generating { round: 1 }, true));
    let log = events(store, &task.id).await;
    assert_eq!(seqs(&log), [1, 2, 3]);
    assert_eq!(log[2], EventRecord { seq: 3, at: Timestamp(2_000), event: plan_ready() });
    let after = store.events_after(&task.id, 1).await.expect("events_after");
    assert_eq!(seqs(&after), [2, 3]);
    assert!(store.events_after(&task.id, 3).await.expect("events_after").is_empty());
    let summary = store.task(&task.id).await.expect("task");
    assert_eq!(
        (summary.state, summary.updated_at),
        (TaskState::Generating { round: 1 }, Timestamp(2_000))
    );
}

/// With `only_if`, events are appended only when the current state passes, and the state is returned
/// either way.
async fn append_only_if_checks_the_state_it_appends_to(store: &dyn StateStore) {
    let task = sample_task(T1, 1_000);
    store.create_task(&task).await.expect("create_task");
    let awaiting: fn(TaskState) -> bool = |s| matches!(s, TaskState::AwaitingReview { .. });
    let apply = vec![Event::Applied { round: 1 }];
    let refused = store.append(&task.id, apply.clone(), Timestamp(2_000), Some(awaiting)).await;
    assert_eq!(refused.expect("append"), (TaskState::Queued, false));
    assert_eq!(seqs(&events(store, &task.id).await), [1], "a refused append MUST write nothing");

    store
        .append(&task.id, vec![Event::AwaitingReview { round: 1 }], Timestamp(3_000), None)
        .await
        .expect("append");
    let done = store.append(&task.id, apply, Timestamp(4_000), Some(awaiting)).await;
    assert_eq!(done.expect("append"), (TaskState::Applied, true));
    assert_eq!(seqs(&events(store, &task.id).await), [1, 2, 3]);
    assert_eq!(state(store, &task.id).await, TaskState::Applied);
}

/// The first commit of a key writes everything; a second commit of the key writes nothing and returns
/// the next messages the first recorded.
async fn commit_step_writes_once_per_key(store: &dyn StateStore) {
    let task = sample_task(T1, 1_000);
    store.create_task(&task).await.expect("create_task");
    let key = format!("{}/plan/r0", task.id);
    let next = vec![next_generate(&task)];
    let unkeyed =
        store.committed_next(&IdempotencyKey::new(key.clone())).await.expect("committed_next");
    assert_eq!(unkeyed, None, "MUST be None before anything is committed under the key");
    let mut first = step_commit(&task, &key, vec![started(StepKind::Plan, 0), plan_ready()], 2_000);
    first.artifacts = vec![(ArtifactName::plan(), b"{\"plan\":1}".to_vec())];
    first.next = next.clone();
    assert_eq!(store.commit_step(first).await.expect("commit_step"), CommitOutcome::Committed);
    assert_eq!(seqs(&events(store, &task.id).await), [1, 2, 3]);
    assert_eq!(state(store, &task.id).await, TaskState::Generating { round: 1 });
    let plan = store.artifact(&task.id, &ArtifactName::plan()).await.expect("artifact");
    assert_eq!(plan.as_deref(), Some(&b"{\"plan\":1}"[..]));

    let mut second =
        step_commit(&task, &key, vec![Event::Failed { step: None, reason: "x".into() }], 3_000);
    second.artifacts = vec![(ArtifactName::plan(), b"other".to_vec())];
    second.next = vec![next_generate(&task), next_generate(&task)];
    let recorded =
        store.committed_next(&IdempotencyKey::new(key.clone())).await.expect("committed_next");
    assert_eq!(recorded, Some(next.clone()), "MUST return the next messages the commit recorded");
    let outcome = store.commit_step(second).await.expect("commit_step again");
    assert_eq!(
        outcome,
        CommitOutcome::AlreadyCommitted { next },
        "MUST return the recorded next messages"
    );
    assert_eq!(
        seqs(&events(store, &task.id).await),
        [1, 2, 3],
        "AlreadyCommitted MUST write no event"
    );
    let plan = store.artifact(&task.id, &ArtifactName::plan()).await.expect("artifact");
    assert_eq!(
        plan.as_deref(),
        Some(&b"{\"plan\":1}"[..]),
        "AlreadyCommitted MUST write no artifact"
    );
}

/// A commit to a cancelled task writes nothing and reports the terminal state.
async fn commit_step_on_a_finished_task_writes_nothing(store: &dyn StateStore) {
    let task = sample_task(T1, 1_000);
    store.create_task(&task).await.expect("create_task");
    let cancel = vec![Event::Cancelled { reason: Some("not needed".into()) }];
    store.append(&task.id, cancel, Timestamp(2_000), None).await.expect("append");
    let mut late = step_commit(&task, &format!("{}/plan/r0", task.id), vec![plan_ready()], 3_000);
    late.artifacts = vec![(ArtifactName::plan(), b"late".to_vec())];
    late.next = vec![next_generate(&task)];
    let outcome = store.commit_step(late.clone()).await.expect("commit_step");
    assert_eq!(outcome, CommitOutcome::TaskFinished { state: TaskState::Cancelled });
    assert_eq!(seqs(&events(store, &task.id).await), [1, 2], "TaskFinished MUST write no event");
    let plan = store.artifact(&task.id, &ArtifactName::plan()).await.expect("artifact");
    assert_eq!(plan, None, "TaskFinished MUST write no artifact");
    let again = store.commit_step(late).await.expect("commit_step again");
    assert_eq!(
        again,
        CommitOutcome::TaskFinished { state: TaskState::Cancelled },
        "TaskFinished MUST not record the key either"
    );
}

/// An artifact written again under the same name replaces the old bytes; an unknown name is `None`.
async fn artifacts_are_replaced_and_absent_ones_are_none(store: &dyn StateStore) {
    let task = sample_task(T1, 1_000);
    store.create_task(&task).await.expect("create_task");
    assert_eq!(store.artifact(&task.id, &ArtifactName::patch(1)).await.expect("artifact"), None);
    for (round, bytes) in [(1u32, &b"--- v1"[..]), (2, &b"--- v2, longer"[..])] {
        let mut c =
            step_commit(&task, &format!("{}/generate/r{round}", task.id), Vec::new(), 2_000);
        c.artifacts = vec![(ArtifactName::patch(1), bytes.to_vec())];
        assert_eq!(store.commit_step(c).await.expect("commit_step"), CommitOutcome::Committed);
    }
    let patch = store.artifact(&task.id, &ArtifactName::patch(1)).await.expect("artifact");
    assert_eq!(
        patch.as_deref(),
        Some(&b"--- v2, longer"[..]),
        "a same-named artifact MUST be replaced"
    );
}

/// Tasks are listed newest first, with their folded state, at most `limit`.
async fn list_tasks_newest_first(store: &dyn StateStore) {
    assert!(store.list_tasks(10).await.expect("list_tasks").is_empty());
    for (id, at) in [(T2, 2_000), (T1, 1_000), (T3, 3_000)] {
        store.create_task(&sample_task(id, at)).await.expect("create_task");
    }
    let t2 = TaskId::parse(T2).expect("id");
    store
        .append(&t2, vec![started(StepKind::Plan, 0)], Timestamp(5_000), None)
        .await
        .expect("append");
    let listed = store.list_tasks(10).await.expect("list_tasks");
    let shown: Vec<(&str, TaskState, Timestamp)> =
        listed.iter().map(|s| (s.task.id.as_str(), s.state, s.updated_at)).collect();
    assert_eq!(
        shown,
        [
            (T3, TaskState::Queued, Timestamp(3_000)),
            (T2, TaskState::Planning, Timestamp(5_000)),
            (T1, TaskState::Queued, Timestamp(1_000)),
        ]
    );
    assert_eq!(store.list_tasks(2).await.expect("list_tasks").len(), 2);
}

/// A full id or a unique prefix of at least 4 characters resolves; anything else says how many matched.
async fn resolve_prefix_finds_one_task_or_says_how_many(store: &dyn StateStore) {
    for id in [T1, T2, T3] {
        store.create_task(&sample_task(id, 1_000)).await.expect("create_task");
    }
    let resolve = |p: &'static str| store.resolve_prefix(p);
    assert_eq!(resolve(T1).await.expect("full id").as_str(), T1);
    assert_eq!(resolve("0194").await.expect("unique prefix").as_str(), T3);
    assert_eq!(resolve("0194ffff-0000").await.expect("longer prefix").as_str(), T3);
    assert_ambiguous(resolve("0193").await, "0193", 2);
    assert_ambiguous(resolve("0195").await, "0195", 0);
    assert_ambiguous(resolve("019").await, "019", 3);
    let unknown = TaskId::parse("01950000-0000-7000-8000-000000000000").expect("id");
    assert_not_found(
        store.resolve_prefix(unknown.as_str()).await,
        &unknown,
        "resolve_prefix of an unknown full id",
    );
}
