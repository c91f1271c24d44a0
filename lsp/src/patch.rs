//! A task's proposed change (a unified diff against the task's base commit) re-based onto the text the
//! person has now: the open buffer's unsaved text, or the file on disk.
//!
//! Each hunk is looked up by its old lines, at the line the diff names or, when the buffer moved, at
//! the nearest place they occur; a hunk whose old lines are gone is a conflict, reported with the file
//! and the hunk, and nothing of the change is applied. The result is a list of line replacements per
//! file, trimmed to the lines that change, so an edit never rewrites lines the person touched.

use std::fmt;

/// What a diff does to one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// The file exists and changes.
    Modify,
    /// The file is new.
    Create,
    /// The file is deleted.
    Delete,
}

/// One hunk: its position in the old file and its old and new lines, each with its line ending.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hunk {
    /// 1-based first old line as the diff gives it (for an insertion, the line after which it goes).
    pub old_start: usize,
    /// Old lines, each ending in `\n` unless it was the file's last line without one.
    pub old: Vec<String>,
    /// New lines, likewise.
    pub new: Vec<String>,
}

/// One file of a diff.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilePatch {
    /// Repository-relative path.
    pub path: String,
    /// What happens to it.
    pub kind: FileKind,
    /// Its hunks, in order.
    pub hunks: Vec<Hunk>,
    /// True for a binary change, which cannot become a text edit.
    pub binary: bool,
}

/// Replace lines `start..end` (0-based, end exclusive) of the current text with `text`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineEdit {
    /// First replaced line.
    pub start: usize,
    /// One past the last replaced line (`start` for a pure insertion).
    pub end: usize,
    /// The new lines, with their line endings.
    pub text: String,
}

/// Why a change cannot be re-based onto the current text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RebaseError {
    /// A hunk's old lines are not in the current text.
    Conflict {
        /// The file.
        path: String,
        /// The hunk, 1-based.
        hunk: usize,
        /// The first line the hunk expected, to help the person find the place.
        expected: String,
    },
    /// Two hunks would change overlapping lines of the current text.
    Overlap {
        /// The file.
        path: String,
    },
    /// The diff could not be read.
    Malformed {
        /// What was wrong.
        reason: String,
    },
}

impl fmt::Display for RebaseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RebaseError::Conflict { path, hunk, expected } => write!(
                f,
                "{path} changed since the task started: hunk {hunk} expected `{}` and it is no \
                 longer there; undo your edits there, or reject this proposal and start a new task",
                expected.trim_end()
            ),
            RebaseError::Overlap { path } => write!(
                f,
                "{path} changed since the task started so that two parts of the change now overlap; \
                 reject this proposal and start a new task"
            ),
            RebaseError::Malformed { reason } => {
                write!(f, "the proposed change could not be read: {reason}")
            }
        }
    }
}

/// Splits a unified diff (as `git diff` writes it) into files.
///
/// # Errors
/// [`RebaseError::Malformed`] for a hunk header or hunk line that does not parse.
pub fn parse(diff: &str) -> Result<Vec<FilePatch>, RebaseError> {
    let mut files: Vec<FilePatch> = Vec::new();
    let mut lines = diff.split_inclusive('\n').peekable();
    while let Some(line) = lines.next() {
        let bare = line.trim_end_matches(['\n', '\r']);
        if let Some(rest) = bare.strip_prefix("diff --git ") {
            files.push(FilePatch {
                path: git_header_path(rest).unwrap_or_default(),
                kind: FileKind::Modify,
                hunks: Vec::new(),
                binary: false,
            });
            continue;
        }
        let Some(file) = files.last_mut() else { continue };
        if bare.starts_with("new file mode") {
            file.kind = FileKind::Create;
        } else if bare.starts_with("deleted file mode") {
            file.kind = FileKind::Delete;
        } else if bare.starts_with("Binary files ") || bare == "GIT binary patch" {
            file.binary = true;
        } else if let Some(path) = bare.strip_prefix("+++ ") {
            if path != "/dev/null" {
                file.path = strip_prefix_dir(&unquote(path));
            }
        } else if let Some(path) = bare.strip_prefix("--- ") {
            if path != "/dev/null" && file.path.is_empty() {
                file.path = strip_prefix_dir(&unquote(path));
            }
        } else if bare.starts_with("@@ ") {
            let (old_start, old_count, new_count) = hunk_header(bare)?;
            let mut hunk = Hunk { old_start, old: Vec::new(), new: Vec::new() };
            let (mut old_left, mut new_left) = (old_count, new_count);
            let mut last_tag = b' ';
            while old_left > 0 || new_left > 0 {
                let Some(body) = lines.next() else {
                    return Err(RebaseError::Malformed {
                        reason: format!("a hunk of {} ends early", file.path),
                    });
                };
                let (tag, text) = body.split_at(body.len().min(1));
                if tag != "\\" {
                    last_tag = tag.bytes().next().unwrap_or(b' ');
                }
                let text = if text.ends_with('\n') { text.to_owned() } else { format!("{text}\n") };
                match tag {
                    " " | "\n" => {
                        let text = if tag == "\n" { "\n".to_owned() } else { text };
                        hunk.old.push(text.clone());
                        hunk.new.push(text);
                        old_left = old_left.saturating_sub(1);
                        new_left = new_left.saturating_sub(1);
                    }
                    "-" => {
                        hunk.old.push(text);
                        old_left = old_left.saturating_sub(1);
                    }
                    "+" => {
                        hunk.new.push(text);
                        new_left = new_left.saturating_sub(1);
                    }
                    "\\" => no_newline(&mut hunk, last_tag),
                    _ => {
                        return Err(RebaseError::Malformed {
                            reason: format!("unexpected line in a hunk of {}: {body:?}", file.path),
                        })
                    }
                }
            }
            // A "\ No newline at end of file" marker may follow the hunk's last line.
            if lines.peek().is_some_and(|l| l.starts_with('\\')) {
                lines.next();
                no_newline(&mut hunk, last_tag);
            }
            file.hunks.push(hunk);
        }
    }
    Ok(files)
}

