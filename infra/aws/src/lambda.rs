//! The Lambda side: SQS event batches in, partial batch failures out.
//!
//! A Lambda function fed by an SQS event source mapping gets up to N records per invocation. Each record
//! becomes a [`Delivery`] on the [`SqsQueue`] the function's engine uses, runs through the caller's
//! handler (the engine), and is then reported by how the handler settled it:
//! - acked or dead-lettered: a success, so the event source mapping deletes it;
//! - handed back with `retry_later`, or not settled at all (the store was unreachable, or the handler
//!   panicked): listed in `batchItemFailures`, so only it comes back, after the delay `retry_later` set,
//!   or after [`UNSETTLED_RETRY`] (not the queue's visibility timeout, which is six function timeouts).
//!
//! Records of a standard queue run concurrently, each in its own task. Records of a FIFO queue run in
//! order and, as AWS documents for FIFO sources, the first failure stops the batch: it and every record
//! after it are reported failed, so no message overtakes an earlier one of its task.
//!
//! Which step runs is decided by each record's envelope (the engine dispatches on it), not by the
//! function's configuration; the per-step functions of `terraform/aws` differ only in their queue,
//! memory and timeout.

use cadre_domain::ports::queue::{Delivery, Receipt};
use cadre_domain::{MessageId, Timestamp};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use crate::body::{self, ATTR_ENCODING, ATTR_ID, BASE64};
use crate::held::Settlement;
use crate::sqs::SqsQueue;

/// When a record the handler left unsettled is delivered again (the engine's default visibility).
pub const UNSETTLED_RETRY: Duration = Duration::from_secs(30);

/// The event Lambda's SQS event source mapping sends (the fields Cadre reads).
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct SqsEvent {
    /// The records of the batch.
    #[serde(rename = "Records", default)]
    pub records: Vec<SqsRecord>,
}

/// One SQS message in a Lambda event.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SqsRecord {
    /// SQS's id of the message; what `batchItemFailures` names.
    pub message_id: String,
    /// The receipt handle of this delivery.
    pub receipt_handle: String,
    /// The body as SQS carries it.
    #[serde(default)]
    pub body: String,
    /// System attributes: `ApproximateReceiveCount`, `SentTimestamp`, `MessageGroupId`, …
    #[serde(default)]
    pub attributes: HashMap<String, String>,
    /// Message attributes, with `cadre-id` and, for base64 bodies, `cadre-encoding`.
    #[serde(default)]
    pub message_attributes: HashMap<String, RecordAttribute>,
    /// The queue's ARN.
    #[serde(rename = "eventSourceARN", default)]
    pub event_source_arn: String,
}

/// A message attribute as Lambda writes it.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RecordAttribute {
    /// The value of a `String` or `Number` attribute.
    #[serde(default)]
    pub string_value: Option<String>,
    /// `String`, `Number` or `Binary`.
    #[serde(default)]
    pub data_type: String,
}

/// The function's answer: the records to deliver again.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchResponse {
    /// The failed records; the others are deleted by the event source mapping.
    pub batch_item_failures: Vec<ItemFailure>,
}

/// One failed record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ItemFailure {
    /// The record's `messageId`.
    pub item_identifier: String,
}

/// Why the Lambda runtime loop stopped.
#[derive(Debug, thiserror::Error)]
#[error("the lambda runtime stopped: {0}; check AWS_LAMBDA_RUNTIME_API and the function's logs")]
pub struct LambdaError(String);

impl SqsRecord {
    fn is_fifo(&self) -> bool {
        self.event_source_arn.ends_with(".fifo") || self.attributes.contains_key("MessageGroupId")
    }

    fn attr(&self, name: &str) -> Option<&str> {
        self.message_attributes.get(name).and_then(|a| a.string_value.as_deref())
    }

    /// The record as the port's delivery.
    fn delivery(&self, fallback_time: Timestamp) -> Delivery {
        let number = |name: &str| self.attributes.get(name).and_then(|n| n.parse::<i64>().ok());
        Delivery {
            receipt: Receipt(self.receipt_handle.clone()),
            id: MessageId::new(self.attr(ATTR_ID).unwrap_or(&self.message_id)),
            body: body::decode(&self.body, self.attr(ATTR_ENCODING) == Some(BASE64)),
            delivery_count: number("ApproximateReceiveCount")
                .and_then(|n| u32::try_from(n).ok())
                .unwrap_or(1),
            published_at: number("SentTimestamp").map_or(fallback_time, Timestamp),
        }
    }
}

