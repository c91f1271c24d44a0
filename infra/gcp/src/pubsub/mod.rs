//! Pub/Sub through its REST API: [`PubSubQueue`] publishes step messages and reads the dead letters;
//! [`push::PushQueue`] settles one pushed delivery.
//!
//! Topology (what `terraform/modules/cadre-team` creates): one topic per step, `{prefix}{step}`, each
//! with a push subscription to that step's Cloud Run service (message ordering on, a retry policy, a
//! dead-letter policy with a maximum delivery count), and one dead-letter topic for the team,
//! `{prefix}dead`, with a pull subscription `{prefix}dead-inspect` that `dead_letters` peeks into.
//!
//! A message is routed by the envelope's flat `step` field (kept flat for routers, so the payload is not
//! parsed here) and published with the task id as its ordering key, so one task's steps are delivered in
//! order. Pub/Sub has no delayed delivery and no de-duplication by id: a delay travels as a
//! `cadre_not_before` attribute that the push handler honours by asking for redelivery, and a duplicate
//! publish is delivered twice and made harmless by the store's idempotency keys.

pub(crate) mod push;

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use cadre_domain::ports::clock::Clock;
use cadre_domain::ports::queue::{
    DeadLetter, Delivery, OutgoingMessage, Queue, QueueDepth, QueueError, Receipt,
};
use cadre_domain::{MessageId, Timestamp};
use reqwest::Method;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::auth::GoogleAuth;
use crate::rest::{Api, ApiError};

/// Where the real API answers.
const PUBSUB_URL: &str = "https://pubsub.googleapis.com";

/// The attribute carrying Cadre's message id (Pub/Sub assigns its own `messageId`).
pub const ATTR_MESSAGE_ID: &str = "cadre_message_id";
/// The attribute carrying the earliest delivery time, in Unix milliseconds, of a delayed message.
pub const ATTR_NOT_BEFORE: &str = "cadre_not_before";
/// The attribute carrying a dead letter's reason.
pub const ATTR_REASON: &str = "cadre_reason";
const ATTR_DELIVERY_COUNT: &str = "cadre_delivery_count";
const ATTR_DEAD_AT: &str = "cadre_dead_at";
const ATTR_SOURCE: &str = "cadre_subscription";
/// What Pub/Sub itself adds to a message its dead-letter policy forwarded.
const PUBSUB_DEAD_COUNT: &str = "CloudPubSubDeadLetterSourceDeliveryCount";

/// Which project and topics, and how to reach them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PubSubConfig {
    /// `https://pubsub.googleapis.com`, or `http://HOST:PORT` of an emulator.
    pub base_url: String,
    /// The Google Cloud project.
    pub project: String,
    /// Topic names start with this: `{prefix}{step}`, `{prefix}dead` (e.g. `cadre-payments-`).
    pub topic_prefix: String,
    /// Credentials.
    pub auth: GoogleAuth,
}

impl PubSubConfig {
    /// The real Pub/Sub, authenticated through the metadata server.
    #[must_use]
    pub fn cloud(project: &str, topic_prefix: &str) -> PubSubConfig {
        PubSubConfig {
            base_url: PUBSUB_URL.to_owned(),
            project: project.to_owned(),
            topic_prefix: topic_prefix.to_owned(),
            auth: GoogleAuth::metadata_server(None),
        }
    }

    /// The emulator at `host` (`HOST:PORT`, as in `PUBSUB_EMULATOR_HOST`).
    #[must_use]
    pub fn emulator(host: &str, project: &str, topic_prefix: &str) -> PubSubConfig {
        PubSubConfig {
            base_url: format!("http://{}", host.trim_start_matches("http://")),
            project: project.to_owned(),
            topic_prefix: topic_prefix.to_owned(),
            auth: GoogleAuth::Emulator,
        }
    }
}

/// Publishes to the team's step topics and reads its dead letters. Pub/Sub pushes deliveries to the
/// HTTP handler, so this queue itself receives nothing and holds no receipt.
#[derive(Clone)]
pub struct PubSubQueue {
    api: Api,
    config: PubSubConfig,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for PubSubQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PubSubQueue").field("config", &self.config).finish_non_exhaustive()
    }
}

/// The fields of an envelope the router reads.
#[derive(Deserialize)]
struct Route {
    step: Option<String>,
    task_id: Option<String>,
}

/// A message a pull returned.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Received {
    ack_id: String,
    message: PulledMessage,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PulledMessage {
    #[serde(default)]
    data: String,
    #[serde(default)]
    attributes: BTreeMap<String, String>,
    message_id: String,
    publish_time: Option<String>,
}

