//! Handling one delivery from start to settlement (ack, retry, or dead letter).

use cadre_domain::envelope::EnvelopeError;
use cadre_domain::event::Event;
use cadre_domain::ports::knowledge::TaskVerdict;
use cadre_domain::ports::model::ModelError;
use cadre_domain::ports::queue::{Delivery, OutgoingMessage, QueueError};
use cadre_domain::ports::store::{CommitOutcome, StepCommit, StoreError};
use cadre_domain::step::{StepError, StepOutcome};
use cadre_domain::{Envelope, Ports, StepKind, TaskState};
use std::time::Duration;
use tracing::Instrument;

use crate::dispatch::run_step;
use crate::join::{self, Joined};
use crate::lane;
use crate::worker::EngineConfig;

/// How a delivery was settled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handled {
    /// The step ran and its result was committed; `next` messages were published.
    Completed {
        /// The step.
        step: StepKind,
        /// How many messages were published.
        next: usize,
    },
    /// The step had been committed before (a redelivery); its recorded next messages were re-published.
    Duplicate,
    /// The task is finished or cancelled; the message was dropped.
    Dropped {
        /// Why.
        why: String,
    },
    /// The step failed and will be retried after `delay`.
    Retrying {
        /// Backoff before the next attempt.
        delay: Duration,
    },
    /// The task failed for a reason retrying cannot fix (e.g. the model's output stayed unusable).
    TaskFailed {
        /// Why.
        reason: String,
    },
    /// A model call would have passed the task's budget: the task stopped (with everything kept) until
    /// a person raises it.
    BudgetExhausted {
        /// Spent so far, in micro-dollars.
        spent_micros: u64,
        /// The budget.
        limit_micros: u64,
    },
    /// The message went to the dead letters.
    DeadLettered {
        /// Why.
        reason: String,
    },
    /// The queue or store was unavailable; the message will come back after its visibility timeout.
    Abandoned {
        /// Why.
        reason: String,
    },
}

/// Runs one delivery through its step and settles it.
pub(crate) async fn handle(ports: &Ports, config: &EngineConfig, delivery: Delivery) -> Handled {
    let envelope = match Envelope::from_bytes(&delivery.body) {
        Ok(mut envelope) => {
            envelope.attempt = delivery.delivery_count;
            envelope
        }
        Err(error) => return dead_letter(ports, &delivery, &malformed_reason(&error)).await,
    };
    let span = tracing::info_span!(
        "envelope",
        task_id = %envelope.task_id,
        step = %envelope.step,
        round = envelope.payload.round(),
        attempt = envelope.attempt,
        msg_id = %delivery.id,
        trace_id = %envelope.trace_id,
    );
    handle_envelope(ports, config, &delivery, envelope).instrument(span).await
}

fn malformed_reason(error: &EnvelopeError) -> String {
    format!("{error}; the message cannot be processed and was kept unchanged")
}

async fn handle_envelope(
    ports: &Ports,
    config: &EngineConfig,
    delivery: &Delivery,
    envelope: Envelope,
) -> Handled {
    let summary = match ports.store.task(&envelope.task_id).await {
        Ok(summary) => summary,
        Err(StoreError::TaskNotFound(id)) => {
            return dead_letter(ports, delivery, &format!("task {id} does not exist in the store"))
                .await;
        }
        Err(error) => return abandon(format!("store unavailable while loading the task: {error}")),
    };
    if !runnable(summary.state) {
        return ack_dropped(ports, delivery, format!("task is {}", summary.state)).await;
    }
    let mut task = summary.task;
    match ports.store.events(&envelope.task_id).await {
        Ok(events) => task.settings.budget_micros = task.budget_after(&events),
        Err(error) => return abandon(format!("store unavailable while loading the log: {error}")),
    }
    match ports.store.committed_next(&envelope.idempotency_key).await {
        Ok(Some(next)) => return republish(ports, delivery, &envelope, next).await,
        Ok(None) => {}
        Err(error) => {
            return abandon(format!("store unavailable while checking idempotency: {error}"))
        }
    }

    let started = in_lane(
        &envelope,
        Event::StepStarted {
            step: envelope.step,
            round: envelope.payload.round(),
            attempt: envelope.attempt,
        },
    );
    match ports
        .store
        .append(&envelope.task_id, vec![started], ports.clock.now(), Some(runnable))
        .await
    {
        Ok((state, false)) => {
            return ack_dropped(ports, delivery, format!("task is {state}")).await
        }
        Ok((_, true)) => {}
        Err(error) => {
            return abandon(format!("store unavailable while recording the start: {error}"))
        }
    }
    tracing::info!("step started");
    let begun = ports.clock.now();

    let outcome = match run_guarded(ports, config, delivery, &envelope, task).await {
        Guarded::Finished(outcome) => outcome,
        Guarded::Panicked(message) => {
            let reason = format!("step {} panicked: {message}", envelope.step);
            if let Err(unsettled) = fail_task(ports, &envelope, &reason).await {
                return abandon(unsettled);
            }
            return dead_letter(ports, delivery, &reason).await;
        }
        Guarded::TaskEnded(state) => {
            return ack_dropped(ports, delivery, format!("task became {state} mid-step")).await
        }
    };
    let elapsed_ms = ports.clock.now().millis_since(begun);

    match outcome {
        Ok(outcome) => commit(ports, delivery, &envelope, outcome, elapsed_ms).await,
        Err(error) => on_step_error(ports, config, delivery, &envelope, &error).await,
    }
}

