//! Resource limits of a container run, and the words a report uses for a limit that was hit.
//!
//! The wording is shared by both sandboxes so a report reads the same whichever one ran:
//! "memory limit 512 MiB", "pids limit 256", "timeout 30 s".

use std::time::Duration;

/// The cgroup limits of one container run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Memory (RAM; swap is not granted on top) in bytes. Past it the kernel's OOM killer ends a
    /// process of the run.
    pub memory_bytes: u64,
    /// Processes and threads alive at once; a fork past it fails with `EAGAIN`.
    pub pids: u32,
    /// CPU time per wall-clock second, in thousandths of a core (1000 = one whole core).
    pub cpu_millicores: u32,
}

impl Default for Limits {
    /// 2 GiB, 512 tasks and two cores: enough for `cargo test` of a mid-sized crate.
    fn default() -> Self {
        Limits { memory_bytes: 2 << 30, pids: 512, cpu_millicores: 2000 }
    }
}

/// The CFS weight (`cpu.shares`) of a cgroup allowed `millicores`: 1024 per core, what as many
/// busy host processes weigh together (Kubernetes' conversion). Without it a run's cgroup weighs
/// as one process, so on a busy host a run of a multi-process build gets a fraction of the CPU the
/// same build gets outside and takes far longer than its CPU limit implies.
pub(crate) fn cpu_shares(millicores: u32) -> u64 {
    (u64::from(millicores) * 1024 / 1000).max(2)
}

/// "memory limit 512 MiB".
pub(crate) fn describe_memory(bytes: u64) -> String {
    format!("memory limit {}", human_bytes(bytes))
}

/// "pids limit 256".
pub(crate) fn describe_pids(pids: u32) -> String {
    format!("pids limit {pids}")
}

/// "timeout 30 s", or "timeout 250 ms" below a second.
pub(crate) fn describe_timeout(timeout: Duration) -> String {
    if timeout.subsec_millis() == 0 && timeout.as_secs() > 0 {
        format!("timeout {} s", timeout.as_secs())
    } else {
        format!("timeout {} ms", timeout.as_millis())
    }
}

/// Whole binary units when exact ("512 MiB", "2 GiB"), else bytes.
fn human_bytes(bytes: u64) -> String {
    for (shift, unit) in [(30, "GiB"), (20, "MiB"), (10, "KiB")] {
        if bytes >= 1 << shift && bytes % (1 << shift) == 0 {
            return format!("{} {unit}", bytes >> shift);
        }
    }
    format!("{bytes} bytes")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wording() {
        assert_eq!(describe_memory(512 << 20), "memory limit 512 MiB");
        assert_eq!(describe_memory(2 << 30), "memory limit 2 GiB");
        assert_eq!(describe_memory(1000), "memory limit 1000 bytes");
        assert_eq!(describe_pids(64), "pids limit 64");
        assert_eq!(describe_timeout(Duration::from_secs(30)), "timeout 30 s");
        assert_eq!(describe_timeout(Duration::from_millis(1500)), "timeout 1500 ms");
        assert_eq!(describe_timeout(Duration::from_millis(250)), "timeout 250 ms");
        assert_eq!(cpu_shares(2000), 2048);
        assert_eq!(cpu_shares(500), 512);
        assert_eq!(cpu_shares(1), 2, "the kernel's minimum");
    }
}
