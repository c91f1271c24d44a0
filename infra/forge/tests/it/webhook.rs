//! The webhook receiver on a real socket: signatures, replays, unknown and malformed events; only an
//! authentic, fresh trigger starts a task, and nothing is stored for the rest.

use async_trait::async_trait;
use cadre_domain::ports::clock::ManualClock;
use cadre_domain::Timestamp;
use cadre_forge::webhook::{
    router, DeliveryLog, ForgeKind, StartError, Started, TaskStarter, Trigger, TriggerEvent,
    WebhookConfig, Webhooks,
};
use cadre_forge::Secret;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};

const SECRET: &str = "It's a Secret to Everybody";
/// 2024-03-01T12:00:00Z, the fixtures' "now".
const NOW_MS: i64 = 1_709_294_400_000;

#[derive(Default)]
struct Recorder {
    started: Mutex<Vec<TriggerEvent>>,
    fail: Mutex<bool>,
}

#[async_trait]
impl TaskStarter for Recorder {
    async fn start(&self, event: &TriggerEvent) -> Result<Started, StartError> {
        if *self.fail.lock().unwrap() {
            return Err(StartError("the store is down".to_owned()));
        }
        self.started.lock().unwrap().push(event.clone());
        Ok(match event.trigger {
            Trigger::Review { .. } => {
                Started::FollowUpRecorded { task: Some("0193a1b2".to_owned()) }
            }
            _ => Started::Task { id: format!("task-{}", self_count(self)) },
        })
    }
}

fn self_count(r: &Recorder) -> usize {
    r.started.lock().unwrap().len()
}

struct Receiver {
    url: String,
    recorder: Arc<Recorder>,
    deliveries: DeliveryLog,
    client: reqwest::Client,
    _dir: tempfile::TempDir,
}

