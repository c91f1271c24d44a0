//! `SqsQueue`: the [`Queue`] port on Amazon SQS, for Lambda functions and long-running workers alike.
//!
//! How the port maps onto SQS:
//! - `publish`: `SendMessageBatch` to the queue of the envelope's step, in batches of 10. On a FIFO queue
//!   the message group is the task id (one task's messages in order, tasks in parallel) and the
//!   de-duplication id is the message id, so a re-published message is dropped within SQS's 5-minute
//!   window; past it the engine's idempotency keys make the duplicate harmless.
//! - `receive`: `ReceiveMessage` with long polling; the delivery count is `ApproximateReceiveCount`.
//! - `ack`: `DeleteMessageBatch`. `retry_later` and `extend`: `ChangeMessageVisibility`.
//! - `dead_letter`: the original bytes are sent to the queue's dead-letter queue (read from its redrive
//!   policy) with the reason as a message attribute, then deleted. Crash loops, where no one lives to
//!   call `dead_letter`, are ended by the redrive policy after `maxReceiveCount` receives.
//! - `dead_letters`: a peek at the dead-letter queue (received, then made visible again at once).

use aws_sdk_sqs::types::{
    ChangeMessageVisibilityBatchRequestEntry, DeleteMessageBatchRequestEntry, Message,
    MessageAttributeValue, MessageSystemAttributeName, QueueAttributeName,
    SendMessageBatchRequestEntry,
};
use cadre_domain::ports::clock::Clock;
use cadre_domain::ports::queue::{
    DeadLetter, Delivery, OutgoingMessage, Queue, QueueDepth, QueueError, Receipt,
};
use cadre_domain::{MessageId, Timestamp};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use crate::body::{
    self, ATTR_DEAD_AT, ATTR_DELIVERIES, ATTR_ENCODING, ATTR_ID, ATTR_REASON, BASE64,
};
use crate::client::{self, Endpoint, Failure};
use crate::config::{QueueUrl, SqsConfig};
use crate::held::{Held, Ledger, Origin, Settlement};

/// SQS's largest batch.
const BATCH: usize = 10;
/// SQS's longest visibility timeout (12 hours).
const MAX_VISIBILITY_SECS: u64 = 43_200;
/// SQS's longest per-message delay (15 minutes).
const MAX_DELAY_SECS: u64 = 900;
/// A batch is sent before its bodies pass this many bytes (SQS allows 1 MiB per batch).
const BATCH_BYTES: usize = 900 * 1024;
/// Longest reason kept on a dead letter (attributes count towards the message size).
const MAX_REASON_BYTES: usize = 8 * 1024;
/// How often entries of a batch that SQS refused are sent again before `publish` gives up.
const PUBLISH_TRIES: usize = 3;
/// How long a message being dead-lettered stays hidden while its copy is written.
const DEAD_LETTER_HOLD_SECS: i32 = 30;

/// Why an [`SqsQueue`] could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// SQS could not be asked about the queue.
    #[error("cannot read the attributes of SQS queue {queue}: {cause}; check the URL, the region and the credentials")]
    Unreachable {
        /// The queue.
        queue: String,
        /// The SDK's error with its causes.
        cause: String,
    },
    /// The queue has no dead-letter queue.
    #[error("SQS queue {queue} has no redrive policy; give it a dead-letter queue and a maxReceiveCount (terraform/aws does) so that crash loops end in a dead letter")]
    NoRedrivePolicy {
        /// The queue.
        queue: String,
    },
    /// The redrive policy is not what SQS documents.
    #[error("SQS queue {queue} has a redrive policy Cadre cannot read ({why}): {policy}")]
    BadRedrivePolicy {
        /// The queue.
        queue: String,
        /// What is wrong.
        why: String,
        /// The policy text.
        policy: String,
    },
    /// Creating a queue failed.
    #[error("cannot create SQS queue {name}: {cause}")]
    CreateFailed {
        /// The queue's name.
        name: String,
        /// The SDK's error with its causes.
        cause: String,
    },
}

