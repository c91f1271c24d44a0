//! Helpers: a spec builder and a way to tell whether a process is still running.

use cadre_domain::ports::sandbox::RunSpec;
use std::path::Path;
use std::time::Duration;

pub(crate) fn spec(workdir: &Path, command: &str) -> RunSpec {
    RunSpec {
        workdir: workdir.to_path_buf(),
        command: command.to_owned(),
        env: Vec::new(),
        timeout: Duration::from_secs(20),
        output_limit: 64 * 1024,
        network: Default::default(),
        cache: None,
    }
}

/// Whether `pid` is a live process. A zombie counts as dead: it no longer runs, and whether anyone
/// reaps an orphaned zombie depends on this machine's pid 1, not on the sandbox.
pub(crate) fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state is the first field after the parenthesised command name.
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

/// Waits (boundedly) for every pid to die; SIGKILL is delivered asynchronously, so allow a moment.
pub(crate) async fn assert_all_die(pids: &[u32]) {
    for _ in 0..100 {
        if pids.iter().all(|&p| !alive(p)) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let living: Vec<u32> = pids.iter().copied().filter(|&p| alive(p)).collect();
    panic!("processes still alive: {living:?}");
}

/// Reads the pids a command wrote into `file`, one per line.
pub(crate) fn read_pids(file: &Path) -> Vec<u32> {
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .map(|l| l.trim().parse().unwrap())
        .collect()
}

/// A host listener on 127.0.0.1 and a Python script (written into `workdir` as `connect.py`) that
/// connects to it and prints `connected` or `refused <errno>`.
pub(crate) fn host_listener(workdir: &Path) -> std::net::TcpListener {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let script = format!(
        "import socket\n\
         try:\n    socket.create_connection(('127.0.0.1', {port}), timeout=3); print('connected')\n\
         except OSError as e:\n    print('refused', e.errno)\n"
    );
    std::fs::write(workdir.join("connect.py"), script).unwrap();
    listener
}

/// Whether the listener has a connection waiting.
pub(crate) fn was_reached(listener: &std::net::TcpListener) -> bool {
    match listener.accept() {
        Ok(_) => true,
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => false,
        Err(e) => panic!("accept on the host listener failed: {e}"),
    }
}
