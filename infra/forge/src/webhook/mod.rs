//! The webhook receiver: an axum router that checks a forge's delivery, turns a trigger into work
//! through a [`TaskStarter`], and answers:
//!
//! | answer | when |
//! |---|---|
//! | 202 | a task was started, or a review follow-up recorded |
//! | 204 | a well-formed, authentic event Cadre does not act on |
//! | 400 | a malformed delivery (missing headers, body not the event's JSON) |
//! | 401 | a missing or wrong signature / token |
//! | 409 | a replayed delivery id, or an event older than the replay window |
//!
//! Only a 202 leaves a row behind (the delivery id, for replay protection): a delivery is claimed
//! just before its task is started and released again if starting fails, so the forge's redelivery
//! can retry.
//!
//! Routes: `POST /github` (`X-Hub-Signature-256`, `X-GitHub-Event`, `X-GitHub-Delivery`) and
//! `POST /gitlab` (`X-Gitlab-Token`, `X-Gitlab-Event`, `X-Gitlab-Event-UUID`).

mod deliveries;
mod github;
mod gitlab;

use async_trait::async_trait;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use cadre_domain::ports::Clock;
use cadre_domain::Timestamp;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use tracing::{info, warn};

pub use deliveries::{DeliveryLog, DeliveryLogError, FollowUp};
pub use github::signature as github_signature;

use crate::secret::Secret;

/// Which forge sent a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForgeKind {
    /// GitHub.
    GitHub,
    /// GitLab.
    GitLab,
}

impl ForgeKind {
    /// `github` or `gitlab`.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            ForgeKind::GitHub => "github",
            ForgeKind::GitLab => "gitlab",
        }
    }
}

/// What a person asked for through the forge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trigger {
    /// An issue was given the configured label: work on it.
    Labeled {
        /// The number (GitLab `iid`).
        number: u64,
        /// Its title.
        title: String,
        /// Its description.
        body: String,
    },
    /// A `/cadre …` comment on an issue or a pull request.
    Command {
        /// The or request's number.
        number: u64,
        /// Whether it is on a pull / merge request.
        on_pull_request: bool,
        /// Who wrote it.
        author: String,
        /// What follows `/cadre` (may be empty: "work on this").
        text: String,
        /// The title.
        title: String,
        /// The description.
        body: String,
    },
    /// A review (GitLab: a note) on one of Cadre's pull requests (a `cadre/…` branch).
    Review {
        /// The request's number.
        number: u64,
        /// Its branch.
        branch: String,
        /// The reviewer.
        author: String,
        /// `approved`, `changes_requested`, `commented`.
        state: String,
        /// What they wrote.
        body: String,
    },
}

/// An authentic, fresh trigger, handed to the [`TaskStarter`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TriggerEvent {
    /// The forge.
    pub forge: ForgeKind,
    /// The delivery id.
    pub delivery: String,
    /// The repository (`owner/name`, GitLab `path_with_namespace`).
    pub repository: String,
    /// What was asked.
    pub trigger: Trigger,
}

/// What the [`TaskStarter`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Started {
    /// A task was created and queued.
    Task {
        /// Its id.
        id: String,
    },
    /// A review follow-up was recorded, not run (the engine cannot add a round to a task yet).
    FollowUpRecorded {
        /// The task the branch belongs to, when known.
        task: Option<String>,
    },
    /// Nothing to do (e.g. a repository this receiver does not serve).
    Ignored {
        /// Why.
        reason: String,
    },
}

/// Starting work failed; the delivery is released so the forge's redelivery can retry.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct StartError(pub String);

/// Turns triggers into tasks: implemented by the binary, which knows the engine (this crate does not).
#[async_trait]
pub trait TaskStarter: Send + Sync {
    /// Starts the work `event` asks for.
    ///
    /// # Errors
    /// [`StartError`] when it could not (the store or queue failed).
    async fn start(&self, event: &TriggerEvent) -> Result<Started, StartError>;
}

/// The receiver's settings.
#[derive(Debug, Clone)]
pub struct WebhookConfig {
    /// GitHub's webhook secret; `POST /github` answers 404 without one.
    pub github_secret: Option<Secret>,
    /// GitLab's secret token; `POST /gitlab` answers 404 without one.
    pub gitlab_token: Option<Secret>,
    /// The issue label that starts a task (`cadre`).
    pub label: String,
    /// How long delivery ids are remembered; events whose own timestamp is older are refused.
    pub replay_window: Duration,
}

impl WebhookConfig {
    /// Label `cadre`, a 3-day window (GitHub keeps deliveries for redelivery that long).
    #[must_use]
    pub fn new(github_secret: Option<Secret>, gitlab_token: Option<Secret>) -> Self {
        WebhookConfig {
            github_secret,
            gitlab_token,
            label: "cadre".to_owned(),
            replay_window: Duration::from_secs(3 * 24 * 3600),
        }
    }
}

/// Everything the receiver needs.
pub struct Webhooks {
    /// Settings.
    pub config: WebhookConfig,
    /// The replay log.
    pub deliveries: DeliveryLog,
    /// Where triggers go.
    pub starter: Arc<dyn TaskStarter>,
    /// Time, for the replay window.
    pub clock: Arc<dyn Clock>,
}

