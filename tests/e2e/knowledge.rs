//! `cadre index` and `cadre search` on a real repository, through the real binary.

use crate::support::cadre::Cadre;
use crate::support::repo::Repo;

const PROJECT: &str = r#"
//- /src/parser.rs
/// Parses a configuration file into key/value pairs.
pub fn parse_config(text: &str) -> Vec<(String, String)> {
    text.lines().filter_map(|l| l.split_once('=')).map(|(k, v)| (k.into(), v.into())).collect()
}
//- /src/server.rs
pub struct HttpServer { port: u16 }

impl HttpServer {
    pub fn start(&self) -> bool { self.port > 0 }
}
//- /tools/report.py
def render_report(rows):
    return "\n".join(str(r) for r in rows)
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn index_then_search_finds_the_definition_and_sees_an_edit() {
    let repo = Repo::new(PROJECT);
    let cadre = Cadre::new();
    let root = repo.path().to_str().unwrap();

    let out = cadre.run(&["index", root]).await.expect_code(0);
    assert!(out.stdout.contains("indexed "), "{}", out.stdout);

    let found = cadre.run(&["search", root, "parse config"]).await.expect_code(0);
    let first = found.stdout.lines().nth(1).unwrap_or_default();
    assert!(first.contains("src/parser.rs"), "the definition should rank first:\n{}", found.stdout);
    assert!(
        found.stdout.contains("lexical"),
        "without an embedder the mode says lexical:\n{}",
        found.stdout
    );

    let python =
        cadre.run(&["search", root, "render report", "--lang", "python"]).await.expect_code(0);
    assert!(python.stdout.contains("tools/report.py"), "{}", python.stdout);
    assert!(
        !python.stdout.contains("src/"),
        "the language filter must drop Rust files:\n{}",
        python.stdout
    );

    // An edit is seen after re-indexing just that file; the old name is gone.
    repo.write("src/server.rs", "pub struct WebsocketGateway { port: u16 }\n");
    cadre.run(&["index", root, "--only", "src/server.rs"]).await.expect_code(0);
    let renamed = cadre.run(&["search", root, "WebsocketGateway"]).await.expect_code(0);
    assert!(renamed.stdout.contains("src/server.rs"), "{}", renamed.stdout);
    // The path `src/server.rs` still matches the words of `HttpServer`, but no hit may carry the old symbol.
    let old = cadre.run(&["search", root, "HttpServer"]).await.expect_code(0);
    assert!(!old.stdout.contains("HttpServer"), "the old definition must be gone:\n{}", old.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn searching_a_repository_never_indexed_says_how_to_index_it() {
    let repo = Repo::new(PROJECT);
    let out = Cadre::new().run(&["search", repo.path().to_str().unwrap(), "anything"]).await;
    assert_eq!(out.code, 2, "{}\n{}", out.stdout, out.stderr);
    assert!(out.stderr.contains("cadre index"), "{}", out.stderr);
}
