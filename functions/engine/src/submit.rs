//! Starting, resuming and cancelling tasks.

use cadre_domain::candidates::{self, Standing};
use cadre_domain::event::{Event, EventRecord};
use cadre_domain::ports::queue::{OutgoingMessage, QueueError};
use cadre_domain::ports::store::StoreError;
use cadre_domain::ports::{Clock, Queue, StateStore};
use cadre_domain::{Envelope, Ports, StepPayload, Task, TaskId, TaskState, TraceId};
use std::time::Duration;

/// Why a task could not be submitted, resumed or cancelled.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The queue failed.
    #[error(transparent)]
    Queue(#[from] QueueError),
    /// The task stopped at its budget; it goes on only with a higher one.
    #[error(
        "the task stopped at its budget; raise it to go on (`cadre resume TASK --budget-usd N`)"
    )]
    BudgetExhausted,
    /// The task's settings are not possible (e.g. too many candidates).
    #[error("the task cannot start: {0}")]
    InvalidSettings(String),
    /// A raise that does not raise.
    #[error("the new budget (${new:.4}) must be above what the task has spent (${spent:.4})")]
    BudgetTooLow {
        /// The asked budget, in dollars.
        new: f64,
        /// The spend, in dollars.
        spent: f64,
    },
}

/// Raises a task's budget to `limit_micros` and, when it had stopped at its budget, publishes the step
/// it stopped in. `spent_micros` is what the usage ledger says the task has spent: a raise to no more
/// than that is refused, as the next call would stop again at once.
///
/// # Errors
/// Store and queue failures, [`EngineError::BudgetTooLow`].
pub async fn raise_budget(
    store: &dyn StateStore,
    queue: &dyn Queue,
    clock: &dyn Clock,
    task: &TaskId,
    limit_micros: u64,
    spent_micros: u64,
) -> Result<Option<StepPayload>, EngineError> {
    if limit_micros <= spent_micros {
        return Err(EngineError::BudgetTooLow {
            new: cadre_domain::event::micros_to_usd(limit_micros),
            spent: cadre_domain::event::micros_to_usd(spent_micros),
        });
    }
    let open = |s: TaskState| !s.is_terminal();
    store.append(task, vec![Event::BudgetRaised { limit_micros }], clock.now(), Some(open)).await?;
    resume(store, queue, task).await
}

/// Stores `task` and publishes its first message.
///
/// # Errors
/// [`EngineError::InvalidSettings`] for settings no run can have (nothing is stored then); store and
/// queue failures. If the publish fails after the task was stored, [`resume`] publishes it.
pub async fn submit(ports: &Ports, task: &Task) -> Result<Envelope, EngineError> {
    task.settings.validate().map_err(EngineError::InvalidSettings)?;
    ports.store.create_task(task).await?;
    let envelope = Envelope::new(task.id.clone(), TraceId::for_task(&task.id), StepPayload::Index);
    publish_one(ports.queue.as_ref(), &envelope).await?;
    Ok(envelope)
}

/// Publishes the message a task in its current state is waiting for, for a task whose message was lost
/// (e.g. a crash between storing and publishing, or a dead letter that was fixed). Safe to call any time:
/// a message still queued is not duplicated (same id), and a step already committed only re-publishes
/// its next messages. Returns the payload published, or `None` when the task waits for nothing.
///
/// # Errors
/// Store and queue failures.
pub async fn resume(
    store: &dyn StateStore,
    queue: &dyn Queue,
    task: &TaskId,
) -> Result<Option<StepPayload>, EngineError> {
    let summary = store.task(task).await?;
    let candidates = summary.task.settings.candidates;
    if candidates > 1
        && matches!(summary.state, TaskState::Generating { .. } | TaskState::Testing { .. })
    {
        let events = store.events(task).await?;
        if !candidates::is_ranked(&events) {
            return resume_candidates(queue, task, &events, candidates).await;
        }
    }
    let payload = match summary.state {
        TaskState::Queued | TaskState::Indexing => StepPayload::Index,
        TaskState::Planning => StepPayload::Plan,
        TaskState::Generating { round } => {
            let events = store.events(task).await?;
            let events: Vec<&Event> = events.iter().map(|r| &r.event).collect();
            next_generate(events.into_iter(), round)
        }
        TaskState::Testing { round } => StepPayload::Test { round },
        TaskState::BudgetExhausted { .. } => return Err(EngineError::BudgetExhausted),
        TaskState::AwaitingReview { .. }
        | TaskState::Applied
        | TaskState::Rejected
        | TaskState::Failed
        | TaskState::Cancelled => return Ok(None),
    };
    let envelope = Envelope::new(task.clone(), TraceId::for_task(task), payload.clone());
    publish_one(queue, &envelope).await?;
    Ok(Some(payload))
}

/// The message a loop generating round `round` waits for, given the loop's events: in the tool
/// harness, the turn after the last committed one.
fn next_generate<'a>(events: impl Iterator<Item = &'a Event>, round: u32) -> StepPayload {
    let turns =
        events.filter(|e| matches!(e, Event::AgentTurn { round: r2, .. } if *r2 == round)).count();
    match u32::try_from(turns).unwrap_or(u32::MAX) {
        0 => StepPayload::Generate { round },
        done => StepPayload::Turn { round, turn: done + 1 },
    }
}

/// Re-publishes the message every candidate of a best-of-N task waits for. A candidate whose tests
/// passed gets its last test message again: that one is committed, so its redelivery only re-runs the
/// join, which is what a task whose candidates all ended but were never ranked needs.
async fn resume_candidates(
    queue: &dyn Queue,
    task: &TaskId,
    events: &[EventRecord],
    candidates: u32,
) -> Result<Option<StepPayload>, EngineError> {
    let mut first = None;
    for candidate in 1..=candidates {
        let payload = match (
            candidates::standing(events, candidate),
            candidates::state_of(events, candidate),
        ) {
            (Standing::Failed { .. }, _) => continue,
            (_, TaskState::Generating { round }) => {
                next_generate(candidates::events_of(events, candidate), round)
            }
            (_, TaskState::Testing { round }) => StepPayload::Test { round },
            _ => continue,
        }
        .for_candidate(Some(candidate));
        let envelope = Envelope::new(task.clone(), TraceId::for_task(task), payload.clone());
        publish_one(queue, &envelope).await?;
        first.get_or_insert(payload);
    }
    Ok(first)
}

/// Cancels a task that has not finished. Returns the state found and whether it was cancelled.
/// A step running for it stops at its next heartbeat and its result is discarded.
///
/// # Errors
/// Store failures, and [`StoreError::TaskNotFound`].
pub async fn cancel(
    store: &dyn StateStore,
    clock: &dyn Clock,
    task: &TaskId,
    reason: Option<String>,
) -> Result<(TaskState, bool), EngineError> {
    let cancellable = |s: TaskState| !s.is_terminal();
    Ok(store
        .append(task, vec![Event::Cancelled { reason }], clock.now(), Some(cancellable))
        .await?)
}

async fn publish_one(queue: &dyn Queue, envelope: &Envelope) -> Result<(), QueueError> {
    let message = OutgoingMessage {
        id: envelope.message_id.clone(),
        body: envelope.to_bytes(),
        delay: Duration::ZERO,
    };
    queue.publish(vec![message]).await
}
