//! The outline of a parsed file: its definitions (symbols) and the chunks cut along them.
//!
//! Walks only the levels where definitions live (the file, and the bodies of classes, impl blocks,
//! traits, modules, namespaces), never into function bodies. A definition that fits a chunk becomes one,
//! with the comments and attributes just above it; a small class or impl block stays whole; a large one
//! is cut at its members, each carrying the container's header as context; a long function is cut into
//! parts at statement boundaries, each carrying its signature. Lines no definition covers (imports,
//! constants, fields) are gathered afterwards into `Other` chunks, so every non-blank line is in a chunk.

use cadre_domain::ports::knowledge::{ChunkKind, SymbolKind};
use tree_sitter::Node;

use super::idents::ShortSet;
use super::lines::{is_blank, windows, Lines, Span, MAX_CHUNK_LINES};
use super::rules::{Role, Rules};

/// A definition found in a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Def {
    pub(crate) name: String,
    pub(crate) kind: SymbolKind,
    pub(crate) container: Option<String>,
    pub(crate) start_line: u32,
    pub(crate) end_line: u32,
    pub(crate) signature: String,
}

/// A class, impl block or module cut at its members: its lines and header, to frame the gaps in it.
struct Holder {
    start_line: u32,
    end_line: u32,
    header: String,
}

/// The scope members are found in.
#[derive(Clone)]
struct Scope {
    name: String,
    header: String,
}

pub(crate) struct Outline<'a> {
    text: &'a str,
    lines: &'a Lines,
    rules: &'a Rules,
    pub(crate) defs: Vec<Def>,
    pub(crate) spans: Vec<Span>,
    holders: Vec<Holder>,
    /// Start bytes of the name nodes of definitions, so they are not counted as references.
    pub(crate) def_names: ShortSet<usize>,
}

const MAX_SIGNATURE: usize = 160;

impl<'a> Outline<'a> {
    pub(crate) fn build(root: Node<'_>, text: &'a str, lines: &'a Lines, rules: &'a Rules) -> Self {
        let mut outline = Outline {
            text,
            lines,
            rules,
            defs: Vec::new(),
            spans: Vec::new(),
            holders: Vec::new(),
            def_names: ShortSet::default(),
        };
        outline.level(root, None, true, 0);
        outline
    }

    /// The chunk spans, sorted, non-overlapping, with the uncovered lines gathered into `Other` chunks.
    pub(crate) fn into_spans(mut self) -> (Vec<Def>, Vec<Span>, ShortSet<usize>) {
        self.spans.sort_by_key(|s| (s.start_line, s.end_line));
        let mut fixed: Vec<Span> = Vec::with_capacity(self.spans.len());
        for mut span in std::mem::take(&mut self.spans) {
            if let Some(prev) = fixed.last_mut() {
                if span.start_line <= prev.end_line {
                    if span.end_line <= prev.end_line {
                        continue;
                    }
                    span.start_line = prev.end_line + 1;
                }
            }
            fixed.push(span);
        }
        let mut out = Vec::with_capacity(fixed.len() * 2);
        let mut next = 1u32;
        for span in fixed {
            self.gap(next, span.start_line.saturating_sub(1), &mut out);
            next = span.end_line + 1;
            out.push(span);
        }
        self.gap(next, self.lines.count(), &mut out);
        (self.defs, out, self.def_names)
    }

    fn gap(&self, mut first: u32, mut last: u32, out: &mut Vec<Span>) {
        if first > last || is_blank(self.text, self.lines, first, last) {
            return;
        }
        while is_blank(self.text, self.lines, first, first) {
            first += 1;
        }
        while is_blank(self.text, self.lines, last, last) {
            last -= 1;
        }
        let mut ranges = Vec::new();
        windows(self.lines, first, last, &mut ranges);
        for (s, e) in ranges {
            if is_blank(self.text, self.lines, s, e) {
                continue;
            }
            let context = self
                .holders
                .iter()
                .filter(|h| h.start_line <= s && e <= h.end_line)
                .min_by_key(|h| h.end_line - h.start_line)
                .map(|h| h.header.clone());
            out.push(Span {
                kind: ChunkKind::Other,
                symbol: None,
                start_line: s,
                end_line: e,
                context,
            });
        }
    }

