//! What the contract cannot say about the SQLite queue: sharing a file between connections, surviving a
//! restart, keeping no settled rows, receive order and its exact dead-letter reason.

use cadre_domain::ports::clock::ManualClock;
use cadre_domain::ports::queue::{OutgoingMessage, Queue, QueueDepth, QueueError};
use cadre_domain::{MessageId, Timestamp};
use cadre_queue::{EmbeddedQueue, QueueConfig};
use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

const HOUR: Duration = Duration::from_secs(3600);

fn message(id: &str, body: &[u8]) -> OutgoingMessage {
    OutgoingMessage { id: MessageId::new(id), body: body.to_vec(), delay: Duration::ZERO }
}

fn clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(Timestamp(1_000_000)))
}

fn open(path: &Path, name: &str, clock: &Arc<ManualClock>) -> EmbeddedQueue {
    EmbeddedQueue::open(path, name, QueueConfig::default(), Arc::clone(clock) as _).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn consumers_on_two_connections_never_get_the_same_message() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cadre.db");
    let clock = clock();
    let first = Arc::new(open(&path, "work", &clock));
    let second = Arc::new(open(&path, "work", &clock));
    let batch = (0..400).map(|i| message(&format!("m{i:03}"), b"x")).collect();
    first.publish(batch).await.unwrap();

    let mut consumers = Vec::new();
    for queue in [&first, &second, &first, &second] {
        let queue = Arc::clone(queue);
        consumers.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            loop {
                let got = queue.receive(7, HOUR).await.unwrap();
                if got.is_empty() {
                    return ids;
                }
                ids.extend(got.into_iter().map(|d| d.id.as_str().to_owned()));
            }
        }));
    }
    let mut seen = HashSet::new();
    let mut per_consumer = Vec::new();
    for consumer in consumers {
        let ids = consumer.await.unwrap();
        per_consumer.push(ids.len());
        for id in ids {
            assert!(
                seen.insert(id.clone()),
                "{id} was delivered twice within its visibility timeout"
            );
        }
    }
    assert_eq!(seen.len(), 400, "every message delivered once; per consumer: {per_consumer:?}");
    assert_eq!(second.depth().await.unwrap(), QueueDepth { ready: 0, pending: 400, dead: 0 });
}

#[tokio::test]
async fn messages_and_dead_letters_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cadre.db");
    let clock = clock();
    {
        let queue = open(&path, "work", &clock);
        queue
            .publish(vec![message("a", b"1"), message("b", b"2"), message("c", b"3")])
            .await
            .unwrap();
        let got = queue.receive(2, Duration::from_secs(30)).await.unwrap();
        queue.dead_letter(&got[0].receipt, "bad input").await.unwrap();
        // got[1] stays in flight: its worker "crashes" with the process.
    }
    let queue = open(&path, "work", &clock);
    assert_eq!(queue.depth().await.unwrap(), QueueDepth { ready: 1, pending: 1, dead: 1 });
    assert_eq!(queue.dead_letters(10).await.unwrap()[0].reason, "bad input");
    clock.advance_millis(30_000);
    let got = queue.receive(10, HOUR).await.unwrap();
    let shown: Vec<(&str, u32)> = got.iter().map(|d| (d.id.as_str(), d.delivery_count)).collect();
    assert_eq!(shown, [("c", 1), ("b", 2)], "c was ready first; b came back after its timeout");
}

#[tokio::test]
async fn acked_messages_leave_no_rows_behind() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cadre.db");
    let queue = open(&path, "work", &clock());
    let batch = (0..250).map(|i| message(&format!("m{i}"), &[0u8; 100])).collect();
    queue.publish(batch).await.unwrap();
    for _ in 0..3 {
        let got = queue.receive(100, HOUR).await.unwrap();
        let receipts: Vec<_> = got.into_iter().map(|d| d.receipt).collect();
        queue.ack(&receipts).await.unwrap();
    }
    let conn = rusqlite::Connection::open(&path).unwrap();
    let rows: i64 =
        conn.query_row("SELECT count(*) FROM queue_messages", [], |r| r.get(0)).unwrap();
    assert_eq!(rows, 0, "acked rows are deleted, so the table never fills with settled work");
}

#[tokio::test]
async fn the_longest_visible_message_comes_first() {
    let dir = tempfile::tempdir().unwrap();
    let clock = clock();
    let queue = open(&dir.path().join("cadre.db"), "work", &clock);
    queue.publish(vec![message("x", b"")]).await.unwrap();
    let x = queue.receive(1, Duration::from_secs(30)).await.unwrap();
    assert_eq!(x[0].id.as_str(), "x");
    clock.advance_millis(10_000);
    queue.publish(vec![message("y", b"")]).await.unwrap();
    queue.publish(vec![message("z", b"")]).await.unwrap();
    clock.advance_millis(30_000);
    // y and z have been visible since t+10 s, x only since t+30 s.
    let mut order = Vec::new();
    for _ in 0..3 {
        order.push(queue.receive(1, HOUR).await.unwrap().remove(0).id.as_str().to_owned());
    }
    assert_eq!(order, ["y", "z", "x"]);
}

#[tokio::test]
async fn named_queues_in_one_file_are_separate() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cadre.db");
    let clock = clock();
    let plan = open(&path, "plan", &clock);
    let test = open(&path, "test", &clock);
    plan.publish(vec![message("same-id", b"for plan")]).await.unwrap();
    test.publish(vec![message("same-id", b"for test")]).await.unwrap();
    let from_plan = plan.receive(10, HOUR).await.unwrap();
    let from_test = test.receive(10, HOUR).await.unwrap();
    assert_eq!((from_plan.len(), from_plan[0].body.as_slice()), (1, &b"for plan"[..]));
    assert_eq!((from_test.len(), from_test[0].body.as_slice()), (1, &b"for test"[..]));
    let receipt = from_plan[0].receipt.clone();
    assert!(matches!(
        test.ack(std::slice::from_ref(&receipt)).await,
        Err(QueueError::StaleReceipt(_))
    ));
    plan.ack(&[receipt]).await.unwrap();
}

#[tokio::test]
async fn a_message_that_keeps_timing_out_is_dead_lettered_with_the_likely_cause() {
    let dir = tempfile::tempdir().unwrap();
    let clock = clock();
    let config = QueueConfig { max_deliveries: 2 };
    let queue =
        EmbeddedQueue::open(&dir.path().join("cadre.db"), "work", config, clock.clone()).unwrap();
    queue.publish(vec![message("m", b"")]).await.unwrap();
    for _ in 0..2 {
        assert_eq!(queue.receive(1, Duration::from_secs(1)).await.unwrap().len(), 1);
        clock.advance_millis(1_000);
    }
    assert!(queue.receive(1, Duration::from_secs(1)).await.unwrap().is_empty());
    let dead = queue.dead_letters(10).await.unwrap();
    assert_eq!(
        dead[0].reason,
        "delivered 2 times without being acked (max 2); the worker handling it probably crashed"
    );
}

#[tokio::test]
async fn a_file_that_is_not_a_database_is_reported_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cadre.db");
    std::fs::write(&path, vec![b'x'; 4096]).unwrap();
    match EmbeddedQueue::open(&path, "work", QueueConfig::default(), clock()) {
        Err(QueueError::Corrupt(why)) => assert!(why.contains("cadre.db"), "{why}"),
        other => panic!("expected Corrupt, got {other:?}"),
    }
}
