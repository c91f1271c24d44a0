//! [`EmbeddedVectorStore`]: the [`VectorStore`] port on local disk — records in one SQLite file,
//! searched in memory by the flat, exact [`VectorIndex`].
//!
//! Every record is loaded at open and kept normalised in memory, so `nearest` is a scan of dot products
//! (exact, the reference an approximate index is judged against) filtered by the query's restricts.
//! Writes go to SQLite first, in one transaction per call, then to memory, so a failed call changes
//! nothing. The store's dimensions are those of the vectors it holds: fixed by the first record, free
//! again once it is empty.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use cadre_domain::ports::vectors::{
    check_vector, NearestQuery, Neighbor, Restrict, VectorRecord, VectorStore, VectorStoreError,
};
use rusqlite::{params, Connection};

use crate::vectors::{from_bytes, to_bytes, VectorIndex};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS vs_records (
    id TEXT PRIMARY KEY,
    vector BLOB NOT NULL,
    restricts TEXT NOT NULL
);
";

/// Vectors with restricts, on disk and in memory.
pub struct EmbeddedVectorStore {
    inner: Arc<Mutex<Inner>>,
}

struct Inner {
    conn: Connection,
    index: VectorIndex,
    /// Record id → slot in `index`, and back.
    slots: HashMap<String, u32>,
    ids: HashMap<u32, String>,
    restricts: HashMap<u32, Vec<Restrict>>,
    next_slot: u32,
}

fn unavailable(what: &str, e: impl std::fmt::Display) -> VectorStoreError {
    VectorStoreError::Unavailable(format!("cannot {what}: {e}"))
}

impl EmbeddedVectorStore {
    /// Opens (creating) the store in the SQLite file at `path` and loads its records.
    ///
    /// # Errors
    /// [`VectorStoreError::Unavailable`] when the file cannot be opened or read.
    pub fn open(path: &Path) -> Result<EmbeddedVectorStore, VectorStoreError> {
        let conn = Connection::open(path)
            .map_err(|e| unavailable(&format!("open the vector store {}", path.display()), e))?;
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 5000;",
        )
        .map_err(|e| unavailable("configure the vector store", e))?;
        conn.execute_batch(SCHEMA).map_err(|e| unavailable("create the vector table", e))?;
        let mut inner = Inner {
            conn,
            index: VectorIndex::default(),
            slots: HashMap::new(),
            ids: HashMap::new(),
            restricts: HashMap::new(),
            next_slot: 0,
        };
        let rows: Vec<(String, Vec<u8>, String)> = {
            let mut stmt = inner
                .conn
                .prepare("SELECT id, vector, restricts FROM vs_records")
                .map_err(|e| unavailable("read the vector store", e))?;
            let rows = stmt
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .and_then(Iterator::collect)
                .map_err(|e| unavailable("read the vector store", e))?;
            rows
        };
        for (id, bytes, restricts) in rows {
            let restricts: Vec<Restrict> = serde_json::from_str(&restricts).map_err(|e| {
                VectorStoreError::Unavailable(format!(
                    "the vector store {} holds unreadable restricts for `{id}`: {e}; delete the file to rebuild it",
                    path.display()
                ))
            })?;
            inner.put(id, &from_bytes(&bytes), restricts);
        }
        Ok(EmbeddedVectorStore { inner: Arc::new(Mutex::new(inner)) })
    }

    /// Records held.
    #[must_use]
    pub fn len(&self) -> usize {
        self.inner.lock().map_or(0, |i| i.slots.len())
    }

    /// Whether it holds no record.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Inner) -> Result<T, VectorStoreError> + Send + 'static,
    ) -> Result<T, VectorStoreError> {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || {
            let mut guard = inner.lock().map_err(|_| {
                VectorStoreError::Unavailable(
                    "the vector store's lock is poisoned; restart the process".into(),
                )
            })?;
            f(&mut guard)
        })
        .await
        .map_err(|e| VectorStoreError::Unavailable(format!("vector store task failed: {e}")))?
    }
}

impl Inner {
    /// The dimensions every vector must have, when any record is held.
    fn dims(&self) -> Option<usize> {
        (!self.slots.is_empty()).then(|| self.index.dims())
    }

