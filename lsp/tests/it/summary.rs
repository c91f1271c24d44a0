//! The summary of a task ready for review: opened as a document where the client supports
//! `window/showDocument`, with the goal, the plan, each round's tests and the cost.

use cadre_domain::event::Event;
use cadre_domain::StepKind;
use serde_json::{json, Value};

use crate::support::{full_capabilities, Client, FakeAgents};

const PY: &str = "def add(a, b):\n    return a - b\n";

fn failing_report() -> cadre_domain::TestReport {
    serde_json::from_value(json!({
        "command": "python3 -m unittest", "passed": false, "exit_code": 1, "timed_out": false,
        "duration_ms": 10, "counts": {"passed": 1, "failed": 1, "skipped": 0}, "failing_tests": ["test_add"],
        "failures": [{"name": "test_add", "message": "AssertionError: -1 != 5\nmore", "file": "calc.py", "line": 2}],
        "output_tail": "", "output_truncated": false, "isolation": "container"
    }))
    .unwrap()
}

fn two_rounds() -> Vec<Event> {
    vec![
        Event::StepStarted { step: StepKind::Plan, round: 0, attempt: 1 },
        Event::PlanReady { summary: "make add add".into(), items: 1, usage: Default::default() },
        Event::TestsFinished { round: 1, passed: false, summary: "1 failed".into() },
        Event::TestsFinished { round: 2, passed: true, summary: "2 passed".into() },
        Event::AwaitingReview { round: 2 },
    ]
}

async fn start_fix(client: &mut Client, calc: &str) {
    client
        .notify("textDocument/didOpen", json!({"textDocument": {"uri": calc, "languageId": "python", "version": 1, "text": PY}}))
        .await;
    let start = client
        .request("workspace/executeCommand", json!({"command": "cadre.start",
            "arguments": [{"intent": "fix", "uri": calc, "range": {"start": {"line": 1, "character": 0}, "end": {"line": 1, "character": 0}},
                           "diagnostics": [{"range": {"start": {"line": 1, "character": 4}, "end": {"line": 1, "character": 9}}, "message": "wrong sign"}]}]}))
        .await;
    assert!(start["result"]["task"].is_string(), "{start}");
}

#[tokio::test]
async fn a_ready_task_opens_its_summary_as_a_document_when_the_client_can_show_one() {
    let dir = tempfile::tempdir().unwrap();
    let agents = FakeAgents::new(dir.path());
    agents.script(two_rounds());
    *agents.report.lock().unwrap() = Some(failing_report());
    let mut client = Client::start(agents.clone());
    let mut caps = full_capabilities();
    caps["window"]["showDocument"] = json!({"support": true});
    client.initialize(caps, Value::Null).await;
    let calc = format!("file://{}", dir.path().join("calc.py").display());
    start_fix(&mut client, &calc).await;

    let shown = client.next_matching(|m| m["method"] == "window/showDocument").await;
    let params = &shown["params"];
    assert_eq!(params["takeFocus"], false, "{params}");
    let uri = tower_lsp::lsp_types::Url::parse(params["uri"].as_str().unwrap()).unwrap();
    let path = uri.to_file_path().unwrap();
    assert!(!path.starts_with(dir.path()), "the summary must not be written into the workspace");
    let text = std::fs::read_to_string(&path).unwrap();
    let goal = agents.calls().started[0].goal.lines().next().unwrap().to_owned();
    assert!(text.contains(&format!("Goal: {goal}")), "{text}");
    assert!(text.contains("ready for review"), "{text}");
    assert!(text.contains("Plan: add() subtracts; make it add"), "{text}");
    assert!(
        text.contains("Tests: failed in round 1: 1 passed, 1 failed, 0 skipped in 10 ms (`python3 -m unittest`, Container)"),
        "{text}"
    );
    assert!(text.contains("  - test_add: AssertionError: -1 != 5\n"), "{text}");
    assert!(text.contains("Tests: failed in round 2"), "{text}");
    assert!(text.contains("Cost: $0.0012"), "{text}");
    // Shown once, as a document: no message repeats it.
    assert!(
        !client.seen.iter().any(|m| m["method"] == "window/showMessage"
            && m["params"]["message"].as_str().unwrap_or_default().contains("ready for review")),
        "{:#?}",
        client.seen
    );
}

#[tokio::test]
async fn without_show_document_support_the_summary_is_a_message() {
    let dir = tempfile::tempdir().unwrap();
    let agents = FakeAgents::new(dir.path());
    agents.script(two_rounds());
    let mut client = Client::start(agents.clone());
    client.initialize(full_capabilities(), Value::Null).await;
    let calc = format!("file://{}", dir.path().join("calc.py").display());
    start_fix(&mut client, &calc).await;
    let message = client
        .notification("window/showMessage", |p| {
            p["message"].as_str().unwrap().contains("ready for review")
        })
        .await;
    let text = message["message"].as_str().unwrap();
    assert!(text.contains("Tests: no report for round 1\nTests: no report for round 2"), "{text}");
    assert!(text.contains("Goal: Fix this problem"), "{text}");
    assert!(!client.seen.iter().any(|m| m["method"] == "window/showDocument"));
}
