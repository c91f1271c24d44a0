//! The outline of one file as the indexer sees it, without an index: for tools that want chunks and
//! symbols of a buffer (an editor, a test), and so chunking can be checked in isolation.

use cadre_domain::ports::knowledge::{ChunkKind, Definition, Language, LexicalReason};

use crate::syntax::Parsers;

/// One chunk of a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutlineChunk {
    /// What kind of code it is.
    pub kind: ChunkKind,
    /// The symbol it defines, if any.
    pub symbol: Option<String>,
    /// First line, 1-based.
    pub start_line: u32,
    /// Last line, 1-based, inclusive.
    pub end_line: u32,
    /// The signature or container header framing it, for parts of a longer definition.
    pub context: Option<String>,
}

/// What the indexer extracts from a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileOutline {
    /// The language detected from the path.
    pub language: Language,
    /// Set when the file was cut by line windows although it has a grammar.
    pub lexical: Option<LexicalReason>,
    /// Chunks, in order.
    pub chunks: Vec<OutlineChunk>,
    /// Definitions, in order.
    pub definitions: Vec<Definition>,
    /// Names used (not defined) in the file, with their lines (at most 64 each), in first-use order.
    pub references: Vec<(String, Vec<u32>)>,
}

/// Outlines `bytes` as the file at `path` (the extension picks the grammar).
#[must_use]
pub fn outline(path: &str, bytes: &[u8]) -> FileOutline {
    let language = crate::language::detect(path);
    let (text, valid) = match std::str::from_utf8(bytes) {
        Ok(text) => (text.to_owned(), true),
        Err(_) => (String::from_utf8_lossy(bytes).into_owned(), false),
    };
    let analysis = Parsers::new().analyze(path, language, &text, valid);
    FileOutline {
        language,
        lexical: analysis.lexical,
        chunks: analysis
            .spans
            .into_iter()
            .map(|s| OutlineChunk {
                kind: s.kind,
                symbol: s.symbol,
                start_line: s.start_line,
                end_line: s.end_line,
                context: s.context,
            })
            .collect(),
        definitions: analysis
            .defs
            .into_iter()
            .map(|d| Definition {
                name: d.name,
                kind: d.kind,
                container: d.container,
                path: path.to_owned(),
                line: d.start_line,
                end_line: d.end_line,
                signature: d.signature,
            })
            .collect(),
        references: analysis.refs.into_iter().map(|(name, _, lines)| (name, lines)).collect(),
    }
}
