//! A task through the whole pipeline: plan → generate → test (→ generate again) → awaiting review → apply.

use cadre_testkit::model_server::{CapturedRequest, ModelServer, Scripted};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::support::cadre::Cadre;
use crate::support::repo::{Repo, BROKEN_CALC};

const GOAL: &str = "test_add in test_calc.py fails: add() in calc.py must return the sum";

const PLAN: &str = r#"{"summary": "add() subtracts; make it add", "steps": [{"description": "return a + b in add()", "files": ["calc.py"]}], "acceptance_criteria": ["test_add passes", "test_mul still passes"]}"#;

const RIGHT_FIX: &str = "The bug is the operator.\n\ncalc.py\n<<<<<<< SEARCH\ndef add(a, b):\n    return a - b\n=======\ndef add(a, b):\n    return a + b\n>>>>>>> REPLACE\n";

const WRONG_FIX: &str = "calc.py\n<<<<<<< SEARCH\ndef add(a, b):\n    return a - b\n=======\ndef add(a, b):\n    return a + b + 1\n>>>>>>> REPLACE\n";

/// Second round: the worktree already holds the wrong fix, so SEARCH copies it.
const FIX_OF_WRONG_FIX: &str =
    "calc.py\n<<<<<<< SEARCH\n    return a + b + 1\n=======\n    return a + b\n>>>>>>> REPLACE\n";

fn is_plan(req: &CapturedRequest) -> bool {
    req.system_text.contains("planning engineer")
}

fn is_generate(req: &CapturedRequest) -> bool {
    req.system_text.contains("implementing engineer")
}

/// A model that plans, then fixes the bug right away.
fn good_model(req: &CapturedRequest) -> Scripted {
    if is_plan(req) {
        Scripted::Text(PLAN.into())
    } else if is_generate(req) {
        Scripted::Text(RIGHT_FIX.into())
    } else {
        Scripted::Status {
            code: 400,
            body: serde_json::json!({"error": {"message": "unexpected prompt"}}),
        }
    }
}

/// A model that plans, answers the first generate call with `first`, and every later one with the
/// right fix; the counter says how many generate calls arrived.
async fn server_whose_first_generate_answers(first: Scripted) -> (ModelServer, Arc<AtomicU32>) {
    let server = ModelServer::start().await;
    let generate_calls = Arc::new(AtomicU32::new(0));
    let calls = generate_calls.clone();
    server.respond_with(move |req| {
        if is_plan(req) {
            Scripted::Text(PLAN.into())
        } else if calls.fetch_add(1, Ordering::SeqCst) == 0 {
            first.clone()
        } else {
            Scripted::Text(RIGHT_FIX.into())
        }
    });
    (server, generate_calls)
}

