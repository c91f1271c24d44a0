//! OAuth access tokens for Vertex AI, from Application Default Credentials or the metadata server.
//!
//! Three sources, found in the order Google's own libraries use ([`GoogleCredentials::discover`]):
//! the file named by `GOOGLE_APPLICATION_CREDENTIALS`, gcloud's well-known file
//! (`~/.config/gcloud/application_default_credentials.json`), then the metadata server that Cloud Run,
//! GKE and GCE expose (its host overridable by `GCE_METADATA_HOST`). A file holds an `authorized_user`
//! (a refresh-token grant) or a `service_account` (an RS256-signed JWT grant, signed with `ring`, which
//! rustls already compiles into the tree).
//!
//! A token is cached until 60 s before it expires; one fetch runs at a time, so a crowd of callers
//! after expiry makes one request to the token endpoint. Secrets (refresh tokens, client secrets,
//! private keys, access tokens) are newtypes whose `Debug` prints `***`, sent in sensitive header
//! values, and never quoted in an error: the token endpoint's own `error` and `error_description`
//! are, since they carry no secret.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use cadre_domain::ports::clock::Clock;
use cadre_domain::ports::model::ModelError;
use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION};
use ring::rand::SystemRandom;
use ring::signature::{RsaKeyPair, RSA_PKCS1_SHA256};
use serde::Deserialize;
use tokio::time::Instant;

/// Where `authorized_user` files send their refresh grant when they name no `token_uri`.
pub const DEFAULT_TOKEN_URI: &str = "https://oauth2.googleapis.com/token";
/// The metadata server's host on Google Cloud.
pub const DEFAULT_METADATA_HOST: &str = "metadata.google.internal";
/// The scope Vertex AI needs.
const SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";
/// A token is refreshed this long before it expires, so a call never starts with a token about to lapse.
const EXPIRY_MARGIN: Duration = Duration::from_secs(60);
/// How long a token endpoint may take.
const TOKEN_TIMEOUT: Duration = Duration::from_secs(30);
/// A signed JWT assertion's lifetime (Google accepts at most one hour).
const ASSERTION_LIFETIME_S: i64 = 3600;

/// A secret string: `Debug` prints `***`, and there is no `Display`.
#[derive(Clone, PartialEq, Eq)]
struct Secret(String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// An RSA key that signs JWT assertions; `Debug` shows nothing of it.
#[derive(Clone)]
struct SigningKey(Arc<RsaKeyPair>);

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RsaKey(***)")
    }
}

/// Where Vertex AI tokens come from.
#[derive(Debug, Clone)]
pub struct GoogleCredentials(Source);

#[derive(Debug, Clone)]
enum Source {
    /// `GET http://{host}/computeMetadata/v1/instance/service-accounts/default/token`.
    Metadata { host: String },
    /// A refresh-token grant (`gcloud auth application-default login`).
    AuthorizedUser {
        client_id: String,
        client_secret: Secret,
        refresh_token: Secret,
        token_uri: String,
    },
    /// A JWT-bearer grant signed with the service account's key.
    ServiceAccount {
        client_email: String,
        private_key_id: Option<String>,
        key: SigningKey,
        token_uri: String,
    },
}

/// An `authorized_user` or `service_account` credentials file, as gcloud and the console write them.
#[derive(Deserialize)]
struct CredentialsFile {
    #[serde(rename = "type")]
    kind: String,
    client_id: Option<String>,
    client_secret: Option<String>,
    refresh_token: Option<String>,
    client_email: Option<String>,
    private_key_id: Option<String>,
    private_key: Option<String>,
    token_uri: Option<String>,
}