/// The [`Queue`] port on one SQS queue and its dead-letter queue.
pub struct SqsQueue {
    client: aws_sdk_sqs::Client,
    queue: QueueUrl,
    dead: QueueUrl,
    max_receives: u32,
    routes: BTreeMap<String, QueueUrl>,
    wait_secs: i32,
    clock: Arc<dyn Clock>,
    ledger: Ledger,
}

impl std::fmt::Debug for SqsQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqsQueue")
            .field("queue", &self.queue.as_str())
            .field("dead", &self.dead.as_str())
            .field("max_receives", &self.max_receives)
            .finish_non_exhaustive()
    }
}

impl SqsQueue {
    /// Connects to the queue in `config`, reading its dead-letter queue and `maxReceiveCount` from its
    /// redrive policy. Time (for `dead_at`) comes from `clock`.
    ///
    /// # Errors
    /// Returns [`ConnectError`] when the queue cannot be read or has no usable redrive policy.
    pub async fn connect(config: SqsConfig, clock: Arc<dyn Clock>) -> Result<Self, ConnectError> {
        let endpoint = Endpoint {
            url: config.queue_url.endpoint().to_owned(),
            region: config.explicit_region(),
            credentials: config.credentials.clone(),
        };
        let client = client::build(&endpoint).await;
        let queue = config.queue_url;
        let unreachable = |cause| ConnectError::Unreachable { queue: queue.to_string(), cause };
        let attributes = client
            .get_queue_attributes()
            .queue_url(queue.as_str())
            .attribute_names(QueueAttributeName::RedrivePolicy)
            .send()
            .await
            .map_err(|e| unreachable(client::render(&e)))?;
        let Some(policy) =
            attributes.attributes().and_then(|a| a.get(&QueueAttributeName::RedrivePolicy))
        else {
            return Err(ConnectError::NoRedrivePolicy { queue: queue.to_string() });
        };
        let (dead_arn, max_receives) = parse_redrive_policy(policy).map_err(|why| {
            ConnectError::BadRedrivePolicy { queue: queue.to_string(), why, policy: policy.clone() }
        })?;
        let dead = dead_letter_url(&client, &queue, &dead_arn).await?;
        tracing::debug!(queue = %queue, dead = %dead, max_receives, "sqs queue connected");
        let wait_secs =
            i32::try_from(config.wait.min(crate::config::MAX_WAIT).as_secs()).unwrap_or(20);
        Ok(SqsQueue {
            client,
            queue,
            dead,
            max_receives,
            routes: config.routes,
            wait_secs,
            clock,
            ledger: Ledger::default(),
        })
    }

    /// The queue this adapter receives from.
    #[must_use]
    pub fn queue_url(&self) -> &QueueUrl {
        &self.queue
    }

    /// The dead-letter queue named by the queue's redrive policy.
    #[must_use]
    pub fn dead_letter_url(&self) -> &QueueUrl {
        &self.dead
    }

    /// The redrive policy's `maxReceiveCount`: receives after which SQS itself moves a message to the
    /// dead-letter queue.
    #[must_use]
    pub fn max_receives(&self) -> u32 {
        self.max_receives
    }

    /// How this process settled `receipt`, if it did (used to report a Lambda batch's failures).
    #[must_use]
    pub fn settlement(&self, receipt: &Receipt) -> Option<Settlement> {
        self.ledger.settlement(receipt)
    }

