//! Contract suite for the `Queue` port: each story checks a MUST sentence of the trait's docs, and the
//! same stories run against every adapter (atuin's one-suite-many-backends pattern).
//!
//! The suite comes in two halves:
//! - [`queue_contract_basic`] needs nothing but a fresh queue per story; every adapter runs it, cloud ones
//!   included (against their local emulators).
//! - [`queue_contract_timed`] drives visibility timeouts, delays and redelivery with a
//!   [`ManualClock`]; only adapters that read time through the `Clock` port can run it. A cloud queue
//!   keeps its own time and runs only the basic half.
//!
//! Queues handed to the suite must be empty and must dead-letter a message after
//! [`CONTRACT_MAX_DELIVERIES`] deliveries.
//!
//! ```ignore
//! cadre_testkit::contracts::queue::queue_contract(|clock| async move {
//!     Arc::new(EmbeddedQueue::open(&path, &fresh_name(), config, clock).unwrap()) as Arc<dyn Queue>
//! })
//! .await;
//! ```

use cadre_domain::ports::clock::{Clock, ManualClock};
use cadre_domain::ports::queue::{
    DeadLetter, Delivery, OutgoingMessage, Queue, QueueDepth, QueueError, Receipt,
};
use cadre_domain::{MessageId, Timestamp};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// The maximum number of deliveries the queues given to the suite must be configured with.
pub const CONTRACT_MAX_DELIVERIES: u32 = 3;

/// When a [`ManualClock`] handed to a timed story starts.
pub const CONTRACT_CLOCK_START: Timestamp = Timestamp(1_700_000_000_000);

/// The visibility timeout the stories receive with.
const VISIBILITY: Duration = Duration::from_secs(30);

/// Runs both halves of the suite; `make` builds a fresh, empty queue that reads time from the clock.
pub async fn queue_contract<F, Fut>(make: F)
where
    F: Fn(Arc<ManualClock>) -> Fut,
    Fut: Future<Output = Arc<dyn Queue>>,
{
    queue_contract_basic(|| make(Arc::new(ManualClock::new(CONTRACT_CLOCK_START)))).await;
    queue_contract_timed(&make).await;
}

