//! `GitHubForge` against a local server speaking the REST subset Cadre uses, asserting the exact
//! requests: method, path and query, headers, JSON body.

use cadre_domain::ports::clock::ManualClock;
use cadre_domain::ports::forge::{ChangeRequest, CheckState, Forge, ForgeError};
use cadre_domain::Timestamp;
use cadre_forge::{GitHubConfig, GitHubForge, Secret};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

use crate::support::rest::{Recorded, RestServer, Route};

const TOKEN: &str = "ghp_testtoken";

fn forge(server: &RestServer, clock: Arc<ManualClock>) -> GitHubForge {
    let mut config =
        GitHubConfig::new("octo/widgets", Secret::new(TOKEN, "token").unwrap()).unwrap();
    config.api_url = server.base.clone();
    GitHubForge::new(config, clock).unwrap()
}

fn clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(Timestamp(1_700_000_000_000)))
}

/// The headers every GitHub call must carry.
fn assert_github_headers(r: &Recorded) {
    assert_eq!(r.header("authorization"), format!("Bearer {TOKEN}"), "{}", r.line());
    assert_eq!(r.header("accept"), "application/vnd.github+json", "{}", r.line());
    assert_eq!(r.header("x-github-api-version"), "2022-11-28", "{}", r.line());
    assert!(r.header("user-agent").starts_with("cadre/"), "{}", r.line());
}

fn change(body: &str) -> ChangeRequest {
    ChangeRequest {
        branch: "cadre/0193a1b2-fix-parser".to_owned(),
        target: "main".to_owned(),
        title: "Fix the parser".to_owned(),
        body: body.to_owned(),
    }
}

const FIND: &str =
    "/repos/octo/widgets/pulls?head=octo%3Acadre%2F0193a1b2-fix-parser&state=open&per_page=100";

#[tokio::test]
async fn opens_a_pull_request_then_updates_it_on_a_later_round() {
    let pr = json!({ "number": 7, "html_url": "https://github.com/octo/widgets/pull/7" });
    let server = RestServer::start(vec![
        Route::json("GET", FIND, 200, json!([])),
        Route::json("POST", "/repos/octo/widgets/pulls", 201, pr.clone()),
        Route::json("GET", FIND, 200, json!([pr])),
        Route::json("PATCH", "/repos/octo/widgets/pulls/7", 200, pr.clone()),
    ])
    .await;
    let forge = forge(&server, clock());

    let opened = forge.open_or_update(&change("## Plan\nround 1")).await.unwrap();
    assert_eq!((opened.number, opened.created), (7, true));
    assert_eq!(opened.url, "https://github.com/octo/widgets/pull/7");
    let updated = forge.open_or_update(&change("## Plan\nround 2")).await.unwrap();
    assert_eq!((updated.number, updated.created), (7, false));

    let seen = server.seen();
    let lines: Vec<String> = seen.iter().map(Recorded::line).collect();
    assert_eq!(
        lines,
        [
            format!("GET {FIND}"),
            "POST /repos/octo/widgets/pulls".to_owned(),
            format!("GET {FIND}"),
            "PATCH /repos/octo/widgets/pulls/7".to_owned(),
        ]
    );
    seen.iter().for_each(assert_github_headers);
    assert_eq!(
        seen[1].body,
        Some(
            json!({ "title": "Fix the parser", "head": "cadre/0193a1b2-fix-parser", "base": "main", "body": "## Plan\nround 1" })
        )
    );
    assert_eq!(
        seen[3].body,
        Some(json!({ "title": "Fix the parser", "body": "## Plan\nround 2" }))
    );
    assert!(server.unused().is_empty());
}

