//! The official Pub/Sub and Firestore emulators (google-cloud-cli), started once per test binary on
//! free ports and shared by every test; each test works in a project of its own.
//!
//! Each emulator runs under a watchdog shell that is the leader of its own process group: when this test
//! process is gone, the watchdog kills the group (the emulator's script and its Java child), so no
//! emulator outlives the tests, whatever way they end.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub(crate) const PUBSUB: &str =
    "/usr/lib/google-cloud-sdk/platform/pubsub-emulator/bin/cloud-pubsub-emulator";
pub(crate) const FIRESTORE: &str =
    "/usr/lib/google-cloud-sdk/platform/cloud-firestore-emulator/cloud_firestore_emulator";

/// Where the emulators answer (`127.0.0.1:PORT`).
pub(crate) struct Emulators {
    pub(crate) pubsub: String,
    pub(crate) firestore: String,
    /// The watchdogs; they end with this process, never before.
    _watchdogs: [Child; 2],
}

/// The emulators, started on first use.
pub(crate) fn emulators() -> &'static Emulators {
    static STARTED: OnceLock<Emulators> = OnceLock::new();
    STARTED.get_or_init(|| {
        for path in [PUBSUB, FIRESTORE] {
            assert!(
                Path::new(path).exists(),
                "{path} is missing: the Google Cloud emulators ship with this machine image \
                 (google-cloud-cli) and cannot be installed from a registry"
            );
        }
        let (pubsub_port, firestore_port) = (free_port(), free_port());
        let watchdogs = [start(PUBSUB, pubsub_port), start(FIRESTORE, firestore_port)];
        let pubsub = format!("127.0.0.1:{pubsub_port}");
        let firestore = format!("127.0.0.1:{firestore_port}");
        wait_ready(&pubsub, "/v1/projects/probe/topics");
        wait_ready(&firestore, "/");
        Emulators { pubsub, firestore, _watchdogs: watchdogs }
    })
}

/// A project id no other test in this process uses.
pub(crate) fn fresh_project() -> String {
    static NEXT: AtomicU32 = AtomicU32::new(1);
    format!("cadre-test-{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn start(program: &str, port: u16) -> Child {
    // `kill 0` signals the whole group: the watchdog, the emulator's script and its JVM.
    let watchdog = r#"trap 'kill 0' EXIT; "$0" --host=127.0.0.1 --port="$1" >/dev/null 2>&1 &
while kill -0 "$2" 2>/dev/null; do sleep 0.2; done"#;
    Command::new("sh")
        .args(["-c", watchdog, program, &port.to_string(), &std::process::id().to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {program}: {e}"))
}

fn wait_ready(host: &str, path: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if http_status(host, path) == Some(200) {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("the emulator at {host} did not answer GET {path} within 60 s");
}

fn http_status(host: &str, path: &str) -> Option<u16> {
    let mut stream = TcpStream::connect(host).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n").ok()?;
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).ok()?;
    std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
}
