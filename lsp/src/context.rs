//! What the editor knows, turned into a task's goal: the file, the range, the diagnostics and the
//! buffer's unsaved text; and the cheap look-arounds that decide which code actions make sense (a
//! TODO comment on the line, a function around the cursor).
//!
//! Every scan here is bounded in lines, so offering code actions costs the same on a file of a
//! hundred lines and on one of a million.

use tower_lsp::lsp_types::{Diagnostic, DiagnosticSeverity, Range};

use crate::agents::Intent;
use crate::documents::Document;

/// Lines scanned upward from the cursor for the start of a function.
const UP_SCAN: usize = 400;
/// Lines scanned downward from a function's start for its end.
const DOWN_SCAN: usize = 2_000;
/// Most bytes of the open file's text put in a goal; larger files are cut to a window around the target.
const FILE_BYTES: usize = 48 * 1024;
/// Lines kept on each side of the target when a file is cut.
const WINDOW_LINES: usize = 200;
/// Most bytes of each other unsaved buffer put in a goal, and how many such buffers.
const OTHER_BYTES: usize = 16 * 1024;
const OTHER_BUFFERS: usize = 3;

/// A function found around the cursor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Function {
    /// Its name.
    pub name: String,
    /// First line (0-based).
    pub start: usize,
    /// Last line (0-based, inclusive); equals `start` until [`function_end`] has looked.
    pub end: usize,
}

/// The text of a TODO or FIXME comment on one of the lines of `range` (at most a few lines looked at).
#[must_use]
pub fn todo_in(doc: &Document, range: Range) -> Option<(usize, String)> {
    let first = range.start.line as usize;
    let last = (range.end.line as usize).min(first + 20);
    (first..=last).find_map(|line| {
        let text = doc.line(line)?;
        let at = text.find("TODO").or_else(|| text.find("FIXME"))?;
        let before = &text[..at];
        let is_comment = ["//", "#", "--", "/*", "*", ";", "<!--", "%"]
            .iter()
            .any(|marker| before.trim_start().starts_with(marker) || before.contains(marker));
        is_comment.then(|| (line, text[at..].trim().to_owned()))
    })
}

/// Words that may precede a function keyword.
const MODIFIERS: &[&str] = &[
    "pub",
    "pub(crate)",
    "pub(super)",
    "async",
    "export",
    "default",
    "static",
    "public",
    "private",
    "protected",
    "const",
    "unsafe",
    "extern",
    "inline",
    "override",
    "final",
    "abstract",
];
/// Keywords that start a function.
const KEYWORDS: &[&str] = &["fn", "def", "function", "func"];

/// The name of the function a line starts, if it starts one.
fn starts_function(line: &str) -> Option<String> {
    let mut words = line.split_whitespace().peekable();
    while words.peek().is_some_and(|w| MODIFIERS.contains(w) || w.starts_with("extern")) {
        words.next();
    }
    let keyword = words.next()?;
    if !KEYWORDS.contains(&keyword) {
        return None;
    }
    let rest = words.next()?;
    // Go methods: `func (r *T) Name(`.
    let rest = if keyword == "func" && rest.starts_with('(') {
        line.split_once(')').map(|(_, after)| after.trim_start())?
    } else {
        rest
    };
    let name: String =
        rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_' || *c == '$').collect();
    (!name.is_empty()).then_some(name)
}

fn indent(line: &str) -> usize {
    line.len() - line.trim_start().len()
}

/// The function whose header is at or above `line` and that plausibly contains it (its header is
/// indented no deeper than the line). Looks at most [`UP_SCAN`] lines up.
#[must_use]
pub fn function_at(doc: &Document, line: usize) -> Option<Function> {
    let here = doc.line(line)?;
    let limit = if here.trim().is_empty() { usize::MAX } else { indent(here) };
    let lowest = line.saturating_sub(UP_SCAN);
    (lowest..=line).rev().find_map(|at| {
        let text = doc.line(at)?;
        if at != line && indent(text) > limit {
            return None;
        }
        starts_function(text).map(|name| Function { name, start: at, end: at })
    })
}

/// Finds where a function ends: the line closing its braces, or, for indentation-scoped languages,
/// the last line indented deeper than its header. Looks at most [`DOWN_SCAN`] lines down.
#[must_use]
pub fn function_end(doc: &Document, function: &Function) -> Function {
    let Some(header) = doc.line(function.start) else { return function.clone() };
    let header_indent = indent(header);
    let last = (function.start + DOWN_SCAN).min(doc.line_count().saturating_sub(1));
    let braces = header.contains('{')
        || doc.line(function.start + 1).is_some_and(|l| l.trim_start().starts_with('{'))
        || !header.trim_end().ends_with(':');
    let mut end = function.start;
    if braces {
        let mut depth = 0i64;
        let mut opened = false;
        for at in function.start..=last {
            let text = doc.line(at).unwrap_or_default();
            for c in text.chars() {
                match c {
                    '{' => {
                        depth += 1;
                        opened = true;
                    }
                    '}' => depth -= 1,
                    _ => {}
                }
            }
            end = at;
            if opened && depth <= 0 {
                break;
            }
        }
    } else {
        for at in function.start + 1..=last {
            let text = doc.line(at).unwrap_or_default();
            if text.trim().is_empty() {
                continue;
            }
            if indent(text) <= header_indent {
                break;
            }
            end = at;
        }
    }
    Function { end, ..function.clone() }
}

