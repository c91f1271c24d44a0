//! One repository's open index: its SQLite connection, and the in-memory state searches need (the
//! lexical segments, which path holds which blob, which blob each chunk belongs to, the vectors).

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use cadre_domain::ports::knowledge::{Chunk, KnowledgeError, Language};
use rusqlite::{params, Connection};

use crate::lexical::{LexicalIndex, Segment};
use crate::store::{self, unavailable};

/// A file as indexed: its blob, or none when it was skipped, and the stat that lets an unchanged file
/// be recognised without reading it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FileRow {
    pub(crate) blob: Option<i64>,
    pub(crate) size: u64,
    pub(crate) mtime_ns: i64,
}

/// What searches need in memory.
#[derive(Default)]
pub(crate) struct RepoState {
    pub(crate) files: HashMap<String, FileRow>,
    pub(crate) blob_paths: HashMap<i64, Vec<String>>,
    pub(crate) blob_language: HashMap<i64, Language>,
    pub(crate) oids: HashMap<String, i64>,
    pub(crate) chunk_blob: HashMap<u32, i64>,
    pub(crate) lexical: LexicalIndex,
    /// Chunks whose vectors the vector store holds (recorded in `kb_vectors`).
    pub(crate) embedded: HashSet<u32>,
    /// Chunks gone from the index whose vectors are still to be removed from the vector store.
    pub(crate) stale_vectors: Vec<u32>,
    pub(crate) next_chunk: u32,
    /// Path terms → blobs whose path holds them; rebuilt on the first search after files changed.
    pub(crate) path_terms: Option<crate::lexical::segment::TermMap<Vec<i64>>>,
    /// The repository map's def-use graph; rebuilt on the first map after the index changed.
    pub(crate) map_graph: Option<std::sync::Arc<crate::repomap::MapGraph>>,
}

/// Changes an index run made, applied to [`RepoState`] once its transaction committed.
#[derive(Default)]
pub(crate) struct Delta {
    pub(crate) files_set: Vec<(String, FileRow)>,
    pub(crate) files_removed: Vec<String>,
    pub(crate) blobs_added: Vec<(i64, String, Language)>,
    pub(crate) blobs_removed: Vec<(i64, String)>,
    pub(crate) chunks_added: Vec<(u32, i64)>,
    pub(crate) chunks_dead: Vec<u32>,
    pub(crate) segment: Option<(String, Segment)>,
}

pub(crate) struct RepoIndex {
    pub(crate) dir: PathBuf,
    pub(crate) conn: Connection,
    pub(crate) state: RepoState,
    /// The generation `state` reflects.
    pub(crate) generation: u64,
}

impl RepoIndex {
    /// Opens (creating) the index in `dir` and loads its state.
    pub(crate) fn open(dir: &Path) -> Result<RepoIndex, KnowledgeError> {
        std::fs::create_dir_all(dir.join("lexical")).map_err(|e| {
            KnowledgeError::Unavailable(format!(
                "cannot create index directory {}: {e}",
                dir.display()
            ))
        })?;
        let conn = store::open(&dir.join("index.sqlite"))?;
        let mut repo =
            RepoIndex { dir: dir.to_path_buf(), conn, state: RepoState::default(), generation: 0 };
        repo.load()?;
        Ok(repo)
    }

    /// Reloads the state when another process changed the index since it was loaded.
    pub(crate) fn refresh(&mut self) -> Result<(), KnowledgeError> {
        if store::generation(&self.conn)? != self.generation {
            tracing::debug!(dir = %self.dir.display(), "index changed by another process; reloading");
            self.load()?;
        }
        Ok(())
    }

    /// Whether an index run ever completed here.
    pub(crate) fn is_indexed(&self) -> Result<bool, KnowledgeError> {
        Ok(store::meta(&self.conn, "root")?.is_some())
    }

    pub(crate) fn segment_path(&self, name: &str) -> PathBuf {
        self.dir.join("lexical").join(name)
    }

