//! Which language a file is in (by its name), and the tree-sitter grammar for it.

use cadre_domain::ports::knowledge::Language;

/// The language of a repository-relative path, by extension (and a few well-known names).
pub(crate) fn detect(path: &str) -> Language {
    let name = path.rsplit('/').next().unwrap_or(path);
    let ext = match name.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() => ext.to_ascii_lowercase(),
        _ => return Language::Text,
    };
    match ext.as_str() {
        "rs" => Language::Rust,
        "py" | "pyi" => Language::Python,
        "js" | "jsx" | "mjs" | "cjs" => Language::JavaScript,
        "ts" | "tsx" | "mts" | "cts" => Language::TypeScript,
        "go" => Language::Go,
        "java" => Language::Java,
        "c" | "h" => Language::C,
        "cc" | "cpp" | "cxx" | "c++" | "hpp" | "hh" | "hxx" | "h++" | "ipp" | "inl" => {
            Language::Cpp
        }
        _ => Language::Text,
    }
}

/// The grammar for a language, `None` for plain text. TSX files need the TSX grammar, so the path is
/// consulted for TypeScript.
pub(crate) fn grammar(language: Language, path: &str) -> Option<tree_sitter::Language> {
    let grammar = match language {
        Language::Rust => tree_sitter_rust::LANGUAGE,
        Language::Python => tree_sitter_python::LANGUAGE,
        Language::JavaScript => tree_sitter_javascript::LANGUAGE,
        Language::TypeScript if path.ends_with(".tsx") => tree_sitter_typescript::LANGUAGE_TSX,
        Language::TypeScript => tree_sitter_typescript::LANGUAGE_TYPESCRIPT,
        Language::Go => tree_sitter_go::LANGUAGE,
        Language::Java => tree_sitter_java::LANGUAGE,
        Language::C => tree_sitter_c::LANGUAGE,
        Language::Cpp => tree_sitter_cpp::LANGUAGE,
        Language::Text => return None,
    };
    Some(grammar.into())
}

/// The stored code of a language (one byte in the index's tables).
pub(crate) fn code(language: Language) -> u8 {
    match language {
        Language::Rust => 1,
        Language::Python => 2,
        Language::JavaScript => 3,
        Language::TypeScript => 4,
        Language::Go => 5,
        Language::Java => 6,
        Language::C => 7,
        Language::Cpp => 8,
        Language::Text => 0,
    }
}

/// The language of a stored code; unknown codes read as text.
pub(crate) fn from_code(code: i64) -> Language {
    match code {
        1 => Language::Rust,
        2 => Language::Python,
        3 => Language::JavaScript,
        4 => Language::TypeScript,
        5 => Language::Go,
        6 => Language::Java,
        7 => Language::C,
        8 => Language::Cpp,
        _ => Language::Text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_by_extension() {
        assert_eq!(detect("src/main.rs"), Language::Rust);
        assert_eq!(detect("a/b/App.TSX"), Language::TypeScript);
        assert_eq!(detect("include/x.hpp"), Language::Cpp);
        assert_eq!(detect("Makefile"), Language::Text);
        assert_eq!(detect(".rs"), Language::Text);
        for l in Language::ALL {
            assert_eq!(from_code(i64::from(code(l))), l);
        }
    }

    #[test]
    fn every_grammar_loads() {
        let mut parser = tree_sitter::Parser::new();
        for l in Language::ALL {
            if let Some(g) = grammar(l, "x.tsx") {
                parser.set_language(&g).unwrap();
            }
        }
    }
}
