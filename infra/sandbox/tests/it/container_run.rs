//! `YoukiSandbox` basics: what a run sees, what it reports, and the errors `run` MUST return.

use crate::container_support::{snapshot, TestSandbox, TEST_LIMITS};
use crate::support::{host_listener, spec, was_reached};
use cadre_domain::ports::sandbox::{NetworkAccess, Sandbox, SandboxError};
use cadre_domain::report::Isolation;
use cadre_sandbox::{Network, UserNamespace};
use std::time::Duration;

#[tokio::test]
async fn exit_codes_isolation_and_identity() {
    let sb = TestSandbox::new();
    let work = tempfile::tempdir().unwrap();
    assert_eq!(sb.sandbox.isolation(), Isolation::Container);
    let out = sb.run(&spec(work.path(), "id -u; id -g; pwd; echo failing >&2; exit 3")).await;
    assert_eq!(out.exit_code, Some(3));
    assert_eq!(out.output, "60000\n60000\n/workspace\nfailing\n");
    assert_eq!((out.timed_out, out.killed_by, out.isolation), (false, None, Isolation::Container));
    sb.assert_clean_and_usable(work.path()).await;
}

#[tokio::test]
async fn locked_down_process() {
    let sb = TestSandbox::new();
    let work = tempfile::tempdir().unwrap();
    // Capabilities, no_new_privs and seccomp as the kernel reports them for the command itself.
    let out = sb
        .run(&spec(work.path(), "grep -E '^(CapInh|CapPrm|CapEff|CapBnd|CapAmb|NoNewPrivs|Seccomp):' /proc/self/status; hostname"))
        .await;
    assert_eq!(
        out.output,
        "CapInh:\t0000000000000000\nCapPrm:\t0000000000000000\nCapEff:\t0000000000000000\n\
         CapBnd:\t0000000000000000\nCapAmb:\t0000000000000000\nNoNewPrivs:\t1\nSeccomp:\t2\nsandbox\n"
    );
}

#[tokio::test]
async fn environment_stdin_and_workspace() {
    let sb = TestSandbox::new();
    let work = tempfile::tempdir().unwrap();
    std::fs::write(work.path().join("input.txt"), "from the worktree\n").unwrap();
    let mut s = spec(
        work.path(),
        r#"printf '%s\n' "$CADRE_TEST_VAR" "$HOME"; cat input.txt; cat; ls -ld /workspace | cut -d' ' -f3"#,
    );
    s.env.push(("CADRE_TEST_VAR".into(), "hello world".into()));
    s.env.push(("HOME".into(), "/workspace".into()));
    let out = sb.run(&s).await;
    assert_eq!(out.output, "hello world\n/workspace\nfrom the worktree\n60000\n");
    assert_eq!(out.exit_code, Some(0));
}

#[tokio::test]
async fn the_original_worktree_is_never_modified() {
    let sb = TestSandbox::new();
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    std::fs::create_dir_all(w.join("src/deep")).unwrap();
    std::fs::write(w.join("src/lib.rs"), "original\n").unwrap();
    std::fs::write(w.join("src/deep/data.txt"), "data\n").unwrap();
    std::os::unix::fs::symlink("src/lib.rs", w.join("link")).unwrap();
    let before = snapshot(w);
    let out = sb
        .run(&spec(
            w,
            "echo changed > src/lib.rs && rm -r src/deep && mkdir new && echo x > new/f \
             && rm link && ln -s /etc/passwd link && chmod 000 src && echo wrote",
        ))
        .await;
    assert_eq!((out.exit_code, out.output.as_str()), (Some(0), "wrote\n"), "{out:?}");
    assert_eq!(snapshot(w), before, "the run changed the original worktree");
}

