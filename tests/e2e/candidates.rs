//! Best of N end to end: `cadre task --candidates 3` runs three independent generate→test loops after
//! one plan, ranks them when all have ended, proposes the best, and keeps the others visible.

use cadre_testkit::model_server::{CapturedRequest, ModelServer, Scripted};

use crate::support::cadre::Cadre;
use crate::support::repo::{Repo, BROKEN_CALC};

const PLAN: &str = r#"{"summary": "make add() add", "steps": [{"description": "return a + b in add()", "files": ["calc.py"]}], "acceptance_criteria": []}"#;
const FIX: &str =
    "calc.py\n<<<<<<< SEARCH\n    return a - b\n=======\n    return a + b\n>>>>>>> REPLACE\n";
const WRONG: &str =
    "calc.py\n<<<<<<< SEARCH\n    return a - b\n=======\n    return b - a\n>>>>>>> REPLACE\n";
const ALSO_WRONG: &str =
    "calc.py\n<<<<<<< SEARCH\n    return a - b\n=======\n    return a * b\n>>>>>>> REPLACE\n";

/// Only candidate 2's change makes the tests pass.
fn model(req: &CapturedRequest) -> Scripted {
    if req.system_text.contains("planning engineer") {
        Scripted::Text(PLAN.into())
    } else if req.system_text.contains("Candidate 2 of 3") {
        Scripted::Text(FIX.into())
    } else if req.system_text.contains("Candidate 1 of 3") {
        Scripted::Text(WRONG.into())
    } else {
        Scripted::Text(ALSO_WRONG.into())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn best_of_three_where_only_the_second_passes_proposes_the_second() {
    let server = ModelServer::start().await;
    server.respond_with(model);
    let repo = Repo::new(BROKEN_CALC);
    let cadre = Cadre::new().gemini(&server.base_url());
    let path = repo.path().to_str().unwrap();
    let goal = "test_add fails: add() in calc.py must return the sum";

    let out = cadre
        .run(&["task", "--repo", path, "--candidates", "3", "--max-rounds", "1", goal])
        .await
        .expect_code(0);
    assert!(out.stdout.contains("ready for review"), "{}", out.stdout);
    let task = cadre.only_task_id().await;
    let log = cadre.log(&task).await;
    assert_eq!(log.iter().filter(|l| l.starts_with("plan ready")).count(), 1, "{log:#?}");
    for k in 1..=3 {
        assert!(
            log.iter().any(|l| l.starts_with(&format!("candidate {k}: patch round 1"))),
            "candidate {k} generated in its own loop: {log:#?}"
        );
    }
    assert!(log.iter().any(|l| l.starts_with("candidate 1: failed in test")), "{log:#?}");
    let ranked = log.iter().find(|l| l.starts_with("candidates ranked")).unwrap();
    assert!(ranked.contains("proposing candidate 2") && ranked.contains("2 (passed"), "{ranked}");
    assert_eq!(server.request_count(), 4, "one plan and one generate per candidate");

    // The ranking is shown, and the proposal is candidate 2's change.
    let show = cadre.run(&["show", &task]).await.expect_code(0);
    assert!(show.stdout.contains("# Candidates (3)"), "{}", show.stdout);
    assert!(show.stdout.contains("1. candidate 2: passed"), "{}", show.stdout);
    assert!(show.stdout.contains("<- proposed"), "{}", show.stdout);
    let diff = cadre.run(&["show", &task, "--only", "diff"]).await.expect_code(0);
    assert!(diff.stdout.contains("+    return a + b"), "{}", diff.stdout);

    // The others stay visible.
    let first =
        cadre.run(&["show", &task, "--candidate", "1", "--only", "diff"]).await.expect_code(0);
    assert!(first.stdout.contains("+    return b - a"), "{}", first.stdout);
    let third = cadre.run(&["show", &task, "--candidate", "3"]).await.expect_code(0);
    assert!(third.stdout.contains("+    return a * b"), "{}", third.stdout);
    assert!(third.stdout.contains("failed"), "its failing report: {}", third.stdout);
    let none = cadre.run(&["show", &task, "--candidate", "4"]).await.expect_code(2);
    assert!(none.stderr.contains("--candidate takes 1 to 3"), "{}", none.stderr);

    cadre.run(&["apply", &task]).await.expect_code(0);
    assert!(repo.sh("python3 -m unittest -q"), "the proposed candidate passes on the repository");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_candidates_than_allowed_are_refused_before_anything_runs() {
    let cadre = Cadre::new().gemini("http://127.0.0.1:9");
    let repo = Repo::new(BROKEN_CALC);
    let path = repo.path().to_str().unwrap();
    let out =
        cadre.run(&["task", "--repo", path, "--candidates", "6", "fix add"]).await.expect_code(2);
    assert!(out.stderr.contains("--candidates 6 is not possible; use 1 to 5"), "{}", out.stderr);
}
