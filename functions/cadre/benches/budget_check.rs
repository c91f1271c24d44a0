//! What the pre-call budget check costs per model call.
//!
//! Before every call the gateway estimates the request's tokens, prices the worst case from the price
//! table, and asks the usage ledger what the task has spent and what the task's team has spent today
//! (UTC). This bench runs that on a real SQLite ledger (the one `cadre` uses) holding `--rows` records
//! (100,000 by default: 1,000 tasks, 20 teams, 30 days), two ways:
//! - the parts, timed one by one, in the gateway's order;
//! - whole gateway calls over an instant in-process model, with and without a task and team budget,
//!   interleaved; the difference of their percentiles is what the check adds to a call (both write
//!   the call's ledger row, which is not part of the check).
//!
//! `cargo bench --bench budget_check` (`-- --rows N --calls N` for other sizes).
#![allow(
    clippy::print_stdout,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cast_precision_loss,
    clippy::disallowed_methods
)]

use cadre_domain::ports::clock::SystemClock;
use cadre_domain::ports::model::{
    CachePolicy, ChatMessage, Model, ModelError, ModelReply, ModelRequest, TokenUsage,
};
use cadre_domain::ports::usage::{
    utc_day_start, CallOutcome, UsageFilter, UsageGroup, UsageLedger, UsageRecord,
};
use cadre_domain::ports::Clock;
use cadre_domain::{TaskId, Timestamp};
use cadre_model::gateway::estimate_tokens;
use cadre_model::{Gateway, GatewayConfig, GatewayPorts, MemoryModelCache, PriceTable};
use cadre_usage::SqliteUsageLedger;
use std::sync::Arc;
use std::time::{Duration, Instant};

const MODEL: &str = "gemini-3-flash-preview";
const DAY_MS: i64 = 86_400_000;

/// Answers at once: the gateway's own time is all that is measured.
struct Instant0;

#[async_trait::async_trait]
impl Model for Instant0 {
    async fn complete(&self, _request: &ModelRequest) -> Result<ModelReply, ModelError> {
        Ok(ModelReply {
            text: "ok".into(),
            usage: TokenUsage { input: 1_200, output: 80, ..TokenUsage::default() },
            model: MODEL.into(),
            ..ModelReply::default()
        })
    }
    fn describe(&self) -> String {
        "instant".into()
    }
}

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map_or(default, |v| v.parse().expect("a number"))
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_nanos() as f64 / 1_000.0
}

fn line(label: &str, samples: &mut [Duration]) -> (f64, f64) {
    samples.sort();
    let (p50, p99) = (percentile(samples, 0.50), percentile(samples, 0.99));
    println!("{label:<44} p50 {p50:>9.1} µs   p99 {p99:>9.1} µs");
    (p50, p99)
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let rows = arg("--rows", 100_000);
    let calls = arg("--calls", 2_000);
    let dir = tempfile::tempdir().unwrap();
    let ledger = Arc::new(SqliteUsageLedger::open(&dir.path().join("cadre.db")).unwrap());
    let now = SystemClock.now();
    let tasks: Vec<TaskId> = (0..1_000).map(|_| TaskId::generate()).collect();
    let started = Instant::now();
    for i in 0..rows {
        let record = UsageRecord {
            // Every team has rows on each of the 30 days.
            at: Timestamp(now.0 - ((i / 20) as i64 % 30) * DAY_MS - i as i64 % 1_000),
            model: MODEL.into(),
            task: Some(tasks[i % tasks.len()].clone()),
            step: ["plan", "generate", "test"][i % 3].into(),
            template: Some("generate@3".into()),
            tokens: TokenUsage { input: 2_000, output: 300, ..TokenUsage::default() },
            latency_ms: 900,
            cost_micros: 1_500,
            cache_hit: false,
            outcome: CallOutcome::Ok,
            attempts: 1,
            team: Some(format!("team-{}", i % 20)),
        };
        ledger.record(&record).await.unwrap();
    }
    println!(
        "ledger: {rows} records (1,000 tasks, 20 teams, 30 days) written in {:.1} s; {calls} calls per measurement",
        started.elapsed().as_secs_f64()
    );

    let task = tasks[7].clone();
    let team = "team-7".to_owned();
    let mut request = ModelRequest::new(
        "generate",
        "You are a careful engineer.",
        vec![ChatMessage::user("x".repeat(6_000))],
    );
    request.task = Some(task.clone());
    request.team = Some(team.clone());
    request.cache = CachePolicy::Bypass;
    let prices = PriceTable::builtin();

    // The parts, in the gateway's order.
    let (mut estimate, mut price, mut task_spend, mut team_spend, mut whole) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..calls {
        let t0 = Instant::now();
        let tokens = estimate_tokens(&request, 8_192);
        let t1 = Instant::now();
        let worst = prices.price(MODEL).map(|p| p.worst_case_micros(tokens)).unwrap_or(0);
        let t2 = Instant::now();
        let spent = ledger.task_spend_micros(&task).await.unwrap();
        let t3 = Instant::now();
        let today = UsageFilter {
            team: Some(team.clone()),
            since: Some(utc_day_start(SystemClock.now())),
            ..UsageFilter::default()
        };
        let team_spent: u64 = ledger
            .totals(&today, UsageGroup::Team)
            .await
            .unwrap()
            .iter()
            .map(|t| t.cost_micros)
            .sum();
        let t4 = Instant::now();
        assert!(worst > 0 && spent > 0 && team_spent > 0);
        estimate.push(t1 - t0);
        price.push(t2 - t1);
        task_spend.push(t3 - t2);
        team_spend.push(t4 - t3);
        whole.push(t4 - t0);
    }
    println!("-- the check's parts");
    line("token estimate (local, 6 kB prompt)", &mut estimate);
    line("price lookup + worst case", &mut price);
    line("ledger: task spend", &mut task_spend);
    line("ledger: team spend today (UTC)", &mut team_spend);
    line("whole check", &mut whole);

    // Whole calls through the gateway, with and without budgets.
    let gateway = |budgets: bool| {
        let mut config = GatewayConfig::new(MODEL);
        if budgets {
            config.task_budget_micros = Some(u64::MAX / 4);
            config.team_daily_budget_micros = Some(u64::MAX / 4);
        }
        Gateway::new(
            Arc::new(Instant0),
            config,
            GatewayPorts {
                ledger: ledger.clone(),
                cache: Arc::new(MemoryModelCache::new(16)),
                clock: Arc::new(SystemClock),
            },
        )
        .unwrap()
    };
    let (plain, checked) = (gateway(false), gateway(true));
    let mut budgeted = request.clone();
    budgeted.budget_micros = Some(u64::MAX / 4);
    let mut unbudgeted = request.clone();
    unbudgeted.team = None;
    let (mut without, mut with) = (Vec::new(), Vec::new());
    for _ in 0..calls {
        let t = Instant::now();
        plain.complete(&unbudgeted).await.unwrap();
        without.push(t.elapsed());
        let t = Instant::now();
        checked.complete(&budgeted).await.unwrap();
        with.push(t.elapsed());
    }
    println!("-- gateway calls over an instant model (each writes its ledger row)");
    let (a50, a99) = line("without budgets", &mut without);
    let (b50, b99) = line("with a task and a team budget", &mut with);
    println!(
        "{:<44} p50 {:>9.1} µs   p99 {:>9.1} µs",
        "the check's cost per call (difference)",
        b50 - a50,
        b99 - a99
    );
}
