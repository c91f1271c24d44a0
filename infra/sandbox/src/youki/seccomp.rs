//! The seccomp deny-list, written once as a BPF program and installed in each container just
//! before `exec`.
//!
//! Why not the OCI `linux.seccomp` field: libcontainer then needs libseccomp (and libseccomp-dev
//! to build) and compiles the profile on every start, which costs 16–20 ms per run on this class
//! of machine (see the sandbox anchors). The program here is a few dozen instructions written out
//! directly (microseconds, no library); the runner hands it to the kernel from the container's
//! executor, after capabilities are dropped and `no_new_privs` is set, right before `execve`.
//!
//! It is a deny-list (default allow): test suites use a wide and unpredictable set of syscalls,
//! and what must never work is small. Denied calls fail with `EPERM`, so a test sees an ordinary
//! error rather than a crash. Foreign-architecture calls (i386 through `int 0x80`) kill the
//! process, and x32 calls fail, so the numbers below cannot be bypassed.

use libcontainer::oci_spec::runtime::Spec;
use libcontainer::workload::default::DefaultExecutor;
use libcontainer::workload::{
    Executor, ExecutorError, ExecutorSetEnvsError, ExecutorValidationError,
};
use seccompiler::{sock_filter, BpfProgram};
use std::collections::HashMap;
use std::ffi::CString;
use std::sync::Arc;

// Classic BPF opcodes (linux/bpf_common.h) and seccomp return values (linux/seccomp.h).
/// `BPF_LD | BPF_W | BPF_ABS` (0x00 | 0x00 | 0x20).
const BPF_LD_W_ABS: u16 = 0x20;
const BPF_JMP_JEQ_K: u16 = 0x05 | 0x10;
const BPF_JMP_JGE_K: u16 = 0x05 | 0x30;
const BPF_JMP_JSET_K: u16 = 0x05 | 0x40;
const BPF_RET_K: u16 = 0x06;
const RET_ALLOW: u32 = 0x7fff_0000;
const RET_ERRNO: u32 = 0x0005_0000;
const RET_KILL_PROCESS: u32 = 0x8000_0000;

// Offsets in `struct seccomp_data`.
const OFFSET_NR: u32 = 0;
const OFFSET_ARCH: u32 = 4;
/// The low 32 bits of the first argument (little-endian).
const OFFSET_ARG0_LOW: u32 = 16;

#[cfg(target_arch = "x86_64")]
const AUDIT_ARCH: u32 = 0xc000_003e;
#[cfg(target_arch = "aarch64")]
const AUDIT_ARCH: u32 = 0xc000_00b7;

/// x32 syscalls carry this bit in their number under the x86_64 audit arch.
#[cfg(target_arch = "x86_64")]
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

/// The `clone` flags that create namespaces; with them `clone` is an `unshare`.
const NAMESPACE_FLAGS: u32 = (libc::CLONE_NEWNS
    | libc::CLONE_NEWUTS
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWUSER
    | libc::CLONE_NEWPID
    | libc::CLONE_NEWNET
    | libc::CLONE_NEWCGROUP) as u32;

