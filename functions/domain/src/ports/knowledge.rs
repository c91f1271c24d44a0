//! The knowledge-base port: what Cadre knows about a repository's code and history, so the agents are
//! shown the right code (and the team's past decisions) within a token budget.
//!
//! A repository is indexed into *chunks* cut along its syntax (functions, methods, types, impl blocks;
//! a long body split into parts that keep its signature as context), *symbols* (definitions and
//! references by name) and, when an [`Embedder`] is configured, vectors. Chunks are keyed by the file's
//! git blob id, so re-indexing touches only files whose content changed. Retrieval is lexical (BM25),
//! vector, or both fused; with no embedder it runs lexically and says so ([`RetrievalMode::LexicalOnly`]).
//! Long-term memory (decisions, conventions, past task outcomes) lives beside the index of each repository.
//!
//! [`KnowledgeBase::assemble_context`] is written here, over the other methods, so every adapter
//! (embedded SQLite, Firestore + Vertex) chooses context the same way: it is pure selection logic, no I/O.

use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::ids::TaskId;
use crate::time::Timestamp;

/// Which repository an index belongs to: an opaque key the adapter derives (the embedded one hashes the
/// repository's absolute path), so worktrees of one repository share one index.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RepoKey(String);

impl RepoKey {
    /// Wraps a key.
    #[must_use]
    pub fn new(key: impl Into<String>) -> RepoKey {
        RepoKey(key.into())
    }

    /// The key as text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RepoKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A source language, as far as chunking and symbols are concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Language {
    /// Rust.
    Rust,
    /// Python.
    Python,
    /// JavaScript (and JSX).
    JavaScript,
    /// TypeScript (and TSX).
    TypeScript,
    /// Go.
    Go,
    /// Java.
    Java,
    /// C.
    C,
    /// C++.
    Cpp,
    /// Any other text (docs, configuration, languages without a grammar here): indexed lexically.
    Text,
}

impl Language {
    /// Every language, for listings and parsing.
    pub const ALL: [Language; 9] = [
        Language::Rust,
        Language::Python,
        Language::JavaScript,
        Language::TypeScript,
        Language::Go,
        Language::Java,
        Language::C,
        Language::Cpp,
        Language::Text,
    ];

    /// The lowercase name used in filters and on the command line (`rust`, `typescript`, `cpp`, …).
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Language::Rust => "rust",
            Language::Python => "python",
            Language::JavaScript => "javascript",
            Language::TypeScript => "typescript",
            Language::Go => "go",
            Language::Java => "java",
            Language::C => "c",
            Language::Cpp => "cpp",
            Language::Text => "text",
        }
    }

    /// Parses a name as printed by [`Language::name`] (also `js`, `ts`, `c++`, `py`, `rs`).
    #[must_use]
    pub fn parse(name: &str) -> Option<Language> {
        let lower = name.trim().to_ascii_lowercase();
        let alias = match lower.as_str() {
            "rs" => "rust",
            "py" => "python",
            "js" | "jsx" => "javascript",
            "ts" | "tsx" => "typescript",
            "golang" => "go",
            "c++" | "cxx" => "cpp",
            other => other,
        };
        Language::ALL.into_iter().find(|l| l.name() == alias)
    }
}

impl fmt::Display for Language {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What part of a file a chunk is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChunkKind {
    /// A free function.
    Function,
    /// A function inside a type, impl block, trait or class.
    Method,
    /// A type: struct, enum, union, class, interface, trait, type alias.
    Type,
    /// A container kept whole because it is small: an impl block, a class body, a module.
    Container,
    /// Code between definitions: imports, constants, statements, gathered together.
    Other,
    /// A window of lines, for files without a grammar here or that did not parse.
    Lines,
}

/// One piece of indexed code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Chunk {
    /// Stable id: the git blob id of the file's content and the chunk's ordinal in it (`<blob>#<n>`).
    pub id: String,
    /// Repository-relative path, `/`-separated.
    pub path: String,
    /// The file's language.
    pub language: Language,
    /// What kind of code this is.
    pub kind: ChunkKind,
    /// The symbol it defines, when it defines one (e.g. `Parser::parse`).
    pub symbol: Option<String>,
    /// First line, 1-based.
    pub start_line: u32,
    /// Last line, 1-based, inclusive.
    pub end_line: u32,
    /// Text that frames a part of a longer definition: its signature, or the header of the impl
    /// block or class it sits in. `None` when the chunk is whole.
    pub context: Option<String>,
    /// The chunk's text.
    pub text: String,
}

