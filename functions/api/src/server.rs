//! The task API's router: axum handlers over the domain ports.
//!
//! Every route but `/healthz` needs a bearer token (see [`crate::auth`]); a caller sees only its
//! team's tasks (another team's task is answered 404, like an unknown one), and a task it creates is
//! charged to its team, so the gateway's per-team daily budget applies to it when it runs.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{FromRequestParts, Path, RawQuery, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use cadre_domain::event::Event;
use cadre_domain::ports::store::TaskSummary;
use cadre_domain::ports::usage::{utc_day_start, UsageFilter, UsageGroup};
use cadre_domain::ports::workspace::WorkspaceError;
use cadre_domain::{ArtifactName, Task, TaskId, TaskSettings, TaskState};
use serde::de::DeserializeOwned;

use crate::auth::{Team, Tokens};
use crate::error::ApiError;
use crate::ports::{ApiConfig, ApiPorts};
use crate::wire::{
    usd, Accept, CreateTask, Decision, EventsPage, PlanView, ProposalView, Reason, ReportView,
    Resume, TaskList, TaskView,
};

/// What every handler shares.
struct Shared {
    ports: ApiPorts,
    tokens: Tokens,
    config: ApiConfig,
}

type AppState = Arc<Shared>;

/// The task API's routes over `ports`, callable with the tokens in `tokens`.
pub fn router(ports: ApiPorts, tokens: Tokens, config: ApiConfig) -> Router {
    let shared = Arc::new(Shared { ports, tokens, config });
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/v1/tasks", post(create).get(list))
        .route("/v1/tasks/{id}", get(show))
        .route("/v1/tasks/{id}/events", get(events))
        .route("/v1/tasks/{id}/plan", get(plan))
        .route("/v1/tasks/{id}/rounds/{round}/report", get(report))
        .route("/v1/tasks/{id}/proposal", get(proposal))
        .route("/v1/tasks/{id}/accept", post(accept))
        .route("/v1/tasks/{id}/reject", post(reject))
        .route("/v1/tasks/{id}/cancel", post(cancel))
        .route("/v1/tasks/{id}/resume", post(resume))
        .fallback(|| async {
            ApiError::not_found("no such route", "the API's routes start with /v1/tasks")
        })
        .with_state(shared)
}

/// Serves `router` on `listener` until `shutdown` completes, finishing requests in flight.
///
/// # Errors
/// When the listener fails.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router).with_graceful_shutdown(shutdown).await
}

/// The authenticated caller's team.
struct Caller(Team);

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        match state.tokens.authenticate(&parts.headers) {
            Ok(team) => Ok(Caller(team)),
            Err(error) => {
                // The path and the reason, never the header.
                tracing::info!(path = %parts.uri.path(), reason = %error.body().error, "api request refused");
                Err(error)
            }
        }
    }
}

/// Reads a JSON body: 400 when it is not JSON, 422 when it is JSON of the wrong shape.
fn body<T: DeserializeOwned>(bytes: &Bytes, what: &str) -> Result<T, ApiError> {
    let bytes: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) { b"{}" } else { bytes };
    serde_json::from_slice(bytes).map_err(|e| {
        if e.is_data() {
            ApiError::unprocessable(
                format!("the {what} body has the wrong fields ({e})"),
                "see the API's wire types in functions/api/src/wire.rs",
            )
        } else {
            ApiError::bad_request(
                format!("the {what} body is not JSON ({e})"),
                "send a JSON object",
            )
        }
    })
}

/// One query parameter as a number.
fn query_u64(query: Option<&str>, name: &str) -> Result<Option<u64>, ApiError> {
    let Some(query) = query else { return Ok(None) };
    for pair in query.split('&') {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        if key == name {
            return value.parse().map(Some).map_err(|_| {
                ApiError::bad_request(
                    format!("query parameter {name}={value} is not a whole number"),
                    format!("give {name} as digits, e.g. {name}=0"),
                )
            });
        }
    }
    Ok(None)
}

/// The caller's task with this id or unique prefix; another team's task is "not found".
async fn find(state: &Shared, team: &Team, text: &str) -> Result<TaskSummary, ApiError> {
    let store = &state.ports.store;
    let id = match TaskId::parse(text) {
        Ok(id) => id,
        Err(_) => store.resolve_prefix(text).await?,
    };
    let summary = store.task(&id).await?;
    if summary.task.settings.team.as_deref() != Some(team.0.as_str()) {
        return Err(ApiError::not_found(
            format!("no task with id {text} for team {}", team.0),
            "list your team's tasks with GET /v1/tasks",
        ));
    }
    Ok(summary)
}