/// Applies a "\\ No newline at end of file" marker to the line it follows: the last old line (`-`),
/// the last new line (`+`), or both (a context line).
fn no_newline(hunk: &mut Hunk, after: u8) {
    let sides: [(&mut Vec<String>, bool); 2] =
        [(&mut hunk.old, after != b'+'), (&mut hunk.new, after != b'-')];
    for (side, marked) in sides {
        if let Some(last) = side.last_mut().filter(|_| marked) {
            if last.ends_with('\n') {
                last.pop();
            }
        }
    }
}

fn hunk_header(line: &str) -> Result<(usize, usize, usize), RebaseError> {
    let bad = || RebaseError::Malformed { reason: format!("bad hunk header {line:?}") };
    let mut parts = line.split_whitespace().skip(1);
    let old = parts.next().and_then(|p| p.strip_prefix('-')).ok_or_else(bad)?;
    let new = parts.next().and_then(|p| p.strip_prefix('+')).ok_or_else(bad)?;
    let range = |text: &str| -> Option<(usize, usize)> {
        match text.split_once(',') {
            Some((start, count)) => Some((start.parse().ok()?, count.parse().ok()?)),
            None => Some((text.parse().ok()?, 1)),
        }
    };
    let (old_start, old_count) = range(old).ok_or_else(bad)?;
    let (_, new_count) = range(new).ok_or_else(bad)?;
    Ok((old_start, old_count, new_count))
}

/// The path from `a/P b/P` (git writes the same path twice when renames are off).
fn git_header_path(rest: &str) -> Option<String> {
    if let Some(quoted) = rest.strip_prefix('"') {
        let end = quoted.find("\" ")? + 1;
        return Some(strip_prefix_dir(&unquote(&rest[..=end])));
    }
    let len = rest.len();
    let half = len.checked_sub(1)? / 2;
    rest.get(..half).map(strip_prefix_dir)
}

fn strip_prefix_dir(path: &str) -> String {
    path.strip_prefix("a/").or_else(|| path.strip_prefix("b/")).unwrap_or(path).to_owned()
}

