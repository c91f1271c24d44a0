//! The in-memory vector index behind [`crate::EmbeddedVectorStore`].
//!
//! The search is flat and exact (a dot product with every normalized vector). At 768 dimensions that
//! is about 20 ms per 100k chunks on one core: fine for one repository, and exact, so it is the
//! reference an approximate index (HNSW, IVF) would be measured against when one is needed.

use std::collections::HashMap;

/// Normalized vectors by chunk id.
#[derive(Default)]
pub(crate) struct VectorIndex {
    dims: usize,
    ids: Vec<u32>,
    data: Vec<f32>,
    pos: HashMap<u32, usize>,
}

impl VectorIndex {
    /// The length of the vectors held (0 before the first).
    pub(crate) fn dims(&self) -> usize {
        self.dims
    }

    pub(crate) fn clear(&mut self) {
        *self = VectorIndex::default();
    }

    /// Adds (or replaces) a vector; one of another length than the first is refused.
    pub(crate) fn insert(&mut self, chunk: u32, vector: &[f32]) -> bool {
        if self.dims == 0 {
            self.dims = vector.len();
        }
        if vector.len() != self.dims || self.dims == 0 {
            return false;
        }
        let normalized = normalize(vector);
        match self.pos.get(&chunk) {
            Some(&i) => self.data[i * self.dims..(i + 1) * self.dims].copy_from_slice(&normalized),
            None => {
                self.pos.insert(chunk, self.ids.len());
                self.ids.push(chunk);
                self.data.extend_from_slice(&normalized);
            }
        }
        true
    }

    pub(crate) fn remove(&mut self, chunk: u32) {
        let Some(i) = self.pos.remove(&chunk) else { return };
        let last = self.ids.len() - 1;
        if i != last {
            let moved = self.ids[last];
            self.ids[i] = moved;
            self.pos.insert(moved, i);
            let (head, tail) = self.data.split_at_mut(last * self.dims);
            head[i * self.dims..(i + 1) * self.dims].copy_from_slice(&tail[..self.dims]);
        }
        self.ids.pop();
        self.data.truncate(last * self.dims);
    }

    /// The chunks most similar to `query` (cosine), best first.
    pub(crate) fn search(
        &self,
        query: &[f32],
        limit: usize,
        accept: &mut impl FnMut(u32) -> bool,
    ) -> Vec<(u32, f32)> {
        if query.len() != self.dims || self.ids.is_empty() {
            return Vec::new();
        }
        let q = normalize(query);
        let candidates: Vec<(f32, u32)> = self
            .data
            .chunks_exact(self.dims)
            .zip(&self.ids)
            .map(|(v, &id)| (v.iter().zip(&q).map(|(a, b)| a * b).sum::<f32>(), id))
            .collect();
        crate::lexical::best(candidates, limit, accept)
    }
}

fn normalize(v: &[f32]) -> Vec<f32> {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter().map(|x| x / norm).collect()
    } else {
        v.to_vec()
    }
}

/// Little-endian f32s, as stored in `kb_vectors`.
pub(crate) fn to_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

pub(crate) fn from_bytes(bytes: &[u8]) -> Vec<f32> {
    bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_first_and_removal_keeps_the_rest() {
        let mut idx = VectorIndex::default();
        assert!(idx.insert(1, &[1.0, 0.0]));
        assert!(idx.insert(2, &[0.7, 0.7]));
        assert!(idx.insert(3, &[0.0, 1.0]));
        assert!(!idx.insert(4, &[1.0]), "wrong dimension refused");
        let ids = |hits: Vec<(u32, f32)>| hits.into_iter().map(|h| h.0).collect::<Vec<_>>();
        assert_eq!(ids(idx.search(&[1.0, 0.1], 3, &mut |_| true)), [1, 2, 3]);
        idx.remove(1);
        assert_eq!(ids(idx.search(&[1.0, 0.1], 3, &mut |_| true)), [2, 3]);
        assert_eq!(from_bytes(&to_bytes(&[1.5, -2.0])), [1.5, -2.0]);
    }
}