/// Runs every record of `event` through `handle` and reports the ones not settled as done.
pub async fn handle_batch<F, Fut>(
    queue: &Arc<SqsQueue>,
    event: SqsEvent,
    handle: Arc<F>,
) -> BatchResponse
where
    F: Fn(Delivery) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let fifo = event.records.iter().any(SqsRecord::is_fifo);
    let now = queue.now();
    let mut failures = Vec::new();
    if fifo {
        let mut records = event.records.into_iter();
        for record in records.by_ref() {
            let delivery = adopt(queue, &record, now);
            let receipt = delivery.receipt.clone();
            run_one(Arc::clone(&handle), delivery).await;
            if !done(queue, &receipt).await {
                failures.push(ItemFailure { item_identifier: record.message_id });
                break;
            }
        }
        failures.extend(records.map(|r| ItemFailure { item_identifier: r.message_id }));
    } else {
        let mut running = tokio::task::JoinSet::new();
        // Which record each task runs, so a task that fails outside the handler still names its
        // record as failed: left out of `batchItemFailures`, it would be deleted unprocessed.
        let mut records = HashMap::new();
        for record in event.records {
            let delivery = adopt(queue, &record, now);
            let handle = Arc::clone(&handle);
            let message_id = record.message_id.clone();
            let task = running.spawn(async move {
                let receipt = delivery.receipt.clone();
                run_one(handle, delivery).await;
                receipt
            });
            records.insert(task.id(), message_id);
        }
        while let Some(joined) = running.join_next_with_id().await {
            let (task, settled) = match joined {
                Ok((task, receipt)) => (task, done(queue, &receipt).await),
                Err(error) => {
                    tracing::error!(%error, "a record's task failed outside the engine; reporting it failed");
                    (error.id(), false)
                }
            };
            if let Some(id) = records.remove(&task) {
                if !settled {
                    failures.push(ItemFailure { item_identifier: id });
                }
            }
        }
    }
    tracing::info!(failed = failures.len(), fifo, "sqs batch handled");
    BatchResponse { batch_item_failures: failures }
}

/// Serves Lambda invocations from the Runtime API in `AWS_LAMBDA_RUNTIME_API` until the process ends,
/// running each record through `handle` with `queue` as the engine's queue.
///
/// # Errors
/// Returns [`LambdaError`] when the Runtime API cannot be reached.
///
/// # Panics
/// `lambda_runtime` panics when Lambda's environment (`AWS_LAMBDA_FUNCTION_NAME`,
/// `AWS_LAMBDA_FUNCTION_MEMORY_SIZE`, `AWS_LAMBDA_FUNCTION_VERSION`, `AWS_LAMBDA_RUNTIME_API`) is not
/// set; outside Lambda, set them as a local Runtime API emulator expects.
pub async fn serve<F, Fut>(queue: Arc<SqsQueue>, handle: F) -> Result<(), LambdaError>
where
    F: Fn(Delivery) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let handle = Arc::new(handle);
    let service =
        lambda_runtime::service_fn(move |event: lambda_runtime::LambdaEvent<SqsEvent>| {
            let queue = Arc::clone(&queue);
            let handle = Arc::clone(&handle);
            async move {
                let span =
                    tracing::info_span!("invocation", request_id = %event.context.request_id);
                let response = tracing::Instrument::instrument(
                    handle_batch(&queue, event.payload, handle),
                    span,
                )
                .await;
                Ok::<_, std::convert::Infallible>(response)
            }
        });
    lambda_runtime::Runtime::new(service).run().await.map_err(|e| LambdaError(e.to_string()))
}

fn adopt(queue: &SqsQueue, record: &SqsRecord, now: Timestamp) -> Delivery {
    let delivery = record.delivery(now);
    let group = record.attributes.get("MessageGroupId").cloned();
    queue.adopt(&record.message_id, &delivery, group);
    delivery
}

/// Runs the handler in its own task, so a panic fails only its record.
async fn run_one<F, Fut>(handle: Arc<F>, delivery: Delivery)
where
    F: Fn(Delivery) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    if let Err(error) = tokio::spawn(handle(delivery)).await {
        tracing::error!(%error, "a record's handler panicked; reporting it failed");
    }
}

/// Whether the record was settled so that the event source mapping may delete it. A record left
/// unsettled is handed back to come again after [`UNSETTLED_RETRY`].
async fn done(queue: &SqsQueue, receipt: &Receipt) -> bool {
    match queue.settlement(receipt) {
        Some(Settlement::Acked | Settlement::DeadLettered) => true,
        Some(Settlement::RetryLater | Settlement::Superseded) => false,
        None => {
            if let Err(error) =
                cadre_domain::ports::queue::Queue::retry_later(queue, receipt, UNSETTLED_RETRY)
                    .await
            {
                tracing::warn!(%error, "an unsettled record keeps the queue's visibility timeout");
            }
            false
        }
    }
}
