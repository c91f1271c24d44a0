//! The harness's tools: what the model may do in a turn, declared with flat schemas (which every
//! provider accepts) and executed against the turn's worktree, the knowledge base and the sandbox.
//!
//! Results are compact and bounded: a window of a file, the best few search hits, the end of a run's
//! output, each cut with a note saying so, because a wall of text costs tokens and buries the signal.
//! A failed call is a result with an `error` field the model can act on, never a step failure.

use cadre_domain::ports::knowledge::{RepoKey, SearchMode, SearchQuery};
use cadre_domain::ports::model::{ToolCall, ToolResult, ToolSpec};
use cadre_domain::ports::sandbox::RunSpec;
use cadre_domain::ports::workspace::{FileWrite, WorkspaceError, Worktree};
use cadre_domain::step::StepError;
use cadre_domain::{Ports, Task, TestReport};
use serde_json::{json, Value};
use std::fmt::Write;
use std::time::Duration;

/// Most lines `read_file` returns in one call.
const READ_MAX_LINES: usize = 250;
/// Most bytes of a run's output shown to the model (the end is kept).
const RUN_OUTPUT_BYTES: usize = 6 * 1024;
/// Most entries `list_dir` shows.
const LIST_MAX: usize = 200;
/// Hits `search_code` returns.
const SEARCH_HITS: usize = 8;
/// Lines of each hit shown.
const HIT_LINES: usize = 30;
/// Wall-clock limit of a `run` command.
const RUN_TIMEOUT: Duration = Duration::from_secs(120);

/// The tools every harness turn declares.
#[must_use]
pub fn specs() -> Vec<ToolSpec> {
    let string = |d: &str| json!({"type": "string", "description": d});
    let object = |props: Value, required: &[&str]| json!({"type": "object", "properties": props, "required": required});
    vec![
        ToolSpec {
            name: "search_code".into(),
            description: "Search the repository (as of the task's base commit) for code matching words, identifiers or a question. Returns the best chunks with path:lines.".into(),
            parameters: object(json!({"query": string("words, identifiers or a question")}), &["query"]),
        },
        ToolSpec {
            name: "read_file".into(),
            description: "Read a file of the working copy (your edits included) with line numbers, at most 250 lines per call.".into(),
            parameters: object(
                json!({
                    "path": string("repository-relative path"),
                    "start_line": {"type": "integer", "description": "first line, 1-based (default 1)"},
                    "end_line": {"type": "integer", "description": "last line, inclusive"}
                }),
                &["path"],
            ),
        },
        ToolSpec {
            name: "list_dir".into(),
            description: "List the files and directories under a directory of the working copy.".into(),
            parameters: object(json!({"path": string("repository-relative directory; empty for the root")}), &[]),
        },
        ToolSpec {
            name: "find_definition".into(),
            description: "Where a function, type or other symbol is defined, with its signature.".into(),
            parameters: object(json!({"name": string("the symbol's name")}), &["name"]),
        },
        ToolSpec {
            name: "find_references".into(),
            description: "Where a symbol is used (by name).".into(),
            parameters: object(json!({"name": string("the symbol's name")}), &["name"]),
        },
        ToolSpec {
            name: "edit".into(),
            description: "Replace exactly one occurrence of `search` in a file with `replace`. `search` must match the file's current text exactly (whitespace included) and occur once; include surrounding lines to make it unique. An empty `search` creates a new file with `replace` as its content. Edits that break the file's syntax are refused.".into(),
            parameters: object(
                json!({
                    "path": string("repository-relative path"),
                    "search": string("the exact text to replace (empty to create the file)"),
                    "replace": string("the new text")
                }),
                &["path", "search", "replace"],
            ),
        },
        ToolSpec {
            name: "run_tests".into(),
            description: "Run the repository's test suite on the working copy in the sandbox. Returns counts, failing tests with their messages, and the end of the output.".into(),
            parameters: object(json!({}), &[]),
        },
        ToolSpec {
            name: "run".into(),
            description: "Run a shell command in the working copy in the sandbox (no network, 120 s limit). Returns the exit code and the end of the output.".into(),
            parameters: object(json!({"command": string("a shell command line")}), &["command"]),
        },
        ToolSpec {
            name: "finish".into(),
            description: "End the work: the change is complete and the tests pass. Give a short summary of what you changed and why.".into(),
            parameters: object(json!({"summary": string("what changed and why")}), &["summary"]),
        },
    ]
}

/// What executing one call did, besides its result.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Nothing beyond the answer.
    None,
    /// The working copy changed.
    Edited,
    /// The suite ran; its report.
    Tested(Box<TestReport>),
    /// The model called `finish` with this summary.
    Finished(String),
}

/// One executed call.
#[derive(Debug, Clone)]
pub struct Executed {
    /// The answer sent back to the model.
    pub result: ToolResult,
    /// A one-line account for the task's log.
    pub line: String,
    /// What it did.
    pub effect: Effect,
}