/// The stories that need no control over time; `make` builds a fresh, empty queue per story.
pub async fn queue_contract_basic<F, Fut>(make: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Arc<dyn Queue>>,
{
    publish_receive_ack(&*make().await).await;
    ack_is_final(&*make().await).await;
    ack_settles_current_receipts_beside_a_stale_one(&*make().await).await;
    a_received_message_is_hidden(&*make().await).await;
    duplicate_publish_is_ignored(&*make().await).await;
    dead_letter_keeps_bytes_and_reason(&*make().await).await;
    depth_counts_ready_pending_and_dead(&*make().await).await;
    receive_takes_at_most_max(&*make().await).await;
}

/// The stories that move a [`ManualClock`]; `make` builds a fresh, empty queue reading that clock.
pub async fn queue_contract_timed<F, Fut>(make: F)
where
    F: Fn(Arc<ManualClock>) -> Fut,
    Fut: Future<Output = Arc<dyn Queue>>,
{
    let fresh = || async {
        let clock = Arc::new(ManualClock::new(CONTRACT_CLOCK_START));
        (make(Arc::clone(&clock)).await, clock)
    };
    let (q, clock) = fresh().await;
    redelivery_after_visibility_timeout(&*q, &clock).await;
    let (q, clock) = fresh().await;
    retry_later_honours_its_delay(&*q, &clock).await;
    let (q, clock) = fresh().await;
    extend_pushes_the_timeout_back(&*q, &clock).await;
    let (q, clock) = fresh().await;
    too_many_timeouts_dead_letter_with_a_reason(&*q, &clock).await;
    let (q, clock) = fresh().await;
    too_many_retries_dead_letter_with_a_reason(&*q, &clock).await;
    let (q, clock) = fresh().await;
    publish_delay_holds_the_message_back(&*q, &clock).await;
}

fn message(id: &str, body: &[u8]) -> OutgoingMessage {
    OutgoingMessage { id: MessageId::new(id), body: body.to_vec(), delay: Duration::ZERO }
}

/// Receives until `n` deliveries are in hand or the queue returns nothing (a cloud queue may hand out
/// fewer messages than asked for in one call).
async fn receive_n(q: &dyn Queue, n: usize) -> Vec<Delivery> {
    let mut got = Vec::new();
    while got.len() < n {
        let batch = q.receive(n - got.len(), VISIBILITY).await.expect("receive");
        if batch.is_empty() {
            break;
        }
        got.extend(batch);
    }
    got
}

async fn receive_one(q: &dyn Queue) -> Delivery {
    let mut got = receive_n(q, 1).await;
    assert_eq!(got.len(), 1, "expected one deliverable message, got {got:?}");
    got.remove(0)
}

async fn assert_nothing_deliverable(q: &dyn Queue, why: &str) {
    let got = q.receive(10, VISIBILITY).await.expect("receive");
    assert!(got.is_empty(), "{why}: expected no delivery, got {got:?}");
}

fn sorted_ids(deliveries: &[Delivery]) -> Vec<&str> {
    let mut ids: Vec<&str> = deliveries.iter().map(|d| d.id.as_str()).collect();
    ids.sort_unstable();
    ids
}

#[track_caller]
fn assert_stale<T: std::fmt::Debug>(result: Result<T, QueueError>, receipt: &Receipt, what: &str) {
    match result {
        Err(QueueError::StaleReceipt(r)) => {
            assert_eq!(&r, receipt, "{what}: wrong receipt reported")
        }
        other => panic!("{what}: MUST return StaleReceipt({receipt:?}), got {other:?}"),
    }
}

async fn depth(q: &dyn Queue) -> QueueDepth {
    q.depth().await.expect("depth")
}

// ---- basic stories -------------------------------------------------------------------------------

/// Published messages are received once each, with their bytes, and an ack settles them.
async fn publish_receive_ack(q: &dyn Queue) {
    q.publish(vec![message("a", b"alpha"), message("b", b"beta")]).await.expect("publish");
    let got = receive_n(q, 2).await;
    assert_eq!(sorted_ids(&got), ["a", "b"]);
    for d in &got {
        let want: &[u8] = if d.id.as_str() == "a" { b"alpha" } else { b"beta" };
        assert_eq!(d.body, want, "a delivery MUST carry the published bytes");
        assert_eq!(d.delivery_count, 1, "a first delivery has delivery_count 1");
    }
    assert_ne!(got[0].receipt, got[1].receipt, "each delivery has its own receipt");
    let receipts: Vec<Receipt> = got.iter().map(|d| d.receipt.clone()).collect();
    q.ack(&receipts).await.expect("ack");
    assert_eq!(depth(q).await, QueueDepth { ready: 0, pending: 0, dead: 0 });
    assert_nothing_deliverable(q, "acked messages are never delivered again").await;
}

/// After an ack the receipt is no longer current for any operation.
async fn ack_is_final(q: &dyn Queue) {
    q.publish(vec![message("m", b"x")]).await.expect("publish");
    let d = receive_one(q).await;
    q.ack(std::slice::from_ref(&d.receipt)).await.expect("first ack");
    let r = &d.receipt;
    assert_stale(q.ack(std::slice::from_ref(r)).await, r, "a second ack");
    assert_stale(q.retry_later(r, Duration::ZERO).await, r, "retry_later after ack");
    assert_stale(q.extend(r, VISIBILITY).await, r, "extend after ack");
    assert_stale(q.dead_letter(r, "late").await, r, "dead_letter after ack");
    assert_nothing_deliverable(q, "an acked message, even after late settle calls").await;
    let unknown = Receipt("not-a-receipt".into());
    assert_stale(q.ack(std::slice::from_ref(&unknown)).await, &unknown, "an unknown receipt");
}

/// A stale receipt in a batch ack is reported and the other receipts are still acked.
async fn ack_settles_current_receipts_beside_a_stale_one(q: &dyn Queue) {
    q.publish(vec![message("a", b"1"), message("b", b"2")]).await.expect("publish");
    let got = receive_n(q, 2).await;
    assert_eq!(got.len(), 2);
    let stale = Receipt("stale-receipt".into());
    let result = q.ack(&[got[0].receipt.clone(), stale.clone(), got[1].receipt.clone()]).await;
    assert_stale(result, &stale, "ack with one stale receipt among current ones");
    assert_eq!(
        depth(q).await,
        QueueDepth { ready: 0, pending: 0, dead: 0 },
        "the current receipts in a partly stale ack MUST still be acked"
    );
}

/// A delivered message is hidden from other receivers until its visibility timeout.
async fn a_received_message_is_hidden(q: &dyn Queue) {
    q.publish(vec![message("m", b"x")]).await.expect("publish");
    let _held = receive_one(q).await;
    assert_nothing_deliverable(q, "a message in flight").await;
    assert_eq!(depth(q).await, QueueDepth { ready: 0, pending: 1, dead: 0 });
}

/// A message whose id is already queued is ignored, not duplicated: in one batch, while ready and
/// while in flight.
async fn duplicate_publish_is_ignored(q: &dyn Queue) {
    q.publish(vec![message("m", b"first"), message("m", b"second")]).await.expect("publish");
    q.publish(vec![message("m", b"third")]).await.expect("publish again while ready");
    assert_eq!(depth(q).await.ready, 1, "a duplicate id MUST be ignored");
    let d = receive_one(q).await;
    assert_eq!(d.body, b"first", "the first publish wins");
    q.publish(vec![message("m", b"fourth")]).await.expect("publish again while in flight");
    assert_nothing_deliverable(q, "a duplicate of a message in flight").await;
    assert_eq!(depth(q).await, QueueDepth { ready: 0, pending: 1, dead: 0 });
}

/// A dead letter keeps the original bytes, the reason and the delivery count; it is not delivered.
async fn dead_letter_keeps_bytes_and_reason(q: &dyn Queue) {
    let bytes: &[u8] = &[0, 159, 146, 150, 255, b'{'];
    q.publish(vec![message("poison", bytes), message("fine", b"ok")]).await.expect("publish");
    let got = receive_n(q, 2).await;
    let poison = got.iter().find(|d| d.id.as_str() == "poison").expect("poison delivered");
    let reason = "malformed envelope: expected value at line 1 column 1";
    q.dead_letter(&poison.receipt, reason).await.expect("dead_letter");
    let dead = q.dead_letters(10).await.expect("dead_letters");
    assert_eq!(dead.len(), 1, "{dead:?}");
    let DeadLetter { id, body, reason: kept, delivery_count, .. } = &dead[0];
    assert_eq!(id.as_str(), "poison");
    assert_eq!(body, bytes, "a dead letter MUST keep the original bytes");
    assert_eq!(kept, reason, "a dead letter MUST keep the reason");
    assert_eq!(*delivery_count, 1);
    assert_eq!(depth(q).await, QueueDepth { ready: 0, pending: 1, dead: 1 });
    assert_stale(
        q.ack(std::slice::from_ref(&poison.receipt)).await,
        &poison.receipt,
        "ack after dead_letter",
    );
    assert_nothing_deliverable(q, "a dead letter").await;
    assert!(q.dead_letters(0).await.expect("dead_letters(0)").is_empty(), "limit 0 gives none");
}

/// Depth counts ready, pending (in flight or delayed) and dead messages.
async fn depth_counts_ready_pending_and_dead(q: &dyn Queue) {
    assert_eq!(depth(q).await, QueueDepth::default(), "a fresh queue is empty");
    let batch = ["a", "b", "c", "d"].map(|id| message(id, id.as_bytes())).to_vec();
    q.publish(batch).await.expect("publish");
    assert_eq!(depth(q).await, QueueDepth { ready: 4, pending: 0, dead: 0 });
    let got = receive_n(q, 2).await;
    assert_eq!(depth(q).await, QueueDepth { ready: 2, pending: 2, dead: 0 });
    q.ack(std::slice::from_ref(&got[0].receipt)).await.expect("ack");
    q.dead_letter(&got[1].receipt, "test").await.expect("dead_letter");
    assert_eq!(depth(q).await, QueueDepth { ready: 2, pending: 0, dead: 1 });
}

/// `receive` hands out at most `max` messages, and nothing for `max` 0.
async fn receive_takes_at_most_max(q: &dyn Queue) {
    let batch = (0..5).map(|i| message(&format!("m{i}"), b"x")).collect();
    q.publish(batch).await.expect("publish");
    assert!(q.receive(0, VISIBILITY).await.expect("receive 0").is_empty());
    let first = q.receive(2, VISIBILITY).await.expect("receive 2");
    assert!(!first.is_empty() && first.len() <= 2, "receive(2) gave {}", first.len());
    let rest = receive_n(q, 5 - first.len()).await;
    let all: Vec<Delivery> = first.into_iter().chain(rest).collect();
    assert_eq!(sorted_ids(&all), ["m0", "m1", "m2", "m3", "m4"], "each message exactly once");
}

// ---- timed stories -------------------------------------------------------------------------------

/// An unacked message comes back after its visibility timeout with a higher delivery count and a new
/// receipt; the old receipt is then refused.
async fn redelivery_after_visibility_timeout(q: &dyn Queue, clock: &ManualClock) {
    q.publish(vec![message("m", b"x")]).await.expect("publish");
    let first = receive_one(q).await;
    assert_eq!(first.published_at, CONTRACT_CLOCK_START, "published_at comes from the clock");
    clock.advance_millis(millis(VISIBILITY) - 1);
    assert_nothing_deliverable(q, "1 ms before the visibility timeout").await;
    clock.advance_millis(1);
    let second = receive_one(q).await;
    assert_eq!(second.id, first.id);
    assert_eq!(second.body, first.body);
    assert_eq!(second.delivery_count, 2, "a redelivery MUST have a higher delivery count");
    assert_eq!(second.published_at, first.published_at, "redelivery keeps published_at");
    assert_ne!(second.receipt, first.receipt, "each delivery gets a fresh receipt");
    let old = &first.receipt;
    assert_stale(
        q.ack(std::slice::from_ref(old)).await,
        old,
        "ack with the receipt of a redelivered message",
    );
    assert_stale(q.extend(old, VISIBILITY).await, old, "extend with an old receipt");
    assert_stale(q.retry_later(old, Duration::ZERO).await, old, "retry_later with an old receipt");
    assert_stale(q.dead_letter(old, "x").await, old, "dead_letter with an old receipt");
    q.ack(std::slice::from_ref(&second.receipt)).await.expect("the current receipt still acks");
    clock.advance_millis(millis(VISIBILITY) * 2);
    assert_nothing_deliverable(q, "an acked message after its timeout").await;
}

/// `retry_later` makes a delivery deliverable again after the delay, not before.
async fn retry_later_honours_its_delay(q: &dyn Queue, clock: &ManualClock) {
    q.publish(vec![message("m", b"x")]).await.expect("publish");
    let first = receive_one(q).await;
    q.retry_later(&first.receipt, Duration::from_secs(10)).await.expect("retry_later");
    assert_eq!(depth(q).await, QueueDepth { ready: 0, pending: 1, dead: 0 }, "delayed for a retry");
    clock.advance_millis(9_999);
    assert_nothing_deliverable(q, "1 ms before the retry delay").await;
    clock.advance_millis(1);
    let second = receive_one(q).await;
    assert_eq!(second.delivery_count, 2);
    q.ack(std::slice::from_ref(&second.receipt)).await.expect("ack");
}

/// `extend` keeps a delivery hidden past its first timeout, counted from the time of the call.
async fn extend_pushes_the_timeout_back(q: &dyn Queue, clock: &ManualClock) {
    q.publish(vec![message("m", b"x")]).await.expect("publish");
    let d = q.receive(1, Duration::from_secs(10)).await.expect("receive").remove(0);
    clock.advance_millis(8_000);
    q.extend(&d.receipt, Duration::from_secs(10)).await.expect("extend");
    clock.advance_millis(9_999);
    assert_nothing_deliverable(q, "an extended delivery before its new timeout").await;
    q.ack(std::slice::from_ref(&d.receipt)).await.expect("an extended receipt stays current");
}

/// A message delivered the maximum number of times and timing out again is dead-lettered, with a
/// reason that says how often it was delivered, instead of being delivered again.
async fn too_many_timeouts_dead_letter_with_a_reason(q: &dyn Queue, clock: &ManualClock) {
    q.publish(vec![message("crasher", b"boom")]).await.expect("publish");
    for n in 1..=CONTRACT_MAX_DELIVERIES {
        let d = receive_one(q).await;
        assert_eq!(d.delivery_count, n);
        clock.advance_millis(millis(VISIBILITY));
    }
    assert_nothing_deliverable(q, "a message past its maximum deliveries").await;
    let dead = q.dead_letters(10).await.expect("dead_letters");
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0].id.as_str(), "crasher");
    assert_eq!(dead[0].body, b"boom", "the dead letter keeps the bytes");
    assert_eq!(dead[0].delivery_count, CONTRACT_MAX_DELIVERIES);
    assert!(
        dead[0].reason.contains(&CONTRACT_MAX_DELIVERIES.to_string()),
        "the reason MUST say the message was delivered too often: {:?}",
        dead[0].reason
    );
    assert_eq!(depth(q).await, QueueDepth { ready: 0, pending: 0, dead: 1 });
}

