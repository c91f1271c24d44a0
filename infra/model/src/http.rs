//! HTTP plumbing shared by the providers: a client built once with timeouts, one POST of a JSON body,
//! and the mapping from HTTP outcomes to [`ModelError`] that the port's `# Errors` section requires.
//!
//! Both wire formats report failures as `{"error": {"message": …}}` (Gemini adds `status` and a
//! `google.rpc.RetryInfo` detail), so one mapping serves both. There are no retries here: retry and
//! backoff belong to the gateway and the engine, which see every error and know the budget.

use std::error::Error as _;
use std::time::Duration;

use cadre_domain::ports::model::{ModelError, ModelReply};
use reqwest::header::HeaderMap;
use serde::Serialize;
use tokio::time::Instant;
use tracing::debug;

/// How long one call may take by default, thinking included.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);

/// The longest a TCP/TLS connect may take, whatever the overall timeout: a dead host should fail fast.
const MAX_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How much of an unparseable body an error message quotes.
const SNIPPET_CHARS: usize = 160;

/// A client for one provider endpoint.
#[derive(Debug, Clone)]
pub(crate) struct JsonClient {
    client: reqwest::Client,
    /// Headers sent on every call (the key, marked sensitive).
    headers: HeaderMap,
    timeout: Duration,
}

impl JsonClient {
    /// Builds the client once; reqwest pools connections inside it.
    pub(crate) fn new(timeout: Duration, headers: HeaderMap) -> Result<JsonClient, ModelError> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(MAX_CONNECT_TIMEOUT))
            .build()
            .map_err(|e| ModelError::NotConfigured {
                hint: format!("cannot build the HTTP client for the model provider: {e}"),
            })?;
        Ok(JsonClient { client, headers, timeout })
    }

    /// POSTs `body` as JSON to `url` and returns the body of a 2xx answer.
    ///
    /// `url` must not carry secrets: it appears in [`ModelError::Unreachable`].
    pub(crate) async fn post(
        &self,
        url: &str,
        body: &impl Serialize,
    ) -> Result<Vec<u8>, ModelError> {
        self.post_with(url, body, &HeaderMap::new()).await
    }

    /// Like [`JsonClient::post`], with per-call headers (a bearer token that may be refreshed) added to
    /// the client's own.
    pub(crate) async fn post_with(
        &self,
        url: &str,
        body: &impl Serialize,
        extra: &HeaderMap,
    ) -> Result<Vec<u8>, ModelError> {
        let request = self.client.post(url).json(body);
        self.send(url, request, extra).await
    }

    /// DELETEs `url` (a cached content, say); a 2xx answer's body is returned.
    pub(crate) async fn delete_with(
        &self,
        url: &str,
        extra: &HeaderMap,
    ) -> Result<Vec<u8>, ModelError> {
        self.send(url, self.client.delete(url), extra).await
    }

    async fn send(
        &self,
        url: &str,
        request: reqwest::RequestBuilder,
        extra: &HeaderMap,
    ) -> Result<Vec<u8>, ModelError> {
        let response = self.open(url, request, extra).await?;
        let bytes = response.bytes().await.map_err(|e| self.unreachable(url, &e))?;
        Ok(bytes.to_vec())
    }

    /// POSTs `body` and returns the 2xx response unread, for a streamed (SSE) body; a non-2xx answer is
    /// read whole and mapped like [`JsonClient::post`]'s.
    pub(crate) async fn post_stream(
        &self,
        url: &str,
        body: &impl Serialize,
        extra: &HeaderMap,
    ) -> Result<StreamBody, ModelError> {
        let response = self.open(url, self.client.post(url).json(body), extra).await?;
        Ok(StreamBody { response, url: url.to_owned(), timeout: self.timeout })
    }

    async fn open(
        &self,
        url: &str,
        request: reqwest::RequestBuilder,
        extra: &HeaderMap,
    ) -> Result<reqwest::Response, ModelError> {
        let mut headers = self.headers.clone();
        headers.extend(extra.iter().map(|(name, value)| (name.clone(), value.clone())));
        let response =
            request.headers(headers).send().await.map_err(|e| self.unreachable(url, &e))?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let headers = response.headers().clone();
        let bytes = response.bytes().await.map_err(|e| self.unreachable(url, &e))?;
        Err(error_from_status(status.as_u16(), &headers, &bytes))
    }

    fn unreachable(&self, url: &str, e: &reqwest::Error) -> ModelError {
        ModelError::Unreachable {
            endpoint: url.to_owned(),
            reason: transport_reason(e, self.timeout),
        }
    }
}

