//! The knowledge base inside the pipeline: the `index` step runs first, `plan` and `generate` are shown
//! retrieved context, and how a task ended is remembered for the next task in the same repository.

use cadre_testkit::model_server::{CapturedRequest, ModelServer, Scripted};

use crate::support::cadre::Cadre;
use crate::support::repo::{Repo, BROKEN_CALC};

const PLAN: &str = r#"{"summary": "make add() add", "steps": [{"description": "return a + b in add()", "files": ["calc.py"]}], "acceptance_criteria": ["test_add passes"]}"#;
const FIX: &str =
    "calc.py\n<<<<<<< SEARCH\n    return a - b\n=======\n    return a + b\n>>>>>>> REPLACE\n";
const MUL_PLAN: &str = r#"{"summary": "document mul", "steps": [{"description": "add a docstring to mul()", "files": ["calc.py"]}], "acceptance_criteria": []}"#;
const MUL_DOC: &str = "calc.py\n<<<<<<< SEARCH\ndef mul(a, b):\n=======\ndef mul(a, b):\n    \"\"\"Multiplies.\"\"\"\n>>>>>>> REPLACE\n";

fn model(req: &CapturedRequest) -> Scripted {
    let planning = req.system_text.contains("planning engineer");
    let second_task = req.last_user_text.contains("docstring");
    match (planning, second_task) {
        (true, false) => Scripted::Text(PLAN.into()),
        (false, false) => Scripted::Text(FIX.into()),
        (true, true) => Scripted::Text(MUL_PLAN.into()),
        (false, true) => Scripted::Text(MUL_DOC.into()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_are_indexed_given_retrieved_context_and_remember_how_earlier_tasks_ended() {
    let server = ModelServer::start().await;
    server.respond_with(model);
    let repo = Repo::new(BROKEN_CALC);
    let cadre = Cadre::new().gemini(&server.base_url());
    let path = repo.path().to_str().unwrap();

    let goal = "test_add fails: add() in calc.py must return the sum";
    let out = cadre.run(&["task", "--repo", path, goal]).await.expect_code(0);
    assert!(out.stdout.contains("ready for review"), "{}", out.stdout);
    let first = cadre.only_task_id().await;
    let log = cadre.log(&first).await;
    assert!(log[1].starts_with("index started"), "{log:#?}");
    let indexed = log.iter().find(|l| l.starts_with("indexed: ")).expect("an indexed event");
    assert!(indexed.contains("2 files"), "{indexed}");
    assert!(indexed.contains("lexical retrieval only"), "no embedder is configured: {indexed}");

    // generate shows calc.py in full (the plan names it) and retrieves the rest: the test that uses add().
    let generate = server
        .requests()
        .into_iter()
        .find(|r| r.system_text.contains("implementing engineer"))
        .unwrap();
    let prompt = &generate.last_user_text;
    assert!(prompt.contains("# Retrieved context"), "{prompt}");
    assert!(prompt.contains("## Repository map"), "{prompt}");
    assert!(prompt.contains("## test_calc.py:"), "the test of add() is retrieved: {prompt}");
    assert!(!prompt.contains("## calc.py:"), "a file shown in full is not repeated: {prompt}");

    cadre.run(&["apply", &first]).await.expect_code(0);
    repo.git(&["commit", "-qam", "fix add"]);

    // The second task in the same repository is shown how the first one ended.
    let out = cadre
        .run(&["task", "--repo", path, "add a docstring to mul() in calc.py"])
        .await
        .expect_code(0);
    assert!(out.stdout.contains("ready for review"), "{}", out.stdout);
    let plan = server
        .requests()
        .into_iter()
        .filter(|r| r.system_text.contains("planning engineer"))
        .nth(1)
        .unwrap();
    let prompt = &plan.last_user_text;
    assert!(prompt.contains("## What this team decided before"), "{prompt}");
    assert!(prompt.contains("[task_outcome] test_add fails"), "{prompt}");
    assert!(prompt.contains("(accepted)"), "{prompt}");
    assert!(prompt.contains("changed calc.py (+1 -1)"), "{prompt}");
}