    /// The adapter's clock reading.
    pub(crate) fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// Takes over a delivery that a Lambda event carried: settling it then works as for one received
    /// here, except that an ack leaves the delete to the event source mapping.
    pub(crate) fn adopt(&self, sqs_id: &str, delivery: &Delivery, group: Option<String>) {
        self.ledger.hold(
            delivery.receipt.clone(),
            Held {
                sqs_id: sqs_id.to_owned(),
                id: delivery.id.clone(),
                body: delivery.body.clone(),
                group,
                delivery_count: delivery.delivery_count,
                origin: Origin::Lambda,
                // Lambda's own visibility timeout is the queue's; keep the entry for the longest one.
                visible_at: tokio::time::Instant::now() + Duration::from_secs(MAX_VISIBILITY_SECS),
            },
        );
    }

    fn destination(&self, body: &[u8]) -> &QueueUrl {
        body::step_of(body).and_then(|step| self.routes.get(&step)).unwrap_or(&self.queue)
    }

    async fn send_batch(
        &self,
        url: &QueueUrl,
        messages: &[&OutgoingMessage],
    ) -> Result<(), QueueError> {
        let mut pending: Vec<(usize, &OutgoingMessage)> =
            messages.iter().copied().enumerate().collect();
        let mut last_failures = Vec::new();
        for _ in 0..PUBLISH_TRIES {
            let entries = pending
                .iter()
                .map(|(i, m)| send_entry(*i, m, url.is_fifo()))
                .collect::<Result<Vec<_>, _>>()?;
            let out = self
                .client
                .send_message_batch()
                .queue_url(url.as_str())
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| unavailable("publish to", url, &client::render(&e)))?;
            let failed: HashSet<&str> = out.failed().iter().map(|f| f.id()).collect();
            if failed.is_empty() {
                return Ok(());
            }
            last_failures = out
                .failed()
                .iter()
                .map(|f| format!("{} {}", f.code(), f.message().unwrap_or_default()))
                .collect();
            pending.retain(|(i, _)| failed.contains(i.to_string().as_str()));
            tracing::warn!(queue = %url, failed = pending.len(), "sqs refused part of a batch; sending it again");
        }
        let ids: Vec<&str> = pending.iter().map(|(_, m)| m.id.as_str()).collect();
        Err(QueueError::Unavailable(format!(
            "sqs queue {url} refused messages {ids:?} ({}); the others of the batch were sent, and publishing all again is safe (duplicates are dropped)",
            last_failures.join("; ")
        )))
    }

    async fn change_visibility(&self, receipt: &Receipt, secs: u64) -> Result<(), QueueError> {
        let secs = i32::try_from(secs.min(MAX_VISIBILITY_SECS)).unwrap_or(i32::MAX);
        match self
            .client
            .change_message_visibility()
            .queue_url(self.queue.as_str())
            .receipt_handle(&receipt.0)
            .visibility_timeout(secs)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => Err(match client::classify(&e) {
                Failure::Stale => QueueError::StaleReceipt(receipt.clone()),
                Failure::Other(cause) => unavailable("change visibility on", &self.queue, &cause),
            }),
        }
    }

    fn refuse_settled(&self, receipt: &Receipt) -> Result<(), QueueError> {
        match self.ledger.settlement(receipt) {
            Some(_) => Err(QueueError::StaleReceipt(receipt.clone())),
            None => Ok(()),
        }
    }

    fn delivery(&self, message: &Message) -> Option<(Delivery, Held)> {
        let receipt = Receipt(message.receipt_handle()?.to_owned());
        let sqs_id = message.message_id().unwrap_or_default().to_owned();
        let attrs = message.message_attributes();
        let attr = |name: &str| attrs.and_then(|a| a.get(name)).and_then(|v| v.string_value());
        let system = message.attributes();
        let sys = |name: MessageSystemAttributeName| system.and_then(|a| a.get(&name));
        let body =
            body::decode(message.body().unwrap_or_default(), attr(ATTR_ENCODING) == Some(BASE64));
        let id = MessageId::new(attr(ATTR_ID).unwrap_or(&sqs_id));
        let delivery_count = sys(MessageSystemAttributeName::ApproximateReceiveCount)
            .and_then(|n| n.parse().ok())
            .unwrap_or(1);
        let published_at = sys(MessageSystemAttributeName::SentTimestamp)
            .and_then(|t| t.parse().ok())
            .map_or_else(|| self.clock.now(), Timestamp);
        let group = sys(MessageSystemAttributeName::MessageGroupId).cloned();
        let held = Held {
            sqs_id,
            id: id.clone(),
            body: body.clone(),
            group,
            delivery_count,
            origin: Origin::Received,
            visible_at: tokio::time::Instant::now(),
        };
        Some((Delivery { receipt, id, body, delivery_count, published_at }, held))
    }

    fn dead_letter_of(&self, message: &Message) -> DeadLetter {
        let attrs = message.message_attributes();
        let attr = |name: &str| attrs.and_then(|a| a.get(name)).and_then(|v| v.string_value());
        let sent = message
            .attributes()
            .and_then(|a| a.get(&MessageSystemAttributeName::SentTimestamp))
            .and_then(|t| t.parse().ok())
            .map_or_else(|| self.clock.now(), Timestamp);
        let body =
            body::decode(message.body().unwrap_or_default(), attr(ATTR_ENCODING) == Some(BASE64));
        let id = MessageId::new(attr(ATTR_ID).or(message.message_id()).unwrap_or_default());
        match attr(ATTR_REASON) {
            Some(reason) => DeadLetter {
                id,
                body,
                reason: reason.to_owned(),
                delivery_count: attr(ATTR_DELIVERIES).and_then(|n| n.parse().ok()).unwrap_or(0),
                dead_at: attr(ATTR_DEAD_AT).and_then(|t| t.parse().ok()).map_or(sent, Timestamp),
            },
            // Moved by the redrive policy: no one was there to give a reason.
            None => DeadLetter {
                id,
                body,
                reason: format!(
                    "delivered {} times without being settled (a crash or timeout each time); moved by the queue's redrive policy",
                    self.max_receives
                ),
                delivery_count: self.max_receives,
                dead_at: sent,
            },
        }
    }

    async fn counts(&self, url: &QueueUrl) -> Result<[u64; 3], QueueError> {
        let out = self
            .client
            .get_queue_attributes()
            .queue_url(url.as_str())
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesDelayed)
            .send()
            .await
            .map_err(|e| unavailable("read the depth of", url, &client::render(&e)))?;
        let get = |name: QueueAttributeName| {
            out.attributes().and_then(|a| a.get(&name)).and_then(|n| n.parse().ok()).unwrap_or(0)
        };
        Ok([
            get(QueueAttributeName::ApproximateNumberOfMessages),
            get(QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
            get(QueueAttributeName::ApproximateNumberOfMessagesDelayed),
        ])
    }
}