/// How much of the repository [`KnowledgeBase::index`] looks at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IndexScope {
    /// Re-read and re-parse every file, ignoring what is indexed already.
    Full,
    /// Walk the repository; re-parse only files whose content (git blob id) changed, drop files that
    /// are gone. The normal choice after a commit or a checkout.
    Changed,
    /// Only these repository-relative paths (e.g. a file just saved in an editor): re-index those that
    /// exist, drop those that do not.
    Paths(Vec<String>),
}

/// Why a file was not indexed at all.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "reason")]
pub enum SkipReason {
    /// It holds NUL bytes: a binary.
    Binary,
    /// It is larger than the limit (typically generated data).
    TooLarge {
        /// Its size.
        bytes: u64,
        /// The limit.
        limit: u64,
    },
    /// Its lines are so long on average that it looks minified or generated.
    Minified {
        /// Average bytes per line.
        avg_line_bytes: u64,
    },
    /// It could not be read.
    Unreadable {
        /// What the system said.
        error: String,
    },
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SkipReason::Binary => f.write_str("binary (contains NUL bytes)"),
            SkipReason::TooLarge { bytes, limit } => {
                write!(f, "too large ({bytes} bytes, limit {limit})")
            }
            SkipReason::Minified { avg_line_bytes } => {
                write!(
                    f,
                    "looks minified or generated ({avg_line_bytes} bytes per line on average)"
                )
            }
            SkipReason::Unreadable { error } => write!(f, "unreadable: {error}"),
        }
    }
}

/// Why a file in a language with a grammar was indexed by line windows instead of by syntax.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "reason")]
pub enum LexicalReason {
    /// The parser found a syntax error; the file is still searchable.
    SyntaxError {
        /// The first line with an error, 1-based.
        line: u32,
    },
    /// The file is not valid UTF-8; it was decoded lossily.
    InvalidUtf8,
    /// The parser gave up (time or depth limit).
    ParseFailed,
}

impl fmt::Display for LexicalReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LexicalReason::SyntaxError { line } => write!(f, "syntax error at line {line}"),
            LexicalReason::InvalidUtf8 => f.write_str("not valid UTF-8 (decoded lossily)"),
            LexicalReason::ParseFailed => f.write_str("the parser gave up"),
        }
    }
}

/// A file and a note about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileNote<R> {
    /// Repository-relative path.
    pub path: String,
    /// The note.
    pub reason: R,
}

/// Whether vectors were computed during indexing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "status")]
pub enum VectorStatus {
    /// No embedder is configured: the index is lexical only.
    NoEmbedder,
    /// New chunks were embedded.
    Embedded {
        /// Chunks embedded in this run.
        chunks: u64,
    },
    /// The embedder failed; the lexical index is complete, vectors are missing for some chunks and are
    /// retried on the next index run.
    Failed {
        /// What went wrong.
        error: String,
    },
}

/// What an index run did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexReport {
    /// Files found by the walk (or listed in [`IndexScope::Paths`]).
    pub files_seen: u64,
    /// Files read, hashed and (when their blob was new) parsed in this run.
    pub files_indexed: u64,
    /// Files parsed and chunked in this run: those whose blob id was not indexed yet.
    pub files_parsed: u64,
    /// Files whose content was unchanged, so nothing was redone.
    pub files_unchanged: u64,
    /// Files dropped from the index because they are gone.
    pub files_removed: u64,
    /// Lines of the files indexed in this run.
    pub lines: u64,
    /// Bytes of the files indexed in this run.
    pub bytes: u64,
    /// Chunks added in this run.
    pub chunks_added: u64,
    /// Symbol definitions added in this run.
    pub symbols_added: u64,
    /// Files, chunks and definitions in the index after the run.
    pub totals: IndexTotals,
    /// Files not indexed, with why.
    pub skipped: Vec<FileNote<SkipReason>>,
    /// Files indexed by line windows instead of syntax, with why.
    pub lexical_only: Vec<FileNote<LexicalReason>>,
    /// Whether vectors were computed.
    pub vectors: VectorStatus,
    /// Wall time of the run, in milliseconds.
    pub elapsed_ms: u64,
}