    fn load(&mut self) -> Result<(), KnowledgeError> {
        let generation = store::generation(&self.conn)?;
        let mut state = RepoState::default();
        let conn = &self.conn;
        let q = |e| unavailable("load the index", e);
        let mut stmt = conn.prepare("SELECT id, oid, language FROM kb_blobs").map_err(q)?;
        let mut rows = stmt.query([]).map_err(q)?;
        while let Some(row) = rows.next().map_err(q)? {
            let (id, oid, lang): (i64, String, i64) =
                (row.get(0).map_err(q)?, row.get(1).map_err(q)?, row.get(2).map_err(q)?);
            state.oids.insert(oid, id);
            state.blob_language.insert(id, crate::language::from_code(lang));
        }
        let mut stmt =
            conn.prepare("SELECT path, blob, size, mtime_ns FROM kb_files").map_err(q)?;
        let mut rows = stmt.query([]).map_err(q)?;
        while let Some(row) = rows.next().map_err(q)? {
            let path: String = row.get(0).map_err(q)?;
            let blob: Option<i64> = row.get(1).map_err(q)?;
            let size: i64 = row.get(2).map_err(q)?;
            let file = FileRow {
                blob,
                size: size.max(0).unsigned_abs(),
                mtime_ns: row.get(3).map_err(q)?,
            };
            if let Some(b) = blob {
                state.blob_paths.entry(b).or_default().push(path.clone());
            }
            state.files.insert(path, file);
        }
        for paths in state.blob_paths.values_mut() {
            paths.sort();
        }
        let mut stmt = conn.prepare("SELECT id, blob FROM kb_chunks").map_err(q)?;
        let mut rows = stmt.query([]).map_err(q)?;
        while let Some(row) = rows.next().map_err(q)? {
            let id: u32 = row.get(0).map_err(q)?;
            state.chunk_blob.insert(id, row.get(1).map_err(q)?);
            state.next_chunk = state.next_chunk.max(id + 1);
        }
        state.next_chunk = state.next_chunk.max(1);
        let mut stmt = conn.prepare("SELECT chunk FROM kb_dead").map_err(q)?;
        let dead = stmt.query_map([], |r| r.get::<_, u32>(0)).map_err(q)?;
        for id in dead {
            let id = id.map_err(q)?;
            state.lexical.dead.insert(id);
            state.next_chunk = state.next_chunk.max(id + 1);
        }
        let mut stmt = conn.prepare("SELECT name FROM kb_segments ORDER BY name").map_err(q)?;
        let names: Vec<String> =
            stmt.query_map([], |r| r.get(0)).map_err(q)?.collect::<Result<_, _>>().map_err(q)?;
        for name in names {
            let path = self.segment_path(&name);
            let bytes = std::fs::read(&path).map_err(|e| {
                KnowledgeError::Corrupt(format!(
                    "lexical segment {} is unreadable: {e}",
                    path.display()
                ))
            })?;
            let seg = Segment::from_bytes(bytes)
                .map_err(|e| KnowledgeError::Corrupt(format!("{}: {e}", path.display())))?;
            for doc in 0..seg.n_docs() {
                state.next_chunk = state.next_chunk.max(seg.doc(doc).0 + 1);
            }
            state.lexical.segments.push((name, seg));
        }
        {
            let mut stmt = conn.prepare("SELECT chunk FROM kb_vectors").map_err(q)?;
            let mut rows = stmt.query([]).map_err(q)?;
            while let Some(row) = rows.next().map_err(q)? {
                state.embedded.insert(row.get(0).map_err(q)?);
            }
        }
        state.stale_vectors = std::mem::take(&mut self.state.stale_vectors);
        self.state = state;
        self.generation = generation;
        self.remove_stray_segments();
        Ok(())
    }

