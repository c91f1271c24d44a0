//! Messages per second through `SqsQueue` against a local `moto_server`, for the batch sizes Cadre
//! uses: 1 (one step publishing its next message, one Lambda record) and 10 (SQS's largest batch, used
//! by `publish`, `receive` and `ack`), on a standard and on a FIFO queue.
//!
//! Each case sends N messages through in rounds: publish `batch` messages in one call, receive them
//! (calls of at most `batch`), ack them in one call, checking that each arrived exactly once. The queue
//! stays short, because moto's calls slow down as a queue grows (a thousand queued messages make a
//! publish several times slower), which real SQS does not. So the figures measure the adapter plus
//! moto's Python server on loopback, not SQS: they bound the adapter's overhead from above.
//!
//! Run with `cargo bench --profile dev -p cadre-aws --bench throughput [-- <messages>]` (default 500;
//! the dev profile, because the workspace builds one profile). Needs `moto_server` on PATH.
#![allow(clippy::print_stdout)] // A bench binary reports on stdout.

#[allow(dead_code)]
#[path = "../tests/it/moto.rs"]
mod moto;

use cadre_domain::ports::queue::{OutgoingMessage, Queue};
use cadre_domain::MessageId;
use std::collections::HashSet;
use std::time::{Duration, Instant};

const VISIBILITY: Duration = Duration::from_secs(300);

#[allow(clippy::disallowed_methods)] // A bench measures wall time, the one thing the Clock port is not for.
fn stopwatch() -> Instant {
    Instant::now()
}

/// A 200-byte JSON body, the size of a small envelope.
fn message(i: usize) -> OutgoingMessage {
    let body =
        format!("{{\"task_id\":\"bench-{i}\",\"step\":\"plan\",\"pad\":\"{}\"}}", "x".repeat(150));
    OutgoingMessage {
        id: MessageId::new(format!("bench-{i}/plan/r0")),
        body: body.into_bytes(),
        delay: Duration::ZERO,
    }
}

struct Figures {
    publish: f64,
    consume: f64,
    end_to_end: f64,
}

async fn run(fifo: bool, batch: usize, n: usize) -> Figures {
    let q = moto::queue(if fifo { "bench-fifo" } else { "bench" }, fifo, 5).await;
    let mut seen = HashSet::new();
    let (mut publishing, mut consuming) = (Duration::ZERO, Duration::ZERO);
    for start in (0..n).step_by(batch) {
        let messages: Vec<_> = (start..(start + batch).min(n)).map(message).collect();
        let want = messages.len();
        let t = stopwatch();
        q.publish(messages).await.expect("publish");
        publishing += t.elapsed();
        let t = stopwatch();
        let mut got_now = 0;
        for _ in 0..20 {
            if got_now == want {
                break;
            }
            let got = q.receive(want - got_now, VISIBILITY).await.expect("receive");
            got_now += got.len();
            let receipts: Vec<_> = got.iter().map(|d| d.receipt.clone()).collect();
            for d in got {
                assert!(seen.insert(d.id.to_string()), "{} was delivered twice", d.id);
            }
            if !receipts.is_empty() {
                q.ack(&receipts).await.expect("ack");
            }
        }
        consuming += t.elapsed();
    }
    assert_eq!(seen.len(), n, "every message comes back exactly once");
    let rate = |d: Duration| n as f64 / d.as_secs_f64();
    Figures {
        publish: rate(publishing),
        consume: rate(consuming),
        end_to_end: rate(publishing + consuming),
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let n: usize = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(500);
    println!("SqsQueue against moto_server on loopback, {n} messages of ~200 bytes per case");
    println!(
        "{:<10} {:>5} {:>14} {:>20} {:>14}",
        "queue", "batch", "publish msg/s", "receive+ack msg/s", "total msg/s"
    );
    for fifo in [false, true] {
        for batch in [1, 10] {
            let f = run(fifo, batch, n).await;
            println!(
                "{:<10} {:>5} {:>14.0} {:>20.0} {:>14.0}",
                if fifo { "fifo" } else { "standard" },
                batch,
                f.publish,
                f.consume,
                f.end_to_end
            );
        }
    }
}
