//! Running the `cadre` binary with its own data directory and a clean environment.

use std::path::PathBuf;
use std::process::Stdio;

/// A `cadre` home (database + worktrees) for one test, and how to reach the model.
pub(crate) struct Cadre {
    home: tempfile::TempDir,
    env: Vec<(String, String)>,
}

/// What a finished command printed.
#[derive(Debug)]
pub(crate) struct Output {
    pub(crate) code: i32,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

impl Output {
    /// Panics with everything printed unless the exit code is `code`.
    pub(crate) fn expect_code(self, code: i32) -> Output {
        assert_eq!(
            self.code, code,
            "unexpected exit code\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout, self.stderr
        );
        self
    }
}

impl Cadre {
    pub(crate) fn new() -> Cadre {
        Cadre { home: tempfile::tempdir().unwrap(), env: Vec::new() }
    }

    /// Sets an environment variable for every command.
    pub(crate) fn env(mut self, key: &str, value: &str) -> Cadre {
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }

    /// Talks Gemini's wire format to the local server at `base_url`.
    pub(crate) fn gemini(self, base_url: &str) -> Cadre {
        self.env("GEMINI_API_KEY", "test-key-123")
            .env("CADRE_GEMINI_BASE_URL", base_url)
            .env("CADRE_MODEL", "gemini:gemini-3-flash-preview")
    }

    /// Talks the OpenAI wire format to the local server at `base_url`.
    pub(crate) fn openai(self, base_url: &str) -> Cadre {
        self.env("CADRE_MODEL", &format!("openai:qwen2.5-coder@{base_url}/v1"))
    }

    pub(crate) fn command(&self, args: &[&str]) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new(binary());
        cmd.args(args)
            .env("CADRE_HOME", self.home.path())
            .env("CADRE_LOG", "cadre=debug,warn")
            .env_remove("GEMINI_API_KEY")
            .env_remove("GOOGLE_API_KEY")
            .env_remove("CADRE_MODEL")
            .env_remove("CADRE_GEMINI_BASE_URL")
            .env_remove("OPENAI_API_KEY")
            .env_remove("GOOGLE_CLOUD_PROJECT")
            .env_remove("GOOGLE_APPLICATION_CREDENTIALS")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd
    }

    /// Runs `cadre ARGS` to completion (at most two minutes).
    pub(crate) async fn run(&self, args: &[&str]) -> Output {
        let child = self.command(args).spawn().unwrap();
        let out =
            tokio::time::timeout(std::time::Duration::from_secs(120), child.wait_with_output())
                .await
                .unwrap_or_else(|_| panic!("cadre {args:?} did not finish in 120 s"))
                .unwrap();
        Output {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// The id of the only task, from `cadre status`.
    pub(crate) async fn only_task_id(&self) -> String {
        let out = self.run(&["status"]).await.expect_code(0);
        let ids: Vec<&str> = out
            .stdout
            .lines()
            .filter_map(|l| l.split_whitespace().next())
            .filter(|w| w.len() == 8)
            .collect();
        assert_eq!(ids.len(), 1, "expected one task:\n{}", out.stdout);
        ids[0].to_owned()
    }

    /// The task's log as printed by `cadre status TASK`, one event per line.
    pub(crate) async fn log(&self, task: &str) -> Vec<String> {
        let out = self.run(&["status", task]).await.expect_code(0);
        out.stdout
            .lines()
            .skip_while(|l| *l != "log:")
            .skip(1)
            .map(|l| l.trim().split_once("  ").map_or(l, |(_, event)| event).trim().to_owned())
            .collect()
    }
}

pub(crate) fn binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_cadre"))
}
