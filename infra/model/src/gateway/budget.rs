//! The per-task budget, checked before every call: what the task has spent (from the ledger), plus the
//! worst case of its calls still in flight, plus this call's worst case must fit in the limit.
//!
//! Counting calls in flight closes the race where several concurrent calls each read the same spend and
//! all pass. A reservation is released only after the call's row is in the ledger, so at every instant a
//! call's cost is counted at least once, never zero times.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use cadre_domain::ports::model::ModelError;
use cadre_domain::ports::usage::UsageLedger;
use cadre_domain::TaskId;

type InFlight = Arc<Mutex<HashMap<TaskId, u64>>>;

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
    task: TaskId,
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
        let mut in_flight = self.in_flight.lock().unwrap_or_else(PoisonError::into_inner);
        let held = in_flight.get(task).copied().unwrap_or(0);
        let committed = spent.saturating_add(held);
        if committed.saturating_add(worst_micros) > limit_micros {
            return Err(ModelError::BudgetExceeded { spent_micros: committed, limit_micros });
        }
        *in_flight.entry(task.clone()).or_insert(0) += worst_micros;
        Ok(Some(Reservation {
            in_flight: Arc::clone(&self.in_flight),
            task: task.clone(),
            micros: worst_micros,
        }))
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        let mut in_flight = self.in_flight.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(held) = in_flight.get_mut(&self.task) {
            *held = held.saturating_sub(self.micros);
            if *held == 0 {
                in_flight.remove(&self.task);
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
