//! Build caches in the container sandbox: kept across runs with the same key, invisible to other
//! keys, never a way to write outside the cache, and deleted on request or when unused too long.

use crate::container_support::{config, new_sandbox, snapshot, TestSandbox};
use crate::support::spec;
use cadre_domain::ports::sandbox::{RunSpec, Sandbox, SandboxError};
use cadre_sandbox::UserNamespace;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

fn cached(workdir: &Path, command: &str, key: &str) -> RunSpec {
    let mut s = spec(workdir, command);
    s.cache = Some(key.to_owned());
    s
}

fn caches_dir(sb: &TestSandbox) -> PathBuf {
    sb.dir.path().join("runtime/caches")
}

/// The cache directory names under the sandbox's runtime root.
fn cache_names(sb: &TestSandbox) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(caches_dir(sb))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

/// A worktree with a source file and a warm-looking cargo build directory.
fn worktree_with_target() -> tempfile::TempDir {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    std::fs::create_dir_all(w.join("src")).unwrap();
    std::fs::write(w.join("src/lib.rs"), "pub fn f() {}\n").unwrap();
    std::fs::create_dir_all(w.join("target/debug")).unwrap();
    std::fs::write(
        w.join("target/CACHEDIR.TAG"),
        "Signature: 8a477f597d28d172789f06886806bc55\n\
         # This file is a cache directory tag created by cargo.\n",
    )
    .unwrap();
    std::fs::write(w.join("target/debug/old-build"), "x").unwrap();
    work
}

#[tokio::test]
async fn runs_with_the_same_key_share_a_cache_and_other_keys_do_not() {
    let sb = TestSandbox::new();
    let work = worktree_with_target();
    let w = work.path();
    let before = snapshot(w);
    // Cargo's fallback build dir is `target/` in the worktree: with a cache it must not be used,
    // nor copied in.
    let first = sb
        .run(&cached(
            w,
            "test -e target && echo has-target || echo no-target; \
             mkdir -p \"${CARGO_TARGET_DIR:-target}\" && echo built > \"${CARGO_TARGET_DIR:-target}/out\"; \
             echo one > /cache/f; stat -c '%u %a' /cache; echo $CARGO_TARGET_DIR $GOCACHE $PIP_CACHE_DIR",
            "task-a",
        ))
        .await;
    assert_eq!(
        first.output, "no-target\n60000 700\n/cache/cargo-target /cache/go-build /cache/pip\n",
        "{first:?}"
    );
    let second = sb.run(&cached(w, "cat /cache/f /cache/cargo-target/out", "task-a")).await;
    assert_eq!((second.exit_code, second.output.as_str()), (Some(0), "one\nbuilt\n"));
    let other = sb.run(&cached(w, "ls -A /cache | wc -l; echo two > /cache/f", "task-b")).await;
    assert_eq!((other.exit_code, other.output.as_str()), (Some(0), "0\n"), "{other:?}");
    let again = sb.run(&cached(w, "cat /cache/f", "task-a")).await;
    assert_eq!(again.output, "one\n", "another key's run changed this cache");
    // No key: no cache, nothing writable at /cache, no variables, and the worktree copied whole.
    let none = sb
        .run(&spec(
            w,
            "ls -A /cache | wc -l; { echo x > /cache/g; } 2>/dev/null || echo read-only; \
             echo ${CARGO_TARGET_DIR:-unset}; test -e target/debug/old-build && echo has-target",
        ))
        .await;
    assert_eq!(none.output, "0\nread-only\nunset\nhas-target\n", "{none:?}");
    assert_eq!(snapshot(w), before, "a run changed the original worktree");
    assert_eq!(cache_names(&sb), ["task-a", "task-b"]);
    sb.assert_clean_and_usable(w).await;
}

