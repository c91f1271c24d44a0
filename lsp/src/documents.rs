//! The editor's open buffers, kept in sync incrementally, so tasks see unsaved text and proposed edits
//! are computed against exactly what the person has in front of them.
//!
//! Positions are LSP positions (0-based line, UTF-16 column). Each document keeps the byte offset of
//! every line start, so reading the lines around a cursor costs no scan of the file: `codeAction`
//! on a large file stays cheap.

use std::collections::HashMap;

use tower_lsp::lsp_types::{Position, Range, TextDocumentContentChangeEvent, Url};

/// One open buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Document {
    /// The version the editor gave with its last change.
    pub version: i32,
    /// The language id given at open.
    pub language: String,
    text: String,
    /// Byte offset of the start of each line; always starts with 0.
    line_starts: Vec<usize>,
    /// Whether the buffer may differ from the file on disk (changed since open or save).
    pub dirty: bool,
}

impl Document {
    /// A document with this text.
    #[must_use]
    pub fn new(version: i32, language: impl Into<String>, text: String) -> Document {
        let line_starts = line_starts(&text);
        Document { version, language: language.into(), text, line_starts, dirty: false }
    }

    /// The whole text.
    #[must_use]
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Number of lines (a final line without a newline counts; an empty text has one empty line).
    #[must_use]
    pub fn line_count(&self) -> usize {
        self.line_starts.len()
    }

    /// Line `line` (0-based) without its line ending, or `None` past the end.
    #[must_use]
    pub fn line(&self, line: usize) -> Option<&str> {
        let start = *self.line_starts.get(line)?;
        let end = self.line_starts.get(line + 1).copied().unwrap_or(self.text.len());
        let raw = self.text.get(start..end)?;
        Some(raw.trim_end_matches('\n').trim_end_matches('\r'))
    }

    /// The byte offset of an LSP position, clamped to the text (a column past the line's end means
    /// its end, a line past the end means the end of the text, as the protocol asks).
    #[must_use]
    pub fn offset(&self, position: Position) -> usize {
        let line = position.line as usize;
        let Some(&start) = self.line_starts.get(line) else { return self.text.len() };
        let Some(text) = self.line(line) else { return self.text.len() };
        start + utf16_to_byte(text, position.character)
    }

    /// The text of a range.
    #[must_use]
    pub fn slice(&self, range: Range) -> &str {
        let start = self.offset(range.start);
        let end = self.offset(range.end).max(start);
        self.text.get(start..end).unwrap_or_default()
    }

    /// Applies one change from `textDocument/didChange` (a ranged edit, or the whole text).
    pub fn apply(&mut self, change: &TextDocumentContentChangeEvent) {
        match change.range {
            Some(range) => {
                let start = self.offset(range.start);
                let end = self.offset(range.end).max(start);
                self.text.replace_range(start..end, &change.text);
            }
            None => self.text.clone_from(&change.text),
        }
        self.line_starts = line_starts(&self.text);
        self.dirty = true;
    }
}

/// Byte offsets of line starts.
fn line_starts(text: &str) -> Vec<usize> {
    let mut starts = Vec::with_capacity(text.len() / 32 + 1);
    starts.push(0);
    starts.extend(text.bytes().enumerate().filter(|(_, b)| *b == b'\n').map(|(i, _)| i + 1));
    starts
}

/// The byte offset within `line` of a UTF-16 column, clamped to the line's end.
#[must_use]
pub fn utf16_to_byte(line: &str, column: u32) -> usize {
    let mut units = 0u32;
    for (i, c) in line.char_indices() {
        if units >= column {
            return i;
        }
        units += u32::try_from(c.len_utf16()).unwrap_or(2);
    }
    line.len()
}

/// The length of `text` in UTF-16 code units (an LSP column).
#[must_use]
pub fn utf16_len(text: &str) -> u32 {
    u32::try_from(text.encode_utf16().count()).unwrap_or(u32::MAX)
}

/// Every open buffer, by URI.
#[derive(Debug, Default)]
pub struct Documents {
    open: HashMap<Url, Document>,
}

impl Documents {
    /// Records an opened buffer.
    pub fn open(&mut self, uri: Url, document: Document) {
        self.open.insert(uri, document);
    }

    /// Applies changes in order and records the new version; changes to a buffer never opened are
    /// ignored (the editor broke the protocol, and there is nothing to apply them to).
    pub fn change(&mut self, uri: &Url, version: i32, changes: &[TextDocumentContentChangeEvent]) {
        if let Some(document) = self.open.get_mut(uri) {
            for change in changes {
                document.apply(change);
            }
            document.version = version;
        } else {
            tracing::warn!(%uri, "didChange for a document that is not open; ignored");
        }
    }

    /// Marks a buffer as saved: it now matches the file on disk.
    pub fn saved(&mut self, uri: &Url) {
        if let Some(document) = self.open.get_mut(uri) {
            document.dirty = false;
        }
    }

    /// Forgets a closed buffer.
    pub fn close(&mut self, uri: &Url) {
        self.open.remove(uri);
    }

    /// An open buffer.
    #[must_use]
    pub fn get(&self, uri: &Url) -> Option<&Document> {
        self.open.get(uri)
    }

    /// Every open buffer.
    pub fn iter(&self) -> impl Iterator<Item = (&Url, &Document)> {
        self.open.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(sl: u32, sc: u32, el: u32, ec: u32, text: &str) -> TextDocumentContentChangeEvent {
        TextDocumentContentChangeEvent {
            range: Some(Range::new(Position::new(sl, sc), Position::new(el, ec))),
            range_length: None,
            text: text.to_owned(),
        }
    }

    #[test]
    fn incremental_changes_use_utf16_columns() {
        let mut doc = Document::new(1, "python", "a = '😀x'\nb = 2\n".to_owned());
        // The emoji is 2 UTF-16 units: column 7 is right after it, before `x`.
        doc.apply(&change(0, 7, 0, 8, "y"));
        assert_eq!(doc.text(), "a = '😀y'\nb = 2\n");
        doc.apply(&change(1, 4, 1, 5, "3\nc = 4"));
        assert_eq!(doc.text(), "a = '😀y'\nb = 3\nc = 4\n");
        assert_eq!(doc.line(2), Some("c = 4"));
        assert_eq!(doc.line_count(), 4);
        assert!(doc.dirty);
        // Positions past the end clamp.
        assert_eq!(doc.offset(Position::new(9, 0)), doc.text().len());
        assert_eq!(doc.slice(Range::new(Position::new(1, 0), Position::new(1, 99))), "b = 3");
    }

    #[test]
    fn full_text_changes_replace_everything() {
        let mut docs = Documents::default();
        let uri = Url::parse("file:///x.py").unwrap();
        docs.open(uri.clone(), Document::new(1, "python", "old\r\nline\r\n".to_owned()));
        assert_eq!(docs.get(&uri).unwrap().line(0), Some("old"));
        let full = TextDocumentContentChangeEvent {
            range: None,
            range_length: None,
            text: "new".to_owned(),
        };
        docs.change(&uri, 2, &[full]);
        let doc = docs.get(&uri).unwrap();
        assert_eq!((doc.version, doc.text()), (2, "new"));
        docs.saved(&uri);
        assert!(!docs.get(&uri).unwrap().dirty);
        docs.close(&uri);
        assert!(docs.get(&uri).is_none());
    }
}
