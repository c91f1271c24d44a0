//! Vertex AI: the endpoint shape, and OAuth tokens from the metadata server, an `authorized_user` file
//! or a `service_account` key (an RS256 JWT the test verifies), all served by the local `ModelServer`.
//! Tokens are cached until a minute before expiry, refreshed once on a 401, and never shown.

use std::sync::Arc;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use cadre_domain::ports::clock::ManualClock;
use cadre_domain::ports::model::{Model, ModelError};
use cadre_domain::Timestamp;
use cadre_model::{vertex_base_url, GeminiModel, GoogleCredentials};
use cadre_testkit::model_server::{form_fields, ModelServer, Scripted, Wire};
use ring::signature::{KeyPair as _, RsaKeyPair, UnparsedPublicKey, RSA_PKCS1_2048_8192_SHA256};
use serde_json::json;

use crate::{ask, vertex_at, vertex_config};

const KEY_PEM: &str = include_str!("fixtures/test_service_account_key.pem");

fn token_requests(server: &ModelServer) -> Vec<cadre_testkit::model_server::CapturedRequest> {
    server.side_requests().into_iter().filter(|r| r.wire == Wire::GoogleAuth).collect()
}

#[test]
fn the_global_location_has_no_regional_host() {
    assert_eq!(vertex_base_url("global"), "https://aiplatform.googleapis.com");
    assert_eq!(vertex_base_url("europe-west4"), "https://europe-west4-aiplatform.googleapis.com");
}

#[tokio::test]
async fn a_metadata_token_is_fetched_once_and_sent_as_a_bearer() {
    let server = ModelServer::start().await;
    server.respond_with(|_| Scripted::Text("from vertex".into()));
    let model = vertex_at(&server);
    assert_eq!(model.describe(), "vertex:gemini-test@test-project/us-central1");
    for _ in 0..3 {
        assert_eq!(model.complete(&ask("hi")).await.unwrap().text, "from vertex");
    }
    let tokens = token_requests(&server);
    assert_eq!(tokens.len(), 1, "the token is cached");
    assert_eq!(tokens[0].path, "/computeMetadata/v1/instance/service-accounts/default/token");
    assert_eq!(tokens[0].header("metadata-flavor"), Some("Google"));
    let call = &server.requests()[0];
    assert_eq!(call.path, "/v1/projects/test-project/locations/us-central1/publishers/google/models/gemini-test:generateContent");
    assert_eq!(call.header("authorization"), Some("Bearer ya29.metadata-1"));
    assert_eq!(call.header("x-goog-api-key"), None);
}

#[tokio::test]
async fn a_token_within_a_minute_of_expiry_is_fetched_again() {
    let server = ModelServer::start().await;
    server.respond_with(|_| Scripted::Text("ok".into()));
    server.set_token_lifetime(50);
    let model = vertex_at(&server);
    model.complete(&ask("a")).await.unwrap();
    model.complete(&ask("b")).await.unwrap();
    assert_eq!(token_requests(&server).len(), 2);
}

#[tokio::test]
async fn a_401_refreshes_the_token_once_and_retries() {
    let server = ModelServer::start().await;
    server.respond_with(|_| Scripted::Text("ok".into()));
    let model = vertex_at(&server);
    model.complete(&ask("a")).await.unwrap();
    server.revoke_tokens();
    model.complete(&ask("b")).await.unwrap();
    assert_eq!(token_requests(&server).len(), 2);
    let last = server.requests().last().unwrap().clone();
    assert_eq!(last.header("authorization"), Some("Bearer ya29.metadata-2"));

    // A token endpoint that keeps handing out tokens the API refuses: one retry, then the 401.
    server.push_side(Scripted::Status {
        code: 200,
        body: json!({"access_token": "ya29.bogus-1", "expires_in": 3600}),
    });
    server.revoke_tokens();
    let error = model.complete(&ask("c")).await.unwrap_err();
    assert!(matches!(error, ModelError::Rejected { status: 401, .. }), "{error:?}");
    assert!(!format!("{error} {error:?} {model:?}").contains("ya29"), "{error:?}");
}

#[tokio::test]
async fn an_authorized_user_file_uses_the_refresh_grant() {
    let server = ModelServer::start().await;
    server.push(Scripted::Text("ok".into()));
    let file = json!({"type": "authorized_user", "client_id": "cid.apps.googleusercontent.com",
        "client_secret": "client-secret-value", "refresh_token": "1//refresh-token-value",
        "token_uri": format!("{}/token", server.base_url())});
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("adc.json");
    std::fs::write(&path, file.to_string()).unwrap();
    let path_text = path.display().to_string();
    let credentials = GoogleCredentials::discover(&|name| {
        (name == "GOOGLE_APPLICATION_CREDENTIALS").then(|| path_text.clone())
    })
    .unwrap();
    let model = GeminiModel::vertex(vertex_config(&server, credentials)).unwrap();
    model.complete(&ask("hi")).await.unwrap();
    let [grant] = token_requests(&server).try_into().unwrap();
    let fields = form_fields(&grant);
    assert_eq!(fields["grant_type"], "refresh_token");
    assert_eq!(fields["refresh_token"], "1//refresh-token-value");
    assert_eq!(fields["client_secret"], "client-secret-value");
    assert_eq!(server.requests()[0].header("authorization"), Some("Bearer ya29.oauth-1"));
    let shown = format!("{model:?}");
    assert!(
        !shown.contains("client-secret-value") && !shown.contains("refresh-token-value"),
        "{shown}"
    );
}