/// Syscalls denied with `EPERM`, by what they would let a test do.
fn denied() -> Vec<(i64, &'static str)> {
    let mut list = vec![
        // Inspecting or controlling other processes.
        (libc::SYS_ptrace, "ptrace"),
        (libc::SYS_process_vm_readv, "process_vm_readv"),
        (libc::SYS_process_vm_writev, "process_vm_writev"),
        (libc::SYS_perf_event_open, "perf_event_open"),
        // Changing the filesystem tree.
        (libc::SYS_mount, "mount"),
        (libc::SYS_umount2, "umount2"),
        (libc::SYS_pivot_root, "pivot_root"),
        (libc::SYS_chroot, "chroot"),
        (libc::SYS_open_tree, "open_tree"),
        (libc::SYS_move_mount, "move_mount"),
        (libc::SYS_fsopen, "fsopen"),
        (libc::SYS_fsconfig, "fsconfig"),
        (libc::SYS_fsmount, "fsmount"),
        (libc::SYS_fspick, "fspick"),
        (libc::SYS_mount_setattr, "mount_setattr"),
        // Reaching files by handle bypasses the mount tree (the classic container escape).
        (libc::SYS_open_by_handle_at, "open_by_handle_at"),
        (libc::SYS_name_to_handle_at, "name_to_handle_at"),
        // Namespaces (clone with namespace flags is handled separately).
        (libc::SYS_unshare, "unshare"),
        (libc::SYS_setns, "setns"),
        // The kernel itself.
        (libc::SYS_kexec_load, "kexec_load"),
        (libc::SYS_kexec_file_load, "kexec_file_load"),
        (libc::SYS_init_module, "init_module"),
        (libc::SYS_finit_module, "finit_module"),
        (libc::SYS_delete_module, "delete_module"),
        (libc::SYS_bpf, "bpf"),
        (libc::SYS_reboot, "reboot"),
        (libc::SYS_swapon, "swapon"),
        (libc::SYS_swapoff, "swapoff"),
        (libc::SYS_acct, "acct"),
        (libc::SYS_quotactl, "quotactl"),
        (libc::SYS_syslog, "syslog"),
        (libc::SYS_userfaultfd, "userfaultfd"),
        // Keyrings are not namespaced.
        (libc::SYS_keyctl, "keyctl"),
        (libc::SYS_add_key, "add_key"),
        (libc::SYS_request_key, "request_key"),
        // The clock is shared with the host.
        (libc::SYS_settimeofday, "settimeofday"),
        (libc::SYS_clock_settime, "clock_settime"),
        (libc::SYS_clock_adjtime, "clock_adjtime"),
        (libc::SYS_adjtimex, "adjtimex"),
    ];
    #[cfg(target_arch = "x86_64")]
    list.extend([
        (libc::SYS_iopl, "iopl"),
        (libc::SYS_ioperm, "ioperm"),
        (libc::SYS_uselib, "uselib"),
        (libc::SYS_lookup_dcookie, "lookup_dcookie"),
    ]);
    list
}

/// The names of the denied syscalls (for docs, logs and tests).
pub(crate) fn denied_names() -> Vec<&'static str> {
    let mut names: Vec<&str> = denied().into_iter().map(|(_, n)| n).collect();
    names.extend(["clone (with namespace flags)", "clone3"]);
    names
}

/// A program under construction whose jumps name labels, resolved at the end.
struct Program {
    code: Vec<(u16, Jump, Jump, u32)>,
}

#[derive(Clone, Copy)]
enum Jump {
    Next,
    To(Label),
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Label {
    Deny,
    NoSys,
    Clone,
    Kill,
}

impl Program {
    fn op(&mut self, code: u16, k: u32) {
        self.code.push((code, Jump::Next, Jump::Next, k));
    }

    fn jump(&mut self, code: u16, k: u32, if_true: Jump, if_false: Jump) {
        self.code.push((code, if_true, if_false, k));
    }