/// What a task is about: a place in a file and the text there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The file, relative to its repository when known.
    pub file: String,
    /// The language id the editor gave.
    pub language: String,
    /// First line, 0-based.
    pub first: usize,
    /// Last line, 0-based, inclusive.
    pub last: usize,
    /// How to name it in words: "function `add`", "the selection", "line 8".
    pub label: String,
    /// The text of the lines.
    pub text: String,
}

/// Everything a goal is made of.
#[derive(Debug, Clone)]
pub struct GoalInput<'a> {
    /// What was asked.
    pub intent: Intent,
    /// Where.
    pub target: &'a Target,
    /// The person's own words (a refactoring's aim, a planned change).
    pub wish: Option<&'a str>,
    /// Diagnostics at the place.
    pub diagnostics: &'a [Diagnostic],
    /// The TODO text, for [`Intent::Todo`].
    pub todo: Option<&'a str>,
    /// The open file's text as the editor has it.
    pub buffer: Option<&'a str>,
    /// Whether that text has unsaved changes.
    pub unsaved: bool,
    /// Other buffers with unsaved changes: (path, text).
    pub others: &'a [(String, String)],
}

/// The first line of a goal: the instruction, in the person's terms.
fn instruction(input: &GoalInput<'_>) -> String {
    let t = input.target;
    let at = if t.first == t.last {
        format!("{} line {}", t.file, t.first + 1)
    } else {
        format!("{} lines {}-{}", t.file, t.first + 1, t.last + 1)
    };
    match input.intent {
        Intent::Fix => {
            let problem = input
                .diagnostics
                .first()
                .map_or_else(|| "the problem".to_owned(), |d| one_line(&d.message));
            format!("Fix this problem reported at {at}: {problem}")
        }
        Intent::Todo => format!(
            "Do what this comment at {at} asks: {}. Remove the comment once it is done.",
            input.todo.unwrap_or("the TODO")
        ),
        Intent::Implement => format!("Implement {} in {at}.", t.label),
        Intent::Tests => format!(
            "Write tests for {} in {at}, following the repository's existing tests; they must pass.",
            t.label
        ),
        Intent::Explain => format!(
            "Explain what {} in {at} does, for a person reading it. Change no file: put the \
             explanation in the plan's summary and steps.",
            t.label
        ),
        Intent::Refactor => format!(
            "Refactor {} in {at}: {}. Keep its behaviour, and the tests passing.",
            t.label,
            input.wish.unwrap_or("make it clearer and simpler")
        ),
        Intent::Plan => format!(
            "{} (asked from {at})",
            input.wish.unwrap_or("Improve the code here").trim_end_matches('.')
        ),
    }
}

fn one_line(text: &str) -> String {
    let line: String = text.lines().map(str::trim).collect::<Vec<_>>().join(" ");
    line.chars().take(300).collect()
}

fn severity(d: &Diagnostic) -> &'static str {
    match d.severity {
        Some(DiagnosticSeverity::ERROR) => "error",
        Some(DiagnosticSeverity::WARNING) => "warning",
        Some(DiagnosticSeverity::INFORMATION) => "info",
        Some(DiagnosticSeverity::HINT) => "hint",
        _ => "problem",
    }
}

/// The goal text: the instruction on the first line, then the editor's context in sections.
#[must_use]
pub fn goal(input: &GoalInput<'_>) -> String {
    let t = input.target;
    let mut out = instruction(input);
    out.push_str("\n\nContext from the editor:\n");
    out.push_str(&format!(
        "- file: {} ({}), lines {}-{} (1-based)\n",
        t.file,
        t.language,
        t.first + 1,
        t.last + 1
    ));
    if !input.diagnostics.is_empty() {
        out.push_str("- diagnostics there:\n");
        for d in input.diagnostics.iter().take(10) {
            let source = d.source.as_deref().map(|s| format!(" [{s}]")).unwrap_or_default();
            out.push_str(&format!(
                "  - line {}: {}: {}{source}\n",
                d.range.start.line + 1,
                severity(d),
                one_line(&d.message)
            ));
        }
    }
    out.push_str(&format!("- {} ({}):\n```\n{}\n```\n", t.label, t.file, t.text.trim_end()));
    if let Some(buffer) = input.buffer {
        let note = if input.unsaved {
            "as open in the editor, with unsaved changes (the repository's last commit differs)"
        } else {
            "as open in the editor"
        };
        out.push_str(&format!("- the file {note}:\n```\n{}\n```\n", window(buffer, t).trim_end()));
    }
    for (path, text) in input.others.iter().take(OTHER_BUFFERS) {
        let text: String = if text.len() > OTHER_BYTES {
            let cut = (0..=OTHER_BYTES).rev().find(|&i| text.is_char_boundary(i)).unwrap_or(0);
            format!("{}\n… (cut)", &text[..cut])
        } else {
            text.clone()
        };
        out.push_str(&format!("- unsaved buffer {path}:\n```\n{}\n```\n", text.trim_end()));
    }
    out
}