    /// Segment files no table row names are left by a run that crashed before committing.
    fn remove_stray_segments(&self) {
        let known: HashSet<&str> =
            self.state.lexical.segments.iter().map(|(n, _)| n.as_str()).collect();
        let Ok(entries) = std::fs::read_dir(self.dir.join("lexical")) else { return };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if !known.contains(name) {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }

    /// Applies a committed run's changes to the in-memory state.
    pub(crate) fn apply(&mut self, delta: Delta) {
        let s = &mut self.state;
        if !delta.files_set.is_empty() || !delta.files_removed.is_empty() {
            s.path_terms = None;
            s.map_graph = None;
        }
        for (id, oid, language) in delta.blobs_added {
            s.oids.insert(oid, id);
            s.blob_language.insert(id, language);
        }
        for path in delta.files_removed {
            if let Some(old) = s.files.remove(&path) {
                unlink(&mut s.blob_paths, old.blob, &path);
            }
        }
        for (path, row) in delta.files_set {
            let new_blob = row.blob;
            if let Some(old) = s.files.insert(path.clone(), row) {
                unlink(&mut s.blob_paths, old.blob, &path);
            }
            if let Some(b) = new_blob {
                let paths = s.blob_paths.entry(b).or_default();
                if let Err(at) = paths.binary_search(&path) {
                    paths.insert(at, path);
                }
            }
        }
        for (id, oid) in delta.blobs_removed {
            s.oids.remove(&oid);
            s.blob_language.remove(&id);
            s.blob_paths.remove(&id);
        }
        for (chunk, blob) in delta.chunks_added {
            s.chunk_blob.insert(chunk, blob);
            s.next_chunk = s.next_chunk.max(chunk + 1);
        }
        for chunk in delta.chunks_dead {
            s.chunk_blob.remove(&chunk);
            if s.embedded.remove(&chunk) {
                s.stale_vectors.push(chunk);
            }
            s.lexical.dead.insert(chunk);
        }
        if let Some(segment) = delta.segment {
            s.lexical.segments.push(segment);
        }
    }

    /// The path-term index, built when missing.
    pub(crate) fn path_terms(&mut self) -> &crate::lexical::segment::TermMap<Vec<i64>> {
        let s = &mut self.state;
        s.path_terms.get_or_insert_with(|| {
            let mut map: crate::lexical::segment::TermMap<Vec<i64>> = Default::default();
            for (blob, paths) in &s.blob_paths {
                for path in paths {
                    crate::lexical::tokenize::tokens(path, |t| {
                        let blobs = map.entry(t).or_default();
                        if blobs.last() != Some(blob) {
                            blobs.push(*blob);
                        }
                    });
                }
            }
            map
        })
    }

    /// The first chunk of a blob, to stand for a file found by its path alone.
    pub(crate) fn first_chunk(&self, blob: i64) -> Result<Option<u32>, KnowledgeError> {
        use rusqlite::OptionalExtension;
        self.conn
            .prepare_cached("SELECT id FROM kb_chunks WHERE blob = ?1 ORDER BY ord LIMIT 1")
            .and_then(|mut s| s.query_row([blob], |r| r.get(0)).optional())
            .map_err(|e| unavailable("read a chunk id", e))
    }

    /// The first path holding a chunk's blob that passes the filter, with the blob's language.
    pub(crate) fn chunk_path(
        &self,
        chunk: u32,
        prefix: Option<&str>,
        languages: &[Language],
    ) -> Option<(&str, Language)> {
        let blob = self.state.chunk_blob.get(&chunk)?;
        let language = self.state.blob_language.get(blob).copied().unwrap_or(Language::Text);
        if !languages.is_empty() && !languages.contains(&language) {
            return None;
        }
        let paths = self.state.blob_paths.get(blob)?;
        let path = match prefix {
            Some(p) => paths.iter().find(|path| path.starts_with(p))?,
            None => paths.first()?,
        };
        Some((path.as_str(), language))
    }

    /// A chunk with its text, shown at `path`.
    pub(crate) fn chunk(
        &self,
        id: u32,
        path: &str,
        language: Language,
    ) -> Result<Chunk, KnowledgeError> {
        let q = |e| unavailable("read a chunk", e);
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT b.oid, c.ord, c.kind, c.symbol, c.start_line, c.end_line, c.context,
                        substr(b.text, c.start_byte + 1, c.end_byte - c.start_byte)
                 FROM kb_chunks c JOIN kb_blobs b ON b.id = c.blob WHERE c.id = ?1",
            )
            .map_err(q)?;
        stmt.query_row(params![id], |r| {
            let oid: String = r.get(0)?;
            let ord: i64 = r.get(1)?;
            let text: Vec<u8> = r.get(7)?;
            Ok(Chunk {
                id: format!("{oid}#{ord}"),
                path: path.to_owned(),
                language,
                kind: store::chunk_kind(r.get(2)?),
                symbol: r.get(3)?,
                start_line: r.get(4)?,
                end_line: r.get(5)?,
                context: r.get(6)?,
                text: String::from_utf8_lossy(&text).into_owned(),
            })
        })
        .map_err(q)
    }
}

fn unlink(blob_paths: &mut HashMap<i64, Vec<String>>, blob: Option<i64>, path: &str) {
    let Some(b) = blob else { return };
    if let Some(paths) = blob_paths.get_mut(&b) {
        paths.retain(|p| p != path);
        if paths.is_empty() {
            blob_paths.remove(&b);
        }
    }
}
