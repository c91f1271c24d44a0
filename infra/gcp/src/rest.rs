//! One authenticated REST call to a Google API, with Google's JSON error body decoded.
//!
//! Every adapter maps [`ApiError`] to its own port's error at its seam; nothing here knows a port.

use std::time::Duration;

use reqwest::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::auth::{GoogleAuth, TokenCache};

/// How long one API call may take; Firestore and Pub/Sub answer in milliseconds.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a call failed.
#[derive(Debug, Clone, thiserror::Error)]
pub(crate) enum ApiError {
    /// The API answered with an error status; `status` is Google's canonical code name
    /// (`NOT_FOUND`, `ABORTED`, `ALREADY_EXISTS`, …) when the body had one.
    #[error("{url} answered {code} {status}: {message}")]
    Status { url: String, code: u16, status: String, message: String },
    /// No answer: connection refused, reset or timed out.
    #[error("{url} is unreachable: {reason}")]
    Transport { url: String, reason: String },
    /// No access token could be had.
    #[error("no Google access token: {0}")]
    Auth(String),
    /// A 2xx answer whose body is not the JSON the API documents.
    #[error("{url} answered with an unexpected body: {reason}")]
    Body { url: String, reason: String },
}

impl ApiError {
    /// Google's canonical status name, if the API answered.
    pub(crate) fn status(&self) -> Option<&str> {
        match self {
            ApiError::Status { status, .. } => Some(status),
            _ => None,
        }
    }

    /// The HTTP status, if the API answered.
    pub(crate) fn code(&self) -> Option<u16> {
        match self {
            ApiError::Status { code, .. } => Some(*code),
            _ => None,
        }
    }
}

/// A client for one Google API: a base URL (the real endpoint or an emulator) and credentials.
#[derive(Debug, Clone)]
pub(crate) struct Api {
    client: reqwest::Client,
    base_url: String,
    tokens: Option<std::sync::Arc<TokenCache>>,
}

impl Api {
    pub(crate) fn new(base_url: &str, auth: &GoogleAuth) -> Result<Api, ApiError> {
        let client = reqwest::Client::builder()
            .timeout(CALL_TIMEOUT)
            .connect_timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| ApiError::Transport {
                url: base_url.to_owned(),
                reason: format!("cannot build the HTTP client: {e}"),
            })?;
        let tokens = auth.token_cache(client.clone()).map(std::sync::Arc::new);
        Ok(Api { client, base_url: base_url.trim_end_matches('/').to_owned(), tokens })
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}/{}", self.base_url, path.trim_start_matches('/'))
    }

    /// A JSON call; `None` body sends no body. An empty 2xx body is `Value::Null`.
    pub(crate) async fn json(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, ApiError> {
        let url = self.url(path);
        let mut request = self.client.request(method, &url);
        if let Some(body) = body {
            request = request.json(body);
        }
        let bytes = self.send(&url, request).await?;
        if bytes.is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&bytes)
            .map_err(|e| ApiError::Body { url, reason: format!("not JSON: {e}") })
    }

    /// A call with a raw body (Cloud Storage uploads); returns the raw answer.
    pub(crate) async fn raw(
        &self,
        method: Method,
        url: &str,
        body: Option<(Vec<u8>, &'static str)>,
    ) -> Result<Vec<u8>, ApiError> {
        let mut request = self.client.request(method, url);
        if let Some((bytes, content_type)) = body {
            request = request.header(CONTENT_TYPE, content_type).body(bytes);
        }
        self.send(url, request).await
    }

    async fn send(
        &self,
        url: &str,
        mut request: reqwest::RequestBuilder,
    ) -> Result<Vec<u8>, ApiError> {
        if let Some(tokens) = &self.tokens {
            let token = tokens.token().await.map_err(ApiError::Auth)?;
            let mut value = HeaderValue::from_str(&format!("Bearer {}", token.secret()))
                .map_err(|_| ApiError::Auth("the access token is not a valid header".into()))?;
            value.set_sensitive(true);
            request = request.header(AUTHORIZATION, value);
        }
        let transport = |e: reqwest::Error| ApiError::Transport {
            url: url.to_owned(),
            reason: if e.is_timeout() {
                format!("no answer within {} s", CALL_TIMEOUT.as_secs())
            } else {
                error_chain(&e)
            },
        };
        let response = request.send().await.map_err(transport)?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(transport)?;
        if status.is_success() {
            return Ok(bytes.to_vec());
        }
        Err(status_error(url, status, &bytes))
    }
}

/// Google's error body is `{"error": {"code", "message", "status"}}`; anything else is quoted short.
fn status_error(url: &str, status: StatusCode, body: &[u8]) -> ApiError {
    let json: Option<Value> = serde_json::from_slice(body).ok();
    // Some APIs answer a JSON list holding the error object (the emulators' streaming endpoints).
    let error = json.as_ref().and_then(|j| match j {
        Value::Array(items) => items.first().and_then(|i| i.get("error")),
        other => other.get("error"),
    });
    let field = |name: &str| error.and_then(|e| e.get(name)).and_then(Value::as_str);
    let message = field("message").map_or_else(
        || String::from_utf8_lossy(&body[..body.len().min(300)]).trim().to_owned(),
        str::to_owned,
    );
    ApiError::Status {
        url: url.to_owned(),
        code: status.as_u16(),
        status: field("status")
            .unwrap_or_else(|| status.canonical_reason().unwrap_or(""))
            .to_owned(),
        message,
    }
}

/// An error with its causes, which reqwest keeps apart ("error sending request: connection refused").
pub(crate) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text = format!("{text}: {cause}");
        source = cause.source();
    }
    text
}