    /// Lays out the labelled tails and resolves every jump into a relative offset.
    fn finish(mut self) -> BpfProgram {
        let mut labels = Vec::new();
        labels.push((Label::Clone, self.code.len()));
        self.op(BPF_LD_W_ABS, OFFSET_ARG0_LOW);
        self.jump(BPF_JMP_JSET_K, NAMESPACE_FLAGS, Jump::To(Label::Deny), Jump::Next);
        self.op(BPF_RET_K, RET_ALLOW);
        labels.push((Label::Deny, self.code.len()));
        self.op(BPF_RET_K, RET_ERRNO | libc::EPERM as u32);
        labels.push((Label::NoSys, self.code.len()));
        self.op(BPF_RET_K, RET_ERRNO | libc::ENOSYS as u32);
        labels.push((Label::Kill, self.code.len()));
        self.op(BPF_RET_K, RET_KILL_PROCESS);

        let at = |label: Label| labels.iter().find(|(l, _)| *l == label).map_or(0, |(_, i)| *i);
        self.code
            .iter()
            .enumerate()
            .map(|(i, &(code, jt, jf, k))| {
                let offset = |jump: Jump| match jump {
                    Jump::Next => 0,
                    // Jumps only go forward; the program is far shorter than 255 instructions.
                    Jump::To(label) => u8::try_from(at(label) - i - 1).unwrap_or(u8::MAX),
                };
                sock_filter { code, jt: offset(jt), jf: offset(jf), k }
            })
            .collect()
    }
}

/// Builds the deny-list program.
pub(crate) fn program() -> BpfProgram {
    let mut p = Program { code: Vec::new() };
    p.op(BPF_LD_W_ABS, OFFSET_ARCH);
    // A foreign arch is killed, not denied: its numbers mean other calls.
    p.jump(BPF_JMP_JEQ_K, AUDIT_ARCH, Jump::Next, Jump::To(Label::Kill));
    p.op(BPF_LD_W_ABS, OFFSET_NR);
    #[cfg(target_arch = "x86_64")]
    p.jump(BPF_JMP_JGE_K, X32_SYSCALL_BIT, Jump::To(Label::Deny), Jump::Next);
    // Without clone3, libc falls back to clone, whose flags this filter can read.
    p.jump(BPF_JMP_JEQ_K, libc::SYS_clone3 as u32, Jump::To(Label::NoSys), Jump::Next);
    p.jump(BPF_JMP_JEQ_K, libc::SYS_clone as u32, Jump::To(Label::Clone), Jump::Next);
    for (nr, _) in denied() {
        p.jump(BPF_JMP_JEQ_K, nr as u32, Jump::To(Label::Deny), Jump::Next);
    }
    p.op(BPF_RET_K, RET_ALLOW);
    p.finish()
}

/// The container's executor: installs the filter (when given), then `execve`s the command with
/// exactly the spec's environment.
///
/// Unlike libcontainer's default executor it never touches the process environment (no
/// `set_var`/`remove_var`, no `execvp`): this runs in a process cloned from a multi-threaded runner,
/// where the Rust runtime's environment lock may have been copied in a locked state.
#[derive(Clone)]
pub(crate) struct FilteringExecutor {
    pub(crate) filter: Option<Arc<BpfProgram>>,
}

impl Executor for FilteringExecutor {
    fn exec(&self, spec: &Spec) -> Result<(), ExecutorError> {
        let process = spec.process().as_ref().ok_or(ExecutorError::InvalidArg)?;
        let cstrings = |items: &[String]| {
            items
                .iter()
                .map(|s| CString::new(s.as_bytes()))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|_| ExecutorError::InvalidArg)
        };
        let args = cstrings(process.args().as_deref().unwrap_or_default())?;
        let env = cstrings(process.env().as_deref().unwrap_or_default())?;
        let program = args.first().ok_or(ExecutorError::InvalidArg)?;
        if let Some(filter) = &self.filter {
            seccompiler::apply_filter(filter).map_err(|e| {
                ExecutorError::Other(format!("cannot install the seccomp filter: {e}"))
            })?;
        }
        nix::unistd::execve(program, &args, &env)
            .map_err(|e| ExecutorError::Other(format!("cannot execute {program:?}: {e}")))?;
        Err(ExecutorError::Other("execve returned".into()))
    }

    fn validate(&self, spec: &Spec) -> Result<(), ExecutorValidationError> {
        DefaultExecutor {}.validate(spec)
    }

    fn setup_envs(&self, _envs: HashMap<String, String>) -> Result<(), ExecutorSetEnvsError> {
        // The environment goes straight to execve; see the type's docs.
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_jump_lands_inside_the_program() {
        let program = program();
        assert!(program.len() < 100, "{}", program.len());
        for (i, ins) in program.iter().enumerate() {
            if ins.code & 0x07 == 0x05 {
                assert!(i + 1 + (ins.jt as usize) < program.len(), "jt of {i}");
                assert!(i + 1 + (ins.jf as usize) < program.len(), "jf of {i}");
            }
        }
        // The arch check falls through on a match and jumps to the final kill otherwise.
        let last = program.len() - 1;
        assert_eq!((program[last].code, program[last].k), (BPF_RET_K, RET_KILL_PROCESS));
        assert_eq!(program[1].jt, 0);
        assert_eq!(2 + program[1].jf as usize, last);
    }

    #[test]
    fn names_cover_the_issue_list() {
        let names = denied_names();
        for required in [
            "ptrace",
            "mount",
            "umount2",
            "kexec_load",
            "bpf",
            "init_module",
            "reboot",
            "swapon",
            "settimeofday",
            "clock_settime",
            "unshare",
            "setns",
        ] {
            assert!(names.contains(&required), "{required}");
        }
    }
}
