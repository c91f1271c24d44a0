//! The push handler, posted real-format Pub/Sub push requests (`message.data` base64, `attributes`,
//! `messageId`, `publishTime`, `deliveryAttempt`), with Firestore and Pub/Sub on their emulators: the
//! HTTP status Pub/Sub acts on, the state written, the next messages published and the dead letters'
//! reasons.
//!
//! What only a real project shows: Pub/Sub's own redelivery timing and `deliveryAttempt` counting (the
//! emulator omits `deliveryAttempt`; these tests set it as real Pub/Sub does), Cloud Run's request
//! timeout and concurrency, and real OIDC tokens (here signed by the test against a local JWKS).

use std::sync::Arc;

use cadre_domain::ports::clock::SystemClock;
use cadre_domain::ports::queue::{OutgoingMessage, Queue};
use cadre_domain::ports::Clock;
use cadre_domain::{Envelope, MessageId, StepKind, StepPayload, TaskState, TraceId};
use cadre_gcp::{
    FirestoreConfig, FirestoreStore, OidcConfig, OidcVerifier, PushAuth, ATTR_MESSAGE_ID,
    ATTR_NOT_BEFORE,
};
use cadre_testkit::model_server::Scripted;
use serde_json::json;

use crate::deployment::{push_body, push_of, Deployment, Options, PREFIX};
use crate::support::{push_claims, JwksServer, SigningKey};

const PLAN: &str = r#"{"summary":"fix add","steps":[{"description":"use +","files":["calc.py"]}],"acceptance_criteria":["tests pass"]}"#;

/// Takes the one message a step's topic holds (a pull may come back empty before it arrives).
async fn published(deployment: &Deployment, step: &str) -> crate::support::Pulled {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut got = Vec::new();
    while got.is_empty() && std::time::Instant::now() < deadline {
        got = deployment.admin.pull(&format!("{PREFIX}{step}-tap")).await;
    }
    assert_eq!(got.len(), 1, "expected one message on the {step} topic, got {got:?}");
    got.remove(0)
}