/// Executes tool calls over one worktree.
pub struct Toolbox<'a> {
    /// The task.
    pub task: &'a Task,
    /// Every port.
    pub ports: &'a Ports,
    /// The turn's working copy.
    pub worktree: &'a Worktree,
    /// The knowledge base's key for the task's repository, when it has one.
    pub repo: Option<RepoKey>,
}

impl Toolbox<'_> {
    /// Runs `call` and answers it. Only infrastructure failures (the workspace or sandbox breaking)
    /// are errors; a bad call is answered with an `error` the model can act on.
    ///
    /// # Errors
    /// Workspace and sandbox failures that a retry of the turn may cure.
    pub async fn execute(&self, call: &ToolCall) -> Result<Executed, StepError> {
        let args = &call.args;
        let text = |key: &str| args.get(key).and_then(Value::as_str).map(str::to_owned);
        let answer = match call.name.as_str() {
            "search_code" => match text("query") {
                Some(query) => self.search(&query).await,
                None => missing("query"),
            },
            "read_file" => match text("path") {
                Some(path) => {
                    let line = |key: &str| {
                        args.get(key).and_then(Value::as_u64).and_then(|n| usize::try_from(n).ok())
                    };
                    self.read(&path, line("start_line"), line("end_line")).await?
                }
                None => missing("path"),
            },
            "list_dir" => self.list(&text("path").unwrap_or_default()).await?,
            "find_definition" | "find_references" => match text("name") {
                Some(name) => self.symbol(&name, call.name == "find_definition").await,
                None => missing("name"),
            },
            "edit" => match (text("path"), text("search"), text("replace")) {
                (Some(path), Some(search), Some(replace)) => {
                    self.edit(&path, &search, &replace).await?
                }
                _ => missing("path, search and replace"),
            },
            "run_tests" => self.run_tests().await?,
            "run" => match text("command") {
                Some(command) => self.run(&command).await?,
                None => missing("command"),
            },
            "finish" => {
                let summary = text("summary").unwrap_or_default();
                Answer {
                    response: json!({"ok": true}),
                    line: "finish".into(),
                    effect: Effect::Finished(summary),
                }
            }
            other => {
                let names: Vec<String> = specs().into_iter().map(|s| s.name).collect();
                refused(
                    format!("{other}: unknown tool"),
                    format!(
                        "there is no tool named `{other}`; the tools are: {}",
                        names.join(", ")
                    ),
                )
            }
        };
        Ok(Executed {
            result: ToolResult {
                id: call.id.clone(),
                name: call.name.clone(),
                response: answer.response,
            },
            line: answer.line,
            effect: answer.effect,
        })
    }

    async fn search(&self, query: &str) -> Answer {
        let Some(repo) = &self.repo else {
            return refused(
                "search_code: no index".into(),
                "the repository has no index; use list_dir and read_file".into(),
            );
        };
        let request = SearchQuery {
            text: query.to_owned(),
            limit: SEARCH_HITS,
            mode: SearchMode::Hybrid,
            filter: Default::default(),
        };
        match self.ports.knowledge.search(repo, &request).await {
            Ok(results) => {
                let mut out = String::new();
                for hit in &results.hits {
                    let c = &hit.chunk;
                    let _ = writeln!(out, "## {}:{}-{}", c.path, c.start_line, c.end_line);
                    let lines: Vec<&str> = c.text.lines().collect();
                    for (i, line) in lines.iter().take(HIT_LINES).enumerate() {
                        let _ = writeln!(out, "{:>5}  {line}", c.start_line as usize + i);
                    }
                    if lines.len() > HIT_LINES {
                        let _ = writeln!(
                            out,
                            "      … {} more lines: read_file for the rest",
                            lines.len() - HIT_LINES
                        );
                    }
                }
                if out.is_empty() {
                    out.push_str("no matches");
                }
                Answer {
                    response: json!({"results": out}),
                    line: format!("search_code {query:?}: {} hit(s)", results.hits.len()),
                    effect: Effect::None,
                }
            }
            Err(error) => refused(format!("search_code {query:?}: {error}"), error.to_string()),
        }
    }

    async fn read(
        &self,
        path: &str,
        start: Option<usize>,
        end: Option<usize>,
    ) -> Result<Answer, StepError> {
        let text = match self.ports.workspace.read_file(self.worktree, path).await {
            Ok(Some(text)) => text,
            Ok(None) => {
                return Ok(refused(
                    format!("read_file {path}: not found"),
                    format!("`{path}` does not exist or is not text; list_dir shows what exists"),
                ))
            }
            Err(WorkspaceError::BadPath { path, why }) => {
                return Ok(refused(
                    format!("read_file {path}: refused"),
                    format!("`{path}`: {why}"),
                ))
            }
            Err(other) => return Err(other.into()),
        };
        let lines: Vec<&str> = text.lines().collect();
        let first = start.unwrap_or(1).max(1);
        let last = end.unwrap_or(lines.len()).min(lines.len()).min(first + READ_MAX_LINES - 1);
        let mut out = String::new();
        for (i, line) in lines.iter().enumerate().take(last).skip(first - 1) {
            let _ = writeln!(out, "{:>5}  {line}", i + 1);
        }
        if last < lines.len() {
            let _ = writeln!(
                out,
                "… lines {}-{} not shown; read_file with start_line {}",
                last + 1,
                lines.len(),
                last + 1
            );
        }
        Ok(Answer {
            response: json!({"path": path, "total_lines": lines.len(), "content": out}),
            line: format!("read_file {path}:{first}-{last}"),
            effect: Effect::None,
        })
    }

    async fn list(&self, dir: &str) -> Result<Answer, StepError> {
        let prefix = dir.trim_matches('/');
        let files = self.ports.workspace.list_files(self.worktree).await?;
        let mut entries: Vec<String> = Vec::new();
        for file in &files {
            let rest = if prefix.is_empty() {
                file.as_str()
            } else if let Some(rest) = file.strip_prefix(prefix).and_then(|r| r.strip_prefix('/')) {
                rest
            } else {
                continue;
            };
            let entry = match rest.split_once('/') {
                Some((sub, _)) => format!("{sub}/"),
                None => rest.to_owned(),
            };
            if entries.last() != Some(&entry) && !entries.contains(&entry) {
                entries.push(entry);
            }
        }
        let shown = entries.len().min(LIST_MAX);
        let mut listing = entries[..shown].join("\n");
        if entries.len() > shown {
            let _ = write!(listing, "\n… and {} more", entries.len() - shown);
        }
        if entries.is_empty() {
            return Ok(refused(
                format!("list_dir {dir}: empty"),
                format!("no files under `{dir}`"),
            ));
        }
        Ok(Answer {
            response: json!({"entries": listing}),
            line: format!("list_dir {}", if dir.is_empty() { "." } else { dir }),
            effect: Effect::None,
        })
    }

    async fn symbol(&self, name: &str, definitions: bool) -> Answer {
        let tool = if definitions { "find_definition" } else { "find_references" };
        let Some(repo) = &self.repo else {
            return refused(
                format!("{tool} {name}: no index"),
                "the repository has no index; use search via read_file".into(),
            );
        };
        match self.ports.knowledge.lookup_symbol(repo, name, 20).await {
            Ok(found) => {
                let mut out = String::new();
                if definitions {
                    for d in &found.definitions {
                        let _ =
                            writeln!(out, "{}:{}-{}  {}", d.path, d.line, d.end_line, d.signature);
                    }
                } else {
                    for r in &found.references {
                        let _ = writeln!(out, "{}:{}", r.path, r.line);
                    }
                }
                let count =
                    if definitions { found.definitions.len() } else { found.references.len() };
                if out.is_empty() {
                    out = format!(
                        "no {} of `{name}` in the index",
                        if definitions { "definition" } else { "reference" }
                    );
                }
                Answer {
                    response: json!({"results": out}),
                    line: format!("{tool} {name}: {count}"),
                    effect: Effect::None,
                }
            }
            Err(error) => refused(format!("{tool} {name}: {error}"), error.to_string()),
        }
    }

    async fn edit(&self, path: &str, search: &str, replace: &str) -> Result<Answer, StepError> {
        let current = match self.ports.workspace.read_file(self.worktree, path).await {
            Ok(current) => current,
            Err(WorkspaceError::BadPath { path, why }) => {
                return Ok(refused(format!("edit {path}: refused"), format!("`{path}`: {why}")))
            }
            Err(other) => return Err(other.into()),
        };
        let new_text = match (current.as_deref(), search.is_empty()) {
            (None, true) => replace.to_owned(),
            (Some(_), true) => {
                return Ok(refused(
                    format!("edit {path}: refused (exists)"),
                    format!("`{path}` exists; an empty search only creates new files: give the text to replace"),
                ))
            }
            (None, false) => {
                return Ok(refused(
                    format!("edit {path}: refused (no such file)"),
                    format!("`{path}` does not exist; to create it, use an empty search"),
                ))
            }
            (Some(text), false) => match text.matches(search).count() {
                1 => text.replacen(search, replace, 1),
                0 => {
                    return Ok(refused(
                        format!("edit {path}: refused (not found)"),
                        format!("the search text does not occur in `{path}`; read_file it and copy the current text exactly, whitespace included"),
                    ))
                }
                n => {
                    return Ok(refused(
                        format!("edit {path}: refused (ambiguous)"),
                        format!("the search text occurs {n} times in `{path}`; include more surrounding lines so it occurs once"),
                    ))
                }
            },
        };
        let knowledge = &self.ports.knowledge;
        if let Some(line) = knowledge.syntax_error(path, &new_text) {
            let was_broken =
                current.as_deref().is_some_and(|old| knowledge.syntax_error(path, old).is_some());
            if !was_broken {
                return Ok(refused(
                    format!("edit {path}: refused (syntax error at line {line})"),
                    format!("the edit would leave `{path}` with a syntax error at line {line}; nothing was changed. Check indentation and brackets"),
                ));
            }
        }
        let write = FileWrite { path: path.to_owned(), content: Some(new_text) };
        self.ports.workspace.write_files(self.worktree, &[write]).await?;
        let verb = if current.is_none() { "created" } else { "edited" };
        Ok(Answer {
            response: json!({"ok": true, "result": format!("{verb} {path}")}),
            line: format!("edit {path}"),
            effect: Effect::Edited,
        })
    }

    async fn run_tests(&self) -> Result<Answer, StepError> {
        let report = match crate::test::run_suite(self.task, self.ports, self.worktree).await {
            Ok(report) => report,
            Err(StepError::Unusable { reason }) => {
                return Ok(refused("run_tests: no command".into(), reason))
            }
            Err(other) => return Err(other),
        };
        let summary = crate::test::summary_line(&report);
        let mut failures = String::new();
        for f in report.failures.iter().take(10) {
            let place = match (&f.file, f.line) {
                (Some(file), Some(line)) => format!(" ({file}:{line})"),
                _ => String::new(),
            };
            let _ = writeln!(failures, "- {}{place}: {}", f.name, f.message);
        }
        if failures.is_empty() && !report.failing_tests.is_empty() {
            failures = report.failing_tests.join(", ");
        }
        let response = json!({
            "passed": report.passed,
            "summary": summary,
            "failing": failures,
            "output_tail": tail(&report.output_tail, RUN_OUTPUT_BYTES),
        });
        Ok(Answer {
            response,
            line: format!("run_tests: {summary}"),
            effect: Effect::Tested(Box::new(report)),
        })
    }

    async fn run(&self, command: &str) -> Result<Answer, StepError> {
        let spec = RunSpec {
            workdir: self.worktree.path.clone(),
            command: command.to_owned(),
            env: vec![("CI".into(), "true".into())],
            timeout: RUN_TIMEOUT,
            output_limit: RUN_OUTPUT_BYTES * 4,
            network: Default::default(),
            cache: Some(self.task.id.to_string()),
        };
        let run = self.ports.sandbox.run(&spec).await?;
        let status = match (run.exit_code, &run.killed_by) {
            (_, Some(limit)) => format!("killed: {limit}"),
            (Some(code), None) => format!("exit code {code}"),
            (None, None) => "killed".to_owned(),
        };
        let response =
            json!({"status": status, "output_tail": tail(&run.output, RUN_OUTPUT_BYTES)});
        let shown: String = command.chars().take(60).collect();
        Ok(Answer { response, line: format!("run {shown:?}: {status}"), effect: Effect::Edited })
    }
}

