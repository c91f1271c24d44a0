//! The runner: a short-lived, single-threaded process that creates one container, starts it,
//! waits for it, deletes it, and writes how it ended to `<bundle>/result`.
//!
//! Why a separate process: libcontainer creates the container's processes with a raw `clone3`,
//! which skips libc's fork handlers. Cloned from a multi-threaded program (any tokio runtime),
//! the new process inherits whatever locks other threads held at that instant: measured here,
//! about one run in a thousand hung for good in `malloc` (an arena lock) or in the Rust runtime's
//! exit path (its thread-info lock, taken whenever a thread starts or ends). libcontainer also
//! `chdir`s the whole process around its notify socket. A process with one thread has neither
//! problem, and no other thread's working directory to disturb.
//!
//! The early exit cannot be missed: the container's init process is this process's child
//! (libcontainer clones it with `CLONE_PARENT`), and an exited child stays a zombie until reaped.
//! The runner waits with `WNOWAIT`, reads the cgroup's counters, deletes the container, and only
//! then reaps. Killing the init process ends the whole run: it is pid 1 of the run's pid
//! namespace, and the kernel kills everything else in the namespace when it dies.
//!
//! The runner writes nothing to stdout or stderr: both are the run's output pipe, which the
//! container inherits.

use super::cgroups::{self, LimitHits};
use super::netns;
use super::phases::Marks;
use super::seccomp::{self, FilteringExecutor};
use libcontainer::container::builder::ContainerBuilder;
use libcontainer::syscall::syscall::SyscallType;
use nix::errno::Errno;
use nix::sys::wait::{waitid, waitpid, Id, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// What the parent passes on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RunnerArgs {
    pub(crate) state: PathBuf,
    pub(crate) bundle: PathBuf,
    pub(crate) id: String,
    pub(crate) cgroup_parent: String,
    /// A last-resort deadline: the runner kills the run itself past it, so a run ends even when
    /// the parent died.
    pub(crate) deadline: Duration,
    pub(crate) seccomp: bool,
    pub(crate) loopback: bool,
}

impl RunnerArgs {
    pub(crate) fn to_args(&self) -> Vec<OsString> {
        let mut args: Vec<OsString> = vec![
            "--state".into(),
            self.state.clone().into(),
            "--bundle".into(),
            self.bundle.clone().into(),
            "--id".into(),
            self.id.clone().into(),
            "--cgroup-parent".into(),
            self.cgroup_parent.clone().into(),
            "--deadline-ms".into(),
            self.deadline.as_millis().to_string().into(),
        ];
        if self.seccomp {
            args.push("--seccomp".into());
        }
        if self.loopback {
            args.push("--loopback".into());
        }
        args
    }

    fn parse(args: &[OsString]) -> Result<RunnerArgs, String> {
        let mut it = args.iter();
        let (mut state, mut bundle, mut id, mut parent, mut deadline) =
            (None, None, None, None, None);
        let (mut seccomp, mut loopback) = (false, false);
        while let Some(flag) = it.next() {
            let mut value = || it.next().cloned().ok_or_else(|| format!("{flag:?} needs a value"));
            match flag.to_str() {
                Some("--state") => state = Some(PathBuf::from(value()?)),
                Some("--bundle") => bundle = Some(PathBuf::from(value()?)),
                Some("--id") => id = value()?.into_string().ok(),
                Some("--cgroup-parent") => parent = value()?.into_string().ok(),
                Some("--deadline-ms") => {
                    deadline =
                        value()?.to_str().and_then(|v| v.parse().ok()).map(Duration::from_millis);
                }
                Some("--seccomp") => seccomp = true,
                Some("--loopback") => loopback = true,
                _ => return Err(format!("unknown argument {flag:?}")),
            }
        }
        let missing = |what: &str| format!("missing or invalid --{what}");
        Ok(RunnerArgs {
            state: state.ok_or_else(|| missing("state"))?,
            bundle: bundle.ok_or_else(|| missing("bundle"))?,
            id: id.ok_or_else(|| missing("id"))?,
            cgroup_parent: parent.ok_or_else(|| missing("cgroup-parent"))?,
            deadline: deadline.ok_or_else(|| missing("deadline-ms"))?,
            seccomp,
            loopback,
        })
    }
}