/// Sizes of an index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct IndexTotals {
    /// Indexed files.
    pub files: u64,
    /// Chunks.
    pub chunks: u64,
    /// Symbol definitions.
    pub symbols: u64,
}

/// Which retrieval to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SearchMode {
    /// BM25 over a code-aware tokenization only.
    Lexical,
    /// Nearest neighbours of the query's embedding only.
    Vector,
    /// Both, fused by reciprocal rank; lexical alone when there is no embedder.
    #[default]
    Hybrid,
}

/// Restricts a search.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SearchFilter {
    /// Only paths starting with this (repository-relative, `/`-separated).
    pub path_prefix: Option<String>,
    /// Only these languages; all when empty.
    pub languages: Vec<Language>,
}

/// A search.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SearchQuery {
    /// Words, identifiers, paths or a question.
    pub text: String,
    /// Most hits returned.
    pub limit: usize,
    /// Which retrieval.
    pub mode: SearchMode,
    /// Restrictions.
    pub filter: SearchFilter,
}

impl SearchQuery {
    /// A hybrid search for `text` returning at most `limit` hits, unfiltered.
    #[must_use]
    pub fn new(text: impl Into<String>, limit: usize) -> SearchQuery {
        SearchQuery {
            text: text.into(),
            limit,
            mode: SearchMode::Hybrid,
            filter: SearchFilter::default(),
        }
    }
}

/// Which retrieval actually ran.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "mode")]
pub enum RetrievalMode {
    /// Lexical, as asked.
    Lexical,
    /// Vector, as asked.
    Vector,
    /// Lexical and vector, fused.
    Fused,
    /// Vector retrieval was asked for but could not run (no embedder, or it failed): lexical only.
    LexicalOnly {
        /// Why.
        reason: String,
    },
}

/// One search result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchHit {
    /// The chunk.
    pub chunk: Chunk,
    /// The score that ordered the hits: BM25, cosine similarity, or the fused RRF score.
    pub score: f64,
    /// Rank (1-based) in the lexical list, when it was there.
    pub lexical_rank: Option<u32>,
    /// Rank (1-based) in the vector list, when it was there.
    pub vector_rank: Option<u32>,
}

/// The hits of a search, best first, and how they were found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchResults {
    /// Hits, best first.
    pub hits: Vec<SearchHit>,
    /// Which retrieval ran.
    pub mode: RetrievalMode,
}

/// What a definition defines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SymbolKind {
    /// A free function.
    Function,
    /// A function of a type, trait or class.
    Method,
    /// A struct, class or record.
    Struct,
    /// An enum.
    Enum,
    /// A trait, interface or protocol.
    Trait,
    /// A type alias, typedef or union.
    TypeAlias,
    /// A constant or static.
    Constant,
    /// A module or namespace.
    Module,
    /// A macro.
    Macro,
}

/// Where a symbol is defined.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Definition {
    /// The name, unqualified (`parse`).
    pub name: String,
    /// What it is.
    pub kind: SymbolKind,
    /// The enclosing type, impl block, class or module, when there is one (`Parser`).
    pub container: Option<String>,
    /// Repository-relative path.
    pub path: String,
    /// First line, 1-based.
    pub line: u32,
    /// Last line, 1-based.
    pub end_line: u32,
    /// Its first line, trimmed, up to the body (`pub fn parse(&mut self) -> Result<Ast>`).
    pub signature: String,
}

/// A use of a name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reference {
    /// Repository-relative path.
    pub path: String,
    /// The line, 1-based.
    pub line: u32,
}

/// The answer to [`KnowledgeBase::lookup_symbol`].
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SymbolLookup {
    /// Definitions of the name.
    pub definitions: Vec<Definition>,
    /// Uses of the name that are not its definitions (syntactic: by name, not resolved by type).
    pub references: Vec<Reference>,
}

/// What a repository map is asked to emphasise.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct MapRequest {
    /// The most tokens the map may take.
    pub token_budget: usize,
    /// Files the task is about (their neighbours rank higher).
    pub focus_paths: Vec<String>,
    /// Identifiers the task mentions (their definitions rank higher).
    pub focus_symbols: Vec<String>,
}