enum Guarded {
    Finished(Result<StepOutcome, StepError>),
    Panicked(String),
    TaskEnded(TaskState),
}

/// Runs the step in its own task (so a panic is contained), extending the message's visibility while
/// it runs and stopping it if the task is cancelled meanwhile.
async fn run_guarded(
    ports: &Ports,
    config: &EngineConfig,
    delivery: &Delivery,
    envelope: &Envelope,
    task: cadre_domain::Task,
) -> Guarded {
    let step_ports = ports.clone();
    let step_envelope = envelope.clone();
    let mut step = tokio::spawn(
        async move { run_step(&step_envelope, &task, &step_ports).await }
            .instrument(tracing::Span::current()),
    );
    let beat = (config.visibility / 3).max(Duration::from_millis(10));
    let mut heartbeat = tokio::time::interval_at(tokio::time::Instant::now() + beat, beat);
    loop {
        tokio::select! {
            joined = &mut step => {
                return match joined {
                    Ok(result) => Guarded::Finished(result),
                    Err(join) => Guarded::Panicked(panic_message(join)),
                };
            }
            _ = heartbeat.tick() => {
                if let Ok(summary) = ports.store.task(&envelope.task_id).await {
                    if summary.state.is_terminal() {
                        step.abort();
                        return Guarded::TaskEnded(summary.state);
                    }
                }
                if let Err(error) = ports.queue.extend(&delivery.receipt, config.visibility).await {
                    tracing::warn!(%error, "could not extend the message's visibility");
                }
            }
        }
    }
}

fn panic_message(join: tokio::task::JoinError) -> String {
    if !join.is_panic() {
        return "the step's task was cancelled".into();
    }
    let payload = join.into_panic();
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a non-text panic payload".into())
}

async fn commit(
    ports: &Ports,
    delivery: &Delivery,
    envelope: &Envelope,
    outcome: StepOutcome,
    elapsed_ms: u64,
) -> Handled {
    let next = outcome.next.clone();
    let commit = StepCommit {
        task_id: envelope.task_id.clone(),
        key: envelope.idempotency_key.clone(),
        events: outcome.events,
        artifacts: outcome.artifacts,
        next: outcome.next,
        at: ports.clock.now(),
    };
    match ports.store.commit_step(commit).await {
        Ok(CommitOutcome::Committed) => {
            tracing::info!(elapsed_ms, next = next.len(), "step committed");
            let mut next = next;
            if ends_candidate(envelope, &next) {
                match after_candidate(ports, envelope, false).await {
                    Ok(joined) => next.extend(joined),
                    Err(reason) => return abandon(reason),
                }
            }
            match publish(ports, &next).await {
                Ok(()) => {
                    settle_ack(ports, delivery).await;
                    Handled::Completed { step: envelope.step, next: next.len() }
                }
                Err(error) => {
                    abandon(format!("committed, but publishing the next step failed: {error}"))
                }
            }
        }
        Ok(CommitOutcome::AlreadyCommitted { next }) => {
            republish(ports, delivery, envelope, next).await
        }
        Ok(CommitOutcome::TaskFinished { state }) => {
            ack_dropped(ports, delivery, format!("task became {state}")).await
        }
        Err(error) => abandon(format!("store unavailable while committing: {error}")),
    }
}

