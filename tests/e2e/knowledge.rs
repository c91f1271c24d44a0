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

/// A local server speaking OpenAI's `/v1/embeddings` wire format. Its vectors are hashed bags of
/// lowercase words (8 dimensions): not a language model, but deterministic and close for texts that
/// share words, which is what this test needs to see the vector path work end to end.
async fn embeddings_server() -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use axum::routing::post;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let calls = std::sync::Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let app = axum::Router::new().route(
        "/v1/embeddings",
        post(move |axum::Json(body): axum::Json<serde_json::Value>| {
            let counter = counter.clone();
            async move {
                counter.fetch_add(1, Ordering::SeqCst);
                let inputs: Vec<String> = match &body["input"] {
                    serde_json::Value::Array(items) => {
                        items.iter().map(|i| i.as_str().unwrap_or_default().to_owned()).collect()
                    }
                    other => vec![other.as_str().unwrap_or_default().to_owned()],
                };
                let data: Vec<serde_json::Value> = inputs
                    .iter()
                    .enumerate()
                    .map(|(index, text)| {
                        let mut v = [0f32; 8];
                        for word in
                            text.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty())
                        {
                            let h = word
                                .to_lowercase()
                                .bytes()
                                .fold(7u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)));
                            v[(h % 8) as usize] += 1.0;
                        }
                        serde_json::json!({"object": "embedding", "index": index, "embedding": v})
                    })
                    .collect();
                axum::Json(serde_json::json!({
                    "object": "list", "data": data, "model": "hashed-words",
                    "usage": {"prompt_tokens": inputs.len(), "total_tokens": inputs.len()}
                }))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, calls)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_an_embedder_configured_search_fuses_lexical_and_vector_retrieval() {
    let (url, calls) = embeddings_server().await;
    let repo = Repo::new(PROJECT);
    let cadre = Cadre::new()
        .env("CADRE_EMBED", &format!("openai:hashed-words@{url}"))
        .env("CADRE_EMBED_DIMS", "8");
    let root = repo.path().to_str().unwrap();
    let out = cadre.run(&["index", root]).await.expect_code(0);
    assert!(out.stdout.contains("indexed "), "{}", out.stdout);
    assert!(
        calls.load(std::sync::atomic::Ordering::SeqCst) > 0,
        "chunks were embedded at index time"
    );
    let found = cadre.run(&["search", root, "parse config"]).await.expect_code(0);
    assert!(found.stdout.contains("lexical + vector (fused)"), "{}", found.stdout);
    let first = found.stdout.lines().nth(1).unwrap_or_default();
    assert!(first.contains("src/parser.rs"), "{}", found.stdout);
    // A bad spec is refused with the fix.
    let bad =
        Cadre::new().env("CADRE_EMBED", "word2vec").run(&["index", root]).await.expect_code(2);
    assert!(bad.stderr.contains("use gemini[:MODEL] or openai:MODEL@BASE_URL"), "{}", bad.stderr);
}
