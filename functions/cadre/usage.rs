//! `cadre usage`: what model calls cost, from the gateway's ledger.

use anyhow::Result;
use cadre_domain::ports::usage::{UsageFilter, UsageGroup};
use std::process::ExitCode;

use crate::cli::UsageBy;
use crate::out;
use crate::wiring::{Core, Home};

pub(crate) async fn usage(task: Option<String>, by: UsageBy, home: &Home) -> Result<ExitCode> {
    let core = Core::open(home)?;
    let task = match task {
        Some(text) => Some(core.store.resolve_prefix(text.trim()).await?),
        None => None,
    };
    let group = match by {
        UsageBy::Task => UsageGroup::Task,
        UsageBy::Step => UsageGroup::Step,
        UsageBy::Day => UsageGroup::Day,
        UsageBy::Model => UsageGroup::Model,
        UsageBy::Team => UsageGroup::Team,
    };
    let filter = UsageFilter { task, ..UsageFilter::default() };
    let totals = core.ledger.totals(&filter, group).await?;
    if totals.is_empty() {
        out::line("no model calls recorded yet");
        return Ok(ExitCode::SUCCESS);
    }
    out::line(format!(
        "{:<38} {:>6} {:>6} {:>6} {:>10} {:>10} {:>10} {:>11}",
        "key", "calls", "failed", "cached", "input", "output", "thinking", "cost USD"
    ));
    let mut cost = 0u64;
    for t in &totals {
        cost += t.cost_micros;
        out::line(format!(
            "{:<38} {:>6} {:>6} {:>6} {:>10} {:>10} {:>10} {:>11}",
            t.key.as_deref().unwrap_or("(none)"),
            t.calls,
            t.failed,
            t.cache_hits,
            t.tokens.input,
            t.tokens.output,
            t.tokens.thinking,
            dollars(t.cost_micros)
        ));
    }
    out::line(format!("total {:>81}", dollars(cost)));
    Ok(ExitCode::SUCCESS)
}

/// Micro-dollars as dollars with six decimals, without floating point.
fn dollars(micros: u64) -> String {
    format!("{}.{:06}", micros / 1_000_000, micros % 1_000_000)
}