    fn level(&mut self, parent: Node<'_>, scope: Option<&Scope>, emit: bool, depth: u32) {
        if depth > 8 {
            return;
        }
        // First and last line of the comments and attributes seen since the last item.
        let mut leading: Option<(u32, u32)> = None;
        let mut cursor = parent.walk();
        let children: Vec<Node<'_>> = parent.named_children(&mut cursor).collect();
        for child in children {
            let role = self.rules.role(child.kind());
            if role == Some(Role::Leading) {
                let row = line_of(child.start_position().row);
                leading = Some((leading.map_or(row, |(first, _)| first), end_line(child)));
                continue;
            }
            // A blank line between a comment and what follows detaches it.
            let attached = leading
                .filter(|&(_, last)| line_of(child.start_position().row) <= last + 1)
                .map(|(first, _)| first);
            match role {
                Some(Role::Transparent) => self.level(child, scope, emit, depth + 1),
                Some(role) => self.item(child, child, role, scope, emit, attached, depth),
                None => {}
            }
            leading = None;
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn item(
        &mut self,
        outer: Node<'_>,
        node: Node<'_>,
        role: Role,
        scope: Option<&Scope>,
        emit: bool,
        leading: Option<u32>,
        depth: u32,
    ) {
        let start = leading.unwrap_or_else(|| line_of(outer.start_position().row));
        let end = end_line(outer);
        match role {
            Role::Wrapper => {
                let mut cursor = node.walk();
                let inner = node.named_children(&mut cursor).find_map(|c| {
                    self.rules
                        .role(c.kind())
                        .filter(|r| !matches!(r, Role::Leading | Role::Transparent))
                        .map(|r| (c, r))
                });
                if let Some((inner, inner_role)) = inner {
                    if inner_role != Role::Wrapper || depth < 4 {
                        self.item(outer, inner, inner_role, scope, emit, leading, depth + 1);
                    }
                }
            }
            Role::Def(kind) => {
                let Some((name, qualifier)) = self.def_name(node) else { return };
                let qualifier = qualifier.or_else(|| self.receiver(node));
                let kind = method_if_scoped(kind, scope.is_some() || qualifier.is_some());
                let container = match (scope, qualifier) {
                    (Some(s), Some(q)) => Some(self.qualified(Some(&s.name), &q)),
                    (Some(s), None) => Some(s.name.clone()),
                    (None, q) => q,
                };
                let symbol = self.qualified(container.as_deref(), &name);
                self.push_def(name, kind, container, node);
                if emit && chunkable(kind) {
                    self.def_chunk(start, end, node, kind, symbol, scope);
                }
            }
            Role::Binding => {
                let mut cursor = node.walk();
                let declarators: Vec<Node<'_>> = node.named_children(&mut cursor).collect();
                let mut found = false;
                for d in declarators {
                    let (Some(name), Some(value)) =
                        (d.child_by_field_name("name"), d.child_by_field_name("value"))
                    else {
                        continue;
                    };
                    let kind = match value.kind() {
                        "arrow_function"
                        | "function_expression"
                        | "function"
                        | "generator_function" => SymbolKind::Function,
                        "class" => SymbolKind::Struct,
                        _ => continue,
                    };
                    if name.kind() != "identifier" {
                        continue;
                    }
                    let text = self.node_text(name).to_owned();
                    self.def_names.insert(name.start_byte());
                    let container = scope.map(|s| s.name.clone());
                    let symbol = self.qualified(container.as_deref(), &text);
                    self.push_def(text, kind, container, node);
                    if !found && emit {
                        self.def_chunk(start, end, node, kind, symbol, scope);
                    }
                    found = true;
                }
            }
            Role::GoType => {
                let mut cursor = node.walk();
                let specs: Vec<Node<'_>> = node.named_children(&mut cursor).collect();
                let mut first = None;
                for spec in specs {
                    let Some(name) = spec.child_by_field_name("name") else { continue };
                    let kind = match spec.child_by_field_name("type").map(|t| t.kind()) {
                        Some("struct_type") => SymbolKind::Struct,
                        Some("interface_type") => SymbolKind::Trait,
                        _ => SymbolKind::TypeAlias,
                    };
                    let text = self.node_text(name).to_owned();
                    self.def_names.insert(name.start_byte());
                    self.push_def(text.clone(), kind, None, node);
                    first = first.or(Some((text, kind)));
                }
                if let (Some((name, kind)), true) = (first, emit) {
                    if chunkable(kind) {
                        self.def_chunk(start, end, node, kind, name, scope);
                    }
                }
            }
            Role::Holder(kind) => {
                let Some((name, _)) = self.def_name(node) else { return };
                let container = scope.map(|s| s.name.clone());
                let symbol = self.qualified(container.as_deref(), &name);
                self.push_def(name.clone(), kind, container, node);
                let header = self.signature(node);
                let members = Scope { name: symbol.clone(), header: self.framed(scope, &header) };
                self.holder(
                    start,
                    end,
                    node,
                    chunk_kind(kind),
                    Some(symbol),
                    members,
                    scope,
                    emit,
                    depth,
                );
            }
            Role::Impl => {
                let name = node
                    .child_by_field_name("type")
                    .map(|t| strip_generics(self.node_text(t)).to_owned())
                    .unwrap_or_else(|| "impl".to_owned());
                let header = self.signature(node);
                let members = Scope { name: name.clone(), header: self.framed(scope, &header) };
                self.holder(
                    start,
                    end,
                    node,
                    ChunkKind::Container,
                    Some(name),
                    members,
                    scope,
                    emit,
                    depth,
                );
            }
            Role::Leading | Role::Transparent => {}
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn holder(
        &mut self,
        start: u32,
        end: u32,
        node: Node<'_>,
        kind: ChunkKind,
        symbol: Option<String>,
        members: Scope,
        scope: Option<&Scope>,
        emit: bool,
        depth: u32,
    ) {
        let body = node.child_by_field_name("body");
        let whole = !emit || self.lines.fits(start, end) || body.is_none();
        if emit && whole {
            let context = scope.map(|s| s.header.clone());
            self.spans.push(Span { kind, symbol, start_line: start, end_line: end, context });
        }
        if let Some(body) = body {
            if !whole {
                self.holders.push(Holder {
                    start_line: start,
                    end_line: end,
                    header: members.header.clone(),
                });
            }
            self.level(body, Some(&members), emit && !whole, depth + 1);
        }
    }

    /// One chunk for a definition, or parts of it cut at its body's statements when it is too long.
    fn def_chunk(
        &mut self,
        start: u32,
        end: u32,
        node: Node<'_>,
        kind: SymbolKind,
        symbol: String,
        scope: Option<&Scope>,
    ) {
        let chunk_kind = chunk_kind(kind);
        let scope_header = scope.map(|s| s.header.clone());
        if self.lines.fits(start, end) {
            self.spans.push(Span {
                kind: chunk_kind,
                symbol: Some(symbol),
                start_line: start,
                end_line: end,
                context: scope_header,
            });
            return;
        }
        let signature = self.framed(scope, &self.signature(node));
        let mut breaks: Vec<u32> = Vec::new();
        if let Some(body) = node.child_by_field_name("body") {
            let mut cursor = body.walk();
            for stmt in body.named_children(&mut cursor) {
                let row = line_of(stmt.start_position().row);
                if row > start && row <= end {
                    breaks.push(row);
                }
            }
        }
        breaks.push(end + 1);
        breaks.dedup();
        let mut part_start = start;
        let mut first = true;
        while part_start <= end {
            // The furthest statement boundary that still fits; a line window when none does.
            let mut part_end = None;
            for &b in &breaks {
                if b <= part_start {
                    continue;
                }
                if self.lines.fits(part_start, b - 1) {
                    part_end = Some(b - 1);
                } else {
                    break;
                }
            }
            let part_end = part_end.unwrap_or_else(|| {
                self.lines.fill(part_start, end.min(part_start + MAX_CHUNK_LINES - 1))
            });
            self.spans.push(Span {
                kind: chunk_kind,
                symbol: Some(symbol.clone()),
                start_line: part_start,
                end_line: part_end,
                context: if first { scope_header.clone() } else { Some(signature.clone()) },
            });
            first = false;
            part_start = part_end + 1;
        }
    }

    fn push_def(
        &mut self,
        name: String,
        kind: SymbolKind,
        container: Option<String>,
        node: Node<'_>,
    ) {
        self.defs.push(Def {
            name,
            kind,
            container,
            start_line: line_of(node.start_position().row),
            end_line: end_line(node),
            signature: self.signature(node),
        });
    }

    /// The name of a definition and, for C++ `Type::method` definitions, its qualifier.
    fn def_name(&mut self, node: Node<'_>) -> Option<(String, Option<String>)> {
        if let Some(name) = node.child_by_field_name("name") {
            self.def_names.insert(name.start_byte());
            return Some((self.node_text(name).to_owned(), None));
        }
        // C and C++: the name sits at the bottom of a chain of declarators.
        let mut current = node.child_by_field_name("declarator")?;
        let mut qualifier = None;
        for _ in 0..16 {
            match current.kind() {
                "function_declarator"
                | "pointer_declarator"
                | "reference_declarator"
                | "parenthesized_declarator"
                | "array_declarator"
                | "attributed_declarator" => {
                    current = current
                        .child_by_field_name("declarator")
                        .or_else(|| current.named_child(0))?;
                }
                "qualified_identifier" => {
                    if let Some(scope) = current.child_by_field_name("scope") {
                        qualifier = Some(strip_generics(self.node_text(scope)).to_owned());
                    }
                    current = current.child_by_field_name("name")?;
                }
                "template_function" | "template_type" => {
                    current = current.child_by_field_name("name")?;
                }
                "identifier" | "field_identifier" | "type_identifier" | "destructor_name"
                | "operator_name" => {
                    self.def_names.insert(current.start_byte());
                    return Some((self.node_text(current).to_owned(), qualifier));
                }
                _ => return None,
            }
        }
        None
    }

    /// Go: the type a method is declared on (`func (s *Server) Start()` → `Server`).
    fn receiver(&self, node: Node<'_>) -> Option<String> {
        let receiver = node.child_by_field_name("receiver")?;
        let mut cursor = receiver.walk();
        let param =
            receiver.named_children(&mut cursor).find(|c| c.kind() == "parameter_declaration")?;
        let ty = param.child_by_field_name("type")?;
        Some(strip_generics(self.node_text(ty).trim_start_matches('*')).to_owned())
    }

    fn node_text(&self, node: Node<'_>) -> &'a str {
        self.text.get(node.byte_range()).unwrap_or("")
    }

    /// The definition's first line, trimmed, without the opening brace.
    fn signature(&self, node: Node<'_>) -> String {
        let rest = self.text.get(node.start_byte()..).unwrap_or("");
        let line = rest.lines().next().unwrap_or("");
        let line = line.split_once('{').map_or(line, |(head, _)| head).trim();
        let mut cut = line.len().min(MAX_SIGNATURE);
        while !line.is_char_boundary(cut) {
            cut -= 1;
        }
        line[..cut].to_owned()
    }

    /// A header framed by the headers of the scopes around it, one per line.
    fn framed(&self, scope: Option<&Scope>, header: &str) -> String {
        match scope {
            Some(s) => format!("{}\n{header}", s.header),
            None => header.to_owned(),
        }
    }

    fn qualified(&self, container: Option<&str>, name: &str) -> String {
        match container {
            Some(c) => format!("{c}{}{name}", self.rules.path_separator()),
            None => name.to_owned(),
        }
    }
}

fn line_of(row: usize) -> u32 {
    u32::try_from(row + 1).unwrap_or(u32::MAX)
}

/// The last line of a node; a node ending at column 0 ends on the line before.
fn end_line(node: Node<'_>) -> u32 {
    let end = node.end_position();
    let start = node.start_position();
    if end.column == 0 && end.row > start.row {
        line_of(end.row - 1)
    } else {
        line_of(end.row)
    }
}

fn method_if_scoped(kind: SymbolKind, scoped: bool) -> SymbolKind {
    if scoped && kind == SymbolKind::Function {
        SymbolKind::Method
    } else {
        kind
    }
}

/// Only definitions worth their own chunk; constants, aliases and macros stay with the code around them.
fn chunkable(kind: SymbolKind) -> bool {
    matches!(
        kind,
        SymbolKind::Function
            | SymbolKind::Method
            | SymbolKind::Struct
            | SymbolKind::Enum
            | SymbolKind::Trait
            | SymbolKind::Module
    )
}

fn chunk_kind(kind: SymbolKind) -> ChunkKind {
    match kind {
        SymbolKind::Function => ChunkKind::Function,
        SymbolKind::Method => ChunkKind::Method,
        SymbolKind::Module => ChunkKind::Container,
        SymbolKind::Struct
        | SymbolKind::Enum
        | SymbolKind::Trait
        | SymbolKind::TypeAlias
        | SymbolKind::Constant
        | SymbolKind::Macro => ChunkKind::Type,
    }
}

/// `Foo<T>` → `Foo`, `&'a mut Foo` → `Foo`, `crate::a::Foo` → `Foo`.
fn strip_generics(text: &str) -> &str {
    let base = text.split(['<', '[']).next().unwrap_or(text).trim();
    let base = base.rsplit("::").next().unwrap_or(base);
    base.trim_start_matches(['&', '*']).trim_start_matches("mut ").trim()
}

#[cfg(test)]
mod tests {
    use super::strip_generics;

    #[test]
    fn impl_types_lose_generics_and_paths() {
        assert_eq!(strip_generics("Foo<T>"), "Foo");
        assert_eq!(strip_generics("crate::x::Bar<'a>"), "Bar");
        assert_eq!(strip_generics("Baz"), "Baz");
    }
}
