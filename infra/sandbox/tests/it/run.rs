//! Exit codes, environment, working directory, and the errors `run` MUST return.

use crate::support::{host_listener, spec, was_reached};
use cadre_domain::ports::sandbox::{NetworkAccess, Sandbox, SandboxError};
use cadre_domain::report::Isolation;
use cadre_sandbox::HostSandbox;

#[tokio::test]
async fn exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = HostSandbox::new();
    let ok = sandbox.run(&spec(dir.path(), "true")).await.unwrap();
    assert_eq!(ok.exit_code, Some(0));
    assert!(!ok.timed_out);
    assert_eq!(ok.isolation, Isolation::HostUnisolated);
    let failed = sandbox.run(&spec(dir.path(), "echo failing; exit 3")).await.unwrap();
    assert_eq!(failed.exit_code, Some(3));
    assert_eq!(failed.output, "failing\n");
    assert!(!failed.timed_out);
}

#[tokio::test]
async fn killed_by_a_signal_has_no_exit_code() {
    let dir = tempfile::tempdir().unwrap();
    let out = HostSandbox::new().run(&spec(dir.path(), "kill -9 $$")).await.unwrap();
    assert_eq!(out.exit_code, None);
    assert!(!out.timed_out);
}

#[tokio::test]
async fn runs_in_the_workdir_with_extra_env_and_the_parents_env() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = spec(
        dir.path(),
        r#"pwd; printf '%s\n' "$CADRE_TEST_VAR"; test -n "$PATH" && echo has-path"#,
    );
    s.env.push(("CADRE_TEST_VAR".into(), "hello world".into()));
    let out = HostSandbox::new().run(&s).await.unwrap();
    let pwd = dir.path().canonicalize().unwrap();
    assert_eq!(out.output, format!("{}\nhello world\nhas-path\n", pwd.display()));
    assert_eq!(out.exit_code, Some(0));
}

#[tokio::test]
async fn stdin_is_empty() {
    let dir = tempfile::tempdir().unwrap();
    let out = HostSandbox::new().run(&spec(dir.path(), "cat; echo done")).await.unwrap();
    assert_eq!(out.output, "done\n");
}

#[tokio::test]
async fn missing_workdir() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope");
    let err = HostSandbox::new().run(&spec(&missing, "true")).await.unwrap_err();
    assert!(matches!(&err, SandboxError::NoWorkdir(p) if *p == missing), "{err:?}");
    assert!(!err.is_retryable());
    let file = dir.path().join("file");
    std::fs::write(&file, "").unwrap();
    let err = HostSandbox::new().run(&spec(&file, "true")).await.unwrap_err();
    assert!(matches!(err, SandboxError::NoWorkdir(_)), "{err:?}");
}

#[tokio::test]
async fn a_command_that_cannot_start_is_a_spawn_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = spec(dir.path(), "true");
    // The OS cannot take an environment variable containing NUL, so the process cannot start.
    s.env.push(("BROKEN".into(), "a\0b".into()));
    let err = HostSandbox::new().run(&s).await.unwrap_err();
    match &err {
        SandboxError::Spawn { command, reason } => {
            assert_eq!(command, "true");
            assert!(!reason.is_empty());
        }
        other => panic!("expected Spawn, got {other:?}"),
    }
}

#[tokio::test]
async fn reports_no_isolation() {
    assert_eq!(HostSandbox::default().isolation(), Isolation::HostUnisolated);
}

/// The host sandbox cannot restrict the network (see `HostSandbox`'s docs): a run reaches the
/// host's loopback whatever its spec asks. This pins the documented behaviour.
#[tokio::test]
async fn the_host_sandbox_cannot_restrict_the_network() {
    let dir = tempfile::tempdir().unwrap();
    let listener = host_listener(dir.path());
    for access in [NetworkAccess::LoopbackOnly, NetworkAccess::Granted] {
        let mut s = spec(dir.path(), "python3 connect.py");
        s.network = access;
        let out = HostSandbox::new().run(&s).await.unwrap();
        assert_eq!(out.output, "connected\n", "{access:?}: {out:?}");
        assert!(was_reached(&listener), "{access:?}");
    }
}

/// A sandbox that keeps no build caches, for the port's default `remove_cache`.
struct NoCaches;

#[async_trait::async_trait]
impl Sandbox for NoCaches {
    async fn run(
        &self,
        _: &cadre_domain::ports::sandbox::RunSpec,
    ) -> Result<cadre_domain::ports::sandbox::RunOutput, SandboxError> {
        Err(SandboxError::Runtime("not used here".into()))
    }

    fn isolation(&self) -> Isolation {
        Isolation::HostUnisolated
    }
}

#[tokio::test]
async fn a_sandbox_without_caches_has_none_to_remove() {
    let port: &dyn Sandbox = &NoCaches;
    assert!(!port.remove_cache("task-1").await.unwrap());
}