/// The dead letters, once `n` of them can be seen.
async fn dead_letters(
    deployment: &Deployment,
    n: usize,
) -> Vec<cadre_domain::ports::queue::DeadLetter> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let dead = deployment.queue.dead_letters(10).await.unwrap();
        if dead.len() >= n || std::time::Instant::now() > deadline {
            return dead;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_valid_push_runs_the_step_publishes_the_next_and_a_redelivery_does_nothing_twice() {
    let deployment = Deployment::start(Options::default()).await;
    let task = deployment.submit().await;
    let index = published(&deployment, "index").await;
    assert_eq!(index.ordering_key.as_deref(), Some(task.id.as_str()), "ordering key = task id");
    let push = push_of(&index.data, json!(index.attributes), "1001", 1);

    let (status, answer) = deployment.push(&push, None).await;
    assert_eq!((status, answer["verdict"].as_str()), (200, Some("ack")), "{answer}");
    let log = deployment.log(&task.id).await;
    assert!(log.iter().any(|l| l.starts_with("indexed:")), "{log:?}");
    let plan = published(&deployment, "plan").await;
    assert_eq!(plan.json()["step"], "plan");
    assert_eq!(plan.ordering_key.as_deref(), Some(task.id.as_str()));
    let plan_id = format!("{}/plan/r0", task.id);
    assert_eq!(plan.attributes.get(ATTR_MESSAGE_ID), Some(&plan_id));

    // Pub/Sub redelivers the same message (its ack was lost): nothing runs again, the next message
    // is published again under the same id, and the answer is still a 2xx.
    let redelivered = push_of(&index.data, json!(index.attributes), "1001", 2);
    let (status, answer) = deployment.push(&redelivered, None).await;
    assert_eq!((status, answer["verdict"].as_str()), (200, Some("ack")), "{answer}");
    assert_eq!(deployment.log(&task.id).await, log, "a redelivery writes nothing");
    let again = published(&deployment, "plan").await;
    assert_eq!(again.attributes.get(ATTR_MESSAGE_ID), Some(&plan_id));
    assert_eq!(deployment.store.task(&task.id).await.unwrap().state, TaskState::Planning);
}

#[tokio::test]
async fn malformed_base64_and_unknown_schema_versions_are_dead_lettered_with_their_reason() {
    let deployment = Deployment::start(Options::default()).await;
    let (status, answer) =
        deployment.push(&push_body("!!not base64!!", json!({}), "2001", Some(1)), None).await;
    assert_eq!((status, answer["verdict"].as_str()), (200, Some("dead_lettered")), "{answer}");

    let task = deployment.submit().await;
    let mut future = serde_json::to_value(Envelope::new(
        task.id.clone(),
        TraceId::for_task(&task.id),
        StepPayload::Plan,
    ))
    .unwrap();
    future["schema_version"] = json!(99);
    let bytes = serde_json::to_vec(&future).unwrap();
    let (status, answer) = deployment
        .push(&push_of(&bytes, json!({ ATTR_MESSAGE_ID: "m-99" }), "2002", 1), None)
        .await;
    assert_eq!((status, answer["verdict"].as_str()), (200, Some("dead_lettered")), "{answer}");

    let mut dead = dead_letters(&deployment, 2).await;
    dead.sort_by(|a, b| a.id.as_str().cmp(b.id.as_str()));
    assert_eq!(dead.len(), 2, "{dead:?}");
    assert_eq!(dead[0].id.as_str(), "2001", "without a Cadre id, Pub/Sub's message id is kept");
    assert!(dead[0].reason.contains("not base64"), "{}", dead[0].reason);
    assert_eq!(dead[0].body, b"!!not base64!!", "the data is kept as received");
    assert_eq!(dead[1].id.as_str(), "m-99");
    assert!(
        dead[1].reason.contains("unsupported envelope schema version 99"),
        "{}",
        dead[1].reason
    );
    assert_eq!(dead[1].body, bytes, "the dead letter keeps the original bytes");
    assert_eq!(dead[1].delivery_count, 1);
    assert_eq!(dead_letters(&deployment, 2).await.len(), 2, "peeking does not consume");
    assert_eq!(deployment.store.task(&task.id).await.unwrap().state, TaskState::Queued);
}

#[tokio::test]
async fn a_retryable_failure_asks_pubsub_for_a_redelivery() {
    let deployment = Deployment::start(Options::default()).await;
    deployment
        .model
        .push(Scripted::Status { code: 503, body: json!({"error": {"message": "overloaded"}}) });
    let task = deployment.submit().await;
    let plan = Envelope::new(task.id.clone(), TraceId::for_task(&task.id), StepPayload::Plan);
    let (status, answer) =
        deployment.push(&push_of(&plan.to_bytes(), json!({}), "3001", 1), None).await;
    assert_eq!((status, answer["verdict"].as_str()), (503, Some("retry_later")), "{answer}");
    let log = deployment.log(&task.id).await;
    assert!(log.last().unwrap().contains("failed, retrying"), "{log:?}");

    // The redelivery (attempt 2) succeeds.
    deployment.model.push(Scripted::Text(PLAN.into()));
    let (status, answer) =
        deployment.push(&push_of(&plan.to_bytes(), json!({}), "3001", 2), None).await;
    assert_eq!((status, answer["verdict"].as_str()), (200, Some("ack")), "{answer}");
    assert_eq!(
        deployment.store.task(&task.id).await.unwrap().state,
        TaskState::Generating { round: 1 }
    );
    assert_eq!(published(&deployment, "generate").await.json()["step"], "generate");
}

#[tokio::test]
async fn with_the_store_unreachable_nothing_is_acknowledged() {
    let store =
        FirestoreStore::new(&FirestoreConfig::emulator("127.0.0.1:9", "cadre-test-down")).unwrap();
    let deployment =
        Deployment::start(Options { store: Some(Arc::new(store)), ..Options::default() }).await;
    let task = cadre_domain::TaskId::generate();
    let plan = Envelope::new(task.clone(), TraceId::for_task(&task), StepPayload::Plan);
    let (status, answer) =
        deployment.push(&push_of(&plan.to_bytes(), json!({}), "4001", 1), None).await;
    assert_eq!((status, answer["verdict"].as_str()), (500, Some("unsettled")), "{answer}");
    assert!(
        deployment.queue.dead_letters(10).await.unwrap().is_empty(),
        "nothing is dead-lettered"
    );
}

#[tokio::test]
async fn misrouted_and_early_messages_are_not_run() {
    let deployment =
        Deployment::start(Options { step: Some(StepKind::Plan), ..Options::default() }).await;
    let task = deployment.submit().await;
    let index = published(&deployment, "index").await;
    let (status, answer) =
        deployment.push(&push_of(&index.data, json!(index.attributes), "5001", 1), None).await;
    assert_eq!((status, answer["verdict"].as_str()), (200, Some("dead_lettered")), "{answer}");
    assert!(answer["reason"].as_str().unwrap().contains("misrouted"), "{answer}");

    // A message published with a delay carries its earliest delivery time; pushed early, it is refused
    // with a 5xx so that Pub/Sub brings it back later.
    let plan = Envelope::new(task.id.clone(), TraceId::for_task(&task.id), StepPayload::Plan);
    let delayed = OutgoingMessage {
        id: MessageId::new("delayed-plan"),
        body: plan.to_bytes(),
        delay: std::time::Duration::from_secs(3600),
    };
    deployment.queue.publish(vec![delayed]).await.unwrap();
    let held = published(&deployment, "plan").await;
    let not_before: i64 = held.attributes[ATTR_NOT_BEFORE].parse().unwrap();
    assert!(not_before > SystemClock.now().0 + 3_500_000);
    let (status, answer) =
        deployment.push(&push_of(&held.data, json!(held.attributes), "5002", 1), None).await;
    assert_eq!((status, answer["verdict"].as_str()), (503, Some("deferred")), "{answer}");
    assert_eq!(deployment.store.task(&task.id).await.unwrap().state, TaskState::Queued);
}

#[tokio::test]
async fn pushes_without_a_valid_token_are_refused_before_anything_runs() {
    let key = SigningKey::google();
    let jwks = JwksServer::start(vec![key.jwk()], 3600).await;
    let audience = "https://cadre-core-index.a.run.app/push";
    let mut config = OidcConfig::google(audience);
    config.jwks_url = jwks.url.clone();
    let verifier = OidcVerifier::new(config, Arc::new(SystemClock)).unwrap();
    let deployment = Deployment::start(Options {
        auth: PushAuth::Oidc(Box::new(verifier)),
        ..Options::default()
    })
    .await;
    let task = deployment.submit().await;
    let index = published(&deployment, "index").await;
    let push = push_of(&index.data, json!(index.attributes), "6001", 1);
    let now = SystemClock.now().0 / 1000;

    let (status, answer) = deployment.push(&push, None).await;
    assert_eq!((status, answer["verdict"].as_str()), (401, Some("unauthenticated")), "{answer}");
    let mut expired = push_claims(audience, now - 7200);
    expired["exp"] = json!(now - 3600);
    let (status, answer) =
        deployment.push(&push, Some(&format!("Bearer {}", key.sign(&expired)))).await;
    assert_eq!(status, 401);
    assert!(answer["reason"].as_str().unwrap().contains("expired"), "{answer}");
    let other = push_claims("https://cadre-core-plan.a.run.app/push", now);
    let (status, answer) =
        deployment.push(&push, Some(&format!("Bearer {}", key.sign(&other)))).await;
    assert_eq!(status, 401);
    assert!(answer["reason"].as_str().unwrap().contains("audience"), "{answer}");
    assert_eq!(deployment.log(&task.id).await.len(), 1, "a refused push runs nothing");

    let good = push_claims(audience, now);
    let (status, answer) =
        deployment.push(&push, Some(&format!("Bearer {}", key.sign(&good)))).await;
    assert_eq!((status, answer["verdict"].as_str()), (200, Some("ack")), "{answer}");
    assert_eq!(jwks.fetches(), 1);
}

#[tokio::test]
async fn a_request_that_is_not_a_push_envelope_is_a_bad_request() {
    let deployment = Deployment::start(Options::default()).await;
    let (status, answer) = deployment.push(&json!({"hello": "world"}), None).await;
    assert_eq!((status, answer["verdict"].as_str()), (400, Some("rejected")), "{answer}");
}
