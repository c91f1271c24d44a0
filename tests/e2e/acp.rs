//! Cadre as an ACP agent, checked by a client Cadre did not write: the Node script
//! `acp/tests/node/client.mjs` on the official `@agentclientprotocol/sdk` runs a whole session against
//! the real `cadre acp` (real engine, store, git and sandbox; a local server speaking Gemini's wire
//! format as the model): initialize, new session, a prompt whose plan and tool calls it checks, the
//! change allowed and written through `fs/write_text_file`, then `session/load` in a second run.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use cadre_testkit::model_server::ModelServer;

use crate::editor::model;
use crate::support::repo::{Repo, BROKEN_CALC};

/// The Node client's directory with its dependencies installed: `npm ci` into a cache under the
/// target directory, redone only when the lockfile changes.
fn node_client() -> PathBuf {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("acp/tests/node");
    let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join("acp-node-client");
    let lock = std::fs::read_to_string(source.join("package-lock.json")).unwrap();
    std::fs::create_dir_all(&cache).unwrap();
    let installed = cache.join("node_modules/.cadre-lock");
    if std::fs::read_to_string(&installed).ok().as_deref() != Some(lock.as_str()) {
        for file in ["package.json", "package-lock.json"] {
            std::fs::copy(source.join(file), cache.join(file)).unwrap();
        }
        let out = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
            .current_dir(&cache)
            .output()
            .unwrap_or_else(|e| {
                panic!("cannot run npm ({e}); install Node.js 20 and npm (.ci/run does: apt-get install nodejs npm)")
            });
        assert!(
            out.status.success(),
            "npm ci failed in {}: {}",
            cache.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        std::fs::write(&installed, &lock).unwrap();
    }
    std::fs::copy(source.join("client.mjs"), cache.join("client.mjs")).unwrap();
    cache
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_typescript_client_runs_a_session_against_cadre_acp() {
    let client = node_client();
    let server = ModelServer::start().await;
    server.respond_with(model);
    let repo = Repo::new(BROKEN_CALC);
    let home = tempfile::tempdir().unwrap();

    let mut cmd = tokio::process::Command::new("node");
    cmd.arg(client.join("client.mjs"))
        .arg(repo.path())
        .arg(env!("CARGO_BIN_EXE_cadre"))
        .args(["--sandbox", "host"])
        .env("CADRE_HOME", home.path())
        .env("CADRE_LOG", "cadre=debug,cadre_acp=debug,warn")
        .env("GEMINI_API_KEY", "test-key-123")
        .env("CADRE_GEMINI_BASE_URL", server.base_url())
        .env("CADRE_MODEL", "gemini:gemini-3-flash-preview")
        .env_remove("GOOGLE_API_KEY")
        .env_remove("OPENAI_API_KEY")
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(240), cmd.output())
        .await
        .expect("the node client did not finish in 240 s")
        .unwrap_or_else(|e| panic!("cannot run node ({e}); install Node.js 20 (.ci/run does)"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the node client failed\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
    );

    let summary: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(summary["ok"], true);
    assert_eq!(summary["stopReason"], "end_turn");
    // The change reached the disk only through the client's fs/write_text_file, and it is the fix.
    assert!(repo.read("calc.py").contains("return a + b"), "{}", repo.read("calc.py"));
    // The task is an ordinary task: `cadre status` shows it applied.
    let status = Command::new(env!("CARGO_BIN_EXE_cadre"))
        .arg("status")
        .env("CADRE_HOME", home.path())
        .output()
        .unwrap();
    let listing = String::from_utf8_lossy(&status.stdout);
    assert!(listing.contains("applied"), "{listing}");
}
