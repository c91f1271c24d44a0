//! The Lambda entry point through `lambda_runtime` and a local Lambda Runtime API served by the test
//! (`/2018-06-01/runtime/invocation/next`, `/response`, `/error`), fed with real-format SQS events whose
//! records are real deliveries from the SQS server (received by the test, as the event source mapping
//! would). The handler given to `serve` stands in for the engine: it settles each delivery through the
//! queue exactly as `cadre_engine::Engine::handle` does (ack, retry_later, dead_letter, or nothing
//! when its store is unreachable), chosen by the body.

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::routing::{get, post};
use axum::Router;
use cadre_aws::lambda::{BatchResponse, ItemFailure};
use cadre_aws::SqsQueue;
use cadre_domain::ports::queue::{Delivery, OutgoingMessage, Queue, QueueDepth};
use cadre_domain::MessageId;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;

use crate::moto;

const VISIBILITY: Duration = Duration::from_secs(30);

/// What the function answered for one invocation.
#[derive(Debug)]
enum Answer {
    Response(Value),
    Error(String),
}

#[derive(Clone)]
struct Api {
    events: Arc<tokio::sync::Mutex<mpsc::UnboundedReceiver<(String, String)>>>,
    answers: mpsc::UnboundedSender<(String, Answer)>,
}

/// A local Lambda Runtime API; returns its address, where to push events and where answers arrive.
async fn runtime_api(
) -> (String, mpsc::UnboundedSender<(String, String)>, mpsc::UnboundedReceiver<(String, Answer)>) {
    let (push, events) = mpsc::unbounded_channel();
    let (answers, answered) = mpsc::unbounded_channel();
    let api = Api { events: Arc::new(tokio::sync::Mutex::new(events)), answers };
    let app = Router::new()
        .route("/2018-06-01/runtime/invocation/next", get(next))
        .route("/2018-06-01/runtime/invocation/{id}/response", post(response))
        .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
        .with_state(api);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, push, answered)
}

async fn next(State(api): State<Api>) -> (HeaderMap, String) {
    let (id, event) = api.events.lock().await.recv().await.expect("the test keeps its sender");
    let mut headers = HeaderMap::new();
    headers.insert("lambda-runtime-aws-request-id", id.parse().unwrap());
    headers.insert("lambda-runtime-deadline-ms", "32503680000000".parse().unwrap());
    headers.insert(
        "lambda-runtime-invoked-function-arn",
        "arn:aws:lambda:us-east-1:123456789012:function:cadre-test".parse().unwrap(),
    );
    headers.insert(
        "lambda-runtime-trace-id",
        "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1".parse().unwrap(),
    );
    headers.insert("content-type", "application/json".parse().unwrap());
    (headers, event)
}

async fn response(State(api): State<Api>, Path(id): Path<String>, body: String) {
    let value = serde_json::from_str(&body).unwrap_or(Value::String(body));
    let _ = api.answers.send((id, Answer::Response(value)));
}

async fn error(State(api): State<Api>, Path(id): Path<String>, body: String) {
    let _ = api.answers.send((id, Answer::Error(body)));
}

/// The engine's settlement, chosen by the body; records which deliveries it saw.
fn engine_stand_in(
    queue: Arc<SqsQueue>,
    seen: Arc<Mutex<Vec<String>>>,
) -> impl Fn(Delivery) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>
       + Send
       + Sync
       + 'static {
    move |d: Delivery| {
        let queue = Arc::clone(&queue);
        let seen = Arc::clone(&seen);
        Box::pin(async move {
            seen.lock().unwrap().push(d.id.to_string());
            match d.body.as_slice() {
                b"ack" => queue.ack(&[d.receipt]).await.unwrap(),
                b"retry" => queue.retry_later(&d.receipt, Duration::ZERO).await.unwrap(),
                b"dead" => {
                    queue.dead_letter(&d.receipt, "poison: the step cannot use it").await.unwrap()
                }
                b"panic" => panic!("a bug in the step"),
                _ => {} // the store was unreachable: left for redelivery
            }
        })
    }
}

/// Publishes `(id, body)` messages and receives them as the event source mapping would, returning an
/// SQS event in Lambda's format (records in publish order for FIFO).
async fn event(poller: &SqsQueue, messages: &[(&str, &str)], fifo: bool) -> String {
    let outgoing = messages
        .iter()
        .map(|(id, body)| OutgoingMessage {
            id: MessageId::new(format!("task-1/{id}")),
            body: body.as_bytes().to_vec(),
            delay: Duration::ZERO,
        })
        .collect();
    poller.publish(outgoing).await.unwrap();
    let mut got = Vec::new();
    for _ in 0..10 {
        if got.len() == messages.len() {
            break;
        }
        got.extend(poller.receive(messages.len() - got.len(), VISIBILITY).await.unwrap());
    }
    assert_eq!(got.len(), messages.len());
    let arn = format!("arn:aws:sqs:us-east-1:123456789012:{}", poller.queue_url().name());
    let records: Vec<Value> = got
        .iter()
        .map(|d| {
            let mut attributes = json!({
                "ApproximateReceiveCount": d.delivery_count.to_string(),
                "SentTimestamp": d.published_at.0.to_string(),
                "SenderId": "AIDAIENQZJOLO23YVJ4VO",
                "ApproximateFirstReceiveTimestamp": d.published_at.0.to_string(),
            });
            if fifo {
                attributes["MessageGroupId"] = json!("task-1");
                attributes["MessageDeduplicationId"] = json!(d.id.as_str());
                attributes["SequenceNumber"] = json!("18849496460467696128");
            }
            json!({
                "messageId": format!("sqs-{}", d.id),
                "receiptHandle": d.receipt.0,
                "body": String::from_utf8(d.body.clone()).unwrap(),
                "attributes": attributes,
                "messageAttributes": {
                    "cadre-id": {
                        "stringValue": d.id.as_str(),
                        "stringListValues": [],
                        "binaryListValues": [],
                        "dataType": "String"
                    }
                },
                "md5OfBody": "e4e68fb7bd0e697a0ae8f1bb342846b3",
                "eventSource": "aws:sqs",
                "eventSourceARN": arn,
                "awsRegion": "us-east-1"
            })
        })
        .collect();
    json!({ "Records": records }).to_string()
}

