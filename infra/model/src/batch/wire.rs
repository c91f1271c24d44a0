//! One batch item as a `GenerateContentRequest`, and its `GenerateContentResponse` back as the port's
//! answer. A batch item is exactly the request and reply the Gemini provider sends and reads, so this
//! module only adapts the provider's own wire code (`gemini::wire`) to the batch's JSON values: one
//! set of rules for tool calls, `thoughtSignature`s, blocked prompts and malformed replies.

use cadre_domain::ports::model::{ModelError, ModelReply, ModelRequest, TokenUsage};
use serde_json::Value;

use crate::gemini::wire::{self as gemini, GenerateContentResponse};

/// The `GenerateContentRequest` of one item, in camelCase as the API documents it.
pub(super) fn generate_request(request: &ModelRequest) -> Value {
    // Serializing a struct of strings, numbers and JSON values cannot fail; `Null` would be refused
    // by the API item by item, never silently accepted.
    serde_json::to_value(gemini::generate_request(request)).unwrap_or(Value::Null)
}

/// The tokens a response billed (also when its answer is an error) and the answer.
pub(super) fn interpret(
    response: Value,
    model: &str,
) -> (TokenUsage, Result<ModelReply, ModelError>) {
    let response: GenerateContentResponse = match serde_json::from_value(response) {
        Ok(response) => response,
        Err(e) => {
            let reason = format!("a batch response does not match GenerateContentResponse ({e})");
            return (TokenUsage::default(), Err(ModelError::MalformedReply { reason }));
        }
    };
    (gemini::billed(&response), gemini::interpret(response, model))
}

#[cfg(test)]
mod tests {
    use super::*;
    use cadre_domain::ports::model::{
        ChatMessage, Role, ThinkingLevel, ToolCall, ToolMode, ToolResult, ToolSpec,
    };
    use serde_json::json;

    #[test]
    fn requests_carry_tools_signatures_and_settings() {
        let request = ModelRequest {
            system: "be brief".into(),
            messages: vec![
                ChatMessage::user("read it"),
                ChatMessage {
                    role: Role::Model,
                    text: String::new(),
                    thought_signature: None,
                    tool_calls: vec![ToolCall {
                        id: Some("c1".into()),
                        name: "read_file".into(),
                        args: json!({"path": "a.rs"}),
                        thought_signature: Some("sig-1".into()),
                    }],
                    tool_results: vec![],
                },
                ChatMessage::tool_results(vec![ToolResult {
                    id: Some("c1".into()),
                    name: "read_file".into(),
                    response: json!("fn main() {}"),
                }]),
            ],
            tools: vec![ToolSpec {
                name: "read_file".into(),
                description: "reads".into(),
                parameters: json!({"type": "object"}),
            }],
            tool_mode: ToolMode::Required,
            thinking: Some(ThinkingLevel::Low),
            max_output_tokens: Some(64),
            ..ModelRequest::default()
        };
        assert_eq!(
            generate_request(&request),
            json!({
                "systemInstruction": {"parts": [{"text": "be brief"}]},
                "contents": [
                    {"role": "user", "parts": [{"text": "read it"}]},
                    {"role": "model", "parts": [{"functionCall": {"id": "c1", "name": "read_file",
                        "args": {"path": "a.rs"}}, "thoughtSignature": "sig-1"}]},
                    {"role": "user", "parts": [{"functionResponse": {"id": "c1", "name": "read_file",
                        "response": {"result": "fn main() {}"}}}]},
                ],
                "tools": [{"functionDeclarations": [{"name": "read_file", "description": "reads",
                    "parameters": {"type": "object"}}]}],
                "toolConfig": {"functionCallingConfig": {"mode": "ANY"}},
                "generationConfig": {"maxOutputTokens": 64, "thinkingConfig": {"thinkingLevel": "low"}},
            })
        );
    }

    #[test]
    fn responses_keep_calls_and_signatures_and_usage_survives_errors() {
        let (usage, reply) = interpret(
            json!({"candidates": [{"content": {"parts": [
                {"text": "thinking", "thought": true},
                {"text": "Let me look.", "thoughtSignature": "sig-t"},
                {"functionCall": {"id": "c9", "name": "grep", "args": {"q": "x"}}, "thoughtSignature": "sig-c"},
            ]}, "finishReason": "STOP"}],
             "usageMetadata": {"promptTokenCount": 10, "candidatesTokenCount": 3, "thoughtsTokenCount": 5}}),
            "m",
        );
        let reply = reply.unwrap();
        assert_eq!(
            (reply.text.as_str(), reply.thought_signature.as_deref()),
            ("Let me look.", Some("sig-t"))
        );
        assert_eq!(reply.tool_calls[0].thought_signature.as_deref(), Some("sig-c"));
        assert_eq!(usage, TokenUsage { input: 10, output: 3, cached: 0, thinking: 5 });

        let (usage, blocked) = interpret(
            json!({"candidates": [{"finishReason": "SAFETY"}], "usageMetadata": {"promptTokenCount": 7}}),
            "m",
        );
        assert!(matches!(blocked, Err(ModelError::Blocked { .. })), "{blocked:?}");
        assert_eq!(usage.input, 7);
        let (_, bad_args) = interpret(
            json!({"candidates": [{"content": {"parts": [{"functionCall": {"name": "f", "args": [1]}}]},
                   "finishReason": "STOP"}]}),
            "m",
        );
        assert!(matches!(bad_args, Err(ModelError::MalformedToolCall { .. })), "{bad_args:?}");
    }
}
