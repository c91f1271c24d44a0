//! The escape suite of issue 5: each attack runs inside the sandbox, must end contained with a
//! clear report, must leave the host untouched, and must leave the sandbox usable for the next run.

use crate::container_support::{host_processes_with, marker, timed, TestSandbox};
use crate::support::{host_listener, spec, was_reached};
use std::path::Path;
use std::time::{Duration, Instant};

#[tokio::test]
async fn writes_outside_the_workspace_fail_and_reach_nothing() {
    let sb = TestSandbox::new();
    let work = tempfile::tempdir().unwrap();
    let name = marker("write");
    // Every writable-looking place outside /workspace: the read-only binds, the root, and /tmp
    // (writable, but a private tmpfs).
    let cmd = format!(
        "for d in / /usr /etc /bin /root /tmp; do \
           if {{ echo pwned > $d/{name}; }} 2>/dev/null; then echo wrote:$d; else echo denied:$d; fi; \
         done"
    );
    let out = sb.run(&spec(work.path(), &cmd)).await;
    assert_eq!(
        out.output, "denied:/\ndenied:/usr\ndenied:/etc\ndenied:/bin\ndenied:/root\nwrote:/tmp\n",
        "{out:?}"
    );
    for dir in ["/", "/usr", "/etc", "/usr/bin", "/root", "/tmp"] {
        assert!(!Path::new(dir).join(&name).exists(), "{dir}/{name} appeared on the host");
    }
    sb.assert_clean_and_usable(work.path()).await;
}

#[tokio::test]
async fn host_secrets_outside_the_mounts_are_invisible() {
    let sb = TestSandbox::new();
    let work = tempfile::tempdir().unwrap();
    let secret = marker("secret");
    let name = marker("name");
    let files = [
        Path::new("/root").join(format!("{name}.txt")),
        Path::new("/tmp").join(format!("{name}.txt")),
    ];
    for f in &files {
        std::fs::write(f, &secret).unwrap();
    }
    let cmd = files.iter().map(|f| format!("cat {} 2>&1;", f.display())).collect::<String>();
    let out = sb.run(&spec(work.path(), &format!("{cmd} ls /root /tmp"))).await;
    for f in &files {
        std::fs::remove_file(f).unwrap();
    }
    assert!(!out.output.contains(&secret), "a secret leaked: {out:?}");
    assert!(out.output.contains("No such file or directory"), "{out:?}");
    sb.assert_clean_and_usable(work.path()).await;
}

#[tokio::test]
async fn the_hosts_loopback_is_unreachable() {
    let sb = TestSandbox::new();
    let work = tempfile::tempdir().unwrap();
    let listener = host_listener(work.path());
    let out = sb.run(&spec(work.path(), "python3 connect.py")).await;
    // ECONNREFUSED: the container's own loopback has no listener on that port.
    assert_eq!(out.output, "refused 111\n", "{out:?}");
    assert!(!was_reached(&listener), "the host listener saw a connection");
    sb.assert_clean_and_usable(work.path()).await;
}

#[tokio::test]
async fn a_fork_bomb_is_held_by_the_pids_limit() {
    let sb = TestSandbox::new();
    let work = tempfile::tempdir().unwrap();
    let began = Instant::now();
    // Re-lit in a loop; it ends when the shell itself can no longer fork, or at the timeout.
    let bomb = "bomb() { bomb | bomb & }; while :; do bomb 2>/dev/null; done";
    let out = sb.run(&timed(work.path(), bomb, Duration::from_secs(3))).await;
    assert!(began.elapsed() < Duration::from_secs(20), "{:?}", began.elapsed());
    let killed_by = out.killed_by.clone().unwrap_or_default();
    assert!(killed_by.ends_with("pids limit 64"), "{out:?}");
    assert_eq!(out.timed_out, killed_by.starts_with("timeout 3 s; "), "{out:?}");
    sb.assert_clean_and_usable(work.path()).await;
}

#[tokio::test]
async fn allocating_past_the_memory_limit_is_killed_and_reported() {
    let sb = TestSandbox::new();
    let work = tempfile::tempdir().unwrap();
    let out = sb
        .run(&spec(
            work.path(),
            "python3 -c 'b = bytearray(512 << 20); print(\"allocated\")'; echo exit=$?",
        ))
        .await;
    // The OOM killer ends python (SIGKILL: 128 + 9); the shell goes on and reports it.
    assert!(out.output.ends_with("exit=137\n"), "{out:?}");
    assert!(!out.output.contains("allocated"), "{out:?}");
    assert_eq!(out.killed_by.as_deref(), Some("memory limit 128 MiB"));
    assert!(!out.timed_out);
    sb.assert_clean_and_usable(work.path()).await;
}

#[tokio::test]
async fn spinning_past_the_timeout_is_killed_with_everything_it_started() {
    let sb = TestSandbox::new();
    let work = tempfile::tempdir().unwrap();
    let mark = marker("spin");
    // A busy loop plus a background sleeper that would outlive it.
    let cmd = format!("sh -c 'sleep 600; echo {mark}' & while :; do :; done");
    let began = Instant::now();
    let out = sb.run(&timed(work.path(), &cmd, Duration::from_secs(1))).await;
    assert!(began.elapsed() < Duration::from_secs(10), "{:?}", began.elapsed());
    assert!(out.timed_out);
    assert_eq!(out.exit_code, None);
    assert_eq!(out.killed_by.as_deref(), Some("timeout 1 s"));
    assert_eq!(host_processes_with(&mark), Vec::<u32>::new());
    sb.assert_clean_and_usable(work.path()).await;
}

