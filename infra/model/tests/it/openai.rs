use cadre_domain::ports::model::{
    ChatMessage, FinishReason, Model, ModelError, ModelRequest, TokenUsage,
};
use cadre_testkit::model_server::{ModelServer, Scripted, Wire};
use serde_json::json;

use crate::{ask, dead_port_url, openai_at};

#[tokio::test]
async fn text_reply_and_request_shape() {
    let server = ModelServer::start().await;
    server.push(Scripted::Text("hello back".into()));
    let model = openai_at(&server.base_url(), None);
    let request = ModelRequest {
        messages: vec![
            ChatMessage::user("first"),
            ChatMessage::model("answer"),
            ChatMessage::user("hello"),
        ],
        ..ask("unused")
    };
    let reply = model.complete(&request).await.unwrap();
    assert_eq!(reply.text, "hello back");
    assert_eq!(reply.finish, FinishReason::Stop);
    assert_eq!(reply.model, "llama-test");
    assert_eq!(model.describe(), format!("openai:llama-test@{}/v1", server.base_url()));

    let [captured] = server.requests().try_into().unwrap();
    assert_eq!(captured.wire, Wire::OpenAi);
    assert_eq!(captured.path, "/v1/chat/completions");
    assert_eq!(captured.last_user_text, "hello");
    assert_eq!(captured.system_text, "you are terse");
    assert_eq!(captured.header("authorization"), None);
    assert_eq!(
        captured.body,
        json!({
            "model": "llama-test",
            "messages": [
                {"role": "system", "content": "you are terse"},
                {"role": "user", "content": "first"},
                {"role": "assistant", "content": "answer"},
                {"role": "user", "content": "hello"},
            ],
            "temperature": 0.0,
            "max_tokens": 256,
        })
    );
}

#[tokio::test]
async fn usage_is_mapped_with_cached_and_reasoning_tokens() {
    let server = ModelServer::start().await;
    server.push(Scripted::Status {
        code: 200,
        body: json!({
            "model": "llama-test-q4",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 100, "completion_tokens": 50, "total_tokens": 150,
                      "prompt_tokens_details": {"cached_tokens": 60},
                      "completion_tokens_details": {"reasoning_tokens": 20}},
        }),
    });
    let reply = openai_at(&server.base_url(), None).complete(&ask("hi")).await.unwrap();
    assert_eq!(reply.usage, TokenUsage { input: 100, output: 30, cached: 60, thinking: 20 });
    assert_eq!(reply.model, "llama-test-q4");
}

#[tokio::test]
async fn schema_becomes_response_format() {
    let server = ModelServer::start().await;
    server.push(Scripted::Text("{}".into()));
    let schema = json!({"type": "object"});
    let request = ModelRequest { response_schema: Some(schema.clone()), ..ask("plan") };
    openai_at(&server.base_url(), None).complete(&request).await.unwrap();
    assert_eq!(
        server.requests()[0].body["response_format"],
        json!({"type": "json_schema", "json_schema": {"name": "reply", "schema": schema, "strict": false}})
    );
}

#[tokio::test]
async fn bearer_key_is_sent() {
    let server = ModelServer::start().await;
    server.push(Scripted::Text("ok".into()));
    openai_at(&server.base_url(), Some("sk-local")).complete(&ask("hi")).await.unwrap();
    assert_eq!(server.requests()[0].header("authorization"), Some("Bearer sk-local"));
}

#[tokio::test]
async fn rate_limit_honours_retry_after() {
    let server = ModelServer::start().await;
    server.push(Scripted::Headers {
        headers: vec![("retry-after".into(), "3".into())],
        then: Box::new(Scripted::Status {
            code: 429,
            body: json!({"error": {"message": "Rate limit reached", "type": "requests", "code": "rate_limit_exceeded"}}),
        }),
    });
    let error = openai_at(&server.base_url(), None).complete(&ask("hi")).await.unwrap_err();
    assert_eq!(error, ModelError::RateLimited { retry_after_ms: Some(3_000) });
}

#[tokio::test]
async fn length_is_max_tokens_with_the_cut_text() {
    let server = ModelServer::start().await;
    server.push(Scripted::Finish { text: "cut sho".into(), reason: "length".into() });
    let reply = openai_at(&server.base_url(), None).complete(&ask("hi")).await.unwrap();
    assert_eq!((reply.text.as_str(), reply.finish), ("cut sho", FinishReason::MaxTokens));
}

#[tokio::test]
async fn content_filter_is_blocked() {
    let server = ModelServer::start().await;
    server.push(Scripted::Finish { text: String::new(), reason: "content_filter".into() });
    let error = openai_at(&server.base_url(), None).complete(&ask("hi")).await.unwrap_err();
    assert!(matches!(error, ModelError::Blocked { .. }), "{error:?}");
}

#[tokio::test]
async fn http_errors_map_like_gemini() {
    let server = ModelServer::start().await;
    let model = openai_at(&server.base_url(), None);
    server.push(Scripted::Status {
        code: 404,
        body: json!({"error": {"message": "model 'x' not found"}}),
    });
    server.push(Scripted::Status { code: 500, body: json!({"error": "llama runner crashed"}) });
    assert_eq!(
        model.complete(&ask("hi")).await.unwrap_err(),
        ModelError::Rejected { status: 404, message: "model 'x' not found".into() }
    );
    assert_eq!(
        model.complete(&ask("hi")).await.unwrap_err(),
        ModelError::ServerError { status: 500, message: "llama runner crashed".into() }
    );
}

#[tokio::test]
async fn connection_refused_is_unreachable() {
    let error = openai_at(&dead_port_url(), None).complete(&ask("hi")).await.unwrap_err();
    assert!(matches!(error, ModelError::Unreachable { .. }), "{error:?}");
}

#[tokio::test]
async fn responder_overrides_the_script() {
    let server = ModelServer::start().await;
    server.push(Scripted::Text("from the script".into()));
    server.respond_with(|request| Scripted::Text(format!("echo: {}", request.last_user_text)));
    let reply = openai_at(&server.base_url(), None).complete(&ask("ping")).await.unwrap();
    assert_eq!(reply.text, "echo: ping");
}
