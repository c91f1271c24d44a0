//! `GitLabForge` against a local server speaking the REST v4 subset Cadre uses, asserting the exact
//! requests.

use cadre_domain::ports::clock::SystemClock;
use cadre_domain::ports::forge::{ChangeRequest, CheckState, Forge, ForgeError};
use cadre_forge::{GitLabConfig, GitLabForge, Secret};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

use crate::support::rest::{Recorded, RestServer, Route};

const TOKEN: &str = "glpat-testtoken";
const P: &str = "/api/v4/projects/group%2Fsub%2Fwidgets";

fn forge(server: &RestServer) -> GitLabForge {
    let mut config =
        GitLabConfig::new("group/sub/widgets", Secret::new(TOKEN, "token").unwrap()).unwrap();
    config.api_url = format!("{}/api/v4", server.base);
    GitLabForge::new(config, Arc::new(SystemClock)).unwrap()
}

fn assert_gitlab_headers(r: &Recorded) {
    assert_eq!(r.header("private-token"), TOKEN, "{}", r.line());
    assert_eq!(r.header("authorization"), "", "GitLab gets PRIVATE-TOKEN only: {}", r.line());
}

#[tokio::test]
async fn opens_a_merge_request_then_updates_it_on_a_later_round() {
    let find = format!("{P}/merge_requests?source_branch=cadre%2F0193a1b2-fix&state=opened");
    let mr =
        json!({ "iid": 3, "web_url": "https://gitlab.com/group/sub/widgets/-/merge_requests/3" });
    let server = RestServer::start(vec![
        Route::json("GET", &find, 200, json!([])),
        Route::json("POST", &format!("{P}/merge_requests"), 201, mr.clone()),
        Route::json("GET", &find, 200, json!([mr])),
        Route::json("PUT", &format!("{P}/merge_requests/3"), 200, mr.clone()),
    ])
    .await;
    let forge = forge(&server);
    let change = |body: &str| ChangeRequest {
        branch: "cadre/0193a1b2-fix".to_owned(),
        target: "main".to_owned(),
        title: "Fix".to_owned(),
        body: body.to_owned(),
    };
    let opened = forge.open_or_update(&change("round 1")).await.unwrap();
    assert_eq!((opened.number, opened.created), (3, true));
    assert_eq!(opened.url, "https://gitlab.com/group/sub/widgets/-/merge_requests/3");
    let updated = forge.open_or_update(&change("round 2")).await.unwrap();
    assert_eq!((updated.number, updated.created), (3, false));

    let seen = server.seen();
    let lines: Vec<String> = seen.iter().map(Recorded::line).collect();
    assert_eq!(
        lines,
        [
            format!("GET {find}"),
            format!("POST {P}/merge_requests"),
            format!("GET {find}"),
            format!("PUT {P}/merge_requests/3"),
        ]
    );
    seen.iter().for_each(assert_gitlab_headers);
    assert_eq!(
        seen[1].body,
        Some(
            json!({ "source_branch": "cadre/0193a1b2-fix", "target_branch": "main", "title": "Fix", "description": "round 1" })
        )
    );
    assert_eq!(seen[3].body, Some(json!({ "title": "Fix", "description": "round 2" })));
}