impl GoogleCredentials {
    /// Application Default Credentials, looked up the way Google's libraries do: the file named by
    /// `GOOGLE_APPLICATION_CREDENTIALS`, else gcloud's well-known file under `CLOUDSDK_CONFIG` or
    /// `$HOME/.config/gcloud`, else the metadata server (at `GCE_METADATA_HOST` when set).
    ///
    /// `env` reads one variable; the binary passes `|name| std::env::var(name).ok()`, since this crate
    /// reads no environment itself.
    ///
    /// # Errors
    /// [`ModelError::NotConfigured`] naming the file when a credentials file cannot be read or is not
    /// an `authorized_user` or `service_account` file.
    pub fn discover(env: &dyn Fn(&str) -> Option<String>) -> Result<GoogleCredentials, ModelError> {
        let set = |name: &str| env(name).filter(|v| !v.trim().is_empty());
        if let Some(path) = set("GOOGLE_APPLICATION_CREDENTIALS") {
            return GoogleCredentials::from_file(Path::new(&path));
        }
        let gcloud_dir = set("CLOUDSDK_CONFIG")
            .map(PathBuf::from)
            .or_else(|| set("HOME").map(|home| Path::new(&home).join(".config").join("gcloud")));
        if let Some(dir) = gcloud_dir {
            let well_known = dir.join("application_default_credentials.json");
            if well_known.is_file() {
                return GoogleCredentials::from_file(&well_known);
            }
        }
        Ok(GoogleCredentials::metadata_server(set("GCE_METADATA_HOST").as_deref()))
    }

    /// The metadata server at `host` (`host[:port]`, no scheme), or at `metadata.google.internal`.
    #[must_use]
    pub fn metadata_server(host: Option<&str>) -> GoogleCredentials {
        let host = host.map_or(DEFAULT_METADATA_HOST, str::trim);
        let host = host.trim_start_matches("http://").trim_end_matches('/');
        GoogleCredentials(Source::Metadata { host: host.to_owned() })
    }

    /// Reads an `authorized_user` or `service_account` credentials file.
    ///
    /// # Errors
    /// [`ModelError::NotConfigured`] naming the file when it cannot be read or is not such a file.
    pub fn from_file(path: &Path) -> Result<GoogleCredentials, ModelError> {
        let text = std::fs::read_to_string(path).map_err(|e| ModelError::NotConfigured {
            hint: format!(
                "cannot read the Google credentials file {}: {e}; fix GOOGLE_APPLICATION_CREDENTIALS \
                 or run `gcloud auth application-default login`",
                path.display()
            ),
        })?;
        GoogleCredentials::from_json(&text, &path.display().to_string())
    }

    /// Parses credentials JSON; `origin` names it in errors (a path, say). The text is never quoted.
    ///
    /// # Errors
    /// [`ModelError::NotConfigured`] when it is not an `authorized_user` or `service_account` file
    /// with the fields its grant needs, or the private key is not an RSA key in PEM.
    pub fn from_json(text: &str, origin: &str) -> Result<GoogleCredentials, ModelError> {
        let bad = |why: &str| {
            ModelError::NotConfigured {
            hint: format!(
                "the Google credentials in {origin} are not usable: {why}; \
                 create them again with `gcloud auth application-default login` or a new service-account key"
            ),
        }
        };
        let file: CredentialsFile =
            serde_json::from_str(text).map_err(|_| bad("the file is not credentials JSON"))?;
        let token_uri = file.token_uri.unwrap_or_else(|| DEFAULT_TOKEN_URI.to_owned());
        let field = |value: Option<String>, name: &str| {
            value.filter(|v| !v.is_empty()).ok_or_else(|| bad(&format!("`{name}` is missing")))
        };
        match file.kind.as_str() {
            "authorized_user" => Ok(GoogleCredentials(Source::AuthorizedUser {
                client_id: field(file.client_id, "client_id")?,
                client_secret: Secret(field(file.client_secret, "client_secret")?),
                refresh_token: Secret(field(file.refresh_token, "refresh_token")?),
                token_uri,
            })),
            "service_account" => {
                let pem = field(file.private_key, "private_key")?;
                let key = rsa_key_from_pem(&pem).map_err(bad)?;
                Ok(GoogleCredentials(Source::ServiceAccount {
                    client_email: field(file.client_email, "client_email")?,
                    private_key_id: file.private_key_id,
                    key: SigningKey(Arc::new(key)),
                    token_uri,
                }))
            }
            other => Err(bad(&format!(
                "its type is {other:?}; only authorized_user and service_account are supported"
            ))),
        }
    }

