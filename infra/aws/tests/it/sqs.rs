//! The SQS adapter's behaviour on a real SQS-protocol server: what the contract suite cannot drive
//! (real visibility timeouts, redrive, FIFO groups, routing) and what the issue asks to see.

use cadre_aws::{QueueUrl, SqsConfig, SqsQueue};
use cadre_domain::ports::clock::SystemClock;
use cadre_domain::ports::queue::{Delivery, OutgoingMessage, Queue, QueueDepth, QueueError};
use cadre_domain::{Envelope, MessageId, StepPayload, TaskId, TraceId};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crate::moto;

const VISIBILITY: Duration = Duration::from_secs(30);

fn message(id: &str, body: &[u8]) -> OutgoingMessage {
    OutgoingMessage { id: MessageId::new(id), body: body.to_vec(), delay: Duration::ZERO }
}

fn envelope_message(envelope: &Envelope) -> OutgoingMessage {
    message(envelope.message_id.as_str(), &envelope.to_bytes())
}

async fn receive_all(q: &dyn Queue, n: usize, visibility: Duration) -> Vec<Delivery> {
    let mut got = Vec::new();
    for _ in 0..20 {
        if got.len() >= n {
            break;
        }
        got.extend(q.receive(n - got.len(), visibility).await.unwrap());
    }
    got
}

#[tokio::test]
async fn send_receive_delete() {
    let q = moto::queue("basic", false, 5).await;
    let binary: &[u8] = &[0, 159, 146, 150, 255];
    q.publish(vec![message("a", b"alpha"), message("b", binary), message("c", "γάμμα".as_bytes())])
        .await
        .unwrap();
    assert_eq!(q.depth().await.unwrap(), QueueDepth { ready: 3, pending: 0, dead: 0 });

    let mut got = receive_all(&*q, 3, VISIBILITY).await;
    got.sort_by(|a, b| a.id.cmp(&b.id));
    let bodies: Vec<(&str, &[u8], u32)> =
        got.iter().map(|d| (d.id.as_str(), d.body.as_slice(), d.delivery_count)).collect();
    assert_eq!(
        bodies,
        [("a", &b"alpha"[..], 1), ("b", binary, 1), ("c", "γάμμα".as_bytes(), 1)],
        "ids and bytes survive the trip, binary included"
    );
    assert!(got.iter().all(|d| d.published_at.0 > 1_600_000_000_000), "SentTimestamp is read");
    assert_eq!(q.depth().await.unwrap(), QueueDepth { ready: 0, pending: 3, dead: 0 });

    let receipts: Vec<_> = got.iter().map(|d| d.receipt.clone()).collect();
    q.ack(&receipts).await.unwrap();
    assert_eq!(q.depth().await.unwrap(), QueueDepth::default(), "acked messages are deleted");
    assert!(q.receive(10, VISIBILITY).await.unwrap().is_empty());
    assert!(
        matches!(q.ack(&receipts[..1]).await, Err(QueueError::StaleReceipt(_))),
        "a second ack is refused"
    );
}

#[tokio::test]
async fn visibility_timeout_redelivers_and_extend_keeps_a_message_hidden() {
    let q = moto::queue("visibility", false, 5).await;
    q.publish(vec![message("lost", b"1"), message("long", b"2")]).await.unwrap();
    // Two seconds, so a slow server cannot let the timeout pass before `extend` is called.
    let first = receive_all(&*q, 2, Duration::from_secs(2)).await;
    assert_eq!(first.len(), 2);
    let by_id: HashMap<&str, &Delivery> = first.iter().map(|d| (d.id.as_str(), d)).collect();
    q.extend(&by_id["long"].receipt, VISIBILITY).await.unwrap();

    tokio::time::sleep(Duration::from_millis(2_300)).await;
    let again = q.receive(10, VISIBILITY).await.unwrap();
    assert_eq!(again.len(), 1, "only the message whose timeout ran out comes back: {again:?}");
    let lost = &again[0];
    assert_eq!(lost.id.as_str(), "lost");
    assert_eq!(lost.delivery_count, 2, "a redelivery counts");
    assert_ne!(lost.receipt, by_id["lost"].receipt, "a redelivery has a new receipt");

    let old = &by_id["lost"].receipt;
    assert!(
        matches!(q.ack(std::slice::from_ref(old)).await, Err(QueueError::StaleReceipt(r)) if &r == old),
        "the receipt of the first delivery is stale once the message was redelivered"
    );
    q.ack(&[lost.receipt.clone(), by_id["long"].receipt.clone()]).await.unwrap();
    assert_eq!(q.depth().await.unwrap(), QueueDepth::default());
}

