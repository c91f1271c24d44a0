//! `cadre-knowledge`: what Cadre knows about a repository, on local disk — the embedded adapter of the
//! [`KnowledgeBase`](cadre_domain::ports::knowledge::KnowledgeBase) port.
//!
//! A repository is walked (honouring `.gitignore`; binaries, files over 1 MiB and minified files are
//! skipped with a note), each file is parsed with tree-sitter (Rust, Python, JavaScript, TypeScript,
//! Go, Java, C, C++) and cut into chunks along its syntax, and its definitions and references are
//! recorded. Files without a grammar, with a syntax error or with invalid UTF-8 are cut into line
//! windows, so they are still found.
//!
//! Key design decision: everything derived from a file is keyed by its **git blob id**, computed here,
//! so an index run re-parses only content it has never seen — after a commit, a checkout or an edit in
//! the editor alike — and identical or renamed files cost nothing. Metadata lives in SQLite (`kb_*`
//! tables); the lexical index is a purpose-built BM25 index in segment files (see `lexical`: why not
//! tantivy); vectors, when an [`Embedder`](cadre_domain::ports::knowledge::Embedder) is configured, go
//! to a [`VectorStore`](cadre_domain::ports::vectors::VectorStore) — [`EmbeddedVectorStore`] (flat and
//! exact, on disk) unless another, such as Vertex AI Vector Search, is plugged in — and lexical and
//! vector hits are fused by reciprocal rank.
//!
//! This crate must not call a model itself (vectors come through the `Embedder` port), must not
//! depend on another infra crate, and must never block the async runtime: every operation runs on the
//! blocking pool.

mod blob;
mod embedded;
mod indexer;
mod language;
mod lexical;
mod memory;
mod outline_api;
mod refs;
mod repo;
mod repomap;
mod search;
mod store;
mod symbols;
mod syntax;
mod vector_store;
mod vectors;
mod walk;

pub use embedded::{EmbeddedKnowledge, IndexStats, REPOSITORY_NAMESPACE};
pub use indexer::Progress;
pub use outline_api::{outline, FileOutline, OutlineChunk};
pub use vector_store::EmbeddedVectorStore;
pub use walk::IndexLimits;
