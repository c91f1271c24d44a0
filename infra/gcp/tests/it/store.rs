//! `FirestoreStore` against the Firestore emulator: the port's contract suite, then what only a
//! concurrent, networked store can get wrong (two deliveries committing one key at once, racing
//! appends), and artifacts too large for a document going to Cloud Storage.
//!
//! The emulator runs Firestore's real transaction and precondition semantics (pessimistic locks,
//! `ABORTED` on contention). What only a real project shows: latency, quotas, IAM, and the
//! multi-region behaviour of a production database.

use std::sync::Arc;

use cadre_domain::ports::store::{CommitOutcome, StateStore, StepCommit, StoreError};
use cadre_domain::{
    ArtifactName, Envelope, Event, IdempotencyKey, StepPayload, Timestamp, TraceId,
};
use cadre_gcp::{CloudStorage, FirestoreConfig, FirestoreStore, GoogleAuth, StorageConfig};
use cadre_testkit::contracts::store::{sample_task, store_contract};

use crate::emulators::{emulators, fresh_project};
use crate::storage_server::StorageServer;

pub(crate) fn fresh_store() -> FirestoreStore {
    let config = FirestoreConfig::emulator(&emulators().firestore, &fresh_project());
    FirestoreStore::new(&config).unwrap()
}

#[tokio::test]
async fn firestore_store_meets_the_store_contract() {
    store_contract(|| async { Arc::new(fresh_store()) as Arc<dyn StateStore> }).await;
}

const TASK: &str = "01930000-0000-7000-8000-0000000000f1";

fn plan_commit(task: &cadre_domain::Task, marker: &str) -> StepCommit {
    StepCommit {
        task_id: task.id.clone(),
        key: IdempotencyKey::new(format!("{}/plan/r0", task.id)),
        events: vec![
            Event::StepStarted { step: cadre_domain::StepKind::Plan, round: 0, attempt: 1 },
            Event::PlanReady { summary: marker.into(), items: 1, usage: Default::default() },
        ],
        artifacts: vec![(ArtifactName::plan(), marker.as_bytes().to_vec())],
        next: vec![Envelope::new(
            task.id.clone(),
            TraceId::generate(),
            StepPayload::Generate { round: 1 },
        )],
        at: Timestamp(2_000),
    }
}

/// Two deliveries of one message racing to commit: exactly one commit is written, the other is told
/// what the winner recorded, and the log holds the step's events once.
#[tokio::test]
async fn two_deliveries_of_one_message_cannot_both_commit() {
    let store = Arc::new(fresh_store());
    let task = sample_task(TASK, 1_000);
    store.create_task(&task).await.unwrap();
    let (a, b) = (plan_commit(&task, "first"), plan_commit(&task, "second"));
    let (one, two) = tokio::join!(store.commit_step(a.clone()), store.commit_step(b.clone()));
    let outcomes = [one.unwrap(), two.unwrap()];
    let committed = outcomes.iter().filter(|o| **o == CommitOutcome::Committed).count();
    assert_eq!(committed, 1, "exactly one delivery commits: {outcomes:?}");
    let winner = if outcomes[0] == CommitOutcome::Committed { &a } else { &b };
    let loser = outcomes.iter().find(|o| **o != CommitOutcome::Committed).unwrap();
    assert_eq!(loser, &CommitOutcome::AlreadyCommitted { next: winner.next.clone() });
    let log = store.events(&task.id).await.unwrap();
    let seqs: Vec<u64> = log.iter().map(|r| r.seq).collect();
    assert_eq!(seqs, [1, 2, 3], "the step's events are in the log once");
    let plan = store.artifact(&task.id, &ArtifactName::plan()).await.unwrap().unwrap();
    assert_eq!(plan, winner.artifacts[0].1, "the artifact is the winner's");
}

/// Appends racing on one log all land, numbered without gaps or repeats.
#[tokio::test]
async fn racing_appends_are_numbered_without_gaps() {
    let store = Arc::new(fresh_store());
    let task = sample_task(TASK, 1_000);
    store.create_task(&task).await.unwrap();
    let mut racers = tokio::task::JoinSet::new();
    for i in 0..4u32 {
        let (store, id) = (store.clone(), task.id.clone());
        racers.spawn(async move {
            let event = Event::StepRetrying {
                step: cadre_domain::StepKind::Plan,
                round: 0,
                attempt: i,
                error: format!("racer {i}"),
                retry_in_ms: 1,
            };
            store.append(&id, vec![event], Timestamp(3_000), None).await.unwrap()
        });
    }
    while let Some(joined) = racers.join_next().await {
        assert!(joined.unwrap().1, "every racer appended");
    }
    let seqs: Vec<u64> = store.events(&task.id).await.unwrap().iter().map(|r| r.seq).collect();
    assert_eq!(seqs, [1, 2, 3, 4, 5]);
    assert_eq!(store.task(&task.id).await.unwrap().updated_at, Timestamp(3_000));
}

/// An artifact above the threshold is kept in Cloud Storage (content-addressed) and read back; small
/// ones stay in their document. Bytes changed behind the store's back are refused as corrupt.
#[tokio::test]
async fn large_artifacts_go_to_cloud_storage_and_are_checked_on_read() {
    let bucket = StorageServer::start().await;
    let storage = CloudStorage::new(&StorageConfig {
        base_url: bucket.base_url(),
        bucket: "cadre-artifacts".into(),
        auth: GoogleAuth::Emulator,
    })
    .unwrap();
    let store = fresh_store().with_blobs(storage, 1024);
    let task = sample_task(TASK, 1_000);
    store.create_task(&task).await.unwrap();
    let big: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let mut commit = plan_commit(&task, "big");
    commit.artifacts =
        vec![(ArtifactName::patch(1), big.clone()), (ArtifactName::plan(), b"small".to_vec())];
    assert_eq!(store.commit_step(commit).await.unwrap(), CommitOutcome::Committed);
    assert_eq!(bucket.objects().len(), 1, "only the large artifact is uploaded");
    assert_eq!(store.artifact(&task.id, &ArtifactName::patch(1)).await.unwrap(), Some(big));
    assert_eq!(
        store.artifact(&task.id, &ArtifactName::plan()).await.unwrap().as_deref(),
        Some(&b"small"[..])
    );

    bucket.tamper_all();
    match store.artifact(&task.id, &ArtifactName::patch(1)).await {
        Err(StoreError::Corrupt(why)) => assert!(why.contains("sha256"), "{why}"),
        other => panic!("tampered bytes MUST be refused as corrupt, got {other:?}"),
    }
}

/// With Firestore unreachable, every call says the store is unavailable (retryable), not corrupt.
#[tokio::test]
async fn an_unreachable_firestore_is_unavailable() {
    let config = FirestoreConfig::emulator("127.0.0.1:9", "cadre-test-unreachable");
    let store = FirestoreStore::new(&config).unwrap();
    let task = sample_task(TASK, 1_000);
    match store.task(&task.id).await {
        Err(error @ StoreError::Unavailable(_)) => {
            assert!(error.is_retryable());
            assert!(error.to_string().contains("127.0.0.1:9"), "{error}");
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
}