#[async_trait::async_trait]
impl Queue for SqsQueue {
    async fn publish(&self, messages: Vec<OutgoingMessage>) -> Result<(), QueueError> {
        // The first of several messages with one id wins, as on every queue of the port.
        let mut seen = HashSet::new();
        let mut by_queue: BTreeMap<&str, (&QueueUrl, Vec<&OutgoingMessage>)> = BTreeMap::new();
        for message in &messages {
            if seen.insert(message.id.as_str()) {
                let url = self.destination(&message.body);
                by_queue.entry(url.as_str()).or_insert_with(|| (url, Vec::new())).1.push(message);
            }
        }
        for (url, messages) in by_queue.values() {
            let mut batch: Vec<&OutgoingMessage> = Vec::new();
            let mut bytes = 0;
            for message in messages {
                let size = message.body.len() * 4 / 3 + 256;
                if batch.len() == BATCH || (!batch.is_empty() && bytes + size > BATCH_BYTES) {
                    self.send_batch(url, &batch).await?;
                    batch.clear();
                    bytes = 0;
                }
                batch.push(message);
                bytes += size;
            }
            if !batch.is_empty() {
                self.send_batch(url, &batch).await?;
            }
            tracing::debug!(queue = %url, messages = messages.len(), "sqs publish");
        }
        Ok(())
    }