/// One symbol shown in a map.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MapSymbol {
    /// The name.
    pub name: String,
    /// What it is.
    pub kind: SymbolKind,
    /// Its line, 1-based.
    pub line: u32,
    /// Its signature line.
    pub signature: String,
    /// Its importance (share of the ranking).
    pub rank: f64,
}

/// One file shown in a map.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MapFile {
    /// Repository-relative path.
    pub path: String,
    /// Its importance in the def-use graph (PageRank).
    pub rank: f64,
    /// Its key symbols, in line order.
    pub symbols: Vec<MapSymbol>,
}

/// A compact outline of the repository: its most important files and symbols, within a token budget.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RepoMap {
    /// Files, most important first.
    pub files: Vec<MapFile>,
    /// The map as prompt text.
    pub text: String,
    /// Estimated tokens of `text` (never more than the budget).
    pub tokens: usize,
    /// Whether symbols were left out to fit the budget.
    pub truncated: bool,
}

/// What a memory records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MemoryKind {
    /// An architectural decision and its reason.
    Decision,
    /// A convention of the codebase (naming, error handling, testing).
    Convention,
    /// What a past task asked, what it changed, and how it ended.
    TaskOutcome,
}

impl MemoryKind {
    /// The lowercase name (`decision`, `convention`, `task_outcome`).
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            MemoryKind::Decision => "decision",
            MemoryKind::Convention => "convention",
            MemoryKind::TaskOutcome => "task_outcome",
        }
    }

    /// Parses [`MemoryKind::name`].
    #[must_use]
    pub fn parse(name: &str) -> Option<MemoryKind> {
        [MemoryKind::Decision, MemoryKind::Convention, MemoryKind::TaskOutcome]
            .into_iter()
            .find(|k| k.name() == name)
    }
}

/// How a past task ended, for [`MemoryKind::TaskOutcome`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskVerdict {
    /// A person applied the change.
    Accepted,
    /// A person rejected the change.
    Rejected,
    /// The task failed before review.
    Failed,
}

/// A memory to store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewMemory {
    /// What it records.
    pub kind: MemoryKind,
    /// One line: the decision, the convention, or the task's goal.
    pub title: String,
    /// The details: the reason, examples, or what the task changed.
    pub body: String,
    /// Free labels (paths, areas) that help find it.
    pub tags: Vec<String>,
    /// The task it came from, if any.
    pub task: Option<TaskId>,
    /// How the task ended, for task outcomes.
    pub verdict: Option<TaskVerdict>,
    /// When it was learnt.
    pub at: Timestamp,
}

/// A stored memory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Memory {
    /// Its id within the repository.
    pub id: u64,
    /// What was stored.
    pub memory: NewMemory,
    /// How well it matched the query (0 when listed without one).
    pub score: f64,
}

/// Which memories to recall.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct MemoryQuery {
    /// Words to match; the most recent memories when empty.
    pub text: String,
    /// Only these kinds; all when empty.
    pub kinds: Vec<MemoryKind>,
    /// Most memories returned.
    pub limit: usize,
}

/// What context to assemble for an agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContextRequest {
    /// The task's goal (or the plan item), used as the search query.
    pub goal: String,
    /// The most tokens all parts together may take.
    pub token_budget: usize,
    /// Share of the budget the repository map may take (0 for none).
    pub map_share: f32,
    /// Share of the budget memories may take (0 for none).
    pub memory_share: f32,
    /// Restricts the chunks.
    pub filter: SearchFilter,
}

impl ContextRequest {
    /// A request with the default shares: a quarter for the map, a tenth for memories, the rest chunks.
    #[must_use]
    pub fn new(goal: impl Into<String>, token_budget: usize) -> ContextRequest {
        ContextRequest {
            goal: goal.into(),
            token_budget,
            map_share: 0.25,
            memory_share: 0.10,
            filter: SearchFilter::default(),
        }
    }
}

/// One item chosen for a context, as recorded for evaluation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "item")]
pub enum ContextChoice {
    /// The repository map.
    Map {
        /// Its tokens.
        tokens: usize,
        /// Files it shows.
        files: usize,
    },
    /// A chunk.
    Chunk {
        /// The chunk id.
        id: String,
        /// Its path.
        path: String,
        /// Its lines.
        lines: (u32, u32),
        /// Its retrieval score.
        score: f64,
        /// Its tokens.
        tokens: usize,
    },
    /// A memory.
    Memory {
        /// The memory id.
        id: u64,
        /// Its tokens.
        tokens: usize,
    },
}