/// `event` as the envelope's candidate's, when it is a candidate's message.
fn in_lane(envelope: &Envelope, event: Event) -> Event {
    match envelope.payload.candidate() {
        Some(candidate) => lane::wrap(event, candidate),
        None => event,
    }
}

/// Whether the committed result of `envelope` ended its candidate: a candidate's message that leads to
/// no further message of its loop (its tests passed, or it failed).
fn ends_candidate(envelope: &Envelope, next: &[Envelope]) -> bool {
    envelope.payload.candidate().is_some() && next.is_empty()
}

/// The join after a candidate ended, and the messages it asks to publish: the join's, when this
/// handling committed it, or when it is a redelivery (whose first handling may have died before
/// publishing); nothing when another handling committed it just now, or a candidate still runs.
async fn after_candidate(
    ports: &Ports,
    envelope: &Envelope,
    redelivered: bool,
) -> Result<Vec<Envelope>, String> {
    match join::join(ports, &envelope.task_id, &envelope.trace_id).await {
        Ok(Joined::Committed(next)) => Ok(next),
        Ok(Joined::Before(next)) if redelivered => Ok(next),
        Ok(Joined::Before(_) | Joined::Pending | Joined::TaskFinished) => Ok(Vec::new()),
        Err(error) => Err(format!("store unavailable while joining the candidates: {error}")),
    }
}

/// Whether a step may run for a task in `state`: not when it is finished, nor while it waits for a
/// raised budget (a stale message then must not spend past the limit).
fn runnable(state: TaskState) -> bool {
    !state.is_terminal() && !matches!(state, TaskState::BudgetExhausted { .. })
}

async fn on_step_error(
    ports: &Ports,
    config: &EngineConfig,
    delivery: &Delivery,
    envelope: &Envelope,
    error: &StepError,
) -> Handled {
    let attempt = envelope.attempt;
    if error.is_retryable() && attempt < config.max_attempts {
        let delay = config.backoff.delay(attempt);
        tracing::warn!(%error, attempt, delay_ms = delay.as_millis() as u64, "step failed, will retry");
        let event = in_lane(
            envelope,
            Event::StepRetrying {
                step: envelope.step,
                round: envelope.payload.round(),
                attempt,
                error: error.to_string(),
                retry_in_ms: u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
            },
        );
        if let Err(e) =
            ports.store.append(&envelope.task_id, vec![event], ports.clock.now(), None).await
        {
            tracing::warn!(error = %e, "could not record the retry");
        }
        return match ports.queue.retry_later(&delivery.receipt, delay).await {
            Ok(()) => Handled::Retrying { delay },
            Err(e) => abandon(format!("could not schedule the retry: {e}")),
        };
    }
    let exhausted = match error {
        StepError::Model(ModelError::BudgetExceeded { spent_micros, limit_micros }) => {
            Some((*spent_micros, *limit_micros, None))
        }
        StepError::Model(ModelError::TeamBudgetExceeded { team, spent_micros, limit_micros }) => {
            Some((*spent_micros, *limit_micros, Some(team.clone())))
        }
        _ => None,
    };
    if let Some((spent_micros, limit_micros, team)) = exhausted {
        let event = Event::BudgetExhausted {
            step: envelope.step,
            round: envelope.payload.round(),
            spent_micros,
            limit_micros,
            team,
        };
        tracing::warn!(spent_micros, limit_micros, "task stopped at its budget");
        // Not committed under the message's key: after a raise, the same step runs again for real.
        return match ports
            .store
            .append(&envelope.task_id, vec![event], ports.clock.now(), Some(runnable))
            .await
        {
            Ok(_) => {
                settle_ack(ports, delivery).await;
                Handled::BudgetExhausted { spent_micros, limit_micros }
            }
            Err(e) => abandon(format!("could not record the exhausted budget: {e}")),
        };
    }
    if let StepError::Unusable { reason } = error {
        tracing::warn!(%reason, "task failed");
        if let Err(unsettled) = fail_task(ports, envelope, reason).await {
            return abandon(unsettled);
        }
        settle_ack(ports, delivery).await;
        return Handled::TaskFailed { reason: reason.clone() };
    }
    let reason = if error.is_retryable() {
        format!("step {} failed after {attempt} attempts: {error}", envelope.step)
    } else {
        format!("step {} failed and retrying cannot help: {error}", envelope.step)
    };
    if let Err(unsettled) = fail_task(ports, envelope, &reason).await {
        return abandon(unsettled);
    }
    dead_letter(ports, delivery, &reason).await
}