/// An answer before it is wrapped with the call's id and name.
struct Answer {
    response: Value,
    line: String,
    effect: Effect,
}

fn refused(line: String, error: String) -> Answer {
    Answer { response: json!({"error": error}), line, effect: Effect::None }
}

fn missing(what: &str) -> Answer {
    refused(format!("bad arguments ({what} missing)"), format!("missing argument(s): {what}"))
}

/// The last `limit` bytes of `text` (on a character boundary), with a note when cut.
fn tail(text: &str, limit: usize) -> String {
    if text.len() <= limit {
        return text.to_owned();
    }
    let mut start = text.len() - limit;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    format!("… {} earlier bytes cut …\n{}", start, &text[start..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemas_are_flat_objects_with_their_required_fields_declared() {
        for spec in specs() {
            assert_eq!(spec.parameters["type"], "object", "{}", spec.name);
            let props = spec.parameters["properties"].as_object().unwrap();
            for required in spec.parameters["required"].as_array().unwrap() {
                assert!(props.contains_key(required.as_str().unwrap()), "{}", spec.name);
            }
            for (name, prop) in props {
                assert!(
                    prop["type"] != "object" && prop["type"] != "array",
                    "{}.{name} is nested",
                    spec.name
                );
            }
        }
    }

    #[test]
    fn tails_keep_the_end_and_say_what_was_cut() {
        assert_eq!(tail("short", 10), "short");
        let cut = tail("aaaaabbbbb", 5);
        assert!(cut.ends_with("bbbbb") && cut.contains("5 earlier bytes cut"), "{cut}");
        let multibyte = tail("ééééé", 3);
        assert!(multibyte.ends_with('é'), "{multibyte}");
    }
}
