//! `cadre doctor`: each check broken on purpose names its fix; a working set-up passes.

use cadre_testkit::model_server::{ModelServer, Scripted};
use serde_json::json;

use crate::support::cadre::{Cadre, Output};
use crate::support::repo::{Repo, BROKEN_CALC};

/// Runs `cadre doctor ARGS` against `repo` and returns what it printed.
async fn doctor(cadre: &Cadre, repo: &Repo, args: &[&str]) -> Output {
    let mut all = vec!["doctor", "--repo", repo.path().to_str().unwrap()];
    all.extend_from_slice(args);
    cadre.run(&all).await
}

/// The line of check `name` and the fix line under it, if any.
fn check<'a>(out: &'a Output, name: &str) -> (&'a str, &'a str) {
    let lines: Vec<&str> = out.stdout.lines().collect();
    let at = lines
        .iter()
        .position(|l| l.split_whitespace().nth(1) == Some(name))
        .unwrap_or_else(|| panic!("no {name} check in:\n{}", out.stdout));
    let fix = lines.get(at + 1).filter(|l| l.trim_start().starts_with("fix:")).copied();
    (lines[at], fix.map_or("", str::trim))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_working_set_up_passes_every_check_with_one_free_model_call() {
    let server = ModelServer::start().await;
    let repo = Repo::new(BROKEN_CALC);
    let cadre = Cadre::new().gemini(&server.base_url());
    cadre.run(&["index", repo.path().to_str().unwrap()]).await.expect_code(0);
    let out = doctor(&cadre, &repo, &[]).await.expect_code(0);
    for name in ["home", "model", "sandbox", "git", "index"] {
        let (line, fix) = check(&out, name);
        assert!(line.starts_with("ok"), "{line}\n{}", out.stdout);
        assert!(fix.is_empty(), "{fix}");
    }
    assert!(check(&out, "model").0.contains("countTokens"), "{}", out.stdout);
    assert!(check(&out, "index").0.contains("newer than HEAD"), "{}", out.stdout);
    assert!(out.stdout.contains("all checks passed"), "{}", out.stdout);
    // One countTokens call, no generation: the check costs nothing.
    assert_eq!(server.request_count(), 0, "no generateContent call");
    assert_eq!(server.side_requests().len(), 1, "{:?}", server.side_requests());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_or_refused_key_names_the_key() {
    let repo = Repo::new(BROKEN_CALC);
    let out = doctor(&Cadre::new(), &repo, &[]).await.expect_code(1);
    assert!(check(&out, "model").0.contains("GEMINI_API_KEY is not set"), "{}", out.stdout);

    let server = ModelServer::start().await;
    server.push_side(Scripted::Status {
        code: 400,
        body: json!({"error": {"code": 400, "status": "INVALID_ARGUMENT",
            "message": "API key not valid. Please pass a valid API key.",
            "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID"}]}}),
    });
    let out = doctor(&Cadre::new().gemini(&server.base_url()), &repo, &[]).await.expect_code(1);
    let (line, fix) = check(&out, "model");
    assert!(line.starts_with("FAIL"), "{}", out.stdout);
    assert!(fix.contains("refused the key") && fix.contains("GEMINI_API_KEY"), "{}", out.stdout);
    assert!(!out.stdout.contains("test-key-123") && !out.stderr.contains("test-key-123"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_model_server_names_its_url() {
    let repo = Repo::new(BROKEN_CALC);
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("http://127.0.0.1:{port}");
    let out = doctor(&Cadre::new().openai(&url), &repo, &[]).await.expect_code(1);
    let (line, fix) = check(&out, "model");
    assert!(line.contains("is unreachable"), "{}", out.stdout);
    assert!(fix.contains(&url), "{}", out.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unusable_data_directory_or_sandbox_root_is_named() {
    let repo = Repo::new(BROKEN_CALC);
    let server = ModelServer::start().await;
    let cadre = Cadre::new().gemini(&server.base_url());
    let not_a_dir = repo.file("calc.py");
    let out = doctor(&cadre, &repo, &["--home", not_a_dir.to_str().unwrap()]).await.expect_code(1);
    let (line, fix) = check(&out, "home");
    assert!(line.starts_with("FAIL"), "{}", out.stdout);
    assert!(fix.contains("--home"), "{}", out.stdout);
    assert!(check(&out, "model").0.contains("needs the data directory"), "{}", out.stdout);

    // The sandbox keeps its runtime root in the data directory: a file in its place breaks it.
    let home = tempfile::tempdir().unwrap();
    std::fs::write(home.path().join("sandbox"), "not a directory").unwrap();
    let out =
        doctor(&cadre, &repo, &["--home", home.path().to_str().unwrap()]).await.expect_code(1);
    let (line, fix) = check(&out, "sandbox");
    assert!(line.starts_with("FAIL") && line.contains("sandbox"), "{}", out.stdout);
    assert!(fix.contains("--sandbox host"), "{}", out.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_or_missing_index_is_a_warning_with_the_command() {
    let server = ModelServer::start().await;
    let repo = Repo::new(BROKEN_CALC);
    let cadre = Cadre::new().gemini(&server.base_url());
    let out = doctor(&cadre, &repo, &["--offline"]).await.expect_code(0);
    let (line, fix) = check(&out, "index");
    assert!(line.starts_with("warn") && line.contains("never been indexed"), "{}", out.stdout);
    assert!(fix.contains("cadre index"), "{}", out.stdout);

    cadre.run(&["index", repo.path().to_str().unwrap()]).await.expect_code(0);
    repo.write("notes.md", "later\n");
    // A commit dated 2099, after the index whatever the clock says.
    let future = "2099-01-01T00:00:00+0000";
    assert!(repo.sh(&format!(
        "git add -A && GIT_COMMITTER_DATE='{future}' GIT_AUTHOR_DATE='{future}' \
         git -c user.name=F -c user.email=f@example.invalid commit -qm later"
    )));
    let out = doctor(&cadre, &repo, &["--offline"]).await.expect_code(0);
    let (line, fix) = check(&out, "index");
    assert!(line.contains("older than the last commit"), "{}", out.stdout);
    assert!(fix.starts_with("fix: cadre index"), "{}", out.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_cloud_credentials_are_named() {
    let server = ModelServer::start().await;
    let repo = Repo::new(BROKEN_CALC);
    let cadre = Cadre::new()
        .gemini(&server.base_url())
        .env("GOOGLE_APPLICATION_CREDENTIALS", "/nonexistent/key.json")
        .env("CADRE_BUS", "sqs://http://127.0.0.1:1/queue/steps")
        .env("AWS_ACCESS_KEY_ID", "")
        .env("AWS_PROFILE", "");
    let out = doctor(&cadre, &repo, &["--offline"]).await.expect_code(1);
    let (line, fix) = check(&out, "google");
    assert!(line.contains("/nonexistent/key.json"), "{}", out.stdout);
    assert!(fix.contains("GOOGLE_APPLICATION_CREDENTIALS"), "{}", out.stdout);
    let (line, fix) = check(&out, "aws");
    assert!(line.contains("no AWS credentials"), "{}", out.stdout);
    assert!(fix.contains("AWS_ACCESS_KEY_ID"), "{}", out.stdout);
}
