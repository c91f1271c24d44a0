//! The Cloud Run entry point: Pub/Sub push requests in, the engine's handler run on each, and an HTTP
//! status out that tells Pub/Sub whether the message is settled.
//!
//! One push request is one delivery. The handler runs through a [`PushQueue`], a `Queue` that knows only
//! that delivery: `ack` and `dead_letter` (after publishing the dead letter) settle it, `retry_later` asks
//! for a redelivery. The answer follows the verdict:
//!
//! | verdict | status | Pub/Sub then |
//! |---|---|---|
//! | acked (state committed, next messages published) | 200 | forgets the message |
//! | dead-lettered (published to `{prefix}dead` with its reason) | 200 | forgets the message |
//! | retry later | 503 | redelivers after the subscription's retry backoff |
//! | nothing (the store or queue was unavailable) | 500 | redelivers |
//! | token refused | 401 (503 if Google's keys are unreachable) | redelivers, until the dead-letter policy's maximum |
//!
//! So a 2xx is only ever sent after the step's state is durably written, and a message that can never
//! succeed ends in the dead-letter topic with its reason instead of being redelivered forever.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use cadre_domain::ports::clock::Clock;
use cadre_domain::ports::queue::{
    DeadLetter, Delivery, OutgoingMessage, Queue, QueueDepth, QueueError, Receipt,
};
use cadre_domain::{MessageId, StepKind, Timestamp};
use serde::Deserialize;
use serde_json::json;
use tracing::Instrument;

use super::{PubSubQueue, ATTR_MESSAGE_ID, ATTR_NOT_BEFORE};
use crate::oidc::OidcVerifier;

/// How a delivery was settled through its [`PushQueue`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Done: never deliver it again.
    Ack,
    /// Deliver it again, after about this long.
    RetryLater(Duration),
    /// Published to the dead-letter topic with this reason.
    DeadLettered {
        /// Why.
        reason: String,
    },
}

/// The `Queue` one push request is handled through. Publishing and dead-letter reads go to Pub/Sub;
/// settling records a [`Verdict`] for the HTTP answer. Only the delivery's own receipt is current, and
/// only until it is settled.
pub struct PushQueue {
    queue: PubSubQueue,
    receipt: Receipt,
    id: MessageId,
    body: Vec<u8>,
    delivery_count: u32,
    subscription: String,
    verdict: Mutex<Option<Verdict>>,
}

impl std::fmt::Debug for PushQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PushQueue")
            .field("receipt", &self.receipt)
            .field("verdict", &self.verdict())
            .finish_non_exhaustive()
    }
}

impl PushQueue {
    /// The queue for `delivery`, pushed by `subscription`.
    #[must_use]
    pub fn new(queue: PubSubQueue, delivery: &Delivery, subscription: &str) -> PushQueue {
        PushQueue {
            queue,
            receipt: delivery.receipt.clone(),
            id: delivery.id.clone(),
            body: delivery.body.clone(),
            delivery_count: delivery.delivery_count,
            subscription: subscription.to_owned(),
            verdict: Mutex::new(None),
        }
    }

    /// How the delivery was settled, if it was.
    #[must_use]
    pub fn verdict(&self) -> Option<Verdict> {
        self.verdict.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Whether `receipt` is the delivery's and it is not settled yet.
    fn current(&self, receipt: &Receipt) -> Result<(), QueueError> {
        if *receipt == self.receipt && self.verdict().is_none() {
            Ok(())
        } else {
            Err(QueueError::StaleReceipt(receipt.clone()))
        }
    }

    fn settle(&self, receipt: &Receipt, verdict: Verdict) -> Result<(), QueueError> {
        let mut slot = self.verdict.lock().unwrap_or_else(PoisonError::into_inner);
        if *receipt != self.receipt || slot.is_some() {
            return Err(QueueError::StaleReceipt(receipt.clone()));
        }
        *slot = Some(verdict);
        Ok(())
    }
}

#[async_trait]
impl Queue for PushQueue {
    async fn publish(&self, messages: Vec<OutgoingMessage>) -> Result<(), QueueError> {
        self.queue.publish(messages).await
    }

    async fn receive(
        &self,
        _max: usize,
        _visibility: Duration,
    ) -> Result<Vec<Delivery>, QueueError> {
        Ok(Vec::new())
    }

    async fn ack(&self, receipts: &[Receipt]) -> Result<(), QueueError> {
        let mut stale = None;
        for receipt in receipts {
            if let Err(error) = self.settle(receipt, Verdict::Ack) {
                stale.get_or_insert(error);
            }
        }
        stale.map_or(Ok(()), Err)
    }

