//! The ledger row of one embedding request. Dropped unfinished (the caller stopped waiting), it is
//! written as `cancelled` from a spawned task, so an abandoned request still leaves its row.

use std::sync::Arc;

use cadre_domain::ports::model::{ModelError, TokenUsage};
use cadre_domain::ports::usage::{CallOutcome, UsageLedger, UsageRecord};
use cadre_domain::Timestamp;
use tokio::time::Instant;

use crate::gateway::limiter::millis;
use crate::gateway::ModelPrice;

pub(super) struct PendingRow {
    ledger: Arc<dyn UsageLedger>,
    started: Instant,
    pub(super) record: UsageRecord,
    done: bool,
}

impl PendingRow {
    pub(super) fn new(
        ledger: Arc<dyn UsageLedger>,
        at: Timestamp,
        model: &str,
        step: &str,
        started: Instant,
    ) -> PendingRow {
        PendingRow {
            ledger,
            started,
            record: UsageRecord {
                at,
                model: model.to_owned(),
                task: None,
                step: step.to_owned(),
                template: None,
                tokens: TokenUsage::default(),
                latency_ms: 0,
                cost_micros: 0,
                cache_hit: false,
                outcome: CallOutcome::Failed { kind: "cancelled".to_owned() },
                attempts: 0,
                team: None,
            },
            done: false,
        }
    }

    /// Fills in outcome, latency and cost, and writes the row.
    pub(super) async fn finish<T>(
        mut self,
        result: &Result<T, ModelError>,
        price: Option<ModelPrice>,
    ) {
        let record = &mut self.record;
        record.latency_ms = millis(self.started.elapsed());
        record.outcome = match result {
            Ok(_) => CallOutcome::Ok,
            Err(e) => CallOutcome::Failed { kind: e.kind().to_owned() },
        };
        record.cost_micros = price.map_or(0, |p| p.cost_micros(&record.tokens));
        tracing::debug!(
            model = %record.model,
            outcome = record.outcome.label(),
            attempts = record.attempts,
            latency_ms = record.latency_ms,
            input_tokens = record.tokens.input,
            cost_micros = record.cost_micros,
            "embedding call"
        );
        // Marked first: if this await is abandoned the row is already on its way, not written twice.
        self.done = true;
        write_row(&*self.ledger, &self.record).await;
    }
}

impl Drop for PendingRow {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        self.record.latency_ms = millis(self.started.elapsed());
        let record = self.record.clone();
        let ledger = Arc::clone(&self.ledger);
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(async move { write_row(&*ledger, &record).await });
            }
            Err(_) => tracing::error!(model = %record.model, attempts = record.attempts,
                "usage row of a cancelled embedding call lost: no tokio runtime to write it"),
        }
    }
}

/// Writes one row; a ledger failure is logged with the row's numbers but does not fail the call, whose
/// tokens are already spent.
async fn write_row(ledger: &dyn UsageLedger, record: &UsageRecord) {
    if let Err(e) = ledger.record(record).await {
        tracing::error!(error = %e, model = %record.model, step = %record.step,
            outcome = record.outcome.label(), input_tokens = record.tokens.input,
            cost_micros = record.cost_micros, "usage row of an embedding call not recorded");
    }
}
