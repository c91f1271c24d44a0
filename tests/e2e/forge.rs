//! The forge commands on the real binary: `cadre serve-webhooks` turning a signed GitHub delivery
//! into a queued task (and refusing a replay and a tampered body), and `cadre pr` pushing a reviewed
//! task's change as one commit and opening its pull request on a local GitHub-speaking server.

use axum::extract::State;
use axum::http::Uri;
use axum::routing::get;
use axum::{Json, Router};
use cadre_testkit::model_server::{CapturedRequest, ModelServer, Scripted};
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::support::cadre::Cadre;
use crate::support::repo::{Repo, BROKEN_CALC};

const SECRET: &str = "webhook-secret-e2e";
const TOKEN: &str = "ghs_e2eTokenNeverShown";

const GOAL: &str = "test_add in test_calc.py fails: add() in calc.py must return the sum";
const PLAN: &str = r#"{"summary": "add() subtracts; make it add", "steps": [{"description": "return a + b in add()", "files": ["calc.py"]}], "acceptance_criteria": ["test_add passes"]}"#;
const RIGHT_FIX: &str = "calc.py\n<<<<<<< SEARCH\ndef add(a, b):\n    return a - b\n=======\ndef add(a, b):\n    return a + b\n>>>>>>> REPLACE\n";

