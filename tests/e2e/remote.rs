//! Remote mode end to end: `cadre serve-api` and `cadre serve-worker` on one home, and the editor's
//! server `cadre lsp --remote URL` driven over its stdio, take a "fix this" task to a proposal with
//! the model played by a local server speaking Gemini's wire format; the accept is recorded through
//! the API. The LSP client here frames JSON-RPC over the child's pipes the way `lsp/tests/it`'s
//! harness does over in-memory ones.

use std::process::Stdio;
use std::time::Duration;

use cadre_testkit::model_server::{CapturedRequest, ModelServer, Scripted};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout};

use crate::support::cadre::{Cadre, Output};
use crate::support::repo::{Repo, BROKEN_CALC};

const PLAN: &str = r#"{"summary": "add() subtracts; make it add", "steps": [{"description": "return a + b in add()", "files": ["calc.py"]}], "acceptance_criteria": ["test_add passes"]}"#;

const FIX: &str =
    "calc.py\n<<<<<<< SEARCH\n    return a - b\n=======\n    return a + b\n>>>>>>> REPLACE\n";

const TOKEN: &str = "e2e-team-token-5d1e";

fn model(req: &CapturedRequest) -> Scripted {
    if req.system_text.contains("planning engineer") {
        Scripted::Text(PLAN.into())
    } else if req.system_text.contains("implementing engineer") {
        Scripted::Text(FIX.into())
    } else {
        Scripted::Status { code: 400, body: json!({"error": {"message": "unexpected prompt"}}) }
    }
}

/// JSON-RPC over a child's stdio, answering the server's own requests as an editor would.
struct Lsp {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    next_id: i64,
    /// Notifications and server requests seen so far, in order.
    seen: Vec<Value>,
}

impl Lsp {
    async fn send(&mut self, msg: &Value) {
        // Editors leave out absent params (`shutdown`, `exit`); tower-lsp refuses `null`.
        let mut msg = msg.clone();
        if msg["params"].is_null() {
            if let Some(object) = msg.as_object_mut() {
                object.remove("params");
            }
        }
        let body = msg.to_string();
        self.stdin
            .write_all(format!("Content-Length: {}\r\n\r\n{body}", body.len()).as_bytes())
            .await
            .unwrap();
        self.stdin.flush().await.unwrap();
    }

    async fn recv(&mut self) -> Value {
        let mut length = 0usize;
        loop {
            let mut line = String::new();
            let n = self.stdout.read_line(&mut line).await.unwrap();
            assert!(n > 0, "cadre lsp closed its stdout; seen: {:#?}", self.seen);
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some(n) = line.strip_prefix("Content-Length: ") {
                length = n.parse().unwrap();
            }
        }
        let mut body = vec![0; length];
        self.stdout.read_exact(&mut body).await.unwrap();
        let msg: Value = serde_json::from_slice(&body).unwrap();
        if let (Some(id), Some(method)) = (msg.get("id"), msg["method"].as_str()) {
            let result = match method {
                "workspace/applyEdit" => json!({"applied": true}),
                _ => Value::Null,
            };
            let id = id.clone();
            self.send(&json!({"jsonrpc": "2.0", "id": id, "result": result})).await;
        }
        msg
    }

    /// Waits (at most `secs`) for a message matching `want`, keeping the others.
    async fn until(&mut self, secs: u64, want: impl Fn(&Value) -> bool) -> Value {
        if let Some(i) = self.seen.iter().position(&want) {
            return self.seen.remove(i);
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        loop {
            let msg = tokio::time::timeout_at(deadline, self.recv()).await.unwrap_or_else(|_| {
                panic!("no matching message in {secs} s; seen: {:#?}", self.seen)
            });
            if want(&msg) {
                return msg;
            }
            self.seen.push(msg);
        }
    }

    async fn request(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        self.send(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})).await;
        self.until(60, |m| m["id"] == json!(id) && m.get("method").is_none()).await
    }

    async fn notify(&mut self, method: &str, params: Value) {
        self.send(&json!({"jsonrpc": "2.0", "method": method, "params": params})).await;
    }
}