async fn invoke(
    push: &mpsc::UnboundedSender<(String, String)>,
    answers: &mut mpsc::UnboundedReceiver<(String, Answer)>,
    id: &str,
    event: String,
) -> Answer {
    push.send((id.to_owned(), event)).unwrap();
    let (answered, answer) =
        tokio::time::timeout(Duration::from_secs(20), answers.recv()).await.unwrap().unwrap();
    assert_eq!(answered, id);
    answer
}

fn failures(answer: Answer) -> Vec<String> {
    let Answer::Response(value) = answer else { panic!("expected a response, got {answer:?}") };
    let response: BatchResponse = serde_json::from_value(value).unwrap();
    let mut ids: Vec<String> = response
        .batch_item_failures
        .into_iter()
        .map(|ItemFailure { item_identifier }| item_identifier)
        .collect();
    ids.sort();
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqs_batches_through_the_lambda_runtime_api_report_only_failed_records() {
    let (addr, push, mut answers) = runtime_api().await;
    // What Lambda sets for a function; the only test in this binary that runs the runtime.
    std::env::set_var("AWS_LAMBDA_RUNTIME_API", &addr);
    std::env::set_var("AWS_LAMBDA_FUNCTION_NAME", "cadre-test");
    std::env::set_var("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "512");
    std::env::set_var("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST");

    // A standard queue: records run concurrently.
    let url = moto::fresh_queue("lambda", false, 5).await;
    let function_queue = moto::connect(url.clone()).await;
    let poller = moto::connect(url).await;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let runtime = tokio::spawn(cadre_aws::lambda::serve(
        Arc::clone(&function_queue),
        engine_stand_in(Arc::clone(&function_queue), Arc::clone(&seen)),
    ));

    let batch = event(&poller, &[("a", "ack"), ("b", "ack"), ("c", "retry")], false).await;
    let answer = invoke(&push, &mut answers, "req-1", batch).await;
    assert_eq!(failures(answer), ["sqs-task-1/c"], "only the record handed back is reported");
    assert_eq!(
        function_queue.depth().await.unwrap(),
        QueueDepth { ready: 1, pending: 2, dead: 0 },
        "acked records are left for the event source mapping to delete; the retried one is visible again"
    );
    let again = poller.receive(10, VISIBILITY).await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!((again[0].id.as_str(), again[0].delivery_count), ("task-1/c", 2));

    let batch =
        event(&poller, &[("d", "dead"), ("e", "unsettled"), ("f", "panic"), ("g", "ack")], false)
            .await;
    let answer = invoke(&push, &mut answers, "req-2", batch).await;
    assert_eq!(
        failures(answer),
        ["sqs-task-1/e", "sqs-task-1/f"],
        "a record left unsettled or whose handler panicked is retried; a dead letter is not"
    );
    let dead = function_queue.dead_letters(10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(
        (dead[0].id.as_str(), dead[0].reason.as_str()),
        ("task-1/d", "poison: the step cannot use it")
    );
    assert_eq!(dead[0].body, b"dead");

    let answer = invoke(&push, &mut answers, "req-3", r#"{"Records": 5}"#.to_owned()).await;
    let Answer::Error(report) = answer else {
        panic!("an event that is no SQS event is an invocation error: {answer:?}")
    };
    assert!(report.contains("errorMessage"), "the runtime reports why: {report}");
    runtime.abort();
    let _ = runtime.await;
    let mut ran = seen.lock().unwrap().clone();
    ran.sort();
    assert_eq!(
        ran,
        ["task-1/a", "task-1/b", "task-1/c", "task-1/d", "task-1/e", "task-1/f", "task-1/g"]
    );

    // A FIFO queue: records run in order and the first failure stops the batch.
    let url = moto::fresh_queue("lambda-fifo", true, 5).await;
    let function_queue = moto::connect(url.clone()).await;
    let poller = moto::connect(url).await;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let runtime = tokio::spawn(cadre_aws::lambda::serve(
        Arc::clone(&function_queue),
        engine_stand_in(Arc::clone(&function_queue), Arc::clone(&seen)),
    ));
    let batch = event(&poller, &[("1", "ack"), ("2", "retry"), ("3", "ack")], true).await;
    let answer = invoke(&push, &mut answers, "req-4", batch).await;
    assert_eq!(
        failures(answer),
        ["sqs-task-1/2", "sqs-task-1/3"],
        "the failed record and every later one of the batch are reported"
    );
    assert_eq!(
        *seen.lock().unwrap(),
        ["task-1/1", "task-1/2"],
        "nothing runs after a FIFO failure"
    );
    runtime.abort();
    let _ = runtime.await;
}
