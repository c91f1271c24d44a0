//! Running the `git` command line with the same safety settings every time.
//!
//! Every invocation gets a C locale (so the messages we match on are English), no terminal prompts,
//! no hooks and no fsmonitor (a repository must not be able to make Cadre run its programs), and none
//! of the `GIT_DIR`-style variables a parent process may have set (they would redirect git elsewhere).

use cadre_domain::ports::workspace::WorkspaceError;
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;
use tracing::debug;

/// Variables that would point git at another repository, index or object store than the one we name.
const REDIRECTING_VARS: &[&str] = &[
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_INDEX_FILE",
    "GIT_OBJECT_DIRECTORY",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_COMMON_DIR",
    "GIT_NAMESPACE",
    "GIT_CONFIG_PARAMETERS",
    "GIT_CONFIG_COUNT",
];

/// One `git` invocation in a directory, built up then run once.
pub(crate) struct Git<'a> {
    dir: &'a Path,
    args: Vec<OsString>,
    stdin: Option<&'a [u8]>,
}

/// A git command that could not be run or exited non-zero.
#[derive(Debug)]
pub(crate) struct GitFailure {
    /// `git <args>` as a user would type it (without the safety `-c` flags).
    pub(crate) command: String,
    /// The directory it ran in.
    pub(crate) dir: PathBuf,
    /// What git printed on stderr, or why it could not start.
    pub(crate) stderr: String,
    /// The exit code, absent when git did not start or was killed.
    pub(crate) status: Option<i32>,
}

impl GitFailure {
    /// Whether git said the directory is not (inside) a work tree at all.
    pub(crate) fn is_not_a_repository(&self) -> bool {
        let s = &self.stderr;
        s.contains("not a git repository")
            || s.contains("must be run in a work tree")
            || s.contains("cannot change to")
    }
}

impl From<GitFailure> for WorkspaceError {
    fn from(f: GitFailure) -> Self {
        let detail = match (f.stderr.trim(), f.status) {
            ("", Some(code)) => format!("exit code {code} and no message"),
            ("", None) => "killed by a signal".to_owned(),
            (stderr, _) => stderr.to_owned(),
        };
        WorkspaceError::Git(format!("`{}` in {} failed: {detail}", f.command, f.dir.display()))
    }
}

impl<'a> Git<'a> {
    /// `git -C dir …`.
    pub(crate) fn new(dir: &'a Path) -> Self {
        Git { dir, args: Vec::new(), stdin: None }
    }

    /// Appends arguments.
    pub(crate) fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args.extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    /// Appends one argument.
    pub(crate) fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    /// Feeds `input` on stdin (e.g. a patch to `git apply -`).
    pub(crate) fn stdin(mut self, input: &'a [u8]) -> Self {
        self.stdin = Some(input);
        self
    }

    /// Runs git to completion and returns its stdout, or a failure naming the command.
    pub(crate) async fn run(self) -> Result<Vec<u8>, GitFailure> {
        let command = format!(
            "git {}",
            self.args.iter().map(|a| a.to_string_lossy()).collect::<Vec<_>>().join(" ")
        );
        let failure = |stderr: String| GitFailure {
            command: command.clone(),
            dir: self.dir.to_path_buf(),
            stderr,
            status: None,
        };
        let mut cmd = Command::new("git");
        cmd.arg("-C")
            .arg(self.dir)
            .args(["-c", "core.hooksPath=/dev/null", "-c", "core.fsmonitor=false"])
            .args(&self.args)
            .env("LC_ALL", "C")
            .env("GIT_TERMINAL_PROMPT", "0")
            // `status` must not rewrite the user's index just to refresh stat data.
            .env("GIT_OPTIONAL_LOCKS", "0")
            .stdin(if self.stdin.is_some() { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        for var in REDIRECTING_VARS {
            cmd.env_remove(var);
        }
        debug!(command = %command, dir = %self.dir.display(), "git");
        let mut child = cmd.spawn().map_err(|e| {
            failure(format!("could not start git: {e}; install git and make sure it is on PATH"))
        })?;
        let pipe = child.stdin.take();
        let feed = async {
            if let (Some(mut pipe), Some(input)) = (pipe, self.stdin) {
                // A broken pipe means git stopped reading early; its exit status tells why.
                let _ = pipe.write_all(input).await;
                let _ = pipe.shutdown().await;
            }
        };
        let (_, output) = tokio::join!(feed, child.wait_with_output());
        let output = output.map_err(|e| failure(format!("waiting for git failed: {e}")))?;
        if output.status.success() {
            Ok(output.stdout)
        } else {
            let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
            Err(GitFailure { status: output.status.code(), ..failure(stderr) })
        }
    }
}
