//! Access tokens for Google APIs: none for the emulators, the metadata server's on Cloud Run.
//!
//! `cadre-model` has a fuller token source (ADC files, service-account keys) for Vertex AI, but infra
//! crates may not depend on each other, and Cloud Run needs only the metadata server: this is that one
//! request, cached until a minute before the token expires.

use std::fmt;
use std::time::Duration;

use serde::Deserialize;
use tokio::time::Instant;

/// The metadata server's host on Google Cloud.
const DEFAULT_METADATA_HOST: &str = "metadata.google.internal";
/// A token is refreshed this long before it expires.
const EXPIRY_MARGIN: Duration = Duration::from_secs(60);

/// How calls to Google APIs authenticate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GoogleAuth {
    /// No credentials: the local emulators accept any request.
    Emulator,
    /// The service account of the Cloud Run service, through the metadata server at `host`
    /// (`host[:port]`, `metadata.google.internal` on Google Cloud).
    MetadataServer {
        /// Where the metadata server answers.
        host: String,
    },
}

impl GoogleAuth {
    /// The metadata server at `host`, or at `metadata.google.internal`.
    #[must_use]
    pub fn metadata_server(host: Option<&str>) -> GoogleAuth {
        let host = host.map_or(DEFAULT_METADATA_HOST, str::trim);
        let host = host.trim_start_matches("http://").trim_end_matches('/');
        GoogleAuth::MetadataServer { host: host.to_owned() }
    }

    pub(crate) fn token_cache(&self, client: reqwest::Client) -> Option<TokenCache> {
        match self {
            GoogleAuth::Emulator => None,
            GoogleAuth::MetadataServer { host } => Some(TokenCache {
                url: format!(
                    "http://{host}/computeMetadata/v1/instance/service-accounts/default/token"
                ),
                client,
                cached: tokio::sync::Mutex::new(None),
            }),
        }
    }
}

/// A bearer token; `Debug` prints `***`.
#[derive(Clone)]
pub(crate) struct AccessToken(String);

impl AccessToken {
    pub(crate) fn secret(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AccessToken(***)")
    }
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    expires_in: Option<u64>,
}

/// Fetches the metadata server's token and keeps it until shortly before it expires. The lock is held
/// across a fetch, so a crowd of callers after expiry makes one request.
pub(crate) struct TokenCache {
    url: String,
    client: reqwest::Client,
    cached: tokio::sync::Mutex<Option<(AccessToken, Instant)>>,
}

impl fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenCache").field("url", &self.url).finish_non_exhaustive()
    }
}

impl TokenCache {
    pub(crate) async fn token(&self) -> Result<AccessToken, String> {
        let mut cached = self.cached.lock().await;
        if let Some((token, refresh_at)) = cached.as_ref() {
            if Instant::now() < *refresh_at {
                return Ok(token.clone());
            }
        }
        let response = self
            .client
            .get(&self.url)
            .header("Metadata-Flavor", "Google")
            .send()
            .await
            .map_err(|e| {
                format!(
                    "the metadata server {} is unreachable: {}; on Cloud Run it always is, elsewhere \
                     use the emulators",
                    self.url,
                    crate::rest::error_chain(&e)
                )
            })?;
        let status = response.status();
        let body = response.bytes().await.map_err(|e| e.to_string())?;
        if !status.is_success() {
            return Err(format!(
                "the metadata server {} answered {status}; check that the service runs as a service account",
                self.url
            ));
        }
        let parsed: TokenResponse = serde_json::from_slice(&body).map_err(|_| {
            format!("the metadata server {} answered without an access_token", self.url)
        })?;
        let lifetime = Duration::from_secs(parsed.expires_in.unwrap_or(3600));
        let token = AccessToken(parsed.access_token);
        tracing::debug!(lifetime_s = lifetime.as_secs(), "fetched a Google access token");
        *cached = Some((token.clone(), Instant::now() + lifetime.saturating_sub(EXPIRY_MARGIN)));
        Ok(token)
    }
}
