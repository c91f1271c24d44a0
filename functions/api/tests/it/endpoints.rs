//! Auth, every endpoint, errors and the events long-poll.

use std::time::Duration;

use cadre_api::wire::{CreateSettings, CreateTask};
use cadre_api::{ApiConfig, ApiError};
use cadre_domain::ports::usage::{CallOutcome, UsageRecord};
use cadre_domain::{Event, TaskId, TaskState};
use serde_json::Value;

use crate::support::{Api, ALPHA_TOKEN, BETA_TOKEN};

fn create(goal: &str, repository: &str) -> CreateTask {
    CreateTask {
        goal: goal.into(),
        repository: repository.into(),
        settings: CreateSettings::default(),
    }
}

async fn raw(
    api: &Api,
    method: reqwest::Method,
    path: &str,
    auth: Option<&str>,
    body: Option<&str>,
) -> (u16, reqwest::header::HeaderMap, Value) {
    let mut request = reqwest::Client::new().request(method, format!("{}{path}", api.url));
    if let Some(auth) = auth {
        request = request.header("authorization", auth);
    }
    if let Some(body) = body {
        request = request.header("content-type", "application/json").body(body.to_owned());
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = response.text().await.unwrap();
    (status, headers, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

#[tokio::test]
async fn a_missing_or_wrong_token_is_401_with_a_challenge_and_never_echoed() {
    let api = Api::start().await;
    let (status, headers, body) = raw(&api, reqwest::Method::GET, "/v1/tasks", None, None).await;
    assert_eq!(status, 401);
    assert_eq!(headers["www-authenticate"], "Bearer realm=\"cadre\"");
    assert!(body["fix"].as_str().unwrap().contains("Authorization: Bearer"), "{body}");

    let wrong = "Bearer not-a-real-token-123";
    let (status, headers, body) =
        raw(&api, reqwest::Method::POST, "/v1/tasks", Some(wrong), Some("{}")).await;
    assert_eq!(status, 401);
    assert_eq!(headers["www-authenticate"], "Bearer realm=\"cadre\", error=\"invalid_token\"");
    assert!(!body.to_string().contains("not-a-real-token-123"), "{body}");
    let (status, _, _) =
        raw(&api, reqwest::Method::GET, "/v1/tasks", Some("Basic dXNlcjpwdw=="), None).await;
    assert_eq!(status, 401);

    // The client hands the error back as sent.
    let err = api.client("wrong").list(5).await.unwrap_err();
    assert!(matches!(err, ApiError::Unauthorized { .. }), "{err:?}");
    // Health needs no token.
    let (status, _, body) = raw(&api, reqwest::Method::GET, "/healthz", None, None).await;
    assert_eq!((status, body), (200, Value::String("ok".into())));
}

#[tokio::test]
async fn a_created_task_is_queued_charged_to_the_team_and_hidden_from_other_teams() {
    let api = Api::start().await;
    let alpha = api.client(ALPHA_TOKEN);
    let mut request = create("make add add", &api.repo_path());
    request.settings = CreateSettings {
        budget_usd: Some(0.5),
        rounds: Some(2),
        test_command: Some("python3 -m unittest".into()),
        ..CreateSettings::default()
    };
    let view = alpha.create(&request).await.unwrap();
    assert_eq!(view.state, TaskState::Queued);
    assert_eq!(view.task.settings.team.as_deref(), Some("alpha"));
    assert_eq!(view.task.settings.budget_micros, Some(500_000));
    assert_eq!(view.task.settings.max_rounds, 2);
    assert_eq!(view.task.goal, "make add add");
    assert_eq!(view.cost_micros, Some(0));
    // Its first step is on the queue the workers read.
    let deliveries = api.queue.receive(10, Duration::from_secs(30)).await.unwrap();
    assert_eq!(deliveries.len(), 1);
    let body = String::from_utf8_lossy(&deliveries[0].body).into_owned();
    assert!(body.contains(view.task.id.as_str()) && body.contains("index"), "{body}");

    let id = view.task.id.as_str();
    assert_eq!(alpha.task(&id[..8]).await.unwrap().task.id, view.task.id);
    assert_eq!(alpha.list(10).await.unwrap().tasks.len(), 1);
    let beta = api.client(BETA_TOKEN);
    assert!(beta.list(10).await.unwrap().tasks.is_empty());
    let err = beta.task(id).await.unwrap_err();
    assert!(matches!(err, ApiError::NotFound { .. }), "{err:?}");
    let err = beta.cancel(id, None).await.unwrap_err();
    assert!(matches!(err, ApiError::NotFound { .. }), "{err:?}");
    assert_eq!(alpha.task(id).await.unwrap().state, TaskState::Queued);
}

#[tokio::test]
async fn unusable_requests_are_400_or_422_with_a_fix() {
    let api = Api::start().await;
    let alpha = api.client(ALPHA_TOKEN);
    let refused = |r: Result<_, ApiError>| match r {
        Err(ApiError::Unprocessable { error, fix }) => format!("{error}; {fix}"),
        other => panic!("expected 422, got {other:?}"),
    };
    let url = refused(alpha.create(&create("fix it", "https://github.com/o/r.git")).await);
    assert!(url.contains("is a git URL, and cloning is not supported yet"), "{url}");
    let ssh = refused(alpha.create(&create("fix it", "git@github.com:o/r.git")).await);
    assert!(ssh.contains("not supported yet"), "{ssh}");
    let relative = refused(alpha.create(&create("fix it", "repo")).await);
    assert!(relative.contains("not an absolute path"), "{relative}");
    let not_git = api.dir.path().join("plain");
    std::fs::create_dir(&not_git).unwrap();
    let plain = refused(alpha.create(&create("fix it", not_git.to_str().unwrap())).await);
    assert!(plain.contains("is not a git repository"), "{plain}");
    let empty = refused(alpha.create(&create("  ", &api.repo_path())).await);
    assert!(empty.contains("the goal is empty"), "{empty}");
    let mut broke = create("fix it", &api.repo_path());
    broke.settings.budget_usd = Some(-1.0);
    assert!(refused(alpha.create(&broke).await).contains("budget_usd -1"));
    broke.settings = CreateSettings { rounds: Some(0), ..CreateSettings::default() };
    assert!(refused(alpha.create(&broke).await).contains("rounds 0 is out of range"));

    let auth = format!("Bearer {ALPHA_TOKEN}");
    let (status, _, body) =
        raw(&api, reqwest::Method::POST, "/v1/tasks", Some(&auth), Some("{not json")).await;
    assert_eq!(status, 400, "{body}");
    assert!(body["error"].as_str().unwrap().contains("is not JSON"), "{body}");
    let (status, _, body) = raw(
        &api,
        reqwest::Method::POST,
        "/v1/tasks",
        Some(&auth),
        Some(r#"{"goal": "x", "repository": "/r", "colour": "blue"}"#),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    let (status, _, body) =
        raw(&api, reqwest::Method::GET, "/v1/tasks/abc/events?after=x", Some(&auth), None).await;
    assert_eq!(status, 400, "{body}");
    let (status, _, body) =
        raw(&api, reqwest::Method::GET, "/v1/tasks/ffffffff", Some(&auth), None).await;
    assert_eq!(status, 404, "{body}");
    assert!(body["fix"].is_string(), "{body}");
    // No task was created by any of this.
    assert!(alpha.list(10).await.unwrap().tasks.is_empty());
}

#[tokio::test]
async fn events_long_poll_until_something_happens() {
    let api = Api::start().await;
    let alpha = api.client(ALPHA_TOKEN);
    let view = alpha.create(&create("make add add", &api.repo_path())).await.unwrap();
    let id = view.task.id.clone();
    let first = alpha.events(id.as_str(), 0, Duration::ZERO).await.unwrap();
    assert!(matches!(first.events[0].event, Event::Created { .. }), "{first:?}");
    assert_eq!(first.next_after, first.events.last().unwrap().seq);

    // Nothing new: the request is held until an event arrives.
    let waiting = {
        let alpha = alpha.clone();
        let id = id.clone();
        let after = first.next_after;
        tokio::spawn(async move { alpha.events(id.as_str(), after, Duration::from_secs(20)).await })
    };
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert!(!waiting.is_finished(), "the long-poll answered before anything happened");
    let started = Event::StepStarted { step: cadre_domain::StepKind::Index, round: 0, attempt: 1 };
    api.store.append(&id, vec![started.clone()], api.clock.now(), None).await.unwrap();
    let page = waiting.await.unwrap().unwrap();
    assert_eq!(page.events.len(), 1);
    assert_eq!(page.events[0].event, started);
    assert_eq!(page.state, TaskState::Indexing);

    // A short wait with nothing new ends empty, at the same position.
    let empty = alpha.events(id.as_str(), page.next_after, Duration::from_secs(1)).await.unwrap();
    assert!(empty.events.is_empty());
    assert_eq!(empty.next_after, page.next_after);
}

#[tokio::test]
async fn review_endpoints_show_the_proposal_and_record_the_decision() {
    let api = Api::start().await;
    let alpha = api.client(ALPHA_TOKEN);
    let id = alpha.create(&create("make add add", &api.repo_path())).await.unwrap().task.id;
    let task = id.as_str();
    assert_eq!(alpha.plan(task).await.unwrap(), None);
    let err = alpha.proposal(task).await.unwrap_err();
    assert!(matches!(err, ApiError::Conflict { .. }), "{err:?}");
    let err = alpha.accept(task, 1).await.unwrap_err();
    assert!(matches!(err, ApiError::Conflict { .. }), "{err:?}");

    api.to_review(&id).await;
    assert_eq!(alpha.plan(task).await.unwrap().unwrap().summary, "make add add");
    let report = alpha.report(task, 1).await.unwrap().unwrap();
    assert!(report.passed);
    assert_eq!(alpha.report(task, 2).await.unwrap(), None);
    let proposal = alpha.proposal(task).await.unwrap();
    assert_eq!(proposal.round, 1);
    assert!(proposal.patch.starts_with("--- a/calc.py"));
    assert_eq!(proposal.repository, api.repo.canonicalize().unwrap().display().to_string());
    assert!(proposal.plan.is_some() && proposal.report.is_some());

    let err = alpha.accept(task, 2).await.unwrap_err();
    assert!(
        matches!(&err, ApiError::Conflict { error, .. } if error.contains("round 1, not 2")),
        "{err:?}"
    );
    let decision = alpha.accept(task, 1).await.unwrap();
    assert_eq!((decision.state, decision.changed), (TaskState::Applied, true));
    let err = alpha.reject(task, Some("late".into())).await.unwrap_err();
    assert!(matches!(err, ApiError::Conflict { .. }), "{err:?}");

    // Reject on a second task.
    let other = alpha.create(&create("again", &api.repo_path())).await.unwrap().task.id;
    api.to_review(&other).await;
    let decision = alpha.reject(other.as_str(), Some("not like this".into())).await.unwrap();
    assert_eq!(decision.state, TaskState::Rejected);
}

#[tokio::test]
async fn cancel_and_resume_with_a_budget() {
    let api = Api::start().await;
    let alpha = api.client(ALPHA_TOKEN);
    let id = alpha.create(&create("make add add", &api.repo_path())).await.unwrap().task.id;
    let task = id.as_str();
    // Stopped at its budget: resuming needs a higher one.
    let stop = Event::BudgetExhausted {
        step: cadre_domain::StepKind::Plan,
        round: 0,
        spent_micros: 10,
        limit_micros: 10,
        team: None,
    };
    api.store.append(&id, vec![stop], api.clock.now(), None).await.unwrap();
    let err = alpha.resume(task, None).await.unwrap_err();
    assert!(
        matches!(&err, ApiError::Conflict { fix, .. } if fix.contains("budget_usd")),
        "{err:?}"
    );
    let err = alpha.resume(task, Some(0.0)).await.unwrap_err();
    assert!(matches!(err, ApiError::Unprocessable { .. }), "{err:?}");
    let resumed = alpha.resume(task, Some(3.0)).await.unwrap();
    assert!(resumed.changed);
    assert_eq!(resumed.state, TaskState::Planning);

    let cancelled = alpha.cancel(task, Some("enough".into())).await.unwrap();
    assert_eq!((cancelled.state, cancelled.changed), (TaskState::Cancelled, true));
    let again = alpha.cancel(task, None).await.unwrap();
    assert_eq!((again.state, again.changed), (TaskState::Cancelled, false));
    let resumed = alpha.resume(task, None).await.unwrap();
    assert!(!resumed.changed);
}

#[tokio::test]
async fn a_team_past_its_daily_budget_cannot_start_tasks() {
    let api = Api::start_with(ApiConfig {
        team_daily_budget_micros: Some(100),
        poll: Duration::from_millis(20),
        ..ApiConfig::default()
    })
    .await;
    let row = |team: &str| UsageRecord {
        at: api.clock.now(),
        model: "gemini-3-flash-preview".into(),
        task: Some(TaskId::generate()),
        step: "plan".into(),
        template: None,
        tokens: Default::default(),
        latency_ms: 1,
        cost_micros: 300,
        cache_hit: false,
        outcome: CallOutcome::Ok,
        attempts: 1,
        team: Some(team.into()),
    };
    api.ledger.record(&row("alpha")).await.unwrap();
    let err = api.client(ALPHA_TOKEN).create(&create("x", &api.repo_path())).await.unwrap_err();
    assert!(
        matches!(&err, ApiError::Conflict { error, .. } if error.contains("team alpha has spent $0.0003 of its $0.0001 daily budget")),
        "{err:?}"
    );
    // Another team is not held back by alpha's spend.
    api.client(BETA_TOKEN).create(&create("x", &api.repo_path())).await.unwrap();
}
