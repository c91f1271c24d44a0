//! Linters and scanners over a task's worktree: `cargo clippy`, `ruff`, `eslint`, each run
//! through the [`Sandbox`] port like the tests, and a secrets scan over the patch's added lines.
//! Every one reports in one form, [`Finding`], so a pipeline step can show, gate on or feed back
//! findings without knowing which tool produced them.
//!
//! ```text
//! let report = scan(&*ports.sandbox, &worktree.path, &files, &patch, &ScanConfig::default()).await?;
//! for f in &report.findings { /* f.tool, f.severity, f.file, f.line, f.rule, f.message */ }
//! ```
//!
//! Tools are taken from the configuration or detected from the repository's files. A tool that is
//! not installed where the sandbox runs is one finding saying so (rule `not-installed`), not an
//! error: the other scanners still run. Reading each tool's output is a pure function, tested on
//! real captured output.

mod clippy;
mod eslint;
mod ruff;
pub mod secrets;

use cadre_domain::ports::sandbox::{NetworkAccess, RunOutput, RunSpec, Sandbox, SandboxError};
use cadre_domain::report::Isolation;
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::time::Duration;

/// One problem a linter or scanner found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    /// The tool: `clippy`, `ruff`, `eslint` or `secrets`.
    pub tool: String,
    /// How bad it is.
    pub severity: Severity,
    /// Repository-relative file, when the finding has one.
    pub file: Option<String>,
    /// 1-based line, when known.
    pub line: Option<u32>,
    /// The tool's rule id (`clippy::len_zero`, `F401`, `no-unused-vars`, `aws-access-key-id`), or
    /// `not-installed` / `tool-failed` about the tool itself.
    pub rule: String,
    /// What is wrong, one line or a few. A secret's value is never repeated in it.
    pub message: String,
}

/// A finding's severity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Must be fixed (a compile error, a leaked secret, a lint configured as an error).
    Error,
    /// Should be looked at.
    Warning,
    /// For information (notes, a tool that could not run).
    Info,
}

/// A linter run through the sandbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Tool {
    /// `cargo clippy --message-format=json`.
    Clippy,
    /// `ruff check --output-format=json`.
    Ruff,
    /// `eslint -f json`.
    Eslint,
}

impl Tool {
    /// The tool's name in findings.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Tool::Clippy => "clippy",
            Tool::Ruff => "ruff",
            Tool::Eslint => "eslint",
        }
    }

    /// The shell command: checks the tool is there (else prints [`NOT_INSTALLED`] and exits 127),
    /// then runs it with machine-readable output.
    fn command(self) -> String {
        let missing = |how: &str| format!("{{ echo '{NOT_INSTALLED} {}'; exit 127; }}", how);
        match self {
            Tool::Clippy => format!(
                "cargo clippy --version >/dev/null 2>&1 || {}\n\
                 cargo clippy --offline --all-targets --message-format=json",
                missing("clippy")
            ),
            Tool::Ruff => format!(
                "command -v ruff >/dev/null 2>&1 || {}\nruff check --no-cache --output-format=json .",
                missing("ruff")
            ),
            Tool::Eslint => format!(
                "if [ -x node_modules/.bin/eslint ]; then cadre_eslint=node_modules/.bin/eslint\n\
                 elif command -v eslint >/dev/null 2>&1; then cadre_eslint=eslint\n\
                 else {}\nfi\n\"$cadre_eslint\" -f json .",
                missing("eslint")
            ),
        }
    }

    /// How to install the tool, for the `not-installed` finding.
    fn install_hint(self) -> &'static str {
        match self {
            Tool::Clippy => "rustup component add clippy",
            Tool::Ruff => "pip install ruff",
            Tool::Eslint => "npm install --save-dev eslint",
        }
    }

    fn parse(self, output: &str, roots: &[&str]) -> Vec<Finding> {
        match self {
            Tool::Clippy => clippy::parse(output),
            Tool::Ruff => ruff::parse(output, roots),
            Tool::Eslint => eslint::parse(output, roots),
        }
    }
}