#[tokio::test]
async fn loopback_works_inside() {
    let work = tempfile::tempdir().unwrap();
    // A server and a client on 127.0.0.1 inside the same run: `lo` is up.
    let script = "import socket\n\
        s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen()\n\
        c = socket.create_connection(s.getsockname(), timeout=5)\n\
        a, _ = s.accept(); a.sendall(b'pong'); print(c.recv(4).decode())\n\
        print(sorted(n for _, n in socket.if_nameindex()))\n";
    std::fs::write(work.path().join("net.py"), script).unwrap();
    let isolated = TestSandbox::new();
    let out = isolated.run(&spec(work.path(), "python3 net.py")).await;
    assert_eq!(out.output, "pong\n['lo']\n", "{out:?}");
}

/// Issue 5: "network: loopback only, unless a run is explicitly granted more". The same sandbox,
/// the same host listener: refused by default, reached when the run is granted the network.
#[tokio::test]
async fn a_run_granted_the_network_reaches_the_hosts_loopback() {
    let sb = TestSandbox::new();
    let work = tempfile::tempdir().unwrap();
    let listener = host_listener(work.path());
    let out = sb.run(&spec(work.path(), "python3 connect.py")).await;
    assert_eq!(out.output, "refused 111\n", "{out:?}");
    assert!(!was_reached(&listener));
    let mut granted = spec(work.path(), "python3 connect.py; cat /proc/net/dev | grep -c :");
    granted.network = NetworkAccess::Granted;
    let out = sb.run(&granted).await;
    let lines: Vec<&str> = out.output.lines().collect();
    assert_eq!(lines[0], "connected", "{out:?}");
    assert!(was_reached(&listener), "the host listener saw no connection");
    // The host's interfaces, not just `lo`.
    assert!(lines[1].parse::<u32>().unwrap() > 1, "{out:?}");
    // Every other wall stays up: still the sandbox's user, still no capabilities.
    let mut who = spec(work.path(), "id -u; grep CapEff /proc/self/status");
    who.network = NetworkAccess::Granted;
    assert_eq!(sb.run(&who).await.output, "60000\nCapEff:\t0000000000000000\n");
    // The grant was for those runs only.
    let out = sb.run(&spec(work.path(), "python3 connect.py")).await;
    assert_eq!(out.output, "refused 111\n", "{out:?}");
    sb.assert_clean_and_usable(work.path()).await;
}

#[tokio::test]
async fn a_sandbox_configured_with_the_host_network_gives_it_to_every_run() {
    let work = tempfile::tempdir().unwrap();
    let listener = host_listener(work.path());
    let sb = TestSandbox::with(|cfg| cfg.network = Network::Host);
    let out = sb.run(&spec(work.path(), "python3 connect.py")).await;
    assert_eq!(out.output, "connected\n", "{out:?}");
    assert!(was_reached(&listener));
}

