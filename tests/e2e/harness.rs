//! The tool-using harness (`--harness tools`) end to end, over the real Gemini and OpenAI function-calling
//! wire formats: calls executed and answered in the right shape, thought signatures echoed, a bug
//! reproduced by a new test before it is fixed, unusable turns corrected, and a crash mid-loop resumed
//! without re-running a committed edit.

use cadre_testkit::model_server::{CapturedRequest, ModelServer, Scripted, ScriptedCall};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::support::cadre::Cadre;
use crate::support::repo::Repo;

/// A statistics module whose `mean` is wrong, and a test suite that does not cover it.
const BUGGY_STATS: &str = r#"
//- /stats.py
def mean(xs):
    return sum(xs) / (len(xs) + 1)


def total(xs):
    return sum(xs)
//- /test_total.py
import unittest

from stats import total


class TotalTest(unittest.TestCase):
    def test_total(self):
        self.assertEqual(total([1, 2, 3]), 6)


if __name__ == "__main__":
    unittest.main()
"#;

const GOAL: &str = "mean() in stats.py returns the wrong value: mean([2, 4]) must be 3";
const PLAN: &str = r#"{"summary": "mean divides by one too many", "steps": [{"description": "reproduce with a test, then divide by len(xs)", "files": ["stats.py"]}], "acceptance_criteria": ["mean([2, 4]) == 3"]}"#;
const NEW_TEST: &str = "import unittest\n\nfrom stats import mean\n\n\nclass MeanTest(unittest.TestCase):\n    def test_mean(self):\n        self.assertEqual(mean([2, 4]), 3)\n\n\nif __name__ == \"__main__\":\n    unittest.main()\n";

fn call(name: &str, args: Value) -> ScriptedCall {
    ScriptedCall { id: None, name: name.into(), args, thought_signature: None }
}

fn calls(list: Vec<ScriptedCall>) -> Scripted {
    Scripted::ToolCalls { text: String::new(), calls: list }
}

fn is_plan(req: &CapturedRequest) -> bool {
    req.system_text.contains("planning engineer")
}

/// The turn a Gemini request is for: its contents alternate user / model from the opening message.
fn gemini_turn(req: &CapturedRequest) -> usize {
    req.body["contents"].as_array().map_or(0, |c| c.len().div_ceil(2))
}

/// A model that reproduces the bug with a new test, fixes it, and finishes.
fn reproducing_model(req: &CapturedRequest) -> Scripted {
    if is_plan(req) {
        return Scripted::Text(PLAN.into());
    }
    match gemini_turn(req) {
        1 => {
            let mut first = call("search_code", json!({"query": "mean"}));
            first.thought_signature = Some("c2lnLTE=".into());
            calls(vec![first, call("read_file", json!({"path": "stats.py"}))])
        }
        2 => calls(vec![
            call("edit", json!({"path": "test_mean.py", "search": "", "replace": NEW_TEST})),
            call("run_tests", json!({})),
        ]),
        3 => calls(vec![
            call(
                "edit",
                json!({"path": "stats.py", "search": "(len(xs) + 1)", "replace": "len(xs)"}),
            ),
            call("run_tests", json!({})),
        ]),
        _ => calls(vec![call(
            "finish",
            json!({"summary": "mean divides by len(xs); test_mean covers it"}),
        )]),
    }
}