#[tokio::test]
async fn a_gigabyte_of_output_is_capped_in_bounded_memory() {
    let sb = TestSandbox::new();
    let work = tempfile::tempdir().unwrap();
    let mut s = spec(work.path(), "head -c 1000000000 /dev/zero | tr '\\0' x; echo; echo THE-END");
    s.output_limit = 4096;
    s.timeout = Duration::from_secs(60);
    let out = sb.run(&s).await;
    assert_eq!(out.exit_code, Some(0), "{:?}", out.killed_by);
    assert!(out.truncated);
    assert_eq!(out.output.len(), 4096);
    assert!(out.output.ends_with("xxx\nTHE-END\n"));
    // The runner never held the gigabyte: its peak resident memory stays far below it.
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let peak_kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    assert!(peak_kb < 300 * 1024, "peak RSS {peak_kb} kB");
    sb.assert_clean_and_usable(work.path()).await;
}

/// `PTRACE_ATTACH` to a child the script started (same uid): only seccomp stands in the way.
const PTRACE: &str = "import ctypes, subprocess\n\
    libc = ctypes.CDLL(None, use_errno=True)\n\
    p = subprocess.Popen(['sleep', '30'])\n\
    r = libc.ptrace(16, p.pid, 0, 0)\n\
    print('ptrace', r, ctypes.get_errno())\n\
    p.kill()\n";

#[tokio::test]
async fn ptrace_is_denied() {
    let work = tempfile::tempdir().unwrap();
    std::fs::write(work.path().join("trace.py"), PTRACE).unwrap();
    let sb = TestSandbox::new();
    let out = sb.run(&spec(work.path(), "python3 trace.py")).await;
    assert_eq!(out.output, "ptrace -1 1\n", "EPERM expected: {out:?}");
    // The control: without the filter the same attach succeeds, so the filter is what denies it.
    let unfiltered = TestSandbox::with(|cfg| cfg.seccomp = false);
    let out = unfiltered.run(&spec(work.path(), "python3 trace.py")).await;
    assert_eq!(out.output, "ptrace 0 0\n", "{out:?}");
    sb.assert_clean_and_usable(work.path()).await;
}

#[tokio::test]
async fn mounting_and_new_namespaces_are_denied() {
    let sb = TestSandbox::new();
    let work = tempfile::tempdir().unwrap();
    let mounts_before = std::fs::read_to_string("/proc/self/mountinfo").unwrap().lines().count();
    // unshare -r would make the caller root of a new user namespace, where mount is allowed: the
    // filter must stop the namespace itself (unshare, and clone with namespace flags).
    let cmd = "mkdir -p /tmp/m; mount -t tmpfs none /tmp/m 2>/dev/null; echo mount=$?; \
               unshare -r -m true 2>/dev/null; echo unshare=$?; \
               python3 -c 'import ctypes; l = ctypes.CDLL(None, use_errno=True); \
                 print(\"unshare(CLONE_NEWUSER)\", l.unshare(0x10000000), ctypes.get_errno())'";
    let out = sb.run(&spec(work.path(), cmd)).await;
    assert_eq!(out.output, "mount=32\nunshare=1\nunshare(CLONE_NEWUSER) -1 1\n", "{out:?}");
    let mounts_after = std::fs::read_to_string("/proc/self/mountinfo").unwrap().lines().count();
    assert_eq!(mounts_before, mounts_after, "the host's mount table changed");
    sb.assert_clean_and_usable(work.path()).await;
}

#[tokio::test]
#[allow(clippy::disallowed_methods)] // The test compares the host's real clock, not a Clock port.
async fn the_clock_cannot_be_changed() {
    let sb = TestSandbox::new();
    let work = tempfile::tempdir().unwrap();
    let cmd = "date -s '2001-01-01 00:00:00' >/dev/null 2>&1; echo date=$?; \
               python3 -c 'import time; time.clock_settime(time.CLOCK_REALTIME, 0)' 2>&1 | tail -1";
    let out = sb.run(&spec(work.path(), cmd)).await;
    assert_eq!(
        out.output, "date=1\nPermissionError: [Errno 1] Operation not permitted\n",
        "{out:?}"
    );
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
    // 2020-01-01: the clock was not set back to 2001 or 1970.
    assert!(now.as_secs() > 1_577_836_800, "the host clock moved: {now:?}");
    sb.assert_clean_and_usable(work.path()).await;
}

#[tokio::test]
async fn background_processes_die_with_the_run() {
    let sb = TestSandbox::new();
    let work = tempfile::tempdir().unwrap();
    let mark = marker("bg");
    // setsid and nohup: the usual ways out of a process group, useless against a pid namespace.
    let cmd = format!("setsid sh -c 'sleep 600; echo {mark}' & nohup sh -c 'sleep 600; echo {mark}' >/dev/null 2>&1 & echo done");
    let began = Instant::now();
    let out = sb.run(&spec(work.path(), &cmd)).await;
    assert!(began.elapsed() < Duration::from_secs(10), "waited for the background jobs");
    assert_eq!((out.exit_code, out.output.as_str()), (Some(0), "done\n"));
    assert_eq!(host_processes_with(&mark), Vec::<u32>::new());
    sb.assert_clean_and_usable(work.path()).await;
}
