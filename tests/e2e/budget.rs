//! Hard budgets: a task stops at its budget before a call that could pass it (no call is made), keeps
//! everything, and goes on from the same step when a person raises the budget.

use cadre_testkit::model_server::{CapturedRequest, ModelServer, Scripted};
use serde_json::json;

use crate::support::cadre::Cadre;
use crate::support::repo::{Repo, BROKEN_CALC};

const PLAN: &str = r#"{"summary": "make add() add", "steps": [{"description": "return a + b in add()", "files": ["calc.py"]}], "acceptance_criteria": []}"#;
const FIX: &str =
    "calc.py\n<<<<<<< SEARCH\n    return a - b\n=======\n    return a + b\n>>>>>>> REPLACE\n";

/// A Gemini reply whose usage says it produced `output_tokens` tokens.
fn costly_reply(text: &str, output_tokens: u64) -> Scripted {
    let body = json!({
        "candidates": [{"content": {"role": "model", "parts": [{"text": text}]}, "finishReason": "STOP"}],
        "usageMetadata": {"promptTokenCount": 100, "candidatesTokenCount": output_tokens, "totalTokenCount": 100 + output_tokens},
        "modelVersion": "gemini-3-flash-preview"
    });
    Scripted::Raw { code: 200, content_type: "application/json".into(), body: body.to_string() }
}

fn model(req: &CapturedRequest) -> Scripted {
    if req.system_text.contains("planning engineer") {
        // $0.03 of output at $3 per million tokens.
        costly_reply(PLAN, 10_000)
    } else {
        Scripted::Text(FIX.into())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_stops_at_its_budget_without_the_call_and_resumes_with_a_higher_one() {
    let server = ModelServer::start().await;
    server.respond_with(model);
    let repo = Repo::new(BROKEN_CALC);
    let cadre = Cadre::new().gemini(&server.base_url());
    let path = repo.path().to_str().unwrap();

    // Plan's worst case (~$0.025) fits in $0.05; it then costs $0.03, so generate's worst case does not.
    let goal = "test_add fails: add() in calc.py must return the sum";
    let out =
        cadre.run(&["task", "--repo", path, "--budget-usd", "0.05", goal]).await.expect_code(3);
    assert!(out.stdout.contains("budget_exhausted (in generate, round 1)"), "{}", out.stdout);
    assert!(out.stdout.contains("[$0.0301]"), "the running cost is shown: {}", out.stdout);
    assert_eq!(server.request_count(), 1, "no call is made past the budget");
    let task = cadre.only_task_id().await;
    let log = cadre.log(&task).await;
    assert!(
        log.iter()
            .any(|l| l.starts_with("budget exhausted in generate round 1: $0.0301 of $0.0500")),
        "{log:#?}"
    );

    // Nothing runs while the budget is exhausted, and a raise below the spend is refused.
    let plain = cadre.run(&["resume", &task]).await.expect_code(2);
    assert!(plain.stderr.contains("raise it to go on"), "{}", plain.stderr);
    let low = cadre.run(&["resume", &task, "--budget-usd", "0.01"]).await.expect_code(2);
    assert!(low.stderr.contains("must be above what the task has spent"), "{}", low.stderr);

    let raised = cadre.run(&["resume", &task, "--budget-usd", "1"]).await.expect_code(0);
    assert!(raised.stdout.contains("re-published the generate step"), "{}", raised.stdout);
    cadre.run(&["serve-worker", "--until-idle"]).await.expect_code(0);
    let status = cadre.run(&["status", &task]).await.expect_code(0);
    assert!(status.stdout.contains("state  awaiting_review (round 1)"), "{}", status.stdout);
    assert_eq!(server.request_count(), 2, "plan was kept: only generate ran after the raise");
    let log = cadre.log(&task).await;
    assert_eq!(log.iter().filter(|l| l.starts_with("plan ready")).count(), 1, "{log:#?}");
    assert!(log.iter().any(|l| l.starts_with("budget raised to $1.0000")), "{log:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_teams_daily_budget_stops_its_tasks_and_usage_is_attributed_to_the_team() {
    let server = ModelServer::start().await;
    server.respond_with(model);
    let repo = Repo::new(BROKEN_CALC);
    let cadre = Cadre::new().gemini(&server.base_url());
    let path = repo.path().to_str().unwrap();
    let goal = "test_add fails: add() in calc.py must return the sum";
    // The task's own budget is ample; the team's $0.05 a day is not, once plan has cost $0.03.
    let out = cadre
        .run(&[
            "task",
            "--repo",
            path,
            "--team",
            "web",
            "--budget-usd",
            "5",
            "--team-daily-budget-usd",
            "0.05",
            goal,
        ])
        .await
        .expect_code(3);
    assert!(
        out.stdout.contains("team web's daily budget exhausted in generate round 1"),
        "{}",
        out.stdout
    );
    assert_eq!(server.request_count(), 1, "no call is made past the team's budget");

    let usage = cadre.run(&["usage", "--by", "team"]).await.expect_code(0);
    let web = usage
        .stdout
        .lines()
        .find(|l| l.starts_with("web"))
        .unwrap_or_else(|| panic!("{}", usage.stdout));
    assert!(web.contains("0.030050"), "the plan call, and the refused one at no cost: {web}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_missing_from_the_price_table_is_charged_at_the_default_price_and_said_so() {
    let server = ModelServer::start().await;
    server.respond_with(|req| {
        if req.system_text.contains("planning engineer") {
            Scripted::Text(PLAN.into())
        } else {
            Scripted::Text(FIX.into())
        }
    });
    let repo = Repo::new(BROKEN_CALC);
    // `qwen2.5-coder` (a local model) has no price; at $1000 per million tokens either way, a token
    // costs exactly 1000 micro-dollars.
    let cadre = Cadre::new()
        .env("CADRE_MODEL", &format!("openai:qwen2.5-coder@{}/v1", server.base_url()))
        .env("CADRE_DEFAULT_PRICE", "1000:1000");
    let path = repo.path().to_str().unwrap();
    let goal = "test_add fails: add() in calc.py must return the sum";
    let out =
        cadre.run(&["task", "--repo", path, "--budget-usd", "100", goal]).await.expect_code(0);
    assert!(out.stdout.contains("ready for review"), "the task is not refused: {}", out.stdout);
    assert!(
        out.stdout.contains("note: qwen2.5-coder is not in the price table; its calls are charged at the default $1000/$1000"),
        "{}",
        out.stdout
    );

    let usage = cadre.run(&["usage", "--by", "model"]).await.expect_code(0);
    let row: Vec<&str> = usage
        .stdout
        .lines()
        .find(|l| l.contains("qwen2.5-coder"))
        .unwrap_or_else(|| panic!("{}", usage.stdout))
        .split_whitespace()
        .collect();
    let (input, output): (u64, u64) = (row[4].parse().unwrap(), row[5].parse().unwrap());
    assert!(input > 0 && output > 0, "{row:?}");
    let cost = format!("{}.{:06}", (input + output) / 1000, (input + output) % 1000 * 1000);
    assert_eq!(row[7], cost, "every token charged at the default: {row:?}");
}