#[tokio::test]
async fn reads_failing_checks_across_pages_and_the_failing_jobs_log() {
    let sha = "a".repeat(40);
    let runs = |ids: &[(u64, &str, &str, Option<&str>)]| {
        let runs: Vec<_> = ids
            .iter()
            .map(|(id, name, status, conclusion)| {
                json!({ "id": id, "name": name, "status": status, "conclusion": conclusion, "html_url": format!("https://ci/{id}") })
            })
            .collect();
        json!({ "total_count": 3, "check_runs": runs })
    };
    let checks = format!("/repos/octo/widgets/commits/{sha}/check-runs?per_page=100");
    let page2 = format!("/repos/octo/widgets/commits/{sha}/check-runs?per_page=100&page=2");
    let server = RestServer::start(vec![
        Route::json(
            "GET",
            "/repos/octo/widgets/pulls/7",
            200,
            json!({ "number": 7, "head": { "sha": sha } }),
        ),
        Route::json(
            "GET",
            &checks,
            200,
            runs(&[
                (41, "lint", "completed", Some("success")),
                (42, "test", "completed", Some("failure")),
            ]),
        )
        .header(
            "link",
            &format!("<{{base}}{page2}>; rel=\"next\", <{{base}}{page2}>; rel=\"last\""),
        ),
        Route::json("GET", &page2, 200, runs(&[(43, "deploy-preview", "in_progress", None)])),
        Route::text("GET", "/repos/octo/widgets/actions/jobs/42/logs", 302, "")
            .header("location", "{base}/storage/logs/42.txt"),
        Route::text(
            "GET",
            "/storage/logs/42.txt",
            200,
            "test result: FAILED. 1 failed\nassertion `left == right` failed",
        ),
    ])
    .await;
    let forge = forge(&server, clock());

    let checks_seen = forge.checks(7).await.unwrap();
    let states: Vec<_> =
        checks_seen.iter().map(|c| (c.name.as_str(), c.state, c.job.as_deref())).collect();
    assert_eq!(
        states,
        [
            ("lint", CheckState::Passed, Some("41")),
            ("test", CheckState::Failed, Some("42")),
            ("deploy-preview", CheckState::Pending, Some("43")),
        ]
    );
    let failing = checks_seen.iter().find(|c| c.state == CheckState::Failed).unwrap();
    let log = forge.job_log(failing.job.as_deref().unwrap()).await.unwrap();
    assert!(log.contains("assertion `left == right` failed"), "{log}");

    let seen = server.seen();
    let lines: Vec<String> = seen.iter().map(Recorded::line).collect();
    assert_eq!(
        lines,
        [
            "GET /repos/octo/widgets/pulls/7".to_owned(),
            format!("GET {checks}"),
            format!("GET {page2}"),
            "GET /repos/octo/widgets/actions/jobs/42/logs".to_owned(),
            "GET /storage/logs/42.txt".to_owned(),
        ]
    );
    seen[..4].iter().for_each(assert_github_headers);
}

#[tokio::test]
async fn comments_and_reads_review_comments() {
    let server = RestServer::start(vec![
        Route::json("POST", "/repos/octo/widgets/issues/7/comments", 201, json!({ "id": 1 })),
        Route::json(
            "GET",
            "/repos/octo/widgets/pulls/7/reviews?per_page=100",
            200,
            json!([
                { "id": 10, "user": { "login": "rev" }, "body": "Please also handle empty input.", "state": "CHANGES_REQUESTED" },
                { "id": 11, "user": { "login": "rev" }, "body": "", "state": "COMMENTED" }
            ]),
        ),
        Route::json(
            "GET",
            "/repos/octo/widgets/pulls/7/comments?per_page=100",
            200,
            json!([{ "id": 20, "user": { "login": "rev" }, "body": "off by one", "path": "src/lib.rs", "line": 12 }]),
        ),
    ])
    .await;
    let forge = forge(&server, clock());
    forge.comment(7, "Round 2 pushed: tests pass.").await.unwrap();
    let comments = forge.review_comments(7).await.unwrap();
    let got: Vec<_> = comments
        .iter()
        .map(|c| (c.id, c.author.as_str(), c.body.as_str(), c.path.as_deref(), c.line))
        .collect();
    assert_eq!(
        got,
        [
            (10, "rev", "Please also handle empty input.", None, None),
            (20, "rev", "off by one", Some("src/lib.rs"), Some(12)),
        ]
    );
    let seen = server.seen();
    assert_eq!(seen[0].line(), "POST /repos/octo/widgets/issues/7/comments");
    assert_eq!(seen[0].body, Some(json!({ "body": "Round 2 pushed: tests pass." })));
    seen.iter().for_each(assert_github_headers);
}

