//! Timeouts and cancellation: the whole process tree MUST be gone afterwards.

use crate::support::{alive, assert_all_die, read_pids, spec};
use cadre_domain::ports::sandbox::Sandbox;
use cadre_sandbox::HostSandbox;
use std::time::{Duration, Instant};

#[tokio::test]
async fn timeout_kills_and_reports() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = spec(dir.path(), "echo started; sleep 30");
    s.timeout = Duration::from_millis(300);
    let began = Instant::now();
    let out = HostSandbox::new().run(&s).await.unwrap();
    // Far below the 30 s sleep: the run was cut, not waited out.
    assert!(began.elapsed() < Duration::from_secs(10), "{:?}", began.elapsed());
    assert!(out.timed_out);
    assert_eq!(out.exit_code, None);
    assert_eq!(out.output, "started\n", "output before the timeout is kept");
}

#[tokio::test]
async fn timeout_kills_background_grandchildren() {
    let dir = tempfile::tempdir().unwrap();
    let pids = dir.path().join("pids");
    // The grandchildren outlive the shell's own sleep, so only a kill can end them in time.
    let mut s =
        spec(dir.path(), "sleep 60 & echo $! > pids; sh -c 'echo $$ >> pids; sleep 60' & sleep 30");
    s.timeout = Duration::from_millis(500);
    let began = Instant::now();
    let out = HostSandbox::new().run(&s).await.unwrap();
    assert!(began.elapsed() < Duration::from_secs(10), "{:?}", began.elapsed());
    assert!(out.timed_out);
    let pids = read_pids(&pids);
    assert_eq!(pids.len(), 2, "the command did not record its children: {pids:?}");
    assert_all_die(&pids).await;
}

#[tokio::test]
async fn background_jobs_do_not_outlive_a_finished_run() {
    let dir = tempfile::tempdir().unwrap();
    let began = Instant::now();
    let s = spec(dir.path(), "sleep 30 & echo $! > pid; echo done");
    let out = HostSandbox::new().run(&s).await.unwrap();
    assert!(began.elapsed() < Duration::from_secs(10), "waited for the background job");
    assert_eq!((out.exit_code, out.timed_out, out.output.as_str()), (Some(0), false, "done\n"));
    assert_all_die(&read_pids(&dir.path().join("pid"))).await;
}

#[tokio::test]
async fn dropping_the_run_kills_the_tree() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("pids");
    let s = spec(
        dir.path(),
        "echo $$ > pids.tmp; sleep 30 & echo $! >> pids.tmp; mv pids.tmp pids; wait",
    );
    let sandbox = HostSandbox::new();
    // async-trait hands back a boxed future, so dropping `run` really drops the run.
    let mut run = sandbox.run(&s);
    // Drive the run until the command has written its pids, then drop it mid-flight.
    let waited_for_pids = async {
        while !pid_file.exists() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::select! {
        r = &mut run => panic!("the run finished on its own: {r:?}"),
        _ = tokio::time::timeout(Duration::from_secs(10), waited_for_pids) => {}
    }
    let pids = read_pids(&pid_file);
    assert_eq!(pids.len(), 2, "{pids:?}");
    assert!(pids.iter().all(|&p| alive(p)), "the tree should be running before the drop");
    drop(run);
    assert_all_die(&pids).await;
}