/// The context chosen for an agent, and the record of the choice.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AssembledContext {
    /// The repository map, when it had a share and fit.
    pub map: Option<RepoMap>,
    /// Chunks, best first, none overlapping another.
    pub chunks: Vec<SearchHit>,
    /// Memories, best first.
    pub memories: Vec<Memory>,
    /// Estimated tokens of everything chosen.
    pub tokens: usize,
    /// The budget it was chosen within.
    pub token_budget: usize,
    /// How the chunks were retrieved.
    pub mode: RetrievalMode,
    /// What was chosen, in order, for the task's record.
    pub choices: Vec<ContextChoice>,
}

impl AssembledContext {
    /// The context as prompt text: memories, then the map, then the chunks with `path:lines` headers.
    #[must_use]
    pub fn render(&self) -> String {
        let mut out = String::new();
        if !self.memories.is_empty() {
            out.push_str("## What this team decided before\n");
            for m in &self.memories {
                out.push_str(&render_memory(m));
            }
        }
        if let Some(map) = &self.map {
            out.push_str("\n## Repository map\n");
            out.push_str(&map.text);
        }
        for hit in &self.chunks {
            out.push_str(&render_chunk(&hit.chunk));
        }
        out
    }
}

/// An estimate of a text's tokens (4 bytes a token, rounded up), the same for every adapter so budgets
/// mean the same thing everywhere. Real tokenizers give 3–5 bytes a token for code.
#[must_use]
pub fn estimate_tokens(text: &str) -> usize {
    text.len().div_ceil(4)
}

fn render_memory(m: &Memory) -> String {
    let verdict = match m.memory.verdict {
        Some(TaskVerdict::Accepted) => " (accepted)",
        Some(TaskVerdict::Rejected) => " (rejected)",
        Some(TaskVerdict::Failed) => " (failed)",
        None => "",
    };
    let mut out = format!("- [{}] {}{}\n", m.memory.kind.name(), m.memory.title, verdict);
    for line in m.memory.body.lines() {
        out.push_str("  ");
        out.push_str(line);
        out.push('\n');
    }
    out
}

fn render_chunk(chunk: &Chunk) -> String {
    let mut out = format!("\n## {}:{}-{}\n```\n", chunk.path, chunk.start_line, chunk.end_line);
    if let Some(context) = &chunk.context {
        out.push_str(context);
        out.push_str("\n    …\n");
    }
    out.push_str(&chunk.text);
    if !chunk.text.ends_with('\n') {
        out.push('\n');
    }
    out.push_str("```\n");
    out
}

/// Why an embedding call failed.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum EmbedError {
    /// The provider is busy or unreachable for now.
    #[error("embedding provider unavailable: {0}")]
    Unavailable(String),
    /// The provider asked to slow down.
    #[error("embedding provider rate limit; retry after {retry_after_ms:?} ms")]
    RateLimited {
        /// How long it asked to wait, if it said.
        retry_after_ms: Option<u64>,
    },
    /// The provider refused the request (bad key, bad model id, input too long).
    #[error("embedding request refused: {0}")]
    Refused(String),
    /// The answer had the wrong number of vectors or the wrong dimensions.
    #[error("malformed embedding reply: {0}")]
    Malformed(String),
}

impl EmbedError {
    /// Whether the same call may succeed later.
    #[must_use]
    pub fn is_retryable(&self) -> bool {
        matches!(self, EmbedError::Unavailable(_) | EmbedError::RateLimited { .. })
    }
}

/// What a text is embedded for; some models embed queries and documents differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EmbedPurpose {
    /// A chunk to be found.
    Document,
    /// A query to find chunks with.
    Query,
}

/// Turns texts into vectors (through the model gateway in production).
#[async_trait::async_trait]
pub trait Embedder: Send + Sync {
    /// The model id; stored with the vectors, so a change of model re-embeds the index.
    fn model_id(&self) -> String;

    /// The length of every vector.
    fn dimensions(&self) -> usize;

