//! `OidcVerifier` against tokens this test signs and a local JWKS server standing in for Google's
//! (`https://www.googleapis.com/oauth2/v3/certs`): the same JSON shape and `Cache-Control` header.
//!
//! What only a real project shows: Google's actual keys and their rotation, and the exact claims a real
//! push subscription puts in its token (the Pub/Sub emulator sends no token at all).

use std::sync::Arc;

use cadre_domain::ports::clock::ManualClock;
use cadre_domain::Timestamp;
use cadre_gcp::{OidcConfig, OidcVerifier, TokenError};
use serde_json::json;

use crate::support::{push_claims, JwksServer, SigningKey};

const AUDIENCE: &str = "cadre-core-plan";
const NOW_S: i64 = 1_795_564_800;

async fn verifier(jwks: &JwksServer, service_account: Option<&str>) -> OidcVerifier {
    let mut config = OidcConfig::google(AUDIENCE);
    config.jwks_url = jwks.url.clone();
    config.service_account = service_account.map(str::to_owned);
    let clock = Arc::new(ManualClock::new(Timestamp(NOW_S * 1000)));
    OidcVerifier::new(config, clock).unwrap()
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

#[tokio::test]
async fn a_token_google_signed_for_this_audience_passes_and_keys_are_fetched_once() {
    let key = SigningKey::google();
    let jwks = JwksServer::start(vec![key.jwk()], 3600).await;
    let verifier = verifier(&jwks, Some("push@cadre-test.iam.gserviceaccount.com")).await;
    for _ in 0..3 {
        let claims = verifier
            .verify(Some(&bearer(&key.sign(&push_claims(AUDIENCE, NOW_S - 10)))))
            .await
            .unwrap();
        assert_eq!(claims.email.as_deref(), Some("push@cadre-test.iam.gserviceaccount.com"));
        assert_eq!(claims.expires_at, NOW_S - 10 + 3600);
    }
    assert_eq!(jwks.fetches(), 1, "the key set is cached");
}

#[tokio::test]
async fn keys_past_their_max_age_are_fetched_again() {
    let key = SigningKey::google();
    let jwks = JwksServer::start(vec![key.jwk()], 0).await;
    let verifier = verifier(&jwks, None).await;
    for _ in 0..2 {
        verifier.verify(Some(&bearer(&key.sign(&push_claims(AUDIENCE, NOW_S))))).await.unwrap();
    }
    assert_eq!(jwks.fetches(), 2, "max-age=0 means every verification fetches");
}

#[tokio::test]
async fn expired_wrong_audience_wrong_issuer_and_wrong_account_are_refused() {
    let key = SigningKey::google();
    let jwks = JwksServer::start(vec![key.jwk()], 3600).await;
    let verifier = verifier(&jwks, Some("push@cadre-test.iam.gserviceaccount.com")).await;
    let check = |claims: serde_json::Value| {
        let token = bearer(&key.sign(&claims));
        let verifier = &verifier;
        async move { verifier.verify(Some(&token)).await.unwrap_err() }
    };
    let mut expired = push_claims(AUDIENCE, NOW_S - 7200);
    expired["exp"] = json!(NOW_S - 3600);
    assert_eq!(check(expired).await, TokenError::Expired { expired_at: NOW_S - 3600, now: NOW_S });
    assert!(matches!(
        check(push_claims("https://someone-else.run.app", NOW_S)).await,
        TokenError::Audience { found, expected } if found == "https://someone-else.run.app" && expected == AUDIENCE
    ));
    let mut issuer = push_claims(AUDIENCE, NOW_S);
    issuer["iss"] = json!("https://evil.example");
    assert_eq!(check(issuer).await, TokenError::Issuer("https://evil.example".into()));
    let mut account = push_claims(AUDIENCE, NOW_S);
    account["email"] = json!("intruder@elsewhere.iam.gserviceaccount.com");
    assert!(matches!(check(account).await, TokenError::Account { .. }));
    let mut unverified = push_claims(AUDIENCE, NOW_S);
    unverified["email_verified"] = json!(false);
    assert!(
        matches!(check(unverified).await, TokenError::Account { found, .. } if found.contains("unverified"))
    );
    let mut future = push_claims(AUDIENCE, NOW_S + 600);
    future["exp"] = json!(NOW_S + 4200);
    assert!(matches!(check(future).await, TokenError::NotYetValid { .. }));
}

#[tokio::test]
async fn forged_signatures_unknown_keys_and_garbage_are_refused() {
    let key = SigningKey::google();
    let jwks = JwksServer::start(vec![key.jwk()], 3600).await;
    let verifier = verifier(&jwks, None).await;
    let forged = SigningKey::forger().sign(&push_claims(AUDIENCE, NOW_S));
    assert_eq!(
        verifier.verify(Some(&bearer(&forged))).await.unwrap_err(),
        TokenError::BadSignature { kid: "google-key-1".into() }
    );
    // A claim edited after signing.
    let genuine = key.sign(&push_claims(AUDIENCE, NOW_S));
    let parts: Vec<&str> = genuine.split('.').collect();
    let mut edited = push_claims(AUDIENCE, NOW_S);
    edited["email"] = json!("admin@example.com");
    use base64::Engine as _;
    let edited_b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(edited.to_string());
    let tampered = format!("{}.{edited_b64}.{}", parts[0], parts[2]);
    assert!(matches!(
        verifier.verify(Some(&bearer(&tampered))).await,
        Err(TokenError::BadSignature { .. })
    ));

    let mut stranger = SigningKey::google();
    stranger.kid = "rotated-key-2".into();
    let unknown = stranger.sign(&push_claims(AUDIENCE, NOW_S));
    assert!(matches!(
        verifier.verify(Some(&bearer(&unknown))).await,
        Err(TokenError::UnknownKey { kid, .. }) if kid == "rotated-key-2"
    ));
    let fetches = jwks.fetches();
    let _ = verifier.verify(Some(&bearer(&unknown))).await;
    assert_eq!(jwks.fetches(), fetches, "an unknown kid refetches at most every 30 s");

    assert_eq!(verifier.verify(None).await.unwrap_err(), TokenError::Missing);
    assert_eq!(verifier.verify(Some("Basic dXNlcjpwYXNz")).await.unwrap_err(), TokenError::Missing);
    assert!(matches!(verifier.verify(Some("Bearer a.b")).await, Err(TokenError::Malformed(_))));
    let none_alg = format!(
        "{}.{}.",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#),
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(push_claims(AUDIENCE, NOW_S).to_string())
    );
    assert_eq!(
        verifier.verify(Some(&bearer(&none_alg))).await.unwrap_err(),
        TokenError::Algorithm("none".into())
    );
}

#[tokio::test]
async fn unreachable_keys_are_a_retryable_refusal() {
    let mut config = OidcConfig::google(AUDIENCE);
    config.jwks_url = "http://127.0.0.1:9/certs".into();
    let verifier =
        OidcVerifier::new(config, Arc::new(ManualClock::new(Timestamp(NOW_S * 1000)))).unwrap();
    let token = SigningKey::google().sign(&push_claims(AUDIENCE, NOW_S));
    let error = verifier.verify(Some(&bearer(&token))).await.unwrap_err();
    assert!(matches!(error, TokenError::Keys { .. }) && error.is_retryable(), "{error}");
}
