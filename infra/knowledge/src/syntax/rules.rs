//! Per-language knowledge of the grammars: which nodes define symbols, which hold other definitions,
//! which only wrap one, which are comments to attach, and which leaves are identifiers.

use cadre_domain::ports::knowledge::{Language, SymbolKind};

/// What a node kind means for the outline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// Defines a symbol of this kind; its body is not looked into.
    Def(SymbolKind),
    /// Defines a symbol and holds member definitions in its body (class, trait, interface, module).
    Holder(SymbolKind),
    /// Holds member definitions without defining a symbol itself (Rust `impl`).
    Impl,
    /// Wraps one definition (decorators, `export`, `template<…>`): the definition inside counts.
    Wrapper,
    /// Its children sit at the same level (`#ifdef`, `extern "C" { … }`).
    Transparent,
    /// A declaration that may bind a function (`const f = () => …`).
    Binding,
    /// Go's `type X …` declaration.
    GoType,
    /// A comment or attribute that belongs to the definition after it.
    Leading,
}

/// The rules of one grammar.
pub(crate) struct Rules {
    pub(crate) language: Language,
    roles: &'static [(&'static str, Role)],
    /// Words that are never references (keywords, builtin types).
    pub(crate) keywords: super::idents::ShortSet<&'static str>,
}

use Role::{Binding, Def, GoType, Holder, Impl, Leading, Transparent, Wrapper};
use SymbolKind as K;

const RUST: &[(&str, Role)] = &[
    ("function_item", Def(K::Function)),
    ("function_signature_item", Def(K::Function)),
    ("struct_item", Def(K::Struct)),
    ("union_item", Def(K::Struct)),
    ("enum_item", Def(K::Enum)),
    ("type_item", Def(K::TypeAlias)),
    ("const_item", Def(K::Constant)),
    ("static_item", Def(K::Constant)),
    ("macro_definition", Def(K::Macro)),
    ("trait_item", Holder(K::Trait)),
    ("mod_item", Holder(K::Module)),
    ("impl_item", Impl),
    ("line_comment", Leading),
    ("block_comment", Leading),
    ("attribute_item", Leading),
];

const PYTHON: &[(&str, Role)] = &[
    ("function_definition", Def(K::Function)),
    ("class_definition", Holder(K::Struct)),
    ("decorated_definition", Wrapper),
    ("comment", Leading),
];

const JAVASCRIPT: &[(&str, Role)] = &[
    ("function_declaration", Def(K::Function)),
    ("generator_function_declaration", Def(K::Function)),
    ("method_definition", Def(K::Method)),
    ("class_declaration", Holder(K::Struct)),
    ("export_statement", Wrapper),
    ("lexical_declaration", Binding),
    ("variable_declaration", Binding),
    ("comment", Leading),
];

const TYPESCRIPT: &[(&str, Role)] = &[
    ("function_declaration", Def(K::Function)),
    ("generator_function_declaration", Def(K::Function)),
    ("function_signature", Def(K::Function)),
    ("method_definition", Def(K::Method)),
    ("abstract_method_signature", Def(K::Method)),
    ("class_declaration", Holder(K::Struct)),
    ("abstract_class_declaration", Holder(K::Struct)),
    ("interface_declaration", Def(K::Trait)),
    ("type_alias_declaration", Def(K::TypeAlias)),
    ("enum_declaration", Def(K::Enum)),
    ("internal_module", Holder(K::Module)),
    ("module", Holder(K::Module)),
    ("export_statement", Wrapper),
    ("expression_statement", Wrapper),
    ("ambient_declaration", Wrapper),
    ("lexical_declaration", Binding),
    ("variable_declaration", Binding),
    ("comment", Leading),
    ("decorator", Leading),
];

const GO: &[(&str, Role)] = &[
    ("function_declaration", Def(K::Function)),
    ("method_declaration", Def(K::Method)),
    ("type_declaration", GoType),
    ("comment", Leading),
];

const JAVA: &[(&str, Role)] = &[
    ("method_declaration", Def(K::Method)),
    ("constructor_declaration", Def(K::Method)),
    ("class_declaration", Holder(K::Struct)),
    ("record_declaration", Holder(K::Struct)),
    ("interface_declaration", Holder(K::Trait)),
    ("annotation_type_declaration", Holder(K::Trait)),
    ("enum_declaration", Holder(K::Enum)),
    ("line_comment", Leading),
    ("block_comment", Leading),
];

const C: &[(&str, Role)] = &[
    ("function_definition", Def(K::Function)),
    ("struct_specifier", Def(K::Struct)),
    ("union_specifier", Def(K::Struct)),
    ("enum_specifier", Def(K::Enum)),
    ("type_definition", Def(K::TypeAlias)),
    ("preproc_function_def", Def(K::Macro)),
    ("preproc_def", Def(K::Macro)),
    ("preproc_ifdef", Transparent),
    ("preproc_if", Transparent),
    ("preproc_else", Transparent),
    ("preproc_elif", Transparent),
    ("linkage_specification", Transparent),
    ("declaration_list", Transparent),
    ("comment", Leading),
];

const CPP: &[(&str, Role)] = &[
    ("function_definition", Def(K::Function)),
    ("struct_specifier", Holder(K::Struct)),
    ("class_specifier", Holder(K::Struct)),
    ("union_specifier", Def(K::Struct)),
    ("enum_specifier", Def(K::Enum)),
    ("type_definition", Def(K::TypeAlias)),
    ("alias_declaration", Def(K::TypeAlias)),
    ("namespace_definition", Holder(K::Module)),
    ("template_declaration", Wrapper),
    ("preproc_function_def", Def(K::Macro)),
    ("preproc_def", Def(K::Macro)),
    ("preproc_ifdef", Transparent),
    ("preproc_if", Transparent),
    ("preproc_else", Transparent),
    ("preproc_elif", Transparent),
    ("linkage_specification", Transparent),
    ("declaration_list", Transparent),
    ("comment", Leading),
];

impl Rules {
    pub(crate) fn new(language: Language) -> Rules {
        let roles = match language {
            Language::Rust => RUST,
            Language::Python => PYTHON,
            Language::JavaScript => JAVASCRIPT,
            Language::TypeScript => TYPESCRIPT,
            Language::Go => GO,
            Language::Java => JAVA,
            Language::C => C,
            Language::Cpp => CPP,
            Language::Text => &[],
        };
        Rules { language, roles, keywords: super::idents::keywords(language) }
    }

    pub(crate) fn role(&self, kind: &str) -> Option<Role> {
        self.roles.iter().find(|(k, _)| *k == kind).map(|(_, r)| *r)
    }

    /// Whether methods are shown as `Type::method` (Rust, C++) rather than `Type.method`.
    pub(crate) fn path_separator(&self) -> &'static str {
        match self.language {
            Language::Rust | Language::Cpp => "::",
            _ => ".",
        }
    }
}
