//! The batch job's long-running operation, as `batchGenerateContent` and `GET /v1beta/batches/{id}`
//! return it, and what it says about the job and each of its requests.
//!
//! Shape: `{"name": "batches/…", "metadata": {"@type": "…GenerateContentBatch", "state":
//! "BATCH_STATE_RUNNING", "output": {…}}, "done": bool, "error": Status, "response": {"@type":
//! "…GenerateContentBatchOutput", "inlinedResponses": {"inlinedResponses": [{"metadata": {"key": …},
//! "response": GenerateContentResponse} | {"metadata": …, "error": Status}]}}}`. The inlined responses
//! are read from `response` or, failing that, `metadata.output`; a cancelled operation is `done` with
//! an `error` of code 1 (`CANCELLED`).

use cadre_domain::ports::model::ModelError;
use serde::Deserialize;
use serde_json::Value;

/// `google.rpc.Code` values that matter here.
const CODE_CANCELLED: i64 = 1;
const CODE_RESOURCE_EXHAUSTED: i64 = 8;

#[derive(Debug, Deserialize)]
pub(super) struct Operation {
    pub(super) name: Option<String>,
    #[serde(default)]
    done: bool,
    metadata: Option<Metadata>,
    error: Option<Status>,
    response: Option<Output>,
}

#[derive(Debug, Deserialize)]
struct Metadata {
    name: Option<String>,
    state: Option<String>,
    output: Option<Output>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Output {
    inlined_responses: Option<InlinedResponses>,
    responses_file: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct InlinedResponses {
    #[serde(default)]
    inlined_responses: Vec<InlinedResponse>,
}

/// One request's outcome inside a finished job.
#[derive(Debug, Deserialize)]
pub(super) struct InlinedResponse {
    metadata: Option<Value>,
    error: Option<Status>,
    pub(super) response: Option<Value>,
}

/// A `google.rpc.Status`.
#[derive(Debug, Clone, Deserialize)]
pub(super) struct Status {
    code: Option<i64>,
    message: Option<String>,
    status: Option<String>,
}

/// Where a job stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum JobState {
    /// Pending, running, or being cancelled: poll again.
    Running,
    /// Done; the responses are in the operation.
    Succeeded,
    /// Done without responses, with the provider's message.
    Failed(String),
    /// Cancelled (by this client or anyone else).
    Cancelled,
    /// Dropped by the provider for taking too long (48 hours).
    Expired,
}

impl Operation {
    /// The job's resource name, `batches/{id}`.
    pub(super) fn job_name(&self) -> Option<&str> {
        self.name.as_deref().or_else(|| self.metadata.as_ref()?.name.as_deref())
    }

    /// The provider's state, as `BATCH_STATE_*` (Gemini API) or `JOB_STATE_*` (Vertex, SDKs).
    pub(super) fn state_label(&self) -> &str {
        self.metadata.as_ref().and_then(|m| m.state.as_deref()).unwrap_or("BATCH_STATE_UNSPECIFIED")
    }

    pub(super) fn state(&self) -> JobState {
        let label = self.state_label();
        let state = label
            .strip_prefix("BATCH_STATE_")
            .or_else(|| label.strip_prefix("JOB_STATE_"))
            .unwrap_or(label);
        let error_message =
            || self.error.as_ref().map_or_else(|| format!("state {label}"), Status::describe);
        match state {
            "SUCCEEDED" | "PARTIALLY_SUCCEEDED" => JobState::Succeeded,
            "FAILED" => JobState::Failed(error_message()),
            "CANCELLED" => JobState::Cancelled,
            "EXPIRED" => JobState::Expired,
            _ if !self.done => JobState::Running,
            // Done without a state we know: the result decides.
            _ => match &self.error {
                Some(e) if e.code == Some(CODE_CANCELLED) => JobState::Cancelled,
                Some(e) => JobState::Failed(e.describe()),
                None => JobState::Succeeded,
            },
        }
    }

