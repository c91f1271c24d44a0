//! Review in the editor: the proposed change as a versioned `WorkspaceEdit`, re-based onto the buffer,
//! applied by the client or refused, and the decision recorded on the task.

use cadre_domain::event::Event;
use serde_json::{json, Value};

use crate::support::{full_capabilities, plain_capabilities, Client, FakeAgents};

const CALC: &str = "def add(a, b):\n    return a - b\n\n\ndef mul(a, b):\n    return a * b\n";

const PATCH: &str = "diff --git a/calc.py b/calc.py
index 1111111..2222222 100644
--- a/calc.py
+++ b/calc.py
@@ -1,5 +1,5 @@
 def add(a, b):
-    return a - b
+    return a + b
 
 
 def mul(a, b):
";

/// A server whose next task goes straight to review with `PATCH`, and `calc.py` open at version 1.
async fn ready_task(
    caps: Value,
) -> (tempfile::TempDir, std::sync::Arc<FakeAgents>, Client, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let agents = FakeAgents::new(dir.path());
    agents.script(vec![Event::AwaitingReview { round: 1 }]);
    *agents.patch.lock().unwrap() = PATCH.to_owned();
    let mut client = Client::start(agents.clone());
    client.initialize(caps, Value::Null).await;
    let calc = format!("file://{}", dir.path().join("calc.py").display());
    client
        .notify("textDocument/didOpen", json!({"textDocument": {"uri": calc, "languageId": "python", "version": 1, "text": CALC}}))
        .await;
    let start = client
        .request(
            "workspace/executeCommand",
            json!({"command": "cadre.start", "arguments": [{"intent": "fix", "uri": calc}]}),
        )
        .await;
    let task = start["result"]["task"].as_str().unwrap().to_owned();
    client
        .notification("window/showMessage", |p| {
            p["message"].as_str().unwrap().contains("ready for review")
        })
        .await;
    (dir, agents, client, calc, task)
}

async fn edit_buffer(client: &Client, calc: &str, version: i32, line: u32, text: &str) {
    client
        .notify("textDocument/didChange", json!({"textDocument": {"uri": calc, "version": version},
            "contentChanges": [{"range": {"start": {"line": line, "character": 0}, "end": {"line": line, "character": 0}}, "text": text}]}))
        .await;
}

#[tokio::test]
async fn accept_sends_a_versioned_edit_rebased_onto_the_edited_buffer_and_records_it() {
    let (dir, agents, mut client, calc, task) = ready_task(plain_capabilities()).await;
    // The person added two lines above the function after the task started, without saving.
    edit_buffer(&client, &calc, 2, 0, "import math\n\n").await;

    let accepted = client
        .request(
            "workspace/executeCommand",
            json!({"command": "cadre.accept", "arguments": [{"task": task}]}),
        )
        .await;
    assert_eq!(accepted["result"]["applied"], true, "{accepted}");
    let applied = client.applied.lock().unwrap().clone();
    let change = &applied[0]["edit"]["documentChanges"][0];
    assert_eq!(change["textDocument"], json!({"uri": calc, "version": 2}));
    assert_eq!(
        change["edits"],
        json!([{"range": {"start": {"line": 3, "character": 0}, "end": {"line": 4, "character": 0}}, "newText": "    return a + b\n"}])
    );
    assert!(applied[0]["label"].as_str().unwrap().starts_with("Cadre: fix this"));
    assert_eq!(agents.calls().accepted, vec![(cadre_domain::TaskId::parse(&task).unwrap(), 1)]);
    // Nothing was written to disk by the server.
    assert!(!dir.path().join("calc.py").exists());
}

