//! GitHub deliveries: `X-Hub-Signature-256` (HMAC-SHA256 of the raw body with the webhook secret,
//! checked in constant time by `ring`), then `issues`, `issue_comment` and `pull_request_review`.

use axum::http::HeaderMap;
use serde_json::Value;

use super::{command, header, Parsed, Refused, Trigger};
use crate::api::text;
use crate::secret::Secret;

/// Who may command Cadre in a comment: people with write access, not any passer-by on a public repo.
const TRUSTED: &[&str] = &["OWNER", "MEMBER", "COLLABORATOR"];

/// The `X-Hub-Signature-256` value GitHub sends for `body` (`sha256=<hex>`), for senders and tests.
#[must_use]
pub fn signature(secret: &str, body: &[u8]) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    format!("sha256={}", hex::encode(ring::hmac::sign(&key, body).as_ref()))
}

/// Checks and reads a delivery: `(delivery id, what to do)`.
pub(crate) fn check(
    secret: &Secret,
    label: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(String, Parsed), Refused> {
    let signature = header(headers, "x-hub-signature-256")
        .ok_or(Refused::Unauthorized("the X-Hub-Signature-256 header is missing"))?;
    let tag = signature
        .strip_prefix("sha256=")
        .and_then(|h| hex::decode(h).ok())
        .ok_or(Refused::Unauthorized("X-Hub-Signature-256 is not sha256=<hex>"))?;
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.expose().as_bytes());
    ring::hmac::verify(&key, body, &tag)
        .map_err(|_| Refused::Unauthorized("the signature does not match the body"))?;
    let event = header(headers, "x-github-event")
        .ok_or_else(|| Refused::Malformed("the X-GitHub-Event header is missing".to_owned()))?;
    let delivery = header(headers, "x-github-delivery")
        .ok_or_else(|| Refused::Malformed("the X-GitHub-Delivery header is missing".to_owned()))?;
    let payload: Value = serde_json::from_slice(body)
        .map_err(|e| Refused::Malformed(format!("the body is not JSON: {e}")))?;
    Ok((delivery.to_owned(), parse(event, label, &payload)?))
}

fn parse(event: &str, label: &str, p: &Value) -> Result<Parsed, Refused> {
    let missing = |field: &str| Refused::Malformed(format!("a `{event}` event without `{field}`"));
    let number =
        |pointer: &str| p.pointer(pointer).and_then(Value::as_u64).ok_or_else(|| missing(pointer));
    let repository = || {
        let name = text(p, "/repository/full_name");
        if name.is_empty() {
            Err(missing("repository.full_name"))
        } else {
            Ok(name)
        }
    };
    let at = |pointer: &str| crate::time::parse(&text(p, pointer));
    let action = text(p, "/action");
    match event {
        "issues" => {
            if action != "labeled" {
                return Ok(Parsed::Ignore("an issue event other than `labeled`"));
            }
            if text(p, "/label/name") != label {
                return Ok(Parsed::Ignore("another label"));
            }
            Ok(Parsed::Act {
                repository: repository()?,
                trigger: Trigger::Labeled {
                    number: number("/issue/number")?,
                    title: text(p, "/issue/title"),
                    body: text(p, "/issue/body"),
                },
                at: at("/issue/updated_at"),
            })
        }
        "issue_comment" => {
            if action != "created" {
                return Ok(Parsed::Ignore("a comment edit or deletion"));
            }
            let Some(text_after) = command(&text(p, "/comment/body")) else {
                return Ok(Parsed::Ignore("a comment that is not a /cadre command"));
            };
            if !TRUSTED.contains(&text(p, "/comment/author_association").as_str()) {
                return Ok(Parsed::Ignore("a /cadre command from someone without write access"));
            }
            Ok(Parsed::Act {
                repository: repository()?,
                trigger: Trigger::Command {
                    number: number("/issue/number")?,
                    on_pull_request: p.pointer("/issue/pull_request").is_some(),
                    author: text(p, "/comment/user/login"),
                    text: text_after,
                    title: text(p, "/issue/title"),
                    body: text(p, "/issue/body"),
                },
                at: at("/comment/created_at"),
            })
        }
        "pull_request_review" => {
            if action != "submitted" {
                return Ok(Parsed::Ignore("a review edit or dismissal"));
            }
            let branch = text(p, "/pull_request/head/ref");
            if !branch.starts_with("cadre/") {
                return Ok(Parsed::Ignore("a review on a pull request Cadre did not open"));
            }
            Ok(Parsed::Act {
                repository: repository()?,
                trigger: Trigger::Review {
                    number: number("/pull_request/number")?,
                    branch,
                    author: text(p, "/review/user/login"),
                    state: text(p, "/review/state").to_lowercase(),
                    body: text(p, "/review/body"),
                },
                at: at("/review/submitted_at"),
            })
        }
        _ => Ok(Parsed::Ignore("an event Cadre does not act on")),
    }
}
