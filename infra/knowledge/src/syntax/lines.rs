//! Line arithmetic over a file's text, and the line-window chunks used where syntax is not available.

use cadre_domain::ports::knowledge::ChunkKind;

/// The most a chunk may hold: enough for a long function, small enough to embed and to show.
pub(crate) const MAX_CHUNK_LINES: u32 = 120;
/// The most bytes a chunk may hold.
pub(crate) const MAX_CHUNK_BYTES: usize = 6000;
/// Lines of one window when a file is cut without syntax.
const WINDOW_LINES: u32 = 60;

/// Byte offsets of line starts.
pub(crate) struct Lines {
    starts: Vec<usize>,
    len: usize,
}

impl Lines {
    pub(crate) fn new(text: &str) -> Lines {
        let mut starts = Vec::with_capacity(text.len() / 32 + 1);
        starts.push(0);
        for (i, b) in text.bytes().enumerate() {
            if b == b'\n' && i + 1 < text.len() {
                starts.push(i + 1);
            }
        }
        Lines { starts, len: text.len() }
    }

    /// Number of lines (a final newline does not start another).
    pub(crate) fn count(&self) -> u32 {
        if self.len == 0 {
            0
        } else {
            u32::try_from(self.starts.len()).unwrap_or(u32::MAX)
        }
    }

    /// Byte range of lines `first..=last` (1-based), newline of the last included.
    pub(crate) fn byte_range(&self, first: u32, last: u32) -> (usize, usize) {
        let start = self.starts.get(first.saturating_sub(1) as usize).copied().unwrap_or(self.len);
        let end = self.starts.get(last as usize).copied().unwrap_or(self.len);
        (start, end.max(start))
    }

    pub(crate) fn bytes(&self, first: u32, last: u32) -> usize {
        let (s, e) = self.byte_range(first, last);
        e - s
    }

    /// Whether lines `first..=last` fit one chunk.
    pub(crate) fn fits(&self, first: u32, last: u32) -> bool {
        last + 1 - first <= MAX_CHUNK_LINES && self.bytes(first, last) <= MAX_CHUNK_BYTES
    }

    /// The last line ≥ `first` such that `first..=line` fits, at least `first` itself.
    pub(crate) fn fill(&self, first: u32, limit: u32) -> u32 {
        let mut last = first;
        while last < limit && self.fits(first, last + 1) {
            last += 1;
        }
        last
    }
}

/// A chunk as lines, before its text is cut out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Span {
    pub(crate) kind: ChunkKind,
    pub(crate) symbol: Option<String>,
    pub(crate) start_line: u32,
    pub(crate) end_line: u32,
    pub(crate) context: Option<String>,
}

/// Cuts `first..=last` into windows of at most [`WINDOW_LINES`] lines that fit a chunk.
pub(crate) fn windows(lines: &Lines, first: u32, last: u32, out: &mut Vec<(u32, u32)>) {
    let mut start = first;
    while start <= last {
        let end = lines.fill(start, last.min(start + WINDOW_LINES - 1));
        out.push((start, end));
        start = end + 1;
    }
}

/// Line-window chunks over a whole file, skipping windows that are blank.
pub(crate) fn window_spans(text: &str, lines: &Lines) -> Vec<Span> {
    let mut ranges = Vec::new();
    if lines.count() > 0 {
        windows(lines, 1, lines.count(), &mut ranges);
    }
    ranges
        .into_iter()
        .filter(|&(s, e)| !is_blank(text, lines, s, e))
        .map(|(s, e)| Span {
            kind: ChunkKind::Lines,
            symbol: None,
            start_line: s,
            end_line: e,
            context: None,
        })
        .collect()
}

pub(crate) fn is_blank(text: &str, lines: &Lines, first: u32, last: u32) -> bool {
    let (s, e) = lines.byte_range(first, last);
    text.get(s..e).is_none_or(|t| t.trim().is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_ranges() {
        let text = "a\nbb\n\nccc";
        let l = Lines::new(text);
        assert_eq!(l.count(), 4);
        assert_eq!(l.byte_range(1, 1), (0, 2));
        assert_eq!(l.byte_range(2, 4), (2, 9));
        assert_eq!(Lines::new("x\n").count(), 1);
        assert_eq!(Lines::new("").count(), 0);
    }

    #[test]
    fn windows_respect_line_and_byte_limits() {
        let text: String = (0..200).map(|i| format!("line {i}\n")).collect();
        let l = Lines::new(&text);
        let spans = window_spans(&text, &l);
        let ranges: Vec<_> = spans.iter().map(|s| (s.start_line, s.end_line)).collect();
        assert_eq!(ranges, [(1, 60), (61, 120), (121, 180), (181, 200)]);
        let long = "x".repeat(2500) + "\n";
        let text = long.repeat(5);
        let l = Lines::new(&text);
        let ranges: Vec<_> =
            window_spans(&text, &l).iter().map(|s| (s.start_line, s.end_line)).collect();
        assert_eq!(ranges, [(1, 2), (3, 4), (5, 5)]);
    }
}