/// Undoes git's C-style quoting of unusual paths (`"dir/na\303\257ve \"x\".py"`).
fn unquote(path: &str) -> String {
    let path = path.split('\t').next().unwrap_or(path);
    let Some(inner) = path.strip_prefix('"').and_then(|p| p.strip_suffix('"')) else {
        return path.to_owned();
    };
    let mut bytes = Vec::with_capacity(inner.len());
    let mut chars = inner.bytes().peekable();
    while let Some(b) = chars.next() {
        if b != b'\\' {
            bytes.push(b);
            continue;
        }
        match chars.next() {
            Some(b'n') => bytes.push(b'\n'),
            Some(b't') => bytes.push(b'\t'),
            Some(d @ b'0'..=b'7') => {
                let mut value = u32::from(d - b'0');
                for _ in 0..2 {
                    if let Some(&next @ b'0'..=b'7') = chars.peek() {
                        value = value * 8 + u32::from(next - b'0');
                        chars.next();
                    }
                }
                bytes.push(u8::try_from(value).unwrap_or(b'?'));
            }
            Some(other) => bytes.push(other),
            None => {}
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

fn same_line(a: &str, b: &str) -> bool {
    a.trim_end_matches(['\n', '\r']) == b.trim_end_matches(['\n', '\r'])
}

/// Where `hunk`'s old lines are in `current`, nearest to `expected` (0-based).
fn locate(current: &[&str], old: &[String], expected: usize) -> Option<usize> {
    if old.is_empty() {
        return Some(expected.min(current.len()));
    }
    let fits = |at: usize| {
        at + old.len() <= current.len()
            && old.iter().zip(&current[at..]).all(|(want, have)| same_line(want, have))
    };
    let last = current.len().checked_sub(old.len())?;
    let expected = expected.min(last);
    (0..=last.max(expected)).find_map(|distance| {
        let down = expected + distance;
        let up = expected.checked_sub(distance);
        if down <= last && fits(down) {
            Some(down)
        } else {
            up.filter(|&at| fits(at))
        }
    })
}

/// Re-bases one file's hunks onto `current` (the buffer or disk text) and returns the line edits,
/// trimmed to the lines that change, in order.
///
/// # Errors
/// [`RebaseError::Conflict`] when a hunk's old lines are no longer there, [`RebaseError::Overlap`] when
/// two hunks land on overlapping lines.
pub fn rebase(file: &FilePatch, current: &str) -> Result<Vec<LineEdit>, RebaseError> {
    let lines: Vec<&str> = current.split_inclusive('\n').collect();
    let crlf = lines.first().is_some_and(|l| l.ends_with("\r\n"));
    let mut edits: Vec<LineEdit> = Vec::new();
    let mut shift: isize = 0;
    for (i, hunk) in file.hunks.iter().enumerate() {
        // A hunk with old lines starts at old_start (1-based); a pure insertion goes after old_start.
        let named =
            if hunk.old.is_empty() { hunk.old_start } else { hunk.old_start.saturating_sub(1) };
        let expected = named.saturating_add_signed(shift);
        let Some(at) = locate(&lines, &hunk.old, expected) else {
            let expected =
                hunk.old.iter().find(|l| !l.trim().is_empty()).cloned().unwrap_or_default();
            return Err(RebaseError::Conflict { path: file.path.clone(), hunk: i + 1, expected });
        };
        shift = isize::try_from(at).unwrap_or(isize::MAX)
            - isize::try_from(named).unwrap_or(isize::MAX);
        let prefix = hunk.old.iter().zip(&hunk.new).take_while(|(a, b)| a == b).count();
        let max_suffix = hunk.old.len().min(hunk.new.len()) - prefix;
        let suffix = hunk
            .old
            .iter()
            .rev()
            .zip(hunk.new.iter().rev())
            .take(max_suffix)
            .take_while(|(a, b)| a == b)
            .count();
        let old_end = hunk.old.len() - suffix;
        let new_end = hunk.new.len() - suffix;
        if prefix == old_end && prefix == new_end {
            continue;
        }
        let mut text: String = hunk.new[prefix..new_end].concat();
        // The buffer's last replaced line ends a line while the diff's did not (the buffer gained a
        // final newline since): keep the buffer's.
        let replaced_last = at + old_end;
        if old_end > prefix
            && !hunk.old[old_end - 1].ends_with('\n')
            && lines.get(replaced_last - 1).is_some_and(|l| l.ends_with('\n'))
            && !text.is_empty()
            && !text.ends_with('\n')
        {
            text.push('\n');
        }
        if crlf {
            text = text.replace("\r\n", "\n").replace('\n', "\r\n");
        }
        let edit = LineEdit { start: at + prefix, end: at + old_end, text };
        if edits.last().is_some_and(|prev| prev.end > edit.start) {
            return Err(RebaseError::Overlap { path: file.path.clone() });
        }
        edits.push(edit);
    }
    Ok(edits)
}

/// The text of a new file from its hunks.
#[must_use]
pub fn created_text(file: &FilePatch) -> String {
    file.hunks.iter().flat_map(|h| h.new.iter().map(String::as_str)).collect()
}

/// Applies line edits to a text (for tests and previews).
#[must_use]
pub fn apply(current: &str, edits: &[LineEdit]) -> String {
    let lines: Vec<&str> = current.split_inclusive('\n').collect();
    let mut out = String::with_capacity(current.len());
    let mut at = 0;
    for edit in edits {
        out.extend(lines.get(at..edit.start).unwrap_or_default().iter().copied());
        out.push_str(&edit.text);
        at = edit.end;
    }
    out.extend(lines.get(at..).unwrap_or_default().iter().copied());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIFF: &str = "diff --git a/calc.py b/calc.py
index 1111111..2222222 100644
--- a/calc.py
+++ b/calc.py
@@ -1,5 +1,5 @@
 def add(a, b):
-    return a - b
+    return a + b
 
 
 def mul(a, b):
diff --git a/notes.txt b/notes.txt
new file mode 100644
index 0000000..3333333
--- /dev/null
+++ b/notes.txt
@@ -0,0 +1,2 @@
+one
+two
\\ No newline at end of file
diff --git a/old.txt b/old.txt
deleted file mode 100644
index 4444444..0000000
--- a/old.txt
+++ /dev/null
@@ -1 +0,0 @@
-gone
";

    const CALC: &str = "def add(a, b):\n    return a - b\n\n\ndef mul(a, b):\n    return a * b\n";

    #[test]
    fn parses_modified_created_and_deleted_files() {
        let files = parse(DIFF).unwrap();
        let kinds: Vec<_> = files.iter().map(|f| (f.path.as_str(), f.kind)).collect();
        assert_eq!(
            kinds,
            vec![
                ("calc.py", FileKind::Modify),
                ("notes.txt", FileKind::Create),
                ("old.txt", FileKind::Delete)
            ]
        );
        assert_eq!(created_text(&files[1]), "one\ntwo");
    }

    #[test]
    fn an_unchanged_buffer_gets_only_the_changed_line() {
        let files = parse(DIFF).unwrap();
        let edits = rebase(&files[0], CALC).unwrap();
        assert_eq!(edits, vec![LineEdit { start: 1, end: 2, text: "    return a + b\n".into() }]);
        assert_eq!(apply(CALC, &edits), CALC.replace("a - b", "a + b"));
    }

    #[test]
    fn a_buffer_edited_above_the_hunk_is_rebased() {
        let files = parse(DIFF).unwrap();
        let moved = format!("import os\n# header\n{CALC}");
        let edits = rebase(&files[0], &moved).unwrap();
        assert_eq!(edits[0].start, 3);
        assert_eq!(apply(&moved, &edits), moved.replace("a - b", "a + b"));
    }

    #[test]
    fn a_buffer_that_changed_the_hunk_is_a_conflict() {
        let files = parse(DIFF).unwrap();
        let changed = CALC.replace("return a - b", "return b - a");
        let error = rebase(&files[0], &changed).unwrap_err();
        assert_eq!(
            error.to_string(),
            "calc.py changed since the task started: hunk 1 expected `def add(a, b):` and it is no \
             longer there; undo your edits there, or reject this proposal and start a new task"
        );
    }

    #[test]
    fn crlf_buffers_keep_their_line_endings_and_quoted_paths_unquote() {
        let files = parse(DIFF).unwrap();
        let crlf = CALC.replace('\n', "\r\n");
        let edits = rebase(&files[0], &crlf).unwrap();
        assert_eq!(edits[0].text, "    return a + b\r\n");
        assert_eq!(unquote("\"a/na\\303\\257ve \\\"x\\\".py\""), "a/naïve \"x\".py");
        assert_eq!(git_header_path("a/x y.py b/x y.py").as_deref(), Some("x y.py"));
    }

    #[test]
    fn a_missing_final_newline_is_kept() {
        let diff = "diff --git a/f b/f\n--- a/f\n+++ b/f\n@@ -1,2 +1,2 @@\n a\n-b\n\\ No newline at end of file\n+c\n\\ No newline at end of file\n";
        let files = parse(diff).unwrap();
        assert_eq!(files[0].hunks[0].old, vec!["a\n".to_owned(), "b".to_owned()]);
        let edits = rebase(&files[0], "a\nb").unwrap();
        assert_eq!(apply("a\nb", &edits), "a\nc");
        // The buffer gained a final newline meanwhile: it stays.
        let edits = rebase(&files[0], "a\nb\n").unwrap();
        assert_eq!(apply("a\nb\n", &edits), "a\nc\n");
    }

    #[test]
    fn a_truncated_hunk_is_malformed() {
        let error =
            parse("diff --git a/f b/f\n--- a/f\n+++ b/f\n@@ -1,3 +1,3 @@\n a\n").unwrap_err();
        assert!(matches!(error, RebaseError::Malformed { .. }), "{error:?}");
    }
}
