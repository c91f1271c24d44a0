//! Time from sending `session/prompt` to reading the first `session/update`, with the model excluded:
//! the scripted agents start a task at once, so what is measured is the server's own path (parse,
//! dispatch, spawn the turn, start the task, serialize and write the first update) through the
//! same newline-delimited JSON-RPC framing as stdio (in-memory pipes). Target: p50 and p99 < 50 ms.
//!
//! Run: `cargo bench --profile dev -p cadre-acp --bench first_update` (add `-- <prompts>`, default
//! 300); `--profile dev` keeps to the one build profile CI uses. Measured here (loaded 2-core
//! machine, dev profile): p50 0.57 ms, p99 3.2 ms.

#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::expect_used, dead_code)]

#[path = "../tests/it/client.rs"]
mod client;
#[path = "../tests/it/fake.rs"]
mod fake;

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss, clippy::cast_precision_loss)]
    let at = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[at]
}

fn main() {
    let prompts: usize = std::env::args().nth(1).and_then(|n| n.parse().ok()).unwrap_or(300);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    runtime.block_on(async move {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("calc.py"), fake::CALC).unwrap();
        let agents = Arc::new(fake::FakeAgents::new(dir.path()));
        let mut client = client::Client::connect(agents, None);
        client.answers.permission = Some("reject");
        client.initialize(false).await;
        let session = client.new_session(dir.path()).await;
        let mut samples = Vec::with_capacity(prompts);
        for _ in 0..prompts {
            let before = client.updates.len();
            let started = Instant::now();
            let id = client
                .start(
                    "session/prompt",
                    json!({"sessionId": session, "prompt": [{"type": "text", "text": "make add() add"}]}),
                )
                .await;
            while client.updates.len() == before {
                client.step().await;
            }
            samples.push(started.elapsed());
            client.response(id).await;
        }
        samples.sort();
        println!(
            "session/prompt -> first session/update over {prompts} prompts (model excluded): p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms",
            percentile(&samples, 0.50).as_secs_f64() * 1e3,
            percentile(&samples, 0.99).as_secs_f64() * 1e3,
            samples.last().unwrap().as_secs_f64() * 1e3,
        );
    });
}
