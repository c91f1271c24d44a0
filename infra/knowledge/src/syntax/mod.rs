//! Parsing a file into chunks, definitions and references, with tree-sitter where a grammar exists and
//! by line windows otherwise (plain text, a syntax error, invalid UTF-8).

mod lines;
mod outline;
mod rules;

use std::collections::HashMap;

use cadre_domain::ports::knowledge::{Language, LexicalReason};
use tree_sitter::{Node, Parser, Tree};

pub(crate) use lines::{Lines, Span};
pub(crate) use outline::Def;
use rules::Rules;

/// Lines recorded per referenced name per file; the count goes on beyond it.
const MAX_REF_LINES: usize = 64;

/// What one file yields.
#[derive(Debug, Default)]
pub(crate) struct Analysis {
    pub(crate) spans: Vec<Span>,
    pub(crate) defs: Vec<Def>,
    /// Names used in the file (not at their definitions), with up to [`MAX_REF_LINES`] lines each and
    /// the full count.
    pub(crate) refs: Vec<(String, u32, Vec<u32>)>,
    /// Set when the file was cut by line windows although it has a grammar.
    pub(crate) lexical: Option<LexicalReason>,
}

/// A parser per thread, with the rules of every grammar it met.
#[derive(Default)]
pub(crate) struct Parsers {
    parser: Parser,
    rules: HashMap<(Language, bool), (tree_sitter::Language, Rules)>,
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
            let rules = Rules::new(language, &grammar);
            (grammar, rules)
        });
        if self.parser.set_language(grammar).is_err() {
            return windows(Some(LexicalReason::ParseFailed));
        }
        let Some(tree) = self.parser.parse(text, None) else {
            return windows(Some(LexicalReason::ParseFailed));
        };
        let root = tree.root_node();
        let outline = outline::Outline::build(root, text, &lines, rules);
        let (defs, spans, def_names) = outline.into_spans();
        let refs = references(&tree, text, rules, &def_names);
        if root.has_error() {
            let line = first_error_line(root);
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

/// Every identifier leaf that is not a definition's name, grouped by name, in first-seen order.
fn references(
    tree: &Tree,
    text: &str,
    rules: &Rules,
    def_names: &std::collections::HashSet<usize>,
) -> Vec<(String, u32, Vec<u32>)> {
    let mut by_name: HashMap<&str, usize> = HashMap::new();
    let mut out: Vec<(String, u32, Vec<u32>)> = Vec::new();
    let mut cursor = tree.walk();
    'walk: loop {
        let node = cursor.node();
        if rules.is_identifier(node.kind_id()) && !def_names.contains(&node.start_byte()) {
            if let Some(name) = text.get(node.byte_range()).filter(|n| n.len() >= 2) {
                let line = u32::try_from(node.start_position().row + 1).unwrap_or(u32::MAX);
                let at = *by_name.entry(name).or_insert_with(|| {
                    out.push((name.to_owned(), 0, Vec::new()));
                    out.len() - 1
                });
                let entry = &mut out[at];
                entry.1 += 1;
                if entry.2.len() < MAX_REF_LINES && entry.2.last() != Some(&line) {
                    entry.2.push(line);
                }
            }
        }
        if cursor.goto_first_child() {
            continue;
        }
        loop {
            if cursor.goto_next_sibling() {
                continue 'walk;
            }
            if !cursor.goto_parent() {
                break 'walk;
            }
        }
    }
    out
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
