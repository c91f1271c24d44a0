//! Streaming at the wire (Gemini SSE frames, OpenAI chunks and `[DONE]`), and through the gateway:
//! a broken stream is an error, never a partial reply, and the gateway restarts it.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use cadre_domain::ports::model::{
    FinishReason, Model, ModelError, ModelReply, ModelRequest, TokenUsage,
};
use cadre_domain::ports::usage::CallOutcome;
use cadre_testkit::model_server::{ModelServer, Scripted, ScriptedCall};
use serde_json::json;

use crate::gateway::{config, Fixture};
use crate::{ask, gemini_at, openai_at};

const TIMEOUT: Duration = Duration::from_secs(10);

/// Streams `request` through `model`, returning the reply and the pieces handed out.
async fn stream(
    model: &dyn Model,
    request: &ModelRequest,
) -> (Result<ModelReply, ModelError>, Vec<String>) {
    let pieces = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&pieces);
    let on_text = move |text: &str| sink.lock().unwrap().push(text.to_owned());
    let result = model.stream(request, &on_text).await;
    let pieces = pieces.lock().unwrap().clone();
    (result, pieces)
}

#[tokio::test]
async fn gemini_frames_are_concatenated_with_usage_from_the_last() {
    let server = ModelServer::start().await;
    server.push(Scripted::Text("Hello there, streaming world".into()));
    let model = gemini_at(&server.base_url(), TIMEOUT);
    let (reply, pieces) = stream(&model, &ask("hi")).await;
    let reply = reply.unwrap();
    assert_eq!(reply.text, "Hello there, streaming world");
    assert_eq!(pieces.len(), 3, "{pieces:?}");
    assert_eq!(pieces.concat(), reply.text);
    assert_eq!(reply.finish, FinishReason::Stop);
    assert_eq!(reply.usage.output, 7);
    assert!(reply.usage.input > 0);
    let request = &server.requests()[0];
    assert_eq!(request.path, "/v1beta/models/gemini-test:streamGenerateContent");
    assert_eq!(request.query, "alt=sse");
    assert!(request.stream);
}

#[tokio::test]
async fn gemini_streamed_tool_calls_come_whole() {
    let server = ModelServer::start().await;
    server.push(Scripted::ToolCalls {
        text: "reading".into(),
        calls: vec![ScriptedCall {
            thought_signature: Some("c2ln".into()),
            ..ScriptedCall::new("read_file", json!({"path": "a"}))
        }],
    });
    let (reply, _) = stream(&gemini_at(&server.base_url(), TIMEOUT), &ask("hi")).await;
    let reply = reply.unwrap();
    assert_eq!(reply.text, "reading");
    assert_eq!(reply.tool_calls.len(), 1);
    assert_eq!(reply.tool_calls[0].args, json!({"path": "a"}));
    assert_eq!(reply.tool_calls[0].thought_signature.as_deref(), Some("c2ln"));
}

#[tokio::test]
async fn a_gemini_stream_reset_or_cut_before_its_final_frame_is_unreachable() {
    let server = ModelServer::start().await;
    let model = gemini_at(&server.base_url(), TIMEOUT);
    for broken in [
        Scripted::Reset { text: "a long answer cut".into() },
        Scripted::Cut { text: "a long answer cut".into() },
    ] {
        server.push(broken.clone());
        let (result, pieces) = stream(&model, &ask("hi")).await;
        let error = result.unwrap_err();
        assert!(matches!(error, ModelError::Unreachable { .. }), "{broken:?}: {error:?}");
        assert!(error.is_retryable());
        assert!(!pieces.is_empty(), "some text was handed out before the break: {broken:?}");
    }
}

#[tokio::test]
async fn gemini_stream_errors_and_blocks_are_typed() {
    let server = ModelServer::start().await;
    let model = gemini_at(&server.base_url(), TIMEOUT);
    server.push(Scripted::Frames(vec![
        json!({"candidates": [{"content": {"parts": [{"text": "par"}]}}]}).to_string(),
        json!({"error": {"code": 503, "message": "overloaded", "status": "UNAVAILABLE"}})
            .to_string(),
    ]));
    let (result, _) = stream(&model, &ask("hi")).await;
    assert_eq!(
        result.unwrap_err(),
        ModelError::ServerError { status: 503, message: "overloaded".into() }
    );
    server.push(Scripted::Frames(vec![
        json!({"promptFeedback": {"blockReason": "SAFETY"}}).to_string()
    ]));
    let (result, pieces) = stream(&model, &ask("hi")).await;
    assert!(matches!(result, Err(ModelError::Blocked { .. })), "{result:?}");
    assert!(pieces.is_empty());
    server.push(Scripted::Finish { text: "cut at the".into(), reason: "MAX_TOKENS".into() });
    let (result, _) = stream(&model, &ask("hi")).await;
    assert_eq!(result.unwrap().finish, FinishReason::MaxTokens);
    server.push(rpc_429());
    let (result, _) = stream(&model, &ask("hi")).await;
    assert_eq!(result.unwrap_err(), ModelError::RateLimited { retry_after_ms: Some(2_000) });
}