/// Runs `cadre ARGS` with the team's token to completion, expecting success; returns its stdout.
async fn with_token(cadre: &Cadre, args: &[&str]) -> Output {
    let child = cadre.command(args).env("CADRE_API_TOKEN", TOKEN).spawn().unwrap();
    let out = tokio::time::timeout(Duration::from_secs(120), child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("cadre {args:?} did not finish in 120 s"))
        .unwrap();
    let output = Output {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    output.expect_code(0)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Waits until the API answers its health check (at most 60 s).
async fn wait_ready(url: &str, api: &mut Child) {
    for _ in 0..600 {
        if let Ok(Ok(mut stream)) = tokio::time::timeout(
            Duration::from_millis(200),
            tokio::net::TcpStream::connect(url.trim_start_matches("http://")),
        )
        .await
        {
            stream
                .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                .await
                .unwrap();
            let mut answer = String::new();
            let _ = stream.read_to_string(&mut answer).await;
            if answer.starts_with("HTTP/1.1 200") {
                return;
            }
        }
        if let Ok(Some(status)) = api.try_wait() {
            panic!("cadre serve-api exited with {status}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("cadre serve-api did not answer at {url}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lsp_remote_takes_a_fix_through_serve_api_and_a_worker_to_a_proposal() {
    let server = ModelServer::start().await;
    server.respond_with(model);
    let repo = Repo::new(BROKEN_CALC);
    let digest = cadre_api::ApiToken::new(TOKEN).digest_hex();
    let url = format!("http://127.0.0.1:{}", free_port());
    let cadre =
        Cadre::new().gemini(&server.base_url()).env("CADRE_API_TOKENS", &format!("e2e:{digest}"));

    let mut api = cadre
        .command(&["serve-api", "--listen", url.trim_start_matches("http://")])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_ready(&url, &mut api).await;
    let _worker = cadre.command(&["serve-worker"]).stderr(Stdio::null()).spawn().unwrap();

    // The editor's server: no home of its own is used, only the deployment.
    let mut child = cadre
        .command(&["lsp", "--remote", &url])
        .env("CADRE_API_TOKEN", TOKEN)
        .env_remove("GEMINI_API_KEY")
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdin = child.stdin.take().unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let stderr = child.stderr.take().unwrap();
    let logs = tokio::spawn(async move {
        let mut text = String::new();
        let _ = BufReader::new(stderr).read_to_string(&mut text).await;
        text
    });
    let mut lsp = Lsp { child, stdin, stdout, next_id: 0, seen: Vec::new() };

    let root = format!("file://{}", repo.path().display());
    let init = lsp
        .request(
            "initialize",
            json!({"processId": null, "rootUri": root, "capabilities": {
                "workspace": {"applyEdit": true, "workspaceEdit": {"documentChanges": true}}},
                "initializationOptions": {"cadre": {"maxRounds": 2, "pollMs": 50}}}),
        )
        .await;
    assert_eq!(init["result"]["serverInfo"]["name"], "cadre-lsp", "{init}");
    lsp.notify("initialized", json!({})).await;
    let test_uri = format!("file://{}", repo.file("test_calc.py").display());
    lsp.notify(
        "textDocument/didOpen",
        json!({"textDocument": {"uri": test_uri,
        "languageId": "python", "version": 1, "text": repo.read("test_calc.py")}}),
    )
    .await;

    let started = lsp
        .request("workspace/executeCommand", json!({"command": "cadre.start", "arguments": [{
            "intent": "fix", "uri": test_uri,
            "range": {"start": {"line": 7, "character": 8}, "end": {"line": 7, "character": 44}},
            "diagnostics": [{"range": {"start": {"line": 7, "character": 8}, "end": {"line": 7, "character": 44}},
                             "severity": 1, "source": "unittest",
                             "message": "AssertionError: -1 != 5 (test_calc.CalcTest.test_add)"}]}]}))
        .await;
    let task = started["result"]["task"].as_str().unwrap_or_else(|| panic!("{started}")).to_owned();

    // The worker runs the task; the server follows it through the API and shows the summary.
    let summary = lsp
        .until(180, |m| {
            m["method"] == "window/showMessage"
                && m["params"]["message"].as_str().is_some_and(|t| t.contains("ready for review"))
        })
        .await;
    let text = summary["params"]["message"].as_str().unwrap();
    assert!(text.contains("Plan: add() subtracts; make it add"), "{text}");
    assert!(text.contains("Tests: passed in round 1"), "{text}");

    let shown = lsp
        .request(
            "workspace/executeCommand",
            json!({"command": "cadre.show", "arguments": [{"task": task}]}),
        )
        .await;
    let patch = shown["result"]["patch"].as_str().unwrap_or_else(|| panic!("{shown}"));
    assert!(patch.contains("+    return a + b"), "{patch}");

    // The person applies it: the editor gets the edit, the deployment records the accept.
    let accepted = lsp
        .request(
            "workspace/executeCommand",
            json!({"command": "cadre.accept", "arguments": [{"task": task}]}),
        )
        .await;
    assert_eq!(accepted["result"]["applied"], true, "{accepted}");
    let status = cadre.run(&["status"]).await.expect_code(0);
    assert!(status.stdout.contains("applied"), "{}", status.stdout);
    // The goal carried the editor's context to the deployment's model.
    let plan = server
        .requests()
        .into_iter()
        .find(|r| r.system_text.contains("planning engineer"))
        .unwrap();
    assert!(plan.last_user_text.contains("AssertionError: -1 != 5"), "{}", plan.last_user_text);

    // The CLI's remote mode: a second task followed to review, then the deployment's task list.
    let repo_arg = repo.path().to_str().unwrap();
    let out =
        with_token(&cadre, &["task", "--remote", &url, "--repo", repo_arg, "make test_add pass"])
            .await;
    assert!(out.stdout.contains("ready for review on the deployment"), "{}", out.stdout);
    let listing = with_token(&cadre, &["status", "--remote", &url]).await;
    assert!(
        listing.stdout.contains("applied") && listing.stdout.contains("awaiting_review"),
        "{}",
        listing.stdout
    );
    let refused = cadre.run(&["status", "--remote", &url]).await.expect_code(2);
    assert!(refused.stderr.contains("CADRE_API_TOKEN is not set"), "{}", refused.stderr);

    let down = lsp.request("shutdown", Value::Null).await;
    assert!(down.get("error").is_none(), "{down}");
    lsp.notify("exit", Value::Null).await;
    let status =
        tokio::time::timeout(Duration::from_secs(20), lsp.child.wait()).await.unwrap().unwrap();
    assert!(status.success(), "cadre lsp exited with {status}");
    let logs = logs.await.unwrap();
    assert!(!logs.contains(TOKEN), "the token reached the log:\n{logs}");
}