/// What a scan command prints when its tool is absent.
const NOT_INSTALLED: &str = "cadre-scan: not installed:";

/// What to scan and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanConfig {
    /// The linters to run; `None` detects them from the repository's files ([`detect`]).
    pub tools: Option<Vec<Tool>>,
    /// Whether to scan the diff's added lines for secrets.
    pub secrets: bool,
    /// Wall-clock limit of each linter run.
    pub timeout: Duration,
    /// Output kept of each linter run; JSON past it is lost, so this is generous.
    pub output_limit: usize,
    /// Extra environment of each linter run.
    pub env: Vec<(String, String)>,
}

impl Default for ScanConfig {
    /// Detected tools, the secrets scan, 10 minutes and 8 MiB per tool.
    fn default() -> Self {
        ScanConfig {
            tools: None,
            secrets: true,
            timeout: Duration::from_secs(600),
            output_limit: 8 << 20,
            env: Vec::new(),
        }
    }
}

/// Everything a scan found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScanReport {
    /// All findings, tool by tool, in each tool's order.
    pub findings: Vec<Finding>,
    /// The scanners that ran (`clippy`, …, `secrets`).
    pub scanners: Vec<String>,
    /// How the linters were isolated (the sandbox's), so an unisolated scan is never mistaken
    /// for a safe one.
    pub isolation: Isolation,
}

/// The linters that fit a repository with these files: clippy for a `Cargo.toml` at the root,
/// ruff for Python files or a ruff config, eslint for an eslint config.
#[must_use]
pub fn detect(files: &[String]) -> Vec<Tool> {
    let name = |f: &String| f.rsplit('/').next().unwrap_or(f).to_owned();
    let mut tools = Vec::new();
    if files.iter().any(|f| f == "Cargo.toml") {
        tools.push(Tool::Clippy);
    }
    if files.iter().any(|f| {
        let n = name(f);
        n.ends_with(".py") || n == "ruff.toml" || n == ".ruff.toml"
    }) {
        tools.push(Tool::Ruff);
    }
    if files.iter().map(name).any(|n| n.starts_with("eslint.config.") || n.starts_with(".eslintrc"))
    {
        tools.push(Tool::Eslint);
    }
    tools
}

/// Runs the configured (or detected) linters in `sandbox` over `workdir`, one run each, and the
/// secrets scan over `diff` (a unified diff; empty skips it). `files` are the repository's
/// files, for detection.
///
/// # Errors
/// A [`SandboxError`] when a linter run could not be carried out at all (e.g. the workdir is
/// missing). A tool that is absent, fails or times out is a finding, not an error.
pub async fn scan(
    sandbox: &dyn Sandbox,
    workdir: &Path,
    files: &[String],
    diff: &str,
    config: &ScanConfig,
) -> Result<ScanReport, SandboxError> {
    let tools = config.tools.clone().unwrap_or_else(|| detect(files));
    let root = workdir.to_string_lossy();
    let mut findings = Vec::new();
    let mut scanners = Vec::new();
    for tool in tools {
        let spec = RunSpec {
            workdir: workdir.to_path_buf(),
            command: tool.command(),
            env: config.env.clone(),
            timeout: config.timeout,
            output_limit: config.output_limit,
            network: NetworkAccess::LoopbackOnly,
            cache: None,
        };
        let run = sandbox.run(&spec).await?;
        let found = interpret(tool, &run, &[root.as_ref()]);
        tracing::debug!(tool = tool.name(), findings = found.len(), "scanner finished");
        findings.extend(found);
        scanners.push(tool.name().to_owned());
    }
    if config.secrets && !diff.is_empty() {
        findings.extend(secrets::scan_diff(diff));
        scanners.push("secrets".to_owned());
    }
    Ok(ScanReport { findings, scanners, isolation: sandbox.isolation() })
}

