//! GitLab deliveries: `X-Gitlab-Token` (the shared secret, compared in constant time), then issue,
//! note and merge request hooks.

use axum::http::HeaderMap;
use serde_json::Value;
use subtle::ConstantTimeEq;

use super::{command, header, Parsed, Refused, Trigger};
use crate::api::text;
use crate::secret::Secret;

/// Checks and reads a delivery: `(delivery id, what to do)`.
pub(crate) fn check(
    secret: &Secret,
    label: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(String, Parsed), Refused> {
    let token = header(headers, "x-gitlab-token")
        .ok_or(Refused::Unauthorized("the X-Gitlab-Token header is missing"))?;
    // Digests first, so the comparison takes the same time whatever the lengths.
    let sha256 = |b: &[u8]| ring::digest::digest(&ring::digest::SHA256, b);
    let (given, expected) = (sha256(token.as_bytes()), sha256(secret.expose().as_bytes()));
    if !bool::from(given.as_ref().ct_eq(expected.as_ref())) {
        return Err(Refused::Unauthorized("the X-Gitlab-Token does not match"));
    }
    let event = header(headers, "x-gitlab-event")
        .ok_or_else(|| Refused::Malformed("the X-Gitlab-Event header is missing".to_owned()))?;
    let delivery = header(headers, "x-gitlab-event-uuid").ok_or_else(|| {
        Refused::Malformed("the X-Gitlab-Event-UUID header is missing".to_owned())
    })?;
    let payload: Value = serde_json::from_slice(body)
        .map_err(|e| Refused::Malformed(format!("the body is not JSON: {e}")))?;
    Ok((delivery.to_owned(), parse(event, label, &payload)?))
}

fn parse(event: &str, label: &str, p: &Value) -> Result<Parsed, Refused> {
    let missing = |field: &str| Refused::Malformed(format!("a `{event}` without `{field}`"));
    let number =
        |pointer: &str| p.pointer(pointer).and_then(Value::as_u64).ok_or_else(|| missing(pointer));
    let repository = || {
        let name = text(p, "/project/path_with_namespace");
        if name.is_empty() {
            Err(missing("project.path_with_namespace"))
        } else {
            Ok(name)
        }
    };
    let at = |pointer: &str| crate::time::parse(&text(p, pointer));
    let has_label = |labels: Option<&Value>| {
        labels.and_then(Value::as_array).is_some_and(|ls| {
            ls.iter().any(|l| l.get("title").and_then(Value::as_str) == Some(label))
        })
    };
    match event {
        "Issue Hook" | "Confidential Issue Hook" => {
            let action = text(p, "/object_attributes/action");
            // Just labelled: opened with the label, or updated so that the label is new.
            let labelled = match action.as_str() {
                "open" => has_label(p.get("labels")),
                "update" => {
                    has_label(p.pointer("/changes/labels/current"))
                        && !has_label(p.pointer("/changes/labels/previous"))
                }
                _ => false,
            };
            if !labelled {
                return Ok(Parsed::Ignore("an issue event that does not add the label"));
            }
            Ok(Parsed::Act {
                repository: repository()?,
                trigger: Trigger::Labeled {
                    number: number("/object_attributes/iid")?,
                    title: text(p, "/object_attributes/title"),
                    body: text(p, "/object_attributes/description"),
                },
                at: at("/object_attributes/updated_at"),
            })
        }
        "Note Hook" | "Confidential Note Hook" => {
            let note = text(p, "/object_attributes/note");
            let kind = text(p, "/object_attributes/noteable_type");
            let at = at("/object_attributes/created_at");
            if let Some(text_after) = command(&note) {
                let (number, on_pull_request, title, body) = match kind.as_str() {
                    "Issue" => (
                        number("/issue/iid")?,
                        false,
                        text(p, "/issue/title"),
                        text(p, "/issue/description"),
                    ),
                    "MergeRequest" => (
                        number("/merge_request/iid")?,
                        true,
                        text(p, "/merge_request/title"),
                        text(p, "/merge_request/description"),
                    ),
                    _ => return Ok(Parsed::Ignore("a command on a commit or snippet")),
                };
                return Ok(Parsed::Act {
                    repository: repository()?,
                    trigger: Trigger::Command {
                        number,
                        on_pull_request,
                        author: text(p, "/user/username"),
                        text: text_after,
                        title,
                        body,
                    },
                    at,
                });
            }
            let branch = text(p, "/merge_request/source_branch");
            if kind != "MergeRequest" || !branch.starts_with("cadre/") {
                return Ok(Parsed::Ignore(
                    "a note that is neither a command nor a review of Cadre's request",
                ));
            }
            Ok(Parsed::Act {
                repository: repository()?,
                trigger: Trigger::Review {
                    number: number("/merge_request/iid")?,
                    branch,
                    author: text(p, "/user/username"),
                    state: "commented".to_owned(),
                    body: note,
                },
                at,
            })
        }
        _ => Ok(Parsed::Ignore("an event Cadre does not act on")),
    }
}
