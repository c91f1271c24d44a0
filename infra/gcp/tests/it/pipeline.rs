//! A whole task through the HTTP push entry point, driven by the Pub/Sub emulator's own push
//! subscriptions (one per step, ordered, with retry and dead-letter policies, as Terraform declares
//! them) and Firestore on its emulator: index → plan → generate → test → review.
//!
//! Two faults are injected on the way: the `plan` message's answer is lost twice after the handler
//! committed (Pub/Sub sees a 5xx and redelivers it twice), and the first `generate` handler is killed
//! mid-step, while its model call is in flight (its request is dropped, as when an instance dies). The
//! task must still complete once: every step's result is in the log exactly once, and nothing is
//! dead-lettered.
//!
//! What only a real project shows: Cloud Run instances actually dying (here the handler's future is
//! dropped in-process), real push latency and backoff, and Pub/Sub's ordering guarantees at scale.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use axum::body::Body;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use cadre_domain::ports::queue::{Delivery, Queue};
use cadre_domain::ports::StateStore;
use cadre_domain::{Envelope, Event, StepKind, TaskId, TaskState};
use cadre_gcp::PushRunner;
use cadre_testkit::model_server::{CapturedRequest, Scripted};
use serde_json::Value;

use crate::deployment::{Deployment, Options, PREFIX};
use crate::support::STEPS;

const PLAN: &str = r#"{"summary": "add() subtracts; make it add", "steps": [{"description": "return a + b in add()", "files": ["calc.py"]}], "acceptance_criteria": ["test_add passes"]}"#;
const FIX: &str =
    "calc.py\n<<<<<<< SEARCH\n    return a - b\n=======\n    return a + b\n>>>>>>> REPLACE\n";

/// The step of a push request's message, if it carries an envelope.
fn pushed_step(body: &[u8]) -> Option<String> {
    let push: Value = serde_json::from_slice(body).ok()?;
    let data = STANDARD.decode(push["message"]["data"].as_str()?).ok()?;
    let envelope: Value = serde_json::from_slice(&data).ok()?;
    envelope["step"].as_str().map(str::to_owned)
}

/// Kills the first handler of a `generate` message once its step has started: the handling future is
/// dropped, so the delivery is never settled and Pub/Sub redelivers it.
struct KillFirstGenerate {
    inner: Arc<dyn PushRunner>,
    store: Arc<dyn StateStore>,
    killed: AtomicBool,
}