    /// Which kind of source this is, for logs and errors (no secret).
    #[must_use]
    pub fn kind(&self) -> &'static str {
        match self.0 {
            Source::Metadata { .. } => "metadata server",
            Source::AuthorizedUser { .. } => "authorized_user credentials",
            Source::ServiceAccount { .. } => "service_account credentials",
        }
    }
}

/// A PKCS#8 (`BEGIN PRIVATE KEY`, as Google issues) or PKCS#1 (`BEGIN RSA PRIVATE KEY`) PEM key.
fn rsa_key_from_pem(pem: &str) -> Result<RsaKeyPair, &'static str> {
    let pkcs1 = pem.contains("BEGIN RSA PRIVATE KEY");
    let body: String =
        pem.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with("-----")).collect();
    let der = STANDARD.decode(body).map_err(|_| "`private_key` is not PEM")?;
    let key = if pkcs1 { RsaKeyPair::from_der(&der) } else { RsaKeyPair::from_pkcs8(&der) };
    key.map_err(|_| "`private_key` is not an RSA private key")
}

/// A bearer token; `Debug` prints `***`.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct AccessToken(String);

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AccessToken(***)")
    }
}

impl AccessToken {
    /// `Authorization: Bearer …`, marked sensitive.
    pub(crate) fn headers(&self) -> Result<HeaderMap, ModelError> {
        let mut value = HeaderValue::from_str(&format!("Bearer {}", self.0)).map_err(|_| {
            ModelError::MalformedReply {
                reason: "the OAuth token endpoint returned a token that cannot be sent as a header"
                    .to_owned(),
            }
        })?;
        value.set_sensitive(true);
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, value);
        Ok(headers)
    }
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    expires_in: Option<u64>,
}

#[derive(Debug)]
struct Cached {
    token: AccessToken,
    refresh_at: Instant,
}

/// Fetches and caches access tokens from one source.
pub(crate) struct TokenSource {
    credentials: GoogleCredentials,
    client: reqwest::Client,
    clock: Arc<dyn Clock>,
    /// Held across a fetch, so concurrent callers wait for one fetch instead of each making one.
    cached: tokio::sync::Mutex<Option<Cached>>,
}

impl fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenSource")
            .field("credentials", &self.credentials)
            .finish_non_exhaustive()
    }
}

