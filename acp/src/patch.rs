//! A task's patch (git's unified diff) as per-file changes that can be re-based onto the text the
//! editor shows now.
//!
//! The patch was made against the task's base commit; the person may have edited the files since
//! (saved or not). Each hunk is therefore looked for where the patch says, then at the nearest place
//! its old lines match exactly; a hunk that matches nowhere refuses the whole change, named, so
//! nothing is half-written.

use std::path::{Path, PathBuf};

/// What happens to one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FileChange {
    /// A new file with this content.
    Create { path: String, text: String },
    /// An existing file, changed hunk by hunk (and possibly moved).
    Modify { from: String, to: String, hunks: Vec<Hunk> },
    /// An existing file, removed.
    Delete { path: String },
}

impl FileChange {
    /// The repository-relative path the change leaves (or removes).
    pub(crate) fn path(&self) -> &str {
        match self {
            FileChange::Create { path, .. } | FileChange::Delete { path } => path,
            FileChange::Modify { to, .. } => to,
        }
    }

    /// The repository-relative path whose current text the change starts from, if any.
    pub(crate) fn source(&self) -> Option<&str> {
        match self {
            FileChange::Create { .. } => None,
            FileChange::Modify { from, .. } => Some(from),
            FileChange::Delete { path } => Some(path),
        }
    }
}

/// One hunk: the lines it expects (context and removed) and the lines it leaves (context and added),
/// each with its line ending, so a missing final newline survives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Hunk {
    /// 1-based first line of `old` in the base text (0 for an empty file).
    pub(crate) old_start: usize,
    pub(crate) old: Vec<String>,
    pub(crate) new: Vec<String>,
}

/// Why a patch cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum PatchError {
    #[error("the patch is not a unified diff Cadre can read ({0}); apply it with `cadre apply`")]
    Unreadable(String),
    #[error(
        "{path} changed since the task started: hunk {hunk} (base line {line}) no longer matches; \
         apply the change with `cadre apply` after resolving, or reject it"
    )]
    Conflict { path: String, hunk: usize, line: usize },
}

/// Splits a git unified diff into file changes.
pub(crate) fn parse(patch: &str) -> Result<Vec<FileChange>, PatchError> {
    let lines: Vec<&str> = patch.split_inclusive('\n').collect();
    let mut changes = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        if !lines[i].starts_with("--- ") {
            if lines[i].starts_with("Binary files ") || lines[i].starts_with("GIT binary patch") {
                return Err(PatchError::Unreadable(format!("binary change: {}", lines[i].trim())));
            }
            i += 1;
            continue;
        }
        let old = header_path(lines[i], "--- ");
        let Some(new_line) = lines.get(i + 1).filter(|l| l.starts_with("+++ ")) else {
            return Err(PatchError::Unreadable(format!("no `+++` line after {}", lines[i].trim())));
        };
        let new = header_path(new_line, "+++ ");
        i += 2;
        let mut hunks = Vec::new();
        while i < lines.len() && lines[i].starts_with("@@ ") {
            let (hunk, next) = read_hunk(&lines, i)?;
            hunks.push(hunk);
            i = next;
        }
        changes.push(match (old, new) {
            (None, Some(path)) => {
                let text = hunks.iter().flat_map(|h| h.new.iter().cloned()).collect();
                FileChange::Create { path, text }
            }
            (Some(path), None) => FileChange::Delete { path },
            (Some(from), Some(to)) => FileChange::Modify { from, to, hunks },
            (None, None) => {
                return Err(PatchError::Unreadable(
                    "a file goes from /dev/null to /dev/null".into(),
                ))
            }
        });
    }
    Ok(changes)
}

/// `a/src/x.rs` → `src/x.rs`; `/dev/null` → `None`.
fn header_path(line: &str, prefix: &str) -> Option<String> {
    let raw = line.strip_prefix(prefix).unwrap_or(line).trim_end_matches(['\n', '\r']);
    // git appends a tab and a timestamp in some modes.
    let raw = raw.split('\t').next().unwrap_or(raw);
    if raw == "/dev/null" {
        return None;
    }
    let path = raw.strip_prefix("a/").or_else(|| raw.strip_prefix("b/")).unwrap_or(raw);
    Some(path.to_owned())
}

fn read_hunk(lines: &[&str], start: usize) -> Result<(Hunk, usize), PatchError> {
    let header = lines[start];
    let old_start = header
        .trim_start_matches("@@ -")
        .split([',', ' '])
        .next()
        .and_then(|n| n.parse::<usize>().ok())
        .ok_or_else(|| PatchError::Unreadable(format!("bad hunk header {}", header.trim())))?;
    let mut hunk = Hunk { old_start, old: Vec::new(), new: Vec::new() };
    let mut i = start + 1;
    while i < lines.len() {
        let line = lines[i];
        let Some(kind) = line.chars().next() else { break };
        let body = line.get(1..).unwrap_or("").to_owned();
        match kind {
            ' ' => {
                hunk.old.push(body.clone());
                hunk.new.push(body);
            }
            '-' if !line.starts_with("--- ") => hunk.old.push(body),
            '+' if !line.starts_with("+++ ") => hunk.new.push(body),
            '\\' => {
                // "\ No newline at end of file" applies to the line just before it.
                let previous = lines.get(i - 1).and_then(|l| l.chars().next());
                let target = if previous == Some('+') { &mut hunk.new } else { &mut hunk.old };
                strip_newline(target);
                if previous == Some(' ') {
                    strip_newline(&mut hunk.new);
                }
            }
            '\n' | '\r' => {
                // An empty context line whose leading space an editor trimmed.
                hunk.old.push(line.to_owned());
                hunk.new.push(line.to_owned());
            }
            _ => break,
        }
        i += 1;
    }
    Ok((hunk, i))
}