#[tokio::test]
async fn a_cache_is_no_way_to_write_outside_it() {
    let sb = TestSandbox::new();
    let work = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let o = outside.path().display().to_string();
    std::fs::write(outside.path().join("victim"), "safe").unwrap();
    let all = caches_dir(&sb).display().to_string();
    // Run 1 plants links to host places: a host directory (not mounted inside), the root, the
    // cache's parent, the root of every cache, a host file; and tries a hard link to a host file.
    let plant = format!(
        "ln -s {o} /cache/out && ln -s / /cache/root && ln -s .. /cache/up && ln -s {all} /cache/all \
         && ln -s {o}/victim /cache/victim && echo planted; \
         ln /etc/hostname /cache/hard 2>/dev/null && echo linked || echo no-link"
    );
    let out = sb.run(&cached(work.path(), &plant, "k")).await;
    assert_eq!(out.output, "planted\nno-link\n", "{out:?}");
    // Run 2, same key, writes through each of them.
    let attack = "for p in out root up all; do \
           if { echo pwned > /cache/$p/pwned; } 2>/dev/null; then echo wrote:$p; else echo denied:$p; fi; \
         done; \
         if { echo pwned > /cache/victim; } 2>/dev/null; then echo wrote:victim; else echo denied:victim; fi";
    let out = sb.run(&cached(work.path(), attack, "k")).await;
    assert_eq!(
        out.output, "denied:out\ndenied:root\ndenied:up\ndenied:all\ndenied:victim\n",
        "{out:?}"
    );
    assert_eq!(std::fs::read_to_string(outside.path().join("victim")).unwrap(), "safe");
    assert!(!outside.path().join("pwned").exists());
    assert!(!caches_dir(&sb).join("pwned").exists());
    assert!(!Path::new("/pwned").exists());
    // The host deletes the cache without following the links.
    assert!(sb.sandbox.remove_cache("k").await.unwrap());
    assert_eq!(std::fs::read_to_string(outside.path().join("victim")).unwrap(), "safe");
    assert_eq!(cache_names(&sb), Vec::<String>::new());
    // A key cannot name a path: it stays one directory under the cache root.
    let out = sb.run(&cached(work.path(), "echo x > /cache/f && echo ok", "../../escape")).await;
    assert_eq!(out.output, "ok\n");
    assert_eq!(cache_names(&sb), ["_2e_2e_2f_2e_2e_2fescape"]);
    assert!(!sb.dir.path().join("escape").exists());
    // Keys no cache can have are refused before anything runs.
    for key in ["", &"k".repeat(81)] {
        let err = sb.sandbox.run(&cached(work.path(), "true", key)).await.unwrap_err();
        assert!(matches!(&err, SandboxError::Spawn { reason, .. } if reason.contains("cache key")));
    }
    sb.assert_clean_and_usable(work.path()).await;
}

#[tokio::test]
async fn caches_are_removed_on_request_or_when_unused_too_long() {
    let sb = TestSandbox::new();
    let work = tempfile::tempdir().unwrap();
    for key in ["a", "b", "c"] {
        assert_eq!(sb.run(&cached(work.path(), "echo x > /cache/f", key)).await.exit_code, Some(0));
    }
    assert!(sb.sandbox.remove_cache("a").await.unwrap());
    assert!(!sb.sandbox.remove_cache("a").await.unwrap(), "removed twice");
    assert!(matches!(sb.sandbox.remove_cache("").await, Err(SandboxError::Spawn { .. })));
    assert_eq!(cache_names(&sb), ["b", "c"]);

    // A cache in use cannot be removed; once its run is gone (cancelled here), it can.
    let sandbox = sb.sandbox.clone();
    let s = cached(work.path(), "touch /cache/running; sleep 20", "c");
    let run = tokio::spawn(async move { sandbox.run(&s).await });
    let running = caches_dir(&sb).join("c/data/running");
    for _ in 0..500 {
        if running.exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(running.exists(), "the run never started");
    match sb.sandbox.remove_cache("c").await {
        Err(SandboxError::Runtime(reason)) => assert!(reason.contains("in use"), "{reason}"),
        other => panic!("expected an in-use error, got {other:?}"),
    }
    run.abort();
    let _ = run.await;
    sb.wait_until_clean().await;
    // The hold ends with the run's background cleanup.
    let mut removed = Err(SandboxError::Runtime("not tried".into()));
    for _ in 0..200 {
        removed = sb.sandbox.remove_cache("c").await;
        if removed.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(removed.unwrap(), "the cancelled run's cache was not released");

    // Unused for longer than the maximum age: a sandbox starting on the same root deletes it.
    assert_eq!(sb.run(&cached(work.path(), "true", "d")).await.exit_code, Some(0));
    let long_ago = std::time::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
    std::fs::File::open(caches_dir(&sb).join("b")).unwrap().set_modified(long_ago).unwrap();
    drop(new_sandbox(config(sb.dir.path())));
    assert_eq!(cache_names(&sb), ["d"]);
    sb.assert_clean_and_usable(work.path()).await;
}

#[tokio::test]
async fn with_a_user_namespace_the_cache_belongs_to_the_mapped_user() {
    let sb = TestSandbox::with(|cfg| {
        cfg.user_namespace = Some(UserNamespace { host_id_base: 200_000 });
    });
    let work = tempfile::tempdir().unwrap();
    let out = sb.run(&cached(work.path(), "echo x > /cache/f && stat -c %u /cache", "k")).await;
    assert_eq!((out.exit_code, out.output.as_str()), (Some(0), "60000\n"), "{out:?}");
    let data = std::fs::metadata(caches_dir(&sb).join("k/data")).unwrap();
    assert_eq!((data.uid(), data.gid()), (260_000, 260_000));
    sb.assert_clean_and_usable(work.path()).await;
}
