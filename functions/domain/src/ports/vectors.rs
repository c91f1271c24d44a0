//! The vector-store port: where the knowledge base keeps chunk embeddings and asks for the nearest ones.
//!
//! It is deliberately small — upsert, remove, nearest — so that an embedded on-disk index and Vertex AI
//! Vector Search (streaming `upsertDatapoints` / `removeDatapoints` on an index, `findNeighbors` on its
//! endpoint) implement the same contract. Records carry *restricts*: labels by namespace (the
//! repository, the team) that a query can demand, so one cloud index can serve many repositories and
//! teams without a query ever seeing another's vectors.
//!
//! Scores are cosine similarities: the store compares directions, not lengths (a Vertex index meets
//! this with `DOT_PRODUCT_DISTANCE` and `UNIT_L2_NORM` feature normalisation).
//!
//! ```
//! use cadre_domain::ports::vectors::{Restrict, VectorRecord};
//!
//! let record = VectorRecord {
//!     id: "repo-1/42".into(),
//!     vector: vec![0.1, 0.7, 0.2],
//!     restricts: vec![Restrict::new("repository", ["repo-1"]), Restrict::new("team", ["core"])],
//! };
//! assert!(record.matches(&[Restrict::new("repository", ["repo-1", "repo-2"])]));
//! assert!(!record.matches(&[Restrict::new("team", ["web"])]));
//! ```

use serde::{Deserialize, Serialize};

/// A label of a record, or a condition of a query: a namespace and its values.
///
/// On a record, `values` are the record's tokens in that namespace. In a query, `values` are the
/// allowed tokens: a record matches when it has at least one of them in that namespace.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Restrict {
    /// The namespace (`repository`, `team`).
    pub namespace: String,
    /// Its values.
    pub values: Vec<String>,
}

impl Restrict {
    /// A restrict of `namespace` with `values`.
    #[must_use]
    pub fn new<S: Into<String>>(
        namespace: impl Into<String>,
        values: impl IntoIterator<Item = S>,
    ) -> Restrict {
        Restrict {
            namespace: namespace.into(),
            values: values.into_iter().map(Into::into).collect(),
        }
    }
}

/// A vector to store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VectorRecord {
    /// Unique within the store; an upsert with a known id replaces that record.
    pub id: String,
    /// The embedding; its length must be the store's dimensions.
    pub vector: Vec<f32>,
    /// Its labels.
    pub restricts: Vec<Restrict>,
}

impl VectorRecord {
    /// Whether the record satisfies every restrict of a query: for each namespace the query names, the
    /// record has a value among the allowed ones. A record without that namespace does not match.
    #[must_use]
    pub fn matches(&self, query: &[Restrict]) -> bool {
        query.iter().all(|want| {
            self.restricts.iter().any(|have| {
                have.namespace == want.namespace
                    && have.values.iter().any(|v| want.values.contains(v))
            })
        })
    }
}

/// A query for the nearest records.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NearestQuery {
    /// The query embedding.
    pub vector: Vec<f32>,
    /// Most neighbours returned.
    pub k: usize,
    /// Conditions every returned record meets (all of them); none means every record.
    pub restricts: Vec<Restrict>,
}

/// One neighbour.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Neighbor {
    /// The record's id.
    pub id: String,
    /// Cosine similarity with the query, from -1 to 1; higher is nearer.
    pub score: f32,
}

/// Why a vector-store operation failed.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum VectorStoreError {
    /// A vector's length is not the store's.
    #[error(
        "vector `{id}` has {got} dimensions, the store holds {expected}; embed with the store's model or use a new store"
    )]
    DimensionMismatch {
        /// The record's id (`query` for a query vector).
        id: String,
        /// The store's dimensions.
        expected: usize,
        /// The vector's length.
        got: usize,
    },
    /// A vector that cannot be compared: empty, all zeros, or holding NaN or infinity.
    #[error("vector `{id}` is unusable: {why}; check the embedder's output")]
    BadVector {
        /// The record's id (`query` for a query vector).
        id: String,
        /// Why.
        why: String,
    },
    /// The store is busy or unreachable for now.
    #[error("vector store unavailable: {0}")]
    Unavailable(String),
    /// The store refused the request for good (bad credentials, an unknown index): retrying cannot help.
    #[error("vector store refused the request: {0}")]
    Refused(String),
}