    /// One vector per text, in order.
    ///
    /// # Errors
    /// MUST return exactly one vector of [`Embedder::dimensions`] numbers per text, or
    /// [`EmbedError::Malformed`]; [`EmbedError::RateLimited`] and [`EmbedError::Unavailable`] MUST be
    /// used for failures a retry may cure, so callers can tell them apart.
    async fn embed(
        &self,
        texts: &[String],
        purpose: EmbedPurpose,
    ) -> Result<Vec<Vec<f32>>, EmbedError>;
}

/// Why a knowledge-base operation failed.
#[derive(Debug, thiserror::Error)]
pub enum KnowledgeError {
    /// The repository was never indexed.
    #[error("no index for repository {repo}; run `cadre index PATH` on it first")]
    NotIndexed {
        /// The repository.
        repo: RepoKey,
    },
    /// The directory to index cannot be read.
    #[error("cannot index {path}: {reason}; give the path of a readable directory")]
    BadRoot {
        /// The directory.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A path given to the index escapes the repository or is not relative.
    #[error("refusing path `{path}`: {why}")]
    BadPath {
        /// The path.
        path: String,
        /// Why.
        why: String,
    },
    /// A query that cannot be run.
    #[error("invalid query `{query}`: {why}")]
    BadQuery {
        /// The query.
        query: String,
        /// Why.
        why: String,
    },
    /// No memory has this id.
    #[error("no memory {id} in repository {repo}; list them with recall")]
    MemoryNotFound {
        /// The repository.
        repo: RepoKey,
        /// The id.
        id: u64,
    },
    /// The backend is busy or unreachable for now.
    #[error("knowledge base unavailable: {0}")]
    Unavailable(String),
    /// Stored data cannot be decoded; re-index with [`IndexScope::Full`].
    #[error(
        "knowledge index is corrupt or of another version: {0}; re-index with `cadre index --full`"
    )]
    Corrupt(String),
}

impl KnowledgeError {
    /// Whether the same call may succeed later.
    #[must_use]
    pub fn is_retryable(&self) -> bool {
        matches!(self, KnowledgeError::Unavailable(_))
    }
}

/// What Cadre knows about repositories: their code, its symbols, and what the team learnt.
#[async_trait::async_trait]
pub trait KnowledgeBase: Send + Sync {
    /// The key of the repository a task names (its `repo`), so steps in any process reach the same
    /// index without knowing how the adapter identifies repositories.
    ///
    /// # Errors
    /// MUST return [`KnowledgeError::BadRoot`] when the adapter cannot identify `repo` (e.g. a path
    /// that does not exist).
    fn key_for(&self, repo: &str) -> Result<RepoKey, KnowledgeError>;

    /// The first line (1-based) with a syntax error when `text` is parsed as the file `path`, so an
    /// agent's edit that breaks the syntax is refused before it is kept. `None` when it parses, and
    /// when the adapter has no parser for the language (then nothing can be said).
    fn syntax_error(&self, path: &str, text: &str) -> Option<u32> {
        let _ = (path, text);
        None
    }

    /// Indexes the files under `root` (a checkout of `repo`), respecting `.gitignore`.
    ///
    /// # Errors
    /// MUST return [`KnowledgeError::BadRoot`], writing nothing, when `root` is not a readable directory,
    /// and [`KnowledgeError::BadPath`] for a path in [`IndexScope::Paths`] that is absolute or escapes
    /// `root`. A file that is binary, larger than the limit or minified MUST be skipped and listed in
    /// [`IndexReport::skipped`] with its reason, not fail the run; a file with a syntax error or invalid
    /// UTF-8 MUST still be indexed (by line windows) and listed in [`IndexReport::lexical_only`].
    /// With [`IndexScope::Changed`] a file whose blob id is unchanged MUST NOT be parsed again, and a
    /// file that is gone MUST disappear from every later result.
    async fn index(
        &self,
        repo: &RepoKey,
        root: &Path,
        scope: IndexScope,
    ) -> Result<IndexReport, KnowledgeError>;

    /// Drops one file from the index; `Ok(false)` when it was not indexed.
    ///
    /// # Errors
    /// MUST return [`KnowledgeError::NotIndexed`] for a repository never indexed.
    async fn remove_file(&self, repo: &RepoKey, path: &str) -> Result<bool, KnowledgeError>;