async fn run_task_to_review(cadre: &Cadre, repo: &Repo) -> String {
    let out =
        cadre.run(&["task", "--repo", repo.path().to_str().unwrap(), GOAL]).await.expect_code(0);
    assert!(out.stdout.contains("ready for review"), "{}", out.stdout);
    cadre.only_task_id().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gemini_task_reaches_review_and_apply_makes_the_tests_pass() {
    let server = ModelServer::start().await;
    server.respond_with(good_model);
    let repo = Repo::new(BROKEN_CALC);
    assert!(
        !repo.sh("python3 -m unittest -q 2>/dev/null"),
        "the fixture must start with a failing test"
    );
    let cadre = Cadre::new().gemini(&server.base_url());

    let task = run_task_to_review(&cadre, &repo).await;
    let log = cadre.log(&task).await;
    let expected = [
        "plan started",
        "plan ready (1 steps",
        "generate round 1 started",
        "patch round 1: 1 file(s), +1 -1",
        "test round 1 started",
        "tests round 1 passed: 2 passed, 0 failed (exit code 0)",
        "awaiting review (round 1)",
    ];
    assert_log_in_order(&log, &expected);

    // Every request went to Gemini's endpoint with the key in the header, never in the URL.
    let requests = server.requests();
    assert_eq!(requests.len(), 2, "one plan call and one generate call");
    for r in &requests {
        assert!(r.path.ends_with("/models/gemini-3-flash-preview:generateContent"), "{}", r.path);
        assert_eq!(r.header("x-goog-api-key"), Some("test-key-123"));
        assert!(!r.path.contains("test-key"));
    }
    assert_eq!(requests[0].body["generationConfig"]["responseMimeType"], "application/json");

    // Both calls went through the gateway and were charged to the task.
    let usage = cadre.run(&["usage", "--task", &task]).await.expect_code(0);
    let row = usage
        .stdout
        .lines()
        .find(|l| l.starts_with(&task[..8]))
        .unwrap_or_else(|| panic!("{}", usage.stdout));
    assert_eq!(row.split_whitespace().nth(1), Some("2"), "two model calls: {row}");

    // The repository is untouched until a person applies the change.
    assert!(repo.read("calc.py").contains("a - b"));
    let show = cadre.run(&["show", &task]).await.expect_code(0);
    assert!(show.stdout.contains("+    return a + b"), "{}", show.stdout);
    assert!(show.stdout.contains("# Tests (round 1): passed"), "{}", show.stdout);
    assert!(
        show.stdout.contains("(Container)"),
        "the tests must have run in the container: {}",
        show.stdout
    );

    cadre.run(&["apply", &task]).await.expect_code(0);
    assert!(repo.sh("python3 -m unittest -q"), "the applied change must make the suite pass");
    assert!(cadre.log(&task).await.last().unwrap().starts_with("applied round 1"));
    // Applying twice is refused: the task is no longer awaiting review.
    let again = cadre.run(&["apply", &task]).await.expect_code(2);
    assert!(again.stderr.contains("not awaiting review"), "{}", again.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openai_compatible_task_reaches_review() {
    let server = ModelServer::start().await;
    server.respond_with(good_model);
    let repo = Repo::new(BROKEN_CALC);
    let cadre = Cadre::new().openai(&server.base_url());

    let task = run_task_to_review(&cadre, &repo).await;
    let requests = server.requests();
    assert!(
        requests.iter().all(|r| r.path == "/v1/chat/completions"),
        "{:?}",
        requests.iter().map(|r| &r.path).collect::<Vec<_>>()
    );
    assert_eq!(requests[0].body["model"], "qwen2.5-coder");
    assert_eq!(requests[0].body["response_format"]["type"], "json_schema");
    cadre.run(&["apply", &task]).await.expect_code(0);
    assert!(repo.sh("python3 -m unittest -q"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_first_round_is_fed_back_and_fixed_in_the_second() {
    let server = ModelServer::start().await;
    server.respond_with(|req| {
        if is_plan(req) {
            Scripted::Text(PLAN.into())
        } else if req.last_user_text.contains("Round 1 failed its tests") {
            Scripted::Text(FIX_OF_WRONG_FIX.into())
        } else {
            Scripted::Text(WRONG_FIX.into())
        }
    });
    let repo = Repo::new(BROKEN_CALC);
    let cadre = Cadre::new().gemini(&server.base_url());

    let task = run_task_to_review(&cadre, &repo).await;
    let log = cadre.log(&task).await;
    assert_log_in_order(
        &log,
        &[
            "patch round 1",
            "tests round 1 failed: 1 passed, 1 failed",
            "generate round 2 started",
            "patch round 2",
            "tests round 2 passed: 2 passed, 0 failed",
            "awaiting review (round 2)",
        ],
    );
    // The second round's prompt carried the failing test's name and output.
    let round2 = server
        .requests()
        .into_iter()
        .find(|r| r.last_user_text.contains("Round 1 failed"))
        .unwrap();
    assert!(round2.last_user_text.contains("test_add"), "{}", round2.last_user_text);
    assert!(round2.last_user_text.contains("AssertionError: 6 != 5"), "{}", round2.last_user_text);

    cadre.run(&["apply", &task]).await.expect_code(0);
    assert_eq!(repo.read("calc.py").matches("return a + b\n").count(), 1);
    assert!(repo.sh("python3 -m unittest -q"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edits_that_do_not_apply_are_sent_back_and_never_written_half_applied() {
    // First answer: one good block and one whose SEARCH text is not in the file.
    let bad = "calc.py\n<<<<<<< SEARCH\n    return a - b\n=======\n    return a + b\n>>>>>>> REPLACE\ncalc.py\n<<<<<<< SEARCH\ndef nothing():\n=======\n>>>>>>> REPLACE\n";
    let (server, generate_calls) =
        server_whose_first_generate_answers(Scripted::Text(bad.into())).await;
    let repo = Repo::new(BROKEN_CALC);
    let cadre = Cadre::new().gemini(&server.base_url());
    run_task_to_review(&cadre, &repo).await;

    assert_eq!(generate_calls.load(Ordering::SeqCst), 2);
    let correction = server.requests().into_iter().filter(is_generate).nth(1).unwrap();
    assert!(
        correction.last_user_text.contains("block 2: the SEARCH text was not found in `calc.py`"),
        "{}",
        correction.last_user_text
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_mid_step_is_finished_by_a_new_worker_without_redoing_committed_steps() {
    // The first generate call hangs, so the first worker is killed with that message in flight.
    let hang = Scripted::Delay { millis: 60_000, then: Box::new(Scripted::Text(RIGHT_FIX.into())) };
    let (server, generate_calls) = server_whose_first_generate_answers(hang).await;
    let repo = Repo::new(BROKEN_CALC);
    let cadre = Cadre::new().gemini(&server.base_url());

    let mut first = cadre
        .command(&[
            "--visibility-timeout",
            "2",
            "task",
            "--repo",
            repo.path().to_str().unwrap(),
            GOAL,
        ])
        .spawn()
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while generate_calls.load(Ordering::SeqCst) == 0 {
        assert!(tokio::time::Instant::now() < deadline, "the first worker never reached generate");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    first.start_kill().unwrap(); // SIGKILL: no cleanup, the message stays in flight.
    first.wait().await.unwrap();

    let task = cadre.only_task_id().await;
    let status = cadre.run(&["status", &task]).await.expect_code(0);
    assert!(status.stdout.contains("state  generating (round 1)"), "{}", status.stdout);

    cadre.run(&["--visibility-timeout", "2", "serve-worker", "--until-idle"]).await.expect_code(0);
    let status = cadre.run(&["status", &task]).await.expect_code(0);
    assert!(status.stdout.contains("state  awaiting_review (round 1)"), "{}", status.stdout);

    let log = cadre.log(&task).await;
    let count = |prefix: &str| log.iter().filter(|l| l.starts_with(prefix)).count();
    assert_eq!(count("plan ready"), 1, "{log:#?}");
    assert_eq!(
        count("plan started"),
        1,
        "the plan was committed before the kill and must not run again: {log:#?}"
    );
    assert_eq!(count("generate round 1 started"), 2, "generate ran again after the kill: {log:#?}");
    assert_eq!(count("patch round 1"), 1, "{log:#?}");
    assert_eq!(count("tests round 1"), 1, "{log:#?}");
    assert_eq!(count("awaiting review"), 1, "{log:#?}");
    assert_eq!(server.requests().iter().filter(|r| is_plan(r)).count(), 1);
}

fn assert_log_in_order(log: &[String], expected: &[&str]) {
    let mut at = 0;
    for want in expected {
        match log[at..].iter().position(|l| l.starts_with(want)) {
            Some(i) => at += i + 1,
            None => panic!("log lacks {want:?} after line {at}:\n{}", log.join("\n")),
        }
    }
}