/// The body of a 2xx streamed answer, read chunk by chunk.
#[derive(Debug)]
pub(crate) struct StreamBody {
    response: reqwest::Response,
    url: String,
    timeout: Duration,
}

impl StreamBody {
    /// The next bytes, `None` at a clean end; a reset or a timeout is [`ModelError::Unreachable`].
    pub(crate) async fn chunk(&mut self) -> Result<Option<Vec<u8>>, ModelError> {
        let chunk = self.response.chunk().await.map_err(|e| ModelError::Unreachable {
            endpoint: self.url.clone(),
            reason: format!("the stream broke: {}", transport_reason(&e, self.timeout)),
        })?;
        Ok(chunk.map(|bytes| bytes.to_vec()))
    }

    /// The endpoint, for errors about the stream's content.
    pub(crate) fn url(&self) -> &str {
        &self.url
    }
}

/// What the transport said, without the URL (the caller names the endpoint) and with the timeout spelled out.
fn transport_reason(e: &reqwest::Error, timeout: Duration) -> String {
    if e.is_timeout() {
        return format!("no answer within {} ms (the client timeout)", timeout.as_millis());
    }
    let mut causes = Vec::new();
    let mut source = e.source();
    while let Some(cause) = source {
        causes.push(cause.to_string());
        source = cause.source();
    }
    if causes.is_empty() {
        let kind = if e.is_connect() { "connection failed" } else { "request failed" };
        return kind.to_owned();
    }
    causes.join(": ")
}

/// Maps a non-2xx answer to the port's error, following its `# Errors` sentences.
pub(crate) fn error_from_status(status: u16, headers: &HeaderMap, body: &[u8]) -> ModelError {
    let json: Option<serde_json::Value> = serde_json::from_slice(body).ok();
    let error = json.as_ref().and_then(|j| j.get("error"));
    let rpc_status = error.and_then(|e| e.get("status")).and_then(|s| s.as_str());
    if status == 429 || rpc_status == Some("RESOURCE_EXHAUSTED") {
        let retry_after_ms =
            error.and_then(retry_info_delay_ms).or_else(|| retry_after_header_ms(headers));
        return ModelError::RateLimited { retry_after_ms };
    }
    let message = error_message(json.as_ref(), body, status);
    match status {
        500..=599 => ModelError::ServerError { status, message },
        400..=499 => ModelError::Rejected { status, message },
        _ => ModelError::MalformedReply {
            reason: format!("unexpected HTTP status {status}: {message}"),
        },
    }
}

/// The provider's own words: `error.message`, a bare `error` string, a top-level `message` or
/// `detail` (vLLM, FastAPI-based servers), or else the start of the body.
fn error_message(json: Option<&serde_json::Value>, body: &[u8], status: u16) -> String {
    let from_json = json.and_then(|j| {
        let error = j.get("error");
        error
            .and_then(|e| e.get("message"))
            .or_else(|| error.filter(|e| e.is_string()))
            .or_else(|| j.get("message"))
            .or_else(|| j.get("detail"))
            .and_then(|m| m.as_str())
            .map(str::to_owned)
    });
    from_json.unwrap_or_else(|| {
        let text = snippet(body);
        if text.is_empty() {
            format!("HTTP {status} with an empty body")
        } else {
            text
        }
    })
}

/// The `retryDelay` of a `google.rpc.RetryInfo` detail, e.g. `"13s"` or `"1.5s"`.
fn retry_info_delay_ms(error: &serde_json::Value) -> Option<u64> {
    error.get("details")?.as_array()?.iter().find_map(|detail| {
        let is_retry_info = detail
            .get("@type")
            .and_then(|t| t.as_str())
            .is_some_and(|t| t.ends_with("google.rpc.RetryInfo"));
        if !is_retry_info {
            return None;
        }
        let delay = detail.get("retryDelay")?.as_str()?;
        seconds_to_ms(delay.strip_suffix('s')?)
    })
}

/// `retry-after-ms` (OpenAI) or `Retry-After` in seconds; an HTTP-date form is ignored.
fn retry_after_header_ms(headers: &HeaderMap) -> Option<u64> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
    if let Some(ms) = header("retry-after-ms").and_then(|v| v.parse::<f64>().ok()) {
        return to_whole_ms(ms);
    }
    seconds_to_ms(header("retry-after")?)
}

fn seconds_to_ms(seconds: &str) -> Option<u64> {
    to_whole_ms(seconds.trim().parse::<f64>().ok()? * 1000.0)
}

#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
fn to_whole_ms(ms: f64) -> Option<u64> {
    // The guard keeps the cast in range, so it cannot wrap.
    (ms.is_finite() && (0.0..1e15).contains(&ms)).then(|| ms.ceil() as u64)
}