#[tokio::test]
async fn redrive_dead_letters_after_max_receives() {
    let q = moto::queue("redrive", false, 2).await;
    q.publish(vec![message("crasher", b"boom"), message("flaky", b"again")]).await.unwrap();
    // A zero visibility timeout stands for a worker that crashed at once; retry_later for one that
    // handed the message back. Both count as receives.
    for n in 1..=2 {
        let got = receive_all(&*q, 2, Duration::ZERO).await;
        assert_eq!(got.len(), 2, "delivery {n}: {got:?}");
        for d in &got {
            assert_eq!(d.delivery_count, n);
            if d.id.as_str() == "flaky" {
                q.retry_later(&d.receipt, Duration::ZERO).await.unwrap();
            }
        }
    }
    assert!(
        q.receive(10, VISIBILITY).await.unwrap().is_empty(),
        "past maxReceiveCount the queue moves the messages instead of delivering them"
    );
    let mut dead = q.dead_letters(10).await.unwrap();
    dead.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(dead.len(), 2, "{dead:?}");
    assert_eq!(dead[0].id.as_str(), "crasher");
    assert_eq!(dead[0].body, b"boom", "a dead letter keeps the bytes");
    assert_eq!(dead[0].delivery_count, 2);
    assert!(dead[0].reason.contains("delivered 2 times"), "{:?}", dead[0].reason);
    assert_eq!(q.depth().await.unwrap(), QueueDepth { ready: 0, pending: 0, dead: 2 });
    assert_eq!(
        q.dead_letters(10).await.unwrap().len(),
        2,
        "listing dead letters does not hide them"
    );
}

#[tokio::test]
async fn malformed_body_is_dead_lettered_with_its_reason() {
    let q = moto::queue("malformed", false, 5).await;
    let garbage: &[u8] = b"{\"schema_version\": 1, \"task_id\": ";
    let binary: &[u8] = &[0xff, 0x00, b'{'];
    q.publish(vec![message("garbage", garbage), message("binary", binary)]).await.unwrap();
    for d in receive_all(&*q, 2, VISIBILITY).await {
        // What the engine does with a body that is no envelope.
        let error = Envelope::from_bytes(&d.body).unwrap_err();
        q.dead_letter(&d.receipt, &format!("{error}; kept unchanged")).await.unwrap();
        assert!(
            matches!(
                q.ack(std::slice::from_ref(&d.receipt)).await,
                Err(QueueError::StaleReceipt(_))
            ),
            "a dead-lettered receipt is settled"
        );
    }
    assert_eq!(
        q.depth().await.unwrap(),
        QueueDepth { ready: 0, pending: 0, dead: 2 },
        "dead-lettered messages leave the queue"
    );
    let mut dead = q.dead_letters(10).await.unwrap();
    dead.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(dead[0].id.as_str(), "binary");
    assert_eq!(dead[0].body, binary, "binary bytes survive the dead-letter queue");
    assert_eq!(dead[1].id.as_str(), "garbage");
    assert_eq!(dead[1].body, garbage);
    for d in &dead {
        assert!(d.reason.starts_with("malformed envelope: "), "{:?}", d.reason);
        assert!(d.reason.ends_with("; kept unchanged"), "the whole reason is kept: {:?}", d.reason);
        assert_eq!(d.delivery_count, 1);
        assert!(d.dead_at.0 > 1_600_000_000_000);
    }
}

#[tokio::test]
async fn fifo_delivers_each_task_in_order_and_one_at_a_time() {
    let q = moto::queue("order", true, 5).await;
    let payloads = [
        StepPayload::Plan,
        StepPayload::Generate { round: 1 },
        StepPayload::Test { round: 1 },
        StepPayload::Review { round: 1 },
    ];
    let tasks = [TaskId::generate(), TaskId::generate()];
    let mut published: HashMap<String, Vec<String>> = HashMap::new();
    let mut batch = Vec::new();
    for payload in &payloads {
        for task in &tasks {
            let envelope = Envelope::new(task.clone(), TraceId::for_task(task), payload.clone());
            published.entry(task.to_string()).or_default().push(envelope.message_id.to_string());
            batch.push(envelope_message(&envelope));
        }
    }
    q.publish(batch).await.unwrap();

    let mut seen: HashMap<String, Vec<String>> = HashMap::new();
    for _ in 0..20 {
        let got = q.receive(10, VISIBILITY).await.unwrap();
        if got.is_empty() {
            break;
        }
        let mut tasks_in_batch: Vec<String> = Vec::new();
        for d in &got {
            let task = Envelope::from_bytes(&d.body).unwrap().task_id.to_string();
            seen.entry(task.clone()).or_default().push(d.id.to_string());
            tasks_in_batch.push(task);
        }
        // A task's next message waits while an earlier one is in flight.
        let held: Vec<_> = got.iter().map(|d| d.receipt.clone()).collect();
        for d in q.receive(10, VISIBILITY).await.unwrap() {
            let task = Envelope::from_bytes(&d.body).unwrap().task_id.to_string();
            assert!(
                !tasks_in_batch.contains(&task),
                "task {task} got {} while an earlier message of it was in flight",
                d.id
            );
            seen.entry(task).or_default().push(d.id.to_string());
            q.ack(&[d.receipt]).await.unwrap();
        }
        q.ack(&held).await.unwrap();
    }
    assert_eq!(seen, published, "each task's messages arrive in the order they were published");
}