/// How a run ended, as the runner reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// The init process exited with this code.
    Exited(i32, LimitHits),
    /// The init process was killed by this signal.
    Signaled(i32, LimitHits),
    /// The container could not be created or started.
    Failed(String),
}

impl Outcome {
    fn render(&self) -> String {
        let hits =
            |h: &LimitHits| format!("oom_kills {}\npids_refused {}\n", h.oom_kills, h.pids_refused);
        match self {
            Outcome::Exited(code, h) => format!("exited {code}\n{}", hits(h)),
            Outcome::Signaled(sig, h) => format!("signaled {sig}\n{}", hits(h)),
            Outcome::Failed(reason) => format!("failed {reason}\n"),
        }
    }

    /// Parses what [`Outcome::render`] wrote.
    pub(crate) fn parse(text: &str) -> Option<Outcome> {
        let mut hits = LimitHits::default();
        let mut outcome = None;
        for line in text.lines() {
            let (key, value) = line.split_once(' ')?;
            match key {
                "exited" => outcome = Some((true, value.parse().ok()?)),
                "signaled" => outcome = Some((false, value.parse().ok()?)),
                "oom_kills" => hits.oom_kills = value.parse().ok()?,
                "pids_refused" => hits.pids_refused = value.parse().ok()?,
                "failed" => return Some(Outcome::Failed(value.to_owned())),
                // Phase timings, read by `Marks::parse`.
                "mark" => {}
                _ => return None,
            }
        }
        match outcome? {
            (true, code) => Some(Outcome::Exited(code, hits)),
            (false, sig) => Some(Outcome::Signaled(sig, hits)),
        }
    }
}

/// The file the runner writes its [`Outcome`] to.
pub(crate) fn result_file(bundle: &Path) -> PathBuf {
    bundle.join("result")
}

/// The runner's `main`: runs one container as described by `args` (everything after the program
/// name and any dispatching subcommand) and returns the process exit code: 0 when an outcome was
/// written, 2 otherwise. The result file also gets the end time of each phase (see `phases.rs`).
///
/// Call it first thing in `main`, before any thread or async runtime starts: it refuses to run in
/// a multi-threaded process (see the module docs).
pub fn runner_main(args: Vec<OsString>) -> i32 {
    let mut marks = Marks::default();
    marks.mark("runner exec");
    let parsed = RunnerArgs::parse(&args).and_then(|args| match threads() {
        Some(1) => Ok(args),
        n => Err(format!(
            "the runner must be single-threaded but this process has {} threads; call \
             runner_main before starting any thread or async runtime",
            n.map_or_else(|| "an unknown number of".to_owned(), |n| n.to_string())
        )),
    });
    let args = match parsed {
        Ok(args) => args,
        // Nowhere else to say it: stderr is the run's output, which is where it belongs.
        Err(e) => {
            #[allow(clippy::print_stderr)] // The runner's only channel before it knows its bundle.
            {
                eprintln!("cadre sandbox runner: {e}");
            }
            return 2;
        }
    };
    let outcome = run(&args, &mut marks);
    let report = outcome.render() + &marks.render();
    match std::fs::write(result_file(&args.bundle), report) {
        Ok(()) => 0,
        Err(_) => 2,
    }
}

/// This process's thread count, from `/proc/self/status`.
fn threads() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status.lines().find_map(|l| l.strip_prefix("Threads:")).and_then(|n| n.trim().parse().ok())
}

