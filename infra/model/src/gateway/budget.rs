//! The per-task budget and the per-team daily budget, checked before every call: what the task (or the
//! team, since 00:00 UTC) has spent according to the ledger, plus the worst case of its calls still in
//! flight, plus this call's worst case must fit in the limit.
//!
//! Counting calls in flight closes the race where several concurrent calls each read the same spend and
//! all pass. A reservation is released only after the call's row is in the ledger, so at every instant a
//! call's cost is counted at least once, never zero times.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use cadre_domain::ports::model::ModelError;
use cadre_domain::ports::usage::{utc_day_start, UsageFilter, UsageGroup, UsageLedger};
use cadre_domain::{TaskId, Timestamp};

/// Worst cases held, by what they are held against (`task:<id>` or `team:<name>`).
type InFlight = Arc<Mutex<HashMap<String, u64>>>;

/// Budgets of every task this gateway serves.
#[derive(Debug, Default)]
pub(crate) struct Budget {
    limit_micros: Option<u64>,
    in_flight: InFlight,
}

/// A call's worst case held against its task until dropped.
#[derive(Debug)]
pub(crate) struct Reservation {
    in_flight: InFlight,
    key: String,
    micros: u64,
}

impl Budget {
    pub(crate) fn new(limit_micros: Option<u64>) -> Budget {
        Budget { limit_micros, in_flight: InFlight::default() }
    }

    /// Reserves `worst_micros` for `task`, or refuses the call.
    ///
    /// Returns `Ok(None)` when no budget is configured (nothing to hold).
    pub(crate) async fn reserve(
        &self,
        ledger: &dyn UsageLedger,
        task: &TaskId,
        worst_micros: u64,
        task_limit_micros: Option<u64>,
    ) -> Result<Option<Reservation>, ModelError> {
        let Some(limit_micros) = task_limit_micros.or(self.limit_micros) else { return Ok(None) };
        let spent = ledger
            .task_spend_micros(task)
            .await
            .map_err(|e| ModelError::LedgerUnavailable { reason: e.to_string() })?;
        self.hold(format!("task:{task}"), spent, worst_micros, limit_micros)
            .map_err(|spent_micros| ModelError::BudgetExceeded { spent_micros, limit_micros })
    }

    /// Reserves `worst_micros` against `team`'s budget for the UTC day of `now`, or refuses the call.
    pub(crate) async fn reserve_team(
        &self,
        ledger: &dyn UsageLedger,
        team: &str,
        worst_micros: u64,
        limit_micros: u64,
        now: Timestamp,
    ) -> Result<Reservation, ModelError> {
        let today = UsageFilter {
            team: Some(team.to_owned()),
            since: Some(utc_day_start(now)),
            ..UsageFilter::default()
        };
        let spent = ledger
            .totals(&today, UsageGroup::Team)
            .await
            .map_err(|e| ModelError::LedgerUnavailable { reason: e.to_string() })?
            .iter()
            .map(|t| t.cost_micros)
            .sum();
        // A reservation outliving midnight is counted against the new day too: conservative by design.
        match self.hold(format!("team:{team}"), spent, worst_micros, limit_micros) {
            Ok(reservation) => reservation.ok_or(ModelError::TeamBudgetExceeded {
                team: team.to_owned(),
                spent_micros: spent,
                limit_micros,
            }),
            Err(spent_micros) => Err(ModelError::TeamBudgetExceeded {
                team: team.to_owned(),
                spent_micros,
                limit_micros,
            }),
        }
    }

    /// Holds `worst` against `key` when `spent` plus what is held plus `worst` fits `limit`; otherwise
    /// returns what is spent or held.
    fn hold(
        &self,
        key: String,
        spent: u64,
        worst: u64,
        limit: u64,
    ) -> Result<Option<Reservation>, u64> {
        let mut in_flight = self.in_flight.lock().unwrap_or_else(PoisonError::into_inner);
        let held = in_flight.get(&key).copied().unwrap_or(0);
        let committed = spent.saturating_add(held);
        if committed.saturating_add(worst) > limit {
            return Err(committed);
        }
        *in_flight.entry(key.clone()).or_insert(0) += worst;
        Ok(Some(Reservation { in_flight: Arc::clone(&self.in_flight), key, micros: worst }))
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        let mut in_flight = self.in_flight.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(held) = in_flight.get_mut(&self.key) {
            *held = held.saturating_sub(self.micros);
            if *held == 0 {
                in_flight.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gateway::MemoryUsageLedger;

    #[tokio::test]
    async fn calls_in_flight_count_against_the_budget_until_released() {
        let ledger = MemoryUsageLedger::new();
        let budget = Budget::new(Some(100));
        let task = TaskId::generate();
        let first = budget.reserve(&ledger, &task, 60, None).await.unwrap();
        let refused = budget.reserve(&ledger, &task, 60, None).await.unwrap_err();
        assert_eq!(refused, ModelError::BudgetExceeded { spent_micros: 60, limit_micros: 100 });
        let other_task = TaskId::generate();
        assert!(budget.reserve(&ledger, &other_task, 60, None).await.unwrap().is_some());
        drop(first);
        assert!(budget.reserve(&ledger, &task, 100, None).await.unwrap().is_some());
        assert!(Budget::new(None).reserve(&ledger, &task, 1_000, None).await.unwrap().is_none());
    }
}
