//! Cadre in a real editor: headless Neovim (Debian's `neovim`, installed by `.ci/run`) runs the real
//! `cadre lsp` as its language server, with the real engine, the youki sandbox, and a local server
//! speaking Gemini's wire format as the model.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use cadre_testkit::model_server::{CapturedRequest, ModelServer, Scripted};

use crate::support::repo::{Repo, BROKEN_CALC};

const PLAN: &str = r#"{"summary": "add() subtracts; make it add", "steps": [{"description": "return a + b in add()", "files": ["calc.py"]}], "acceptance_criteria": ["test_add passes"]}"#;

const FIX: &str =
    "calc.py\n<<<<<<< SEARCH\n    return a - b\n=======\n    return a + b\n>>>>>>> REPLACE\n";

/// The scripted model of the editor tests (also `acp.rs`'s): plan, then the one-line fix.
pub(crate) fn model(req: &CapturedRequest) -> Scripted {
    if req.system_text.contains("planning engineer") {
        Scripted::Text(PLAN.into())
    } else if req.system_text.contains("implementing engineer") {
        Scripted::Text(FIX.into())
    } else {
        Scripted::Status {
            code: 400,
            body: serde_json::json!({"error": {"message": "unexpected prompt"}}),
        }
    }
}

fn script(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/e2e/fixtures/editor").join(name)
}

/// Runs a Lua script in headless Neovim with the repository and a fresh Cadre home; returns its
/// stderr, failing the test (with that stderr) unless Neovim exits 0.
async fn nvim(script: &Path, repo: &Path, home: &Path, server: &ModelServer) -> String {
    let mut cmd = tokio::process::Command::new("nvim");
    cmd.args(["--headless", "--clean", "-u", "NONE", "-c"])
        .arg(format!("luafile {}", script.display()))
        .current_dir(repo)
        .env("CADRE_E2E_BIN", env!("CARGO_BIN_EXE_cadre"))
        .env("CADRE_E2E_REPO", repo)
        .env("CADRE_HOME", home)
        .env("CADRE_LOG", "cadre=debug,cadre_lsp=debug,warn")
        .env("GEMINI_API_KEY", "test-key-123")
        .env("CADRE_GEMINI_BASE_URL", server.base_url())
        .env("CADRE_MODEL", "gemini:gemini-3-flash-preview")
        .env_remove("GOOGLE_API_KEY")
        .env_remove("OPENAI_API_KEY")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let child = cmd.spawn().unwrap_or_else(|e| {
        panic!("cannot run nvim ({e}); install Debian's `neovim` (.ci/run does) to run the editor test")
    });
    let out = tokio::time::timeout(Duration::from_secs(240), child.wait_with_output())
        .await
        .expect("nvim did not finish in 240 s")
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "nvim exited with {:?}\n--- stdout\n{}\n--- stderr\n{stderr}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout)
    );
    stderr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn neovim_fixes_a_failing_test_through_a_code_action_and_the_file_on_disk_then_passes() {
    let server = ModelServer::start().await;
    server.respond_with(model);
    let repo = Repo::new(BROKEN_CALC);
    assert!(
        !repo.sh("python3 -m unittest -q 2>/dev/null"),
        "the fixture must start with a failing test"
    );
    let home = tempfile::tempdir().unwrap();

    let stderr = nvim(&script("fix_this.lua"), repo.path(), home.path(), &server).await;
    assert!(stderr.contains("OK task "), "{stderr}");

    // The edit reached the disk only through the editor's save, and it makes the suite pass.
    assert!(repo.read("calc.py").contains("return a + b"), "{}", repo.read("calc.py"));
    assert!(repo.sh("python3 -m unittest -q"), "the applied change must make the tests pass");
    // The goal carried the editor's context: the diagnostic and the buffer text.
    let plan = server
        .requests()
        .into_iter()
        .find(|r| r.system_text.contains("planning engineer"))
        .unwrap();
    assert!(plan.last_user_text.contains("AssertionError: -1 != 5"), "{}", plan.last_user_text);
    assert!(plan.last_user_text.contains("test_calc.py line 8"), "{}", plan.last_user_text);

    // The accept is on the task's log, as `cadre status` shows it.
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_cadre"))
        .arg("status")
        .env("CADRE_HOME", home.path())
        .output()
        .unwrap();
    let listing = String::from_utf8_lossy(&status.stdout);
    assert!(listing.contains("applied"), "{listing}");
}
