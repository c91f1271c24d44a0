//! How the engine settles each kind of delivery.

use cadre_domain::ports::model::{Model, ModelError, ModelReply, ModelRequest};
use cadre_domain::{Envelope, StepPayload, TaskState, TraceId};
use cadre_engine::Handled;
use cadre_testkit::model_server::{ModelServer, Scripted};
use std::sync::Arc;

use crate::support::{World, PLAN_JSON};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_message_is_dead_lettered_at_once_with_its_reason_and_bytes() {
    let world = World::new().await;
    world.publish_raw("garbage-1", b"{not json").await;
    let handled = world.engine.handle(world.receive_one().await).await;
    assert!(
        matches!(&handled, Handled::DeadLettered { reason } if reason.starts_with("malformed envelope")),
        "{handled:?}"
    );
    let dead = world.queue.dead_letters(10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].body, b"{not json");
    assert!(dead[0].reason.contains("kept unchanged"));
    assert_eq!(world.queue.depth().await.unwrap().ready, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_envelope_of_another_schema_version_or_for_no_task_is_dead_lettered() {
    let world = World::new().await;
    let envelope =
        Envelope::new(cadre_domain::TaskId::generate(), TraceId::generate(), StepPayload::Plan);
    let mut value = serde_json::to_value(&envelope).unwrap();
    value["schema_version"] = 7.into();
    world.publish_raw("v7", &serde_json::to_vec(&value).unwrap()).await;
    let handled = world.engine.handle(world.receive_one().await).await;
    assert!(
        matches!(&handled, Handled::DeadLettered { reason } if reason.contains("schema version 7")),
        "{handled:?}"
    );

    world.publish_raw("orphan", &envelope.to_bytes()).await;
    let handled = world.engine.handle(world.receive_one().await).await;
    assert!(
        matches!(&handled, Handled::DeadLettered { reason } if reason.contains("does not exist")),
        "{handled:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_delivered_twice_does_its_work_once() {
    let world = World::new().await;
    world.server.push(Scripted::Text(PLAN_JSON.into()));
    let task = world.submit_indexed().await;
    let plan = world.receive_one().await;
    let copy = plan.clone();
    assert!(matches!(world.engine.handle(plan).await, Handled::Completed { next: 1, .. }));
    // The same message again (as after a crash between commit and ack): nothing is redone.
    world.publish_raw(copy.id.as_str(), &copy.body).await;
    let again = world.receive_one().await;
    // The generate message published by the first run is the one now at the head; settle the re-sent plan.
    let redelivered = if again.id == copy.id { again } else { world.receive_one().await };
    assert_eq!(world.engine.handle(redelivered).await, Handled::Duplicate);
    assert_eq!(world.server.requests().len(), 1, "the model was asked once");
    let log = world.log(&task.id).await;
    assert_eq!(log.iter().filter(|l| l.starts_with("plan ready")).count(), 1, "{log:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retryable_failure_is_retried_with_backoff_then_dead_lettered_and_the_task_failed() {
    let world = World::new().await;
    for _ in 0..3 {
        world.server.push(Scripted::Status {
            code: 503,
            body: serde_json::json!({"error": {"message": "overloaded"}}),
        });
    }
    let task = world.submit_indexed().await;
    for attempt in 1..=2 {
        let delivery = world.receive_one().await;
        assert_eq!(delivery.delivery_count, attempt);
        assert!(matches!(world.engine.handle(delivery).await, Handled::Retrying { .. }));
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let handled = world.engine.handle(world.receive_one().await).await;
    assert!(
        matches!(&handled, Handled::DeadLettered { reason } if reason.contains("failed after 3 attempts") && reason.contains("overloaded")),
        "{handled:?}"
    );
    assert_eq!(world.store.task(&task.id).await.unwrap().state, TaskState::Failed);
    let log = world.log(&task.id).await;
    assert_eq!(log.iter().filter(|l| l.contains("retrying in")).count(), 2, "{log:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_task_drops_its_messages() {
    let world = World::new().await;
    let task = world.submit().await;
    let (_, cancelled) = cadre_engine::cancel(
        world.store.as_ref(),
        &cadre_domain::ports::clock::SystemClock,
        &task.id,
        None,
    )
    .await
    .unwrap();
    assert!(cancelled);
    let handled = world.engine.handle(world.receive_one().await).await;
    assert!(matches!(handled, Handled::Dropped { .. }), "{handled:?}");
    assert!(world.server.requests().is_empty());
}

/// A model that panics: the only way to exercise panic containment, as no real provider panics on purpose.
struct PanickingModel;

#[async_trait::async_trait]
impl Model for PanickingModel {
    async fn complete(&self, _: &ModelRequest) -> Result<ModelReply, ModelError> {
        panic!("provider bug")
    }
    fn describe(&self) -> String {
        "panicking".into()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_step_is_contained_and_dead_lettered() {
    let world = World::with_model(ModelServer::start().await, Arc::new(PanickingModel)).await;
    let task = world.submit_indexed().await;
    let handled = world.engine.handle(world.receive_one().await).await;
    assert!(
        matches!(&handled, Handled::DeadLettered { reason } if reason.contains("panicked: provider bug")),
        "{handled:?}"
    );
    assert_eq!(world.store.task(&task.id).await.unwrap().state, TaskState::Failed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_republishes_what_a_task_waits_for() {
    let world = World::new().await;
    let task = world.submit().await;
    // Lose the first message, as if the process died between storing the task and publishing.
    let lost = world.receive_one().await;
    world.queue.ack(&[lost.receipt]).await.unwrap();
    let payload =
        cadre_engine::resume(world.store.as_ref(), world.queue.as_ref(), &task.id).await.unwrap();
    assert_eq!(payload, Some(StepPayload::Index), "a task that never ran starts at its index step");
    let again = world.receive_one().await;
    assert_eq!(Envelope::from_bytes(&again.body).unwrap().payload, StepPayload::Index);
}
