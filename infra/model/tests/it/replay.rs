use std::sync::Arc;

use cadre_domain::ports::model::{ChatMessage, Model, ModelError, ModelRequest};
use cadre_model::{request_key, RecordingModel, ReplayModel};
use cadre_testkit::model_server::{ModelServer, Scripted};

use crate::{ask, gemini_at};

#[tokio::test]
async fn recorded_replies_replay_identically_without_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("plan.jsonl");
    let server = ModelServer::start().await;
    server.push(Scripted::Text("first answer".into()));
    server.push(Scripted::Status {
        code: 503,
        body: serde_json::json!({"error": {"message": "busy"}}),
    });
    server.push(Scripted::Finish { text: "second answer".into(), reason: "MAX_TOKENS".into() });
    let recorder = RecordingModel::new(
        Arc::new(gemini_at(&server.base_url(), std::time::Duration::from_secs(10))),
        &file,
    )
    .unwrap();
    let second = ModelRequest { messages: vec![ChatMessage::user("two")], ..ask("two") };
    let recorded_one = recorder.complete(&ask("one")).await.unwrap();
    assert!(matches!(recorder.complete(&second).await, Err(ModelError::ServerError { .. })));
    let recorded_two = recorder.complete(&second).await.unwrap();
    drop(recorder);
    drop(server);

    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&file)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "errors are not recorded");
    assert_eq!(lines[0]["key"], request_key(&ask("one")));
    assert_eq!(lines[0]["request"]["messages"][0]["text"], "one");
    assert_eq!(lines[1]["reply"]["text"], "second answer");

    let replay = ReplayModel::open(&file).unwrap();
    assert_eq!(replay.describe(), format!("replay:{}", file.display()));
    // Purpose is not part of the key, so a renamed step still replays.
    let renamed = ModelRequest { purpose: "renamed".into(), ..ask("one") };
    assert_eq!(replay.complete(&renamed).await.unwrap(), recorded_one);
    assert_eq!(replay.complete(&second).await.unwrap(), recorded_two);
}

#[tokio::test]
async fn a_changed_prompt_is_a_replay_miss() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("t.jsonl");
    let server = ModelServer::start().await;
    server.push(Scripted::Text("answer".into()));
    let recorder = RecordingModel::new(
        Arc::new(gemini_at(&server.base_url(), std::time::Duration::from_secs(10))),
        &file,
    )
    .unwrap();
    recorder.complete(&ask("original")).await.unwrap();

    let replay = ReplayModel::open(&file).unwrap();
    let changed = ask("original, edited");
    let error = replay.complete(&changed).await.unwrap_err();
    assert_eq!(
        error,
        ModelError::ReplayMiss { key: request_key(&changed), file: file.display().to_string() }
    );
    assert!(!error.is_retryable());
}

#[tokio::test]
async fn repeated_requests_replay_in_recorded_order_then_repeat_the_last() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("retries.jsonl");
    let server = ModelServer::start().await;
    for text in ["attempt 1", "attempt 2", "attempt 3"] {
        server.push(Scripted::Text(text.into()));
    }
    let recorder = RecordingModel::new(
        Arc::new(gemini_at(&server.base_url(), std::time::Duration::from_secs(10))),
        &file,
    )
    .unwrap();
    for _ in 0..3 {
        recorder.complete(&ask("same")).await.unwrap();
    }

    let replay = ReplayModel::open(&file).unwrap();
    let mut texts = Vec::new();
    for _ in 0..4 {
        texts.push(replay.complete(&ask("same")).await.unwrap().text);
    }
    assert_eq!(texts, ["attempt 1", "attempt 2", "attempt 3", "attempt 3"]);
}

#[tokio::test]
async fn hand_written_lines_without_a_key_are_keyed_by_their_request() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("hand.jsonl");
    let line = serde_json::json!({
        "request": ask("hand"),
        "reply": {"text": "written by hand", "usage": {"input": 1, "output": 1, "cached": 0, "thinking": 0},
                  "finish": "stop", "model": "fixture"},
    });
    std::fs::write(&file, format!("{line}\n\n")).unwrap();
    let reply = ReplayModel::open(&file).unwrap().complete(&ask("hand")).await.unwrap();
    assert_eq!(reply.text, "written by hand");
}

#[test]
fn bad_transcripts_name_the_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.jsonl");
    std::fs::write(&file, "\n{not json}\n").unwrap();
    let error = ReplayModel::open(&file).unwrap_err();
    assert!(
        matches!(&error, ModelError::NotConfigured { hint } if hint.contains("line 2") && hint.contains("bad.jsonl")),
        "{error:?}"
    );

    let missing = dir.path().join("missing.jsonl");
    let error = ReplayModel::open(&missing).unwrap_err();
    assert!(
        matches!(&error, ModelError::NotConfigured { hint } if hint.contains("missing.jsonl")),
        "{error:?}"
    );
}
