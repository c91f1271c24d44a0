//! Gateway overhead per call, against the local `ModelServer` speaking the Gemini wire format.
//!
//! Run: `cargo bench -p cadre-model --bench gateway` (release). Prints, in microseconds:
//! 1. sequential calls, one at a time: `GeminiModel` direct vs. the same model behind the `Gateway`,
//!    interleaved in rounds (as `shared/anchors/gateway` measures LiteLLM and Portkey); overhead is the
//!    gateway percentile minus the direct percentile;
//! 2. open-loop load at ~1,000 calls/s on a 2-worker runtime, latency from each call's *scheduled* start
//!    (so queueing counts, no coordinated omission), direct vs. gateway in alternating one-second rounds;
//! 3. cache hits: the gateway answering from its in-memory cache, no server involved.
//!
//! The gateway path is the full one: rate limiter (limits set high so it never waits), breaker, budget
//! check for a task, provider call, in-memory ledger row. The cache is bypassed in 1 and 2.
//! Client, server and gateway share the machine's cores, as in the anchors.
#![allow(clippy::print_stdout)] // A bench's output is its figures.

use std::sync::Arc;
use std::time::Duration;

use cadre_domain::ports::clock::SystemClock;
use cadre_domain::ports::model::{CachePolicy, ChatMessage, Model, ModelRequest};
use cadre_domain::TaskId;
use cadre_model::gateway::{
    Gateway, GatewayConfig, GatewayPorts, MemoryModelCache, MemoryUsageLedger, RateLimit,
};
use cadre_model::{ApiKey, GeminiConfig, GeminiModel};
use cadre_testkit::model_server::{ModelServer, Scripted};
use tokio::time::Instant;

const WARMUP: usize = 300;
const ROUNDS: usize = 5;
const PER_ROUND: usize = 400;
const OPEN_LOOP_RATE: u64 = 1_000;
/// Open-loop rounds of one second each, alternating direct and gateway.
const OPEN_LOOP_ROUNDS: u32 = 4;
const CACHE_HITS: usize = 20_000;

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    runtime.block_on(run());
}

fn request(cache: CachePolicy, task: Option<TaskId>) -> ModelRequest {
    ModelRequest {
        purpose: "bench".into(),
        system: "you are terse".into(),
        messages: vec![ChatMessage::user("say ok")],
        response_schema: None,
        temperature: Some(0.0),
        max_output_tokens: Some(64),
        task,
        template: Some("bench@1".into()),
        cache,
        ..Default::default()
    }
}

async fn run() {
    let server = ModelServer::start().await;
    server.respond_with(|_| Scripted::Text("ok".into()));
    let mut config = GeminiConfig::new(ApiKey::new("bench-key").expect("a valid key"));
    config.base_url = server.base_url();
    config.model = "gemini-3-flash-preview".into();
    let direct: Arc<dyn Model> = Arc::new(GeminiModel::new(config).expect("a gemini client"));

    let mut gateway_config = GatewayConfig::new("gemini-3-flash-preview");
    gateway_config.requests = Some(RateLimit::per_minute(10_000_000));
    gateway_config.tokens = Some(RateLimit::per_minute(10_000_000_000));
    gateway_config.task_budget_micros = Some(u64::MAX / 2);
    let ledger = Arc::new(MemoryUsageLedger::new());
    let ports = GatewayPorts {
        ledger: ledger.clone(),
        cache: Arc::new(MemoryModelCache::default()),
        clock: Arc::new(SystemClock),
    };
    let gateway: Arc<dyn Model> =
        Arc::new(Gateway::new(Arc::clone(&direct), gateway_config, ports).expect("a gateway"));
    let uncached = request(CachePolicy::Bypass, Some(TaskId::generate()));

    println!("gateway bench: Gemini wire format, local ModelServer, 2 tokio workers");
    println!("loadavg before: {}", loadavg());
    sequential(&direct, &gateway, &uncached).await;
    open_loop(&direct, &gateway, &uncached).await;
    cache_hits(&gateway).await;
    println!("ledger rows written: {}", ledger.records().len());
    println!("loadavg after: {}", loadavg());
}

