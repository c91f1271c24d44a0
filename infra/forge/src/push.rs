//! Committing a task's change and pushing it with `git push` over HTTPS.
//!
//! The token reaches git only through the environment of the one `git push` process, as
//! `GIT_CONFIG_COUNT` / `GIT_CONFIG_KEY_n` / `GIT_CONFIG_VALUE_n` setting
//! `http.<remote url>.extraHeader: Authorization: Basic …`: scoped to the remote's URL (a redirect to
//! another host does not get it), absent from the argument list (`ps` shows it to every user), absent
//! from the remote URL (git prints that in errors) and never handed to a credential helper (which
//! could store it), since helpers are switched off for the push.

use base64::Engine as _;
use cadre_domain::ids::CommitId;
use cadre_domain::ports::forge::{ForgeError, PushRequest, Pushed};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;
use tracing::debug;

use crate::secret::Secret;

/// Who a commit is by: `Name <email>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitIdentity {
    /// The name.
    pub name: String,
    /// The email address.
    pub email: String,
}

impl GitIdentity {
    /// The identity Cadre commits as unless configured otherwise.
    #[must_use]
    pub fn cadre() -> Self {
        GitIdentity { name: "Cadre".to_owned(), email: "cadre@localhost".to_owned() }
    }

    /// Parses `Name <email>` (as `CADRE_GIT_AUTHOR` holds it).
    ///
    /// # Errors
    /// [`crate::ConfigError::Identity`] when the text is not in that form.
    pub fn parse(text: &str) -> Result<Self, crate::ConfigError> {
        let bad = || crate::ConfigError::Identity(text.to_owned());
        let (name, rest) = text.trim().split_once('<').ok_or_else(bad)?;
        let email = rest.strip_suffix('>').ok_or_else(bad)?.trim();
        let name = name.trim();
        if name.is_empty()
            || !email.contains('@')
            || email.contains(['<', '>', '\n'])
            || name.contains('\n')
        {
            return Err(bad());
        }
        Ok(GitIdentity { name: name.to_owned(), email: email.to_owned() })
    }
}

/// Where and as whom branches are pushed.
#[derive(Debug, Clone)]
pub struct GitRemote {
    /// The repository's HTTPS clone URL, without credentials (e.g. `https://github.com/o/r.git`).
    pub url: String,
    /// The user name sent with the token (`x-access-token` on GitHub, `oauth2` on GitLab).
    pub username: String,
    /// The commit's author.
    pub author: GitIdentity,
    /// The commit's committer.
    pub committer: GitIdentity,
    /// The git program (`git` on `PATH` by default).
    pub git: PathBuf,
}

impl GitRemote {
    /// A remote at `url`, committing as [`GitIdentity::cadre`].
    #[must_use]
    pub fn new(url: impl Into<String>, username: impl Into<String>) -> Self {
        GitRemote {
            url: url.into(),
            username: username.into(),
            author: GitIdentity::cadre(),
            committer: GitIdentity::cadre(),
            git: PathBuf::from("git"),
        }
    }

    /// Commits the worktree's changes and pushes the commit to the request's branch (replacing it).
    pub(crate) async fn push(
        &self,
        token: &Secret,
        request: &PushRequest,
    ) -> Result<Pushed, ForgeError> {
        let what = format!("the push of branch {}", request.branch);
        if !crate::branch::is_valid(&request.branch) {
            return Err(ForgeError::Conflict {
                what,
                detail: "the branch name is not a valid git branch; use crate::branch_name"
                    .to_owned(),
            });
        }
        let dir = &request.worktree;
        let head =
            self.git(dir, &what).args(["rev-parse", "--verify", "HEAD^{commit}"]).run().await?;
        if head.trim() != request.base.as_str() {
            return Err(ForgeError::Conflict {
                what,
                detail: format!(
                    "the worktree {} is at {}, not at the task's base {}; rebuild it from the base",
                    dir.display(),
                    head.trim(),
                    request.base
                ),
            });
        }
        self.git(dir, &what).args(["add", "-A"]).run().await?;
        let staged = self.git(dir, &what).args(["diff", "--cached", "--quiet"]).run().await;
        if staged.is_ok() {
            return Err(ForgeError::Conflict {
                what,
                detail: "the change is empty; there is nothing to commit".to_owned(),
            });
        }
        self.git(dir, &what)
            .args(["commit", "-q", "--no-verify", "--no-gpg-sign", "-F", "-"])
            .identity(&self.author, &self.committer)
            .stdin(request.message.clone())
            .run()
            .await?;
        let commit = self.git(dir, &what).args(["rev-parse", "HEAD"]).run().await?;
        let commit = CommitId::parse(commit.trim()).map_err(|e| ForgeError::Unavailable {
            what: what.clone(),
            detail: format!("git printed an unexpected commit id: {e}"),
        })?;
        debug!(branch = %request.branch, remote = %self.url, commit = %commit, "pushing");
        let basic = base64::engine::general_purpose::STANDARD.encode(format!(
            "{}:{}",
            self.username,
            token.expose()
        ));
        self.git(dir, &what)
            .args(["push", "--porcelain", "--no-verify", "--"])
            .arg(&self.url)
            .arg(format!("+{commit}:refs/heads/{}", request.branch))
            .config(
                format!("http.{}.extraHeader", self.url),
                format!("Authorization: Basic {basic}"),
            )
            .redact(token.expose().to_owned())
            .redact(basic)
            .run()
            .await?;
        Ok(Pushed { branch: request.branch.clone(), commit })
    }