fn run(args: &RunnerArgs, marks: &mut Marks) -> Outcome {
    let executor = FilteringExecutor { filter: args.seccomp.then(|| Arc::new(seccomp::program())) };
    let pid_file = args.bundle.join("init.pid");
    let built = ContainerBuilder::new(args.id.clone(), SyscallType::default())
        .with_root_path(&args.state)
        .and_then(|b| b.with_pid_file(Some(&pid_file)))
        .map(|b| b.with_executor(executor))
        .and_then(ContainerBuilder::validate_id)
        .and_then(|b| b.as_init(&args.bundle).with_systemd(false).with_detach(true).build());
    let mut container = match built {
        Ok(container) => container,
        Err(e) => {
            reap_failed_init(&pid_file);
            return Outcome::Failed(format!("cannot create the container: {e}"));
        }
    };
    marks.mark("container create");
    let Some(pid) = container.pid() else {
        return Outcome::Failed("the created container has no init process".into());
    };
    let abort = |reason: String| {
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
        let _ = wait_exit(pid);
        remove(args);
        let _ = waitpid(pid, None);
        Outcome::Failed(reason)
    };
    if args.loopback {
        if let Err(e) = netns::loopback_up(pid) {
            return abort(e);
        }
        marks.mark("loopback up");
    }
    if let Err(e) = container.start() {
        return abort(format!("cannot start the container: {e}"));
    }
    marks.mark("container start");
    // The last-resort deadline. Threads are safe from here on: nothing is cloned any more.
    let (parent, id, deadline) = (args.cgroup_parent.clone(), args.id.clone(), args.deadline);
    std::thread::spawn(move || {
        std::thread::sleep(deadline);
        cgroups::kill_all(&parent, &id);
    });
    if let Err(e) = wait_exit(pid) {
        return abort(format!("waiting for the container failed: {e}"));
    }
    marks.mark("command");
    let hits = cgroups::limit_hits(&args.cgroup_parent, &args.id);
    marks.mark("limit counters");
    // Deleting while the init is still an unreaped zombie: its pid cannot have been reused.
    remove(args);
    marks.mark("container delete");
    let reaped = waitpid(pid, None);
    marks.mark("reap");
    match reaped {
        Ok(WaitStatus::Exited(_, code)) => Outcome::Exited(code, hits),
        Ok(WaitStatus::Signaled(_, signal, _)) => Outcome::Signaled(signal as i32, hits),
        Ok(other) => Outcome::Failed(format!("unexpected wait status {other:?}")),
        Err(e) => Outcome::Failed(format!("reaping the container's init failed: {e}")),
    }
}

/// Deletes the container: its cgroup in every hierarchy (killing anything left in it) and its
/// state. By hand rather than `Container::delete`, which builds a cgroup manager that re-parses
/// the mount table once per controller (about a third of a run's time when traced here); these
/// containers have no hooks to run.
fn remove(args: &RunnerArgs) {
    cgroups::sweep(&args.cgroup_parent, &args.id);
    let _ = std::fs::remove_dir_all(args.state.join(&args.id));
}

/// Blocks until `pid` has exited, leaving it a zombie (so its pid stays ours).
fn wait_exit(pid: Pid) -> Result<(), Errno> {
    loop {
        match waitid(Id::Pid(pid), WaitPidFlag::WEXITED | WaitPidFlag::WNOWAIT) {
            Err(Errno::EINTR) => {}
            Err(e) => return Err(e),
            Ok(_) => return Ok(()),
        }
    }
}

/// After a failed create, the init process (if libcontainer got as far as cloning it) is our
/// child: kill and reap it so no zombie is left. Its pid is in the pid file libcontainer wrote.
fn reap_failed_init(pid_file: &Path) {
    let Some(pid) = std::fs::read_to_string(pid_file).ok().and_then(|s| s.trim().parse().ok())
    else {
        return;
    };
    let pid = Pid::from_raw(pid);
    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
    let _ = waitpid(pid, None);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_round_trip() {
        let args = RunnerArgs {
            state: "/r/state".into(),
            bundle: "/r/runs/x".into(),
            id: "cadre-1-2-3".into(),
            cgroup_parent: "cadre-sandbox".into(),
            deadline: Duration::from_millis(1500),
            seccomp: true,
            loopback: false,
        };
        assert_eq!(RunnerArgs::parse(&args.to_args()), Ok(args));
        assert!(RunnerArgs::parse(&["--bogus".into()]).is_err());
        assert!(RunnerArgs::parse(&["--id".into()]).is_err());
    }

    #[test]
    fn outcomes_round_trip() {
        let hits = LimitHits { oom_kills: 1, pids_refused: 2 };
        for outcome in [
            Outcome::Exited(3, hits),
            Outcome::Signaled(9, LimitHits::default()),
            Outcome::Failed("cannot create the container: x y".into()),
        ] {
            assert_eq!(Outcome::parse(&outcome.render()), Some(outcome));
        }
        assert_eq!(Outcome::parse("garbage"), None);
        assert_eq!(Outcome::parse(""), None);
    }
}
