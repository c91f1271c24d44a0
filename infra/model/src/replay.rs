//! Record and replay of model traffic, so step tests and offline runs answer exactly as a real model did.
//!
//! A transcript is a JSONL file, one `{"key", "request", "reply"}` object per line. The key is a hex
//! SHA-256 of a canonical JSON of the request fields that decide the answer (system, messages with their
//! tool calls, tool results and thought signatures, schema, temperature, output cap, and the tools, tool
//! mode and thinking level when set); `purpose` is left out, so renaming a step does not invalidate
//! transcripts. Fields at their defaults are left out of the key too, so transcripts recorded before tools
//! existed keep their keys. The reply's tool calls are recorded with it and replayed verbatim.
//! A key recorded several times (a retried call) is replayed in recorded order, then its last reply repeats.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use cadre_domain::ports::model::{Model, ModelError, ModelReply, ModelRequest};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The replay key of a request: a hex SHA-256 over the fields that determine the answer.
#[must_use]
pub fn request_key(request: &ModelRequest) -> String {
    let mut fields = serde_json::json!({
        "system": request.system,
        "messages": request.messages,
        "response_schema": request.response_schema,
        "temperature": request.temperature,
        "max_output_tokens": request.max_output_tokens,
    });
    if !request.tools.is_empty() {
        fields["tools"] = serde_json::json!(request.tools);
    }
    if !request.tool_mode.is_auto() {
        fields["tool_mode"] = serde_json::json!(request.tool_mode);
    }
    if let Some(thinking) = request.thinking {
        fields["thinking"] = serde_json::json!(thinking);
    }
    let mut canonical = String::new();
    write_canonical(&fields, &mut canonical);
    let digest = Sha256::digest(canonical.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Compact JSON with object keys sorted at every level, whatever map type `serde_json` was built with,
/// so the key does not depend on field order in a schema.
fn write_canonical(value: &serde_json::Value, out: &mut String) {
    match value {
        serde_json::Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (key, value)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&serde_json::Value::String(key.clone()).to_string());
                out.push(':');
                write_canonical(value, out);
            }
            out.push('}');
        }
        serde_json::Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

/// One transcript line as written.
#[derive(Serialize)]
struct RecordOut<'a> {
    key: &'a str,
    request: &'a ModelRequest,
    reply: &'a ModelReply,
}

/// One transcript line as read: `key` may be left out of a hand-written line and is then computed.
#[derive(Deserialize)]
struct RecordIn {
    key: Option<String>,
    request: Option<ModelRequest>,
    reply: ModelReply,
}

/// Wraps a model and appends every successful exchange to a transcript; errors are not recorded,
/// so a replayed run sees only the answers that eventually came.
pub struct RecordingModel {
    inner: Arc<dyn Model>,
    path: PathBuf,
    file: Mutex<File>,
}

impl RecordingModel {
    /// Opens `path` for appending (creating it), so several runs can add to one transcript.
    ///
    /// # Errors
    /// [`ModelError::NotConfigured`] when the file cannot be opened.
    pub fn new(
        inner: Arc<dyn Model>,
        path: impl Into<PathBuf>,
    ) -> Result<RecordingModel, ModelError> {
        let path = path.into();
        let file = OpenOptions::new().create(true).append(true).open(&path).map_err(|e| {
            ModelError::NotConfigured {
                hint: format!(
                    "cannot open the recording file {}: {e}; check that its directory exists and is writable",
                    path.display()
                ),
            }
        })?;
        Ok(RecordingModel { inner, path, file: Mutex::new(file) })
    }

    fn append(&self, request: &ModelRequest, reply: &ModelReply) -> Result<(), ModelError> {
        let key = request_key(request);
        let mut line = serde_json::to_string(&RecordOut { key: &key, request, reply })
            .map_err(|e| self.write_error(&e.to_string()))?;
        line.push('\n');
        // One write per line under the lock, so concurrent calls never interleave their lines.
        let mut file = self.file.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        file.write_all(line.as_bytes())
            .and_then(|()| file.flush())
            .map_err(|e| self.write_error(&e.to_string()))
    }

    fn write_error(&self, cause: &str) -> ModelError {
        ModelError::NotConfigured {
            hint: format!(
                "cannot append to the recording file {}: {cause}; check free disk space and permissions",
                self.path.display()
            ),
        }
    }
}

impl std::fmt::Debug for RecordingModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordingModel")
            .field("inner", &self.inner.describe())
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl Model for RecordingModel {
    async fn complete(&self, request: &ModelRequest) -> Result<ModelReply, ModelError> {
        let reply = self.inner.complete(request).await?;
        self.append(request, &reply)?;
        Ok(reply)
    }

    async fn stream(
        &self,
        request: &ModelRequest,
        on_text: &(dyn for<'t> Fn(&'t str) + Send + Sync),
    ) -> Result<ModelReply, ModelError> {
        let reply = self.inner.stream(request, on_text).await?;
        self.append(request, &reply)?;
        Ok(reply)
    }

    async fn count_tokens(&self, request: &ModelRequest) -> Result<u64, ModelError> {
        self.inner.count_tokens(request).await
    }

    fn describe(&self) -> String {
        format!("{} (recording to {})", self.inner.describe(), self.path.display())
    }
}

/// Answers requests from a transcript written by [`RecordingModel`], without any network.
#[derive(Debug)]
pub struct ReplayModel {
    path: PathBuf,
    /// Per key: the recorded replies in order, and how many have been handed out.
    replies: Mutex<HashMap<String, (Vec<ModelReply>, usize)>>,
}