    async fn retry_later(&self, receipt: &Receipt, delay: Duration) -> Result<(), QueueError> {
        self.settle(receipt, Verdict::RetryLater(delay))
    }

    /// Pub/Sub keeps a push request's message until the request ends (up to the subscription's ack
    /// deadline); there is nothing to extend, only the receipt to check.
    async fn extend(&self, receipt: &Receipt, _visibility: Duration) -> Result<(), QueueError> {
        self.current(receipt)
    }

    async fn dead_letter(&self, receipt: &Receipt, reason: &str) -> Result<(), QueueError> {
        self.current(receipt)?;
        self.queue
            .publish_dead_letter(
                &self.id,
                &self.body,
                reason,
                self.delivery_count,
                &self.subscription,
            )
            .await?;
        self.settle(receipt, Verdict::DeadLettered { reason: reason.to_owned() })
    }

    async fn dead_letters(&self, limit: usize) -> Result<Vec<DeadLetter>, QueueError> {
        self.queue.dead_letters(limit).await
    }

    async fn depth(&self) -> Result<QueueDepth, QueueError> {
        self.queue.depth().await
    }
}

/// Runs one delivery through the engine's handler, settling it through `queue`. The binary implements
/// it with `cadre_engine::Engine::handle` over its ports with `queue` in place of the queue port.
#[async_trait]
pub trait PushRunner: Send + Sync {
    /// Handles `delivery` to settlement (or leaves it unsettled, for a redelivery).
    async fn run(&self, queue: Arc<dyn Queue>, delivery: Delivery);
}

/// How push requests are authenticated.
pub enum PushAuth {
    /// Pub/Sub's OIDC token, verified.
    Oidc(Box<OidcVerifier>),
    /// None: only for the emulator, which sends no token.
    Unauthenticated,
}

/// Everything the push handler needs.
pub struct PushService {
    queue: PubSubQueue,
    auth: PushAuth,
    runner: Arc<dyn PushRunner>,
    step: Option<StepKind>,
    clock: Arc<dyn Clock>,
}

impl PushService {
    /// A handler that publishes and dead-letters through `queue`, authenticates with `auth`, and runs
    /// deliveries with `runner`. With `step`, a message for another step is dead-lettered as misrouted.
    #[must_use]
    pub fn new(
        queue: PubSubQueue,
        auth: PushAuth,
        runner: Arc<dyn PushRunner>,
        step: Option<StepKind>,
        clock: Arc<dyn Clock>,
    ) -> PushService {
        PushService { queue, auth, runner, step, clock }
    }
}

/// The push request body Pub/Sub sends.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PushRequest {
    message: PushMessage,
    subscription: String,
    delivery_attempt: Option<u32>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PushMessage {
    #[serde(default)]
    data: String,
    #[serde(default)]
    attributes: BTreeMap<String, String>,
    message_id: String,
    publish_time: Option<String>,
}

/// The envelope's flat step field, read to catch misrouted messages.
#[derive(Deserialize)]
struct StepOnly {
    step: StepKind,
}

/// The routes: `POST /` and `POST /push` take pushes, `GET /healthz` answers when the server is up.
pub fn push_router(service: Arc<PushService>) -> Router {
    Router::new()
        .route("/", post(on_push))
        .route("/push", post(on_push))
        .route("/healthz", get(|| async { "ok" }))
        .with_state(service)
}

/// Serves `router` on `listener` until `shutdown` completes, then lets requests in flight finish (Cloud
/// Run sends SIGTERM and waits its grace period; a request cut off after that is redelivered).
///
/// # Errors
/// The listener's I/O errors.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router).with_graceful_shutdown(shutdown).await
}

fn answer(status: StatusCode, body: serde_json::Value) -> Response {
    (status, Json(body)).into_response()
}

