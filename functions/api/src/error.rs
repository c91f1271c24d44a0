//! Errors as the API answers them: a status and a JSON body `{"error": …, "fix": …}`, the same shape
//! the client turns back into an [`ApiError`].

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use cadre_domain::ports::queue::QueueError;
use cadre_domain::ports::store::StoreError;
use cadre_domain::ports::usage::UsageError;
use cadre_engine::EngineError;
use serde::{Deserialize, Serialize};

/// The JSON body of every error answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// What went wrong, naming the thing and the value.
    pub error: String,
    /// What to do about it.
    pub fix: String,
}

/// Why an API call failed; each variant is one HTTP status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// 400: the request could not be read (malformed JSON, a bad query parameter).
    #[error("{error}; {fix}")]
    BadRequest {
        /// What was wrong.
        error: String,
        /// What to do.
        fix: String,
    },
    /// 401: no token, or one that matches no team.
    #[error("{error}; {fix}")]
    Unauthorized {
        /// What was wrong.
        error: String,
        /// What to do.
        fix: String,
    },
    /// 404: no such task (for this team).
    #[error("{error}; {fix}")]
    NotFound {
        /// What was not found.
        error: String,
        /// What to do.
        fix: String,
    },
    /// 409: the task is not in a state that allows this (or the team's budget is spent).
    #[error("{error}; {fix}")]
    Conflict {
        /// The conflict.
        error: String,
        /// What to do.
        fix: String,
    },
    /// 422: the request was read but asks for something unusable (an empty goal, a git URL).
    #[error("{error}; {fix}")]
    Unprocessable {
        /// What was unusable.
        error: String,
        /// What to do.
        fix: String,
    },
    /// 503: the store, queue or ledger cannot be reached now; the same call may work later.
    #[error("{error}; {fix}")]
    Unavailable {
        /// What failed.
        error: String,
        /// What to do.
        fix: String,
    },
    /// The client could not reach the API, or got an answer it could not read.
    #[error("{error}; {fix}")]
    Transport {
        /// What failed.
        error: String,
        /// What to do.
        fix: String,
    },
}

fn pair(error: impl Into<String>, fix: impl Into<String>) -> (String, String) {
    (error.into(), fix.into())
}

impl ApiError {
    /// 400.
    pub fn bad_request(error: impl Into<String>, fix: impl Into<String>) -> ApiError {
        let (error, fix) = pair(error, fix);
        ApiError::BadRequest { error, fix }
    }
    /// 404.
    pub fn not_found(error: impl Into<String>, fix: impl Into<String>) -> ApiError {
        let (error, fix) = pair(error, fix);
        ApiError::NotFound { error, fix }
    }
    /// 409.
    pub fn conflict(error: impl Into<String>, fix: impl Into<String>) -> ApiError {
        let (error, fix) = pair(error, fix);
        ApiError::Conflict { error, fix }
    }
    /// 422.
    pub fn unprocessable(error: impl Into<String>, fix: impl Into<String>) -> ApiError {
        let (error, fix) = pair(error, fix);
        ApiError::Unprocessable { error, fix }
    }
    /// 503.
    pub fn unavailable(error: impl Into<String>, fix: impl Into<String>) -> ApiError {
        let (error, fix) = pair(error, fix);
        ApiError::Unavailable { error, fix }
    }

    /// The HTTP status of this error (502 for a transport failure, which no server sends).
    #[must_use]
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized { .. } => StatusCode::UNAUTHORIZED,
            ApiError::NotFound { .. } => StatusCode::NOT_FOUND,
            ApiError::Conflict { .. } => StatusCode::CONFLICT,
            ApiError::Unprocessable { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Transport { .. } => StatusCode::BAD_GATEWAY,
        }
    }

    /// The error's body.
    #[must_use]
    pub fn body(&self) -> ErrorBody {
        let (error, fix) = match self {
            ApiError::BadRequest { error, fix }
            | ApiError::Unauthorized { error, fix }
            | ApiError::NotFound { error, fix }
            | ApiError::Conflict { error, fix }
            | ApiError::Unprocessable { error, fix }
            | ApiError::Unavailable { error, fix }
            | ApiError::Transport { error, fix } => (error, fix),
        };
        ErrorBody { error: error.clone(), fix: fix.clone() }
    }

    /// Rebuilds the error a server answered with `status` and `body`.
    #[must_use]
    pub fn from_answer(status: u16, body: ErrorBody) -> ApiError {
        let ErrorBody { error, fix } = body;
        match status {
            400 => ApiError::BadRequest { error, fix },
            401 => ApiError::Unauthorized { error, fix },
            404 => ApiError::NotFound { error, fix },
            409 => ApiError::Conflict { error, fix },
            422 => ApiError::Unprocessable { error, fix },
            503 => ApiError::Unavailable { error, fix },
            other => ApiError::Transport { error: format!("HTTP {other}: {error}"), fix },
        }
    }

    /// Whether the same call may succeed later.
    #[must_use]
    pub fn is_retryable(&self) -> bool {
        matches!(self, ApiError::Unavailable { .. } | ApiError::Transport { .. })
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let mut response = (status, axum::Json(self.body())).into_response();
        if status == StatusCode::UNAUTHORIZED {
            let challenge = if matches!(&self, ApiError::Unauthorized { error, .. } if error.starts_with("no bearer"))
            {
                "Bearer realm=\"cadre\""
            } else {
                "Bearer realm=\"cadre\", error=\"invalid_token\""
            };
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(challenge));
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> ApiError {
        match &error {
            StoreError::TaskNotFound(_) | StoreError::AmbiguousPrefix { .. } => {
                ApiError::not_found(error.to_string(), "list tasks with GET /v1/tasks")
            }
            StoreError::TaskExists(_) => {
                ApiError::conflict(error.to_string(), "create the task again; a new id is drawn")
            }
            StoreError::Unavailable(_) | StoreError::Corrupt(_) => ApiError::unavailable(
                error.to_string(),
                "try again shortly; if it persists, check the deployment's store",
            ),
        }
    }
}

impl From<QueueError> for ApiError {
    fn from(error: QueueError) -> ApiError {
        ApiError::unavailable(
            error.to_string(),
            "the task is stored; POST /v1/tasks/ID/resume publishes its next step once the queue answers",
        )
    }
}

impl From<UsageError> for ApiError {
    fn from(error: UsageError) -> ApiError {
        ApiError::unavailable(
            error.to_string(),
            "try again shortly; the usage ledger is not answering",
        )
    }
}

impl From<EngineError> for ApiError {
    fn from(error: EngineError) -> ApiError {
        match error {
            EngineError::Store(e) => e.into(),
            EngineError::Queue(e) => e.into(),
            EngineError::BudgetExhausted => ApiError::conflict(
                "the task stopped at its budget",
                "resume it with a higher budget: POST /v1/tasks/ID/resume {\"budget_usd\": N}",
            ),
            EngineError::BudgetTooLow { new, spent } => ApiError::unprocessable(
                format!(
                    "the new budget (${new:.4}) is not above what the task has spent (${spent:.4})"
                ),
                "give a budget_usd above the spend",
            ),
            // Settings the engine refuses (and any refusal added later) are the caller's to fix.
            other => ApiError::unprocessable(other.to_string(), "change the task's settings"),
        }
    }
}