    async fn receive(&self, max: usize, visibility: Duration) -> Result<Vec<Delivery>, QueueError> {
        if max == 0 {
            return Ok(Vec::new());
        }
        let max = i32::try_from(max.min(BATCH)).unwrap_or(10);
        let visibility_secs = visibility.as_secs_f64().ceil() as u64;
        let out = self
            .client
            .receive_message()
            .queue_url(self.queue.as_str())
            .max_number_of_messages(max)
            .visibility_timeout(
                i32::try_from(visibility_secs.min(MAX_VISIBILITY_SECS)).unwrap_or(0),
            )
            .wait_time_seconds(self.wait_secs)
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .message_system_attribute_names(MessageSystemAttributeName::SentTimestamp)
            .message_system_attribute_names(MessageSystemAttributeName::MessageGroupId)
            .message_attribute_names("All")
            .send()
            .await
            .map_err(|e| unavailable("receive from", &self.queue, &client::render(&e)))?;
        let hidden_until = tokio::time::Instant::now()
            + Duration::from_secs(visibility_secs.min(MAX_VISIBILITY_SECS));
        let mut deliveries = Vec::new();
        for message in out.messages() {
            let Some((delivery, mut held)) = self.delivery(message) else {
                tracing::warn!(sqs_id = ?message.message_id(), "sqs returned a message without a receipt handle");
                continue;
            };
            held.visible_at = hidden_until;
            self.ledger.hold(delivery.receipt.clone(), held);
            deliveries.push(delivery);
        }
        tracing::debug!(queue = %self.queue, got = deliveries.len(), "sqs receive");
        Ok(deliveries)
    }

    async fn ack(&self, receipts: &[Receipt]) -> Result<(), QueueError> {
        let mut stale: Option<Receipt> = None;
        let mut to_delete: Vec<&Receipt> = Vec::new();
        for receipt in receipts {
            if self.ledger.settlement(receipt).is_some() {
                stale.get_or_insert_with(|| receipt.clone());
            } else if self.ledger.get(receipt).is_some_and(|h| h.origin == Origin::Lambda) {
                self.ledger.settle(receipt, Settlement::Acked);
            } else {
                to_delete.push(receipt);
            }
        }
        let mut unavailable_error = None;
        for chunk in to_delete.chunks(BATCH) {
            let entries = chunk
                .iter()
                .enumerate()
                .map(|(i, r)| {
                    DeleteMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .receipt_handle(&r.0)
                        .build()
                        .map_err(|e| {
                            QueueError::Unavailable(format!("cannot build an sqs delete: {e}"))
                        })
                })
                .collect::<Result<Vec<_>, _>>()?;
            let out = match self
                .client
                .delete_message_batch()
                .queue_url(self.queue.as_str())
                .set_entries(Some(entries))
                .send()
                .await
            {
                Ok(out) => out,
                Err(e) => {
                    unavailable_error =
                        Some(unavailable("delete from", &self.queue, &client::render(&e)));
                    continue;
                }
            };
            for ok in out.successful() {
                if let Some(receipt) = ok.id().parse::<usize>().ok().and_then(|i| chunk.get(i)) {
                    self.ledger.settle(receipt, Settlement::Acked);
                }
            }
            for failed in out.failed() {
                let Some(receipt) = failed.id().parse::<usize>().ok().and_then(|i| chunk.get(i))
                else {
                    continue;
                };
                if client::stale_code(failed.code(), failed.message().unwrap_or_default()) {
                    stale.get_or_insert_with(|| (*receipt).clone());
                } else {
                    unavailable_error = Some(unavailable(
                        "delete from",
                        &self.queue,
                        &format!("{} {}", failed.code(), failed.message().unwrap_or_default()),
                    ));
                }
            }
        }
        if let Some(error) = unavailable_error {
            return Err(error);
        }
        stale.map_or(Ok(()), |receipt| Err(QueueError::StaleReceipt(receipt)))
    }