async fn on_push(
    State(service): State<Arc<PushService>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let PushAuth::Oidc(verifier) = &service.auth {
        let authorization = headers.get("authorization").and_then(|v| v.to_str().ok());
        if let Err(error) = verifier.verify(authorization).await {
            tracing::warn!(%error, "refused a push request");
            let status = if error.is_retryable() {
                StatusCode::SERVICE_UNAVAILABLE
            } else {
                StatusCode::UNAUTHORIZED
            };
            return answer(
                status,
                json!({ "verdict": "unauthenticated", "reason": error.to_string() }),
            );
        }
    }
    let request: PushRequest = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(error) => {
            // Pub/Sub sends only push envelopes: there is no message here to dead-letter.
            tracing::warn!(%error, "a push request that is not a Pub/Sub push envelope");
            return answer(
                StatusCode::BAD_REQUEST,
                json!({ "verdict": "rejected", "reason": format!("not a Pub/Sub push request: {error}") }),
            );
        }
    };
    let message = request.message;
    let delivery_count = request.delivery_attempt.unwrap_or(1).max(1);
    let (body, undecodable) = match STANDARD.decode(&message.data) {
        Ok(bytes) => (bytes, None),
        Err(error) => (message.data.clone().into_bytes(), Some(error)),
    };
    let delivery = Delivery {
        receipt: Receipt(format!(
            "{}/{}/{delivery_count}",
            request.subscription, message.message_id
        )),
        id: MessageId::new(
            message
                .attributes
                .get(ATTR_MESSAGE_ID)
                .map_or(message.message_id.as_str(), String::as_str),
        ),
        body,
        delivery_count,
        published_at: message
            .publish_time
            .as_deref()
            .and_then(crate::time::parse_rfc3339_millis)
            .map_or_else(|| service.clock.now(), Timestamp),
    };
    let span = tracing::info_span!("push", msg_id = %delivery.id, pubsub_id = %message.message_id, attempt = delivery_count);
    let queue = Arc::new(PushQueue::new(service.queue.clone(), &delivery, &request.subscription));
    let not_before = message.attributes.get(ATTR_NOT_BEFORE).and_then(|v| v.parse().ok());
    handle(&service, queue, delivery, undecodable, not_before).instrument(span).await
}

async fn handle(
    service: &PushService,
    queue: Arc<PushQueue>,
    delivery: Delivery,
    undecodable: Option<base64::DecodeError>,
    not_before: Option<i64>,
) -> Response {
    if let Some(error) = undecodable {
        let reason = format!(
            "the push message's data is not base64 ({error}); kept as received and never retried"
        );
        return settle_by_hand(&queue, &delivery, &reason).await;
    }
    if let Some(not_before) = not_before {
        let now = service.clock.now();
        if now < Timestamp(not_before) {
            let wait = Timestamp(not_before).millis_since(now);
            tracing::debug!(
                wait_ms = wait,
                "delayed message arrived early; asking for a redelivery"
            );
            return answer(
                StatusCode::SERVICE_UNAVAILABLE,
                json!({ "verdict": "deferred", "delay_ms": wait }),
            );
        }
    }
    if let (Some(expected), Ok(StepOnly { step })) =
        (service.step, serde_json::from_slice::<StepOnly>(&delivery.body))
    {
        if step != expected {
            let reason = format!(
                "misrouted: a message for step `{step}` reached the `{expected}` service; check the \
                 push subscriptions (terraform/modules/cadre-team)"
            );
            return settle_by_hand(&queue, &delivery, &reason).await;
        }
    }
    service.runner.run(queue.clone(), delivery).await;
    let verdict = queue.verdict();
    match &verdict {
        Some(Verdict::Ack) => tracing::debug!("push settled: ack"),
        Some(other) => tracing::info!(verdict = ?other, "push settled"),
        None => tracing::warn!("push left unsettled; Pub/Sub will redeliver"),
    }
    verdict_answer(verdict)
}

/// Dead-letters a delivery the engine is never shown.
async fn settle_by_hand(queue: &PushQueue, delivery: &Delivery, reason: &str) -> Response {
    tracing::error!(%reason, "dead-lettering a pushed message");
    match queue.dead_letter(&delivery.receipt, reason).await {
        Ok(()) => verdict_answer(queue.verdict()),
        Err(error) => {
            tracing::warn!(%error, "could not dead-letter; Pub/Sub will redeliver");
            verdict_answer(None)
        }
    }
}

fn verdict_answer(verdict: Option<Verdict>) -> Response {
    match verdict {
        Some(Verdict::Ack) => answer(StatusCode::OK, json!({ "verdict": "ack" })),
        Some(Verdict::DeadLettered { reason }) => {
            answer(StatusCode::OK, json!({ "verdict": "dead_lettered", "reason": reason }))
        }
        Some(Verdict::RetryLater(delay)) => answer(
            StatusCode::SERVICE_UNAVAILABLE,
            json!({ "verdict": "retry_later", "delay_ms": u64::try_from(delay.as_millis()).unwrap_or(u64::MAX) }),
        ),
        None => answer(
            StatusCode::INTERNAL_SERVER_ERROR,
            json!({ "verdict": "unsettled", "reason": "the store or queue was unavailable; Pub/Sub will redeliver" }),
        ),
    }
}
