use std::time::Duration;

use cadre_domain::ports::model::{FinishReason, Model, ModelError, TokenUsage};
use cadre_testkit::model_server::{ModelServer, Scripted, Wire};
use serde_json::json;

use crate::{ask, dead_port_url, gemini_at};

const TIMEOUT: Duration = Duration::from_secs(10);

async fn call_with(
    server: &ModelServer,
    scripted: Scripted,
) -> Result<cadre_domain::ports::model::ModelReply, ModelError> {
    server.push(scripted);
    gemini_at(&server.base_url(), TIMEOUT).complete(&ask("hello")).await
}

fn rpc_error(code: u16, status: &str, message: &str) -> Scripted {
    Scripted::Status {
        code,
        body: json!({"error": {"code": code, "message": message, "status": status}}),
    }
}

#[tokio::test]
async fn text_reply_maps_text_usage_and_finish() {
    let server = ModelServer::start().await;
    server.push(Scripted::Status {
        code: 200,
        body: json!({
            "candidates": [{"content": {"role": "model", "parts": [{"text": "Hi "}, {"text": "there"}]},
                            "finishReason": "STOP"}],
            "usageMetadata": {"promptTokenCount": 12, "candidatesTokenCount": 3, "cachedContentTokenCount": 8,
                              "thoughtsTokenCount": 40, "totalTokenCount": 55},
            "modelVersion": "gemini-test-001",
        }),
    });
    let model = gemini_at(&server.base_url(), TIMEOUT);
    let reply = model.complete(&ask("hello")).await.unwrap();
    assert_eq!(reply.text, "Hi there");
    assert_eq!(reply.finish, FinishReason::Stop);
    assert_eq!(reply.usage, TokenUsage { input: 12, output: 3, cached: 8, thinking: 40 });
    assert_eq!(reply.model, "gemini-test-001");
    assert_eq!(model.describe(), "gemini:gemini-test");

    let [request] = server.requests().try_into().unwrap();
    assert_eq!(request.wire, Wire::Gemini);
    assert_eq!(request.path, "/v1beta/models/gemini-test:generateContent");
    assert_eq!(request.last_user_text, "hello");
    assert_eq!(request.system_text, "you are terse");
    assert_eq!(request.body["contents"], json!([{"role": "user", "parts": [{"text": "hello"}]}]));
    assert_eq!(
        request.body["generationConfig"],
        json!({"temperature": 0.0, "maxOutputTokens": 256})
    );
}

#[tokio::test]
async fn scripted_text_reply_has_plausible_usage() {
    let server = ModelServer::start().await;
    let reply =
        call_with(&server, Scripted::Text("a reply of 24 characters".into())).await.unwrap();
    assert_eq!(reply.text, "a reply of 24 characters");
    assert_eq!(reply.usage.output, 6);
    assert!(reply.usage.input > 0, "{:?}", reply.usage);
}