    async fn retry_later(&self, receipt: &Receipt, delay: Duration) -> Result<(), QueueError> {
        self.refuse_settled(receipt)?;
        self.change_visibility(receipt, delay.as_secs_f64().ceil() as u64).await?;
        self.ledger.settle(receipt, Settlement::RetryLater);
        Ok(())
    }

    async fn extend(&self, receipt: &Receipt, visibility: Duration) -> Result<(), QueueError> {
        self.refuse_settled(receipt)?;
        let secs = visibility.as_secs_f64().ceil() as u64;
        self.change_visibility(receipt, secs).await?;
        self.ledger.extend(receipt, tokio::time::Instant::now() + Duration::from_secs(secs));
        Ok(())
    }

    async fn dead_letter(&self, receipt: &Receipt, reason: &str) -> Result<(), QueueError> {
        self.refuse_settled(receipt)?;
        let Some(held) = self.ledger.get(receipt) else {
            // Without the original bytes a dead letter would lose the message; refusing leaves it on
            // the queue, where its redrive policy still ends a loop.
            tracing::warn!(receipt = %receipt.0, "dead_letter for a receipt this process did not receive");
            return Err(QueueError::StaleReceipt(receipt.clone()));
        };
        // Checks that the receipt is current and keeps the message hidden while its copy is written.
        self.change_visibility(receipt, DEAD_LETTER_HOLD_SECS.unsigned_abs().into()).await?;
        let wire = body::encode(&held.body);
        let mut reason = reason.to_owned();
        if reason.len() > MAX_REASON_BYTES {
            let mut cut = MAX_REASON_BYTES;
            while !reason.is_char_boundary(cut) {
                cut -= 1;
            }
            reason.truncate(cut);
        }
        let mut send = self
            .client
            .send_message()
            .queue_url(self.dead.as_str())
            .message_body(wire.text)
            .message_attributes(ATTR_ID, string_attr(held.id.as_str())?)
            .message_attributes(ATTR_REASON, string_attr(&reason)?)
            .message_attributes(ATTR_DELIVERIES, number_attr(held.delivery_count.into())?)
            .message_attributes(ATTR_DEAD_AT, number_attr(self.clock.now().0)?);
        if wire.base64 {
            send = send.message_attributes(ATTR_ENCODING, string_attr(BASE64)?);
        }
        if self.dead.is_fifo() {
            let group =
                held.group.clone().unwrap_or_else(|| body::group_id(&held.body, held.id.as_str()));
            send = send
                .message_group_id(group)
                .message_deduplication_id(body::sqs_id(held.id.as_str()));
        }
        send.send()
            .await
            .map_err(|e| unavailable("dead-letter to", &self.dead, &client::render(&e)))?;
        if held.origin == Origin::Received {
            if let Err(e) = self
                .client
                .delete_message()
                .queue_url(self.queue.as_str())
                .receipt_handle(&receipt.0)
                .send()
                .await
            {
                // The copy is written; the message comes back and is dead-lettered again, and the
                // dead-letter queue drops the second copy when it is FIFO.
                return Err(unavailable(
                    "delete a dead letter from",
                    &self.queue,
                    &client::render(&e),
                ));
            }
        }
        self.ledger.settle(receipt, Settlement::DeadLettered);
        tracing::debug!(queue = %self.dead, id = %held.id, "sqs dead letter written");
        Ok(())
    }

