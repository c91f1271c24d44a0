//! Verifies the OIDC token Pub/Sub puts on every push request (`Authorization: Bearer <JWT>`): an
//! RS256 signature by one of Google's keys, Google as the issuer, the service's URL as the audience,
//! an unexpired lifetime, and optionally the push service account as the `email`.
//!
//! Google's keys (a JWKS) are fetched once and cached for as long as the answer's `Cache-Control:
//! max-age` allows. A token signed with a key the cache does not hold makes one fetch (keys rotate),
//! at most every [`MIN_REFETCH`], so a flood of forged `kid`s cannot turn into a flood of fetches. When a
//! fetch fails, keys past their age are still used rather than refusing every push.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use cadre_domain::ports::clock::Clock;
use ring::signature::{RsaPublicKeyComponents, RSA_PKCS1_2048_8192_SHA256};
use serde::Deserialize;
use serde_json::Value;
use tokio::time::Instant;

/// Where Google publishes the keys its OIDC tokens are signed with.
pub const GOOGLE_JWKS_URL: &str = "https://www.googleapis.com/oauth2/v3/certs";
/// The issuers Google's ID tokens carry.
pub const GOOGLE_ISSUERS: [&str; 2] = ["https://accounts.google.com", "accounts.google.com"];
/// Keys are fetched again for an unknown `kid` at most this often.
const MIN_REFETCH: Duration = Duration::from_secs(30);
/// How long keys are kept when the answer names no `max-age`.
const DEFAULT_MAX_AGE: Duration = Duration::from_secs(3600);

/// What a push token must say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OidcConfig {
    /// The audience the push subscription's `oidcToken.audience` names (by default the service URL).
    pub audience: String,
    /// Accepted issuers; Google's two spellings by default.
    pub issuers: Vec<String>,
    /// When set, the token's `email` must be this (verified) service account: the one the push
    /// subscription signs as.
    pub service_account: Option<String>,
    /// Where the keys are fetched.
    pub jwks_url: String,
    /// Clock skew tolerated on `exp` and `iat`.
    pub leeway: Duration,
}

impl OidcConfig {
    /// Google-issued tokens for `audience`.
    #[must_use]
    pub fn google(audience: &str) -> OidcConfig {
        OidcConfig {
            audience: audience.to_owned(),
            issuers: GOOGLE_ISSUERS.iter().map(|s| (*s).to_owned()).collect(),
            service_account: None,
            jwks_url: GOOGLE_JWKS_URL.to_owned(),
            leeway: Duration::from_secs(30),
        }
    }
}

/// What a verified token says about the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushClaims {
    /// The service account Pub/Sub signed as, when the token names one.
    pub email: Option<String>,
    /// The token's subject.
    pub subject: String,
    /// When it expires, in Unix seconds.
    pub expires_at: i64,
}

/// Why a push token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// No `Authorization: Bearer` header.
    #[error("the push request carries no bearer token; give the push subscription an oidcToken")]
    Missing,
    /// Not three base64url parts of JSON.
    #[error("the push token is not a JWT: {0}")]
    Malformed(String),
    /// Signed with another algorithm.
    #[error("the push token is signed with {0}, not RS256")]
    Algorithm(String),
    /// Signed with a key Google does not publish.
    #[error("the push token's key `{kid}` is not among Google's keys at {url}")]
    UnknownKey {
        /// The token's key id.
        kid: String,
        /// Where the keys were fetched.
        url: String,
    },
    /// The signature is not the key's.
    #[error("the push token's signature does not verify with key `{kid}`")]
    BadSignature {
        /// The token's key id.
        kid: String,
    },
    /// Past its `exp`.
    #[error("the push token expired at {expired_at} (now {now}, Unix seconds)")]
    Expired {
        /// The token's `exp`.
        expired_at: i64,
        /// The verifier's clock.
        now: i64,
    },
    /// Issued in the future.
    #[error("the push token was issued at {issued_at}, after now ({now}); check the clock")]
    NotYetValid {
        /// The token's `iat`.
        issued_at: i64,
        /// The verifier's clock.
        now: i64,
    },
    /// Not issued by Google.
    #[error("the push token's issuer {0:?} is not Google's")]
    Issuer(String),
    /// Meant for another service.
    #[error("the push token is for audience {found:?}, not {expected:?}; set the subscription's oidcToken audience to this service's URL")]
    Audience {
        /// What the token says.
        found: String,
        /// What this service expects.
        expected: String,
    },
    /// Signed as another service account, or an unverified one.
    #[error("the push token is for {found:?}, not the push service account {expected:?}")]
    Account {
        /// The token's `email`.
        found: String,
        /// The configured push service account.
        expected: String,
    },
    /// The keys cannot be had.
    #[error("cannot fetch Google's signing keys from {url}: {reason}")]
    Keys {
        /// Where the keys are fetched.
        url: String,
        /// Why.
        reason: String,
    },
}