#[async_trait]
impl PushRunner for KillFirstGenerate {
    async fn run(&self, queue: Arc<dyn Queue>, delivery: Delivery) {
        let envelope = Envelope::from_bytes(&delivery.body).ok();
        let Some(envelope) = envelope.filter(|e| e.step == StepKind::Generate) else {
            return self.inner.run(queue, delivery).await;
        };
        if self.killed.swap(true, Ordering::SeqCst) {
            return self.inner.run(queue, delivery).await;
        }
        let started = async {
            loop {
                let log = self.store.events(&envelope.task_id).await.unwrap_or_default();
                if log
                    .iter()
                    .any(|r| matches!(r.event, Event::StepStarted { step: StepKind::Generate, .. }))
                {
                    // Let the step reach its model call, which the model server holds for a while.
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    return;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        };
        tokio::select! {
            () = self.inner.run(queue, delivery) => panic!("the first generate was meant to be killed mid-step"),
            () = started => tracing::info!("killed the first generate handler mid-step"),
        }
    }
}

fn count(log: &[cadre_domain::EventRecord], wanted: impl Fn(&Event) -> bool) -> usize {
    log.iter().filter(|r| wanted(&r.event)).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_runs_through_push_subscriptions_once_despite_lost_acks_and_a_killed_handler() {
    let lost_plan_acks = Arc::new(AtomicU32::new(0));
    let last_push = Arc::new(Mutex::new(Instant::now()));
    let (lost, last) = (lost_plan_acks.clone(), last_push.clone());
    let lose_two_plan_acks = move |request: Request, next: Next| {
        let (lost, last) = (lost.clone(), last.clone());
        async move {
            *last.lock().unwrap() = Instant::now();
            let (parts, body) = request.into_parts();
            let bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap();
            let step = pushed_step(&bytes);
            let response: Response = next.run(Request::from_parts(parts, Body::from(bytes))).await;
            if step.as_deref() == Some("plan")
                && response.status().is_success()
                && lost.fetch_add(1, Ordering::SeqCst) < 2
            {
                // The handler committed and acked; the answer never reaches Pub/Sub.
                return (StatusCode::BAD_GATEWAY, "answer lost").into_response();
            }
            response
        }
    };
    let options = Options {
        wrap_runner: Box::new(|inner, ports| {
            Arc::new(KillFirstGenerate {
                inner,
                store: ports.store.clone(),
                killed: AtomicBool::new(false),
            })
        }),
        wrap_router: Box::new(move |router| router.layer(middleware::from_fn(lose_two_plan_acks))),
        ..Options::default()
    };
    let deployment = Deployment::start(options).await;
    let generate_calls = Arc::new(AtomicU32::new(0));
    let calls = generate_calls.clone();
    deployment.model.respond_with(move |req: &CapturedRequest| {
        if req.system_text.contains("planning engineer") {
            Scripted::Text(PLAN.into())
        } else if calls.fetch_add(1, Ordering::SeqCst) == 0 {
            // The killed handler's call: slow enough to be in flight when it is killed.
            Scripted::Delay { millis: 5_000, then: Box::new(Scripted::Text(FIX.into())) }
        } else {
            Scripted::Text(FIX.into())
        }
    });
    let dead = format!("{PREFIX}dead");
    for step in STEPS {
        let topic = format!("{PREFIX}{step}");
        deployment
            .admin
            .push_subscription(&format!("{topic}-push"), &topic, &deployment.push_url, &dead)
            .await;
    }

    let task = deployment.submit().await;
    let state = wait_for_review(deployment.store.as_ref(), &task.id).await;
    assert_eq!(state, TaskState::AwaitingReview { round: 1 });
    // Let redeliveries and re-published duplicates drain before counting.
    while last_push.lock().unwrap().elapsed() < Duration::from_millis(1_500) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let log = deployment.store.events(&task.id).await.unwrap();
    let described: Vec<String> = log.iter().map(|r| r.event.describe()).collect();
    assert_eq!(count(&log, |e| matches!(e, Event::Indexed { .. })), 1, "{described:#?}");
    assert_eq!(count(&log, |e| matches!(e, Event::PlanReady { .. })), 1, "{described:#?}");
    assert_eq!(count(&log, |e| matches!(e, Event::PatchReady { .. })), 1, "{described:#?}");
    assert_eq!(
        count(&log, |e| matches!(e, Event::TestsFinished { passed: true, .. })),
        1,
        "{described:#?}"
    );
    assert_eq!(count(&log, |e| matches!(e, Event::AwaitingReview { .. })), 1, "{described:#?}");
    assert_eq!(
        count(&log, |e| matches!(e, Event::StepStarted { step: StepKind::Plan, .. })),
        1,
        "the plan message was delivered three times but run once: {described:#?}"
    );
    assert!(
        count(&log, |e| matches!(e, Event::StepStarted { step: StepKind::Generate, .. })) >= 2,
        "the killed generate ran again: {described:#?}"
    );
    assert_eq!(
        count(&log, |e| matches!(e, Event::Failed { .. } | Event::StepRetrying { .. })),
        0,
        "{described:#?}"
    );
    assert!(
        lost_plan_acks.load(Ordering::SeqCst) >= 3,
        "the plan message came at least three times"
    );
    let plan_calls = deployment
        .model
        .requests()
        .iter()
        .filter(|r| r.system_text.contains("planning engineer"))
        .count();
    assert_eq!(plan_calls, 1, "a redelivered plan message does not call the model again");
    assert!(generate_calls.load(Ordering::SeqCst) >= 2);
    assert!(
        deployment.queue.dead_letters(10).await.unwrap().is_empty(),
        "nothing was dead-lettered"
    );
    let patch =
        deployment.store.artifact(&task.id, &cadre_domain::ArtifactName::patch(1)).await.unwrap();
    assert!(String::from_utf8(patch.unwrap()).unwrap().contains("+    return a + b"));
}

async fn wait_for_review(store: &dyn StateStore, task: &TaskId) -> TaskState {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let state = store.task(task).await.unwrap().state;
        if state.is_terminal() || matches!(state, TaskState::AwaitingReview { .. }) {
            return state;
        }
        assert!(Instant::now() < deadline, "the task is stuck in {state}: {:#?}", {
            store.events(task).await.unwrap().iter().map(|r| r.event.describe()).collect::<Vec<_>>()
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
