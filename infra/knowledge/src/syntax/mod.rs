//! Parsing a file into chunks, definitions and references, with tree-sitter where a grammar exists and
//! by line windows otherwise (plain text, a syntax error, invalid UTF-8).

mod idents;
mod lines;
mod outline;
mod rules;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use cadre_domain::ports::knowledge::{Language, LexicalReason};
use tree_sitter::{Node, Parser};

pub(crate) use lines::{Lines, Span};
pub(crate) use outline::Def;
use rules::Rules;

/// What one file yields.
#[derive(Debug, Default)]
pub(crate) struct Analysis {
    pub(crate) spans: Vec<Span>,
    pub(crate) defs: Vec<Def>,
    /// Names used in the file (not at their definitions), with up to [`idents::MAX_REF_LINES`] lines
    /// each and the full count.
    pub(crate) refs: Vec<(String, u32, Vec<u32>)>,
    /// Set when the file was cut by line windows although it has a grammar.
    pub(crate) lexical: Option<LexicalReason>,
}

/// A parser per thread, with the rules of every grammar it met.
#[derive(Default)]
pub(crate) struct Parsers {
    parser: Parser,
    rules: HashMap<(Language, bool), (tree_sitter::Language, Rules)>,
    /// The grammar the parser holds, so it is set only when the language changes.
    current: Option<(Language, bool)>,
    /// Where this thread's analysis time went, for the indexer's per-phase figures.
    pub(crate) times: PhaseTimes,
}

/// Time spent per phase of [`Parsers::analyze`], summed over files.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct PhaseTimes {
    /// tree-sitter's parse.
    pub(crate) parse: Duration,
    /// Cutting chunks and finding definitions.
    pub(crate) outline: Duration,
    /// Collecting references.
    pub(crate) refs: Duration,
    /// Freeing the syntax tree.
    pub(crate) free: Duration,
}

impl Parsers {
    pub(crate) fn new() -> Parsers {
        Parsers::default()
    }

    /// Cuts `text` into chunks and finds its symbols. `valid_utf8` is false when `text` was decoded
    /// lossily, which forces line windows.
    pub(crate) fn analyze(
        &mut self,
        path: &str,
        language: Language,
        text: &str,
        valid_utf8: bool,
    ) -> Analysis {
        let lines = Lines::new(text);
        let windows = |reason| Analysis {
            spans: lines::window_spans(text, &lines),
            lexical: reason,
            ..Analysis::default()
        };
        if !valid_utf8 {
            return windows(Some(LexicalReason::InvalidUtf8));
        }
        let tsx = path.ends_with(".tsx");
        let Some(grammar) = crate::language::grammar(language, path) else {
            return windows(None);
        };
        let (grammar, rules) = self.rules.entry((language, tsx)).or_insert_with(|| {
            let rules = Rules::new(language);
            (grammar, rules)
        });
        if self.current != Some((language, tsx)) {
            if self.parser.set_language(grammar).is_err() {
                self.current = None;
                return windows(Some(LexicalReason::ParseFailed));
            }
            self.current = Some((language, tsx));
        }
        let t = Instant::now();
        let Some(tree) = self.parser.parse(text, None) else {
            return windows(Some(LexicalReason::ParseFailed));
        };
        let parsed = Instant::now();
        let root = tree.root_node();
        let outline = outline::Outline::build(root, text, &lines, rules);
        let (defs, spans, def_names) = outline.into_spans();
        let outlined = Instant::now();
        let refs = idents::references(text, language, &rules.keywords, &def_names);
        let referenced = Instant::now();
        let error = root.has_error().then(|| first_error_line(root));
        drop(tree);
        let times = &mut self.times;
        times.parse += parsed - t;
        times.outline += outlined - parsed;
        times.refs += referenced - outlined;
        times.free += referenced.elapsed();
        if let Some(line) = error {
            return Analysis {
                spans: lines::window_spans(text, &lines),
                defs,
                refs,
                lexical: Some(LexicalReason::SyntaxError { line }),
            };
        }
        Analysis { spans, defs, refs, lexical: None }
    }
}

/// The first line with a syntax error in `text` parsed as `path`; `None` when it parses or the language
/// has no grammar here.
pub(crate) fn syntax_error(path: &str, text: &str) -> Option<u32> {
    let grammar = crate::language::grammar(crate::language::detect(path), path)?;
    let mut parser = Parser::new();
    parser.set_language(&grammar).ok()?;
    let tree = parser.parse(text, None)?;
    let root = tree.root_node();
    root.has_error().then(|| first_error_line(root))
}

/// The 1-based line of the first error or missing node.
fn first_error_line(root: Node<'_>) -> u32 {
    let mut node = root;
    'down: loop {
        if node.is_error() || node.is_missing() {
            break;
        }
        let mut cursor = node.walk();
        for child in node.children(&mut cursor) {
            if child.is_error() || child.is_missing() || child.has_error() {
                node = child;
                continue 'down;
            }
        }
        break;
    }
    u32::try_from(node.start_position().row + 1).unwrap_or(u32::MAX)
}