#[tokio::test]
async fn a_buffer_that_changed_where_the_change_goes_is_not_clobbered() {
    let (_dir, agents, mut client, calc, task) = ready_task(plain_capabilities()).await;
    client
        .notify("textDocument/didChange", json!({"textDocument": {"uri": calc, "version": 2},
            "contentChanges": [{"range": {"start": {"line": 1, "character": 11}, "end": {"line": 1, "character": 16}}, "text": "b - a"}]}))
        .await;
    let refused = client
        .request(
            "workspace/executeCommand",
            json!({"command": "cadre.accept", "arguments": [{"task": task}]}),
        )
        .await;
    let message = refused["error"]["message"].as_str().unwrap();
    assert!(
        message.starts_with(
            "calc.py changed since the task started: hunk 1 expected `def add(a, b):`"
        ),
        "{message}"
    );
    assert!(client.applied.lock().unwrap().is_empty());
    assert!(agents.calls().accepted.is_empty());
    // Discarding is recorded.
    let rejected = client
        .request(
            "workspace/executeCommand",
            json!({"command": "cadre.reject", "arguments": [{"task": task, "reason": "stale"}]}),
        )
        .await;
    assert_eq!(rejected["result"]["rejected"], true, "{rejected}");
    assert_eq!(agents.calls().rejected.len(), 1);
}

#[tokio::test]
async fn a_resolved_apply_action_carries_the_edit_and_records_the_accept_only_once_applied() {
    let (_dir, agents, mut client, calc, _task) = ready_task(full_capabilities()).await;
    let params = json!({"textDocument": {"uri": calc}, "range": {"start": {"line": 0, "character": 0}, "end": {"line": 0, "character": 0}}, "context": {"diagnostics": []}});
    let actions = client.request("textDocument/codeAction", params).await;
    let titles: Vec<&str> = actions["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["title"].as_str().unwrap())
        .collect();
    let apply = actions["result"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["title"].as_str().unwrap().starts_with("Cadre: apply the proposed change"))
        .unwrap_or_else(|| panic!("{titles:?}"))
        .clone();
    assert!(
        titles.iter().any(|t| t.starts_with("Cadre: discard the proposed change")),
        "{titles:?}"
    );
    assert!(apply.get("edit").is_none());
    let resolved = client.request("codeAction/resolve", apply).await;
    let edit = &resolved["result"]["edit"]["documentChanges"][0];
    assert_eq!(edit["textDocument"]["version"], 1);
    assert_eq!(resolved["result"]["command"]["command"], "cadre.accepted");

    // The editor says it applied the edit, but the buffer does not show it: nothing is recorded.
    let command = resolved["result"]["command"].clone();
    let early = client.request("workspace/executeCommand", command.clone()).await;
    assert!(
        early["error"]["message"].as_str().unwrap().contains("does not show the proposed change"),
        "{early}"
    );
    assert!(agents.calls().accepted.is_empty());

    // Resolve again, apply it for real (as the editor's didChange reports), then record.
    let actions = client
        .request("textDocument/codeAction", json!({"textDocument": {"uri": calc}, "range": {"start": {"line": 0, "character": 0}, "end": {"line": 0, "character": 0}}, "context": {"diagnostics": []}}))
        .await;
    let apply = actions["result"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["title"].as_str().unwrap().starts_with("Cadre: apply"))
        .unwrap()
        .clone();
    let resolved = client.request("codeAction/resolve", apply).await;
    let text_edit = resolved["result"]["edit"]["documentChanges"][0]["edits"][0].clone();
    client
        .notify(
            "textDocument/didChange",
            json!({"textDocument": {"uri": calc, "version": 2},
            "contentChanges": [{"range": text_edit["range"], "text": text_edit["newText"]}]}),
        )
        .await;
    let recorded =
        client.request("workspace/executeCommand", resolved["result"]["command"].clone()).await;
    assert_eq!(recorded["result"]["applied"], true, "{recorded}");
    assert_eq!(agents.calls().accepted.len(), 1);
    // Once applied, the task offers no review actions any more.
    let actions = client
        .request("textDocument/codeAction", json!({"textDocument": {"uri": calc}, "range": {"start": {"line": 0, "character": 0}, "end": {"line": 0, "character": 0}}, "context": {"diagnostics": []}}))
        .await;
    assert!(!actions.to_string().contains("Cadre: apply"), "{actions}");
}
