//! `push_branch`: a real `git push` over HTTP to `git http-backend`, the token passed only as a
//! URL-scoped header through git's environment.

use base64::Engine as _;
use cadre_domain::ids::CommitId;
use cadre_domain::ports::clock::SystemClock;
use cadre_domain::ports::forge::{Forge, ForgeError, PushRequest};
use cadre_forge::{GitHubConfig, GitHubForge, GitIdentity, GitLabConfig, GitLabForge, Secret};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use crate::support::git;
use crate::support::git_http::GitHttpServer;

const TOKEN: &str = "ghs_Sup3rSecretToken0123456789";

struct Fixture {
    dir: tempfile::TempDir,
    base: CommitId,
}

impl Fixture {
    /// A source repository with one commit, and a bare copy of it served as `widgets.git`.
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        std::fs::create_dir_all(&src).unwrap();
        git(&src, &["init", "-q", "-b", "main"]);
        std::fs::write(src.join("a.txt"), "one\n").unwrap();
        git(&src, &["add", "-A"]);
        git(&src, &["commit", "-q", "-m", "first"]);
        let base = CommitId::parse(git(&src, &["rev-parse", "HEAD"]).trim()).unwrap();
        std::fs::create_dir_all(dir.path().join("remotes")).unwrap();
        git(dir.path(), &["clone", "-q", "--bare", "src", "remotes/widgets.git"]);
        Fixture { dir, base }
    }

    /// A fresh work tree at the base with `files` written (uncommitted), as a task's checkout.
    fn worktree(&self, files: &[(&str, &str)]) -> PathBuf {
        let work = self.dir.path().join("work");
        let _ = std::fs::remove_dir_all(&work);
        git(self.dir.path(), &["clone", "-q", "src", "work"]);
        for (path, text) in files {
            std::fs::write(work.join(path), text).unwrap();
        }
        work
    }

    fn remote(&self) -> PathBuf {
        self.dir.path().join("remotes/widgets.git")
    }

    /// A `git` that records its arguments, one invocation per line, then runs the real git.
    fn recording_git(&self) -> (PathBuf, PathBuf) {
        let log = self.dir.path().join("argv.log");
        let script = self.dir.path().join("git-recorder");
        std::fs::write(
            &script,
            format!("#!/bin/sh\nprintf '%s\\n' \"$*\" >> '{}'\nexec git \"$@\"\n", log.display()),
        )
        .unwrap();
        let mut perms = std::fs::metadata(&script).unwrap().permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
        std::fs::set_permissions(&script, perms).unwrap();
        (script, log)
    }
}

fn basic(user: &str, token: &str) -> String {
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{token}")))
}