#[tokio::test]
async fn structured_call_sends_mime_type_and_schema() {
    let server = ModelServer::start().await;
    server.push(Scripted::Text(r#"{"steps": []}"#.into()));
    let schema = json!({"type": "object", "properties": {"steps": {"type": "array"}}});
    let request = cadre_domain::ports::model::ModelRequest {
        response_schema: Some(schema.clone()),
        ..ask("plan")
    };
    let reply = gemini_at(&server.base_url(), TIMEOUT).complete(&request).await.unwrap();
    assert_eq!(reply.text, r#"{"steps": []}"#);
    let config = &server.requests()[0].body["generationConfig"];
    assert_eq!(config["responseMimeType"], "application/json");
    assert_eq!(config["responseSchema"], schema);
}

#[tokio::test]
async fn api_key_goes_in_the_header_not_the_url() {
    let server = ModelServer::start().await;
    call_with(&server, Scripted::Text("ok".into())).await.unwrap();
    let request = &server.requests()[0];
    assert_eq!(request.header("x-goog-api-key"), Some("test-key-123"));
    assert!(!request.path.contains("test-key-123"));
}

#[tokio::test]
async fn rate_limit_carries_the_retry_info_delay() {
    let server = ModelServer::start().await;
    let error = call_with(
        &server,
        Scripted::Status {
            code: 429,
            body: json!({"error": {"code": 429, "status": "RESOURCE_EXHAUSTED", "message": "quota exceeded",
                "details": [
                    {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": []},
                    {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "13s"},
                ]}}),
        },
    )
    .await
    .unwrap_err();
    assert_eq!(error, ModelError::RateLimited { retry_after_ms: Some(13_000) });
    assert!(error.is_retryable());
}

#[tokio::test]
async fn rate_limit_falls_back_to_the_retry_after_header() {
    let server = ModelServer::start().await;
    let scripted = Scripted::Headers {
        headers: vec![("Retry-After".into(), "2".into())],
        then: Box::new(rpc_error(429, "RESOURCE_EXHAUSTED", "slow down")),
    };
    let error = call_with(&server, scripted).await.unwrap_err();
    assert_eq!(error, ModelError::RateLimited { retry_after_ms: Some(2_000) });
}

#[tokio::test]
async fn server_error_keeps_the_providers_message() {
    let server = ModelServer::start().await;
    let error = call_with(&server, rpc_error(503, "UNAVAILABLE", "the model is overloaded"))
        .await
        .unwrap_err();
    assert_eq!(
        error,
        ModelError::ServerError { status: 503, message: "the model is overloaded".into() }
    );
    assert!(error.is_retryable());
}

#[tokio::test]
async fn bad_request_is_rejected_with_the_message() {
    let server = ModelServer::start().await;
    let error = call_with(&server, rpc_error(400, "INVALID_ARGUMENT", "API key not valid"))
        .await
        .unwrap_err();
    assert_eq!(error, ModelError::Rejected { status: 400, message: "API key not valid".into() });
    assert!(!error.is_retryable());
}

#[tokio::test]
async fn safety_finish_is_blocked() {
    let server = ModelServer::start().await;
    let error =
        call_with(&server, Scripted::Finish { text: String::new(), reason: "SAFETY".into() })
            .await
            .unwrap_err();
    assert!(
        matches!(&error, ModelError::Blocked { reason } if reason.contains("SAFETY")),
        "{error:?}"
    );
}

#[tokio::test]
async fn prompt_feedback_block_reason_is_blocked() {
    let server = ModelServer::start().await;
    let scripted = Scripted::Status {
        code: 200,
        body: json!({"promptFeedback": {"blockReason": "PROHIBITED_CONTENT"}, "usageMetadata": {"promptTokenCount": 5}}),
    };
    let error = call_with(&server, scripted).await.unwrap_err();
    assert!(
        matches!(&error, ModelError::Blocked { reason } if reason.contains("PROHIBITED_CONTENT")),
        "{error:?}"
    );
}

#[tokio::test]
async fn max_tokens_returns_the_cut_text() {
    let server = ModelServer::start().await;
    let reply = call_with(
        &server,
        Scripted::Finish { text: "half a sen".into(), reason: "MAX_TOKENS".into() },
    )
    .await
    .unwrap();
    assert_eq!(reply.text, "half a sen");
    assert_eq!(reply.finish, FinishReason::MaxTokens);
}

#[tokio::test]
async fn max_tokens_without_any_text_is_malformed() {
    let server = ModelServer::start().await;
    let error =
        call_with(&server, Scripted::Finish { text: String::new(), reason: "MAX_TOKENS".into() })
            .await
            .unwrap_err();
    assert!(
        matches!(&error, ModelError::MalformedReply { reason } if reason.contains("max_output_tokens")),
        "{error:?}"
    );
}

#[tokio::test]
async fn empty_candidates_are_malformed() {
    let server = ModelServer::start().await;
    let scripted = Scripted::Status { code: 200, body: json!({"candidates": []}) };
    let error = call_with(&server, scripted).await.unwrap_err();
    assert!(matches!(error, ModelError::MalformedReply { .. }), "{error:?}");
}

#[tokio::test]
async fn non_json_body_is_malformed() {
    let server = ModelServer::start().await;
    let scripted = Scripted::Raw {
        code: 200,
        content_type: "text/html".into(),
        body: "<html>gateway says hi</html>".into(),
    };
    let error = call_with(&server, scripted).await.unwrap_err();
    assert!(
        matches!(&error, ModelError::MalformedReply { reason } if reason.contains("not JSON") && reason.contains("<html>")),
        "{error:?}"
    );
}

#[tokio::test]
async fn connection_refused_is_unreachable() {
    let url = dead_port_url();
    let error = gemini_at(&url, TIMEOUT).complete(&ask("hello")).await.unwrap_err();
    let ModelError::Unreachable { endpoint, reason } = &error else {
        panic!("expected Unreachable, got {error:?}")
    };
    assert_eq!(endpoint, &format!("{url}/v1beta/models/gemini-test:generateContent"));
    assert!(!reason.is_empty());
    assert!(error.is_retryable());
}

#[tokio::test]
async fn a_reply_slower_than_the_timeout_is_unreachable() {
    let server = ModelServer::start().await;
    server
        .push(Scripted::Delay { millis: 5_000, then: Box::new(Scripted::Text("too late".into())) });
    let model = gemini_at(&server.base_url(), Duration::from_millis(200));
    let error = model.complete(&ask("hello")).await.unwrap_err();
    assert!(
        matches!(&error, ModelError::Unreachable { reason, .. } if reason.contains("200 ms")),
        "{error:?}"
    );
}

#[tokio::test]
async fn errors_never_show_the_key() {
    let server = ModelServer::start().await;
    let error =
        call_with(&server, rpc_error(403, "PERMISSION_DENIED", "denied")).await.unwrap_err();
    assert!(!format!("{error} {error:?}").contains("test-key-123"));
    let model = gemini_at(&server.base_url(), TIMEOUT);
    assert!(!format!("{model:?}").contains("test-key-123"), "{model:?}");
}

#[tokio::test]
async fn an_empty_script_fails_loudly() {
    let server = ModelServer::start().await;
    let error = gemini_at(&server.base_url(), TIMEOUT).complete(&ask("hello")).await.unwrap_err();
    assert!(
        matches!(&error, ModelError::ServerError { status: 500, message } if message.contains("script ran out")),
        "{error:?}"
    );
}

#[tokio::test]
async fn the_v1_path_is_served_too() {
    let server = ModelServer::start().await;
    server.push(Scripted::Text("from v1".into()));
    let client = post_raw(&server.base_url(), "/v1/models/gemini-test:generateContent").await;
    assert_eq!(client["candidates"][0]["content"]["parts"][0]["text"], "from v1");
    assert_eq!(server.requests()[0].path, "/v1/models/gemini-test:generateContent");
}

/// POSTs a minimal Gemini body over a raw TCP connection (the crate's own client only speaks `v1beta`).
async fn post_raw(base_url: &str, path: &str) -> serde_json::Value {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let body = json!({"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}).to_string();
    let host = base_url.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(host).await.unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(body.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let (_, json) = response.split_once("\r\n\r\n").unwrap();
    serde_json::from_str(json).unwrap()
}
