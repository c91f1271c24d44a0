//! Whole ACP sessions over the wire against the scripted agents: initialize, new session, prompt
//! with its plan and tool-call updates in order, consent (reject, allow to disk, allow through the
//! editor), cancel mid-task, load, and malformed input.

use std::sync::Arc;

use serde_json::{json, Value};

use crate::client::Client;
use crate::fake::{Ending, FakeAgents, CALC};

struct Fixture {
    dir: tempfile::TempDir,
    agents: Arc<FakeAgents>,
}

impl Fixture {
    fn new(configure: impl FnOnce(FakeAgents) -> FakeAgents) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("calc.py"), CALC).unwrap();
        let agents = Arc::new(configure(FakeAgents::new(dir.path())));
        Fixture { dir, agents }
    }

    fn calc(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("calc.py")).unwrap()
    }

    fn sessions(&self) -> std::path::PathBuf {
        self.dir.path().join(".sessions")
    }

    async fn client(&self, fs: bool) -> Client {
        let mut client = Client::connect(self.agents.clone(), Some(&self.sessions()));
        client.initialize(fs).await;
        client
    }
}

fn stop_reason(response: &Value) -> &str {
    response["result"]["stopReason"]
        .as_str()
        .unwrap_or_else(|| panic!("the prompt did not end with a stop reason: {response}"))
}