#[tokio::test]
async fn a_refused_refresh_is_not_configured_and_names_the_fix_without_secrets() {
    let server = ModelServer::start().await;
    server.push_side(Scripted::Status {
        code: 400,
        body: json!({"error": "invalid_grant", "error_description": "Token has been expired or revoked."}),
    });
    let file = json!({"type": "authorized_user", "client_id": "cid", "client_secret": "s3cret",
        "refresh_token": "1//r3fresh", "token_uri": format!("{}/token", server.base_url())});
    let credentials = GoogleCredentials::from_json(&file.to_string(), "adc.json").unwrap();
    let model = GeminiModel::vertex(vertex_config(&server, credentials)).unwrap();
    let error = model.complete(&ask("hi")).await.unwrap_err();
    let ModelError::NotConfigured { hint } = &error else { panic!("{error:?}") };
    assert!(
        hint.contains("invalid_grant") && hint.contains("gcloud auth application-default login"),
        "{hint}"
    );
    assert!(!hint.contains("s3cret") && !hint.contains("r3fresh"));
    assert!(!error.is_retryable());
    assert_eq!(server.request_count(), 0);
}

/// The key of the fixture, as DER.
fn key_der() -> Vec<u8> {
    let body: String = KEY_PEM.lines().filter(|l| !l.starts_with("-----")).collect();
    STANDARD.decode(body).unwrap()
}

#[tokio::test]
async fn a_service_account_signs_an_rs256_assertion_the_token_endpoint_can_verify() {
    let server = ModelServer::start().await;
    server.push(Scripted::Text("ok".into()));
    let token_uri = format!("{}/token", server.base_url());
    let file = json!({"type": "service_account", "project_id": "test-project", "private_key_id": "kid-1",
        "private_key": KEY_PEM, "client_email": "cadre@test-project.iam.gserviceaccount.com",
        "client_id": "123", "token_uri": token_uri});
    let credentials = GoogleCredentials::from_json(&file.to_string(), "sa.json").unwrap();
    let mut config = vertex_config(&server, credentials);
    config.clock = Arc::new(ManualClock::new(Timestamp(1_800_000_000_000)));
    let model = GeminiModel::vertex(config).unwrap();
    model.complete(&ask("hi")).await.unwrap();

    let [grant] = token_requests(&server).try_into().unwrap();
    let fields = form_fields(&grant);
    assert_eq!(fields["grant_type"], "urn:ietf:params:oauth:grant-type:jwt-bearer");
    let assertion = &fields["assertion"];
    let parts: Vec<&str> = assertion.split('.').collect();
    let decode = |part: &str| -> serde_json::Value {
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
    };
    assert_eq!(decode(parts[0]), json!({"alg": "RS256", "typ": "JWT", "kid": "kid-1"}));
    assert_eq!(
        decode(parts[1]),
        json!({"iss": "cadre@test-project.iam.gserviceaccount.com",
               "scope": "https://www.googleapis.com/auth/cloud-platform",
               "aud": token_uri, "iat": 1_800_000_000, "exp": 1_800_003_600})
    );
    let key = RsaKeyPair::from_pkcs8(&key_der()).unwrap();
    let public = UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, key.public_key().as_ref());
    let signature = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
    public.verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &signature).unwrap();
    assert!(!format!("{model:?}").contains("PRIVATE KEY"));
}

#[tokio::test]
async fn an_unreachable_metadata_server_names_its_endpoint() {
    let dead = crate::dead_port_url();
    let server = ModelServer::start().await;
    let host = dead.trim_start_matches("http://").to_owned();
    let credentials = GoogleCredentials::metadata_server(Some(&host));
    let model = GeminiModel::vertex(vertex_config(&server, credentials)).unwrap();
    let error = model.complete(&ask("hi")).await.unwrap_err();
    assert!(
        matches!(&error, ModelError::Unreachable { endpoint, .. } if endpoint.contains(&host) && endpoint.contains("computeMetadata")),
        "{error:?}"
    );
}

#[test]
fn bad_projects_and_locations_name_the_variable() {
    let credentials = GoogleCredentials::metadata_server(None);
    let mut config = cadre_model::VertexConfig::new("", "global", credentials.clone());
    let error = GeminiModel::vertex(config.clone()).unwrap_err().to_string();
    assert!(error.contains("GOOGLE_CLOUD_PROJECT"), "{error}");
    config.project = "p".into();
    config.location = "us central".into();
    let error = GeminiModel::vertex(config).unwrap_err().to_string();
    assert!(error.contains("GOOGLE_CLOUD_LOCATION"), "{error}");
}