    fn git<'a>(&'a self, dir: &'a Path, what: &'a str) -> Git<'a> {
        Git {
            program: &self.git,
            dir,
            what,
            args: Vec::new(),
            env: Vec::new(),
            config: Vec::new(),
            stdin: None,
            redact: Vec::new(),
        }
    }
}

/// One git process.
struct Git<'a> {
    program: &'a Path,
    dir: &'a Path,
    what: &'a str,
    args: Vec<OsString>,
    env: Vec<(&'static str, String)>,
    /// Settings passed through `GIT_CONFIG_*` (never on the command line).
    config: Vec<(String, String)>,
    stdin: Option<String>,
    /// Text that must never appear in an error (the token and its encodings).
    redact: Vec<String>,
}

impl Git<'_> {
    fn args<const N: usize>(mut self, args: [&str; N]) -> Self {
        self.args.extend(args.iter().map(OsString::from));
        self
    }

    fn arg(mut self, arg: impl Into<OsString>) -> Self {
        self.args.push(arg.into());
        self
    }

    fn identity(mut self, author: &GitIdentity, committer: &GitIdentity) -> Self {
        self.env.extend([
            ("GIT_AUTHOR_NAME", author.name.clone()),
            ("GIT_AUTHOR_EMAIL", author.email.clone()),
            ("GIT_COMMITTER_NAME", committer.name.clone()),
            ("GIT_COMMITTER_EMAIL", committer.email.clone()),
        ]);
        self
    }

    fn config(mut self, key: String, value: String) -> Self {
        self.config.push((key, value));
        self
    }

    fn stdin(mut self, text: String) -> Self {
        self.stdin = Some(text);
        self
    }

    fn redact(mut self, secret: String) -> Self {
        self.redact.push(secret);
        self
    }

    async fn run(self) -> Result<String, ForgeError> {
        let mut cmd = Command::new(self.program);
        cmd.arg("-C")
            .arg(self.dir)
            .args(["-c", "core.hooksPath=/dev/null"])
            .args(&self.args)
            .env("LC_ALL", "C")
            .env("GIT_TERMINAL_PROMPT", "0")
            .env_remove("GIT_ASKPASS")
            .env_remove("SSH_ASKPASS")
            .env_remove("GIT_CONFIG_PARAMETERS")
            .stdin(if self.stdin.is_some() { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        for (key, value) in &self.env {
            cmd.env(key, value);
        }
        // Credential helpers are emptied so a refused token is neither replaced by a stored one nor stored.
        let mut config = vec![("credential.helper".to_owned(), String::new())];
        config.extend(self.config.iter().cloned());
        cmd.env("GIT_CONFIG_COUNT", config.len().to_string());
        for (i, (key, value)) in config.iter().enumerate() {
            cmd.env(format!("GIT_CONFIG_KEY_{i}"), key).env(format!("GIT_CONFIG_VALUE_{i}"), value);
        }
        let command =
            self.args.first().map(|a| a.to_string_lossy().into_owned()).unwrap_or_default();
        let unavailable =
            |detail: String| ForgeError::Unavailable { what: self.what.to_owned(), detail };
        let mut child = cmd.spawn().map_err(|e| {
            unavailable(format!("could not start {}: {e}; install git", self.program.display()))
        })?;
        let pipe = child.stdin.take();
        let feed = async {
            if let (Some(mut pipe), Some(text)) = (pipe, &self.stdin) {
                let _ = pipe.write_all(text.as_bytes()).await;
                let _ = pipe.shutdown().await;
            }
        };
        let (_, output) = tokio::join!(feed, child.wait_with_output());
        let output = output.map_err(|e| unavailable(format!("waiting for git failed: {e}")))?;
        if output.status.success() {
            return Ok(String::from_utf8_lossy(&output.stdout).into_owned());
        }
        // `push --porcelain` reports a rejected ref on stdout and the summary on stderr.
        let mut stderr = format!(
            "{}\n{}",
            String::from_utf8_lossy(&output.stderr).trim(),
            String::from_utf8_lossy(&output.stdout).trim()
        )
        .trim()
        .to_owned();
        for secret in &self.redact {
            stderr = stderr.replace(secret.as_str(), "***");
        }
        let detail = format!("`git {command}` failed: {stderr}");
        let what = self.what.to_owned();
        Err(if command == "push" && is_auth_failure(&stderr) {
            ForgeError::Auth { what, detail }
        } else if command == "push" && is_refusal(&stderr) {
            ForgeError::Conflict { what, detail }
        } else if command == "diff" && output.status.code() == Some(1) {
            // `diff --quiet` exits 1 when there are differences: the caller reads that as "non-empty".
            ForgeError::Conflict { what, detail: "differences".to_owned() }
        } else {
            ForgeError::Unavailable { what, detail }
        })
    }
}

fn is_auth_failure(stderr: &str) -> bool {
    [
        "Authentication failed",
        "could not read Username",
        "could not read Password",
        "error: 401",
        "error: 403",
        " 401",
        " 403",
    ]
    .iter()
    .any(|s| stderr.contains(s))
}

fn is_refusal(stderr: &str) -> bool {
    ["[rejected]", "[remote rejected]", "protected branch", "pre-receive hook declined"]
        .iter()
        .any(|s| stderr.contains(s))
}

#[cfg(test)]
mod tests {
    use super::GitIdentity;

    #[test]
    fn identities() {
        let id = GitIdentity::parse("Ada Lovelace <ada@example.com>").unwrap();
        assert_eq!((id.name.as_str(), id.email.as_str()), ("Ada Lovelace", "ada@example.com"));
        for bad in ["ada@example.com", "<a@b>", "Ada <nope>", "Ada <a@b"] {
            assert!(GitIdentity::parse(bad).is_err(), "{bad}");
        }
    }
}
