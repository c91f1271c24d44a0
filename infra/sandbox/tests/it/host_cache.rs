//! Build caches in the host sandbox: the same variables as in a container, pointing at a
//! per-key directory under the sandbox's state dir (not isolated, by design), and removed without
//! following what a run planted in them.

use crate::container_support::{marker, snapshot};
use crate::support::spec;
use cadre_domain::ports::sandbox::{RunSpec, Sandbox, SandboxError};
use cadre_sandbox::HostSandbox;
use std::path::Path;

fn cached(workdir: &Path, command: &str, key: &str) -> RunSpec {
    let mut s = spec(workdir, command);
    s.cache = Some(key.to_owned());
    s
}

#[tokio::test]
async fn runs_with_the_same_key_share_a_directory_under_the_state_dir() {
    let state = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    std::fs::write(w.join("lib.rs"), "pub fn f() {}\n").unwrap();
    let before = snapshot(w);
    let sandbox = HostSandbox::new().with_state_dir(state.path().join("state"));
    // Cargo's fallback build dir is `target/` in the worktree; with a cache it is not used.
    let build = "mkdir -p \"${CARGO_TARGET_DIR:-target}\" && echo built > \"${CARGO_TARGET_DIR:-target}/out\"; \
                 printf '%s\\n' \"$CARGO_TARGET_DIR\" \"$XDG_CACHE_HOME\"";
    let first = sandbox.run(&cached(w, build, "task-a")).await.unwrap();
    let data = state.path().join("state/caches/task-a/data");
    assert_eq!(
        first.output,
        format!("{}\n{}\n", data.join("cargo-target").display(), data.join("xdg").display())
    );
    let show = "cat \"$CARGO_TARGET_DIR/out\" 2>/dev/null || echo none";
    assert_eq!(sandbox.run(&cached(w, show, "task-a")).await.unwrap().output, "built\n");
    assert_eq!(sandbox.run(&cached(w, show, "task-b")).await.unwrap().output, "none\n");
    // Without a key the variables are whatever the host has, never a cache's.
    let plain = sandbox.run(&spec(w, "echo \"${CARGO_TARGET_DIR:-unset}\"")).await.unwrap();
    assert!(!plain.output.contains(&state.path().display().to_string()), "{plain:?}");
    assert_eq!(snapshot(w), before, "a run wrote the worktree");
    assert!(sandbox.remove_cache("task-a").await.unwrap());
    assert!(!data.exists());
    assert!(!sandbox.remove_cache("task-a").await.unwrap());
}

#[tokio::test]
async fn removing_a_cache_does_not_follow_links_out_of_it() {
    let state = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("victim"), "safe").unwrap();
    let sandbox = HostSandbox::new().with_state_dir(state.path());
    let plant = format!(
        "ln -s {o} \"$CARGO_TARGET_DIR\" && mkdir -p \"$GOCACHE\" && ln -s {o}/victim \"$GOCACHE/v\"",
        o = outside.path().display()
    );
    let out = sandbox.run(&cached(work.path(), &plant, "k")).await.unwrap();
    assert_eq!(out.exit_code, Some(0), "{out:?}");
    assert!(sandbox.remove_cache("k").await.unwrap());
    assert_eq!(std::fs::read_to_string(outside.path().join("victim")).unwrap(), "safe");
}

#[tokio::test]
async fn a_state_dir_this_user_does_not_own_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    // A link planted where the state dir should be (as another user could in a shared /tmp).
    let elsewhere = tempfile::tempdir().unwrap();
    let planted = dir.path().join("planted");
    std::os::unix::fs::symlink(elsewhere.path(), &planted).unwrap();
    let sandbox = HostSandbox::new().with_state_dir(&planted);
    match sandbox.run(&cached(work.path(), "true", "k")).await.unwrap_err() {
        SandboxError::Runtime(reason) => {
            assert!(reason.contains("is not a directory owned by uid"), "{reason}");
        }
        other => panic!("expected Runtime, got {other:?}"),
    }
    assert_eq!(std::fs::read_dir(elsewhere.path()).unwrap().count(), 0);
    // Runs without a cache do not need the state dir.
    let out = sandbox.run(&spec(work.path(), "echo ok")).await.unwrap();
    assert_eq!(out.output, "ok\n");
}

#[tokio::test]
async fn the_default_state_dir_works() {
    let work = tempfile::tempdir().unwrap();
    let sandbox = HostSandbox::new();
    let key = marker("hostcache");
    let out = sandbox.run(&cached(work.path(), "echo \"$CARGO_TARGET_DIR\"", &key)).await.unwrap();
    let uid = nix::unistd::geteuid();
    let expected = format!("cadre-host-sandbox-{uid}/caches/{key}/data/cargo-target\n");
    assert!(out.output.ends_with(&expected), "{out:?}");
    assert!(sandbox.remove_cache(&key).await.unwrap());
}

#[tokio::test]
async fn the_port_refuses_bad_keys_and_a_cache_in_use() {
    let state = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let sandbox = std::sync::Arc::new(HostSandbox::new().with_state_dir(state.path()));
    let port: &dyn Sandbox = sandbox.as_ref();
    assert!(matches!(port.remove_cache("").await, Err(SandboxError::Spawn { .. })));
    let long = "k".repeat(81);
    assert!(matches!(port.remove_cache(&long).await, Err(SandboxError::Spawn { .. })));
    assert!(!port.remove_cache("never-used").await.unwrap());
    // A run holds its cache: removing it fails until the run is gone (cancelled here).
    let running = {
        let (sandbox, w) = (std::sync::Arc::clone(&sandbox), work.path().to_path_buf());
        tokio::spawn(async move { sandbox.run(&cached(&w, "sleep 30", "busy")).await })
    };
    let data = state.path().join("caches/busy/data");
    for _ in 0..500 {
        if data.is_dir() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(data.is_dir(), "the run never opened its cache");
    match port.remove_cache("busy").await {
        Err(SandboxError::Runtime(reason)) => assert!(reason.contains("in use"), "{reason}"),
        other => panic!("expected an in-use error, got {other:?}"),
    }
    running.abort();
    let _ = running.await;
    assert!(port.remove_cache("busy").await.unwrap());
    assert!(!data.exists());
}
