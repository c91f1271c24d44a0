//! Cleanup: containers deleted after cancelled runs, stale ones from an interrupted runner deleted
//! at start, and hundreds of back-to-back runs (the early-exit race of the youki CLI).

use crate::container_support::{config, host_processes_with, marker, new_sandbox, TestSandbox};
use crate::support::{alive, spec};
use cadre_domain::ports::sandbox::Sandbox;
use std::process::{Command, Stdio};
use std::time::Duration;

#[tokio::test]
async fn dropping_a_run_deletes_its_container() {
    let sb = TestSandbox::new();
    let work = tempfile::tempdir().unwrap();
    let mark = marker("drop");
    let s = spec(work.path(), &format!("sh -c 'sleep 600; echo {mark}' & wait"));
    let mut run = sb.sandbox.run(&s);
    let running = async {
        while host_processes_with(&mark).is_empty() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    tokio::select! {
        r = &mut run => panic!("the run finished on its own: {r:?}"),
        _ = tokio::time::timeout(Duration::from_secs(10), running) => {}
    }
    assert!(!host_processes_with(&mark).is_empty(), "the run never started");
    drop(run);
    // The cleanup finishes in the background.
    sb.wait_until_clean().await;
    assert_eq!(host_processes_with(&mark), Vec::<u32>::new());
    sb.assert_clean_and_usable(work.path()).await;
}

#[tokio::test]
async fn a_finished_runs_directory_leaves_at_once_and_its_trash_soon_after() {
    let sb = TestSandbox::new();
    let work = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(work.path().join("src")).unwrap();
    std::fs::write(work.path().join("src/lib.rs"), "// code").unwrap();
    let out = sb.run(&spec(work.path(), "echo built > src/out")).await;
    assert_eq!(out.exit_code, Some(0), "{out:?}");
    assert_eq!(sb.runs_left(), Vec::<std::path::PathBuf>::new(), "the run directory stayed");
    let trash = sb.dir.path().join("runtime/trash");
    let left = || std::fs::read_dir(&trash).unwrap().count();
    for _ in 0..500 {
        if left() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(left(), 0, "the finished run's directory was never deleted");
    assert!(!work.path().join("src/out").exists(), "the run wrote the worktree");
}

/// The leftovers of a runner killed mid-run, made by hand: a state dir libcontainer cannot load,
/// a run dir, and a cgroup in every controller holding a live process.
#[tokio::test]
async fn a_new_sandbox_deletes_what_a_dead_runner_left() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    // Create the layout, then the leftovers.
    drop(new_sandbox(cfg.clone()));
    let me = std::process::id();
    let my_start: u64 = std::fs::read_to_string("/proc/self/stat")
        .unwrap()
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .nth(19)
        .unwrap()
        .parse()
        .unwrap();
    // Same pid, other start time: a dead runner whose pid was reused. And a live one: us.
    let dead = format!("cadre-{me}-{}-7", my_start + 1);
    let live = format!("cadre-{me}-{my_start}-999999");
    let runtime = dir.path().join("runtime");
    let mut victims = Vec::new();
    for id in [&dead, &live] {
        std::fs::create_dir_all(runtime.join("state").join(id)).unwrap();
        std::fs::write(runtime.join("state").join(id).join("state.json"), "{ corrupt").unwrap();
        std::fs::create_dir_all(runtime.join("runs").join(id).join("work")).unwrap();
        std::fs::create_dir_all(runtime.join("trash").join(id).join("work")).unwrap();
        let mut child = Command::new("sleep").arg("600").stdin(Stdio::null()).spawn().unwrap();
        for controller in ["memory", "pids", "cpu"] {
            let cg = format!("/sys/fs/cgroup/{controller}/{}/{id}", cfg.cgroup_parent);
            std::fs::create_dir_all(&cg).unwrap();
            std::fs::write(format!("{cg}/cgroup.procs"), child.id().to_string()).unwrap();
        }
        victims.push((id.clone(), child.id()));
        std::thread::spawn(move || child.wait());
    }
    let sb = new_sandbox(cfg.clone());
    let (dead_pid, live_pid) = (victims[0].1, victims[1].1);
    for _ in 0..100 {
        if !alive(dead_pid) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(!alive(dead_pid), "the dead runner's process survived");
    assert!(alive(live_pid), "a live runner's container must be kept");
    for controller in ["memory", "pids", "cpu"] {
        let base = format!("/sys/fs/cgroup/{controller}/{}", cfg.cgroup_parent);
        assert!(
            !std::path::Path::new(&format!("{base}/{dead}")).exists(),
            "{controller} cgroup left"
        );
        assert!(std::path::Path::new(&format!("{base}/{live}")).exists());
    }
    assert!(!runtime.join("state").join(&dead).exists());
    assert!(!runtime.join("runs").join(&dead).exists());
    assert!(runtime.join("runs").join(&live).exists());
    assert!(!runtime.join("trash").join(&dead).exists(), "a dead runner's trash was kept");
    assert!(runtime.join("trash").join(&live).exists(), "a live runner's trash is its own");
    // Tidy the live one by hand (it is ours), then the sandbox still works.
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(live_pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    );
    for _ in 0..100 {
        let mut gone = true;
        for controller in ["memory", "pids", "cpu"] {
            gone &= std::fs::remove_dir(format!(
                "/sys/fs/cgroup/{controller}/{}/{live}",
                cfg.cgroup_parent
            ))
            .is_ok()
                || !std::path::Path::new(&format!(
                    "/sys/fs/cgroup/{controller}/{}/{live}",
                    cfg.cgroup_parent
                ))
                .exists();
        }
        if gone {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    std::fs::remove_dir_all(runtime.join("state").join(&live)).unwrap();
    std::fs::remove_dir_all(runtime.join("runs").join(&live)).unwrap();
    let work = tempfile::tempdir().unwrap();
    let out = sb.run(&spec(work.path(), "echo ok")).await.unwrap();
    assert_eq!(out.output, "ok\n");
    crate::container_support::remove_cgroup_parent(&cfg.cgroup_parent);
}

/// The youki CLI hangs now and then when the container exits before it starts waiting. Hundreds of
/// containers whose command exits at once, two at a time, each bounded in time, must all be seen
/// to exit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundreds_of_instant_exits_are_never_missed() {
    let sb = TestSandbox::new();
    let work = tempfile::tempdir().unwrap();
    const RUNS: usize = 300;
    let mut lanes = Vec::new();
    for lane in 0..2 {
        let sandbox = sb.sandbox.clone();
        let s = spec(work.path(), if lane == 0 { "true" } else { "exit 7" });
        lanes.push(tokio::spawn(async move {
            for i in 0..RUNS / 2 {
                let out = tokio::time::timeout(Duration::from_secs(20), sandbox.run(&s))
                    .await
                    .unwrap_or_else(|_| panic!("run {i} of lane {lane} hung"))
                    .unwrap();
                assert_eq!(out.exit_code, Some(if lane == 0 { 0 } else { 7 }), "run {i}: {out:?}");
            }
        }));
    }
    for lane in lanes {
        lane.await.unwrap();
    }
    sb.assert_clean_and_usable(work.path()).await;
}