#[tokio::test]
async fn fifo_drops_a_republished_message_id_even_a_long_one() {
    let q = moto::queue("dedup", true, 5).await;
    // SQS takes at most 128 characters as a de-duplication id: longer ids are hashed, stably.
    let long_id = format!("{}/generate/r1", "t".repeat(150));
    q.publish(vec![message(&long_id, b"first")]).await.unwrap();
    q.publish(vec![message(&long_id, b"second")]).await.unwrap();
    assert_eq!(q.depth().await.unwrap().ready, 1, "the second publish of the id is dropped");
    let got = q.receive(10, VISIBILITY).await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!((got[0].id.as_str(), got[0].body.as_slice()), (long_id.as_str(), &b"first"[..]));
    // Real SQS also drops an id re-published within 5 minutes after the first was deleted; moto
    // de-duplicates only against messages still queued, so that is not asserted here.
}

#[tokio::test]
async fn publish_routes_each_step_to_its_queue() {
    let plan_url = moto::fresh_queue("route-plan", true, 5).await;
    let test_url = moto::fresh_queue("route-test", true, 5).await;
    let mut config = SqsConfig::new(plan_url.clone());
    config.wait = Duration::ZERO;
    config.credentials = moto::credentials();
    config.routes.insert("test".into(), test_url.clone());
    let plan_q = SqsQueue::connect(config, Arc::new(SystemClock)).await.unwrap();
    let test_q = moto::connect(test_url).await;

    let task = TaskId::generate();
    let plan = Envelope::new(task.clone(), TraceId::for_task(&task), StepPayload::Plan);
    let test =
        Envelope::new(task.clone(), TraceId::for_task(&task), StepPayload::Test { round: 1 });
    plan_q
        .publish(vec![envelope_message(&plan), envelope_message(&test), message("plain", b"x")])
        .await
        .unwrap();
    let mut on_plan: Vec<String> =
        receive_all(&plan_q, 2, VISIBILITY).await.iter().map(|d| d.id.to_string()).collect();
    on_plan.sort();
    let mut want = vec![plan.message_id.to_string(), "plain".to_owned()];
    want.sort();
    assert_eq!(on_plan, want, "unrouted steps and non-envelopes stay on the own queue");
    let on_test = receive_all(&*test_q, 1, VISIBILITY).await;
    assert_eq!(on_test.len(), 1);
    assert_eq!(on_test[0].id, test.message_id);
}

#[tokio::test]
async fn publish_delay_holds_a_message_back_on_a_standard_queue() {
    let q = moto::queue("delay", false, 5).await;
    let mut later = message("later", b"x");
    later.delay = Duration::from_secs(2);
    q.publish(vec![later]).await.unwrap();
    assert!(q.receive(10, VISIBILITY).await.unwrap().is_empty(), "not before its delay");
    assert_eq!(q.depth().await.unwrap(), QueueDepth { ready: 0, pending: 1, dead: 0 });
    tokio::time::sleep(Duration::from_millis(2_300)).await;
    let got = q.receive(10, VISIBILITY).await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].delivery_count, 1, "a delay is not a delivery");
}

#[tokio::test]
async fn connect_names_what_is_wrong() {
    let url = moto::fresh_queue("bare", false, 5).await;
    // The dead-letter queue itself has no redrive policy.
    let dead = QueueUrl::parse(&format!("{url}-dlq")).unwrap();
    let mut config = SqsConfig::new(dead);
    config.credentials = moto::credentials();
    let error = SqsQueue::connect(config, Arc::new(SystemClock)).await.unwrap_err().to_string();
    assert!(error.contains("has no redrive policy"), "{error}");

    let missing =
        QueueUrl::parse(&format!("{}/123456789012/no-such-queue", moto::endpoint().url)).unwrap();
    let mut config = SqsConfig::new(missing);
    config.credentials = moto::credentials();
    let error = SqsQueue::connect(config, Arc::new(SystemClock)).await.unwrap_err().to_string();
    assert!(
        error.contains("cannot read the attributes of SQS queue")
            && error.contains("no-such-queue"),
        "{error}"
    );
}
