//! The structured result of running a repository's tests.

use serde::{Deserialize, Serialize};

/// How isolated the run was; a report always says, so an unisolated run is never mistaken for a safe one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Isolation {
    /// A plain host subprocess: the code could touch anything the user can.
    HostUnisolated,
    /// A container with its own namespaces and cgroup limits.
    Container,
}

/// What running the tests produced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TestReport {
    /// The shell command that was run.
    pub command: String,
    /// True when the command exited 0 within its time limit.
    pub passed: bool,
    /// The exit code, absent when the process was killed.
    pub exit_code: Option<i32>,
    /// True when the run hit its wall-clock limit and was killed.
    pub timed_out: bool,
    /// Wall time of the run.
    pub duration_ms: u64,
    /// Counts parsed from the runner's summary line, when one was recognised.
    pub counts: Option<TestCounts>,
    /// The names of failing tests, when the runner's output names them.
    pub failing_tests: Vec<String>,
    /// Each failing test with its message and location, when the runner's output gives them
    /// (libtest JSON, JUnit XML, pytest, go test), so `generate` sees precise failures.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failures: Vec<TestFailure>,
    /// The end of stdout and stderr interleaved as captured (capped).
    pub output_tail: String,
    /// True when output was cut at the cap.
    pub output_truncated: bool,
    /// How the run was isolated.
    pub isolation: Isolation,
    /// The sandbox limit that ended or crippled the run, e.g. "memory limit 512 MiB"; absent when none did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub killed_by: Option<String>,
}

/// One failing test, as precisely as the runner reported it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TestFailure {
    /// The test's full name (`tests::adds`, `tests/test_x.py::test_y`).
    pub name: String,
    /// The assertion message or panic, trimmed to a few lines.
    pub message: String,
    /// Repository-relative file, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// 1-based line, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line: Option<u32>,
}

/// Passed / failed / skipped counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct TestCounts {
    /// Tests that passed.
    pub passed: u32,
    /// Tests that failed or errored.
    pub failed: u32,
    /// Tests skipped or ignored.
    pub skipped: u32,
}