async fn view(state: &Shared, summary: TaskSummary) -> TaskView {
    let cost = state.ports.ledger.task_spend_micros(&summary.task.id).await.ok();
    TaskView {
        task: summary.task,
        state: summary.state,
        updated_at: summary.updated_at,
        cost_micros: cost,
        cost_usd: cost.map(usd),
    }
}

fn budget_micros(usd: f64, field: &str) -> Result<u64, ApiError> {
    if !usd.is_finite() || usd <= 0.0 {
        return Err(ApiError::unprocessable(
            format!("{field} {usd} is not a positive amount of dollars"),
            format!("give {field} as a number above 0, e.g. 2.5"),
        ));
    }
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    Ok((usd * 1e6).round() as u64)
}

/// Whether the path names a remote repository rather than a directory.
fn is_remote(repository: &str) -> bool {
    repository.contains("://") || repository.starts_with("git@")
}

async fn create(
    State(state): State<AppState>,
    Caller(team): Caller,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    let request: CreateTask = body(&bytes, "create-task")?;
    let goal = request.goal.trim();
    if goal.is_empty() {
        return Err(ApiError::unprocessable("the goal is empty", "say what you want done in goal"));
    }
    let repository = request.repository.trim();
    if is_remote(repository) {
        return Err(ApiError::unprocessable(
            format!("repository {repository} is a git URL, and cloning is not supported yet"),
            "give the path of a checkout the deployment can read",
        ));
    }
    let path = std::path::Path::new(repository);
    if !path.is_absolute() {
        return Err(ApiError::unprocessable(
            format!("repository {repository} is not an absolute path"),
            "give the absolute path of a checkout the deployment can read",
        ));
    }
    let settings = &request.settings;
    let budget = match settings.budget_usd {
        Some(usd) => Some(budget_micros(usd, "budget_usd")?),
        None => state.config.default_budget_micros,
    };
    let rounds = settings.rounds.unwrap_or(state.config.default_rounds);
    if rounds == 0 || rounds > state.config.max_rounds {
        return Err(ApiError::unprocessable(
            format!("rounds {rounds} is out of range"),
            format!("give rounds from 1 to {}", state.config.max_rounds),
        ));
    }
    let repo = state.ports.workspace.inspect(path).await.map_err(|e| match e {
        WorkspaceError::Git(_) => {
            ApiError::unavailable(e.to_string(), "try again; check git on the deployment")
        }
        other => ApiError::unprocessable(
            other.to_string(),
            "give the path of a git checkout with a commit that the deployment can read",
        ),
    })?;
    let now = state.ports.clock.now();
    if let Some(limit) = state.config.team_daily_budget_micros {
        let filter = UsageFilter {
            team: Some(team.0.clone()),
            since: Some(utc_day_start(now)),
            ..UsageFilter::default()
        };
        let spent: u64 = state
            .ports
            .ledger
            .totals(&filter, UsageGroup::Team)
            .await?
            .iter()
            .map(|t| t.cost_micros)
            .sum();
        if spent >= limit {
            return Err(ApiError::conflict(
                format!(
                    "team {} has spent ${:.4} of its ${:.4} daily budget",
                    team.0,
                    usd(spent),
                    usd(limit)
                ),
                "wait for the next UTC day, or ask for a higher team budget",
            ));
        }
    }
    let task = Task {
        id: TaskId::generate(),
        repo: repo.root.display().to_string(),
        goal: goal.to_owned(),
        base_commit: repo.head,
        settings: TaskSettings {
            max_rounds: rounds,
            test_command: settings.test_command.clone(),
            harness: settings.harness.unwrap_or_default(),
            scan: settings.scan.unwrap_or_default(),
            budget_micros: budget,
            team: Some(team.0.clone()),
            ..TaskSettings::default()
        },
        created_at: now,
    };
    task.settings.validate().map_err(|why| {
        ApiError::unprocessable(format!("the task cannot start: {why}"), "change its settings")
    })?;
    let store = state.ports.store.as_ref();
    store.create_task(&task).await?;
    // A new task is queued: resuming it publishes its first step, exactly as the engine's submit.
    cadre_engine::resume(store, state.ports.queue.as_ref(), &task.id).await?;
    tracing::info!(task = %task.id, team = %team.0, "task created through the api");
    let summary = store.task(&task.id).await?;
    Ok((StatusCode::CREATED, Json(view(&state, summary).await)).into_response())
}