/// The start of a body, for messages about replies that are not the documented format.
pub(crate) fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    match text.char_indices().nth(SNIPPET_CHARS) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

/// Parses a 2xx body into the provider's reply type, or says why it is not the documented format.
pub(crate) fn parse_reply<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ModelError> {
    serde_json::from_slice(body).map_err(|e| ModelError::MalformedReply {
        reason: if e.is_syntax() || e.is_eof() {
            format!("the body is not JSON ({e}); it starts with: {}", snippet(body))
        } else {
            format!("the JSON does not match the documented reply ({e})")
        },
    })
}

/// The one debug line per call: which model, how long, how many tokens (never the prompt).
pub(crate) fn log_call(model: &str, started: Instant, result: &Result<ModelReply, ModelError>) {
    let latency_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    match result {
        Ok(reply) => debug!(
            model,
            latency_ms,
            input_tokens = reply.usage.input,
            output_tokens = reply.usage.output,
            cached_tokens = reply.usage.cached,
            thinking_tokens = reply.usage.thinking,
            "model call"
        ),
        Err(error) => debug!(model, latency_ms, error = %error, "model call failed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn retry_delay_accepts_whole_and_fractional_seconds() {
        let body = |delay: &str| {
            serde_json::json!({"error": {"code": 429, "status": "RESOURCE_EXHAUSTED", "message": "quota",
                "details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": delay}]}})
            .to_string()
        };
        for (delay, ms) in [("13s", 13_000), ("1.5s", 1_500), ("0s", 0)] {
            let error = error_from_status(429, &HeaderMap::new(), body(delay).as_bytes());
            assert_eq!(error, ModelError::RateLimited { retry_after_ms: Some(ms) }, "{delay}");
        }
        let error = error_from_status(429, &HeaderMap::new(), body("soon").as_bytes());
        assert_eq!(error, ModelError::RateLimited { retry_after_ms: None });
    }

    #[test]
    fn resource_exhausted_is_rate_limited_whatever_the_code() {
        let body =
            r#"{"error": {"code": 400, "status": "RESOURCE_EXHAUSTED", "message": "quota"}}"#;
        let error = error_from_status(400, &HeaderMap::new(), body.as_bytes());
        assert_eq!(error, ModelError::RateLimited { retry_after_ms: None });
    }

    #[test]
    fn retry_after_headers() {
        let none = HeaderMap::new();
        assert_eq!(retry_after_header_ms(&none), None);
        assert_eq!(retry_after_header_ms(&headers(&[("retry-after", "7")])), Some(7_000));
        assert_eq!(retry_after_header_ms(&headers(&[("retry-after", "0.25")])), Some(250));
        let date = headers(&[("retry-after", "Wed, 21 Oct 2015 07:28:00 GMT")]);
        assert_eq!(retry_after_header_ms(&date), None);
        let both = headers(&[("retry-after", "7"), ("retry-after-ms", "120")]);
        assert_eq!(retry_after_header_ms(&both), Some(120));
        assert_eq!(retry_after_header_ms(&headers(&[("retry-after", "-3")])), None);
    }

    #[test]
    fn error_messages_come_from_the_body_in_any_common_shape() {
        let message = |body: &str| match error_from_status(400, &HeaderMap::new(), body.as_bytes())
        {
            ModelError::Rejected { message, .. } => message,
            other => panic!("expected Rejected, got {other:?}"),
        };
        assert_eq!(message(r#"{"error": {"message": "bad field"}}"#), "bad field");
        assert_eq!(message(r#"{"error": "model not found"}"#), "model not found");
        assert_eq!(message(r#"{"object": "error", "message": "too long"}"#), "too long");
        assert_eq!(message(r#"{"detail": "nope"}"#), "nope");
        assert_eq!(message("<html>proxy said no</html>"), "<html>proxy said no</html>");
        assert_eq!(message(""), "HTTP 400 with an empty body");
    }

    #[test]
    fn status_classes() {
        let server = error_from_status(502, &HeaderMap::new(), b"");
        assert!(matches!(server, ModelError::ServerError { status: 502, .. }));
        let redirect = error_from_status(304, &HeaderMap::new(), b"");
        assert!(matches!(redirect, ModelError::MalformedReply { .. }));
    }

    #[test]
    fn snippets_are_cut_on_a_char_boundary() {
        let long = "é".repeat(500);
        let cut = snippet(long.as_bytes());
        assert_eq!(cut.chars().count(), SNIPPET_CHARS + 1);
        assert!(cut.ends_with('…'));
    }
}