/// The plan entries' statuses of one `plan` update, e.g. `["completed", "in_progress", …]`.
fn statuses(update: &Value) -> Vec<String> {
    update["update"]["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["status"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn initialize_declares_what_cadre_really_supports() {
    let fx = Fixture::new(|a| a);
    let mut client = Client::connect(fx.agents.clone(), None);
    let result = client.initialize(false).await;
    assert_eq!(result["protocolVersion"], 1);
    let caps = &result["agentCapabilities"];
    assert_eq!(caps["loadSession"], true, "{result}");
    assert_eq!(caps["promptCapabilities"]["embeddedContext"], true, "{result}");
    assert_eq!(caps["promptCapabilities"]["image"], false, "{result}");
    assert_eq!(caps["promptCapabilities"]["audio"], false, "{result}");
    assert_eq!(result["agentInfo"]["name"], "cadre");
}

#[tokio::test]
async fn new_session_outside_a_repository_or_with_a_relative_cwd_is_refused_clearly() {
    let fx = Fixture::new(|a| a);
    let mut client = fx.client(false).await;
    let outside = tempfile::tempdir().unwrap();
    let response =
        client.request("session/new", json!({"cwd": outside.path(), "mcpServers": []})).await;
    assert_eq!(response["error"]["code"], -32602, "{response}");
    let message = response["error"]["message"].as_str().unwrap();
    assert!(message.contains("not in a git repository"), "{message}");
    assert!(message.contains("git init"), "{message}");

    let response = client.request("session/new", json!({"cwd": "repo", "mcpServers": []})).await;
    assert!(response["error"]["message"].as_str().unwrap().contains("not an absolute path"));
}

#[tokio::test]
async fn mcp_servers_offered_by_the_client_are_ignored_with_a_message() {
    let fx = Fixture::new(|a| a);
    let mut client = fx.client(false).await;
    let response = client
        .request(
            "session/new",
            json!({"cwd": fx.dir.path(), "mcpServers": [
                {"name": "github", "command": "/usr/bin/gh-mcp", "args": [], "env": []}
            ]}),
        )
        .await;
    assert!(response["result"]["sessionId"].is_string(), "{response}");
    client.until_update(|u| u["update"]["sessionUpdate"] == "agent_message_chunk").await;
    assert!(
        client.text().contains("does not use MCP servers; ignored: github"),
        "{}",
        client.text()
    );
}

#[tokio::test]
async fn a_prompt_streams_plan_and_tool_calls_in_order_then_writes_to_disk_when_allowed() {
    let fx = Fixture::new(|a| a);
    let mut client = fx.client(false).await;
    let session = client.new_session(fx.dir.path()).await;

    let response = client.prompt(&session, "make add() add").await;

    assert_eq!(stop_reason(&response), "end_turn");
    assert_eq!(fx.calc(), "def add(a, b):\n    return a + b\n", "the allowed change is on disk");
    let calls = fx.agents.calls();
    assert_eq!(calls[0], "start make add() add");
    assert!(calls[1].starts_with("accept ") && calls[1].ends_with(" r1"), "{calls:?}");

    // The first update tells the task started; the plan's entries then move forward in order.
    assert_eq!(client.kinds()[0], "agent_message_chunk");
    assert!(client.text().starts_with("Starting a Cadre task in "), "{}", client.text());
    assert!(client.text().contains("\nCadre task "), "{}", client.text());
    let plans: Vec<Vec<String>> = client
        .updates
        .iter()
        .filter(|u| u["update"]["sessionUpdate"] == "plan")
        .map(statuses)
        .collect();
    assert_eq!(plans[0], ["pending"; 5], "the whole pipeline first: {plans:?}");
    assert_eq!(plans[1][0], "in_progress", "then indexing: {plans:?}");
    assert!(
        plans.iter().all(|p| p.len() == 5),
        "the plan step replaces 'write the change': {plans:?}"
    );
    assert_eq!(plans.last().unwrap(), &["completed"; 5], "{plans:?}");
    let completed = |p: &Vec<String>| p.iter().filter(|s| *s == "completed").count();
    assert!(plans.windows(2).all(|w| completed(&w[0]) <= completed(&w[1])), "{plans:?}");
    let plan_entry = client
        .updates
        .iter()
        .rev()
        .find(|u| u["update"]["sessionUpdate"] == "plan")
        .map(|u| u["update"]["entries"][2]["content"].clone())
        .unwrap();
    assert_eq!(plan_entry, "return a + b in add() (calc.py)");

    // Tool calls, in the task's order, with their kinds and statuses.
    let tools: Vec<String> = client
        .updates
        .iter()
        .filter_map(|u| {
            let u = &u["update"];
            match u["sessionUpdate"].as_str()? {
                "tool_call" => Some(format!(
                    "call {} {} {}",
                    u["kind"].as_str()?,
                    // `pending` is the default, left out on the wire.
                    u["status"].as_str().unwrap_or("pending"),
                    u["title"].as_str()?
                )),
                "tool_call_update" => {
                    Some(format!("update {}", u["status"].as_str().unwrap_or("-")))
                }
                _ => None,
            }
        })
        .collect();
    assert_eq!(
        tools,
        [
            "call search in_progress Index the repository",
            "update completed",
            "call search completed search_code add",
            "call read completed read_file calc.py",
            "call edit completed edit calc.py",
            "call edit completed Edit 1 file(s) (+1 -1), round 1",
            "call execute in_progress Run the tests (round 1)",
            "update completed",
            "call edit pending Apply the change of round 1 to 1 file(s)",
            "update completed",
        ],
        "{:#?}",
        client.updates
    );
    let read = client.updates.iter().find(|u| u["update"]["title"] == "read_file calc.py").unwrap();
    assert_eq!(
        read["update"]["locations"][0]["path"],
        fx.dir.path().join("calc.py").display().to_string()
    );

    // The proposal carries one diff per file, and consent was asked with the three options.
    let proposal = client
        .updates
        .iter()
        .find(|u| u["update"]["title"] == "Apply the change of round 1 to 1 file(s)")
        .unwrap();
    let diff = &proposal["update"]["content"][0];
    assert_eq!(diff["type"], "diff");
    assert_eq!(diff["oldText"], CALC);
    assert_eq!(diff["newText"], "def add(a, b):\n    return a + b\n");
    let (method, params) = &client.agent_requests[0];
    assert_eq!(method, "session/request_permission");
    let kinds: Vec<&str> =
        params["options"].as_array().unwrap().iter().map(|o| o["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["allow_once", "allow_always", "reject_once"]);

    // Cost and budget are in the messages.
    let text = client.text();
    assert!(text.contains("$0.0012 spent of $2.0000 budget"), "{text}");
    assert!(text.contains("Plan: make add() add\n1. return a + b in add() (calc.py)"), "{text}");
    assert!(text.contains("applied round 1"), "{text}");
}

#[tokio::test]
async fn a_rejected_change_writes_nothing_and_is_recorded_rejected() {
    let fx = Fixture::new(|a| a);
    let mut client = fx.client(false).await;
    client.answers.permission = Some("reject");
    let session = client.new_session(fx.dir.path()).await;

    let response = client.prompt(&session, "make add() add").await;

    assert_eq!(stop_reason(&response), "end_turn");
    assert_eq!(fx.calc(), CALC, "nothing written");
    let calls = fx.agents.calls();
    assert!(calls[1].starts_with("reject "), "{calls:?}");
    assert!(!calls.iter().any(|c| c.starts_with("accept")), "{calls:?}");
    let last_call = client
        .updates
        .iter()
        .rev()
        .find(|u| u["update"]["sessionUpdate"] == "tool_call_update")
        .unwrap();
    assert_eq!(last_call["update"]["status"], "failed");
    assert!(client.text().contains("rejected: rejected in the editor"), "{}", client.text());
}

#[tokio::test]
async fn an_allowed_change_goes_through_the_editor_onto_its_unsaved_buffer() {
    let fx = Fixture::new(|a| a);
    let mut client = fx.client(true).await;
    let path = fx.dir.path().join("calc.py").display().to_string();
    // The person added a docstring in the editor and did not save it.
    let buffer = "\"\"\"Arithmetic.\"\"\"\ndef add(a, b):\n    return a - b\n";
    client.answers.buffers.insert(path.clone(), buffer.into());
    let session = client.new_session(fx.dir.path()).await;

    let response = client.prompt(&session, "make add() add").await;

    assert_eq!(stop_reason(&response), "end_turn");
    assert_eq!(fx.calc(), CALC, "the disk is left to the editor");
    let methods: Vec<&str> = client.agent_requests.iter().map(|(m, _)| m.as_str()).collect();
    assert_eq!(methods, ["fs/read_text_file", "session/request_permission", "fs/write_text_file"]);
    let (_, write) = &client.agent_requests[2];
    assert_eq!(write["path"], path);
    assert_eq!(write["content"], "\"\"\"Arithmetic.\"\"\"\ndef add(a, b):\n    return a + b\n");
}

#[tokio::test]
async fn allow_always_skips_the_question_for_the_next_prompt_of_the_session() {
    let fx = Fixture::new(|a| a);
    let mut client = fx.client(false).await;
    client.answers.permission = Some("allow-always");
    let session = client.new_session(fx.dir.path()).await;
    assert_eq!(stop_reason(&client.prompt(&session, "make add() add").await), "end_turn");
    std::fs::write(fx.dir.path().join("calc.py"), CALC).unwrap();

    assert_eq!(stop_reason(&client.prompt(&session, "again").await), "end_turn");

    let asked = client.agent_requests.iter().filter(|(m, _)| m == "session/request_permission");
    assert_eq!(asked.count(), 1);
    assert_eq!(fx.calc(), "def add(a, b):\n    return a + b\n");
    assert_eq!(fx.agents.tasks().len(), 2, "one task per prompt");
}

#[tokio::test]
async fn cancel_mid_task_stops_the_task_and_ends_the_turn_cancelled() {
    let fx = Fixture::new(|a| a.hold_at(4));
    let mut client = fx.client(false).await;
    let session = client.new_session(fx.dir.path()).await;
    let id = client
        .start(
            "session/prompt",
            json!({"sessionId": session, "prompt": [{"type": "text", "text": "make add() add"}]}),
        )
        .await;
    client.until_update(|u| u["update"]["sessionUpdate"] == "plan").await;

    client.notify("session/cancel", json!({"sessionId": session})).await;
    let response = client.response(id).await;

    assert_eq!(stop_reason(&response), "cancelled");
    let task = fx.agents.tasks().pop().unwrap();
    assert_eq!(fx.agents.state_of(&task), cadre_domain::TaskState::Cancelled);
    assert!(client.text().contains("cancelled"), "{}", client.text());
    assert_eq!(fx.calc(), CALC);
}

#[tokio::test]
async fn failed_and_budget_exhausted_tasks_end_the_turn_with_their_stop_reasons() {
    let fx = Fixture::new(|a| a.ending(Ending::Fails));
    let mut client = fx.client(false).await;
    let session = client.new_session(fx.dir.path()).await;
    assert_eq!(stop_reason(&client.prompt(&session, "x").await), "end_turn");
    assert!(
        client.text().contains("failed in test: the test command crashed"),
        "{}",
        client.text()
    );

    let fx = Fixture::new(|a| a.ending(Ending::Budget));
    let mut client = fx.client(false).await;
    let session = client.new_session(fx.dir.path()).await;
    assert_eq!(stop_reason(&client.prompt(&session, "x").await), "max_tokens");
    assert!(client.text().contains("budget exhausted in generate"), "{}", client.text());
}

#[tokio::test]
async fn a_session_is_loaded_with_its_history_after_the_editor_restarts() {
    let fx = Fixture::new(|a| a);
    let mut first = fx.client(false).await;
    let session = first.new_session(fx.dir.path()).await;
    assert_eq!(stop_reason(&first.prompt(&session, "make add() add").await), "end_turn");
    let live: Vec<Value> = first.updates.iter().map(|u| u["update"].clone()).collect();
    first.close().await.unwrap();

    let mut second = fx.client(false).await;
    let response = second
        .request(
            "session/load",
            json!({"sessionId": session, "cwd": fx.dir.path(), "mcpServers": []}),
        )
        .await;

    assert!(response.get("result").is_some(), "{response}");
    assert_eq!(second.updates[0]["update"]["sessionUpdate"], "user_message_chunk");
    assert_eq!(second.updates[0]["update"]["content"]["text"], "make add() add");
    assert!(second.updates.iter().all(|u| u["sessionId"] == session.as_str()));
    // The replay shows the same plan and tool calls the live turn showed.
    let only = |updates: &[Value], kind: &str| -> Vec<Value> {
        updates.iter().filter(|u| u["sessionUpdate"] == kind).cloned().collect()
    };
    let replayed: Vec<Value> = second.updates.iter().map(|u| u["update"].clone()).collect();
    assert_eq!(only(&replayed, "plan"), only(&live, "plan"));
    assert!(
        second.text().contains("Task ") && second.text().contains("is applied"),
        "{}",
        second.text()
    );
}

#[tokio::test]
async fn a_task_survives_the_editor_closing_and_the_loaded_session_follows_it_to_the_end() {
    let fx = Fixture::new(|a| a.hold_at(6));
    let mut first = fx.client(false).await;
    let session = first.new_session(fx.dir.path()).await;
    first
        .start(
            "session/prompt",
            json!({"sessionId": session, "prompt": [{"type": "text", "text": "make add() add"}]}),
        )
        .await;
    first.until_update(|u| u["update"]["sessionUpdate"] == "plan").await;
    first.close().await.unwrap();
    let task = fx.agents.tasks().pop().unwrap();
    assert!(!fx.agents.state_of(&task).is_terminal(), "closing the editor does not stop the task");
    assert!(!fx.agents.calls().iter().any(|c| c.starts_with("cancel")));

    fx.agents.release();
    let mut second = fx.client(false).await;
    let loaded = second
        .request(
            "session/load",
            json!({"sessionId": session, "cwd": fx.dir.path(), "mcpServers": []}),
        )
        .await;
    assert!(loaded.get("result").is_some(), "{loaded}");
    let response = second.prompt(&session, "").await;

    assert_eq!(stop_reason(&response), "end_turn", "{response}");
    assert!(second.text().contains("from before is"), "{}", second.text());
    assert_eq!(fx.calc(), "def add(a, b):\n    return a + b\n");
    assert_eq!(fx.agents.tasks().len(), 1, "the prompt followed the old task");
}

#[tokio::test]
async fn a_task_id_loads_as_a_session() {
    let fx = Fixture::new(|a| a);
    let mut first = fx.client(false).await;
    let session = first.new_session(fx.dir.path()).await;
    first.prompt(&session, "make add() add").await;
    let task = fx.agents.tasks().pop().unwrap();

    let mut second = Client::connect(fx.agents.clone(), None);
    second.initialize(false).await;
    let response = second
        .request(
            "session/load",
            json!({"sessionId": task.as_str(), "cwd": fx.dir.path(), "mcpServers": []}),
        )
        .await;
    assert!(response.get("result").is_some(), "{response}");
    assert_eq!(second.updates[0]["update"]["content"]["text"], "make add() add");

    let unknown = second
        .request(
            "session/load",
            json!({"sessionId": "nope", "cwd": fx.dir.path(), "mcpServers": []}),
        )
        .await;
    assert_eq!(unknown["error"]["code"], -32602, "{unknown}");
    assert!(unknown["error"]["message"].as_str().unwrap().contains("cadre status"));
}

#[tokio::test]
async fn malformed_input_gets_json_rpc_errors_and_the_agent_keeps_serving() {
    let fx = Fixture::new(|a| a);
    let mut client = Client::connect(fx.agents.clone(), None);
    client.initialize(false).await;

    client.send_raw("{this is not json").await;
    client.step().await;
    client.send_raw("[]").await;
    client.step().await;
    client.send_bytes(&[0xff, 0xfe, b'{']).await;
    let unknown = client.request("cadre/unknown", json!({})).await;
    let bad_params = client.request("session/new", json!({"cwd": 42})).await;
    let no_session = client
        .request(
            "session/prompt",
            json!({"sessionId": "nope", "prompt": [{"type": "text", "text": "x"}]}),
        )
        .await;
    let image = {
        let session = client.new_session(fx.dir.path()).await;
        client
            .request(
                "session/prompt",
                json!({"sessionId": session, "prompt": [{"type": "image", "data": "", "mimeType": "image/png"}]}),
            )
            .await
    };

    let errors: Vec<i64> = client
        .responses_seen()
        .into_iter()
        .chain(
            [&unknown, &bad_params, &no_session, &image]
                .map(|r| r["error"]["code"].as_i64().unwrap_or(0)),
        )
        .collect();
    assert_eq!(errors, [-32700, -32600, -32700, -32601, -32602, -32602, -32602]);
    assert!(image["error"]["message"].as_str().unwrap().contains("describe the image"));
    assert!(no_session["error"]["message"].as_str().unwrap().contains("unknown session nope"));
    let result = client.initialize(false).await;
    assert_eq!(result["agentInfo"]["name"], "cadre", "still serving");
}