fn rpc_429() -> Scripted {
    Scripted::Status {
        code: 429,
        body: json!({"error": {"code": 429, "status": "RESOURCE_EXHAUSTED", "message": "quota",
            "details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "2s"}]}}),
    }
}

#[tokio::test]
async fn openai_chunks_tool_call_deltas_and_usage() {
    let server = ModelServer::start().await;
    server.push(Scripted::ToolCalls {
        text: "let me see".into(),
        calls: vec![ScriptedCall {
            id: Some("call_1".into()),
            ..ScriptedCall::new("read_file", json!({"path": "src/lib.rs"}))
        }],
    });
    let (reply, pieces) = stream(&openai_at(&server.base_url(), None), &ask("hi")).await;
    let reply = reply.unwrap();
    assert_eq!(pieces.concat(), "let me see");
    assert_eq!(reply.text, "let me see");
    assert_eq!(reply.tool_calls[0].id.as_deref(), Some("call_1"));
    assert_eq!(
        reply.tool_calls[0].args,
        json!({"path": "src/lib.rs"}),
        "arguments arrive in two pieces"
    );
    assert!(reply.usage.input > 0 && reply.usage.output > 0, "{:?}", reply.usage);
    let body = &server.requests()[0].body;
    assert_eq!(
        (body["stream"].clone(), body["stream_options"].clone()),
        (json!(true), json!({"include_usage": true}))
    );
}

#[tokio::test]
async fn an_openai_stream_without_done_is_unreachable() {
    let server = ModelServer::start().await;
    let model = openai_at(&server.base_url(), None);
    server.push(Scripted::Cut { text: "half of it".into() });
    let (result, _) = stream(&model, &ask("hi")).await;
    assert!(
        matches!(result, Err(ModelError::Unreachable { ref reason, .. }) if reason.contains("[DONE]")),
        "{result:?}"
    );
    server.push(Scripted::Reset { text: "half of it".into() });
    let (result, _) = stream(&model, &ask("hi")).await;
    assert!(matches!(result, Err(ModelError::Unreachable { .. })), "{result:?}");
}

#[tokio::test]
async fn a_reset_json_body_is_unreachable_and_a_cut_one_malformed() {
    let server = ModelServer::start().await;
    let model = gemini_at(&server.base_url(), TIMEOUT);
    server.push(Scripted::Reset { text: "whole answer".into() });
    let error = model.complete(&ask("hi")).await.unwrap_err();
    assert!(matches!(error, ModelError::Unreachable { .. }), "{error:?}");
    server.push(Scripted::Cut { text: "whole answer".into() });
    let error = model.complete(&ask("hi")).await.unwrap_err();
    assert!(matches!(error, ModelError::MalformedReply { .. }), "{error:?}");
}

#[tokio::test]
async fn the_gateway_restarts_a_broken_stream_and_accounts_it_once() {
    let server = ModelServer::start().await;
    server.push(Scripted::Reset { text: "the first try breaks".into() });
    server.push(Scripted::Text("the second try works".into()));
    let f = Fixture::at(&server, config());
    let (reply, pieces) = stream(
        &f.gateway,
        &ModelRequest { cache: cadre_domain::ports::model::CachePolicy::Bypass, ..ask("hi") },
    )
    .await;
    let reply = reply.unwrap();
    assert_eq!(reply.text, "the second try works");
    assert!(pieces.concat().ends_with("the second try works"), "{pieces:?}");
    assert_eq!(server.request_count(), 2);
    let row = f.row();
    assert_eq!((row.outcome, row.attempts, row.tokens), (CallOutcome::Ok, 2, reply.usage));
}

#[tokio::test]
async fn a_stream_that_keeps_breaking_ends_in_a_typed_error_with_its_row() {
    let server = ModelServer::start().await;
    server.respond_with(|_| Scripted::Cut { text: "never finished".into() });
    let f = Fixture::at(&server, config());
    let (result, _) = stream(&f.gateway, &ask("hi")).await;
    assert!(matches!(result, Err(ModelError::Unreachable { .. })), "{result:?}");
    let row = f.row();
    assert_eq!(
        (row.outcome.label(), row.attempts, row.tokens),
        ("unreachable", 4, TokenUsage::default())
    );
    assert!(f.cache.is_empty());
}

#[tokio::test]
async fn a_streamed_reply_is_cached_and_a_hit_hands_out_the_whole_text() {
    let server = ModelServer::start().await;
    server.push(Scripted::Text("cache me please".into()));
    let f = Fixture::at(&server, config());
    let (first, _) = stream(&f.gateway, &ask("hi")).await;
    let (second, pieces) = stream(&f.gateway, &ask("hi")).await;
    assert_eq!(server.request_count(), 1);
    assert_eq!(second.unwrap().text, first.unwrap().text);
    assert_eq!(pieces, ["cache me please"]);
    let hits: Vec<_> = f.ledger.records().iter().map(|r| r.cache_hit).collect();
    assert_eq!(hits, [false, true]);
}