impl TokenError {
    /// Whether the same request may pass later (the keys were unreachable), as opposed to a token
    /// that will never pass.
    #[must_use]
    pub fn is_retryable(&self) -> bool {
        matches!(self, TokenError::Keys { .. })
    }
}

#[derive(Deserialize)]
struct Header {
    alg: String,
    kid: Option<String>,
}

#[derive(Deserialize)]
struct Claims {
    iss: Option<String>,
    aud: Option<Value>,
    exp: Option<i64>,
    iat: Option<i64>,
    sub: Option<String>,
    email: Option<String>,
    email_verified: Option<bool>,
}

#[derive(Deserialize)]
struct Jwks {
    keys: Vec<Jwk>,
}

#[derive(Deserialize)]
struct Jwk {
    kid: Option<String>,
    kty: Option<String>,
    n: Option<String>,
    e: Option<String>,
}

/// An RSA public key: modulus and exponent, big-endian.
#[derive(Debug, Clone)]
struct RsaKey {
    n: Vec<u8>,
    e: Vec<u8>,
}

#[derive(Debug)]
struct KeySet {
    keys: HashMap<String, RsaKey>,
    fetched_at: Instant,
    max_age: Duration,
}

/// Checks push tokens against Google's keys, cached.
pub struct OidcVerifier {
    config: OidcConfig,
    client: reqwest::Client,
    clock: Arc<dyn Clock>,
    /// Held across a fetch, so concurrent pushes after expiry make one fetch.
    keys: tokio::sync::Mutex<Option<KeySet>>,
}

impl std::fmt::Debug for OidcVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcVerifier").field("config", &self.config).finish_non_exhaustive()
    }
}

impl OidcVerifier {
    /// A verifier for `config`; `clock` tells token lifetimes.
    ///
    /// # Errors
    /// [`TokenError::Keys`] when the HTTP client cannot be built.
    pub fn new(config: OidcConfig, clock: Arc<dyn Clock>) -> Result<OidcVerifier, TokenError> {
        let client =
            reqwest::Client::builder().timeout(Duration::from_secs(10)).build().map_err(|e| {
                TokenError::Keys { url: config.jwks_url.clone(), reason: e.to_string() }
            })?;
        Ok(OidcVerifier { config, client, clock, keys: tokio::sync::Mutex::new(None) })
    }