/// A linter run's findings, or one finding about the tool when it could not do its job.
fn interpret(tool: Tool, run: &RunOutput, roots: &[&str]) -> Vec<Finding> {
    let about_tool = |rule: &str, message: String| Finding {
        tool: tool.name().to_owned(),
        severity: Severity::Info,
        file: None,
        line: None,
        rule: rule.to_owned(),
        message,
    };
    if run.exit_code == Some(127) && run.output.contains(NOT_INSTALLED) {
        return vec![about_tool(
            "not-installed",
            format!(
                "{} is not installed where the sandbox runs; install it ({}) or leave it out of \
                 the scan configuration",
                tool.name(),
                tool.install_hint()
            ),
        )];
    }
    let findings = tool.parse(&run.output, roots);
    if run.timed_out || run.killed_by.is_some() {
        let why = run.killed_by.clone().unwrap_or_else(|| "timeout".into());
        let mut all = findings;
        all.push(about_tool(
            "tool-failed",
            format!("{} was killed ({why}); findings may be incomplete", tool.name()),
        ));
        return all;
    }
    // Linters exit non-zero when they find something; only silence plus failure is a failure.
    if findings.is_empty() && run.exit_code != Some(0) {
        let tail: Vec<&str> = run.output.lines().rev().take(5).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        return vec![about_tool(
            "tool-failed",
            format!(
                "{} failed (exit {}) without findings: {}",
                tool.name(),
                run.exit_code.map_or_else(|| "by signal".to_owned(), |c| c.to_string()),
                tail.join("\n")
            ),
        )];
    }
    findings
}

/// `file` relative to the first root it is under (the worktree's host path, or the container's
/// `/workspace`), else as printed.
fn relative(file: &str, roots: &[&str]) -> String {
    roots
        .iter()
        .map(|r| format!("{}/", r.trim_end_matches('/')))
        .chain(["/workspace/".to_owned()])
        .find_map(|root| file.strip_prefix(&root).map(str::to_owned))
        .unwrap_or_else(|| file.to_owned())
}