    /// The per-request outcomes of a finished job, in request order.
    pub(super) fn responses(self) -> Result<Vec<InlinedResponse>, String> {
        let metadata_output = self.metadata.and_then(|m| m.output);
        let outputs = [self.response, metadata_output];
        let mut file = None;
        for output in outputs.into_iter().flatten() {
            if let Some(inlined) = output.inlined_responses {
                return Ok(inlined.inlined_responses);
            }
            file = file.or(output.responses_file);
        }
        Err(match file {
            Some(file) => format!(
                "the results are in file {file}, but inline requests should give inline responses"
            ),
            None => "the finished job has no inlined responses".to_owned(),
        })
    }
}

impl InlinedResponse {
    /// The `metadata.key` the request was submitted with.
    pub(super) fn key(&self) -> Option<&str> {
        self.metadata.as_ref()?.get("key")?.as_str()
    }

    /// The request's own error, mapped like an HTTP answer of the same kind.
    pub(super) fn error(&self) -> Option<ModelError> {
        self.error.as_ref().map(Status::to_model_error)
    }
}

impl Status {
    fn describe(&self) -> String {
        let message = self.message.as_deref().unwrap_or("no message");
        match (&self.status, self.code) {
            (Some(status), _) => format!("{status}: {message}"),
            (None, Some(code)) => format!("code {code}: {message}"),
            (None, None) => message.to_owned(),
        }
    }

    /// `RESOURCE_EXHAUSTED` is throttling, caller mistakes are rejections, the rest server errors.
    fn to_model_error(&self) -> ModelError {
        let code = self.code.unwrap_or(2);
        let message = self.describe();
        if code == CODE_RESOURCE_EXHAUSTED
            || code == 429
            || self.status.as_deref() == Some("RESOURCE_EXHAUSTED")
        {
            return ModelError::RateLimited { retry_after_ms: None };
        }
        // google.rpc.Code to its HTTP equivalent; a code that already is an HTTP status stays.
        let status = match code {
            100..=599 => u16::try_from(code).unwrap_or(500),
            3 | 9 | 11 => 400,
            5 => 404,
            6 | 10 => 409,
            7 => 403,
            16 => 401,
            4 => 504,
            14 => 503,
            _ => 500,
        };
        if (400..500).contains(&status) {
            ModelError::Rejected { status, message }
        } else {
            ModelError::ServerError { status, message }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn op(value: Value) -> Operation {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn states_by_label_and_by_result() {
        let state = |s: &str| op(json!({"metadata": {"state": s}})).state();
        assert_eq!(state("BATCH_STATE_PENDING"), JobState::Running);
        assert_eq!(state("JOB_STATE_RUNNING"), JobState::Running);
        assert_eq!(state("BATCH_STATE_SUCCEEDED"), JobState::Succeeded);
        assert_eq!(state("BATCH_STATE_EXPIRED"), JobState::Expired);
        assert_eq!(state("BATCH_STATE_CANCELLED"), JobState::Cancelled);
        let failed = op(json!({"done": true, "metadata": {"state": "BATCH_STATE_FAILED"},
            "error": {"code": 13, "message": "internal"}}));
        assert_eq!(failed.state(), JobState::Failed("code 13: internal".into()));
        let cancelled = op(json!({"done": true, "error": {"code": 1, "message": "cancelled"}}));
        assert_eq!(cancelled.state(), JobState::Cancelled);
    }

    #[test]
    fn responses_come_from_response_or_metadata_output() {
        let inline = json!({"inlinedResponses": {"inlinedResponses": [{"metadata": {"key": "a"}, "response": {}}]}});
        let from_response = op(json!({"done": true, "response": inline}));
        assert_eq!(from_response.responses().unwrap()[0].key(), Some("a"));
        let from_metadata = op(json!({"done": true, "metadata": {"output": inline}}));
        assert_eq!(from_metadata.responses().unwrap().len(), 1);
        let file = op(json!({"done": true, "response": {"responsesFile": "files/x"}}));
        assert!(file.responses().unwrap_err().contains("files/x"));
    }

    #[test]
    fn request_errors_map_like_http_answers() {
        let error = |v: Value| serde_json::from_value::<Status>(v).unwrap().to_model_error();
        assert_eq!(
            error(json!({"code": 8, "message": "quota"})),
            ModelError::RateLimited { retry_after_ms: None }
        );
        assert!(matches!(
            error(json!({"code": 3, "message": "bad"})),
            ModelError::Rejected { status: 400, .. }
        ));
        assert!(matches!(
            error(json!({"code": 14, "message": "later"})),
            ModelError::ServerError { status: 503, .. }
        ));
        assert!(matches!(error(json!({"code": 404})), ModelError::Rejected { status: 404, .. }));
    }
}
