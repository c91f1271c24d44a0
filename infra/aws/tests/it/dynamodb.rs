//! `DynamoDbStore` on a real DynamoDB-protocol server (moto): the port's contract suite, then what the
//! suite cannot show: a delivery whose commit loses the race to another delivery of its message (and an
//! append that loses to a commit), artifacts larger than an item, and a missing table named with its fix.

use axum::extract::{Request, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use cadre_aws::{DynamoDbConfig, DynamoDbStore, INLINE_BYTES};
use cadre_domain::ports::store::{CommitOutcome, StateStore, StepCommit, StoreError};
use cadre_domain::{
    ArtifactName, Envelope, Event, IdempotencyKey, StepKind, StepPayload, TaskId, Timestamp,
    TraceId,
};
use cadre_testkit::contracts::store::{sample_task, store_contract};
use std::sync::Arc;
use tokio::sync::{oneshot, Mutex};

use crate::moto;

const TASK: &str = "01930000-0000-7000-8000-0000000000d1";

fn commit(task: &TaskId, key: &str, events: Vec<Event>, at: i64) -> StepCommit {
    StepCommit {
        task_id: task.clone(),
        key: IdempotencyKey::new(key),
        events,
        artifacts: Vec::new(),
        next: Vec::new(),
        at: Timestamp(at),
    }
}

fn started(round: u32) -> Event {
    Event::StepStarted { step: StepKind::Generate, round, attempt: 1 }
}

async fn seqs(store: &DynamoDbStore, task: &TaskId) -> Vec<u64> {
    store.events(task).await.unwrap().iter().map(|r| r.seq).collect()
}

#[tokio::test]
async fn dynamodb_store_passes_the_store_contract() {
    store_contract(|| async { Arc::new(moto::store("contract").await) as Arc<dyn StateStore> })
        .await;
}

/// A pass-through to the server that holds the next `TransactWriteItems` until the test releases it:
/// the one place two writers' steps can be ordered at will. (Racing real concurrent requests would
/// test moto instead: its transactions restore a copy of the table on failure and are not isolated.)
#[derive(Clone)]
struct Proxy {
    upstream: String,
    http: reqwest::Client,
    gate: Arc<Mutex<Option<Gate>>>,
}

/// Told when a transaction is held; waited on to let it go.
type Gate = (oneshot::Sender<()>, oneshot::Receiver<()>);

impl Proxy {
    async fn start() -> (String, Proxy) {
        let proxy = Proxy {
            upstream: moto::endpoint().url,
            http: reqwest::Client::new(),
            gate: Arc::default(),
        };
        let app = axum::Router::new().fallback(forward).with_state(proxy.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (url, proxy)
    }

    /// Holds the next transaction: the first receiver fires once it is held, the sender lets it go.
    async fn hold_next_transaction(&self) -> (oneshot::Receiver<()>, oneshot::Sender<()>) {
        let (held, is_held) = oneshot::channel();
        let (release, released) = oneshot::channel();
        *self.gate.lock().await = Some((held, released));
        (is_held, release)
    }
}

async fn forward(State(proxy): State<Proxy>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX).await.unwrap();
    let target = parts.headers.get("x-amz-target").and_then(|v| v.to_str().ok()).unwrap_or("");
    if target.ends_with(".TransactWriteItems") {
        if let Some((held, released)) = proxy.gate.lock().await.take() {
            held.send(()).unwrap();
            released.await.unwrap();
        }
    }
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let mut out = proxy.http.request(parts.method, format!("{}{path}", proxy.upstream)).body(body);
    for (name, value) in &parts.headers {
        if name != header::HOST && name != header::CONTENT_LENGTH {
            out = out.header(name, value);
        }
    }
    let answer = out.send().await.unwrap();
    let status = answer.status();
    let headers = answer.headers().clone();
    let bytes = answer.bytes().await.unwrap();
    let mut response = (status, bytes).into_response();
    for (name, value) in &headers {
        if name != header::CONTENT_LENGTH && name != header::TRANSFER_ENCODING {
            response.headers_mut().insert(name, value.clone());
        }
    }
    response
}

#[tokio::test]
async fn a_delivery_that_loses_the_race_writes_nothing_and_is_told_what_won() {
    let config = moto::fresh_table("race").await;
    let direct = DynamoDbStore::connect(&config).await.unwrap();
    let (url, proxy) = Proxy::start().await;
    let slow = Arc::new(
        DynamoDbStore::connect(&DynamoDbConfig { endpoint_url: Some(url), ..config })
            .await
            .unwrap(),
    );
    let task = sample_task(TASK, 1_000);
    direct.create_task(&task).await.unwrap();
    let key = format!("{}/generate/r1", task.id);
    let delivery = |n: u32| {
        let mut c = commit(&task.id, &key, vec![started(n)], 2_000 + i64::from(n));
        c.next = vec![Envelope::new(
            task.id.clone(),
            TraceId::for_task(&task.id),
            StepPayload::Test { round: n },
        )];
        c.artifacts = vec![(ArtifactName::patch(1), format!("patch {n}").into_bytes())];
        c
    };

    // Delivery 1 reads (nothing committed, task running) and sends its transaction, which is held
    // while delivery 2 of the same message reads the same state and commits.
    let (is_held, release) = proxy.hold_next_transaction().await;
    let first = tokio::spawn({
        let (slow, c) = (Arc::clone(&slow), delivery(1));
        async move { slow.commit_step(c).await }
    });
    is_held.await.unwrap();
    let second = delivery(2);
    let recorded = second.next.clone();
    assert_eq!(direct.commit_step(second).await.unwrap(), CommitOutcome::Committed);
    release.send(()).unwrap();
    assert_eq!(
        first.await.unwrap().unwrap(),
        CommitOutcome::AlreadyCommitted { next: recorded },
        "the late delivery's transaction is cancelled; it reads again and finds the commit"
    );
    let log = direct.events(&task.id).await.unwrap();
    assert_eq!(log.iter().map(|r| &r.event).collect::<Vec<_>>()[1..], [&started(2)]);
    let patch = direct.artifact(&task.id, &ArtifactName::patch(1)).await.unwrap();
    assert_eq!(patch.as_deref(), Some(&b"patch 2"[..]), "nothing of the loser is written");

    // An append that loses to a commit appends after it, with the next seq.
    let (is_held, release) = proxy.hold_next_transaction().await;
    let append = tokio::spawn({
        let (slow, id) = (Arc::clone(&slow), task.id.clone());
        async move { slow.append(&id, vec![started(7)], Timestamp(4_000), None).await }
    });
    is_held.await.unwrap();
    let other = commit(&task.id, &format!("{}/test/r1", task.id), vec![started(3)], 3_000);
    assert_eq!(direct.commit_step(other).await.unwrap(), CommitOutcome::Committed);
    release.send(()).unwrap();
    let (_, appended) = append.await.unwrap().unwrap();
    assert!(appended);
    let log = direct.events(&task.id).await.unwrap();
    let shown: Vec<(u64, &Event)> = log.iter().map(|r| (r.seq, &r.event)).skip(1).collect();
    assert_eq!(shown, [(2, &started(2)), (3, &started(3)), (4, &started(7))]);
}

#[tokio::test]
async fn artifacts_larger_than_an_item_are_split_and_too_large_commits_refused() {
    let store = moto::store("large").await;
    let task = sample_task(TASK, 1_000);
    store.create_task(&task).await.unwrap();
    // Three chunks, the last one short; bytes that are not text.
    let big: Vec<u8> = (0..2 * INLINE_BYTES + 1_234).map(|i| (i * 7 % 251) as u8).collect();
    let mut c = commit(&task.id, &format!("{}/plan/r0", task.id), Vec::new(), 2_000);
    c.artifacts = vec![(ArtifactName::plan(), big.clone())];
    assert_eq!(store.commit_step(c).await.unwrap(), CommitOutcome::Committed);
    let read = store.artifact(&task.id, &ArtifactName::plan()).await.unwrap();
    assert!(read.as_deref() == Some(big.as_slice()), "a chunked artifact reads back whole");

    let mut c = commit(&task.id, &format!("{}/plan/r1", task.id), Vec::new(), 3_000);
    c.artifacts = vec![(ArtifactName::plan(), b"small now".to_vec())];
    assert_eq!(store.commit_step(c).await.unwrap(), CommitOutcome::Committed);
    let read = store.artifact(&task.id, &ArtifactName::plan()).await.unwrap();
    assert_eq!(read.as_deref(), Some(&b"small now"[..]), "a smaller artifact replaces the chunks");

    let huge = vec![b'x'; 5 * 1024 * 1024];
    let mut c = commit(&task.id, &format!("{}/generate/r1", task.id), vec![started(1)], 4_000);
    c.artifacts = vec![(ArtifactName::patch(1), huge)];
    let error = store.commit_step(c).await.unwrap_err();
    assert!(
        matches!(&error, StoreError::Corrupt(why) if why.contains("over its limit of 100 items and 4194304 bytes")),
        "{error}"
    );
    assert!(!error.is_retryable(), "retrying cannot make it fit");
    assert_eq!(seqs(&store, &task.id).await, [1], "a refused commit writes nothing");
    let key = IdempotencyKey::new(format!("{}/generate/r1", task.id));
    assert_eq!(store.committed_next(&key).await.unwrap(), None, "nor records its key");
}

#[tokio::test]
async fn a_missing_table_is_named_with_its_fix() {
    let mut config = DynamoDbConfig::parse("dynamodb://no-such-table").unwrap();
    config.endpoint_url = Some(moto::endpoint().url);
    config.region = Some("us-east-1".into());
    config.credentials = moto::credentials();
    let error = DynamoDbStore::connect(&config).await.unwrap_err();
    let text = error.to_string();
    assert!(matches!(error, StoreError::Unavailable(_)), "{text}");
    assert!(
        text.contains("dynamodb table no-such-table: DescribeTable failed")
            && text.contains(
                "the table does not exist: create it (terraform/aws does), or fix CADRE_STATE"
            ),
        "{text}"
    );
}