/// The first JSON array in `output` (which may start with other text, e.g. warnings on stderr).
fn json_array(output: &str) -> Option<Vec<serde_json::Value>> {
    let mut offset = 0;
    for line in output.split_inclusive('\n') {
        if line.trim_start().starts_with('[') {
            let mut values = serde_json::Deserializer::from_str(&output[offset..])
                .into_iter::<Vec<serde_json::Value>>();
            if let Some(Ok(array)) = values.next() {
                return Some(array);
            }
        }
        offset += line.len();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use cadre_domain::ports::sandbox::RunOutput;
    use std::sync::Mutex;

    #[test]
    fn detects_tools_from_files() {
        let files = |l: &[&str]| l.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert_eq!(detect(&files(&["Cargo.toml", "src/lib.rs"])), [Tool::Clippy]);
        assert_eq!(
            detect(&files(&["pkg/mod.py", "web/eslint.config.js"])),
            [Tool::Ruff, Tool::Eslint]
        );
        assert_eq!(detect(&files(&["crates/a/Cargo.toml", ".eslintrc.json"])), [Tool::Eslint]);
        assert_eq!(detect(&files(&["README.md"])), []);
    }

    /// A sandbox that answers each command from a script and records what it was asked.
    struct Scripted {
        answers: Vec<(&'static str, RunOutput)>,
        asked: Mutex<Vec<RunSpec>>,
    }

    #[async_trait::async_trait]
    impl Sandbox for Scripted {
        async fn run(&self, spec: &RunSpec) -> Result<RunOutput, SandboxError> {
            self.asked.lock().unwrap().push(spec.clone());
            self.answers
                .iter()
                .find(|(needle, _)| spec.command.contains(needle))
                .map(|(_, out)| out.clone())
                .ok_or_else(|| SandboxError::Spawn {
                    command: spec.command.clone(),
                    reason: "unscripted".into(),
                })
        }

        fn isolation(&self) -> Isolation {
            Isolation::Container
        }
    }

    fn output(exit: i32, text: &str) -> RunOutput {
        RunOutput {
            exit_code: Some(exit),
            timed_out: false,
            output: text.to_owned(),
            truncated: false,
            duration: Duration::from_millis(5),
            isolation: Isolation::Container,
            killed_by: None,
        }
    }

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        // The scan awaits only the scripted sandbox, which never pends: one poll finishes it.
        let mut f = std::pin::pin!(f);
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        match f.as_mut().poll(&mut cx) {
            std::task::Poll::Ready(v) => v,
            std::task::Poll::Pending => panic!("the scan waited on something"),
        }
    }

    #[test]
    fn scans_through_the_sandbox_and_reports_an_absent_tool() {
        let sandbox = Scripted {
            answers: vec![
                ("ruff check", output(1, include_str!("testdata/ruff.json"))),
                ("eslint", output(127, &format!("{NOT_INSTALLED} eslint\n"))),
            ],
            asked: Mutex::new(Vec::new()),
        };
        let config =
            ScanConfig { tools: Some(vec![Tool::Ruff, Tool::Eslint]), ..ScanConfig::default() };
        let diff = "+++ b/settings.py\n@@ -0,0 +1 @@\n+AWS_KEY = \"AKIAZ7VQ3RTXLMN4PQ2W\"\n";
        let report =
            block_on(scan(&sandbox, Path::new("/tmp/cap/py2"), &[], diff, &config)).unwrap();
        assert_eq!(report.scanners, ["ruff", "eslint", "secrets"]);
        assert_eq!(report.isolation, Isolation::Container);
        let summary: Vec<String> = report
            .findings
            .iter()
            .map(|f| format!("{} {:?} {:?}:{:?} {}", f.tool, f.severity, f.file, f.line, f.rule))
            .collect();
        assert_eq!(
            summary,
            [
                "ruff Error Some(\"pkg/bad.py\"):Some(1) invalid-syntax",
                "ruff Error Some(\"pkg/bad.py\"):Some(2) invalid-syntax",
                "ruff Warning Some(\"pkg/mod.py\"):Some(1) F401",
                "ruff Warning Some(\"pkg/mod.py\"):Some(2) F401",
                "ruff Warning Some(\"pkg/mod.py\"):Some(8) F841",
                "ruff Warning Some(\"pkg/mod.py\"):Some(9) F821",
                "eslint Info None:None not-installed",
                "secrets Error Some(\"settings.py\"):Some(1) aws-access-key-id",
            ]
        );
        let absent = &report.findings[6];
        assert!(
            absent.message.contains("eslint is not installed")
                && absent.message.contains("npm install"),
            "{absent:?}"
        );
        let asked = sandbox.asked.lock().unwrap();
        assert_eq!(asked.len(), 2);
        assert!(asked.iter().all(|s| s.network == NetworkAccess::LoopbackOnly));
    }

    #[test]
    fn a_failing_tool_without_findings_and_a_killed_one_are_findings() {
        let failed = interpret(
            Tool::Clippy,
            &output(101, "error: no matching package named `serde` found\n"),
            &[],
        );
        assert_eq!(failed.len(), 1);
        assert_eq!(failed[0].rule, "tool-failed");
        assert!(
            failed[0].message.contains("exit 101") && failed[0].message.contains("serde"),
            "{failed:?}"
        );
        let mut killed = output(0, "");
        killed.exit_code = None;
        killed.timed_out = true;
        killed.killed_by = Some("timeout 600 s".into());
        let got = interpret(Tool::Ruff, &killed, &[]);
        assert_eq!(got[0].message, "ruff was killed (timeout 600 s); findings may be incomplete");
        assert!(interpret(Tool::Ruff, &output(0, "[]\n"), &[]).is_empty());
    }

    #[test]
    fn json_arrays_after_other_text() {
        assert_eq!(json_array("warning: x\n[1, 2]\n").map(|v| v.len()), Some(2));
        assert_eq!(json_array("[ not json\n[3]\n").map(|v| v.len()), Some(1));
        assert_eq!(json_array("nothing"), None);
    }
}