async fn sequential(direct: &Arc<dyn Model>, gateway: &Arc<dyn Model>, request: &ModelRequest) {
    for model in [direct, gateway] {
        for _ in 0..WARMUP {
            model.complete(request).await.expect("a warm-up reply");
        }
    }
    let (mut direct_us, mut gateway_us) = (Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        // Alternate which goes first, so neither always runs on a warmer machine.
        let order: [(&Arc<dyn Model>, &mut Vec<f64>); 2] = if round % 2 == 0 {
            [(direct, &mut direct_us), (gateway, &mut gateway_us)]
        } else {
            [(gateway, &mut gateway_us), (direct, &mut direct_us)]
        };
        for (model, samples) in order {
            for _ in 0..PER_ROUND {
                let started = Instant::now();
                model.complete(request).await.expect("a reply");
                samples.push(micros(started.elapsed()));
            }
        }
    }
    let (d50, d99) = (percentile(&mut direct_us, 50.0), percentile(&mut direct_us, 99.0));
    let (g50, g99) = (percentile(&mut gateway_us, 50.0), percentile(&mut gateway_us, 99.0));
    println!("sequential, {} calls each ({ROUNDS} rounds, interleaved):", direct_us.len());
    println!("  direct   p50 {d50:8.1} us   p99 {d99:8.1} us");
    println!("  gateway  p50 {g50:8.1} us   p99 {g99:8.1} us");
    println!("  overhead p50 {:+8.1} us   p99 {:+8.1} us", g50 - d50, g99 - d99);
}

async fn open_loop(direct: &Arc<dyn Model>, gateway: &Arc<dyn Model>, request: &ModelRequest) {
    let (mut direct_us, mut gateway_us) = (Vec::new(), Vec::new());
    let mut achieved = (0.0, 0.0);
    for round in 0..OPEN_LOOP_ROUNDS {
        let gateway_first = round % 2 == 1;
        for is_gateway in [gateway_first, !gateway_first] {
            let (model, samples, rate) = if is_gateway {
                (gateway, &mut gateway_us, &mut achieved.1)
            } else {
                (direct, &mut direct_us, &mut achieved.0)
            };
            *rate +=
                one_second_of_load(model, request, samples).await / f64::from(OPEN_LOOP_ROUNDS);
        }
    }
    println!(
        "open loop, {OPEN_LOOP_ROUNDS} alternating 1 s rounds at {OPEN_LOOP_RATE} calls/s offered \
         (achieved {:.0}/s direct, {:.0}/s gateway), latency from the scheduled start:",
        achieved.0, achieved.1
    );
    let (d50, d99) = (percentile(&mut direct_us, 50.0), percentile(&mut direct_us, 99.0));
    let (g50, g99) = (percentile(&mut gateway_us, 50.0), percentile(&mut gateway_us, 99.0));
    println!("  direct   p50 {d50:8.1} us   p99 {d99:8.1} us");
    println!("  gateway  p50 {g50:8.1} us   p99 {g99:8.1} us");
    println!("  overhead p50 {:+8.1} us   p99 {:+8.1} us", g50 - d50, g99 - d99);
}

/// Starts `OPEN_LOOP_RATE` calls over one second on schedule, whatever earlier calls are doing, and
/// returns the achieved start rate.
async fn one_second_of_load(
    model: &Arc<dyn Model>,
    request: &ModelRequest,
    samples: &mut Vec<f64>,
) -> f64 {
    let interval = Duration::from_secs(1) / u32::try_from(OPEN_LOOP_RATE).expect("a small rate");
    let t0 = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..OPEN_LOOP_RATE {
        let scheduled = t0 + interval * u32::try_from(i).expect("a small count");
        tokio::time::sleep_until(scheduled).await;
        let (model, request) = (Arc::clone(model), request.clone());
        tasks.spawn(async move {
            model.complete(&request).await.expect("a reply");
            micros(scheduled.elapsed())
        });
    }
    let rate = f64::from(u32::try_from(OPEN_LOOP_RATE).expect("a small rate"))
        / t0.elapsed().as_secs_f64();
    samples.extend(tasks.join_all().await);
    rate
}

async fn cache_hits(gateway: &Arc<dyn Model>) {
    let cached = request(CachePolicy::Use, None);
    gateway.complete(&cached).await.expect("the reply to cache");
    let mut samples = Vec::with_capacity(CACHE_HITS);
    for _ in 0..CACHE_HITS {
        let started = Instant::now();
        gateway.complete(&cached).await.expect("a cached reply");
        samples.push(micros(started.elapsed()));
    }
    println!(
        "cache hit, {CACHE_HITS} calls (in-memory cache and ledger): p50 {:8.1} us   p99 {:8.1} us",
        percentile(&mut samples, 50.0),
        percentile(&mut samples, 99.0)
    );
}

/// The 1-, 5- and 15-minute load averages, to judge how busy the shared machine was.
fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|e| format!("unknown ({e})"))
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// Linear interpolation between the closest ranks, as the anchors' `measure.py` does.
fn percentile(samples: &mut [f64], p: f64) -> f64 {
    samples.sort_by(f64::total_cmp);
    let Some(last) = samples.len().checked_sub(1) else { return f64::NAN };
    #[allow(clippy::cast_precision_loss, clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let (rank, low) = {
        let rank = p / 100.0 * last as f64;
        (rank, rank.floor() as usize)
    };
    let high = (low + 1).min(last);
    #[allow(clippy::cast_precision_loss)]
    let fraction = rank - low as f64;
    samples[low] + (samples[high] - samples[low]) * fraction
}
