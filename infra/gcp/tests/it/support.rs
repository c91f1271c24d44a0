//! Test plumbing: Pub/Sub administration on the emulator (what Terraform does in a real project),
//! signed OIDC tokens, and a local JWKS server standing in for Google's keys.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use axum::http::header::CACHE_CONTROL;
use axum::routing::get;
use axum::Router;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use cadre_domain::StepKind;
use ring::rand::SystemRandom;
use ring::rsa::PublicKeyComponents;
use ring::signature::{RsaKeyPair, RSA_PKCS1_SHA256};
use serde_json::{json, Value};

pub(crate) const STEPS: [StepKind; 5] =
    [StepKind::Index, StepKind::Plan, StepKind::Generate, StepKind::Test, StepKind::Review];

/// Creates topics and subscriptions on the Pub/Sub emulator, and pulls from them.
pub(crate) struct PubSubAdmin {
    client: reqwest::Client,
    base: String,
    pub(crate) project: String,
}

/// A message taken off a tap subscription.
#[derive(Debug, Clone)]
pub(crate) struct Pulled {
    pub(crate) data: Vec<u8>,
    pub(crate) attributes: BTreeMap<String, String>,
    pub(crate) ordering_key: Option<String>,
}

impl Pulled {
    pub(crate) fn json(&self) -> Value {
        serde_json::from_slice(&self.data).unwrap()
    }
}

impl PubSubAdmin {
    pub(crate) fn new(host: &str, project: &str) -> PubSubAdmin {
        PubSubAdmin {
            client: reqwest::Client::new(),
            base: format!("http://{host}/v1/projects/{project}"),
            project: project.to_owned(),
        }
    }

    async fn put(&self, path: &str, body: Value) {
        let response =
            self.client.put(format!("{}/{path}", self.base)).json(&body).send().await.unwrap();
        let status = response.status();
        assert!(status.is_success(), "PUT {path}: {status} {}", response.text().await.unwrap());
    }

    pub(crate) async fn topic(&self, name: &str) {
        self.put(&format!("topics/{name}"), json!({})).await;
    }

    pub(crate) async fn pull_subscription(&self, name: &str, topic: &str) {
        let topic = format!("projects/{}/topics/{topic}", self.project);
        self.put(&format!("subscriptions/{name}"), json!({ "topic": topic })).await;
    }

    /// A push subscription as the Terraform module declares it: ordering, retry backoff, dead letters.
    pub(crate) async fn push_subscription(
        &self,
        name: &str,
        topic: &str,
        endpoint: &str,
        dead: &str,
    ) {
        let project = &self.project;
        let body = json!({
            "topic": format!("projects/{project}/topics/{topic}"),
            "pushConfig": { "pushEndpoint": endpoint },
            "ackDeadlineSeconds": 60,
            "enableMessageOrdering": true,
            "retryPolicy": { "minimumBackoff": "0.1s", "maximumBackoff": "0.5s" },
            "deadLetterPolicy": { "deadLetterTopic": format!("projects/{project}/topics/{dead}"), "maxDeliveryAttempts": 10 },
        });
        self.put(&format!("subscriptions/{name}"), body).await;
    }

    /// The team's topics: one per step with a tap subscription (`{prefix}{step}-tap`) that lets a test
    /// see what was published, and the dead-letter topic with its inspection subscription.
    pub(crate) async fn team(&self, prefix: &str) {
        for step in STEPS {
            self.topic(&format!("{prefix}{step}")).await;
            self.pull_subscription(&format!("{prefix}{step}-tap"), &format!("{prefix}{step}"))
                .await;
        }
        self.topic(&format!("{prefix}dead")).await;
        self.pull_subscription(&format!("{prefix}dead-inspect"), &format!("{prefix}dead")).await;
    }