#[tokio::test]
async fn a_spent_rate_limit_is_reported_with_its_reset_and_honoured_without_calling_again() {
    let clock = clock();
    let reset_secs = 1_700_000_000 + 90;
    let server = RestServer::start(vec![
        Route::json(
            "POST",
            "/repos/octo/widgets/issues/7/comments",
            403,
            json!({ "message": "API rate limit exceeded" }),
        )
        .header("x-ratelimit-remaining", "0")
        .header("x-ratelimit-reset", &reset_secs.to_string()),
        Route::json("POST", "/repos/octo/widgets/issues/7/comments", 201, json!({ "id": 1 })),
    ])
    .await;
    let forge = forge(&server, clock.clone());
    let err = forge.comment(7, "x").await.unwrap_err();
    assert!(
        matches!(err, ForgeError::RateLimited { retry_after } if retry_after == Duration::from_secs(90)),
        "{err:?}"
    );
    assert!(err.is_retryable());
    clock.advance_millis(30_000);
    let err = forge.comment(7, "x").await.unwrap_err();
    assert!(
        matches!(err, ForgeError::RateLimited { retry_after } if retry_after == Duration::from_secs(60)),
        "{err:?}"
    );
    assert_eq!(server.seen().len(), 1, "no request is spent while the limit is known to be spent");
    clock.advance_millis(60_000);
    forge.comment(7, "x").await.unwrap();
    assert_eq!(server.seen().len(), 2);
}

#[tokio::test]
async fn refusals_map_to_the_ports_errors() {
    let server = RestServer::start(vec![
        Route::json(
            "POST",
            "/repos/octo/widgets/issues/1/comments",
            401,
            json!({ "message": "Bad credentials" }),
        ),
        Route::json(
            "POST",
            "/repos/octo/widgets/issues/2/comments",
            404,
            json!({ "message": "Not Found" }),
        ),
        Route::json(
            "GET",
            "/repos/octo/widgets/pulls/3/reviews?per_page=100",
            404,
            json!({ "message": "Not Found" }),
        ),
        Route::json("GET", "/repos/octo/widgets/pulls/4", 404, json!({ "message": "Not Found" })),
        Route::json(
            "GET",
            "/repos/octo/widgets/actions/jobs/5/logs",
            410,
            json!({ "message": "Gone" }),
        ),
        Route::json(
            "POST",
            "/repos/octo/widgets/issues/6/comments",
            502,
            json!({ "message": "Bad gateway" }),
        ),
        Route::json("GET", FIND, 404, json!({ "message": "Not Found" })),
        Route::json("GET", FIND, 401, json!({ "message": "Requires authentication" })),
    ])
    .await;
    let forge = forge(&server, clock());
    let auth = forge.comment(1, "x").await.unwrap_err();
    assert!(
        matches!(&auth, ForgeError::Auth { detail, .. } if detail == "Bad credentials"),
        "{auth:?}"
    );
    assert!(!auth.to_string().contains(TOKEN));
    assert!(matches!(forge.comment(2, "x").await, Err(ForgeError::NotFound { .. })));
    assert!(matches!(forge.review_comments(3).await, Err(ForgeError::NotFound { .. })));
    assert!(matches!(forge.checks(4).await, Err(ForgeError::NotFound { .. })));
    assert!(matches!(forge.job_log("5").await, Err(ForgeError::NotFound { .. })));
    let unavailable = forge.comment(6, "x").await.unwrap_err();
    assert!(matches!(unavailable, ForgeError::Unavailable { .. }) && unavailable.is_retryable());
    assert!(matches!(forge.open_or_update(&change("b")).await, Err(ForgeError::NotFound { .. })));
    assert!(matches!(forge.open_or_update(&change("b")).await, Err(ForgeError::Auth { .. })));
    assert!(matches!(forge.job_log("../x").await, Err(ForgeError::NotFound { .. })));
}
