//! Scanners after the tests: a change that leaks a secret is reported with the round, never silently
//! proposed.

use cadre_testkit::model_server::{ModelServer, Scripted};

use crate::support::cadre::Cadre;
use crate::support::repo::{Repo, BROKEN_CALC};

const PLAN: &str = r#"{"summary": "make add() add", "steps": [{"description": "return a + b in add()", "files": ["calc.py"]}], "acceptance_criteria": []}"#;
const LEAKY_FIX: &str = "calc.py\n<<<<<<< SEARCH\ndef add(a, b):\n    return a - b\n=======\nAWS_ACCESS_KEY_ID = \"AKIAZ7VQ3RTXLMN4PQ2W\"\n\n\ndef add(a, b):\n    return a + b\n>>>>>>> REPLACE\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leaked_key_in_the_change_is_reported_with_its_place_but_not_its_value() {
    let server = ModelServer::start().await;
    server.respond_with(|req| {
        if req.system_text.contains("planning engineer") {
            Scripted::Text(PLAN.into())
        } else {
            Scripted::Text(LEAKY_FIX.into())
        }
    });
    let repo = Repo::new(BROKEN_CALC);
    let cadre = Cadre::new().gemini(&server.base_url());
    let path = repo.path().to_str().unwrap();
    let goal = "test_add fails: add() in calc.py must return the sum";
    cadre.run(&["task", "--repo", path, goal]).await.expect_code(0);
    let task = cadre.only_task_id().await;
    let log = cadre.log(&task).await;
    assert!(
        log.iter().any(|l| l == "scanned round 1 (secrets): 1 finding(s), 1 error(s)"),
        "{log:#?}"
    );
    let show = cadre.run(&["show", &task, "--only", "report"]).await.expect_code(0);
    assert!(show.stdout.contains("# Scan (round 1): 1 finding(s) from secrets"), "{}", show.stdout);
    assert!(show.stdout.contains("Error secrets calc.py:1 [aws-access-key-id]"), "{}", show.stdout);
    assert!(
        !show.stdout.contains("AKIAZ7VQ3RTXLMN4PQ2W"),
        "the secret is never repeated: {}",
        show.stdout
    );

    // With scanning off, nothing is scanned.
    let quiet = Cadre::new().gemini(&server.base_url());
    quiet.run(&["task", "--repo", path, "--scan", "off", goal]).await.expect_code(0);
    let task = quiet.only_task_id().await;
    assert!(!quiet.log(&task).await.iter().any(|l| l.starts_with("scanned")));
}