impl VectorStoreError {
    /// Whether the same call may succeed later.
    #[must_use]
    pub fn is_retryable(&self) -> bool {
        matches!(self, VectorStoreError::Unavailable(_))
    }
}

/// Stores embeddings with restricts and finds the nearest ones.
#[async_trait::async_trait]
pub trait VectorStore: Send + Sync {
    /// Stores records, replacing (vector and restricts) any with the same id.
    ///
    /// # Errors
    /// MUST store all the records or none. MUST return [`VectorStoreError::DimensionMismatch`] when a
    /// vector's length differs from the store's dimensions (fixed by the first vector ever stored, or
    /// by configuration), and [`VectorStoreError::BadVector`] for an empty or all-zero vector or one
    /// holding a non-finite number. After `Ok`, [`VectorStore::nearest`] with a record's own vector and
    /// restricts MUST return that record first (barring exact duplicates).
    async fn upsert(&self, records: &[VectorRecord]) -> Result<(), VectorStoreError>;

    /// Removes records by id; unknown ids are ignored.
    ///
    /// # Errors
    /// MUST return [`VectorStoreError::Unavailable`] when the store cannot be changed now. After `Ok`,
    /// [`VectorStore::nearest`] MUST NOT return a removed id.
    async fn remove(&self, ids: &[String]) -> Result<(), VectorStoreError>;

    /// At most `query.k` records meeting every restrict of the query, nearest (highest cosine
    /// similarity) first. An empty store, or `k = 0`, gives an empty list.
    ///
    /// # Errors
    /// MUST return [`VectorStoreError::DimensionMismatch`] (with id `query`) when the query's length
    /// differs from that of the stored vectors, and [`VectorStoreError::BadVector`] for an empty,
    /// all-zero or non-finite query. MUST NOT return a record failing a restrict.
    async fn nearest(&self, query: &NearestQuery) -> Result<Vec<Neighbor>, VectorStoreError>;
}

/// Checks that a vector can be stored or searched with: not empty, finite, not all zeros.
///
/// # Errors
/// [`VectorStoreError::BadVector`] naming `id` and the problem.
pub fn check_vector(id: &str, vector: &[f32]) -> Result<(), VectorStoreError> {
    let bad = |why: &str| VectorStoreError::BadVector { id: id.to_owned(), why: why.to_owned() };
    if vector.is_empty() {
        return Err(bad("it is empty"));
    }
    if vector.iter().any(|x| !x.is_finite()) {
        return Err(bad("it holds NaN or infinity"));
    }
    if vector.iter().all(|&x| x == 0.0) {
        return Err(bad("it is all zeros, so it has no direction"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restricts_are_and_across_namespaces_and_or_within() {
        let record = VectorRecord {
            id: "a".into(),
            vector: vec![1.0],
            restricts: vec![Restrict::new("repository", ["r1"]), Restrict::new("team", ["core"])],
        };
        assert!(record.matches(&[]));
        assert!(record.matches(&[Restrict::new("repository", ["r0", "r1"])]));
        assert!(
            !record.matches(&[Restrict::new("repository", ["r1"]), Restrict::new("team", ["web"])])
        );
        assert!(!record.matches(&[Restrict::new("owner", ["x"])]), "a missing namespace fails");
    }

    #[test]
    fn unusable_vectors_are_named() {
        assert!(check_vector("v", &[0.5, -1.0]).is_ok());
        for bad in [vec![], vec![0.0, 0.0], vec![1.0, f32::NAN]] {
            assert!(matches!(check_vector("v", &bad), Err(VectorStoreError::BadVector { .. })));
        }
        assert!(VectorStoreError::Unavailable("x".into()).is_retryable());
        assert!(!VectorStoreError::Refused("unknown index".into()).is_retryable());
    }
}
