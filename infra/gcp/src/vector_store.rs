//! The knowledge base's `VectorStore` port on Vertex AI Vector Search.
//!
//! The index is created with `DOT_PRODUCT_DISTANCE` (Google's advice: with unit vectors it ranks as
//! cosine does, on the faster algorithm), and Vector Search reports that distance as the *negated*
//! dot product. So this adapter normalises every vector to unit length before it leaves, and turns a
//! neighbour's distance back into the port's cosine similarity by negating it: the embedded store and
//! this one give the same scores for the same vectors.
//!
//! What the port demands that the API does not check for us is checked here, before any request:
//! dimensions (an index's are fixed at creation, so they are configuration) and unusable vectors.

use cadre_domain::ports::vectors::{
    check_vector, NearestQuery, Neighbor, Restrict as PortRestrict, VectorRecord, VectorStore,
    VectorStoreError,
};

use crate::vertex::{Datapoint, Restrict, VectorError, VertexVectorIndex};

/// Vertex AI Vector Search behind the `VectorStore` port.
#[derive(Debug, Clone)]
pub struct VertexVectorStore {
    index: VertexVectorIndex,
    dimensions: usize,
}

impl VertexVectorStore {
    /// The store over `index`, whose vectors have `dimensions` numbers (as the index was created).
    #[must_use]
    pub fn new(index: VertexVectorIndex, dimensions: usize) -> VertexVectorStore {
        VertexVectorStore { index, dimensions }
    }

    /// An unusable vector (empty included) is named as such before its length is compared.
    fn check(&self, id: &str, vector: &[f32]) -> Result<(), VectorStoreError> {
        check_vector(id, vector)?;
        if vector.len() != self.dimensions {
            return Err(VectorStoreError::DimensionMismatch {
                id: id.to_owned(),
                expected: self.dimensions,
                got: vector.len(),
            });
        }
        Ok(())
    }
}

/// `vector` scaled to length 1 (it has been checked not to be all zeros).
fn unit(vector: &[f32]) -> Vec<f32> {
    let norm = vector.iter().map(|x| f64::from(*x) * f64::from(*x)).sum::<f64>().sqrt();
    #[allow(clippy::cast_possible_truncation)] // Back to the embedding's own precision.
    vector.iter().map(|x| (f64::from(*x) / norm) as f32).collect()
}

fn restricts(restricts: &[PortRestrict]) -> Vec<Restrict> {
    restricts
        .iter()
        .map(|r| Restrict { namespace: r.namespace.clone(), allow: r.values.clone() })
        .collect()
}

/// What the API refuses for good (a missing index, a wrong dimension) is refused; throttling, server
/// errors and answers out of format may pass.
fn port_error(error: VectorError) -> VectorStoreError {
    match error {
        VectorError::Refused(_) => VectorStoreError::Refused(error.to_string()),
        VectorError::Unavailable(_) | VectorError::Malformed(_) => {
            VectorStoreError::Unavailable(error.to_string())
        }
    }
}

#[async_trait::async_trait]
impl VectorStore for VertexVectorStore {
    /// One `upsertDatapoints` request, so the batch is applied whole or refused whole.
    async fn upsert(&self, records: &[VectorRecord]) -> Result<(), VectorStoreError> {
        for record in records {
            self.check(&record.id, &record.vector)?;
        }
        let points: Vec<Datapoint> = records
            .iter()
            .map(|r| Datapoint {
                id: r.id.clone(),
                vector: unit(&r.vector),
                restricts: restricts(&r.restricts),
            })
            .collect();
        self.index.upsert(&points).await.map_err(port_error)
    }

    async fn remove(&self, ids: &[String]) -> Result<(), VectorStoreError> {
        self.index.remove(ids).await.map_err(port_error)
    }

    async fn nearest(&self, query: &NearestQuery) -> Result<Vec<Neighbor>, VectorStoreError> {
        self.check("query", &query.vector)?;
        if query.k == 0 {
            return Ok(Vec::new());
        }
        let found = self
            .index
            .find_neighbors(&unit(&query.vector), query.k, &restricts(&query.restricts))
            .await
            .map_err(port_error)?;
        #[allow(clippy::cast_possible_truncation)] // Similarities in [-1, 1].
        Ok(found.into_iter().map(|n| Neighbor { id: n.id, score: (-n.distance) as f32 }).collect())
    }
}
