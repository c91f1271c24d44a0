//! Throughput and latency of the embedded queue: one producer task and one consumer task, each with its own
//! connection to the same SQLite file, as a local `cadre` run uses it.
//!
//! Prints (a) end-to-end messages/s with single-message calls, (b) the same with batches of 100, and
//! (c) p50/p99 latency of one publish and of one receive+ack. Every run checks that each message was
//! received exactly once, and panics otherwise.
//!
//! Run with `cargo bench -p cadre-queue --bench throughput [-- <messages>]` (default 100,000 messages of
//! 100 bytes).
#![allow(clippy::print_stdout)] // A bench binary reports on stdout.

use cadre_domain::ports::clock::SystemClock;
use cadre_domain::ports::queue::{OutgoingMessage, Queue};
use cadre_domain::MessageId;
use cadre_queue::{EmbeddedQueue, QueueConfig};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

const BODY_LEN: usize = 100;
const VISIBILITY: Duration = Duration::from_secs(600);
const LATENCY_SAMPLES: usize = 2_000;

#[allow(clippy::disallowed_methods)] // A bench measures wall time, the one thing the Clock port is not for.
fn stopwatch() -> Instant {
    Instant::now()
}

fn open(path: &Path, name: &str) -> Arc<EmbeddedQueue> {
    let queue = EmbeddedQueue::open(path, name, QueueConfig::default(), Arc::new(SystemClock));
    Arc::new(queue.expect("open the bench queue"))
}

/// Message `i`: its index in the first 8 bytes of a 100-byte body, so the consumer can tick it off.
fn message(i: u64) -> OutgoingMessage {
    let mut body = vec![0u8; BODY_LEN];
    body[..8].copy_from_slice(&i.to_le_bytes());
    OutgoingMessage { id: MessageId::new(format!("m{i}")), body, delay: Duration::ZERO }
}

fn index_of(body: &[u8]) -> usize {
    let bytes: [u8; 8] = body[..8].try_into().expect("an 8-byte index");
    usize::try_from(u64::from_le_bytes(bytes)).expect("index fits usize")
}

/// Sends `n` messages from a producer task to a consumer task in batches of `batch`, and returns
/// messages/s from the first publish to the last ack.
async fn end_to_end(path: &Path, name: &str, n: usize, batch: usize) -> f64 {
    let producer_queue = open(path, name);
    let consumer_queue = open(path, name);
    let started = stopwatch();
    let producer = tokio::spawn(async move {
        let total = u64::try_from(n).expect("n fits u64");
        let step = u64::try_from(batch).expect("batch fits u64");
        let mut i = 0;
        while i < total {
            let messages = (i..(i + step).min(total)).map(message).collect();
            producer_queue.publish(messages).await.expect("publish");
            i += step;
        }
    });
    let consumer = tokio::spawn(async move {
        let mut seen = vec![false; n];
        let mut received = 0;
        while received < n {
            let got = consumer_queue.receive(batch, VISIBILITY).await.expect("receive");
            if got.is_empty() {
                tokio::task::yield_now().await;
                continue;
            }
            for d in &got {
                let i = index_of(&d.body);
                assert!(!seen[i], "message {i} was received twice");
                seen[i] = true;
            }
            received += got.len();
            let receipts: Vec<_> = got.into_iter().map(|d| d.receipt).collect();
            consumer_queue.ack(&receipts).await.expect("ack");
        }
        assert!(seen.iter().all(|s| *s), "a message was never received");
        let depth = consumer_queue.depth().await.expect("depth");
        assert_eq!((depth.ready, depth.pending, depth.dead), (0, 0, 0), "the queue is drained");
    });
    producer.await.expect("producer task");
    consumer.await.expect("consumer task");
    #[allow(clippy::cast_precision_loss)] // Message counts are far below 2^52.
    let rate = n as f64 / started.elapsed().as_secs_f64();
    rate
}

/// p50 and p99 of `samples`, in microseconds.
fn percentiles(mut samples: Vec<Duration>) -> (u128, u128) {
    samples.sort_unstable();
    let at = |q: usize| samples[(samples.len() * q / 100).min(samples.len() - 1)].as_micros();
    (at(50), at(99))
}

async fn latency(path: &Path) -> ((u128, u128), (u128, u128)) {
    let queue = open(path, "latency");
    let (mut publish, mut receive_ack) = (Vec::new(), Vec::new());
    for i in 0..u64::try_from(LATENCY_SAMPLES).expect("fits u64") {
        let t = stopwatch();
        queue.publish(vec![message(i)]).await.expect("publish");
        publish.push(t.elapsed());
        let t = stopwatch();
        let got = queue.receive(1, VISIBILITY).await.expect("receive");
        assert_eq!(got.len(), 1, "message {i} was not received");
        queue.ack(&[got[0].receipt.clone()]).await.expect("ack");
        receive_ack.push(t.elapsed());
    }
    (percentiles(publish), percentiles(receive_ack))
}

fn main() {
    let n: usize = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(100_000);
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("bench.db");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    runtime.block_on(async {
        println!("embedded queue, {n} messages of {BODY_LEN} bytes, producer and consumer on one file");
        let single = end_to_end(&path, "single", n, 1).await;
        println!("(a) single-message calls:  {single:>9.0} msgs/s end to end (each received exactly once)");
        let batched = end_to_end(&path, "batched", n, 100).await;
        println!("(b) batches of 100:        {batched:>9.0} msgs/s end to end (each received exactly once)");
        let ((p50, p99), (r50, r99)) = latency(&path).await;
        println!("(c) publish 1:             p50 {p50} µs, p99 {p99} µs ({LATENCY_SAMPLES} samples)");
        println!("    receive 1 + ack 1:     p50 {r50} µs, p99 {r99} µs ({LATENCY_SAMPLES} samples)");
    });
}