impl ReplayModel {
    /// Loads the whole transcript.
    ///
    /// # Errors
    /// [`ModelError::NotConfigured`] when the file cannot be read or a line is not a transcript record
    /// (the message names the line).
    pub fn open(path: impl AsRef<Path>) -> Result<ReplayModel, ModelError> {
        let path = path.as_ref().to_path_buf();
        let text = std::fs::read_to_string(&path).map_err(|e| ModelError::NotConfigured {
            hint: format!(
                "cannot read the replay file {}: {e}; record one with CADRE_RECORD=1 or fix the path",
                path.display()
            ),
        })?;
        let mut replies: HashMap<String, (Vec<ModelReply>, usize)> = HashMap::new();
        for (index, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let bad_line = |why: String| ModelError::NotConfigured {
                hint: format!(
                    "line {} of the replay file {} is not a transcript record: {why}; \
                     expected {{\"key\", \"request\", \"reply\"}}",
                    index + 1,
                    path.display()
                ),
            };
            let record: RecordIn =
                serde_json::from_str(line).map_err(|e| bad_line(e.to_string()))?;
            let key = match (record.key, &record.request) {
                (Some(key), _) => key,
                (None, Some(request)) => request_key(request),
                (None, None) => {
                    return Err(bad_line("it has neither a key nor a request".to_owned()))
                }
            };
            replies.entry(key).or_default().0.push(record.reply);
        }
        Ok(ReplayModel { path, replies: Mutex::new(replies) })
    }
}

#[async_trait]
impl Model for ReplayModel {
    async fn complete(&self, request: &ModelRequest) -> Result<ModelReply, ModelError> {
        let key = request_key(request);
        let mut replies = self.replies.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some((recorded, served)) = replies.get_mut(&key) else {
            return Err(ModelError::ReplayMiss { key, file: self.path.display().to_string() });
        };
        let Some(reply) = recorded.get((*served).min(recorded.len().saturating_sub(1))) else {
            return Err(ModelError::ReplayMiss { key, file: self.path.display().to_string() });
        };
        *served += 1;
        Ok(reply.clone())
    }

    fn describe(&self) -> String {
        format!("replay:{}", self.path.display())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cadre_domain::ports::model::{CachePolicy, ChatMessage};

    fn request() -> ModelRequest {
        ModelRequest {
            purpose: "plan".into(),
            system: "s".into(),
            messages: vec![ChatMessage::user("u")],
            response_schema: Some(
                serde_json::json!({"type": "object", "properties": {"b": {}, "a": {}}}),
            ),
            temperature: Some(0.2),
            max_output_tokens: Some(10),
            task: None,
            template: None,
            cache: CachePolicy::Use,
            ..Default::default()
        }
    }

    #[test]
    fn key_ignores_purpose_but_not_the_prompt() {
        let base = request_key(&request());
        assert_eq!(base.len(), 64);
        assert!(base.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(request_key(&ModelRequest { purpose: "review".into(), ..request() }), base);
        assert_ne!(request_key(&ModelRequest { system: "t".into(), ..request() }), base);
        assert_ne!(request_key(&ModelRequest { temperature: None, ..request() }), base);
        assert_ne!(request_key(&ModelRequest { max_output_tokens: Some(11), ..request() }), base);
        assert_ne!(request_key(&ModelRequest { response_schema: None, ..request() }), base);
    }

    #[test]
    fn key_covers_tools_calls_results_and_signatures_but_old_keys_stay() {
        use cadre_domain::ports::model::{ThinkingLevel, ToolCall, ToolMode, ToolResult, ToolSpec};
        // A request without tools has the key it had before tools existed: pinned here.
        assert_eq!(
            request_key(&request()),
            "0ff1fd20c731a5b40639543384db95f2a8a4032c4c20f08a2ab45c3626f7c1dd"
        );
        let base = request_key(&request());
        let tool = ToolSpec {
            name: "t".into(),
            description: "d".into(),
            parameters: serde_json::json!({}),
        };
        let with_tools = ModelRequest { tools: vec![tool], ..request() };
        assert_ne!(request_key(&with_tools), base);
        let required = ModelRequest { tool_mode: ToolMode::Required, ..with_tools.clone() };
        assert_ne!(request_key(&required), request_key(&with_tools));
        assert_ne!(
            request_key(&ModelRequest { thinking: Some(ThinkingLevel::Low), ..request() }),
            base
        );
        let answered = |response: serde_json::Value, signature: Option<&str>| {
            let mut r = request();
            r.messages.push(ChatMessage {
                thought_signature: signature.map(Into::into),
                tool_calls: vec![ToolCall {
                    id: None,
                    name: "t".into(),
                    args: serde_json::json!({}),
                    thought_signature: None,
                }],
                ..ChatMessage::model("")
            });
            r.messages.push(ChatMessage::tool_results(vec![ToolResult {
                id: None,
                name: "t".into(),
                response,
            }]));
            request_key(&r)
        };
        assert_ne!(
            answered(serde_json::json!({"a": 1}), None),
            answered(serde_json::json!({"a": 2}), None)
        );
        assert_ne!(
            answered(serde_json::json!({"a": 1}), None),
            answered(serde_json::json!({"a": 1}), Some("s"))
        );
    }

    #[test]
    fn canonical_json_sorts_keys_at_every_level() {
        let mut out = String::new();
        write_canonical(&serde_json::json!({"b": [{"d": 1, "c": "x\"y"}], "a": null}), &mut out);
        assert_eq!(out, r#"{"a":null,"b":[{"c":"x\"y","d":1}]}"#);
    }
}