/// What a forge's parser made of an authentic delivery.
pub(crate) enum Parsed {
    /// Act on it; `at` is the event's own (signed) time when it has one.
    Act { repository: String, trigger: Trigger, at: Option<Timestamp> },
    /// Not for Cadre.
    Ignore(&'static str),
}

/// A delivery refused before anything was stored.
pub(crate) enum Refused {
    /// 401.
    Unauthorized(&'static str),
    /// 400.
    Malformed(String),
}

/// The router: `POST /github`, `POST /gitlab`.
pub fn router(webhooks: Webhooks) -> Router {
    Router::new()
        .route("/github", post(github_hook))
        .route("/gitlab", post(gitlab_hook))
        .with_state(Arc::new(webhooks))
}

/// Serves [`router`] on `listener` until `shutdown` completes (the binary does not know axum).
///
/// # Errors
/// The listener's I/O error.
pub async fn serve(
    listener: tokio::net::TcpListener,
    webhooks: Webhooks,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(webhooks)).with_graceful_shutdown(shutdown).await
}

async fn github_hook(
    State(hooks): State<Arc<Webhooks>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(secret) = &hooks.config.github_secret else {
        return answer(StatusCode::NOT_FOUND, "no GitHub webhook secret is configured");
    };
    let parsed = github::check(secret, &hooks.config.label, &headers, &body);
    handle(&hooks, ForgeKind::GitHub, parsed).await
}

async fn gitlab_hook(
    State(hooks): State<Arc<Webhooks>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(token) = &hooks.config.gitlab_token else {
        return answer(StatusCode::NOT_FOUND, "no GitLab webhook token is configured");
    };
    let parsed = gitlab::check(token, &hooks.config.label, &headers, &body);
    handle(&hooks, ForgeKind::GitLab, parsed).await
}

async fn handle(
    hooks: &Webhooks,
    forge: ForgeKind,
    parsed: Result<(String, Parsed), Refused>,
) -> Response {
    let (delivery, parsed) = match parsed {
        Ok(p) => p,
        Err(Refused::Unauthorized(why)) => {
            warn!(forge = forge.name(), why, "webhook refused");
            return answer(StatusCode::UNAUTHORIZED, why);
        }
        Err(Refused::Malformed(why)) => {
            warn!(forge = forge.name(), why = %why, "malformed webhook");
            return answer(StatusCode::BAD_REQUEST, &why);
        }
    };
    let (repository, trigger, at) = match parsed {
        Parsed::Ignore(why) => {
            info!(forge = forge.name(), delivery = %delivery, why, "webhook ignored");
            return StatusCode::NO_CONTENT.into_response();
        }
        Parsed::Act { repository, trigger, at } => (repository, trigger, at),
    };
    let now = hooks.clock.now();
    let window_ms = u64::try_from(hooks.config.replay_window.as_millis()).unwrap_or(u64::MAX);
    if at.is_some_and(|at| now.millis_since(at) > window_ms && now.0 > at.0) {
        warn!(forge = forge.name(), delivery = %delivery, "webhook event older than the replay window");
        return answer(StatusCode::CONFLICT, "the event is older than the replay window");
    }
    match hooks.deliveries.claim(forge, &delivery, now, window_ms).await {
        Ok(true) => {}
        Ok(false) => {
            warn!(forge = forge.name(), delivery = %delivery, "replayed webhook delivery");
            return answer(StatusCode::CONFLICT, "this delivery was already received");
        }
        Err(e) => {
            warn!(error = %e, "webhook delivery log failed");
            return answer(StatusCode::SERVICE_UNAVAILABLE, "the delivery log is unavailable");
        }
    }
    let event = TriggerEvent { forge, delivery: delivery.clone(), repository, trigger };
    let release = || async {
        if let Err(e) = hooks.deliveries.release(forge, &delivery).await {
            warn!(error = %e, delivery = %delivery, "cannot release a webhook delivery");
        }
    };
    match hooks.starter.start(&event).await {
        Ok(Started::Ignored { reason }) => {
            info!(forge = forge.name(), delivery = %delivery, reason = %reason, "webhook ignored");
            release().await;
            StatusCode::NO_CONTENT.into_response()
        }
        Ok(started) => {
            let body = match &started {
                Started::Task { id } => json!({ "status": "task started", "task": id }),
                Started::FollowUpRecorded { task } => json!({
                    "status": "follow-up recorded",
                    "task": task,
                    "note": "adding a round to a finished task is not supported yet; the request is recorded",
                }),
                Started::Ignored { .. } => json!({}),
            };
            if let Err(e) = hooks.deliveries.settle(forge, &delivery, &body.to_string()).await {
                warn!(error = %e, delivery = %delivery, "cannot record a webhook's outcome");
            }
            info!(forge = forge.name(), delivery = %delivery, outcome = %body, "webhook accepted");
            (StatusCode::ACCEPTED, Json(body)).into_response()
        }
        Err(e) => {
            warn!(forge = forge.name(), delivery = %delivery, error = %e, "webhook could not start work");
            release().await;
            answer(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the task could not be started; redeliver later",
            )
        }
    }
}

fn answer(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
}

/// A header's value as text.
pub(crate) fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name)?.to_str().ok().map(str::trim).filter(|v| !v.is_empty())
}

/// The text after `/cadre` when `comment` is a Cadre command (its first line starts with it).
pub(crate) fn command(comment: &str) -> Option<String> {
    let first = comment.trim_start();
    let rest = first.strip_prefix("/cadre")?;
    if !(rest.is_empty() || rest.starts_with(char::is_whitespace)) {
        return None;
    }
    Some(rest.trim().to_owned())
}