    fn put(&mut self, id: String, vector: &[f32], restricts: Vec<Restrict>) {
        if self.slots.is_empty() {
            self.index.clear();
        }
        let slot = match self.slots.get(&id) {
            Some(&slot) => slot,
            None => {
                let slot = self.next_slot;
                self.next_slot += 1;
                self.slots.insert(id.clone(), slot);
                self.ids.insert(slot, id);
                slot
            }
        };
        self.index.insert(slot, vector);
        self.restricts.insert(slot, restricts);
    }

    fn take(&mut self, id: &str) {
        if let Some(slot) = self.slots.remove(id) {
            self.ids.remove(&slot);
            self.restricts.remove(&slot);
            self.index.remove(slot);
        }
    }
}

#[async_trait::async_trait]
impl VectorStore for EmbeddedVectorStore {
    async fn upsert(&self, records: &[VectorRecord]) -> Result<(), VectorStoreError> {
        let records = records.to_vec();
        self.run(move |inner| {
            let mut dims = inner.dims();
            for r in &records {
                check_vector(&r.id, &r.vector)?;
                let expected = *dims.get_or_insert(r.vector.len());
                if r.vector.len() != expected {
                    return Err(VectorStoreError::DimensionMismatch {
                        id: r.id.clone(),
                        expected,
                        got: r.vector.len(),
                    });
                }
            }
            let tx = inner.conn.transaction().map_err(|e| unavailable("store vectors", e))?;
            {
                let mut stmt = tx
                    .prepare_cached(
                        "INSERT OR REPLACE INTO vs_records (id, vector, restricts) VALUES (?1, ?2, ?3)",
                    )
                    .map_err(|e| unavailable("store vectors", e))?;
                for r in &records {
                    let restricts = serde_json::to_string(&r.restricts).unwrap_or_default();
                    stmt.execute(params![r.id, to_bytes(&r.vector), restricts])
                        .map_err(|e| unavailable("store vectors", e))?;
                }
            }
            tx.commit().map_err(|e| unavailable("store vectors", e))?;
            for r in records {
                inner.put(r.id, &r.vector, r.restricts);
            }
            Ok(())
        })
        .await
    }

    async fn remove(&self, ids: &[String]) -> Result<(), VectorStoreError> {
        let ids = ids.to_vec();
        self.run(move |inner| {
            let tx = inner.conn.transaction().map_err(|e| unavailable("remove vectors", e))?;
            {
                let mut stmt = tx
                    .prepare_cached("DELETE FROM vs_records WHERE id = ?1")
                    .map_err(|e| unavailable("remove vectors", e))?;
                for id in &ids {
                    stmt.execute([id]).map_err(|e| unavailable("remove vectors", e))?;
                }
            }
            tx.commit().map_err(|e| unavailable("remove vectors", e))?;
            for id in &ids {
                inner.take(id);
            }
            Ok(())
        })
        .await
    }

    async fn nearest(&self, query: &NearestQuery) -> Result<Vec<Neighbor>, VectorStoreError> {
        let query = query.clone();
        self.run(move |inner| {
            check_vector("query", &query.vector)?;
            let Some(dims) = inner.dims() else { return Ok(Vec::new()) };
            if query.vector.len() != dims {
                return Err(VectorStoreError::DimensionMismatch {
                    id: "query".into(),
                    expected: dims,
                    got: query.vector.len(),
                });
            }
            if query.k == 0 {
                return Ok(Vec::new());
            }
            let restricts = &inner.restricts;
            let mut accept = |slot: u32| {
                query.restricts.is_empty()
                    || restricts.get(&slot).is_some_and(|have| {
                        query.restricts.iter().all(|want| {
                            have.iter().any(|h| {
                                h.namespace == want.namespace
                                    && h.values.iter().any(|v| want.values.contains(v))
                            })
                        })
                    })
            };
            let hits = inner.index.search(&query.vector, query.k, &mut accept);
            Ok(hits
                .into_iter()
                .filter_map(|(slot, score)| {
                    inner.ids.get(&slot).map(|id| Neighbor { id: id.clone(), score })
                })
                .collect())
        })
        .await
    }
}
