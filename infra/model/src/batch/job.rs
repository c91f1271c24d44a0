//! A submitted job: waiting for it, cancelling it, and turning its responses into results and rows.

use std::collections::HashMap;
use std::sync::Arc;

use cadre_domain::ports::model::{ModelError, ModelReply, TokenUsage};
use cadre_domain::ports::usage::CallOutcome;
use cadre_domain::Timestamp;
use tokio::time::Instant;

use super::operation::{InlinedResponse, JobState};
use super::{wire, write_row, BatchError, BatchResult, Inner, ItemMeta};
use crate::gateway::is_retried;

/// A submitted job. Dropped before it finished, it is cancelled at the provider and its rows say
/// `cancelled`.
#[derive(Debug)]
pub struct BatchJob {
    pub(super) inner: Arc<Inner>,
    pub(super) name: String,
    pub(super) items: Vec<ItemMeta>,
    pub(super) at: Timestamp,
    pub(super) started: Instant,
    pub(super) finished: bool,
}

impl BatchJob {
    /// The job's resource name, `batches/{id}`.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Polls until the job ends and returns one result per item, in the order submitted.
    ///
    /// # Errors
    /// [`BatchError::Failed`], [`BatchError::Expired`] or [`BatchError::Cancelled`] as the provider
    /// reports the job; [`BatchError::TimedOut`] at [`GeminiBatchConfig::max_wait`];
    /// [`BatchError::Poll`] when the state cannot be read; [`BatchError::Malformed`] when the finished job
    /// has no inline responses. The job is cancelled on the last three. Every item gets its row.
    pub async fn wait(mut self) -> Result<Vec<BatchResult>, BatchError> {
        let inner = Arc::clone(&self.inner);
        let config = &inner.config;
        let deadline = self.started + config.max_wait;
        let mut delay = config.poll_first;
        let mut failures = 0;
        loop {
            if Instant::now() + delay > deadline {
                let after_ms =
                    u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
                let error = BatchError::TimedOut { name: self.name.clone(), after_ms };
                return Err(self.abandon(error, true).await);
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(config.poll_max);
            let operation = match inner.poll(&self.name).await {
                Ok(operation) => operation,
                Err(error) if is_retried(&error) && failures < config.poll_failures => {
                    failures += 1;
                    tracing::warn!(job = %self.name, failures, error = %error, "batch poll failed; polling again");
                    continue;
                }
                Err(error) => {
                    let error = BatchError::Poll { name: self.name.clone(), error };
                    return Err(self.abandon(error, true).await);
                }
            };
            failures = 0;
            let state = operation.state();
            tracing::debug!(job = %self.name, state = operation.state_label(), "batch job polled");
            let name = self.name.clone();
            let error = match state {
                JobState::Running => continue,
                JobState::Succeeded => match operation.responses() {
                    Ok(responses) => return Ok(self.finish(responses).await),
                    Err(reason) => BatchError::Malformed { name, reason },
                },
                JobState::Failed(message) => BatchError::Failed { name, message },
                JobState::Expired => BatchError::Expired { name },
                JobState::Cancelled => BatchError::Cancelled { name },
            };
            let cancel = matches!(error, BatchError::Malformed { .. });
            return Err(self.abandon(error, cancel).await);
        }
    }

    /// Cancels the job at the provider; its rows say `cancelled`.
    ///
    /// # Errors
    /// [`BatchError::Cancel`] when the provider did not accept the cancellation (the job may run on).
    pub async fn cancel(mut self) -> Result<(), BatchError> {
        self.finished = true;
        let result = self.inner.cancel(&self.name).await;
        self.inner.record_all(&self.items, self.at, self.started, 1, "cancelled").await;
        tracing::info!(job = %self.name, "batch job cancelled");
        result.map_err(|error| BatchError::Cancel { name: self.name.clone(), error })
    }

    /// Ends the job with `error`: cancels it at the provider when asked, and writes every item's row.
    async fn abandon(&mut self, error: BatchError, cancel: bool) -> BatchError {
        self.finished = true;
        if cancel {
            if let Err(e) = self.inner.cancel(&self.name).await {
                tracing::error!(job = %self.name, error = %e, "cannot cancel an abandoned batch job; it may still run and cost");
            }
        }
        tracing::warn!(job = %self.name, error = %error, "batch job ended without results");
        self.inner.record_all(&self.items, self.at, self.started, 1, &error.row_kind()).await;
        error
    }

    /// Maps the responses back to the items, writes their rows, and returns them in item order.
    async fn finish(&mut self, responses: Vec<InlinedResponse>) -> Vec<BatchResult> {
        self.finished = true;
        let by_key = responses.iter().all(|r| r.key().is_some());
        let mut keyed: HashMap<String, InlinedResponse> = HashMap::new();
        let mut positional = Vec::new();
        for response in responses {
            match response.key().map(str::to_owned) {
                Some(key) if by_key => {
                    keyed.insert(key, response);
                }
                _ => positional.push(Some(response)),
            }
        }
        let mut results = Vec::with_capacity(self.items.len());
        for (i, item) in self.items.iter().enumerate() {
            let response = if by_key {
                keyed.remove(&item.key)
            } else {
                positional.get_mut(i).and_then(Option::take)
            };
            let (tokens, result) = match response {
                Some(response) => self.outcome(response),
                None => (
                    TokenUsage::default(),
                    Err(ModelError::MalformedReply {
                        reason: format!("the batch output has no response for key {:?}", item.key),
                    }),
                ),
            };
            let outcome = match &result {
                Ok(_) => CallOutcome::Ok,
                Err(e) => CallOutcome::Failed { kind: e.kind().to_owned() },
            };
            let row = self.inner.row(item, self.at, self.started, 1, tokens, outcome);
            write_row(&*self.inner.ledger, &row).await;
            results.push(BatchResult { key: item.key.clone(), result });
        }
        let failed = results.iter().filter(|r| r.result.is_err()).count();
        tracing::info!(job = %self.name, requests = results.len(), failed, "batch job finished");
        results
    }

    fn outcome(&self, response: InlinedResponse) -> (TokenUsage, Result<ModelReply, ModelError>) {
        if let Some(error) = response.error() {
            return (TokenUsage::default(), Err(error));
        }
        match response.response {
            Some(value) => wire::interpret(value, &self.inner.model),
            None => (
                TokenUsage::default(),
                Err(ModelError::MalformedReply {
                    reason: "a batch response has neither `response` nor `error`".to_owned(),
                }),
            ),
        }
    }
}

impl Drop for BatchJob {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        let inner = Arc::clone(&self.inner);
        let (name, items, at, started) =
            (self.name.clone(), std::mem::take(&mut self.items), self.at, self.started);
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(async move {
                    if let Err(e) = inner.cancel(&name).await {
                        tracing::error!(job = %name, error = %e, "cannot cancel a dropped batch job; it may still run and cost");
                    }
                    inner.record_all(&items, at, started, 1, "cancelled").await;
                });
            }
            Err(_) => {
                tracing::error!(job = %name, "a batch job was dropped outside a tokio runtime: \
                it was not cancelled and its usage rows are lost")
            }
        }
    }
}