fn model(req: &CapturedRequest) -> Scripted {
    if req.system_text.contains("planning engineer") {
        Scripted::Text(PLAN.into())
    } else {
        Scripted::Text(RIGHT_FIX.into())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_labelled_issue_queues_one_task_and_replays_or_tampering_start_nothing() {
    let repo = Repo::new(BROKEN_CALC);
    let cadre = Cadre::new().env("CADRE_GITHUB_WEBHOOK_SECRET", SECRET);
    let served = format!("octo/widgets={}", repo.path().display());
    let mut server = cadre
        .command(&["serve-webhooks", "--listen", "127.0.0.1:0", "--repo", &served])
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(server.stdout.take().unwrap()).lines();
    let first = tokio::time::timeout(std::time::Duration::from_secs(60), lines.next_line())
        .await
        .expect("serve-webhooks printed its address")
        .unwrap()
        .unwrap();
    let base = first.split_whitespace().find(|w| w.starts_with("http://")).unwrap().to_owned();

    let body = json!({
        "action": "labeled",
        "label": { "name": "cadre" },
        "issue": { "number": 3, "title": "add() subtracts", "body": "test_add fails" },
        "repository": { "full_name": "octo/widgets" }
    })
    .to_string();
    let post = |delivery: &str, body: &str, signature: &str| {
        let headers = format!(
            "X-GitHub-Event: issues\r\nX-GitHub-Delivery: {delivery}\r\nX-Hub-Signature-256: {signature}\r\n"
        );
        http_post(&base, "/github", headers, body.to_owned())
    };
    let signature = cadre_forge::webhook::github_signature(SECRET, body.as_bytes());
    let (status, answer) = post("d-1", &body, &signature).await;
    assert_eq!(status, 202, "{answer}");
    let answer: Value = serde_json::from_str(&answer).unwrap();
    let task = answer["task"].as_str().unwrap().to_owned();
    assert_eq!(post("d-1", &body, &signature).await.0, 409);
    let tampered = body.replace("subtracts", "multiplies");
    assert_eq!(post("d-2", &tampered, &signature).await.0, 401);

    let status = cadre.run(&["status"]).await.expect_code(0);
    assert_eq!(status.stdout.matches(" queued ").count(), 1, "one task:\n{}", status.stdout);
    assert!(status.stdout.starts_with(&task[..8]), "{}", status.stdout);
    let detail = cadre.run(&["status", &task]).await.expect_code(0);
    assert!(detail.stdout.contains("state  queued"), "{}", detail.stdout);
    assert!(detail.stdout.contains("add() subtracts"), "{}", detail.stdout);

    // A review on that task's pull request is recorded against the task, not run (not supported yet).
    let review = json!({
        "action": "submitted",
        "review": { "state": "CHANGES_REQUESTED", "body": "also handle floats", "user": { "login": "rev" } },
        "pull_request": { "number": 1, "head": { "ref": format!("cadre/{}-{}-add-subtracts", &task[..8], &task[task.len() - 6..]) } },
        "repository": { "full_name": "octo/widgets" }
    })
    .to_string();
    let signature = cadre_forge::webhook::github_signature(SECRET, review.as_bytes());
    let headers = format!(
        "X-GitHub-Event: pull_request_review\r\nX-GitHub-Delivery: r-1\r\nX-Hub-Signature-256: {signature}\r\n"
    );
    let (status, answer) = http_post(&base, "/github", headers, review).await;
    assert_eq!(status, 202, "{answer}");
    let answer: Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(answer["status"], "follow-up recorded");
    assert_eq!(answer["task"], task.as_str());
    server.kill().await.unwrap();
}

/// A bare HTTP/1.1 POST (the e2e binary has no HTTP client): `(status, body)`.
async fn http_post(base: &str, path: &str, headers: String, body: String) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n{headers}\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let status = response.split_whitespace().nth(1).unwrap().parse().unwrap();
    let body = response.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    (status, body)
}

#[derive(Default)]
struct FakeGitHub {
    seen: Mutex<Vec<(String, String, Value)>>,
}

/// No open pull request at first; the one opened afterwards.
async fn list_pulls(State(gh): State<Arc<FakeGitHub>>, uri: Uri) -> Json<Value> {
    let mut seen = gh.seen.lock().unwrap();
    let opened = seen.iter().any(|(method, _, _)| method == "POST");
    seen.push(("GET".into(), uri.to_string(), Value::Null));
    Json(if opened { json!([{ "number": 1 }]) } else { json!([]) })
}

async fn update_pull(
    State(gh): State<Arc<FakeGitHub>>,
    uri: Uri,
    Json(body): Json<Value>,
) -> Json<Value> {
    gh.seen.lock().unwrap().push(("PATCH".into(), uri.to_string(), body));
    Json(json!({ "number": 1, "html_url": "https://github.test/octo/widgets/pull/1" }))
}

async fn comment(
    State(gh): State<Arc<FakeGitHub>>,
    uri: Uri,
    Json(body): Json<Value>,
) -> axum::http::StatusCode {
    gh.seen.lock().unwrap().push(("POST".into(), uri.to_string(), body));
    axum::http::StatusCode::CREATED
}

async fn open_pull(
    State(gh): State<Arc<FakeGitHub>>,
    uri: Uri,
    Json(body): Json<Value>,
) -> (axum::http::StatusCode, Json<Value>) {
    gh.seen.lock().unwrap().push(("POST".into(), uri.to_string(), body));
    (
        axum::http::StatusCode::CREATED,
        Json(json!({ "number": 1, "html_url": "https://github.test/octo/widgets/pull/1" })),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pr_pushes_the_reviewed_change_as_one_commit_and_opens_the_pull_request() {
    let model_server = ModelServer::start().await;
    model_server.respond_with(model);
    let repo = Repo::new(BROKEN_CALC);
    let cadre = Cadre::new()
        .gemini(&model_server.base_url())
        .env("CADRE_SANDBOX", "host")
        .env("CADRE_FORGE_TOKEN", TOKEN)
        .env("CADRE_GIT_AUTHOR", "Ada Lovelace <ada@example.com>");
    let out =
        cadre.run(&["task", "--repo", repo.path().to_str().unwrap(), GOAL]).await.expect_code(0);
    assert!(out.stdout.contains("ready for review"), "{}", out.stdout);
    let task = cadre.only_task_id().await;

    let remotes = tempfile::tempdir().unwrap();
    let remote = remotes.path().join("widgets.git");
    repo.git(&["clone", "-q", "--bare", ".", remote.to_str().unwrap()]);
    let github = Arc::new(FakeGitHub::default());
    let app = Router::new()
        .route("/repos/octo/widgets/pulls", get(list_pulls).post(open_pull))
        .route("/repos/octo/widgets/pulls/1", axum::routing::patch(update_pull))
        .route("/repos/octo/widgets/issues/1/comments", axum::routing::post(comment))
        .with_state(github.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let git_url = format!("file://{}", remote.display());
    let pr_args = [
        "pr",
        task.as_str(),
        "--forge",
        "github",
        "--forge-repo",
        "octo/widgets",
        "--api-url",
        api.as_str(),
        "--git-url",
        git_url.as_str(),
    ];
    let out = cadre.run(&pr_args).await.expect_code(0);
    assert!(
        out.stdout.contains("opened pull request #1: https://github.test/octo/widgets/pull/1"),
        "{}",
        out.stdout
    );
    assert!(
        !out.stdout.contains(TOKEN) && !out.stderr.contains(TOKEN),
        "the token leaked:\n{}",
        out.stderr
    );

    let branches =
        repo.git(&["--git-dir", remote.to_str().unwrap(), "branch", "--list", "cadre/*"]);
    let branch = branches.trim().trim_start_matches("* ").to_owned();
    // `cadre/<first 8 of the id>-<last 6>-<slug>`.
    let rest = branch.strip_prefix(&format!("cadre/{task}-")).unwrap_or_else(|| panic!("{branch}"));
    let (tail, slug) = rest.split_once('-').unwrap();
    assert!(tail.len() == 6 && tail.bytes().all(|b| b.is_ascii_hexdigit()), "{branch}");
    assert!(slug.starts_with("test-add-in-test-calc-py"), "{branch}");
    let log = |format: &str| {
        repo.git(&[
            "--git-dir",
            remote.to_str().unwrap(),
            "log",
            "-1",
            &format!("--format={format}"),
            &branch,
        ])
    };
    assert_eq!(log("%an <%ae>").trim(), "Ada Lovelace <ada@example.com>");
    let message = log("%B");
    assert!(
        message.contains(&format!("Goal: {GOAL}")) && message.contains("Plan: add() subtracts"),
        "{message}"
    );
    assert!(message.contains("Tests: `") && message.contains("passed"), "{message}");
    let calc =
        repo.git(&["--git-dir", remote.to_str().unwrap(), "show", &format!("{branch}:calc.py")]);
    assert!(calc.contains("return a + b"), "{calc}");

    // Running it again (as after a later round) updates the same pull request and says so.
    let again = cadre.run(&pr_args).await.expect_code(0);
    assert!(again.stdout.contains("updated pull request #1"), "{}", again.stdout);

    let seen = github.seen.lock().unwrap().clone();
    let lines: Vec<String> =
        seen.iter().map(|(m, p, _)| format!("{m} {}", p.split('?').next().unwrap())).collect();
    assert_eq!(
        lines,
        [
            "GET /repos/octo/widgets/pulls",
            "POST /repos/octo/widgets/pulls",
            "GET /repos/octo/widgets/pulls",
            "PATCH /repos/octo/widgets/pulls/1",
            "POST /repos/octo/widgets/issues/1/comments",
        ]
    );
    let note = seen[4].2["body"].as_str().unwrap();
    assert!(note.starts_with("Cadre pushed round 1"), "{note}");
    assert_eq!(seen[0].0, "GET");
    assert!(seen[0].1.contains("head=octo%3Acadre%2F"), "{}", seen[0].1);
    let pr = &seen[1].2;
    assert_eq!(pr["head"], branch.as_str());
    assert_eq!(pr["base"], "main");
    assert_eq!(pr["title"], GOAL);
    let body = pr["body"].as_str().unwrap();
    assert!(
        body.contains("## Plan") && body.contains("calc.py | +1 -1") && body.contains("## Tests"),
        "{body}"
    );
}
