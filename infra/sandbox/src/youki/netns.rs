//! Bringing up `lo` in a run's fresh network namespace.
//!
//! A new network namespace has a loopback interface that is down, so even 127.0.0.1 is
//! unreachable and a test that starts a local server fails. libcontainer does not bring it up, and
//! the container has no capability left to do it itself, so the runner does it from the host: the
//! calling thread joins the container's network namespace (only that thread moves), sends one
//! netlink request, and moves back.
//!
//! No helper thread: a thread starting or ending while libcontainer clones a container process
//! can leave that process blocked forever on a lock of the Rust runtime (see `container.rs`).

use libcontainer::network::link::LinkClient;
use libcontainer::network::wrapper::create_network_client;
use nix::sched::{setns, CloneFlags};
use nix::unistd::Pid;
use std::fs::File;
use tracing::error;

/// The interface index of `lo` in every network namespace.
const LOOPBACK_INDEX: u32 = 1;

/// Brings up `lo` in the network namespace of `pid`.
///
/// # Errors
/// The step that failed, as text.
pub(crate) fn loopback_up(pid: Pid) -> Result<(), String> {
    let own = File::open("/proc/thread-self/ns/net")
        .map_err(|e| format!("cannot open this thread's network namespace: {e}"))?;
    let theirs = File::open(format!("/proc/{pid}/ns/net"))
        .map_err(|e| format!("cannot open the network namespace of pid {pid}: {e}"))?;
    setns(&theirs, CloneFlags::CLONE_NEWNET)
        .map_err(|e| format!("cannot join the container's network namespace: {e}"))?;
    let result = LinkClient::new(create_network_client())
        .map_err(|e| format!("cannot open a netlink socket: {e}"))
        .and_then(|mut links| {
            links
                .set_up(LOOPBACK_INDEX)
                .map_err(|e| format!("cannot bring up the loopback interface: {e}"))
        });
    if let Err(e) = setns(&own, CloneFlags::CLONE_NEWNET) {
        // Cannot happen short of a kernel bug (we hold the namespace and are root); say so loudly,
        // as this thread would now reach the network from inside a dead container.
        error!(error = %e, "could not return a runner thread to the host's network namespace");
        return Err(format!("cannot return to the host's network namespace: {e}"));
    }
    result
}