    /// Verifies the value of an `Authorization` header.
    ///
    /// # Errors
    /// A [`TokenError`] saying what is wrong with the token, or that the keys could not be fetched.
    pub async fn verify(&self, authorization: Option<&str>) -> Result<PushClaims, TokenError> {
        let token = authorization
            .and_then(|h| h.strip_prefix("Bearer ").or_else(|| h.strip_prefix("bearer ")))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or(TokenError::Missing)?;
        let mut parts = token.split('.');
        let (Some(header_b64), Some(claims_b64), Some(signature_b64), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed("expected three dot-separated parts".into()));
        };
        let header: Header = decode_json(header_b64, "header")?;
        if header.alg != "RS256" {
            return Err(TokenError::Algorithm(header.alg));
        }
        let kid = header.kid.unwrap_or_default();
        let signature = URL_SAFE_NO_PAD
            .decode(signature_b64)
            .map_err(|_| TokenError::Malformed("the signature is not base64url".into()))?;
        let key = self.key(&kid).await?;
        let signed = &token[..header_b64.len() + 1 + claims_b64.len()];
        RsaPublicKeyComponents { n: &key.n, e: &key.e }
            .verify(&RSA_PKCS1_2048_8192_SHA256, signed.as_bytes(), &signature)
            .map_err(|_| TokenError::BadSignature { kid: kid.clone() })?;
        let claims: Claims = decode_json(claims_b64, "claims")?;
        self.check_claims(claims)
    }

    fn check_claims(&self, claims: Claims) -> Result<PushClaims, TokenError> {
        let now = self.clock.now().0.div_euclid(1000);
        let leeway = i64::try_from(self.config.leeway.as_secs()).unwrap_or(0);
        let issuer = claims.iss.unwrap_or_default();
        if !self.config.issuers.contains(&issuer) {
            return Err(TokenError::Issuer(issuer));
        }
        let audiences: Vec<&str> = match &claims.aud {
            Some(Value::String(one)) => vec![one.as_str()],
            Some(Value::Array(many)) => many.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        if !audiences.contains(&self.config.audience.as_str()) {
            return Err(TokenError::Audience {
                found: audiences.join(","),
                expected: self.config.audience.clone(),
            });
        }
        let expires_at =
            claims.exp.ok_or_else(|| TokenError::Malformed("no `exp` claim".into()))?;
        if expires_at + leeway <= now {
            return Err(TokenError::Expired { expired_at: expires_at, now });
        }
        if let Some(issued_at) = claims.iat {
            if issued_at - leeway > now {
                return Err(TokenError::NotYetValid { issued_at, now });
            }
        }
        if let Some(expected) = &self.config.service_account {
            let verified = claims.email_verified.unwrap_or(false);
            if claims.email.as_deref() != Some(expected.as_str()) || !verified {
                let found = claims.email.clone().unwrap_or_default();
                let found = if verified { found } else { format!("{found} (unverified)") };
                return Err(TokenError::Account { found, expected: expected.clone() });
            }
        }
        Ok(PushClaims { email: claims.email, subject: claims.sub.unwrap_or_default(), expires_at })
    }

    /// The key `kid`, from the cache or a fetch.
    async fn key(&self, kid: &str) -> Result<RsaKey, TokenError> {
        let mut cached = self.keys.lock().await;
        let now = Instant::now();
        let (fresh, known, may_refetch) = match cached.as_ref() {
            Some(set) => (
                now < set.fetched_at + set.max_age,
                set.keys.contains_key(kid),
                now >= set.fetched_at + MIN_REFETCH,
            ),
            None => (false, false, true),
        };
        if !fresh || (!known && may_refetch) {
            match self.fetch().await {
                Ok(set) => *cached = Some(set),
                Err(error) if cached.is_some() => {
                    tracing::warn!(%error, "using Google's signing keys past their age");
                }
                Err(error) => return Err(error),
            }
        }
        cached.as_ref().and_then(|set| set.keys.get(kid)).cloned().ok_or_else(|| {
            TokenError::UnknownKey { kid: kid.to_owned(), url: self.config.jwks_url.clone() }
        })
    }

    async fn fetch(&self) -> Result<KeySet, TokenError> {
        let url = &self.config.jwks_url;
        let failed = |reason: String| TokenError::Keys { url: url.clone(), reason };
        let response =
            self.client.get(url).send().await.map_err(|e| failed(crate::rest::error_chain(&e)))?;
        if !response.status().is_success() {
            return Err(failed(format!("HTTP {}", response.status())));
        }
        let max_age = response
            .headers()
            .get(reqwest::header::CACHE_CONTROL)
            .and_then(|v| v.to_str().ok())
            .and_then(max_age)
            .unwrap_or(DEFAULT_MAX_AGE);
        let jwks: Jwks = response.json().await.map_err(|e| failed(format!("not a JWKS: {e}")))?;
        let mut keys = HashMap::new();
        for jwk in jwks.keys {
            if jwk.kty.as_deref().is_some_and(|k| k != "RSA") {
                continue;
            }
            let (Some(kid), Some(n), Some(e)) = (jwk.kid, jwk.n, jwk.e) else { continue };
            let (Ok(n), Ok(e)) = (URL_SAFE_NO_PAD.decode(n), URL_SAFE_NO_PAD.decode(e)) else {
                continue;
            };
            keys.insert(kid, RsaKey { n, e });
        }
        tracing::debug!(
            keys = keys.len(),
            max_age_s = max_age.as_secs(),
            "fetched google's signing keys"
        );
        Ok(KeySet { keys, fetched_at: Instant::now(), max_age })
    }
}

fn decode_json<T: serde::de::DeserializeOwned>(part: &str, what: &str) -> Result<T, TokenError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| TokenError::Malformed(format!("the {what} is not base64url")))?;
    serde_json::from_slice(&bytes)
        .map_err(|e| TokenError::Malformed(format!("the {what} is not the expected JSON: {e}")))
}

/// `max-age=N` of a `Cache-Control` value.
fn max_age(cache_control: &str) -> Option<Duration> {
    cache_control.split(',').find_map(|directive| {
        let (name, value) = directive.trim().split_once('=')?;
        (name.eq_ignore_ascii_case("max-age"))
            .then(|| value.trim().parse().ok().map(Duration::from_secs))
            .flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::max_age;
    use std::time::Duration;

    #[test]
    fn reads_max_age_from_cache_control() {
        let google = "public, max-age=19523, must-revalidate, no-transform";
        assert_eq!(max_age(google), Some(Duration::from_secs(19_523)));
        assert_eq!(max_age("no-cache"), None);
        assert_eq!(max_age("max-age=nope"), None);
    }
}
