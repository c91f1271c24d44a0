//! Lifecycle, document sync, code actions, commands, progress, cancellation and robustness.

use cadre_domain::event::Event;
use cadre_domain::StepKind;
use serde_json::{json, Value};

use crate::support::{full_capabilities, plain_capabilities, Client, FakeAgents};

const PY: &str = "import unittest\n\n\ndef add(a, b):\n    # TODO: handle None\n    return a - b\n";

fn uri(dir: &std::path::Path, name: &str) -> String {
    format!("file://{}", dir.join(name).display())
}

fn titles(response: &Value) -> Vec<String> {
    response["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["title"].as_str().unwrap().to_owned())
        .collect()
}

async fn open(client: &Client, uri: &str, text: &str) {
    client
        .notify(
            "textDocument/didOpen",
            json!({"textDocument": {"uri": uri, "languageId": "python", "version": 1, "text": text}}),
        )
        .await;
}

fn code_action_params(uri: &str, line: u32, diagnostics: Value, only: Option<Value>) -> Value {
    let mut context = json!({"diagnostics": diagnostics});
    if let Some(only) = only {
        context["only"] = only;
    }
    json!({
        "textDocument": {"uri": uri},
        "range": {"start": {"line": line, "character": 4}, "end": {"line": line, "character": 4}},
        "context": context,
    })
}

#[tokio::test]
async fn initialize_announces_incremental_sync_lazy_code_actions_and_commands() {
    let dir = tempfile::tempdir().unwrap();
    let agents = FakeAgents::new(dir.path());
    let mut client = Client::start(agents.clone());
    let options = json!({"cadre": {"model": "gemini:gemini-3-flash-preview", "budgetUsd": 1.5, "apiKey": "sk-secret-1"}});
    let response = client.initialize(full_capabilities(), options).await;
    let caps = &response["result"]["capabilities"];
    assert_eq!(caps["textDocumentSync"]["change"], 2, "incremental sync: {caps}");
    assert_eq!(caps["codeActionProvider"]["resolveProvider"], true);
    let commands = caps["executeCommandProvider"]["commands"].as_array().unwrap();
    for c in [
        "cadre.start",
        "cadre.status",
        "cadre.list",
        "cadre.accept",
        "cadre.reject",
        "cadre.reindex",
        "cadre.search",
    ] {
        assert!(commands.contains(&json!(c)), "{c} missing from {commands:?}");
    }
    assert_eq!(response["result"]["serverInfo"]["name"], "cadre-lsp");

    // The secret was dropped, named but never echoed; the rest reached the agents.
    let warning = client.notification("window/showMessage", |p| p["type"] == 2).await;
    assert!(warning["message"].as_str().unwrap().contains("`apiKey`"), "{warning}");
    assert!(!warning.to_string().contains("sk-secret-1"));
    let configured = agents.calls().configured.clone();
    assert_eq!(configured[0].model.as_deref(), Some("gemini:gemini-3-flash-preview"));
    assert_eq!(configured[0].budget_usd, Some(1.5));

    client
        .notify(
            "workspace/didChangeConfiguration",
            json!({"settings": {"cadre": {"budgetUsd": 3.0}}}),
        )
        .await;
    client.request("cadre/unknown-so-we-wait", json!({})).await;
    assert_eq!(agents.calls().configured.last().unwrap().budget_usd, Some(3.0));
    client.shutdown().await;
    assert!(agents.calls().shutdown);
}

#[tokio::test]
async fn code_actions_fit_the_place_and_answer_from_memory() {
    let dir = tempfile::tempdir().unwrap();
    let mut client = Client::start(FakeAgents::new(dir.path()));
    client.initialize(plain_capabilities(), Value::Null).await;
    let calc = uri(dir.path(), "calc.py");
    open(&client, &calc, PY).await;

    // On the TODO inside a function, with a diagnostic: everything.
    let diagnostic = json!({"range": {"start": {"line": 4, "character": 4}, "end": {"line": 4, "character": 9}},
                            "severity": 2, "message": "handle None", "source": "lint"});
    let response = client
        .request("textDocument/codeAction", code_action_params(&calc, 4, json!([diagnostic]), None))
        .await;
    assert_eq!(
        titles(&response),
        [
            "Cadre: fix this",
            "Cadre: do this TODO",
            "Cadre: implement this",
            "Cadre: write tests for this",
            "Cadre: explain",
            "Cadre: refactor…",
            "Cadre: plan a change…"
        ]
    );
    // Without resolve support each action carries its command, with the place in its arguments.
    let fix = &response["result"][0];
    assert_eq!(fix["kind"], "quickfix");
    assert_eq!(fix["command"]["command"], "cadre.start");
    assert_eq!(fix["command"]["arguments"][0]["intent"], "fix");
    assert_eq!(fix["command"]["arguments"][0]["diagnostics"][0]["message"], "handle None");

    // Outside any function and without a selection: only planning.
    let response = client
        .request("textDocument/codeAction", code_action_params(&calc, 0, json!([]), None))
        .await;
    assert_eq!(titles(&response), ["Cadre: plan a change…"]);

    // The client's `only` filter is honoured.
    let response = client
        .request(
            "textDocument/codeAction",
            code_action_params(&calc, 4, json!([diagnostic]), Some(json!(["quickfix"]))),
        )
        .await;
    assert_eq!(titles(&response), ["Cadre: fix this", "Cadre: do this TODO"]);
}

#[tokio::test]
async fn with_resolve_support_actions_are_lazy_and_resolve_to_their_command() {
    let dir = tempfile::tempdir().unwrap();
    let mut client = Client::start(FakeAgents::new(dir.path()));
    client.initialize(full_capabilities(), Value::Null).await;
    let calc = uri(dir.path(), "calc.py");
    open(&client, &calc, PY).await;
    let response = client
        .request("textDocument/codeAction", code_action_params(&calc, 5, json!([]), None))
        .await;
    let implement = response["result"][0].clone();
    assert_eq!(implement["title"], "Cadre: implement this");
    assert!(implement.get("command").is_none() && implement.get("data").is_some(), "{implement}");
    let resolved = client.request("codeAction/resolve", implement).await;
    assert_eq!(resolved["result"]["command"]["command"], "cadre.start");
    assert_eq!(resolved["result"]["command"]["arguments"][0]["intent"], "implement");

    // Data the server never made is an invalid-params error, not a crash.
    let bad =
        client.request("codeAction/resolve", json!({"title": "x", "data": {"nope": 1}})).await;
    assert_eq!(bad["error"]["code"], -32602, "{bad}");
}

/// A task that plans, fails a round, passes the next and awaits review.
fn two_rounds() -> Vec<Event> {
    let started = |step, round| Event::StepStarted { step, round, attempt: 1 };
    vec![
        started(StepKind::Plan, 0),
        Event::PlanReady { summary: "make add add".into(), items: 1, usage: Default::default() },
        started(StepKind::Generate, 1),
        Event::PatchReady {
            round: 1,
            files_changed: vec!["calc.py".into()],
            lines_added: 1,
            lines_removed: 1,
            usage: Default::default(),
        },
        started(StepKind::Test, 1),
        Event::TestsFinished { round: 1, passed: false, summary: "1 failed".into() },
        started(StepKind::Generate, 2),
        Event::PatchReady {
            round: 2,
            files_changed: vec!["calc.py".into()],
            lines_added: 1,
            lines_removed: 1,
            usage: Default::default(),
        },
        started(StepKind::Test, 2),
        Event::TestsFinished { round: 2, passed: true, summary: "2 passed".into() },
        Event::AwaitingReview { round: 2 },
    ]
}

#[tokio::test]
async fn a_task_reports_work_done_progress_and_diagnostics_for_its_failing_tests() {
    let dir = tempfile::tempdir().unwrap();
    let agents = FakeAgents::new(dir.path());
    agents.script(two_rounds());
    *agents.report.lock().unwrap() = Some(serde_json::from_value(json!({
        "command": "python3 -m unittest", "passed": false, "exit_code": 1, "timed_out": false,
        "duration_ms": 10, "counts": null, "failing_tests": ["test_add"],
        "failures": [{"name": "test_add", "message": "AssertionError: 6 != 5", "file": "calc.py", "line": 6}],
        "output_tail": "", "output_truncated": false, "isolation": "container"
    })).unwrap());
    let mut client = Client::start(agents.clone());
    client.initialize(full_capabilities(), Value::Null).await;
    let calc = uri(dir.path(), "calc.py");
    open(&client, &calc, PY).await;
    // An unsaved edit: the goal must carry it.
    client
        .notify("textDocument/didChange", json!({"textDocument": {"uri": calc, "version": 2},
            "contentChanges": [{"range": {"start": {"line": 0, "character": 0}, "end": {"line": 0, "character": 0}}, "text": "# unsaved\n"}]}))
        .await;

    let start = client
        .request("workspace/executeCommand", json!({"command": "cadre.start",
            "arguments": [{"intent": "fix", "uri": calc, "range": {"start": {"line": 6, "character": 0}, "end": {"line": 6, "character": 0}},
                           "diagnostics": [{"range": {"start": {"line": 6, "character": 4}, "end": {"line": 6, "character": 9}}, "message": "wrong sign"}]}]}))
        .await;
    let task = start["result"]["task"].as_str().unwrap().to_owned();
    let goal = agents.calls().started[0].goal.clone();
    assert!(goal.starts_with("Fix this problem reported at calc.py line 7: wrong sign"), "{goal}");
    assert!(goal.contains("# unsaved\nimport unittest"), "{goal}");

    let token = json!(format!("cadre/{task}"));
    let begin = client.notification("$/progress", |p| p["value"]["kind"] == "begin").await;
    assert_eq!(begin["token"], token);
    assert_eq!(begin["value"]["cancellable"], true);
    assert!(begin["value"]["title"].as_str().unwrap().starts_with("Cadre: fix this"), "{begin}");
    let diagnostics = client
        .notification("textDocument/publishDiagnostics", |p| {
            !p["diagnostics"].as_array().unwrap().is_empty()
        })
        .await;
    assert_eq!(diagnostics["uri"], json!(calc));
    assert_eq!(diagnostics["diagnostics"][0]["range"]["start"]["line"], 5);
    assert_eq!(diagnostics["diagnostics"][0]["source"], "cadre");
    // The second round passed: the diagnostics are withdrawn.
    client
        .notification("textDocument/publishDiagnostics", |p| {
            p["diagnostics"].as_array().unwrap().is_empty()
        })
        .await;
    let end = client.notification("$/progress", |p| p["value"]["kind"] == "end").await;
    assert_eq!(end["value"]["message"], "ready for review (round 2)");
    let summary = client
        .notification("window/showMessage", |p| {
            p["message"].as_str().unwrap().contains("ready for review")
        })
        .await;
    assert!(
        summary["message"].as_str().unwrap().contains("Plan: add() subtracts; make it add"),
        "{summary}"
    );

    let reports: Vec<String> = client
        .seen
        .iter()
        .filter(|m| m["method"] == "$/progress" && m["params"]["value"]["kind"] == "report")
        .map(|m| m["params"]["value"]["message"].as_str().unwrap().to_owned())
        .collect();
    let expected = [
        "plan started",
        "plan ready",
        "generate round 1 started",
        "patch round 1",
        "test round 1 started",
        "tests round 1 failed",
        "generate round 2 started",
        "patch round 2",
        "test round 2 started",
        "tests round 2 passed",
        "awaiting review (round 2)",
    ];
    assert_eq!(reports.len(), expected.len(), "{reports:#?}");
    for (report, want) in reports.iter().zip(expected) {
        assert!(report.starts_with(want), "{report} should start with {want}");
        assert!(report.ends_with("($0.0012 so far)"), "{report}");
    }

    let status = client
        .request(
            "workspace/executeCommand",
            json!({"command": "cadre.status", "arguments": [{"task": &task[..8]}]}),
        )
        .await;
    assert_eq!(status["result"]["state"]["state"], "awaiting_review");
    let list = client.request("workspace/executeCommand", json!({"command": "cadre.list"})).await;
    assert_eq!(list["result"][0]["task"], json!(task));
}

#[tokio::test]
async fn cancelling_the_progress_cancels_the_task() {
    let dir = tempfile::tempdir().unwrap();
    let agents = FakeAgents::new(dir.path());
    // A task that stays at planning.
    agents.script(vec![Event::StepStarted { step: StepKind::Plan, round: 0, attempt: 1 }]);
    let mut client = Client::start(agents.clone());
    client.initialize(full_capabilities(), Value::Null).await;
    let calc = uri(dir.path(), "calc.py");
    open(&client, &calc, PY).await;
    let start = client
        .request("workspace/executeCommand", json!({"command": "cadre.start", "arguments": [{"intent": "plan", "uri": calc, "goal": "rename add to plus"}]}))
        .await;
    let task = start["result"]["task"].as_str().unwrap().to_owned();
    let begin = client.notification("$/progress", |p| p["value"]["kind"] == "begin").await;
    client.notify("window/workDoneProgress/cancel", json!({"token": begin["token"]})).await;
    let end = client.notification("$/progress", |p| p["value"]["kind"] == "end").await;
    assert_eq!(end["value"]["message"], "cancelled");
    let cancelled = agents.calls().cancelled.clone();
    assert_eq!(
        cancelled,
        vec![(
            cadre_domain::TaskId::parse(&task).unwrap(),
            Some("cancelled from the editor".into())
        )]
    );
}

#[tokio::test]
async fn cancel_request_of_a_waiting_start_cancels_its_task() {
    let dir = tempfile::tempdir().unwrap();
    let agents = FakeAgents::new(dir.path());
    agents.script(vec![Event::StepStarted { step: StepKind::Plan, round: 0, attempt: 1 }]);
    let mut client = Client::start(agents.clone());
    client.initialize(full_capabilities(), Value::Null).await;
    let calc = uri(dir.path(), "calc.py");
    open(&client, &calc, PY).await;
    // With the client's own progress token the request stays open until the task settles.
    let id = client
        .send_request("workspace/executeCommand", json!({"command": "cadre.start", "workDoneToken": "mine",
            "arguments": [{"intent": "explain", "uri": calc, "range": {"start": {"line": 5, "character": 0}, "end": {"line": 5, "character": 0}}}]}))
        .await;
    let begin = client.notification("$/progress", |p| p["value"]["kind"] == "begin").await;
    assert_eq!(begin["token"], "mine");
    client.notify("$/cancelRequest", json!({"id": id})).await;
    let response = client.response(id).await;
    assert_eq!(response["error"]["code"], -32800, "{response}");
    let end = client.notification("$/progress", |p| p["value"]["kind"] == "end").await;
    assert_eq!(end["value"]["message"], "cancelled");
    let cancelled = agents.calls().cancelled.clone();
    assert_eq!(cancelled[0].1.as_deref(), Some("the editor cancelled the request"));
    assert!(agents.calls().started[0]
        .goal
        .starts_with("Explain what function `add` in calc.py lines 4-6 does"));
}

#[tokio::test]
async fn malformed_messages_get_json_rpc_errors_and_the_server_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let mut client = Client::start(FakeAgents::new(dir.path()));
    // Before initialize.
    let early = client.request("textDocument/codeAction", json!({})).await;
    assert_eq!(early["error"]["code"], -32002, "{early}");
    client.initialize(plain_capabilities(), Value::Null).await;

    client.send_raw(b"{this is not json").await;
    let parse_error = client.next_matching(|m| m.get("error").is_some()).await;
    assert_eq!(parse_error["error"]["code"], -32700, "{parse_error}");

    let bad_params = client.request("textDocument/codeAction", json!({"textDocument": 3})).await;
    assert_eq!(bad_params["error"]["code"], -32602, "{bad_params}");
    let bad_args = client
        .request(
            "workspace/executeCommand",
            json!({"command": "cadre.start", "arguments": [{"intent": "dance"}]}),
        )
        .await;
    assert_eq!(bad_args["error"]["code"], -32602, "{bad_args}");
    assert!(
        bad_args["error"]["message"].as_str().unwrap().contains("lsp/EXTENSIONS.md"),
        "{bad_args}"
    );
    let no_goal = client
        .request("workspace/executeCommand", json!({"command": "cadre.start", "arguments": [{"intent": "plan", "uri": uri(dir.path(), "x.py")}]}))
        .await;
    assert!(no_goal["error"]["message"].as_str().unwrap().contains("needs a goal"), "{no_goal}");
    let unknown =
        client.request("workspace/executeCommand", json!({"command": "cadre.nope"})).await;
    assert!(
        unknown["error"]["message"].as_str().unwrap().contains("unknown command `cadre.nope`"),
        "{unknown}"
    );
    let no_task = client
        .request(
            "workspace/executeCommand",
            json!({"command": "cadre.status", "arguments": [{"task": "ffff"}]}),
        )
        .await;
    assert_eq!(no_task["error"]["code"], -32803, "{no_task}");
    let search = client
        .request(
            "workspace/executeCommand",
            json!({"command": "cadre.search", "arguments": [{"query": "add", "root": dir.path()}]}),
        )
        .await;
    assert!(
        search["error"]["message"].as_str().unwrap().contains("run cadre.reindex first"),
        "{search}"
    );
    let method = client.request("cadre/nothing", json!({})).await;
    assert_eq!(method["error"]["code"], -32601, "{method}");

    // Still serving.
    let calc = uri(dir.path(), "calc.py");
    open(&client, &calc, PY).await;
    let fine = client
        .request("textDocument/codeAction", code_action_params(&calc, 0, json!([]), None))
        .await;
    assert_eq!(titles(&fine), ["Cadre: plan a change…"]);
    client.shutdown().await;
}
