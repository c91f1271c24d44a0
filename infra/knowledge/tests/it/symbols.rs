//! Go to definition and find references from the index.

use cadre_domain::ports::knowledge::{IndexScope, KnowledgeBase, SymbolKind};

use crate::index::REPO;
use crate::support::Fixture;

#[tokio::test]
async fn definitions_and_references_by_name() {
    let f = Fixture::new(REPO);
    f.index(IndexScope::Changed).await;
    let found = f.kb.lookup_symbol(&f.key, "parse_config", 10).await.unwrap();
    let defs: Vec<String> = found
        .definitions
        .iter()
        .map(|d| format!("{:?} {}:{} {}", d.kind, d.path, d.line, d.signature))
        .collect();
    assert_eq!(defs, ["Function src/config.rs:2 pub fn parse_config(path: &str) -> Config"]);
    let refs: Vec<String> =
        found.references.iter().map(|r| format!("{}:{}", r.path, r.line)).collect();
    assert_eq!(refs, ["src/main.rs:4"]);

    let listen = f.kb.lookup_symbol(&f.key, "listen", 10).await.unwrap();
    assert_eq!(listen.definitions[0].kind, SymbolKind::Function);
    assert_eq!(listen.references.iter().map(|r| r.line).collect::<Vec<_>>(), [3]);

    let start = f.kb.lookup_symbol(&f.key, "start", 10).await.unwrap();
    assert_eq!(start.definitions[0].container.as_deref(), Some("Server"));
    assert_eq!(start.definitions[0].kind, SymbolKind::Method);

    let none = f.kb.lookup_symbol(&f.key, "no_such_symbol", 10).await.unwrap();
    assert!(none.definitions.is_empty() && none.references.is_empty());
}