    /// Chunks matching a query, best first.
    ///
    /// # Errors
    /// MUST return [`KnowledgeError::NotIndexed`] for a repository never indexed and
    /// [`KnowledgeError::BadQuery`] for a query with no searchable word. When vector retrieval is asked
    /// for but no embedder is configured (or it fails), the search MUST still run lexically and say so
    /// with [`RetrievalMode::LexicalOnly`].
    async fn search(
        &self,
        repo: &RepoKey,
        query: &SearchQuery,
    ) -> Result<SearchResults, KnowledgeError>;

    /// Definitions of a name and its references, at most `limit` of each.
    ///
    /// # Errors
    /// MUST return [`KnowledgeError::NotIndexed`] for a repository never indexed; an unknown name is
    /// an empty answer, not an error.
    async fn lookup_symbol(
        &self,
        repo: &RepoKey,
        name: &str,
        limit: usize,
    ) -> Result<SymbolLookup, KnowledgeError>;

    /// The repository's files and key symbols ranked by importance, cut to the token budget.
    ///
    /// # Errors
    /// MUST return [`KnowledgeError::NotIndexed`] for a repository never indexed. The map's
    /// [`RepoMap::tokens`] MUST NOT exceed [`MapRequest::token_budget`].
    async fn repo_map(
        &self,
        repo: &RepoKey,
        request: &MapRequest,
    ) -> Result<RepoMap, KnowledgeError>;

    /// Stores a memory for the repository (which need not be indexed) and returns its id.
    ///
    /// # Errors
    /// MUST return [`KnowledgeError::Unavailable`] when it could not be stored; after `Ok` a
    /// [`KnowledgeBase::recall`] with no text MUST list it.
    async fn remember(&self, repo: &RepoKey, memory: &NewMemory) -> Result<u64, KnowledgeError>;

    /// Memories matching the query, best first (most recent first when the query has no text).
    ///
    /// # Errors
    /// MUST return [`KnowledgeError::Unavailable`] when they cannot be read; a repository without
    /// memories gives an empty list.
    async fn recall(
        &self,
        repo: &RepoKey,
        query: &MemoryQuery,
    ) -> Result<Vec<Memory>, KnowledgeError>;

    /// Deletes a memory.
    ///
    /// # Errors
    /// MUST return [`KnowledgeError::MemoryNotFound`] for an unknown id.
    async fn forget(&self, repo: &RepoKey, id: u64) -> Result<(), KnowledgeError>;

    /// Chooses the context for an agent working on `request.goal`: memories, the repository map and the
    /// best chunks, within the token budget, with no chunk twice and none overlapping another.
    ///
    /// # Errors
    /// MUST return [`KnowledgeError::NotIndexed`] for a repository never indexed. The result's
    /// [`AssembledContext::tokens`] MUST NOT exceed [`ContextRequest::token_budget`].
    async fn assemble_context(
        &self,
        repo: &RepoKey,
        request: &ContextRequest,
    ) -> Result<AssembledContext, KnowledgeError> {
        let budget = request.token_budget;
        let mut choices = Vec::new();
        let mut used = 0usize;

        let memory_budget = share(budget, request.memory_share);
        let mut memories = Vec::new();
        if memory_budget > 0 {
            let query = MemoryQuery { text: request.goal.clone(), kinds: Vec::new(), limit: 20 };
            let mut memory_used = 0usize;
            let mut seen = HashSet::new();
            for m in self.recall(repo, &query).await? {
                let tokens = estimate_tokens(&render_memory(&m));
                if m.score <= 0.0 || !seen.insert(m.id) || memory_used + tokens > memory_budget {
                    continue;
                }
                memory_used += tokens;
                choices.push(ContextChoice::Memory { id: m.id, tokens });
                memories.push(m);
            }
            used += memory_used;
        }

        // Retrieve first, so the map can be focused on the files the best chunks come from.
        let query = SearchQuery {
            text: request.goal.clone(),
            limit: 60,
            mode: SearchMode::Hybrid,
            filter: request.filter.clone(),
        };
        let results = match self.search(repo, &query).await {
            Ok(results) => results,
            Err(KnowledgeError::BadQuery { .. }) => {
                SearchResults { hits: Vec::new(), mode: RetrievalMode::Lexical }
            }
            Err(other) => return Err(other),
        };

        let map_budget = share(budget, request.map_share).min(budget.saturating_sub(used));
        let mut map = None;
        if map_budget > 0 {
            let mut focus_paths: Vec<String> = Vec::new();
            for hit in results.hits.iter().take(5) {
                if !focus_paths.contains(&hit.chunk.path) {
                    focus_paths.push(hit.chunk.path.clone());
                }
            }
            let request = MapRequest {
                token_budget: map_budget,
                focus_paths,
                focus_symbols: identifiers(&request.goal),
            };
            let built = self.repo_map(repo, &request).await?;
            if !built.files.is_empty() && built.tokens <= map_budget {
                used += built.tokens;
                choices.push(ContextChoice::Map { tokens: built.tokens, files: built.files.len() });
                map = Some(built);
            }
        }

        let mut chunks: Vec<SearchHit> = Vec::new();
        for hit in results.hits {
            let overlaps = chunks.iter().any(|c| {
                c.chunk.id == hit.chunk.id
                    || (c.chunk.path == hit.chunk.path
                        && c.chunk.start_line <= hit.chunk.end_line
                        && hit.chunk.start_line <= c.chunk.end_line)
            });
            if overlaps {
                continue;
            }
            let tokens = estimate_tokens(&render_chunk(&hit.chunk));
            if used + tokens > budget {
                continue;
            }
            used += tokens;
            choices.push(ContextChoice::Chunk {
                id: hit.chunk.id.clone(),
                path: hit.chunk.path.clone(),
                lines: (hit.chunk.start_line, hit.chunk.end_line),
                score: hit.score,
                tokens,
            });
            chunks.push(hit);
        }

        Ok(AssembledContext {
            map,
            chunks,
            memories,
            tokens: used,
            token_budget: budget,
            mode: results.mode,
            choices,
        })
    }
}