impl TokenSource {
    pub(crate) fn new(
        credentials: GoogleCredentials,
        clock: Arc<dyn Clock>,
    ) -> Result<TokenSource, ModelError> {
        let client = reqwest::Client::builder()
            .timeout(TOKEN_TIMEOUT)
            .connect_timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| ModelError::NotConfigured {
                hint: format!("cannot build the HTTP client for Google OAuth: {e}"),
            })?;
        Ok(TokenSource { credentials, client, clock, cached: tokio::sync::Mutex::new(None) })
    }

    /// A token valid for at least another minute: the cached one, or a fresh one.
    pub(crate) async fn token(&self) -> Result<AccessToken, ModelError> {
        let mut cached = self.cached.lock().await;
        if let Some(current) = cached.as_ref() {
            if Instant::now() < current.refresh_at {
                return Ok(current.token.clone());
            }
        }
        let (token, lifetime) = self.fetch().await?;
        tracing::debug!(
            source = self.credentials.kind(),
            lifetime_s = lifetime.as_secs(),
            "fetched a Google access token"
        );
        *cached = Some(Cached {
            token: token.clone(),
            refresh_at: Instant::now() + lifetime.saturating_sub(EXPIRY_MARGIN),
        });
        Ok(token)
    }

    /// Forgets `stale` (the provider answered 401 to it), so the next [`TokenSource::token`] fetches
    /// anew; a token already replaced by another caller is left alone.
    pub(crate) async fn invalidate(&self, stale: &AccessToken) {
        let mut cached = self.cached.lock().await;
        if cached.as_ref().is_some_and(|c| c.token == *stale) {
            *cached = None;
        }
    }

    async fn fetch(&self) -> Result<(AccessToken, Duration), ModelError> {
        let (url, request) = match &self.credentials.0 {
            Source::Metadata { host } => {
                let url = format!(
                    "http://{host}/computeMetadata/v1/instance/service-accounts/default/token"
                );
                let request = self.client.get(&url).header("Metadata-Flavor", "Google");
                (url, request)
            }
            Source::AuthorizedUser { client_id, client_secret, refresh_token, token_uri } => {
                let form = [
                    ("grant_type", "refresh_token"),
                    ("client_id", client_id.as_str()),
                    ("client_secret", client_secret.0.as_str()),
                    ("refresh_token", refresh_token.0.as_str()),
                ];
                (token_uri.clone(), self.client.post(token_uri).form(&form))
            }
            Source::ServiceAccount { client_email, private_key_id, key, token_uri } => {
                let now_s = self.clock.now().0.div_euclid(1000);
                let assertion =
                    sign_assertion(key, client_email, private_key_id.as_deref(), token_uri, now_s)?;
                let form = [
                    ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
                    ("assertion", assertion.as_str()),
                ];
                (token_uri.clone(), self.client.post(token_uri).form(&form))
            }
        };
        let unreachable = |e: &reqwest::Error| ModelError::Unreachable {
            endpoint: url.clone(),
            reason: if e.is_timeout() {
                format!("no answer within {} s", TOKEN_TIMEOUT.as_secs())
            } else {
                let mut reason = e.to_string();
                let mut source = std::error::Error::source(e);
                while let Some(cause) = source {
                    reason = format!("{reason}: {cause}");
                    source = cause.source();
                }
                reason
            },
        };
        let response = request.send().await.map_err(|e| unreachable(&e))?;
        let status = response.status().as_u16();
        let body = response.bytes().await.map_err(|e| unreachable(&e))?;
        if !(200..300).contains(&status) {
            return Err(self.refused(&url, status, &body));
        }
        let parsed: TokenResponse =
            serde_json::from_slice(&body).map_err(|_| ModelError::MalformedReply {
                reason: format!(
                    "the OAuth token endpoint {url} answered without an access_token ({} bytes)",
                    body.len()
                ),
            })?;
        let lifetime = Duration::from_secs(parsed.expires_in.unwrap_or(3600));
        Ok((AccessToken(parsed.access_token), lifetime))
    }

    /// A non-2xx answer from the token endpoint: its own `error` words, never the request.
    fn refused(&self, url: &str, status: u16, body: &[u8]) -> ModelError {
        let json: Option<serde_json::Value> = serde_json::from_slice(body).ok();
        let field = |name: &str| {
            json.as_ref().and_then(|j| j.get(name)).and_then(|v| v.as_str()).unwrap_or("")
        };
        let words = [field("error"), field("error_description")]
            .into_iter()
            .filter(|w| !w.is_empty())
            .collect::<Vec<_>>()
            .join(": ");
        let words = if words.is_empty() { format!("HTTP {status}") } else { words };
        if status >= 500 || status == 429 {
            return ModelError::ServerError {
                status,
                message: format!("the OAuth token endpoint {url} failed: {words}"),
            };
        }
        let fix = match self.credentials.0 {
            Source::Metadata { .. } => {
                "check that the service has a service account with the Vertex AI User role"
            }
            Source::AuthorizedUser { .. } => "run `gcloud auth application-default login` again",
            Source::ServiceAccount { .. } => {
                "check that the key is not deleted or disabled, or create a new one"
            }
        };
        ModelError::NotConfigured {
            hint: format!(
                "the OAuth token endpoint {url} refused the {} ({status}: {words}); {fix}",
                self.credentials.kind()
            ),
        }
    }
}

