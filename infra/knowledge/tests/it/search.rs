//! Ranking sanity, filters and retrieval modes of `search`.

use cadre_domain::ports::knowledge::{
    IndexScope, KnowledgeBase, KnowledgeError, Language, RetrievalMode, SearchFilter, SearchMode,
    SearchQuery,
};

use crate::support::Fixture;

const REPO: &str = r#"
//- /src/config.rs
/// Parses the configuration file into a `Config`.
pub fn parse_config(text: &str) -> Config {
    let verbose = text.lines().any(|l| l.trim() == "verbose = true");
    Config { verbose }
}

pub struct ConfigParser {
    strict: bool,
}
//- /src/net/server.rs
/// Accepts TCP connections and spawns a handler for each.
pub async fn serve(listener: TcpListener) {
    loop {
        let (socket, _) = listener.accept().await.unwrap();
        spawn_handler(socket);
    }
}
//- /src/retry.rs
/// Retries an operation with exponential backoff and jitter.
pub fn retry_with_backoff<T>(mut op: impl FnMut() -> Option<T>) -> Option<T> {
    let mut delay_ms = 10;
    for _ in 0..5 {
        if let Some(v) = op() {
            return Some(v);
        }
        delay_ms *= 2;
    }
    None
}
//- /tools/server.py
def start(port):
    """Starts the development server."""
    return port

def verbose_log(msg):
    print(msg)
"#;

async fn indexed() -> Fixture {
    let f = Fixture::new(REPO);
    f.index(IndexScope::Changed).await;
    f
}

#[tokio::test]
async fn words_find_the_function_that_answers_them() {
    let f = indexed().await;
    assert_eq!(
        f.hits("parse config").await.first().map(String::as_str),
        Some("src/config.rs:1 parse_config")
    );
    assert_eq!(
        f.hits("exponential backoff").await.first().map(String::as_str),
        Some("src/retry.rs:1 retry_with_backoff")
    );
    assert_eq!(
        f.hits("accept tcp connections").await.first().map(String::as_str),
        Some("src/net/server.rs:1 serve")
    );
}

#[tokio::test]
async fn identifiers_match_across_camel_and_snake_case() {
    let f = indexed().await;
    for q in ["ConfigParser", "config_parser", "config parser"] {
        let hits = f.hits(q).await;
        assert!(hits.iter().take(2).any(|h| h == "src/config.rs:7 ConfigParser"), "{q}: {hits:?}");
    }
}

#[tokio::test]
async fn words_in_a_path_raise_its_chunks() {
    let f = indexed().await;
    // "server" is in both files' text; only one has it in its path under `net`.
    assert_eq!(
        f.hits("net server").await.first().map(String::as_str),
        Some("src/net/server.rs:1 serve")
    );
}

#[tokio::test]
async fn filters_by_path_prefix_and_language() {
    let f = indexed().await;
    let mut q = SearchQuery::new("verbose", 10);
    q.mode = SearchMode::Lexical;
    q.filter = SearchFilter { path_prefix: Some("tools/".into()), languages: vec![] };
    let hits = f.kb.search(&f.key, &q).await.unwrap().hits;
    assert_eq!(hits.iter().map(|h| h.chunk.path.as_str()).collect::<Vec<_>>(), ["tools/server.py"]);
    q.filter = SearchFilter { path_prefix: None, languages: vec![Language::Rust] };
    let hits = f.kb.search(&f.key, &q).await.unwrap().hits;
    assert!(
        !hits.is_empty() && hits.iter().all(|h| h.chunk.language == Language::Rust),
        "{hits:?}"
    );
}

#[tokio::test]
async fn hits_carry_their_text_lines_and_ranks() {
    let f = indexed().await;
    let mut q = SearchQuery::new("retry_with_backoff", 1);
    q.mode = SearchMode::Lexical;
    let results = f.kb.search(&f.key, &q).await.unwrap();
    assert_eq!(results.mode, RetrievalMode::Lexical);
    let hit = &results.hits[0];
    assert_eq!((hit.chunk.start_line, hit.chunk.end_line), (1, 11));
    assert!(hit.chunk.text.starts_with("/// Retries an operation"), "{:?}", hit.chunk.text);
    assert!(hit.chunk.id.len() > 40 && hit.chunk.id.contains('#'), "{}", hit.chunk.id);
    assert_eq!((hit.lexical_rank, hit.vector_rank), (Some(1), None));
    assert!(hit.score > 0.0);
}

#[tokio::test]
async fn without_an_embedder_search_is_lexical_and_says_so() {
    let f = indexed().await;
    for mode in [SearchMode::Hybrid, SearchMode::Vector] {
        let mut q = SearchQuery::new("parse config", 3);
        q.mode = mode;
        let results = f.kb.search(&f.key, &q).await.unwrap();
        match &results.mode {
            RetrievalMode::LexicalOnly { reason } => {
                assert!(reason.contains("no embedder"), "{reason}")
            }
            other => panic!("{mode:?} gave {other:?}"),
        }
        assert_eq!(results.hits[0].chunk.symbol.as_deref(), Some("parse_config"));
    }
}

#[tokio::test]
async fn a_query_without_words_is_refused() {
    let f = indexed().await;
    let err = f.kb.search(&f.key, &SearchQuery::new("!! ? -", 5)).await.unwrap_err();
    assert!(matches!(err, KnowledgeError::BadQuery { .. }), "{err}");
}
