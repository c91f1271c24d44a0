//! The batch API's three calls (submit, poll, cancel) over one client, with the key header and the
//! status mapping of `http.rs`: its `JsonClient` has no GET.

use std::time::Duration;

use cadre_domain::ports::model::ModelError;
use reqwest::header::HeaderMap;
use serde_json::Value;

use crate::http;

/// GET and POST with the key header and the status mapping of `http.rs`.
#[derive(Debug)]
pub(super) struct Http {
    client: reqwest::Client,
    headers: HeaderMap,
    timeout: Duration,
}

impl Http {
    pub(super) fn new(timeout: Duration, headers: HeaderMap) -> Result<Http, ModelError> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .build()
            .map_err(|e| ModelError::NotConfigured {
                hint: format!("cannot build the HTTP client for the batch API: {e}"),
            })?;
        Ok(Http { client, headers, timeout })
    }

    /// Sends one call; the body of a 2xx answer, or the port's error for anything else.
    pub(super) async fn send(
        &self,
        method: reqwest::Method,
        url: &str,
        body: Option<&Value>,
    ) -> Result<Vec<u8>, ModelError> {
        let unreachable = |e: reqwest::Error| ModelError::Unreachable {
            endpoint: url.to_owned(),
            reason: if e.is_timeout() {
                format!("no answer within {} ms (the client timeout)", self.timeout.as_millis())
            } else {
                let mut causes = Vec::new();
                let mut source = std::error::Error::source(&e);
                while let Some(cause) = source {
                    causes.push(cause.to_string());
                    source = cause.source();
                }
                if causes.is_empty() {
                    e.to_string()
                } else {
                    causes.join(": ")
                }
            },
        };
        let mut request = self.client.request(method, url).headers(self.headers.clone());
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.map_err(unreachable)?;
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.map_err(unreachable)?;
        if status.is_success() {
            return Ok(bytes.to_vec());
        }
        Err(http::error_from_status(status.as_u16(), &headers, &bytes))
    }
}
