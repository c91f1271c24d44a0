//! Failure messages as `generate` should see them: a few lines, bounded in bytes, and the
//! `file:line` locations runners print, read the same way for every runner.

/// Lines kept of one failure's message.
const MAX_LINES: usize = 12;
/// Bytes kept of one failure's message.
const MAX_BYTES: usize = 1500;

/// `text` without leading and trailing blank lines, each line's trailing spaces, and everything
/// past [`MAX_LINES`] lines or [`MAX_BYTES`] bytes (a cut ends with `…`).
pub(crate) fn trim(text: &str) -> String {
    let lines: Vec<&str> = text.lines().map(str::trim_end).collect();
    let first = lines.iter().position(|l| !l.is_empty()).unwrap_or(lines.len());
    let last = lines.iter().rposition(|l| !l.is_empty()).map_or(first, |i| i + 1);
    let kept = &lines[first..last];
    let mut out = kept[..kept.len().min(MAX_LINES)].join("\n");
    let mut cut = kept.len() > MAX_LINES;
    if out.len() > MAX_BYTES {
        let mut end = MAX_BYTES;
        while !out.is_char_boundary(end) {
            end -= 1;
        }
        out.truncate(end);
        cut = true;
    }
    if cut {
        out.push('…');
    }
    out
}

/// A source location `path:line` or `path:line:column` at the start of `text` (what follows the
/// location is ignored). The path must look like a file (it has an extension).
pub(crate) fn location(text: &str) -> Option<(String, u32)> {
    let mut parts = text.splitn(3, ':');
    let path = parts.next()?.trim();
    let line: u32 = parts.next()?.trim().parse().ok()?;
    let name = path.rsplit('/').next().unwrap_or(path);
    let looks_like_file = !path.is_empty()
        && !path.contains(char::is_whitespace)
        && name.contains('.')
        && !name.ends_with('.');
    looks_like_file.then(|| (path.to_owned(), line))
}

/// A location at the end of `text` inside parentheses: `at f (src/a.test.js:8:21)`.
pub(crate) fn location_in_parens(text: &str) -> Option<(String, u32)> {
    let inner = text.trim_end().strip_suffix(')')?;
    let open = inner.rfind('(')?;
    location(&inner[open + 1..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trims_blank_edges_and_long_messages() {
        assert_eq!(trim("\n\n  a  \nb\n\n"), "  a\nb");
        let many: String = (0..20).map(|i| format!("line {i}\n")).collect();
        let t = trim(&many);
        assert_eq!(t.lines().count(), MAX_LINES);
        assert!(t.ends_with("line 11…"), "{t}");
        let long = "é".repeat(MAX_BYTES);
        let t = trim(&long);
        assert!(t.len() <= MAX_BYTES + '…'.len_utf8() && t.ends_with('…'));
        assert_eq!(trim(""), "");
    }

    #[test]
    fn reads_locations() {
        assert_eq!(location("src/lib.rs:20:9:"), Some(("src/lib.rs".into(), 20)));
        assert_eq!(location("calc_test.go:13: got 4"), Some(("calc_test.go".into(), 13)));
        assert_eq!(
            location("tests/test_calc.py:11: AssertionError"),
            Some(("tests/test_calc.py".into(), 11))
        );
        assert_eq!(location("Error: boom"), None);
        assert_eq!(location("note: 12"), None);
        assert_eq!(location("some text:12"), None);
        assert_eq!(
            location_in_parens("      at Object.toBe (src/calc.test.js:8:21)"),
            Some(("src/calc.test.js".into(), 8))
        );
        assert_eq!(location_in_parens("at foo (native)"), None);
    }
}