/// Deliveries handed back with `retry_later` count towards the maximum too.
async fn too_many_retries_dead_letter_with_a_reason(q: &dyn Queue, clock: &ManualClock) {
    q.publish(vec![message("flaky", b"again")]).await.expect("publish");
    for n in 1..=CONTRACT_MAX_DELIVERIES {
        let d = receive_one(q).await;
        assert_eq!(d.delivery_count, n);
        q.retry_later(&d.receipt, Duration::from_secs(1)).await.expect("retry_later");
        clock.advance_millis(1_000);
    }
    assert_nothing_deliverable(q, "a retried message past its maximum deliveries").await;
    let dead = q.dead_letters(10).await.expect("dead_letters");
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0].delivery_count, CONTRACT_MAX_DELIVERIES);
    assert!(!dead[0].reason.is_empty(), "a dead letter MUST carry a reason");
    assert_eq!(dead[0].dead_at, clock.now(), "dead_at comes from the clock");
}

/// A message published with a delay is not delivered before the delay has passed.
async fn publish_delay_holds_the_message_back(q: &dyn Queue, clock: &ManualClock) {
    let mut later = message("later", b"x");
    later.delay = Duration::from_secs(5);
    q.publish(vec![later, message("now", b"y")]).await.expect("publish");
    assert_eq!(receive_one(q).await.id.as_str(), "now");
    assert_eq!(depth(q).await.ready, 0, "a delayed message is not ready");
    clock.advance_millis(4_999);
    assert_nothing_deliverable(q, "1 ms before the publish delay").await;
    clock.advance_millis(1);
    let d = receive_one(q).await;
    assert_eq!(d.id.as_str(), "later");
    assert_eq!(d.delivery_count, 1, "a delay is not a delivery");
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
