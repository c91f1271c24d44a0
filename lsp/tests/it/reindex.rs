//! `didSave` re-indexes the saved files: debounced, one call for a burst of saves, and never in the
//! way of the request loop.

use std::sync::atomic::Ordering;
use std::time::Duration;

use cadre_lsp::ServerOptions;
use serde_json::{json, Value};

use crate::support::{plain_capabilities, Client, FakeAgents};

async fn save(client: &Client, uri: &str) {
    client.notify("textDocument/didSave", json!({"textDocument": {"uri": uri}})).await;
}

/// Waits until the fake saw `n` re-index calls (at most 10 s).
async fn calls(agents: &FakeAgents, n: usize) -> Vec<(std::path::PathBuf, Vec<String>)> {
    for _ in 0..1000 {
        let seen = agents.calls().reindexed_files.clone();
        if seen.len() >= n {
            return seen;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("expected {n} re-index calls, saw {:?}", agents.calls().reindexed_files);
}

#[tokio::test]
async fn saves_are_reindexed_file_by_file_once_per_burst_without_blocking_requests() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("pkg")).unwrap();
    let agents = FakeAgents::new(dir.path());
    let options = ServerOptions {
        poll: Duration::from_millis(5),
        reindex_debounce: Duration::from_millis(50),
    };
    let mut client = Client::start_with(agents.clone(), options);
    client.initialize(plain_capabilities(), Value::Null).await;
    let calc = format!("file://{}", dir.path().join("calc.py").display());
    let test = format!("file://{}", dir.path().join("pkg/test_calc.py").display());

    // A burst: three saves of two files become one call with each file once.
    save(&client, &calc).await;
    save(&client, &test).await;
    save(&client, &calc).await;
    let seen = calls(&agents, 1).await;
    assert_eq!(
        seen[0],
        (dir.path().to_path_buf(), vec!["calc.py".to_owned(), "pkg/test_calc.py".to_owned()])
    );

    // A re-index that never ends holds up nothing: requests are answered, and saves meanwhile wait
    // for the next round instead of starting a second re-index.
    agents.hang_reindex.store(true, Ordering::SeqCst);
    save(&client, &calc).await;
    let seen = calls(&agents, 2).await;
    assert_eq!(seen[1].1, ["calc.py"]);
    save(&client, &test).await;
    let response = client
        .request(
            "textDocument/codeAction",
            json!({"textDocument": {"uri": calc},
            "range": {"start": {"line": 0, "character": 0}, "end": {"line": 0, "character": 0}},
            "context": {"diagnostics": []}}),
        )
        .await;
    assert!(response["result"].is_array(), "{response}");
    let status = client.request("workspace/executeCommand", json!({"command": "cadre.list"})).await;
    assert!(status["result"].is_array(), "{status}");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(agents.calls().reindexed_files.len(), 2);
}