/// `budget × share`, rounded down, with the share clamped to 0..=1.
fn share(budget: usize, share: f32) -> usize {
    let share = f64::from(share.clamp(0.0, 1.0));
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss, clippy::cast_precision_loss)]
    let tokens = (budget as f64 * share).floor() as usize;
    tokens.min(budget)
}

/// Identifier-like words of a goal (`parse_config`, `HttpClient`, `Parser`), as hints for the map. A
/// merely capitalised word counts only inside a sentence, so "Make …" is not taken for a type.
fn identifiers(goal: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut sentence_start = true;
    let mut word = String::new();
    for c in goal.chars().chain(std::iter::once(' ')) {
        if c.is_alphanumeric() || c == '_' {
            word.push(c);
            continue;
        }
        if !word.is_empty() {
            let inner_upper = word.chars().skip(1).any(char::is_uppercase);
            let capitalised = word.chars().next().is_some_and(char::is_uppercase);
            let looks_like_code = word.contains('_')
                || inner_upper
                || (capitalised && !sentence_start && word.len() > 3);
            if word.len() >= 3 && looks_like_code && !out.contains(&word) {
                out.push(word.clone());
            }
            word.clear();
            sentence_start = false;
        }
        if matches!(c, '.' | '!' | '?' | '\n') {
            sentence_start = true;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn languages_parse_from_names_and_aliases() {
        for l in Language::ALL {
            assert_eq!(Language::parse(l.name()), Some(l));
        }
        assert_eq!(Language::parse("TS"), Some(Language::TypeScript));
        assert_eq!(Language::parse("c++"), Some(Language::Cpp));
        assert_eq!(Language::parse("cobol"), None);
    }

    #[test]
    fn goal_identifiers_are_code_like_words() {
        assert_eq!(
            identifiers("Make parse_config accept HttpClient and the Parser. Then stop"),
            vec!["parse_config".to_owned(), "HttpClient".to_owned(), "Parser".to_owned()]
        );
    }

    #[test]
    fn shares_are_clamped() {
        assert_eq!(share(1000, 0.25), 250);
        assert_eq!(share(1000, 7.0), 1000);
        assert_eq!(share(1000, -1.0), 0);
    }

    #[test]
    fn only_unavailable_is_retryable() {
        assert!(KnowledgeError::Unavailable("busy".into()).is_retryable());
        assert!(!KnowledgeError::NotIndexed { repo: RepoKey::new("r") }.is_retryable());
        assert!(EmbedError::RateLimited { retry_after_ms: None }.is_retryable());
        assert!(!EmbedError::Refused("bad key".into()).is_retryable());
    }
}