/// The buffer, or a window of lines around the target when it is too large.
fn window(buffer: &str, t: &Target) -> String {
    if buffer.len() <= FILE_BYTES {
        return buffer.to_owned();
    }
    let lines: Vec<&str> = buffer.lines().collect();
    let from = t.first.saturating_sub(WINDOW_LINES);
    let to = (t.last + WINDOW_LINES + 1).min(lines.len());
    let mut out = format!("… (lines {}-{} of {})\n", from + 1, to, lines.len());
    for line in lines.get(from..to).unwrap_or_default() {
        if out.len() > FILE_BYTES {
            out.push_str("… (cut)\n");
            break;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower_lsp::lsp_types::Position;

    const PY: &str = "import os\n\n\ndef add(a, b):\n    # TODO: handle None\n    return a - b\n\n\nclass C:\n    def m(self):\n        pass\n";
    const RS: &str = "struct S;\n\npub async fn run(x: u32) -> u32 {\n    let y = {\n        x + 1\n    };\n    y\n}\n\nfn other() {}\n";

    fn range(line: u32) -> Range {
        Range::new(Position::new(line, 0), Position::new(line, 0))
    }

    #[test]
    fn finds_todo_comments_and_not_todo_in_code() {
        let doc = Document::new(1, "python", PY.to_owned());
        assert_eq!(todo_in(&doc, range(4)), Some((4, "TODO: handle None".to_owned())));
        assert_eq!(todo_in(&doc, range(5)), None);
        let code = Document::new(1, "rust", "let TODO = 1;\n".to_owned());
        assert_eq!(todo_in(&code, range(0)), None);
    }

    #[test]
    fn finds_the_enclosing_function_and_its_end() {
        let doc = Document::new(1, "python", PY.to_owned());
        let f = function_at(&doc, 5).unwrap();
        assert_eq!((f.name.as_str(), f.start), ("add", 3));
        assert_eq!(function_end(&doc, &f).end, 5);
        assert_eq!(function_at(&doc, 10).unwrap().name, "m");
        assert_eq!(function_at(&doc, 0), None);

        let doc = Document::new(1, "rust", RS.to_owned());
        let f = function_at(&doc, 4).unwrap();
        assert_eq!((f.name.as_str(), f.start), ("run", 2));
        assert_eq!(function_end(&doc, &f).end, 7);
        let go = Document::new(1, "go", "func (r *T) Name() {\n}\n".to_owned());
        assert_eq!(function_at(&go, 1).unwrap().name, "Name");
    }

    #[test]
    fn a_goal_carries_the_instruction_and_the_editor_context() {
        let target = Target {
            file: "calc.py".into(),
            language: "python".into(),
            first: 5,
            last: 5,
            label: "line 6".into(),
            text: "    return a - b".into(),
        };
        let diagnostic = Diagnostic {
            range: range(5),
            severity: Some(DiagnosticSeverity::ERROR),
            message: "AssertionError: -1 != 5".into(),
            source: Some("unittest".into()),
            ..Diagnostic::default()
        };
        let goal = goal(&GoalInput {
            intent: Intent::Fix,
            target: &target,
            wish: None,
            diagnostics: &[diagnostic],
            todo: None,
            buffer: Some("def add(a, b):\n    return a - b\n"),
            unsaved: true,
            others: &[],
        });
        let expected = "Fix this problem reported at calc.py line 6: AssertionError: -1 != 5\n\n\
            Context from the editor:\n\
            - file: calc.py (python), lines 6-6 (1-based)\n\
            - diagnostics there:\n  - line 6: error: AssertionError: -1 != 5 [unittest]\n\
            - line 6 (calc.py):\n```\n    return a - b\n```\n\
            - the file as open in the editor, with unsaved changes (the repository's last commit differs):\n\
            ```\ndef add(a, b):\n    return a - b\n```\n";
        assert_eq!(goal, expected);
    }
}