    async fn dead_letters(&self, limit: usize) -> Result<Vec<DeadLetter>, QueueError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        // SQS cannot list a queue: receive up to `limit` messages, then make them visible again at once.
        let mut seen: HashMap<String, (String, DeadLetter)> = HashMap::new();
        while seen.len() < limit {
            let out = self
                .client
                .receive_message()
                .queue_url(self.dead.as_str())
                .max_number_of_messages(
                    i32::try_from((limit - seen.len()).min(BATCH)).unwrap_or(10),
                )
                .visibility_timeout(DEAD_LETTER_HOLD_SECS)
                .wait_time_seconds(0)
                .message_system_attribute_names(MessageSystemAttributeName::SentTimestamp)
                .message_attribute_names("All")
                .send()
                .await
                .map_err(|e| {
                    unavailable("read dead letters from", &self.dead, &client::render(&e))
                })?;
            if out.messages().is_empty() {
                break;
            }
            for message in out.messages() {
                let (Some(sqs_id), Some(handle)) = (message.message_id(), message.receipt_handle())
                else {
                    continue;
                };
                seen.insert(sqs_id.to_owned(), (handle.to_owned(), self.dead_letter_of(message)));
            }
        }
        let handles: Vec<&str> = seen.values().map(|(h, _)| h.as_str()).collect();
        for chunk in handles.chunks(BATCH) {
            let entries = chunk
                .iter()
                .enumerate()
                .map(|(i, h)| {
                    ChangeMessageVisibilityBatchRequestEntry::builder()
                        .id(i.to_string())
                        .receipt_handle(*h)
                        .visibility_timeout(0)
                        .build()
                        .map_err(|e| {
                            QueueError::Unavailable(format!(
                                "cannot build an sqs visibility change: {e}"
                            ))
                        })
                })
                .collect::<Result<Vec<_>, _>>()?;
            if let Err(e) = self
                .client
                .change_message_visibility_batch()
                .queue_url(self.dead.as_str())
                .set_entries(Some(entries))
                .send()
                .await
            {
                tracing::warn!(error = %client::render(&e), "dead letters stay hidden for 30 s after a listing");
            }
        }
        let mut dead: Vec<DeadLetter> = seen.into_values().map(|(_, d)| d).collect();
        dead.sort_by(|a, b| a.dead_at.cmp(&b.dead_at).then_with(|| a.id.cmp(&b.id)));
        dead.truncate(limit);
        Ok(dead)
    }

    async fn depth(&self) -> Result<QueueDepth, QueueError> {
        let [ready, in_flight, delayed] = self.counts(&self.queue).await?;
        let [dead_ready, dead_hidden, dead_delayed] = self.counts(&self.dead).await?;
        Ok(QueueDepth {
            ready,
            pending: in_flight + delayed,
            dead: dead_ready + dead_hidden + dead_delayed,
        })
    }
}

fn send_entry(
    index: usize,
    message: &OutgoingMessage,
    fifo: bool,
) -> Result<SendMessageBatchRequestEntry, QueueError> {
    let wire = body::encode(&message.body);
    let mut entry = SendMessageBatchRequestEntry::builder()
        .id(index.to_string())
        .message_body(wire.text)
        .message_attributes(ATTR_ID, string_attr(message.id.as_str())?);
    if wire.base64 {
        entry = entry.message_attributes(ATTR_ENCODING, string_attr(BASE64)?);
    }
    if fifo {
        if !message.delay.is_zero() {
            // FIFO queues have no per-message delay; the engine delays retries with visibility instead.
            tracing::warn!(id = %message.id, delay_ms = message.delay.as_millis() as u64, "a FIFO queue cannot delay one message; sending it now");
        }
        entry = entry
            .message_group_id(body::group_id(&message.body, message.id.as_str()))
            .message_deduplication_id(body::sqs_id(message.id.as_str()));
    } else if !message.delay.is_zero() {
        let secs = (message.delay.as_secs_f64().ceil() as u64).min(MAX_DELAY_SECS);
        entry = entry.delay_seconds(i32::try_from(secs).unwrap_or(0));
    }
    entry.build().map_err(|e| QueueError::Unavailable(format!("cannot build an sqs message: {e}")))
}

