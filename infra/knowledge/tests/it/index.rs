//! Index runs: what is indexed, skipped, re-parsed and dropped, and the errors the port promises.

use cadre_domain::ports::knowledge::{
    IndexScope, KnowledgeBase, KnowledgeError, LexicalReason, RepoKey, SearchQuery, SkipReason,
};
use cadre_knowledge::EmbeddedKnowledge;

use crate::support::Fixture;

pub(crate) const REPO: &str = r#"
//- /.gitignore
target/
*.log
//- /src/config.rs
/// Reads the configuration file.
pub fn parse_config(path: &str) -> Config {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    Config { verbose: text.contains("verbose") }
}

pub struct Config {
    pub verbose: bool,
}
//- /src/main.rs
mod config;

fn main() {
    let config = config::parse_config("cadre.toml");
    if config.verbose {
        println!("verbose");
    }
}
//- /app/server.py
class Server:
    def start(self, port):
        return listen(port)

def listen(port):
    return port
//- /web/app.ts
export function renderWidget(name: string): string {
  return `<widget>${name}</widget>`;
}
//- /target/debug/generated.rs
fn ignored_by_gitignore() {}
//- /run.log
ignored log line
//- /README.md
Cadre indexes repositories for its agents.
"#;

#[tokio::test]
async fn a_first_run_indexes_every_file_and_honours_gitignore() {
    let f = Fixture::new(REPO);
    let report = f.index(IndexScope::Changed).await;
    assert_eq!(
        report.files_seen, 5,
        "hidden files such as .gitignore are not indexed: {report:#?}"
    );
    assert_eq!((report.files_parsed, report.files_unchanged, report.files_removed), (5, 0, 0));
    assert_eq!(report.totals.files, 5);
    assert!(report.totals.chunks >= 7, "{report:#?}");
    assert!(report.skipped.is_empty() && report.lexical_only.is_empty(), "{report:#?}");
    assert!(f.hits("ignored_by_gitignore").await.is_empty());
    assert!(f.hits("ignored log line").await.is_empty());
    assert_eq!(
        f.hits("renderWidget").await.first().map(String::as_str),
        Some("web/app.ts:1 renderWidget")
    );
}

#[tokio::test]
async fn an_unchanged_repository_is_not_parsed_again() {
    let f = Fixture::new(REPO);
    f.index(IndexScope::Changed).await;
    let again = f.index(IndexScope::Changed).await;
    assert_eq!((again.files_indexed, again.files_parsed, again.files_unchanged), (0, 0, 5));
    let full = f.index(IndexScope::Full).await;
    assert_eq!(full.files_parsed, 5, "a full run re-parses everything");
    assert_eq!(full.totals, again.totals);
}

#[tokio::test]
async fn an_edited_file_alone_is_reparsed_and_its_old_text_is_gone() {
    let f = Fixture::new(REPO);
    f.index(IndexScope::Changed).await;
    f.write("app/server.py", "def listen(port, backlog):\n    return accept_connections(port)\n");
    let report = f.index(IndexScope::Changed).await;
    assert_eq!(
        (report.files_indexed, report.files_parsed, report.files_unchanged),
        (1, 1, 4),
        "{report:#?}"
    );
    assert_eq!(f.hits("accept_connections").await, ["app/server.py:1 listen"]);
    assert!(f.hits("start").await.is_empty(), "the old method is gone");
    let lookup = f.kb.lookup_symbol(&f.key, "Server", 10).await.unwrap();
    assert!(lookup.definitions.is_empty(), "{lookup:?}");
}

#[tokio::test]
async fn one_path_can_be_reindexed_alone() {
    let f = Fixture::new(REPO);
    f.index(IndexScope::Changed).await;
    f.write("src/main.rs", "fn main() { launch_rockets(); }\n");
    f.write("README.md", "changed too, but not asked for\n");
    let report = f.index(IndexScope::Paths(vec!["src/main.rs".into()])).await;
    assert_eq!((report.files_seen, report.files_parsed), (1, 1), "{report:#?}");
    assert_eq!(f.hits("launch_rockets").await, ["src/main.rs:1 main"]);
    assert!(f.hits("not asked").await.is_empty(), "README.md was not re-indexed");
}

