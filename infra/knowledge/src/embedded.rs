//! [`EmbeddedKnowledge`]: the knowledge base on local disk, one directory per repository
//! (`<dir>/<repo key>/index.sqlite` and `lexical/seg-*.bin`).
//!
//! Every operation runs on tokio's blocking pool and takes the repository's lock; indexes stay open
//! (and their segments in memory) after first use, so a search costs no file reads but the chunk rows.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use cadre_domain::ports::knowledge::{
    EmbedPurpose, Embedder, IndexReport, IndexScope, IndexTotals, KnowledgeBase, KnowledgeError,
    MapRequest, Memory, MemoryQuery, NewMemory, RepoKey, RepoMap, SearchMode, SearchQuery,
    SearchResults, SymbolLookup, VectorStatus,
};
use cadre_domain::ports::vectors::{NearestQuery, Restrict, VectorRecord, VectorStore};
use rusqlite::params;
use sha2::{Digest, Sha256};

use crate::indexer::{self, Progress};
use crate::repo::RepoIndex;
use crate::search::QueryVector;
use crate::store::{self, unavailable};
use crate::walk::IndexLimits;

/// Chunks embedded per call to the embedder.
const EMBED_BATCH: usize = 32;
/// Bytes of a chunk sent to the embedder (models take 512–8192 tokens).
const EMBED_MAX_BYTES: usize = 6000;

type Repos = Arc<Mutex<HashMap<RepoKey, Arc<Mutex<RepoIndex>>>>>;

/// The restrict namespace naming a record's repository in the vector store.
pub const REPOSITORY_NAMESPACE: &str = "repository";

/// The embedded knowledge base.
pub struct EmbeddedKnowledge {
    dir: PathBuf,
    embedder: Option<Arc<dyn Embedder>>,
    /// Where chunk vectors live: an [`crate::EmbeddedVectorStore`] beside the indexes by default.
    vectors: Arc<dyn VectorStore>,
    limits: IndexLimits,
    repos: Repos,
}

/// Sizes of one repository's index, for `cadre index` and benchmarks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexStats {
    /// Files, chunks and definitions.
    pub totals: IndexTotals,
    /// Lexical segments.
    pub segments: usize,
    /// Chunks with a vector.
    pub vectors: usize,
    /// Bytes on disk (database, its log, segments).
    pub disk_bytes: u64,
}

