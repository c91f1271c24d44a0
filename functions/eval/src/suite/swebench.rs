//! SWE-bench JSONL: one instance per line, as the published datasets export it.
//!
//! Read fields: `instance_id`, `repo` (`owner/name`, or any URL or path `git clone` takes),
//! `base_commit`, `problem_statement` (the goal), `FAIL_TO_PASS` and `PASS_TO_PASS` (in the real
//! datasets these are *strings holding a JSON list*; plain lists are accepted too), `test_patch` (the
//! tests that judge the fix, applied only for the check), and a test command `test_cmd` (or
//! `test_command`), which the original datasets leave to their harness; `--test-cmd` supplies it for
//! instances without one. Other fields (`patch`, `hints_text`, `version`, …) are ignored: the gold
//! patch and the hints are never shown to the agent.
//!
//! The check runs the test command on `FAIL_TO_PASS` and `PASS_TO_PASS` together: the instance is
//! solved when all of them pass, SWE-bench's "resolved". The agent's own test command runs the
//! `PASS_TO_PASS` tests (those exist before the fix), or the whole command when there are none. A
//! `{tests}` in the command is replaced by the quoted test names; otherwise they are appended.

use serde::Deserialize;
use serde_json::Value;
use std::path::Path;

use super::{shell_quote, Check, EvalTask, RepoSource, SuiteOptions};
use crate::error::EvalError;

/// The fields of an instance that are read.
#[derive(Debug, Deserialize)]
struct Instance {
    instance_id: String,
    repo: String,
    base_commit: String,
    problem_statement: String,
    #[serde(rename = "FAIL_TO_PASS")]
    fail_to_pass: Value,
    #[serde(rename = "PASS_TO_PASS", default)]
    pass_to_pass: Value,
    #[serde(default)]
    test_patch: Option<String>,
    #[serde(default, alias = "test_command")]
    test_cmd: Option<String>,
}

/// Reads the instances of a JSONL suite (blank lines are skipped).
///
/// # Errors
/// [`EvalError::Suite`] naming the line and the missing or malformed field.
pub fn read(path: &Path, text: &str, options: &SuiteOptions) -> Result<Vec<EvalTask>, EvalError> {
    let mut tasks = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line_no = i + 1;
        if line.trim().is_empty() {
            continue;
        }
        let fail = |why: String| EvalError::suite(path, Some(line_no), why);
        let instance: Instance = serde_json::from_str(line).map_err(|e| {
            fail(format!("{e}; each line must be one SWE-bench instance (a JSON object)"))
        })?;
        let fail_to_pass =
            test_list(&instance.fail_to_pass).map_err(|why| fail(format!("FAIL_TO_PASS {why}")))?;
        let pass_to_pass =
            test_list(&instance.pass_to_pass).map_err(|why| fail(format!("PASS_TO_PASS {why}")))?;
        if fail_to_pass.is_empty() {
            return Err(fail(format!(
                "instance {} has no FAIL_TO_PASS test, so a fix cannot be told from no fix",
                instance.instance_id
            )));
        }
        let Some(test_cmd) = instance.test_cmd.clone().or_else(|| options.test_cmd.clone()) else {
            return Err(fail(format!(
                "instance {} has no test command; add a \"test_cmd\" field (e.g. \"python -m pytest -q\") or pass --test-cmd",
                instance.instance_id
            )));
        };
        let mut judged = fail_to_pass.clone();
        judged.extend(pass_to_pass.iter().cloned());
        let agent_command = if pass_to_pass.is_empty() && !test_cmd.contains("{tests}") {
            test_cmd.clone()
        } else {
            with_tests(&test_cmd, &pass_to_pass)
        };
        tasks.push(EvalTask {
            id: instance.instance_id.clone(),
            goal: instance.problem_statement.trim().to_owned(),
            repo: repo_source(&instance.repo, options),
            base_commit: Some(instance.base_commit.clone()),
            test_command: Some(agent_command),
            check: Check {
                command: with_tests(&test_cmd, &judged),
                hidden_files: None,
                test_patch: instance.test_patch.filter(|p| !p.trim().is_empty()),
            },
        });
    }
    Ok(tasks)
}

/// A list of test names: a JSON list of strings, or (the datasets' form) a string holding one.
fn test_list(value: &Value) -> Result<Vec<String>, String> {
    let list = match value {
        Value::Null => return Ok(Vec::new()),
        Value::String(text) => serde_json::from_str::<Value>(text)
            .map_err(|e| format!("is a string but not a JSON list ({e})"))?,
        other => other.clone(),
    };
    match list {
        Value::Array(items) => items
            .into_iter()
            .map(|item| match item {
                Value::String(name) => Ok(name),
                other => Err(format!("holds {other}, not a test name")),
            })
            .collect(),
        other => Err(format!("must be a list of test names, not {other}")),
    }
}

/// `command` with `tests` quoted in place of `{tests}`, or appended.
fn with_tests(command: &str, tests: &[String]) -> String {
    let quoted: Vec<String> = tests.iter().map(|t| shell_quote(t)).collect();
    let quoted = quoted.join(" ");
    if command.contains("{tests}") {
        command.replace("{tests}", &quoted)
    } else if quoted.is_empty() {
        command.to_owned()
    } else {
        format!("{command} {quoted}")
    }
}

/// `owner/name` from the mirror (`owner__name`) when it is there, else from GitHub; anything that is
/// already a URL or an existing path is cloned as it is.
fn repo_source(repo: &str, options: &SuiteOptions) -> RepoSource {
    if repo.contains("://") || Path::new(repo).is_absolute() {
        return RepoSource::Clone(repo.to_owned());
    }
    if let Some(mirror) = &options.mirror {
        let local = mirror.join(repo.replace('/', "__"));
        if local.exists() {
            return RepoSource::Clone(local.display().to_string());
        }
        tracing::warn!(repo, mirror = %mirror.display(), "not in the mirror; cloning from GitHub");
    }
    RepoSource::Clone(format!("https://github.com/{repo}.git"))
}