fn function_responses(req: &CapturedRequest, content: usize) -> Vec<Value> {
    req.body["contents"][content]["parts"]
        .as_array()
        .map(|parts| parts.iter().filter_map(|p| p.get("functionResponse").cloned()).collect())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_reproduces_the_bug_with_a_test_then_fixes_it_over_the_gemini_wire() {
    let server = ModelServer::start().await;
    server.respond_with(reproducing_model);
    let repo = Repo::new(BUGGY_STATS);
    let cadre = Cadre::new().gemini(&server.base_url());
    let path = repo.path().to_str().unwrap();

    let out = cadre.run(&["task", "--repo", path, "--harness", "tools", GOAL]).await.expect_code(0);
    assert!(out.stdout.contains("ready for review"), "{}", out.stdout);
    let task = cadre.only_task_id().await;
    let log = cadre.log(&task).await;
    let turns: Vec<&String> = log.iter().filter(|l| l.starts_with("turn ")).collect();
    assert_eq!(turns.len(), 4, "{log:#?}");
    assert!(
        turns[0].contains("search_code \"mean\"") && turns[0].contains("read_file stats.py"),
        "{}",
        turns[0]
    );
    assert!(
        turns[1].contains("run_tests: 1 passed, 1 failed"),
        "the new test fails first: {}",
        turns[1]
    );
    assert!(turns[2].contains("run_tests: 2 passed, 0 failed"), "{}", turns[2]);
    assert!(log.iter().any(|l| l.starts_with("tests round 1 passed: 2 passed")), "{log:#?}");

    // The wire: tools declared, the signature echoed on its part, both calls answered in one turn.
    let generate: Vec<CapturedRequest> =
        server.requests().into_iter().filter(|r| !is_plan(r)).collect();
    assert_eq!(generate.len(), 4);
    let declared: Vec<&str> = generate[0].body["tools"][0]["functionDeclarations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    assert!(declared.contains(&"edit") && declared.contains(&"finish"), "{declared:?}");
    let echoed = &generate[1].body["contents"][1]["parts"][0];
    assert_eq!(echoed["thoughtSignature"], "c2lnLTE=", "{echoed}");
    assert_eq!(echoed["functionCall"]["name"], "search_code");
    let answers = function_responses(&generate[1], 2);
    assert_eq!(answers.len(), 2, "both parallel calls answered in one turn: {answers:?}");
    assert_eq!(answers[1]["name"], "read_file");
    assert!(answers[1]["response"]["content"].as_str().unwrap().contains("(len(xs) + 1)"));

    // The report shows the new test going from failing to passing.
    let show = cadre.run(&["show", &task, "--only", "report"]).await.expect_code(0);
    assert!(
        show.stdout.contains("test_mean")
            && show.stdout.contains("failed in turn 2, passed in turn 3"),
        "{}",
        show.stdout
    );
    cadre.run(&["apply", &task]).await.expect_code(0);
    assert!(
        repo.sh("python3 -m unittest discover -q"),
        "the fix and its test pass on the repository"
    );
    assert!(repo.read("test_mean.py").contains("mean([2, 4]), 3"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_tools_and_malformed_calls_are_corrected_never_taken_as_success() {
    let server = ModelServer::start().await;
    server.respond_with(|req| {
        if is_plan(req) {
            return Scripted::Text(PLAN.into());
        }
        match gemini_turn(req) {
            1 => calls(vec![call("frobnicate", json!({"x": 1}))]),
            2 => Scripted::Finish { text: String::new(), reason: "MALFORMED_FUNCTION_CALL".into() },
            3 => Scripted::Text("I think the fix is obvious.".into()),
            4 => calls(vec![call(
                "edit",
                json!({"path": "stats.py", "search": "(len(xs) + 1)", "replace": "len(xs)"}),
            )]),
            _ => calls(vec![call("finish", json!({"summary": "fixed"}))]),
        }
    });
    let repo = Repo::new(BUGGY_STATS);
    let cadre = Cadre::new().gemini(&server.base_url());
    let path = repo.path().to_str().unwrap();
    let out = cadre.run(&["task", "--repo", path, "--harness", "tools", GOAL]).await.expect_code(0);
    assert!(out.stdout.contains("ready for review"), "{}", out.stdout);
    let task = cadre.only_task_id().await;
    let log = cadre.log(&task).await;
    assert!(log.iter().any(|l| l.contains("frobnicate: unknown tool")), "{log:#?}");
    assert!(
        log.iter().any(|l| l.contains("unusable tool call (MALFORMED_FUNCTION_CALL): corrected")),
        "{log:#?}"
    );
    assert!(log.iter().any(|l| l.contains("no tool call: corrected")), "{log:#?}");

    let requests: Vec<CapturedRequest> =
        server.requests().into_iter().filter(|r| !is_plan(r)).collect();
    let unknown = function_responses(&requests[1], 2);
    let error = unknown[0]["response"]["error"].as_str().unwrap();
    assert!(error.contains("no tool named `frobnicate`") && error.contains("read_file"), "{error}");
    assert!(
        requests[2].last_user_text.contains("could not be used (MALFORMED_FUNCTION_CALL"),
        "{}",
        requests[2].last_user_text
    );
    assert!(
        requests[3].last_user_text.contains("without calling a tool"),
        "{}",
        requests[3].last_user_text
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_mid_loop_resumes_at_the_turn_in_flight_without_redoing_a_committed_edit() {
    let server = ModelServer::start().await;
    let hang = Arc::new(AtomicBool::new(true));
    let hanging = hang.clone();
    server.respond_with(move |req| {
        if is_plan(req) {
            return Scripted::Text(PLAN.into());
        }
        match gemini_turn(req) {
            1 => calls(vec![call(
                "edit",
                json!({"path": "stats.py", "search": "(len(xs) + 1)", "replace": "len(xs)"}),
            )]),
            // The first worker dies while waiting for turn 2's answer.
            2 if hanging.swap(false, Ordering::SeqCst) => Scripted::Delay {
                millis: 60_000,
                then: Box::new(calls(vec![call("finish", json!({"summary": "late"}))])),
            },
            _ => calls(vec![call("finish", json!({"summary": "mean fixed"}))]),
        }
    });
    let repo = Repo::new(BUGGY_STATS);
    let cadre = Cadre::new().gemini(&server.base_url());
    let path = repo.path().to_str().unwrap();
    let mut first = cadre
        .command(&["--visibility-timeout", "2", "task", "--repo", path, "--harness", "tools", GOAL])
        .spawn()
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while hang.load(Ordering::SeqCst) {
        assert!(tokio::time::Instant::now() < deadline, "turn 2 never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    first.start_kill().unwrap();
    first.wait().await.unwrap();

    cadre.run(&["--visibility-timeout", "2", "serve-worker", "--until-idle"]).await.expect_code(0);
    let task = cadre.only_task_id().await;
    let status = cadre.run(&["status", &task]).await.expect_code(0);
    assert!(status.stdout.contains("state  awaiting_review (round 1)"), "{}", status.stdout);
    let log = cadre.log(&task).await;
    assert_eq!(log.iter().filter(|l| l.starts_with("turn 1 of round 1")).count(), 1, "{log:#?}");
    assert_eq!(
        log.iter().filter(|l| l.contains("edit stats.py")).count(),
        1,
        "the edit ran once: {log:#?}"
    );
    let turn1_calls =
        server.requests().iter().filter(|r| !is_plan(r) && gemini_turn(r) == 1).count();
    assert_eq!(turn1_calls, 1, "the committed turn was not asked again");
    let diff = cadre.run(&["show", &task, "--only", "diff"]).await.expect_code(0);
    assert!(diff.stdout.contains("+    return sum(xs) / len(xs)"), "{}", diff.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openai_wire_carries_tool_calls_and_results_too() {
    let server = ModelServer::start().await;
    server.respond_with(|req| {
        if is_plan(req) {
            return Scripted::Text(PLAN.into());
        }
        let turn = req.body["messages"]
            .as_array()
            .map_or(0, |m| m.iter().filter(|m| m["role"] == "assistant").count());
        match turn {
            0 => calls(vec![call("read_file", json!({"path": "stats.py"}))]),
            1 => calls(vec![call(
                "edit",
                json!({"path": "stats.py", "search": "(len(xs) + 1)", "replace": "len(xs)"}),
            )]),
            _ => calls(vec![call("finish", json!({"summary": "fixed"}))]),
        }
    });
    let repo = Repo::new(BUGGY_STATS);
    let cadre = Cadre::new().openai(&server.base_url());
    let path = repo.path().to_str().unwrap();
    let out = cadre.run(&["task", "--repo", path, "--harness", "tools", GOAL]).await.expect_code(0);
    assert!(out.stdout.contains("ready for review"), "{}", out.stdout);
    let requests: Vec<CapturedRequest> =
        server.requests().into_iter().filter(|r| !is_plan(r)).collect();
    assert_eq!(requests[0].body["tools"][0]["type"], "function");
    let messages = requests[1].body["messages"].as_array().unwrap();
    let tool = messages.iter().find(|m| m["role"] == "tool").expect("a tool message");
    let assistant = messages.iter().find(|m| m["role"] == "assistant").unwrap();
    assert_eq!(tool["tool_call_id"], assistant["tool_calls"][0]["id"]);
    assert!(tool["content"].as_str().unwrap().contains("(len(xs) + 1)"));
}

/// The `thinkingLevel` a Gemini request asks for.
fn thinking_level(req: &CapturedRequest) -> &str {
    req.body["generationConfig"]["thinkingConfig"]["thinkingLevel"].as_str().unwrap_or("(none)")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_step_asks_for_its_own_thinking_level_on_the_wire() {
    // The tool loop with the defaults: plan thinks high, each turn low.
    let server = ModelServer::start().await;
    server.respond_with(|req| {
        if is_plan(req) {
            return Scripted::Text(PLAN.into());
        }
        match gemini_turn(req) {
            1 => calls(vec![call(
                "edit",
                json!({"path": "stats.py", "search": "(len(xs) + 1)", "replace": "len(xs)"}),
            )]),
            _ => calls(vec![call("finish", json!({"summary": "fixed"}))]),
        }
    });
    let repo = Repo::new(BUGGY_STATS);
    let cadre = Cadre::new().gemini(&server.base_url());
    let path = repo.path().to_str().unwrap();
    cadre.run(&["task", "--repo", path, "--harness", "tools", GOAL]).await.expect_code(0);
    let levels: Vec<(bool, String)> =
        server.requests().iter().map(|r| (is_plan(r), thinking_level(r).to_owned())).collect();
    assert_eq!(
        levels,
        vec![(true, "high".into()), (false, "low".into()), (false, "low".into())],
        "plan, then two turns"
    );

    // Edit blocks, configured per step: `--thinking plan=medium,generate=minimal`.
    let server = ModelServer::start().await;
    server.respond_with(|req| {
        if is_plan(req) {
            Scripted::Text(PLAN.into())
        } else {
            Scripted::Text(
                "stats.py\n<<<<<<< SEARCH\n    return sum(xs) / (len(xs) + 1)\n=======\n    return sum(xs) / len(xs)\n>>>>>>> REPLACE\n"
                    .into(),
            )
        }
    });
    let repo = Repo::new(BUGGY_STATS);
    let cadre = Cadre::new().gemini(&server.base_url());
    let path = repo.path().to_str().unwrap();
    let args = ["task", "--repo", path, "--thinking", "plan=medium,generate=minimal", GOAL];
    cadre.run(&args).await.expect_code(0);
    let levels: Vec<(bool, String)> =
        server.requests().iter().map(|r| (is_plan(r), thinking_level(r).to_owned())).collect();
    assert_eq!(levels, vec![(true, "medium".into()), (false, "minimal".into())]);

    let bad = cadre.run(&["task", "--repo", path, "--thinking", "review=high", GOAL]).await;
    let bad = bad.expect_code(2);
    assert!(bad.stderr.contains("unknown step `review`"), "{}", bad.stderr);
}