impl EmbeddedKnowledge {
    /// A knowledge base keeping its indexes under `dir` (created when missing), without an embedder:
    /// retrieval is lexical until [`EmbeddedKnowledge::with_embedder`] is used.
    ///
    /// # Errors
    /// [`KnowledgeError::Unavailable`] when `dir` cannot be created.
    pub fn open(dir: impl Into<PathBuf>) -> Result<EmbeddedKnowledge, KnowledgeError> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir).map_err(|e| {
            KnowledgeError::Unavailable(format!(
                "cannot create the knowledge directory {}: {e}; check its permissions or pass another --home",
                dir.display()
            ))
        })?;
        let vectors = crate::EmbeddedVectorStore::open(&dir.join("vectors.sqlite"))
            .map_err(|e| KnowledgeError::Unavailable(e.to_string()))?;
        Ok(EmbeddedKnowledge {
            dir,
            embedder: None,
            vectors: Arc::new(vectors),
            limits: IndexLimits::default(),
            repos: Repos::default(),
        })
    }

    /// Computes vectors with `embedder` at index time and uses them in searches.
    #[must_use]
    pub fn with_embedder(mut self, embedder: Arc<dyn Embedder>) -> EmbeddedKnowledge {
        self.embedder = Some(embedder);
        self
    }

    /// Keeps chunk vectors in `store` (e.g. Vertex AI Vector Search) instead of the embedded one.
    /// Records are named `<repo key>/<chunk>` and restricted to [`REPOSITORY_NAMESPACE`] = the key.
    #[must_use]
    pub fn with_vector_store(mut self, store: Arc<dyn VectorStore>) -> EmbeddedKnowledge {
        self.vectors = store;
        self
    }

    /// Replaces the limits on what is indexed.
    #[must_use]
    pub fn with_limits(mut self, limits: IndexLimits) -> EmbeddedKnowledge {
        self.limits = limits;
        self
    }

    /// The key of the repository at `path`: a hash of its absolute, canonical path, so every way of
    /// naming the directory finds the same index.
    ///
    /// # Errors
    /// [`KnowledgeError::BadRoot`] when the path does not exist.
    pub fn repo_key(path: &Path) -> Result<RepoKey, KnowledgeError> {
        let canonical = path.canonicalize().map_err(|e| KnowledgeError::BadRoot {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        let digest = Sha256::digest(canonical.to_string_lossy().as_bytes());
        Ok(RepoKey::new(hex(&digest[..16])))
    }

    /// [`KnowledgeBase::index`], reporting progress to `progress` (from a worker thread).
    ///
    /// # Errors
    /// As [`KnowledgeBase::index`].
    pub async fn index_with_progress(
        &self,
        repo: &RepoKey,
        root: &Path,
        scope: IndexScope,
        progress: Arc<dyn Fn(Progress) + Send + Sync>,
    ) -> Result<IndexReport, KnowledgeError> {
        let root = root.to_path_buf();
        let limits = self.limits;
        let mut report = self
            .with_repo(repo, true, move |r| indexer::run(r, &root, &scope, &limits, &*progress))
            .await?;
        self.remove_stale_vectors(repo).await?;
        if let Some(embedder) = &self.embedder {
            report.vectors = self.embed_missing(repo, embedder.as_ref()).await?;
        }
        Ok(report)
    }

    /// Sizes of a repository's index.
    ///
    /// # Errors
    /// [`KnowledgeError::NotIndexed`] for a repository never indexed.
    pub async fn stats(&self, repo: &RepoKey) -> Result<IndexStats, KnowledgeError> {
        let key = repo.clone();
        self.with_repo(repo, false, move |r| {
            require_indexed(r, &key)?;
            Ok(IndexStats {
                totals: indexer::totals(r)?,
                segments: r.state.lexical.segments.len(),
                vectors: r.state.embedded.len(),
                disk_bytes: dir_size(&r.dir),
            })
        })
        .await
    }

    fn repo_dir(&self, key: &RepoKey) -> PathBuf {
        let safe = !key.as_str().is_empty()
            && key.as_str().len() <= 64
            && key.as_str().bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if safe {
            self.dir.join(key.as_str())
        } else {
            self.dir.join(hex(&Sha256::digest(key.as_str().as_bytes())[..16]))
        }
    }

    /// Runs `f` on the repository's index on the blocking pool. Without `create`, a repository with no
    /// index directory is [`KnowledgeError::NotIndexed`].
    async fn with_repo<T: Send + 'static>(
        &self,
        key: &RepoKey,
        create: bool,
        f: impl FnOnce(&mut RepoIndex) -> Result<T, KnowledgeError> + Send + 'static,
    ) -> Result<T, KnowledgeError> {
        let dir = self.repo_dir(key);
        let repos = self.repos.clone();
        let key = key.clone();
        tokio::task::spawn_blocking(move || {
            let repo = {
                let mut map = repos.lock().map_err(|_| {
                    KnowledgeError::Unavailable("the index table lock is poisoned".into())
                })?;
                match map.get(&key) {
                    Some(repo) => repo.clone(),
                    None => {
                        if !create && !dir.join("index.sqlite").exists() {
                            return Err(KnowledgeError::NotIndexed { repo: key });
                        }
                        let repo = Arc::new(Mutex::new(RepoIndex::open(&dir)?));
                        map.insert(key.clone(), repo.clone());
                        repo
                    }
                }
            };
            let Ok(mut guard) = repo.lock() else {
                // An earlier operation panicked half-way: forget the in-memory state, reopen next time.
                if let Ok(mut map) = repos.lock() {
                    map.remove(&key);
                }
                return Err(KnowledgeError::Unavailable(format!(
                    "the index of {key} was left inconsistent by a failed operation; retry"
                )));
            };
            guard.refresh()?;
            f(&mut guard)
        })
        .await
        .map_err(|e| KnowledgeError::Unavailable(format!("index task failed: {e}")))?
    }

    /// Embeds every chunk without a vector; a failure leaves the rest for the next run.
    async fn embed_missing(
        &self,
        repo: &RepoKey,
        embedder: &dyn Embedder,
    ) -> Result<VectorStatus, KnowledgeError> {
        // `store:` marks indexes whose vectors live in the vector store (older ones kept them here).
        let model = format!("store:{}@{}", embedder.model_id(), embedder.dimensions());
        let missing: Vec<u32> = self
            .with_repo(repo, false, move |r| {
                if store::meta(&r.conn, "embed_model")?.as_deref() != Some(model.as_str()) {
                    r.conn
                        .execute("DELETE FROM kb_vectors", [])
                        .map_err(|e| unavailable("drop old vectors", e))?;
                    let old: Vec<u32> = r.state.embedded.drain().collect();
                    r.state.stale_vectors.extend(old);
                    store::set_meta(&r.conn, "embed_model", &model)?;
                }
                let mut ids: Vec<u32> = r
                    .state
                    .chunk_blob
                    .keys()
                    .copied()
                    .filter(|c| !r.state.embedded.contains(c))
                    .collect();
                ids.sort_unstable();
                Ok(ids)
            })
            .await?;
        self.remove_stale_vectors(repo).await?;
        let mut embedded = 0u64;
        for batch in missing.chunks(EMBED_BATCH) {
            let ids = batch.to_vec();
            let texts: Vec<String> = self
                .with_repo(repo, false, move |r| ids.iter().map(|&id| embed_text(r, id)).collect())
                .await?;
            let vectors = match embedder.embed(&texts, EmbedPurpose::Document).await {
                Ok(v)
                    if v.len() == texts.len()
                        && v.iter().all(|x| x.len() == embedder.dimensions()) =>
                {
                    v
                }
                Ok(v) => {
                    let error = format!(
                        "the embedder returned {} vectors for {} texts, or wrong dimensions",
                        v.len(),
                        texts.len()
                    );
                    return Ok(VectorStatus::Failed { error });
                }
                Err(e) => return Ok(VectorStatus::Failed { error: e.to_string() }),
            };
            let restricts = vec![Restrict::new(REPOSITORY_NAMESPACE, [repo.as_str()])];
            let records: Vec<VectorRecord> = batch
                .iter()
                .zip(vectors)
                .map(|(&id, vector)| VectorRecord {
                    id: vector_id(repo, id),
                    vector,
                    restricts: restricts.clone(),
                })
                .collect();
            if let Err(e) = self.vectors.upsert(&records).await {
                return Ok(VectorStatus::Failed { error: e.to_string() });
            }
            let ids = batch.to_vec();
            self.with_repo(repo, false, move |r| {
                let tx = r.conn.transaction().map_err(|e| unavailable("record vectors", e))?;
                for id in &ids {
                    // The vector itself lives in the store; this row says the store has it.
                    tx.execute(
                        "INSERT OR REPLACE INTO kb_vectors (chunk, vector) VALUES (?1, x'')",
                        params![id],
                    )
                    .map_err(|e| unavailable("record vectors", e))?;
                }
                tx.commit().map_err(|e| unavailable("record vectors", e))?;
                r.state.embedded.extend(ids);
                Ok(())
            })
            .await?;
            embedded += batch.len() as u64;
        }
        Ok(VectorStatus::Embedded { chunks: embedded })
    }

    /// Removes from the vector store the vectors of chunks gone from the index. A failure keeps them
    /// for the next run: until then searches skip them, as they name no live chunk.
    async fn remove_stale_vectors(&self, repo: &RepoKey) -> Result<(), KnowledgeError> {
        let stale: Vec<u32> =
            self.with_repo(repo, false, |r| Ok(std::mem::take(&mut r.state.stale_vectors))).await?;
        if stale.is_empty() {
            return Ok(());
        }
        let ids: Vec<String> = stale.iter().map(|&c| vector_id(repo, c)).collect();
        if let Err(error) = self.vectors.remove(&ids).await {
            tracing::warn!(%error, vectors = ids.len(), "stale vectors kept for the next index run");
            self.with_repo(repo, false, move |r| {
                r.state.stale_vectors.extend(stale);
                Ok(())
            })
            .await?;
        }
        Ok(())
    }

    /// The query's nearest chunks from the vector store, or why vector retrieval cannot run.
    async fn nearest(
        &self,
        repo: &RepoKey,
        query: &SearchQuery,
        embedder: &dyn Embedder,
    ) -> QueryVector {
        let vector = match embedder
            .embed(std::slice::from_ref(&query.text), EmbedPurpose::Query)
            .await
        {
            Ok(mut v) if v.len() == 1 => v.remove(0),
            Ok(v) => {
                return QueryVector::Unavailable(format!(
                    "the embedder returned {} vectors for 1 query",
                    v.len()
                ))
            }
            Err(error) => return QueryVector::Unavailable(format!("the embedder failed: {error}")),
        };
        let request = NearestQuery {
            vector,
            k: (query.limit.max(1) * 3).max(30),
            restricts: vec![Restrict::new(REPOSITORY_NAMESPACE, [repo.as_str()])],
        };
        match self.vectors.nearest(&request).await {
            Ok(neighbors) => QueryVector::Ready(
                neighbors
                    .into_iter()
                    .filter_map(|n| Some((chunk_of_vector_id(repo, &n.id)?, n.score)))
                    .collect(),
            ),
            Err(error) => QueryVector::Unavailable(format!("the vector store failed: {error}")),
        }
    }
}