fn string_attr(value: &str) -> Result<MessageAttributeValue, QueueError> {
    MessageAttributeValue::builder()
        .data_type("String")
        .string_value(value)
        .build()
        .map_err(|e| QueueError::Unavailable(format!("cannot build an sqs attribute: {e}")))
}

fn number_attr(value: i64) -> Result<MessageAttributeValue, QueueError> {
    MessageAttributeValue::builder()
        .data_type("Number")
        .string_value(value.to_string())
        .build()
        .map_err(|e| QueueError::Unavailable(format!("cannot build an sqs attribute: {e}")))
}

fn unavailable(what: &str, url: &QueueUrl, cause: &str) -> QueueError {
    QueueError::Unavailable(format!("cannot {what} sqs queue {url}: {cause}"))
}

/// The dead-letter queue's ARN and `maxReceiveCount` from a redrive policy, whose count SQS writes as a
/// number or a string depending on who set it.
pub(crate) fn parse_redrive_policy(policy: &str) -> Result<(String, u32), String> {
    let value: serde_json::Value =
        serde_json::from_str(policy).map_err(|e| format!("not JSON: {e}"))?;
    let arn = value
        .get("deadLetterTargetArn")
        .and_then(|v| v.as_str())
        .ok_or("no deadLetterTargetArn")?
        .to_owned();
    let count = match value.get("maxReceiveCount") {
        Some(serde_json::Value::Number(n)) => n.as_u64(),
        Some(serde_json::Value::String(s)) => s.parse().ok(),
        _ => None,
    }
    .and_then(|n| u32::try_from(n).ok())
    .filter(|n| *n > 0)
    .ok_or("no positive maxReceiveCount")?;
    Ok((arn, count))
}

/// Finds the URL of the queue an ARN (`arn:aws:sqs:REGION:ACCOUNT:NAME`) names.
async fn dead_letter_url(
    client: &aws_sdk_sqs::Client,
    queue: &QueueUrl,
    arn: &str,
) -> Result<QueueUrl, ConnectError> {
    let parts: Vec<&str> = arn.split(':').collect();
    let (Some(account), Some(name)) = (parts.get(4), parts.get(5)) else {
        return Err(ConnectError::BadRedrivePolicy {
            queue: queue.to_string(),
            why: format!("deadLetterTargetArn {arn:?} is not arn:aws:sqs:REGION:ACCOUNT:NAME"),
            policy: arn.to_owned(),
        });
    };
    let out = client
        .get_queue_url()
        .queue_name(*name)
        .queue_owner_aws_account_id(*account)
        .send()
        .await
        .map_err(|e| ConnectError::Unreachable {
            queue: format!("{name} (the dead-letter queue of {queue})"),
            cause: client::render(&e),
        })?;
    let url = out.queue_url().unwrap_or_default();
    QueueUrl::parse(url).map_err(|e| ConnectError::Unreachable {
        queue: format!("{name} (the dead-letter queue of {queue})"),
        cause: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::parse_redrive_policy;

    #[test]
    fn reads_redrive_policies() {
        let arn = "arn:aws:sqs:us-east-1:123456789012:d";
        let numeric = format!(r#"{{"deadLetterTargetArn":"{arn}","maxReceiveCount":5}}"#);
        assert_eq!(parse_redrive_policy(&numeric).unwrap(), (arn.to_owned(), 5));
        let text = format!(r#"{{"deadLetterTargetArn":"{arn}","maxReceiveCount":"3"}}"#);
        assert_eq!(parse_redrive_policy(&text).unwrap(), (arn.to_owned(), 3));
        assert!(parse_redrive_policy(r#"{"maxReceiveCount":3}"#).is_err());
        assert!(parse_redrive_policy(&format!(r#"{{"deadLetterTargetArn":"{arn}"}}"#)).is_err());
        assert!(parse_redrive_policy("nope").is_err());
    }
}