    /// Takes (and acks) what a subscription holds now.
    pub(crate) async fn pull(&self, subscription: &str) -> Vec<Pulled> {
        let url = format!("{}/subscriptions/{subscription}:pull", self.base);
        let body = json!({ "maxMessages": 100, "returnImmediately": true });
        let answer: Value =
            self.client.post(&url).json(&body).send().await.unwrap().json().await.unwrap();
        let received = answer["receivedMessages"].as_array().cloned().unwrap_or_default();
        let ack_ids: Vec<Value> = received.iter().map(|r| r["ackId"].clone()).collect();
        if !ack_ids.is_empty() {
            let url = format!("{}/subscriptions/{subscription}:acknowledge", self.base);
            self.client.post(&url).json(&json!({ "ackIds": ack_ids })).send().await.unwrap();
        }
        received
            .iter()
            .map(|r| {
                let message = &r["message"];
                Pulled {
                    data: STANDARD.decode(message["data"].as_str().unwrap_or_default()).unwrap(),
                    attributes: serde_json::from_value(message["attributes"].clone())
                        .unwrap_or_default(),
                    ordering_key: message["orderingKey"].as_str().map(str::to_owned),
                }
            })
            .collect()
    }
}

/// An RSA key that signs test tokens, and its public half as a JWK.
pub(crate) struct SigningKey {
    pair: RsaKeyPair,
    pub(crate) kid: String,
}

impl SigningKey {
    pub(crate) fn google() -> SigningKey {
        SigningKey::from_pem(include_str!("keys/google.pem"), "google-key-1")
    }

    /// A key Google never published, used under Google's `kid`.
    pub(crate) fn forger() -> SigningKey {
        SigningKey::from_pem(include_str!("keys/forger.pem"), "google-key-1")
    }

    fn from_pem(pem: &str, kid: &str) -> SigningKey {
        let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        let der = STANDARD.decode(body).unwrap();
        SigningKey { pair: RsaKeyPair::from_pkcs8(&der).unwrap(), kid: kid.to_owned() }
    }

    pub(crate) fn jwk(&self) -> Value {
        let public: PublicKeyComponents<Vec<u8>> = self.pair.public().into();
        json!({
            "kty": "RSA", "alg": "RS256", "use": "sig", "kid": self.kid,
            "n": URL_SAFE_NO_PAD.encode(&public.n), "e": URL_SAFE_NO_PAD.encode(&public.e),
        })
    }

    /// A compact RS256 JWT of `claims`.
    pub(crate) fn sign(&self, claims: &Value) -> String {
        let header = json!({ "alg": "RS256", "kid": self.kid, "typ": "JWT" });
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let mut signature = vec![0; self.pair.public().modulus_len()];
        self.pair
            .sign(&RSA_PKCS1_SHA256, &SystemRandom::new(), input.as_bytes(), &mut signature)
            .unwrap();
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature))
    }
}

/// The claims Pub/Sub's push tokens carry, for `audience`, issued at `now_s` and valid an hour.
pub(crate) fn push_claims(audience: &str, now_s: i64) -> Value {
    json!({
        "iss": "https://accounts.google.com",
        "aud": audience,
        "azp": "113774264463038321964",
        "email": "push@cadre-test.iam.gserviceaccount.com",
        "email_verified": true,
        "sub": "113774264463038321964",
        "iat": now_s,
        "exp": now_s + 3600,
    })
}

/// A local JWKS endpoint standing in for Google's, counting its fetches.
pub(crate) struct JwksServer {
    pub(crate) url: String,
    fetches: Arc<AtomicUsize>,
}

impl JwksServer {
    /// Serves `keys` with `Cache-Control: max-age={max_age}`.
    pub(crate) async fn start(keys: Vec<Value>, max_age: u64) -> JwksServer {
        let fetches = Arc::new(AtomicUsize::new(0));
        let counter = fetches.clone();
        let body = json!({ "keys": keys }).to_string();
        let app = Router::new().route(
            "/oauth2/v3/certs",
            get(move || {
                counter.fetch_add(1, Ordering::SeqCst);
                let body = body.clone();
                async move {
                    (
                        [(CACHE_CONTROL, format!("public, max-age={max_age}, must-revalidate"))],
                        [("content-type", "application/json")],
                        body,
                    )
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        JwksServer { url: format!("http://{addr}/oauth2/v3/certs"), fetches }
    }

    pub(crate) fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }
}