/// The RS256-signed JWT of Google's service-account grant.
fn sign_assertion(
    key: &SigningKey,
    client_email: &str,
    private_key_id: Option<&str>,
    audience: &str,
    now_s: i64,
) -> Result<String, ModelError> {
    let mut header = serde_json::json!({"alg": "RS256", "typ": "JWT"});
    if let Some(kid) = private_key_id {
        header["kid"] = serde_json::Value::from(kid);
    }
    let claims = serde_json::json!({
        "iss": client_email,
        "scope": SCOPE,
        "aud": audience,
        "iat": now_s,
        "exp": now_s + ASSERTION_LIFETIME_S,
    });
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let mut signature = vec![0; key.0.public().modulus_len()];
    key.0
        .sign(&RSA_PKCS1_SHA256, &SystemRandom::new(), signing_input.as_bytes(), &mut signature)
        .map_err(|_| ModelError::NotConfigured {
        hint: "cannot sign the service-account assertion with the key in the credentials file; \
                   create a new key"
            .to_owned(),
    })?;
    Ok(format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name| pairs.iter().find(|(n, _)| *n == name).map(|(_, v)| (*v).to_owned())
    }

    #[test]
    fn without_a_file_the_metadata_server_is_used_at_its_overridable_host() {
        let found = GoogleCredentials::discover(&env(&[])).unwrap();
        assert!(matches!(&found.0, Source::Metadata { host } if host == DEFAULT_METADATA_HOST));
        let found =
            GoogleCredentials::discover(&env(&[("GCE_METADATA_HOST", "127.0.0.1:9")])).unwrap();
        assert!(matches!(&found.0, Source::Metadata { host } if host == "127.0.0.1:9"));
    }

    #[test]
    fn the_well_known_file_is_found_under_home() {
        let home = tempfile::tempdir().unwrap();
        let dir = home.path().join(".config").join("gcloud");
        std::fs::create_dir_all(&dir).unwrap();
        let file = serde_json::json!({"type": "authorized_user", "client_id": "id",
            "client_secret": "shh", "refresh_token": "1//refresh"});
        std::fs::write(dir.join("application_default_credentials.json"), file.to_string()).unwrap();
        let home_path = home.path().display().to_string();
        let lookup = move |name: &str| (name == "HOME").then(|| home_path.clone());
        let found = GoogleCredentials::discover(&lookup).unwrap();
        assert!(
            matches!(&found.0, Source::AuthorizedUser { token_uri, .. } if token_uri == DEFAULT_TOKEN_URI)
        );
        assert!(!format!("{found:?}").contains("shh") && !format!("{found:?}").contains("1//"));
    }

    #[test]
    fn bad_files_are_named_without_their_content() {
        let error = GoogleCredentials::from_json(
            r#"{"type": "external_account", "secret": "zzz"}"#,
            "f.json",
        )
        .unwrap_err()
        .to_string();
        assert!(error.contains("f.json") && error.contains("external_account"), "{error}");
        assert!(!error.contains("zzz"));
        let error = GoogleCredentials::from_json(
            r#"{"type": "service_account", "client_email": "a@b", "private_key": "-----BEGIN PRIVATE KEY-----\nnotbase64!\n-----END PRIVATE KEY-----"}"#,
            "sa.json",
        )
        .unwrap_err()
        .to_string();
        assert!(error.contains("not PEM"), "{error}");
        let missing = GoogleCredentials::discover(&env(&[(
            "GOOGLE_APPLICATION_CREDENTIALS",
            "/nonexistent/adc.json",
        )]))
        .unwrap_err()
        .to_string();
        assert!(missing.contains("/nonexistent/adc.json"), "{missing}");
    }
}