/// The vector store's id of a chunk: unique across repositories sharing one store.
fn vector_id(repo: &RepoKey, chunk: u32) -> String {
    format!("{repo}/{chunk}")
}

fn chunk_of_vector_id(repo: &RepoKey, id: &str) -> Option<u32> {
    id.strip_prefix(repo.as_str())?.strip_prefix('/')?.parse().ok()
}

/// What is embedded for a chunk: its symbol and context, then its text, cut to a size models take.
fn embed_text(r: &RepoIndex, id: u32) -> Result<String, KnowledgeError> {
    let (path, language) =
        r.chunk_path(id, None, &[]).unwrap_or(("", cadre_domain::ports::knowledge::Language::Text));
    let chunk = r.chunk(id, path, language)?;
    let mut text = String::new();
    if let Some(symbol) = &chunk.symbol {
        text.push_str(symbol);
        text.push('\n');
    }
    if let Some(context) = &chunk.context {
        text.push_str(context);
        text.push('\n');
    }
    text.push_str(&chunk.text);
    let mut cut = text.len().min(EMBED_MAX_BYTES);
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    text.truncate(cut);
    Ok(text)
}

fn require_indexed(r: &RepoIndex, key: &RepoKey) -> Result<(), KnowledgeError> {
    if r.is_indexed()? {
        Ok(())
    } else {
        Err(KnowledgeError::NotIndexed { repo: key.clone() })
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn dir_size(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_size(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

#[async_trait::async_trait]
impl KnowledgeBase for EmbeddedKnowledge {
    fn key_for(&self, repo: &str) -> Result<RepoKey, KnowledgeError> {
        EmbeddedKnowledge::repo_key(Path::new(repo))
    }

    fn syntax_error(&self, path: &str, text: &str) -> Option<u32> {
        crate::syntax::syntax_error(path, text)
    }

    async fn index(
        &self,
        repo: &RepoKey,
        root: &Path,
        scope: IndexScope,
    ) -> Result<IndexReport, KnowledgeError> {
        self.index_with_progress(repo, root, scope, Arc::new(|_| {})).await
    }

    async fn remove_file(&self, repo: &RepoKey, path: &str) -> Result<bool, KnowledgeError> {
        let (key, path) = (repo.clone(), path.to_owned());
        self.with_repo(repo, false, move |r| {
            require_indexed(r, &key)?;
            indexer::remove_file(r, &path)
        })
        .await
    }

    async fn search(
        &self,
        repo: &RepoKey,
        query: &SearchQuery,
    ) -> Result<SearchResults, KnowledgeError> {
        let vector = if query.mode == SearchMode::Lexical {
            QueryVector::Unavailable(String::new())
        } else {
            match &self.embedder {
                None => QueryVector::Unavailable(
                    "no embedder is configured, so vector retrieval is off".into(),
                ),
                Some(e) => self.nearest(repo, query, e.as_ref()).await,
            }
        };
        let (key, query) = (repo.clone(), query.clone());
        self.with_repo(repo, false, move |r| {
            require_indexed(r, &key)?;
            crate::search::search(r, &query, vector)
        })
        .await
    }

    async fn lookup_symbol(
        &self,
        repo: &RepoKey,
        name: &str,
        limit: usize,
    ) -> Result<SymbolLookup, KnowledgeError> {
        let (key, name) = (repo.clone(), name.to_owned());
        self.with_repo(repo, false, move |r| {
            require_indexed(r, &key)?;
            crate::symbols::lookup(r, &name, limit)
        })
        .await
    }

    async fn repo_map(
        &self,
        repo: &RepoKey,
        request: &MapRequest,
    ) -> Result<RepoMap, KnowledgeError> {
        let (key, request) = (repo.clone(), request.clone());
        self.with_repo(repo, false, move |r| {
            require_indexed(r, &key)?;
            crate::repomap::build(r, &request)
        })
        .await
    }

    async fn remember(&self, repo: &RepoKey, memory: &NewMemory) -> Result<u64, KnowledgeError> {
        let memory = memory.clone();
        self.with_repo(repo, true, move |r| crate::memory::remember(&r.conn, &memory)).await
    }

    async fn recall(
        &self,
        repo: &RepoKey,
        query: &MemoryQuery,
    ) -> Result<Vec<Memory>, KnowledgeError> {
        let query = query.clone();
        match self.with_repo(repo, false, move |r| crate::memory::recall(&r.conn, &query)).await {
            Err(KnowledgeError::NotIndexed { .. }) => Ok(Vec::new()),
            other => other,
        }
    }

    async fn forget(&self, repo: &RepoKey, id: u64) -> Result<(), KnowledgeError> {
        let key = repo.clone();
        let found =
            match self.with_repo(repo, false, move |r| crate::memory::forget(&r.conn, id)).await {
                Err(KnowledgeError::NotIndexed { .. }) => false,
                other => other?,
            };
        if found {
            Ok(())
        } else {
            Err(KnowledgeError::MemoryNotFound { repo: key, id })
        }
    }
}