impl PubSubQueue {
    /// A queue on the topics `config` names; `clock` dates delayed messages and dead letters.
    ///
    /// # Errors
    /// [`QueueError::Unavailable`] when the HTTP client cannot be built.
    pub fn new(config: PubSubConfig, clock: Arc<dyn Clock>) -> Result<PubSubQueue, QueueError> {
        let api = Api::new(&config.base_url, &config.auth).map_err(unavailable)?;
        Ok(PubSubQueue { api, config, clock })
    }

    /// The full name of a step's topic, `projects/{p}/topics/{prefix}{step}`.
    #[must_use]
    pub fn topic(&self, step: &str) -> String {
        format!("projects/{}/topics/{}{step}", self.config.project, self.config.topic_prefix)
    }

    /// The full name of the team's dead-letter topic.
    #[must_use]
    pub fn dead_letter_topic(&self) -> String {
        self.topic("dead")
    }

    /// The full name of the pull subscription on the dead-letter topic that `dead_letters` reads.
    #[must_use]
    pub fn dead_letter_subscription(&self) -> String {
        format!(
            "projects/{}/subscriptions/{}dead-inspect",
            self.config.project, self.config.topic_prefix
        )
    }

    /// The project.
    #[must_use]
    pub fn project(&self) -> &str {
        &self.config.project
    }

    async fn publish_to(&self, topic: &str, messages: Vec<Value>) -> Result<(), QueueError> {
        let count = messages.len();
        self.api
            .json(
                Method::POST,
                &format!("v1/{topic}:publish"),
                Some(&json!({ "messages": messages })),
            )
            .await
            .map_err(|e| match e.status() {
                Some("NOT_FOUND") => QueueError::Unavailable(format!(
                    "the Pub/Sub topic {topic} does not exist; create the team's topics with \
                     `terraform apply` (terraform/gcp)"
                )),
                _ => unavailable(e),
            })?;
        tracing::debug!(topic, count, "published to pub/sub");
        Ok(())
    }

    /// Publishes `body` to the dead-letter topic with the reason and where it came from.
    pub(crate) async fn publish_dead_letter(
        &self,
        id: &MessageId,
        body: &[u8],
        reason: &str,
        delivery_count: u32,
        source: &str,
    ) -> Result<(), QueueError> {
        let message = json!({
            "data": STANDARD.encode(body),
            "attributes": {
                ATTR_MESSAGE_ID: id.as_str(),
                ATTR_REASON: reason,
                ATTR_DELIVERY_COUNT: delivery_count.to_string(),
                ATTR_DEAD_AT: self.clock.now().0.to_string(),
                ATTR_SOURCE: source,
            },
        });
        self.publish_to(&self.dead_letter_topic(), vec![message]).await
    }

    pub(crate) fn now(&self) -> Timestamp {
        self.clock.now()
    }
}

fn unavailable(error: ApiError) -> QueueError {
    QueueError::Unavailable(error.to_string())
}

fn dead_letter_of(pulled: &PulledMessage) -> DeadLetter {
    let attr = |name: &str| pulled.attributes.get(name).map(String::as_str);
    let number = |name: &str| attr(name).and_then(|v| v.parse::<i64>().ok());
    let delivery_count = number(ATTR_DELIVERY_COUNT)
        .or_else(|| number(PUBSUB_DEAD_COUNT))
        .and_then(|n| u32::try_from(n).ok())
        .unwrap_or(0);
    let reason = attr(ATTR_REASON).map_or_else(
        || {
            format!(
                "delivered {delivery_count} times without an acknowledgement; Pub/Sub's \
                 dead-letter policy forwarded it (no handler recorded a reason)"
            )
        },
        str::to_owned,
    );
    let published =
        pulled.publish_time.as_deref().and_then(crate::time::parse_rfc3339_millis).unwrap_or(0);
    DeadLetter {
        id: MessageId::new(attr(ATTR_MESSAGE_ID).unwrap_or(&pulled.message_id)),
        // Bytes that are not base64 are kept as they came, never dropped.
        body: STANDARD.decode(&pulled.data).unwrap_or_else(|_| pulled.data.clone().into_bytes()),
        reason,
        delivery_count,
        dead_at: Timestamp(number(ATTR_DEAD_AT).unwrap_or(published)),
    }
}

