//! Tool calling on the wire, both formats: declarations, modes, parallel calls in order, results sent
//! back, thought signatures echoed byte for byte, and unusable calls as typed errors.

use cadre_domain::ports::model::{
    ChatMessage, FinishReason, Model, ModelError, ModelRequest, ToolCall, ToolMode, ToolResult,
    ToolSpec,
};
use cadre_testkit::model_server::{ModelServer, Scripted, ScriptedCall};
use serde_json::json;

use crate::{ask, gemini_at, openai_at};

const TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

fn read_file() -> ToolSpec {
    ToolSpec {
        name: "read_file".into(),
        description: "Reads a file of the repository".into(),
        parameters: json!({"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]}),
    }
}

fn with_tools(mode: ToolMode) -> ModelRequest {
    ModelRequest { tools: vec![read_file()], tool_mode: mode, ..ask("fix the bug") }
}

fn call(id: Option<&str>, path: &str, signature: Option<&str>) -> ScriptedCall {
    ScriptedCall {
        id: id.map(Into::into),
        name: "read_file".into(),
        args: json!({"path": path}),
        thought_signature: signature.map(Into::into),
    }
}

#[tokio::test]
async fn gemini_parallel_calls_round_trip_with_their_signatures() {
    // Signatures are opaque: one with base64 padding and slashes must come back unchanged.
    let signature = "CpIBAY/+x==";
    let server = ModelServer::start().await;
    server.push(Scripted::ToolCalls {
        text: String::new(),
        calls: vec![call(None, "src/a.rs", Some(signature)), call(Some("c2"), "src/b.rs", None)],
    });
    server.push(Scripted::Text("fixed".into()));
    let model = gemini_at(&server.base_url(), TIMEOUT);
    let mut request = with_tools(ToolMode::Required);
    let first = model.complete(&request).await.unwrap();
    assert_eq!(
        (first.text.as_str(), &first.finish),
        ("", &FinishReason::Stop),
        "calls without text are a success"
    );
    let calls: Vec<_> =
        first.tool_calls.iter().map(|c| (c.id.as_deref(), c.args["path"].clone())).collect();
    assert_eq!(calls, [(None, json!("src/a.rs")), (Some("c2"), json!("src/b.rs"))]);
    assert_eq!(first.tool_calls[0].thought_signature.as_deref(), Some(signature));

    let sent = &server.requests()[0].body;
    assert_eq!(sent["tools"][0]["functionDeclarations"][0]["name"], "read_file");
    assert_eq!(sent["toolConfig"]["functionCallingConfig"]["mode"], "ANY");

    request.messages.push(ChatMessage::from_reply(&first));
    request.messages.push(ChatMessage::tool_results(vec![
        ToolResult { id: None, name: "read_file".into(), response: json!({"text": "fn a() {}"}) },
        ToolResult {
            id: Some("c2".into()),
            name: "read_file".into(),
            response: json!({"error": "not found"}),
        },
    ]));
    assert_eq!(model.complete(&request).await.unwrap().text, "fixed");
    let contents = server.requests()[1].body["contents"].clone();
    assert_eq!(
        contents[1],
        json!({"role": "model", "parts": [
            {"functionCall": {"name": "read_file", "args": {"path": "src/a.rs"}}, "thoughtSignature": signature},
            {"functionCall": {"id": "c2", "name": "read_file", "args": {"path": "src/b.rs"}}},
        ]})
    );
    assert_eq!(
        contents[2],
        json!({"role": "user", "parts": [
            {"functionResponse": {"name": "read_file", "response": {"text": "fn a() {}"}}},
            {"functionResponse": {"id": "c2", "name": "read_file", "response": {"error": "not found"}}},
        ]})
    );
}

#[tokio::test]
async fn gemini_text_signatures_are_echoed_in_the_next_turn() {
    let server = ModelServer::start().await;
    server.push(Scripted::Status {
        code: 200,
        body: json!({"candidates": [{"content": {"role": "model", "parts": [
            {"text": "I will look", "thoughtSignature": "c2lnLXRleHQ="}]}, "finishReason": "STOP"}]}),
    });
    server.push(Scripted::Text("done".into()));
    let model = gemini_at(&server.base_url(), TIMEOUT);
    let mut request = ask("hello");
    let reply = model.complete(&request).await.unwrap();
    assert_eq!(reply.thought_signature.as_deref(), Some("c2lnLXRleHQ="));
    request.messages.push(ChatMessage::from_reply(&reply));
    request.messages.push(ChatMessage::user("go on"));
    model.complete(&request).await.unwrap();
    assert_eq!(
        server.requests()[1].body["contents"][1],
        json!({"role": "model", "parts": [{"text": "I will look", "thoughtSignature": "c2lnLXRleHQ="}]})
    );
}

#[tokio::test]
async fn gemini_modes_and_thinking_level_are_sent() {
    let server = ModelServer::start().await;
    server.respond_with(|_| Scripted::Text("ok".into()));
    let model = gemini_at(&server.base_url(), TIMEOUT);
    for mode in [ToolMode::Auto, ToolMode::None] {
        model.complete(&with_tools(mode)).await.unwrap();
    }
    let thinking = ModelRequest {
        thinking: Some(cadre_domain::ports::model::ThinkingLevel::Minimal),
        ..ask("quick")
    };
    model.complete(&thinking).await.unwrap();
    let requests = server.requests();
    let modes: Vec<_> = requests[..2]
        .iter()
        .map(|r| r.body["toolConfig"]["functionCallingConfig"]["mode"].clone())
        .collect();
    assert_eq!(modes, [json!("AUTO"), json!("NONE")]);
    assert_eq!(
        requests[2].body["generationConfig"]["thinkingConfig"],
        json!({"thinkingLevel": "minimal"})
    );
    assert!(
        requests[2].body.get("tools").is_none() && requests[2].body.get("toolConfig").is_none()
    );
}

#[tokio::test]
async fn gemini_malformed_and_unexpected_tool_calls_are_typed_errors() {
    let server = ModelServer::start().await;
    let model = gemini_at(&server.base_url(), TIMEOUT);
    for reason in ["MALFORMED_FUNCTION_CALL", "UNEXPECTED_TOOL_CALL"] {
        server.push(Scripted::Finish { text: String::new(), reason: reason.into() });
        let error = model.complete(&with_tools(ToolMode::Auto)).await.unwrap_err();
        assert!(
            matches!(&error, ModelError::MalformedToolCall { finish, .. } if finish == reason),
            "{reason}: {error:?}"
        );
        assert!(!error.is_retryable());
    }
}

#[tokio::test]
async fn openai_calls_round_trip_with_string_arguments_and_tool_messages() {
    let server = ModelServer::start().await;
    server.push(Scripted::ToolCalls {
        text: "let me read".into(),
        calls: vec![call(Some("call_a"), "a.rs", None), call(Some("call_b"), "b.rs", None)],
    });
    server.push(Scripted::Text("fixed".into()));
    let model = openai_at(&server.base_url(), None);
    let mut request = with_tools(ToolMode::Required);
    let first = model.complete(&request).await.unwrap();
    assert_eq!(first.text, "let me read");
    assert_eq!(first.finish, FinishReason::Stop);
    let calls: Vec<_> =
        first.tool_calls.iter().map(|c| (c.id.clone().unwrap(), c.args.clone())).collect();
    assert_eq!(
        calls,
        [
            ("call_a".to_owned(), json!({"path": "a.rs"})),
            ("call_b".to_owned(), json!({"path": "b.rs"}))
        ]
    );
    let sent = &server.requests()[0].body;
    assert_eq!(sent["tool_choice"], "required");
    assert_eq!(
        sent["tools"][0],
        json!({"type": "function", "function": {
        "name": "read_file", "description": "Reads a file of the repository", "parameters": read_file().parameters}})
    );

    request.messages.push(ChatMessage::from_reply(&first));
    request.messages.push(ChatMessage::tool_results(vec![
        ToolResult {
            id: Some("call_a".into()),
            name: "read_file".into(),
            response: json!({"text": "A"}),
        },
        ToolResult {
            id: Some("call_b".into()),
            name: "read_file".into(),
            response: json!({"text": "B"}),
        },
    ]));
    model.complete(&request).await.unwrap();
    let messages = server.requests()[1].body["messages"].clone();
    assert_eq!(
        messages[2],
        json!({"role": "assistant", "content": "let me read", "tool_calls": [
            {"id": "call_a", "type": "function", "function": {"name": "read_file", "arguments": "{\"path\":\"a.rs\"}"}},
            {"id": "call_b", "type": "function", "function": {"name": "read_file", "arguments": "{\"path\":\"b.rs\"}"}},
        ]})
    );
    assert_eq!(
        messages[3],
        json!({"role": "tool", "content": "{\"text\":\"A\"}", "tool_call_id": "call_a"})
    );
    assert_eq!(
        messages[4],
        json!({"role": "tool", "content": "{\"text\":\"B\"}", "tool_call_id": "call_b"})
    );
    assert_eq!(messages.as_array().unwrap().len(), 5, "no empty user message after the results");
}

#[tokio::test]
async fn openai_arguments_that_are_not_an_object_are_a_malformed_tool_call() {
    let server = ModelServer::start().await;
    server.push(Scripted::Status {
        code: 200,
        body: json!({"choices": [{"index": 0, "finish_reason": "tool_calls", "message": {"role": "assistant",
            "content": null, "tool_calls": [{"id": "c", "type": "function",
            "function": {"name": "read_file", "arguments": "{\"path\": \"a.rs\""}}]}}]}),
    });
    let error = openai_at(&server.base_url(), None)
        .complete(&with_tools(ToolMode::Auto))
        .await
        .unwrap_err();
    assert!(
        matches!(&error, ModelError::MalformedToolCall { finish, message } if finish == "invalid_arguments" && message.contains("read_file")),
        "{error:?}"
    );
}

#[tokio::test]
async fn a_cached_tool_call_reply_is_never_served_for_other_tool_results() {
    use cadre_model::gateway::cache_key;
    let answered = |result: serde_json::Value| {
        let mut request = with_tools(ToolMode::Auto);
        request.messages.push(ChatMessage {
            tool_calls: vec![ToolCall {
                id: Some("c".into()),
                name: "read_file".into(),
                args: json!({"path": "a"}),
                thought_signature: None,
            }],
            ..ChatMessage::model("")
        });
        request.messages.push(ChatMessage::tool_results(vec![ToolResult {
            id: Some("c".into()),
            name: "read_file".into(),
            response: result,
        }]));
        request
    };
    let ok = answered(json!({"text": "v1"}));
    assert_eq!(cache_key("m", &ok), cache_key("m", &answered(json!({"text": "v1"}))));
    assert_ne!(cache_key("m", &ok), cache_key("m", &answered(json!({"text": "v2"}))));
    assert_ne!(cache_key("m", &ok), cache_key("m", &ModelRequest { tools: vec![], ..ok.clone() }));
}