impl Receiver {
    async fn start() -> Receiver {
        let dir = tempfile::tempdir().unwrap();
        let deliveries = DeliveryLog::open(&dir.path().join("cadre.db")).unwrap();
        let recorder = Arc::new(Recorder::default());
        let config = WebhookConfig::new(
            Some(Secret::new(SECRET, "secret").unwrap()),
            Some(Secret::new("gl-token", "token").unwrap()),
        );
        let app = router(Webhooks {
            config,
            deliveries: deliveries.clone(),
            starter: recorder.clone(),
            clock: Arc::new(ManualClock::new(Timestamp(NOW_MS))),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Receiver { url, recorder, deliveries, client: reqwest::Client::new(), _dir: dir }
    }

    async fn github(
        &self,
        event: &str,
        delivery: &str,
        body: &[u8],
        signature: &str,
    ) -> (u16, Value) {
        let response = self
            .client
            .post(format!("{}/github", self.url))
            .header("X-GitHub-Event", event)
            .header("X-GitHub-Delivery", delivery)
            .header("X-Hub-Signature-256", signature)
            .header("content-type", "application/json")
            .body(body.to_vec())
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn gitlab(&self, event: &str, uuid: &str, body: &Value, token: &str) -> u16 {
        self.client
            .post(format!("{}/gitlab", self.url))
            .header("X-Gitlab-Event", event)
            .header("X-Gitlab-Event-UUID", uuid)
            .header("X-Gitlab-Token", token)
            .json(body)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }

    fn started(&self) -> Vec<TriggerEvent> {
        self.recorder.started.lock().unwrap().clone()
    }

    async fn stored(&self) -> Vec<String> {
        self.deliveries
            .deliveries()
            .await
            .unwrap()
            .into_iter()
            .map(|(f, d, _)| format!("{f}:{d}"))
            .collect()
    }
}

/// GitHub's `sha256=<hex HMAC of the body>`.
fn sign(body: &[u8]) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, SECRET.as_bytes());
    format!("sha256={}", hex::encode(ring::hmac::sign(&key, body).as_ref()))
}

fn labeled_issue(label: &str, updated_at: &str) -> Vec<u8> {
    json!({
        "action": "labeled",
        "label": { "name": label },
        "issue": { "number": 12, "title": "Parser crashes on empty input", "body": "Steps: …", "updated_at": updated_at },
        "repository": { "full_name": "octo/widgets" }
    })
    .to_string()
    .into_bytes()
}

#[test]
fn the_signature_helper_matches_githubs_documented_example() {
    // https://docs.github.com/en/webhooks/using-webhooks/validating-webhook-deliveries#testing-the-webhook-payload-validation
    assert_eq!(
        sign(b"Hello, World!"),
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    );
}

#[tokio::test]
async fn github_only_a_validly_signed_fresh_delivery_starts_a_task() {
    let r = Receiver::start().await;
    let body = labeled_issue("cadre", "2024-03-01T11:59:00Z");

    // Valid: 202, one task, the delivery recorded.
    let (status, answer) = r.github("issues", "d-1", &body, &sign(&body)).await;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(answer["status"], "task started");
    assert_eq!(
        r.started(),
        [TriggerEvent {
            forge: ForgeKind::GitHub,
            delivery: "d-1".to_owned(),
            repository: "octo/widgets".to_owned(),
            trigger: Trigger::Labeled {
                number: 12,
                title: "Parser crashes on empty input".to_owned(),
                body: "Steps: …".to_owned()
            },
        }]
    );

    // Tampered body under the original signature: 401.
    let mut tampered = body.clone();
    let at = tampered.iter().position(|&b| b == b'1').unwrap();
    tampered[at] = b'9';
    assert_eq!(r.github("issues", "d-2", &tampered, &sign(&body)).await.0, 401);
    // No signature, or not hex: 401.
    assert_eq!(r.github("issues", "d-3", &body, "").await.0, 401);
    assert_eq!(r.github("issues", "d-3", &body, "sha256=zz").await.0, 401);
    // The same delivery again: 409.
    assert_eq!(r.github("issues", "d-1", &body, &sign(&body)).await.0, 409);
    // An event Cadre does not act on, and another label: 204.
    let star = br#"{"action":"created","repository":{"full_name":"octo/widgets"}}"#;
    assert_eq!(r.github("star", "d-4", star, &sign(star)).await.0, 204);
    let other = labeled_issue("bug", "2024-03-01T11:59:00Z");
    assert_eq!(r.github("issues", "d-5", &other, &sign(&other)).await.0, 204);
    // Signed but malformed: 400.
    let junk = b"{not json";
    assert_eq!(r.github("issues", "d-6", junk, &sign(junk)).await.0, 400);
    let no_number = br#"{"action":"labeled","label":{"name":"cadre"},"issue":{},"repository":{"full_name":"o/r"}}"#;
    assert_eq!(r.github("issues", "d-7", no_number, &sign(no_number)).await.0, 400);
    // Signed and new, but the event itself is older than the replay window (3 days): 409.
    let old = labeled_issue("cadre", "2024-02-20T00:00:00Z");
    assert_eq!(r.github("issues", "d-8", &old, &sign(&old)).await.0, 409);

    assert_eq!(r.started().len(), 1, "only the first delivery started a task");
    assert_eq!(r.stored().await, ["github:d-1"], "nothing is stored for refused deliveries");
}

#[tokio::test]
async fn github_comments_and_reviews() {
    let r = Receiver::start().await;
    let comment = |assoc: &str, text: &str| {
        json!({
            "action": "created",
            "issue": { "number": 5, "title": "Flaky test", "body": "it flakes", "pull_request": { "url": "x" } },
            "comment": { "body": text, "author_association": assoc, "user": { "login": "ada" }, "created_at": "2024-03-01T11:00:00Z" },
            "repository": { "full_name": "octo/widgets" }
        })
        .to_string()
        .into_bytes()
    };
    let by_member = comment("MEMBER", "/cadre make the test deterministic");
    assert_eq!(r.github("issue_comment", "c-1", &by_member, &sign(&by_member)).await.0, 202);
    let by_stranger = comment("NONE", "/cadre rm -rf everything");
    assert_eq!(r.github("issue_comment", "c-2", &by_stranger, &sign(&by_stranger)).await.0, 204);
    let chatter = comment("OWNER", "thanks /cadre");
    assert_eq!(r.github("issue_comment", "c-3", &chatter, &sign(&chatter)).await.0, 204);

    let review = |branch: &str| {
        json!({
            "action": "submitted",
            "review": { "state": "CHANGES_REQUESTED", "body": "handle None too", "user": { "login": "rev" }, "submitted_at": "2024-03-01T11:30:00Z" },
            "pull_request": { "number": 9, "head": { "ref": branch } },
            "repository": { "full_name": "octo/widgets" }
        })
        .to_string()
        .into_bytes()
    };
    let on_cadre = review("cadre/0193a1b2-fix");
    let (status, answer) =
        r.github("pull_request_review", "r-1", &on_cadre, &sign(&on_cadre)).await;
    assert_eq!(status, 202);
    assert_eq!(answer["status"], "follow-up recorded");
    let on_other = review("feature/x");
    assert_eq!(r.github("pull_request_review", "r-2", &on_other, &sign(&on_other)).await.0, 204);

    let started = r.started();
    assert_eq!(started.len(), 2);
    assert_eq!(
        started[0].trigger,
        Trigger::Command {
            number: 5,
            on_pull_request: true,
            author: "ada".to_owned(),
            text: "make the test deterministic".to_owned(),
            title: "Flaky test".to_owned(),
            body: "it flakes".to_owned(),
        }
    );
    assert_eq!(
        started[1].trigger,
        Trigger::Review {
            number: 9,
            branch: "cadre/0193a1b2-fix".to_owned(),
            author: "rev".to_owned(),
            state: "changes_requested".to_owned(),
            body: "handle None too".to_owned(),
        }
    );
    assert_eq!(r.stored().await, ["github:c-1", "github:r-1"]);
}

#[tokio::test]
async fn a_delivery_that_could_not_start_is_released_for_redelivery() {
    let r = Receiver::start().await;
    let body = labeled_issue("cadre", "2024-03-01T11:59:00Z");
    *r.recorder.fail.lock().unwrap() = true;
    assert_eq!(r.github("issues", "d-1", &body, &sign(&body)).await.0, 500);
    assert!(r.stored().await.is_empty());
    *r.recorder.fail.lock().unwrap() = false;
    assert_eq!(
        r.github("issues", "d-1", &body, &sign(&body)).await.0,
        202,
        "the redelivery is accepted"
    );
}

#[tokio::test]
async fn gitlab_token_replay_and_unknown_events() {
    let r = Receiver::start().await;
    let issue = json!({
        "object_kind": "issue",
        "project": { "path_with_namespace": "group/widgets" },
        "object_attributes": { "iid": 4, "title": "Add --json", "description": "please", "action": "update", "updated_at": "2024-03-01 11:58:00 UTC" },
        "changes": { "labels": { "previous": [], "current": [{ "title": "cadre" }] } }
    });
    assert_eq!(r.gitlab("Issue Hook", "u-1", &issue, "gl-token").await, 202);
    assert_eq!(r.gitlab("Issue Hook", "u-2", &issue, "wrong").await, 401);
    assert_eq!(r.gitlab("Issue Hook", "u-1", &issue, "gl-token").await, 409);
    assert_eq!(
        r.gitlab("Pipeline Hook", "u-3", &json!({ "object_kind": "pipeline" }), "gl-token").await,
        204
    );
    let relabel = json!({
        "project": { "path_with_namespace": "group/widgets" },
        "object_attributes": { "iid": 4, "action": "update" },
        "changes": { "labels": { "previous": [{ "title": "cadre" }], "current": [{ "title": "cadre" }, { "title": "bug" }] } }
    });
    assert_eq!(
        r.gitlab("Issue Hook", "u-4", &relabel, "gl-token").await,
        204,
        "the label was already there"
    );
    let review_note = json!({
        "project": { "path_with_namespace": "group/widgets" },
        "user": { "username": "rev" },
        "object_attributes": { "note": "rename this", "noteable_type": "MergeRequest", "created_at": "2024-03-01T11:00:00Z" },
        "merge_request": { "iid": 8, "source_branch": "cadre/0193a1b2-add-json" }
    });
    assert_eq!(r.gitlab("Note Hook", "u-5", &review_note, "gl-token").await, 202);
    let command = json!({
        "project": { "path_with_namespace": "group/widgets" },
        "user": { "username": "ada" },
        "object_attributes": { "note": "/cadre", "noteable_type": "Issue" },
        "issue": { "iid": 4, "title": "Add --json", "description": "please" }
    });
    assert_eq!(r.gitlab("Note Hook", "u-6", &command, "gl-token").await, 202);
    assert_eq!(
        r.gitlab(
            "Note Hook",
            "u-7",
            &json!({ "object_attributes": { "note": "/cadre" } }),
            "gl-token"
        )
        .await,
        204
    );

    let started = r.started();
    assert_eq!(started.len(), 3);
    assert_eq!(
        started[0].trigger,
        Trigger::Labeled { number: 4, title: "Add --json".to_owned(), body: "please".to_owned() }
    );
    assert!(
        matches!(&started[1].trigger, Trigger::Review { number: 8, author, .. } if author == "rev")
    );
    assert!(
        matches!(&started[2].trigger, Trigger::Command { number: 4, on_pull_request: false, text, .. } if text.is_empty())
    );
    assert_eq!(r.stored().await, ["gitlab:u-1", "gitlab:u-5", "gitlab:u-6"]);
}