#[async_trait]
impl Queue for PubSubQueue {
    async fn publish(&self, messages: Vec<OutgoingMessage>) -> Result<(), QueueError> {
        // Route every message first, so a message that cannot be routed publishes none.
        let mut by_topic: BTreeMap<String, Vec<Value>> = BTreeMap::new();
        for message in &messages {
            let route: Route = serde_json::from_slice(&message.body).map_err(|_| {
                QueueError::Corrupt(format!(
                    "message {} is not an envelope; the Pub/Sub queue routes by its `step` field",
                    message.id
                ))
            })?;
            let Some(step) = route.step.filter(|s| !s.is_empty()) else {
                return Err(QueueError::Corrupt(format!(
                    "message {} names no step; the Pub/Sub queue routes by the envelope's `step` field",
                    message.id
                )));
            };
            let mut attributes = json!({ ATTR_MESSAGE_ID: message.id.as_str() });
            if !message.delay.is_zero() {
                let delay = u64::try_from(message.delay.as_millis()).unwrap_or(u64::MAX);
                attributes[ATTR_NOT_BEFORE] = self.now().plus_millis(delay).0.to_string().into();
            }
            let mut wire =
                json!({ "data": STANDARD.encode(&message.body), "attributes": attributes });
            if let Some(task) = route.task_id {
                wire["orderingKey"] = task.into();
            }
            by_topic.entry(self.topic(&step)).or_default().push(wire);
        }
        // Pub/Sub publishes per topic: a failure after the first topic leaves earlier topics published,
        // and the caller's retry publishes them again, which the idempotency keys make harmless.
        for (topic, wire) in by_topic {
            self.publish_to(&topic, wire).await?;
        }
        Ok(())
    }

    async fn receive(
        &self,
        _max: usize,
        _visibility: std::time::Duration,
    ) -> Result<Vec<Delivery>, QueueError> {
        // Push subscriptions deliver to the HTTP handler; there is nothing to pull.
        Ok(Vec::new())
    }

    async fn ack(&self, receipts: &[Receipt]) -> Result<(), QueueError> {
        match receipts.first() {
            Some(first) => Err(QueueError::StaleReceipt(first.clone())),
            None => Ok(()),
        }
    }

    async fn retry_later(
        &self,
        receipt: &Receipt,
        _delay: std::time::Duration,
    ) -> Result<(), QueueError> {
        Err(QueueError::StaleReceipt(receipt.clone()))
    }

    async fn extend(
        &self,
        receipt: &Receipt,
        _visibility: std::time::Duration,
    ) -> Result<(), QueueError> {
        Err(QueueError::StaleReceipt(receipt.clone()))
    }

    async fn dead_letter(&self, receipt: &Receipt, _reason: &str) -> Result<(), QueueError> {
        Err(QueueError::StaleReceipt(receipt.clone()))
    }

    /// Peeks into the dead-letter subscription: pulls, then hands every message straight back
    /// (`modifyAckDeadline` 0), so reading never consumes. Pub/Sub may return fewer messages than it
    /// holds in one pull; this is a view for people, not an inventory.
    async fn dead_letters(&self, limit: usize) -> Result<Vec<DeadLetter>, QueueError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let subscription = self.dead_letter_subscription();
        let body = json!({ "maxMessages": limit.min(1000), "returnImmediately": true });
        let answer = self
            .api
            .json(Method::POST, &format!("v1/{subscription}:pull"), Some(&body))
            .await
            .map_err(unavailable)?;
        let received: Vec<Received> = answer
            .get("receivedMessages")
            .cloned()
            .map(serde_json::from_value)
            .transpose()
            .map_err(|e| QueueError::Corrupt(format!("a pull from {subscription} answered {e}")))?
            .unwrap_or_default();
        if !received.is_empty() {
            let ack_ids: Vec<&str> = received.iter().map(|r| r.ack_id.as_str()).collect();
            let release = json!({ "ackIds": ack_ids, "ackDeadlineSeconds": 0 });
            if let Err(error) = self
                .api
                .json(Method::POST, &format!("v1/{subscription}:modifyAckDeadline"), Some(&release))
                .await
            {
                // They come back by themselves when the ack deadline passes.
                tracing::debug!(%error, "could not release peeked dead letters at once");
            }
        }
        let mut dead: Vec<DeadLetter> =
            received.iter().map(|r| dead_letter_of(&r.message)).collect();
        dead.sort_by_key(|d| d.dead_at);
        dead.truncate(limit);
        Ok(dead)
    }

    async fn depth(&self) -> Result<QueueDepth, QueueError> {
        Err(QueueError::Unavailable(
            "Pub/Sub has no queue-depth call; see the subscriptions' num_undelivered_messages metric \
             in Cloud Monitoring"
                .into(),
        ))
    }
}