async fn list(
    State(state): State<AppState>,
    Caller(team): Caller,
    RawQuery(query): RawQuery,
) -> Result<Json<TaskList>, ApiError> {
    let limit = query_u64(query.as_deref(), "limit")?.unwrap_or(50).clamp(1, 500);
    let limit = usize::try_from(limit).unwrap_or(500);
    // Other teams' tasks are filtered out, so read more than asked; the store lists newest first.
    let all = state.ports.store.list_tasks(limit.saturating_mul(4).max(200)).await?;
    let mut tasks = Vec::new();
    for summary in all.into_iter().filter(|s| s.task.settings.team.as_deref() == Some(&*team.0)) {
        if tasks.len() == limit {
            break;
        }
        tasks.push(view(&state, summary).await);
    }
    Ok(Json(TaskList { tasks }))
}

async fn show(
    State(state): State<AppState>,
    Caller(team): Caller,
    Path(id): Path<String>,
) -> Result<Json<TaskView>, ApiError> {
    let summary = find(&state, &team, &id).await?;
    Ok(Json(view(&state, summary).await))
}

/// Whether a task needs nothing more from the pipeline: a follower can stop waiting.
fn settled(state: TaskState) -> bool {
    state.is_terminal()
        || matches!(state, TaskState::AwaitingReview { .. } | TaskState::BudgetExhausted { .. })
}