/// Records the task as failed under the message's idempotency key (so a redelivery does not run it again).
/// A candidate's message fails only its candidate, and then joins the candidates; `Err` when that
/// join could not be done, so the message must come back rather than be settled.
async fn fail_task(ports: &Ports, envelope: &Envelope, reason: &str) -> Result<(), String> {
    let failed = Event::Failed { step: Some(envelope.step), reason: reason.to_owned() };
    let commit = StepCommit {
        task_id: envelope.task_id.clone(),
        key: envelope.idempotency_key.clone(),
        events: vec![in_lane(envelope, failed)],
        artifacts: Vec::new(),
        next: Vec::new(),
        at: ports.clock.now(),
    };
    let committed = ports.store.commit_step(commit).await;
    if envelope.payload.candidate().is_some() {
        let redelivered = match committed {
            Ok(CommitOutcome::Committed) => false,
            Ok(CommitOutcome::AlreadyCommitted { .. }) => true,
            Ok(CommitOutcome::TaskFinished { .. }) => return Ok(()),
            Err(error) => return Err(format!("could not record the candidate's failure: {error}")),
        };
        let next = after_candidate(ports, envelope, redelivered).await?;
        return publish(ports, &next)
            .await
            .map_err(|e| format!("joined the candidates, but publishing failed: {e}"));
    }
    match committed {
        Ok(CommitOutcome::Committed) => {
            crate::outcome::record_outcome(
                ports.into(),
                &envelope.task_id,
                TaskVerdict::Failed,
                Some(reason),
            )
            .await;
        }
        Ok(_) => {}
        Err(error) => tracing::error!(%error, "could not record the task's failure"),
    }
    Ok(())
}

async fn publish(ports: &Ports, next: &[Envelope]) -> Result<(), QueueError> {
    if next.is_empty() {
        return Ok(());
    }
    let messages = next
        .iter()
        .map(|e| OutgoingMessage {
            id: e.message_id.clone(),
            body: e.to_bytes(),
            delay: Duration::ZERO,
        })
        .collect();
    ports.queue.publish(messages).await
}

async fn republish(
    ports: &Ports,
    delivery: &Delivery,
    envelope: &Envelope,
    mut next: Vec<Envelope>,
) -> Handled {
    tracing::info!(next = next.len(), "step was committed before; re-publishing its next messages");
    if ends_candidate(envelope, &next) {
        match after_candidate(ports, envelope, true).await {
            Ok(joined) => next.extend(joined),
            Err(reason) => return abandon(reason),
        }
    }
    match publish(ports, &next).await {
        Ok(()) => {
            settle_ack(ports, delivery).await;
            Handled::Duplicate
        }
        Err(error) => abandon(format!("re-publishing the next step failed: {error}")),
    }
}

async fn ack_dropped(ports: &Ports, delivery: &Delivery, why: String) -> Handled {
    tracing::info!(%why, "dropping message");
    settle_ack(ports, delivery).await;
    Handled::Dropped { why }
}

async fn settle_ack(ports: &Ports, delivery: &Delivery) {
    if let Err(error) = ports.queue.ack(std::slice::from_ref(&delivery.receipt)).await {
        // The work is committed; a redelivery will find it and only re-publish.
        tracing::warn!(%error, "could not ack the message");
    }
}

async fn dead_letter(ports: &Ports, delivery: &Delivery, reason: &str) -> Handled {
    tracing::error!(msg_id = %delivery.id, %reason, "dead-lettering message");
    match ports.queue.dead_letter(&delivery.receipt, reason).await {
        Ok(()) => Handled::DeadLettered { reason: reason.to_owned() },
        Err(error) => abandon(format!("could not dead-letter ({reason}): {error}")),
    }
}

fn abandon(reason: String) -> Handled {
    tracing::warn!(%reason, "leaving the message for redelivery");
    Handled::Abandoned { reason }
}