#[tokio::test]
async fn reads_the_latest_pipelines_failing_job_and_its_trace_and_comments() {
    let jobs = format!("{P}/pipelines/99/jobs?per_page=100");
    let jobs2 = format!("{P}/pipelines/99/jobs?per_page=100&page=2");
    let server = RestServer::start(vec![
        Route::json("GET", &format!("{P}/merge_requests/3/pipelines"), 200, json!([{ "id": 99, "status": "failed" }, { "id": 98 }])),
        Route::json("GET", &jobs, 200, json!([{ "id": 501, "name": "build", "status": "success", "web_url": "https://ci/501" }]))
            .header("link", &format!("<{{base}}{jobs2}>; rel=\"next\"")),
        Route::json("GET", &jobs2, 200, json!([
            { "id": 502, "name": "test", "status": "failed", "web_url": "https://ci/502" },
            { "id": 503, "name": "deploy", "status": "manual" }
        ])),
        Route::text("GET", &format!("{P}/jobs/502/trace"), 200, "$ cargo test\ntest parse ... FAILED\n"),
        Route::json("POST", &format!("{P}/merge_requests/3/notes"), 201, json!({ "id": 1 })),
        Route::json("GET", &format!("{P}/merge_requests/3/notes?sort=asc&order_by=created_at&per_page=100"), 200, json!([
            { "id": 70, "body": "added 1 commit", "system": true, "author": { "username": "cadre" } },
            { "id": 71, "body": "use a match here", "system": false, "author": { "username": "rev" },
              "position": { "new_path": "src/parse.rs", "new_line": 40 } }
        ])),
    ])
    .await;
    let forge = forge(&server);
    let checks = forge.checks(3).await.unwrap();
    let states: Vec<_> =
        checks.iter().map(|c| (c.name.as_str(), c.state, c.job.as_deref())).collect();
    assert_eq!(
        states,
        [
            ("build", CheckState::Passed, Some("501")),
            ("test", CheckState::Failed, Some("502")),
            ("deploy", CheckState::Skipped, Some("503"))
        ]
    );
    let log = forge.job_log("502").await.unwrap();
    assert_eq!(log, "$ cargo test\ntest parse ... FAILED\n");
    forge.comment(3, "Round 2 pushed").await.unwrap();
    let notes = forge.review_comments(3).await.unwrap();
    assert_eq!(notes.len(), 1, "system notes are not review comments");
    assert_eq!(
        (notes[0].author.as_str(), notes[0].path.as_deref(), notes[0].line),
        ("rev", Some("src/parse.rs"), Some(40))
    );

    let seen = server.seen();
    seen.iter().for_each(assert_gitlab_headers);
    let note = seen.iter().find(|r| r.method == "POST").unwrap();
    assert_eq!(note.line(), format!("POST {P}/merge_requests/3/notes"));
    assert_eq!(note.body, Some(json!({ "body": "Round 2 pushed" })));
    assert!(server.unused().is_empty(), "{:?}", server.unused());
}

#[tokio::test]
async fn retry_after_and_refusals_map_to_the_ports_errors() {
    let server = RestServer::start(vec![
        Route::json(
            "POST",
            &format!("{P}/merge_requests/1/notes"),
            429,
            json!({ "message": "Retry later" }),
        )
        .header("retry-after", "12"),
        Route::json(
            "POST",
            &format!("{P}/merge_requests/2/notes"),
            401,
            json!({ "message": "401 Unauthorized" }),
        ),
        Route::json(
            "GET",
            &format!("{P}/jobs/9/trace"),
            404,
            json!({ "message": "404 Not found" }),
        ),
        Route::json("GET", &format!("{P}/merge_requests/4/pipelines"), 200, json!([])),
    ])
    .await;
    let forge = forge(&server);
    let limited = forge.comment(1, "x").await.unwrap_err();
    assert!(
        matches!(limited, ForgeError::RateLimited { retry_after } if retry_after == Duration::from_secs(12)),
        "{limited:?}"
    );
    // The limit is remembered: the next call waits instead of spending a request.
    assert!(matches!(forge.comment(2, "x").await, Err(ForgeError::RateLimited { .. })));
    assert_eq!(server.seen().len(), 1);
    drop(forge);
    let forge = self::forge(&server);
    assert!(matches!(forge.comment(2, "x").await, Err(ForgeError::Auth { .. })));
    assert!(matches!(forge.job_log("9").await, Err(ForgeError::NotFound { .. })));
    assert_eq!(forge.checks(4).await.unwrap(), [], "no pipeline yet: no checks");
}

#[tokio::test]
async fn a_redirect_to_another_host_is_not_followed_with_the_private_token() {
    let elsewhere = RestServer::start(vec![Route::text("GET", "/trace.txt", 200, "log")]).await;
    let server = RestServer::start(vec![Route::text("GET", &format!("{P}/jobs/7/trace"), 302, "")
        .header(
            "location",
            &format!("{}/trace.txt", elsewhere.base.replace("127.0.0.1", "localhost")),
        )])
    .await;
    let forge = forge(&server);
    let err = forge.job_log("7").await.unwrap_err();
    assert!(matches!(err, ForgeError::Unavailable { .. }), "{err:?}");
    assert!(elsewhere.seen().is_empty(), "PRIVATE-TOKEN must not reach another host");
}