#[tokio::test]
async fn a_deleted_file_disappears_from_every_result() {
    let f = Fixture::new(REPO);
    f.index(IndexScope::Changed).await;
    assert!(!f.hits("listen").await.is_empty());
    std::fs::remove_file(f.root.join("app/server.py")).unwrap();
    let report = f.index(IndexScope::Changed).await;
    assert_eq!((report.files_removed, report.files_parsed), (1, 0));
    assert_eq!(report.totals.files, 4);
    assert!(f.hits("listen").await.is_empty());
    let lookup = f.kb.lookup_symbol(&f.key, "listen", 10).await.unwrap();
    assert!(lookup.definitions.is_empty() && lookup.references.is_empty(), "{lookup:?}");
}

#[tokio::test]
async fn a_path_that_no_longer_exists_is_dropped_and_remove_file_drops_one() {
    let f = Fixture::new(REPO);
    f.index(IndexScope::Changed).await;
    std::fs::remove_file(f.root.join("web/app.ts")).unwrap();
    let report = f.index(IndexScope::Paths(vec!["web/app.ts".into()])).await;
    assert_eq!(report.files_removed, 1);
    assert!(f.hits("renderWidget").await.is_empty());

    assert!(f.kb.remove_file(&f.key, "README.md").await.unwrap());
    assert!(!f.kb.remove_file(&f.key, "README.md").await.unwrap(), "already gone");
    assert!(f.hits("agents").await.is_empty());
}

#[tokio::test]
async fn a_renamed_file_is_not_parsed_again() {
    let f = Fixture::new(REPO);
    f.index(IndexScope::Changed).await;
    std::fs::rename(f.root.join("src/config.rs"), f.root.join("src/settings.rs")).unwrap();
    let report = f.index(IndexScope::Changed).await;
    assert_eq!(
        (report.files_indexed, report.files_parsed, report.files_removed),
        (1, 0, 1),
        "{report:#?}"
    );
    assert_eq!(
        f.hits("parse_config").await.first().map(String::as_str),
        Some("src/settings.rs:1 parse_config")
    );
}

#[tokio::test]
async fn binaries_huge_and_minified_files_are_skipped_with_a_note() {
    let f = Fixture::new(REPO);
    std::fs::write(f.root.join("logo.png"), b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR").unwrap();
    // A 50 MB generated file (sparse, so the test writes nothing): skipped on its size, never read.
    let huge = std::fs::File::create(f.root.join("generated.json")).unwrap();
    huge.set_len(50 * 1024 * 1024).unwrap();
    std::fs::write(f.root.join("web/bundle.min.js"), "var a=1;".repeat(2000)).unwrap();
    let report = f.index(IndexScope::Changed).await;
    let mut notes: Vec<String> =
        report.skipped.iter().map(|n| format!("{}: {}", n.path, n.reason)).collect();
    notes.sort();
    assert_eq!(
        notes,
        [
            "generated.json: too large (52428800 bytes, limit 1048576)",
            "logo.png: binary (contains NUL bytes)",
            "web/bundle.min.js: looks minified or generated (16000 bytes per line on average)",
        ]
    );
    assert!(matches!(
        report.skipped[0].reason,
        SkipReason::TooLarge { .. } | SkipReason::Binary | SkipReason::Minified { .. }
    ));
    assert_eq!(report.totals.files, 5);
    let again = f.index(IndexScope::Changed).await;
    assert_eq!(again.files_indexed, 0, "skipped files are remembered, not re-read");
}

#[tokio::test]
async fn a_syntax_error_or_invalid_utf8_is_still_searchable() {
    let f = Fixture::new(REPO);
    f.write("src/broken.rs", "fn broken_but_findable( {\n    let = ;\n}\n");
    let mut latin1 = b"// caf".to_vec();
    latin1.push(0xe9);
    latin1.extend_from_slice(b" latin_one_marker\nfn x() {}\n");
    std::fs::write(f.root.join("src/latin1.rs"), latin1).unwrap();
    let report = f.index(IndexScope::Changed).await;
    let mut notes: Vec<(String, LexicalReason)> =
        report.lexical_only.iter().map(|n| (n.path.clone(), n.reason.clone())).collect();
    notes.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        notes,
        [
            ("src/broken.rs".to_owned(), LexicalReason::SyntaxError { line: 1 }),
            ("src/latin1.rs".to_owned(), LexicalReason::InvalidUtf8),
        ]
    );
    assert_eq!(f.hits("broken_but_findable").await, ["src/broken.rs:1 -"]);
    assert_eq!(f.hits("latin_one_marker").await, ["src/latin1.rs:1 -"]);
}