fn strip_newline(lines: &mut [String]) {
    if let Some(last) = lines.last_mut() {
        while last.ends_with('\n') || last.ends_with('\r') {
            last.pop();
        }
    }
}

/// Applies `hunks` to `text` (the file as the editor shows it now), all or nothing.
pub(crate) fn apply(path: &str, text: &str, hunks: &[Hunk]) -> Result<String, PatchError> {
    let mut lines: Vec<String> = text.split_inclusive('\n').map(str::to_owned).collect();
    // Hunks are in file order; `shift` tracks how earlier hunks moved the later ones.
    let mut shift: isize = 0;
    let mut floor = 0;
    for (n, hunk) in hunks.iter().enumerate() {
        let wanted = hunk.old_start.saturating_sub(1).saturating_add_signed(shift);
        let at = find(&lines, &hunk.old, wanted, floor).ok_or_else(|| PatchError::Conflict {
            path: path.to_owned(),
            hunk: n + 1,
            line: hunk.old_start,
        })?;
        lines.splice(at..at + hunk.old.len(), hunk.new.iter().cloned());
        floor = at + hunk.new.len();
        #[allow(clippy::cast_possible_wrap)]
        {
            shift += hunk.new.len() as isize - hunk.old.len() as isize;
            shift += at as isize - wanted as isize;
        }
    }
    Ok(lines.concat())
}

/// The index nearest `wanted` (not before `floor`) where `needle` matches `lines` exactly.
fn find(lines: &[String], needle: &[String], wanted: usize, floor: usize) -> Option<usize> {
    let fits = |at: usize| at >= floor && lines.get(at..at + needle.len()) == Some(needle);
    if needle.is_empty() {
        return Some(wanted.clamp(floor, lines.len().max(floor)));
    }
    let last = lines.len().checked_sub(needle.len())?;
    (0..=last.max(wanted))
        .flat_map(|d| [wanted.checked_sub(d), wanted.checked_add(d).filter(|_| d > 0)])
        .flatten()
        .filter(|&at| at <= last)
        .find(|&at| fits(at))
}

/// The absolute path of a repository-relative one.
pub(crate) fn absolute(repo: &Path, relative: &str) -> PathBuf {
    repo.join(relative)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PATCH: &str = "diff --git a/calc.py b/calc.py
index 1111111..2222222 100644
--- a/calc.py
+++ b/calc.py
@@ -1,3 +1,3 @@
 def add(a, b):
-    return a - b
+    return a + b
 
@@ -8,2 +8,3 @@ def mul(a, b):
 def div(a, b):
     return a / b
+# end
\\ No newline at end of file
diff --git a/new.txt b/new.txt
new file mode 100644
--- /dev/null
+++ b/new.txt
@@ -0,0 +1,2 @@
+one
+two
diff --git a/old.txt b/old.txt
deleted file mode 100644
--- a/old.txt
+++ /dev/null
@@ -1 +0,0 @@
-gone
";

    const CALC: &str = "def add(a, b):\n    return a - b\n\ndef sub(a, b):\n    return a - b\n\n\
                        def mul(a, b):\ndef div(a, b):\n    return a / b\n";

    #[test]
    fn a_git_diff_splits_into_creates_modifies_and_deletes() {
        let changes = parse(PATCH).unwrap();
        let paths: Vec<(&str, Option<&str>)> =
            changes.iter().map(|c| (c.path(), c.source())).collect();
        assert_eq!(
            paths,
            [("calc.py", Some("calc.py")), ("new.txt", None), ("old.txt", Some("old.txt"))]
        );
        assert_eq!(
            changes[1],
            FileChange::Create { path: "new.txt".into(), text: "one\ntwo\n".into() }
        );
    }

    #[test]
    fn hunks_apply_where_the_patch_says_and_keep_a_missing_final_newline() {
        let FileChange::Modify { hunks, .. } = &parse(PATCH).unwrap()[0] else { panic!() };
        let out = apply("calc.py", CALC, hunks).unwrap();
        assert!(out.starts_with("def add(a, b):\n    return a + b\n\ndef sub"), "{out}");
        assert!(out.ends_with("    return a / b\n# end"), "{out:?}");
    }

    #[test]
    fn hunks_follow_lines_the_person_added_above_them() {
        let FileChange::Modify { hunks, .. } = &parse(PATCH).unwrap()[0] else { panic!() };
        let edited = format!("# header\n# more\n{CALC}");
        let out = apply("calc.py", &edited, hunks).unwrap();
        assert!(out.starts_with("# header\n# more\ndef add(a, b):\n    return a + b\n"), "{out}");
        assert!(out.ends_with("# end"), "{out:?}");
    }

    #[test]
    fn a_hunk_whose_lines_changed_refuses_the_file_and_names_it() {
        let FileChange::Modify { hunks, .. } = &parse(PATCH).unwrap()[0] else { panic!() };
        let edited = CALC.replace("return a - b\n\ndef sub", "return a * b\n\ndef sub");
        let error = apply("calc.py", &edited, hunks).unwrap_err();
        assert_eq!(error, PatchError::Conflict { path: "calc.py".into(), hunk: 1, line: 1 });
        assert!(error.to_string().contains("calc.py changed since the task started"));
    }

    #[test]
    fn binary_changes_are_refused() {
        let error = parse("diff --git a/x.png b/x.png\nBinary files a/x.png and b/x.png differ\n")
            .unwrap_err();
        assert!(matches!(error, PatchError::Unreadable(_)), "{error}");
    }
}
