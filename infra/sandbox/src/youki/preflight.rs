//! Whether this host can run the container sandbox, and if not, exactly what is missing.

use cadre_domain::ports::sandbox::SandboxError;
use std::path::Path;

/// Checks root, the namespaces the sandbox creates, the cgroup controllers it limits with, and
/// seccomp.
///
/// # Errors
/// [`SandboxError::Spawn`] listing every missing piece and what to do about it.
pub fn preflight() -> Result<(), SandboxError> {
    let problems = problems(Path::new("/proc"), Path::new("/sys/fs/cgroup"));
    if problems.is_empty() {
        return Ok(());
    }
    Err(SandboxError::Spawn {
        command: "container sandbox preflight".into(),
        reason: format!(
            "this host cannot run the container sandbox: {}; fix these, or run tests with the \
             unisolated host sandbox on purpose",
            problems.join("; ")
        ),
    })
}

fn problems(proc: &Path, cgroup: &Path) -> Vec<String> {
    let mut problems = Vec::new();
    let euid = nix::unistd::geteuid();
    if !euid.is_root() {
        problems.push(format!(
            "the sandbox must run as root to create namespaces and cgroups (effective uid is {euid})"
        ));
    }
    for (ns, file) in [
        ("pid", "pid"),
        ("mount", "mnt"),
        ("ipc", "ipc"),
        ("uts", "uts"),
        ("network", "net"),
        ("cgroup", "cgroup"),
    ] {
        if !proc.join("self/ns").join(file).exists() {
            problems.push(format!(
                "the kernel has no {ns} namespaces ({}/self/ns/{file} is missing)",
                proc.display()
            ));
        }
    }
    let status = std::fs::read_to_string(proc.join("self/status")).unwrap_or_default();
    if !status.lines().any(|l| l.starts_with("Seccomp:")) {
        problems.push(
            "the kernel has no seccomp filtering (no Seccomp: line in /proc/self/status)".into(),
        );
    }
    problems.extend(cgroup_problems(cgroup));
    problems
}

/// The memory, pids and cpu controllers must each be mounted: as v1 hierarchies (legacy or hybrid
/// layout) or enabled at the v2 root.
fn cgroup_problems(cgroup: &Path) -> Vec<String> {
    let v2_controllers =
        std::fs::read_to_string(cgroup.join("cgroup.controllers")).unwrap_or_default();
    let mut problems = Vec::new();
    for (controller, v1_file) in
        [("memory", "memory.limit_in_bytes"), ("pids", "pids.max"), ("cpu", "cpu.cfs_quota_us")]
    {
        let v1 = cgroup.join(controller);
        let v1_ok =
            v1.join("cgroup.procs").exists() && (v1.join(v1_file).exists() || controller == "pids");
        let v2_ok = v2_controllers.split_whitespace().any(|c| c == controller);
        if !v1_ok && !v2_ok {
            problems.push(format!(
                "the {controller} cgroup controller is not mounted (neither {} nor {}/cgroup.controllers has it)",
                v1.display(),
                cgroup.display()
            ));
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_what_is_missing() {
        let fake = tempfile::tempdir().unwrap();
        let proc = fake.path().join("proc");
        let cg = fake.path().join("cgroup");
        std::fs::create_dir_all(proc.join("self/ns")).unwrap();
        for ns in ["pid", "mnt", "ipc", "uts", "cgroup"] {
            std::fs::write(proc.join("self/ns").join(ns), "").unwrap();
        }
        std::fs::write(proc.join("self/status"), "Name: x\nSeccomp:\t0\n").unwrap();
        std::fs::create_dir_all(cg.join("memory")).unwrap();
        std::fs::write(cg.join("memory/cgroup.procs"), "").unwrap();
        std::fs::write(cg.join("memory/memory.limit_in_bytes"), "").unwrap();
        std::fs::write(cg.join("cgroup.controllers"), "cpu io").unwrap();
        let found: Vec<String> =
            problems(&proc, &cg).into_iter().filter(|p| !p.contains("root")).collect();
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(found[0].contains("no network namespaces"), "{found:?}");
        assert!(found[1].contains("the pids cgroup controller is not mounted"), "{found:?}");
    }

    #[test]
    fn this_host_passes() {
        // The sandbox's integration tests need this host to be fully capable; say why if not.
        preflight().unwrap();
    }
}