/// Every log line (all levels) of this test binary, from one global subscriber: a thread-local one
/// can miss events when another test registers the same callsite concurrently.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Logs {
    fn global() -> Logs {
        static LOGS: OnceLock<Logs> = OnceLock::new();
        LOGS.get_or_init(|| {
            let logs = Logs::default();
            let writer = logs.clone();
            let subscriber = tracing_subscriber::fmt()
                .with_max_level(tracing::Level::TRACE)
                .with_ansi(false)
                .with_writer(move || writer.clone())
                .finish();
            tracing::subscriber::set_global_default(subscriber).unwrap();
            logs
        })
        .clone()
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

fn show(remote: &Path, format: &str, rev: &str) -> String {
    git(remote, &["log", "-1", &format!("--format={format}"), rev]).trim().to_owned()
}

#[tokio::test]
async fn a_push_commits_as_configured_and_later_rounds_replace_the_branch_without_exposing_the_token(
) {
    let fx = Fixture::new();
    let server =
        GitHttpServer::start(&fx.dir.path().join("remotes"), &basic("x-access-token", TOKEN)).await;
    let (recorder, argv_log) = fx.recording_git();
    let mut config =
        GitHubConfig::new("octo/widgets", Secret::new(TOKEN, "token").unwrap()).unwrap();
    config.remote.url = format!("{}/widgets.git", server.base);
    config.remote.git = recorder;
    config.remote.author = GitIdentity::parse("Ada Lovelace <ada@example.com>").unwrap();
    config.remote.committer = GitIdentity::parse("Cadre Bot <bot@example.com>").unwrap();
    let forge = GitHubForge::new(config, Arc::new(SystemClock)).unwrap();
    let logs = Logs::global();

    let branch = "cadre/0193a1b2-make-it-two";
    let first = PushRequest {
        worktree: fx.worktree(&[("a.txt", "two\n"), ("b.txt", "new\n")]),
        base: fx.base.clone(),
        branch: branch.to_owned(),
        message: "Make it two\n\nGoal: make it two\n\nTests: `pytest` passed\n".to_owned(),
    };
    let pushed = forge.push_branch(&first).await.unwrap();
    assert_eq!(pushed.branch, branch);
    let remote = fx.remote();
    let rev = format!("refs/heads/{branch}");
    assert_eq!(show(&remote, "%H", &rev), pushed.commit.as_str());
    assert_eq!(show(&remote, "%P", &rev), fx.base.as_str(), "one commit on top of the base");
    assert_eq!(
        show(&remote, "%an <%ae>|%cn <%ce>", &rev),
        "Ada Lovelace <ada@example.com>|Cadre Bot <bot@example.com>"
    );
    assert_eq!(show(&remote, "%B", &rev), first.message.trim());
    assert_eq!(git(&remote, &["show", &format!("{rev}:b.txt")]), "new\n");

    // Round 2 rebuilds the change from the base; the branch is replaced, not stacked.
    let second = PushRequest {
        worktree: fx.worktree(&[("a.txt", "deux\n")]),
        message: "Round 2\n".to_owned(),
        ..first
    };
    let again = forge.push_branch(&second).await.unwrap();
    assert_ne!(again.commit, pushed.commit);
    assert_eq!(show(&remote, "%H|%P", &rev), format!("{}|{}", again.commit, fx.base));
    assert_eq!(git(&remote, &["show", &format!("{rev}:a.txt")]), "deux\n");

    // The token travelled as the header git sent to the server ...
    let seen = server.seen_auth();
    assert!(
        !seen.is_empty() && seen.iter().all(|a| *a == basic("x-access-token", TOKEN)),
        "{seen:?}"
    );
    // ... and nowhere else: not in any git command line, not in any log line.
    let encoded = basic("x-access-token", TOKEN);
    let argv = std::fs::read_to_string(argv_log).unwrap();
    assert!(argv.lines().any(|l| l.contains("push")), "{argv}");
    assert!(!argv.contains(TOKEN) && !argv.contains(&encoded[6..]), "token in argv:\n{argv}");
    let logged = logs.text();
    assert!(
        logged.lines().any(|l| l.contains("pushing") && l.contains(branch)),
        "the push is logged:\n{logged}"
    );
    assert!(!logged.contains(TOKEN) && !logged.contains(&encoded[6..]), "token in logs:\n{logged}");
}

#[tokio::test]
async fn a_refused_token_is_an_auth_error_that_does_not_repeat_the_token() {
    let logs = Logs::global();
    let fx = Fixture::new();
    let server =
        GitHttpServer::start(&fx.dir.path().join("remotes"), &basic("oauth2", "the-right-one"))
            .await;
    let mut config =
        GitLabConfig::new("group/widgets", Secret::new(TOKEN, "token").unwrap()).unwrap();
    config.remote.url = format!("{}/widgets.git", server.base);
    let forge = GitLabForge::new(config, Arc::new(SystemClock)).unwrap();
    let request = PushRequest {
        worktree: fx.worktree(&[("a.txt", "two\n")]),
        base: fx.base.clone(),
        branch: "cadre/0193a1b2-x".to_owned(),
        message: "x\n".to_owned(),
    };
    let err = forge.push_branch(&request).await.unwrap_err();
    assert!(matches!(err, ForgeError::Auth { .. }), "{err:?}");
    assert!(!format!("{err} {err:?}").contains(TOKEN), "{err}");
    assert_eq!(
        server.seen_auth().first().map(String::as_str),
        Some(basic("oauth2", TOKEN).as_str())
    );
    let branches = git(&fx.remote(), &["branch", "--list", "cadre/*"]);
    assert_eq!(branches, "", "nothing was pushed");
    assert!(!logs.text().contains(TOKEN), "token in logs");
}

#[tokio::test]
async fn an_empty_change_or_a_moved_worktree_is_refused_before_pushing() {
    let fx = Fixture::new();
    let mut config =
        GitHubConfig::new("octo/widgets", Secret::new(TOKEN, "token").unwrap()).unwrap();
    config.remote.url = "http://127.0.0.1:9/unreachable.git".to_owned();
    let forge = GitHubForge::new(config, Arc::new(SystemClock)).unwrap();
    let request = PushRequest {
        worktree: fx.worktree(&[]),
        base: fx.base.clone(),
        branch: "cadre/0193a1b2-x".to_owned(),
        message: "x\n".to_owned(),
    };
    let err = forge.push_branch(&request).await.unwrap_err();
    assert!(
        matches!(&err, ForgeError::Conflict { detail, .. } if detail.contains("empty")),
        "{err:?}"
    );
    let other = PushRequest { base: CommitId::parse(&"1".repeat(40)).unwrap(), ..request };
    let err = forge.push_branch(&other).await.unwrap_err();
    assert!(
        matches!(&err, ForgeError::Conflict { detail, .. } if detail.contains("not at the task's base")),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_push_the_remote_declines_is_a_conflict_and_an_unreachable_remote_is_unavailable() {
    let fx = Fixture::new();
    let hook = fx.remote().join("hooks/pre-receive");
    std::fs::create_dir_all(hook.parent().unwrap()).unwrap();
    std::fs::write(&hook, "#!/bin/sh\necho 'cadre/* is protected' >&2\nexit 1\n").unwrap();
    let mut perms = std::fs::metadata(&hook).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    std::fs::set_permissions(&hook, perms).unwrap();
    let server =
        GitHttpServer::start(&fx.dir.path().join("remotes"), &basic("x-access-token", TOKEN)).await;
    let mut config =
        GitHubConfig::new("octo/widgets", Secret::new(TOKEN, "token").unwrap()).unwrap();
    config.remote.url = format!("{}/widgets.git", server.base);
    let forge = GitHubForge::new(config.clone(), Arc::new(SystemClock)).unwrap();
    let request = PushRequest {
        worktree: fx.worktree(&[("a.txt", "two\n")]),
        base: fx.base.clone(),
        branch: "cadre/0193a1b2-x".to_owned(),
        message: "x\n".to_owned(),
    };
    let err = forge.push_branch(&request).await.unwrap_err();
    assert!(
        matches!(&err, ForgeError::Conflict { detail, .. } if detail.contains("protected")),
        "{err:?}"
    );
    assert!(!err.is_retryable());

    config.remote.url = "http://127.0.0.1:9/widgets.git".to_owned();
    let forge = GitHubForge::new(config, Arc::new(SystemClock)).unwrap();
    let request = PushRequest { worktree: fx.worktree(&[("a.txt", "three\n")]), ..request };
    let err = forge.push_branch(&request).await.unwrap_err();
    assert!(matches!(err, ForgeError::Unavailable { .. }) && err.is_retryable(), "{err:?}");
}