#[tokio::test]
async fn the_index_survives_a_restart_and_many_small_runs() {
    let f = Fixture::new(REPO);
    f.index(IndexScope::Changed).await;
    // Enough single-file runs to make the lexical segments pile up and be merged.
    for i in 0..12 {
        f.write("src/main.rs", &format!("fn main() {{ step_{i}(); }}\n"));
        let r = f.index(IndexScope::Paths(vec!["src/main.rs".into()])).await;
        assert_eq!(r.files_parsed, 1);
    }
    let stats = f.kb.stats(&f.key).await.unwrap();
    assert!(stats.segments <= 9, "segments are merged: {stats:?}");
    let reopened = EmbeddedKnowledge::open(&f.data).unwrap();
    let q = SearchQuery::new("step_11", 5);
    let hits = reopened.search(&f.key, &q).await.unwrap().hits;
    assert_eq!(hits.iter().map(|h| h.chunk.path.as_str()).collect::<Vec<_>>(), ["src/main.rs"]);
    let old = reopened.search(&f.key, &SearchQuery::new("step_3", 5)).await.unwrap().hits;
    assert!(old.iter().all(|h| !h.chunk.text.contains("step_3")), "old versions are gone: {old:?}");
    assert_eq!(
        reopened.search(&f.key, &SearchQuery::new("parse_config", 1)).await.unwrap().hits.len(),
        1
    );
}

#[tokio::test]
async fn bad_roots_and_paths_are_refused_and_write_nothing() {
    let f = Fixture::new(REPO);
    let missing = f.root.join("nope");
    let err = f.kb.index(&f.key, &missing, IndexScope::Changed).await.unwrap_err();
    assert!(matches!(err, KnowledgeError::BadRoot { .. }), "{err}");
    let file = f.root.join("README.md");
    let err = f.kb.index(&f.key, &file, IndexScope::Changed).await.unwrap_err();
    assert!(matches!(err, KnowledgeError::BadRoot { .. }), "{err}");
    for bad in ["/etc/passwd", "../outside.rs", "src/../../x", ""] {
        let err =
            f.kb.index(&f.key, &f.root, IndexScope::Paths(vec![bad.into()])).await.unwrap_err();
        assert!(matches!(err, KnowledgeError::BadPath { .. }), "{bad}: {err}");
    }
    let err = f.kb.search(&f.key, &SearchQuery::new("x", 5)).await.unwrap_err();
    assert!(matches!(err, KnowledgeError::NotIndexed { .. }), "nothing was written: {err}");
}

#[tokio::test]
async fn a_repository_never_indexed_is_reported_as_such() {
    let f = Fixture::new(REPO);
    let other = RepoKey::new("never-indexed");
    let err = f.kb.search(&other, &SearchQuery::new("config", 5)).await.unwrap_err();
    assert!(matches!(err, KnowledgeError::NotIndexed { .. }));
    assert!(err.to_string().contains("cadre index"), "{err}");
    assert!(matches!(
        f.kb.lookup_symbol(&other, "x", 5).await,
        Err(KnowledgeError::NotIndexed { .. })
    ));
    assert!(matches!(f.kb.remove_file(&other, "x").await, Err(KnowledgeError::NotIndexed { .. })));
    let map = f.kb.repo_map(&other, &Default::default()).await;
    assert!(matches!(map, Err(KnowledgeError::NotIndexed { .. })));
}

#[tokio::test]
async fn a_change_made_by_another_process_is_seen() {
    let f = Fixture::new(REPO);
    f.index(IndexScope::Changed).await;
    let other = EmbeddedKnowledge::open(&f.data).unwrap();
    let q = SearchQuery::new("launch_rockets", 5);
    assert!(other.search(&f.key, &q).await.unwrap().hits.is_empty());
    f.write("src/main.rs", "fn main() { launch_rockets(); }\n");
    f.index(IndexScope::Changed).await;
    let hits = other.search(&f.key, &q).await.unwrap().hits;
    assert_eq!(hits.iter().map(|h| h.chunk.path.as_str()).collect::<Vec<_>>(), ["src/main.rs"]);
}
