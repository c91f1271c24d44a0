//! Bad input gets a clear error naming the problem and the fix, exit code 2, and no panic.

use cadre_testkit::model_server::ModelServer;

use crate::support::cadre::{Cadre, Output};
use crate::support::repo::{Repo, BROKEN_CALC};

fn assert_clear_error(out: Output, needles: &[&str]) {
    let out = out.expect_code(2);
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
    for needle in needles {
        assert!(out.stderr.contains(needle), "stderr lacks {needle:?}:\n{}", out.stderr);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_path_that_is_not_a_git_repository() {
    let dir = tempfile::tempdir().unwrap();
    let cadre = Cadre::new().env("CADRE_MODEL", "replay:/nonexistent.jsonl");
    let out = cadre.run(&["task", "--repo", dir.path().to_str().unwrap(), "do it"]).await;
    assert_clear_error(out, &["is not a git repository", "git init"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dirty_tree_is_refused_unless_allowed() {
    let repo = Repo::new(BROKEN_CALC);
    repo.write("calc.py", "# local edit\n");
    let cadre = Cadre::new();
    let out = cadre.run(&["task", "--repo", repo.path().to_str().unwrap(), "do it"]).await;
    assert_clear_error(out, &["uncommitted changes (calc.py)", "--allow-dirty"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_model_configured() {
    let repo = Repo::new(BROKEN_CALC);
    let out = Cadre::new().run(&["task", "--repo", repo.path().to_str().unwrap(), "do it"]).await;
    assert_clear_error(out, &["GEMINI_API_KEY is not set", "--model openai:"]);
    let out = Cadre::new()
        .env("CADRE_MODEL", "claude")
        .run(&["task", "--repo", repo.path().to_str().unwrap(), "x"])
        .await;
    assert_clear_error(out, &["model spec \"claude\" is not valid", "openai:<model>@<base_url>"]);
    let out = Cadre::new()
        .env("CADRE_MODEL", "vertex:gemini-3-flash-preview")
        .run(&["task", "--repo", repo.path().to_str().unwrap(), "x"])
        .await;
    assert_clear_error(out, &["GOOGLE_CLOUD_PROJECT"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_model_is_reported_before_any_task_is_created() {
    let repo = Repo::new(BROKEN_CALC);
    // Bind then drop a listener so the port is very likely closed.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let cadre = Cadre::new().openai(&format!("http://127.0.0.1:{port}"));
    let out = cadre.run(&["task", "--repo", repo.path().to_str().unwrap(), "do it"]).await;
    assert_clear_error(out, &["is unreachable", "check the URL and that the server is running"]);
    let status = cadre.run(&["status"]).await.expect_code(0);
    assert!(status.stdout.contains("no tasks yet"), "{}", status.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_task_id() {
    let cadre = Cadre::new();
    assert_clear_error(
        cadre.run(&["show", "0193aaaa-0000-7000-8000-000000000000"]).await,
        &["no task with id", "cadre status"],
    );
    assert_clear_error(cadre.run(&["apply", "zzzz"]).await, &["matches 0 tasks", "cadre status"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_that_fails_says_why_and_exits_1() {
    // The model never produces edits that apply: the task fails with the reason, the repository is untouched.
    let server = ModelServer::start().await;
    server.respond_with(|req| {
        if req.system_text.contains("planning engineer") {
            cadre_testkit::model_server::Scripted::Text(
                r#"{"summary":"s","steps":[{"description":"d","files":["calc.py"]}],"acceptance_criteria":[]}"#.into(),
            )
        } else {
            cadre_testkit::model_server::Scripted::Text("I think the fix is to add the numbers.".into())
        }
    });
    let repo = Repo::new(BROKEN_CALC);
    let cadre = Cadre::new().gemini(&server.base_url());
    let out = cadre
        .run(&["task", "--repo", repo.path().to_str().unwrap(), "fix add"])
        .await
        .expect_code(1);
    assert!(out.stdout.contains("task ended failed"), "{}", out.stdout);
    let task = cadre.only_task_id().await;
    let log = cadre.log(&task).await;
    assert!(
        log.iter().any(
            |l| l.contains("failed in generate: the model's edits did not apply after 3 tries")
        ),
        "{log:#?}"
    );
    assert!(repo.read("calc.py").contains("a - b"));
    assert!(repo.git(&["status", "--porcelain"]).is_empty());
}