async fn events(
    State(state): State<AppState>,
    Caller(team): Caller,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Json<EventsPage>, ApiError> {
    let after = query_u64(query.as_deref(), "after")?.unwrap_or(0);
    let wait = Duration::from_secs(query_u64(query.as_deref(), "wait")?.unwrap_or(0))
        .min(state.config.max_wait);
    let summary = find(&state, &team, &id).await?;
    let task = summary.task.id;
    let store = state.ports.store.as_ref();
    let deadline = tokio::time::Instant::now() + wait;
    let (events, now) = loop {
        let events = store.events_after(&task, after).await?;
        let now = store.task(&task).await?.state;
        if !events.is_empty() || settled(now) || tokio::time::Instant::now() >= deadline {
            break (events, now);
        }
        tokio::time::sleep_until(deadline.min(tokio::time::Instant::now() + state.config.poll))
            .await;
    };
    let next_after = events.last().map_or(after, |r| r.seq);
    let cost_micros = state.ports.ledger.task_spend_micros(&task).await.ok();
    Ok(Json(EventsPage { events, state: now, cost_micros, next_after }))
}

async fn artifact<T: DeserializeOwned>(
    state: &Shared,
    task: &TaskId,
    name: &ArtifactName,
) -> Result<Option<T>, ApiError> {
    let Some(bytes) = state.ports.store.artifact(task, name).await? else { return Ok(None) };
    serde_json::from_slice(&bytes).map(Some).map_err(|e| {
        ApiError::unavailable(
            format!("the stored {name} of task {} is corrupt: {e}", task.short()),
            "the task's data needs repair; start a new task",
        )
    })
}

async fn plan(
    State(state): State<AppState>,
    Caller(team): Caller,
    Path(id): Path<String>,
) -> Result<Json<PlanView>, ApiError> {
    let summary = find(&state, &team, &id).await?;
    let plan = artifact(&state, &summary.task.id, &ArtifactName::plan()).await?;
    Ok(Json(PlanView { plan }))
}

async fn report(
    State(state): State<AppState>,
    Caller(team): Caller,
    Path((id, round)): Path<(String, String)>,
) -> Result<Json<ReportView>, ApiError> {
    let round: u32 = round.parse().map_err(|_| {
        ApiError::bad_request(format!("round {round} is not a number"), "give the round as digits")
    })?;
    let summary = find(&state, &team, &id).await?;
    let report = artifact(&state, &summary.task.id, &ArtifactName::report(round)).await?;
    Ok(Json(ReportView { round, report }))
}

fn not_awaiting(summary: &TaskSummary, what: &str) -> ApiError {
    ApiError::conflict(
        format!("task {} is {}, not awaiting review", summary.task.id.short(), summary.state),
        format!(
            "only a task awaiting review can be {what}; follow it with GET /v1/tasks/ID/events"
        ),
    )
}

async fn proposal(
    State(state): State<AppState>,
    Caller(team): Caller,
    Path(id): Path<String>,
) -> Result<Json<ProposalView>, ApiError> {
    let summary = find(&state, &team, &id).await?;
    let TaskState::AwaitingReview { round } = summary.state else {
        return Err(not_awaiting(&summary, "reviewed"));
    };
    let task = &summary.task.id;
    let patch = state.ports.store.artifact(task, &ArtifactName::patch(round)).await?;
    let patch = patch.and_then(|p| String::from_utf8(p).ok()).ok_or_else(|| {
        ApiError::unavailable(
            format!("task {} has no readable patch for round {round}", task.short()),
            "the task's data needs repair; reject it and start a new task",
        )
    })?;
    Ok(Json(ProposalView {
        round,
        repository: summary.task.repo.clone(),
        patch,
        plan: artifact(&state, task, &ArtifactName::plan()).await?,
        report: artifact(&state, task, &ArtifactName::report(round)).await?,
    }))
}

async fn decide(
    state: &Shared,
    summary: &TaskSummary,
    event: Event,
    what: &str,
) -> Result<Json<Decision>, ApiError> {
    let awaiting = |s: TaskState| matches!(s, TaskState::AwaitingReview { .. });
    let (found, done) = state
        .ports
        .store
        .append(&summary.task.id, vec![event], state.ports.clock.now(), Some(awaiting))
        .await?;
    if !done {
        let now = TaskSummary { state: found, ..summary.clone() };
        return Err(not_awaiting(&now, what));
    }
    let now = state.ports.store.task(&summary.task.id).await?.state;
    Ok(Json(Decision { state: now, changed: true }))
}

async fn accept(
    State(state): State<AppState>,
    Caller(team): Caller,
    Path(id): Path<String>,
    bytes: Bytes,
) -> Result<Json<Decision>, ApiError> {
    let Accept { round } = body(&bytes, "accept")?;
    let summary = find(&state, &team, &id).await?;
    match summary.state {
        TaskState::AwaitingReview { round: awaiting } if awaiting == round => {}
        TaskState::AwaitingReview { round: awaiting } => {
            return Err(ApiError::conflict(
                format!(
                    "task {} awaits review of round {awaiting}, not {round}",
                    summary.task.id.short()
                ),
                "fetch the proposal again and apply that round",
            ))
        }
        _ => return Err(not_awaiting(&summary, "accepted")),
    }
    decide(&state, &summary, Event::Applied { round }, "accepted").await
}

async fn reject(
    State(state): State<AppState>,
    Caller(team): Caller,
    Path(id): Path<String>,
    bytes: Bytes,
) -> Result<Json<Decision>, ApiError> {
    let Reason { reason } = body(&bytes, "reject")?;
    let summary = find(&state, &team, &id).await?;
    decide(&state, &summary, Event::Rejected { reason }, "rejected").await
}

async fn cancel(
    State(state): State<AppState>,
    Caller(team): Caller,
    Path(id): Path<String>,
    bytes: Bytes,
) -> Result<Json<Decision>, ApiError> {
    let Reason { reason } = body(&bytes, "cancel")?;
    let summary = find(&state, &team, &id).await?;
    let ports = &state.ports;
    let (found, changed) =
        cadre_engine::cancel(ports.store.as_ref(), ports.clock.as_ref(), &summary.task.id, reason)
            .await?;
    let state_now = if changed { TaskState::Cancelled } else { found };
    Ok(Json(Decision { state: state_now, changed }))
}

async fn resume(
    State(state): State<AppState>,
    Caller(team): Caller,
    Path(id): Path<String>,
    bytes: Bytes,
) -> Result<Json<Decision>, ApiError> {
    let Resume { budget_usd } = body(&bytes, "resume")?;
    let summary = find(&state, &team, &id).await?;
    let ports = &state.ports;
    let task = &summary.task.id;
    let published = match budget_usd {
        Some(usd) => {
            let limit = budget_micros(usd, "budget_usd")?;
            let spent = ports.ledger.task_spend_micros(task).await?;
            cadre_engine::raise_budget(
                ports.store.as_ref(),
                ports.queue.as_ref(),
                ports.clock.as_ref(),
                task,
                limit,
                spent,
            )
            .await?
        }
        None => cadre_engine::resume(ports.store.as_ref(), ports.queue.as_ref(), task).await?,
    };
    let now = ports.store.task(task).await?.state;
    Ok(Json(Decision { state: now, changed: published.is_some() || budget_usd.is_some() }))
}
