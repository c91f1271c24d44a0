//! `countTokens`: Gemini API and Vertex AI body shapes, the OpenAI-compatible local estimate, and the
//! gateway's row for a count.

use cadre_domain::ports::model::{
    estimate_input_tokens, Model, ModelError, ModelRequest, ToolSpec,
};
use cadre_domain::ports::usage::CallOutcome;
use cadre_testkit::model_server::{ModelServer, Scripted};
use serde_json::json;

use crate::gateway::{config, Fixture};
use crate::{ask, gemini_at, openai_at, vertex_at};

fn request() -> ModelRequest {
    ModelRequest {
        tools: vec![ToolSpec {
            name: "grep".into(),
            description: "searches".into(),
            parameters: json!({"type": "object"}),
        }],
        ..ask("count every token of this")
    }
}

#[tokio::test]
async fn gemini_api_counts_the_whole_generate_content_request() {
    let server = ModelServer::start().await;
    let model = gemini_at(&server.base_url(), std::time::Duration::from_secs(10));
    let tokens = model.count_tokens(&request()).await.unwrap();
    assert!(tokens > 5, "{tokens}");
    assert_eq!(server.request_count(), 0, "a count is not a model call");
    let [sent] = server.side_requests().try_into().unwrap();
    assert_eq!(sent.path, "/v1beta/models/gemini-test:countTokens");
    let inner = &sent.body["generateContentRequest"];
    assert_eq!(inner["model"], "models/gemini-test");
    assert_eq!(inner["systemInstruction"]["parts"][0]["text"], "you are terse");
    assert_eq!(inner["tools"][0]["functionDeclarations"][0]["name"], "grep");
    assert_eq!(inner["contents"][0]["parts"][0]["text"], "count every token of this");
}

#[tokio::test]
async fn vertex_counts_with_the_fields_at_the_top() {
    let server = ModelServer::start().await;
    let model = vertex_at(&server);
    model.count_tokens(&request()).await.unwrap();
    let sent =
        server.side_requests().into_iter().find(|r| r.path.ends_with(":countTokens")).unwrap();
    assert_eq!(
        sent.path,
        "/v1/projects/test-project/locations/us-central1/publishers/google/models/gemini-test:countTokens"
    );
    assert_eq!(sent.body["systemInstruction"]["parts"][0]["text"], "you are terse");
    assert!(sent.body.get("generateContentRequest").is_none());
    assert!(sent.body["contents"].is_array() && sent.body["tools"].is_array());
}

#[tokio::test]
async fn count_errors_map_like_calls_and_a_missing_total_is_malformed() {
    let server = ModelServer::start().await;
    let model = gemini_at(&server.base_url(), std::time::Duration::from_secs(10));
    server.push_side(Scripted::Status {
        code: 400,
        body: json!({"error": {"code": 400, "message": "bad", "status": "INVALID_ARGUMENT"}}),
    });
    assert_eq!(
        model.count_tokens(&request()).await.unwrap_err(),
        ModelError::Rejected { status: 400, message: "bad".into() }
    );
    server.push_side(Scripted::Status { code: 200, body: json!({}) });
    assert!(matches!(model.count_tokens(&request()).await, Err(ModelError::MalformedReply { .. })));
}

#[tokio::test]
async fn openai_compatible_servers_get_the_local_estimate_without_a_request() {
    let server = ModelServer::start().await;
    let tokens = openai_at(&server.base_url(), None).count_tokens(&request()).await.unwrap();
    assert_eq!(tokens, estimate_input_tokens(&request()));
    assert_eq!(server.request_count() + server.side_requests().len(), 0);
}

#[tokio::test]
async fn the_gateway_retries_a_count_and_records_one_row_without_cost() {
    let server = ModelServer::start().await;
    server.push_side(Scripted::Status {
        code: 503,
        body: json!({"error": {"code": 503, "message": "busy", "status": "UNAVAILABLE"}}),
    });
    let f = Fixture::at(&server, config());
    let task = cadre_domain::TaskId::generate();
    let tokens = f
        .gateway
        .count_tokens(&ModelRequest { task: Some(task.clone()), ..request() })
        .await
        .unwrap();
    assert!(tokens > 0);
    let row = f.row();
    assert_eq!(
        (row.outcome, row.attempts, row.cost_micros, row.cache_hit),
        (CallOutcome::Ok, 2, 0, false)
    );
    assert_eq!((row.task, row.tokens.total()), (Some(task), 0));
    // Counting twice asks twice: counts are not cached.
    f.gateway.count_tokens(&request()).await.unwrap();
    assert_eq!(server.side_requests().len(), 3);
}
