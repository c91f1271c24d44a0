//! What the contract cannot say about the SQLite store: concurrent commits from several connections,
//! surviving a restart, and rows damaged outside Cadre.

use cadre_domain::ports::model::TokenUsage;
use cadre_domain::ports::store::{CommitOutcome, StateStore, StepCommit, StoreError};
use cadre_domain::{
    ArtifactName, Envelope, Event, IdempotencyKey, StepPayload, TaskState, Timestamp, TraceId,
};
use cadre_store::SqliteStore;
use cadre_testkit::contracts::store::sample_task;
use std::sync::Arc;

const T1: &str = "01930000-0000-7000-8000-00000000000a";

fn plan_commit(task: &cadre_domain::Task) -> StepCommit {
    StepCommit {
        task_id: task.id.clone(),
        key: IdempotencyKey::new(format!("{}/plan/r0", task.id)),
        events: vec![Event::PlanReady {
            summary: "s".into(),
            items: 1,
            usage: TokenUsage::default(),
        }],
        artifacts: vec![(ArtifactName::plan(), b"{}".to_vec())],
        next: vec![Envelope::new(
            task.id.clone(),
            TraceId::generate(),
            StepPayload::Generate { round: 1 },
        )],
        at: Timestamp(2_000),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_commits_of_one_key_from_many_connections_commit_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cadre.db");
    let task = sample_task(T1, 1_000);
    let stores: Vec<Arc<SqliteStore>> =
        (0..8).map(|_| Arc::new(SqliteStore::open(&path).unwrap())).collect();
    stores[0].create_task(&task).await.unwrap();
    let commit = plan_commit(&task);
    let mut racers = Vec::new();
    for i in 0..16 {
        let (store, commit) = (Arc::clone(&stores[i % stores.len()]), commit.clone());
        racers.push(tokio::spawn(async move { store.commit_step(commit).await.unwrap() }));
    }
    let mut committed = 0;
    for racer in racers {
        match racer.await.unwrap() {
            CommitOutcome::Committed => committed += 1,
            CommitOutcome::AlreadyCommitted { next } => assert_eq!(next, commit.next),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(committed, 1, "exactly one of the racing commits writes");
    assert_eq!(stores[3].events(&task.id).await.unwrap().len(), 2, "the events were written once");
}

#[tokio::test]
async fn everything_survives_reopening_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cadre.db");
    let task = sample_task(T1, 1_000);
    let before = {
        let store = SqliteStore::open(&path).unwrap();
        store.create_task(&task).await.unwrap();
        store.commit_step(plan_commit(&task)).await.unwrap();
        store.task(&task.id).await.unwrap()
    };
    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(store.task(&task.id).await.unwrap(), before);
    assert_eq!(before.state, TaskState::Generating { round: 1 });
    assert_eq!(store.artifact(&task.id, &ArtifactName::plan()).await.unwrap().unwrap(), b"{}");
    let again = store.commit_step(plan_commit(&task)).await.unwrap();
    assert!(matches!(again, CommitOutcome::AlreadyCommitted { .. }), "{again:?}");
    assert_eq!(store.resolve_prefix("01930000").await.unwrap(), task.id);
}

#[tokio::test]
async fn a_damaged_row_is_reported_with_its_task_and_position() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cadre.db");
    let store = SqliteStore::open(&path).unwrap();
    let task = sample_task(T1, 1_000);
    store.create_task(&task).await.unwrap();
    store.commit_step(plan_commit(&task)).await.unwrap();

    let raw = rusqlite::Connection::open(&path).unwrap();
    raw.execute("UPDATE store_events SET event = '{\"kind\":\"nope' WHERE seq = 2", []).unwrap();
    let corrupt = |r: Result<_, StoreError>| match r {
        Err(StoreError::Corrupt(why)) => why,
        other => panic!("expected Corrupt, got {other:?}"),
    };
    let why = corrupt(store.task(&task.id).await.map(|_| ()));
    assert!(why.contains(&format!("event 2 of task {T1}")), "{why}");
    corrupt(store.events(&task.id).await.map(|_| ()));
    corrupt(store.list_tasks(10).await.map(|_| ()));
    corrupt(store.append(&task.id, Vec::new(), Timestamp(3_000), None).await.map(|_| ()));

    raw.execute("UPDATE store_step_commits SET next = 'not json'", []).unwrap();
    let why = corrupt(store.commit_step(plan_commit(&task)).await.map(|_| ()));
    assert!(why.contains("step commit") && why.contains(T1), "{why}");

    raw.execute("UPDATE store_tasks SET task = '[]'", []).unwrap();
    let why = corrupt(store.task(&task.id).await.map(|_| ()));
    assert!(why.contains(&format!("task row of task {T1}")), "{why}");
}

#[tokio::test]
async fn prefixes_are_matched_without_regard_to_case_or_spaces() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("cadre.db")).unwrap();
    let id = "0193abcd-0000-7000-8000-00000000000a";
    store.create_task(&sample_task(id, 1_000)).await.unwrap();
    assert_eq!(store.resolve_prefix(" 0193ABCD ").await.unwrap().as_str(), id);
    assert_eq!(store.resolve_prefix(&id.to_uppercase()).await.unwrap().as_str(), id);
}

#[tokio::test]
async fn a_file_that_is_not_a_database_is_reported_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cadre.db");
    std::fs::write(&path, vec![b'x'; 4096]).unwrap();
    match SqliteStore::open(&path) {
        Err(StoreError::Corrupt(why)) => assert!(why.contains("cadre.db"), "{why}"),
        other => panic!("expected Corrupt, got {other:?}"),
    }
}