#[tokio::test]
async fn limits_are_applied_to_the_runs_cgroup() {
    let sb = TestSandbox::new();
    let work = tempfile::tempdir().unwrap();
    let sandbox = sb.sandbox.clone();
    let s = spec(work.path(), "sleep 20");
    let run = tokio::spawn(async move { sandbox.run(&s).await });
    // Wait (from the host) until the command runs inside its cgroups, then read the limits.
    let mut cgroups = Vec::new();
    for _ in 0..500 {
        cgroups = sb.cgroups_left();
        let sleeping = cgroups.iter().filter(|c| c.starts_with("/sys/fs/cgroup/pids")).any(|c| {
            std::fs::read_to_string(c.join("cgroup.procs")).unwrap_or_default().lines().any(|pid| {
                std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c.starts_with(b"sleep"))
            })
        });
        if sleeping {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let read = |controller: &str, file: &str| {
        let dir = cgroups
            .iter()
            .find(|p| p.starts_with(format!("/sys/fs/cgroup/{controller}")))
            .unwrap_or_else(|| panic!("no {controller} cgroup among {cgroups:?}"));
        std::fs::read_to_string(dir.join(file)).unwrap().trim().to_owned()
    };
    assert_eq!(read("memory", "memory.limit_in_bytes"), TEST_LIMITS.memory_bytes.to_string());
    assert_eq!(read("memory", "memory.memsw.limit_in_bytes"), TEST_LIMITS.memory_bytes.to_string());
    assert_eq!(read("pids", "pids.max"), TEST_LIMITS.pids.to_string());
    assert_eq!(read("cpu", "cpu.cfs_quota_us"), "100000");
    assert_eq!(read("cpu", "cpu.cfs_period_us"), "100000");
    // A run and all runs together weigh as many host processes as the cores they may use.
    assert_eq!(read("cpu", "cpu.shares"), "1024");
    let parent = format!("/sys/fs/cgroup/cpu/{}/cpu.shares", sb.cgroup_parent);
    assert_eq!(std::fs::read_to_string(parent).unwrap().trim(), "1024");
    run.abort();
    let _ = run.await;
    // Dropping the run killed it; its cgroups go with it.
    sb.wait_until_clean().await;
    sb.assert_clean_and_usable(work.path()).await;
}

#[tokio::test]
async fn missing_workdir_and_unpassable_env() {
    let sb = TestSandbox::new();
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope");
    let err = sb.sandbox.run(&spec(&missing, "true")).await.unwrap_err();
    assert!(matches!(&err, SandboxError::NoWorkdir(p) if *p == missing), "{err:?}");
    let mut s = spec(dir.path(), "true");
    s.env.push(("BROKEN".into(), "a\0b".into()));
    match sb.sandbox.run(&s).await.unwrap_err() {
        SandboxError::Spawn { command, reason } => {
            assert_eq!(command, "true");
            assert!(reason.contains("BROKEN"), "{reason}");
        }
        other => panic!("expected Spawn, got {other:?}"),
    }
    sb.assert_clean_and_usable(dir.path()).await;
}

#[tokio::test]
async fn output_is_interleaved_and_capped() {
    let sb = TestSandbox::new();
    let work = tempfile::tempdir().unwrap();
    let out = sb.run(&spec(work.path(), "echo one; echo two >&2; printf three")).await;
    assert_eq!((out.output.as_str(), out.truncated), ("one\ntwo\nthree", false));
}

#[tokio::test]
async fn a_user_namespace_maps_the_container_to_unprivileged_host_ids() {
    // Only the system directories: toolchains under a 0700 home are out of reach in a user
    // namespace (see the crate docs).
    let sb = TestSandbox::with(|cfg| {
        cfg.user_namespace = Some(UserNamespace { host_id_base: 200_000 });
    });
    let work = tempfile::tempdir().unwrap();
    std::fs::write(work.path().join("f"), "x").unwrap();
    let out =
        sb.run(&spec(work.path(), "cat /proc/self/uid_map; id -u; echo y >> f && cat f")).await;
    let fields: Vec<&str> = out.output.split_whitespace().collect();
    assert_eq!(fields, ["0", "200000", "65536", "60000", "xy"], "{out:?}");
    sb.assert_clean_and_usable(work.path()).await;
}

#[test]
fn a_missing_runner_is_refused_at_creation() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = crate::container_support::config(dir.path());
    cfg.runner.program = dir.path().join("no-such-runner");
    match cadre_sandbox::YoukiSandbox::new(cfg).unwrap_err() {
        SandboxError::Spawn { reason, .. } => {
            assert!(
                reason.contains("no-such-runner") && reason.contains("does not exist"),
                "{reason}"
            );
        }
        other => panic!("expected Spawn, got {other:?}"),
    }
}

#[test]
fn the_runner_refuses_a_multi_threaded_process() {
    // This test binary runs tests on several threads, which is exactly what the runner must avoid.
    let _other_thread = std::thread::spawn(|| std::thread::sleep(Duration::from_millis(200)));
    let args = [
        "--state",
        "/x",
        "--bundle",
        "/x",
        "--id",
        "x",
        "--cgroup-parent",
        "x",
        "--deadline-ms",
        "1",
    ];
    assert_eq!(cadre_sandbox::runner_main(args.iter().map(Into::into).collect()), 2);
}
