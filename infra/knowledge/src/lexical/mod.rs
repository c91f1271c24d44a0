//! The lexical index: BM25 over a code-aware tokenization, in immutable segment files.
//!
//! Why not tantivy: its cold build is a large share of a 2-core CI run, and code search needs little of
//! it (no phrase queries, stemming or facets). What it needs — identifiers split and kept whole, a
//! dictionary of 64-bit term hashes, postings of (chunk, tf), deletes as a set of dead chunk ids, small
//! segments appended for incremental updates and merged when they pile up — fits in a few hundred lines
//! that compile in seconds and search a million lines in a few milliseconds.
//!
//! Scoring is BM25 (k1 = 1.2, b = 0.75) with document frequencies summed over segments; dead chunks are
//! still counted in those frequencies until a merge, as in Lucene.

pub(crate) mod segment;
pub(crate) mod tokenize;

use std::collections::HashSet;

pub(crate) use segment::{DocTerms, Segment, SegmentBuilder};

const K1: f32 = 1.2;
const B: f32 = 0.75;

/// The segments of one repository and the chunks deleted since they were written.
#[derive(Default)]
pub(crate) struct LexicalIndex {
    pub(crate) segments: Vec<(String, Segment)>,
    pub(crate) dead: HashSet<u32>,
}

/// A query: terms and their weights (how often each occurs in the query).
pub(crate) fn query_terms(text: &str) -> Vec<(u64, f32)> {
    let mut terms: Vec<(u64, f32)> = Vec::new();
    tokenize::tokens(text, |h| match terms.iter_mut().find(|(t, _)| *t == h) {
        Some((_, w)) => *w += 1.0,
        None => terms.push((h, 1.0)),
    });
    terms
}

impl LexicalIndex {
    /// Documents in all segments, dead ones included.
    pub(crate) fn total_docs(&self) -> usize {
        self.segments.iter().map(|(_, s)| s.n_docs()).sum()
    }

    /// The best live chunks for the query that `accept` lets through, best first, at most `limit`.
    pub(crate) fn search(
        &self,
        terms: &[(u64, f32)],
        limit: usize,
        mut accept: impl FnMut(u32) -> bool,
    ) -> Vec<(u32, f32)> {
        let total_docs = self.total_docs();
        if total_docs == 0 || terms.is_empty() || limit == 0 {
            return Vec::new();
        }
        let total_len: u64 = self.segments.iter().map(|(_, s)| s.total_len()).sum();
        #[allow(clippy::cast_precision_loss)]
        let (n, avgdl) = (total_docs as f32, (total_len as f32 / total_docs as f32).max(1.0));
        let idf: Vec<f32> = terms
            .iter()
            .map(|(t, _)| {
                #[allow(clippy::cast_precision_loss)]
                let df = self.segments.iter().map(|(_, s)| s.df(*t)).sum::<u32>() as f32;
                (1.0 + (n - df + 0.5) / (df + 0.5)).ln()
            })
            .collect();
        let mut candidates: Vec<(f32, u32)> = Vec::new();
        for (_, seg) in &self.segments {
            let mut scores = vec![0f32; seg.n_docs()];
            for ((term, weight), idf) in terms.iter().zip(&idf) {
                seg.postings(*term, |doc, tf| {
                    let (_, len) = seg.doc(doc);
                    #[allow(clippy::cast_precision_loss)]
                    let (tf, len) = (tf as f32, len as f32);
                    let norm = K1 * (1.0 - B + B * len / avgdl);
                    scores[doc] += weight * idf * tf * (K1 + 1.0) / (tf + norm);
                });
            }
            for (doc, score) in scores.into_iter().enumerate() {
                if score > 0.0 {
                    let (chunk, _) = seg.doc(doc);
                    if !self.dead.contains(&chunk) {
                        candidates.push((score, chunk));
                    }
                }
            }
        }
        best(candidates, limit, &mut accept)
    }

    /// Live chunks containing a term, in no particular order.
    pub(crate) fn chunks_with(&self, term: u64) -> Vec<u32> {
        let mut out = Vec::new();
        for (_, seg) in &self.segments {
            seg.postings(term, |doc, _| {
                let (chunk, _) = seg.doc(doc);
                if !self.dead.contains(&chunk) {
                    out.push(chunk);
                }
            });
        }
        out
    }
}

/// The `limit` best accepted candidates, best first (ties by chunk id, so results are stable).
pub(crate) fn best(
    mut candidates: Vec<(f32, u32)>,
    limit: usize,
    accept: &mut impl FnMut(u32) -> bool,
) -> Vec<(u32, f32)> {
    let order = |a: &(f32, u32), b: &(f32, u32)| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1));
    // Sorting only a generous head first keeps a query for a common word cheap; the rest is sorted
    // only when the filter rejects most of the head.
    let head = (limit * 8).max(256);
    let mut out = Vec::with_capacity(limit);
    let mut start = 0;
    while start < candidates.len() && out.len() < limit {
        let rest = &mut candidates[start..];
        let take = head.min(rest.len());
        if take < rest.len() {
            rest.select_nth_unstable_by(take - 1, order);
        }
        rest[..take].sort_unstable_by(order);
        for &(score, chunk) in &rest[..take] {
            if accept(chunk) {
                out.push((chunk, score));
                if out.len() == limit {
                    break;
                }
            }
        }
        start += take;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index(docs: &[(u32, &str)]) -> LexicalIndex {
        let mut b = SegmentBuilder::default();
        for (id, text) in docs {
            b.add(*id, &DocTerms::of(text, &[], 0));
        }
        let seg = Segment::from_bytes(b.finish()).unwrap();
        LexicalIndex { segments: vec![("s".into(), seg)], dead: HashSet::new() }
    }

    #[test]
    fn rarer_and_repeated_terms_rank_higher() {
        let idx = index(&[
            (1, "fn spawn_blocking() { blocking pool }"),
            (2, "fn spawn() { task }"),
            (3, "struct Pool; fn new() -> Pool"),
            (4, "the the the spawn"),
        ]);
        let hits = idx.search(&query_terms("spawn_blocking"), 10, |_| true);
        assert_eq!(hits.first().map(|h| h.0), Some(1));
        let hits = idx.search(&query_terms("pool"), 10, |_| true);
        let ids: Vec<u32> = hits.iter().map(|h| h.0).collect();
        assert_eq!(ids, [3, 1], "two mentions in a short doc beat one");
    }

    #[test]
    fn dead_and_rejected_chunks_are_left_out() {
        let mut idx = index(&[(1, "alpha"), (2, "alpha beta"), (3, "alpha")]);
        idx.dead.insert(1);
        let hits = idx.search(&query_terms("alpha"), 10, |c| c != 3);
        assert_eq!(hits.iter().map(|h| h.0).collect::<Vec<_>>(), [2]);
        assert_eq!(idx.chunks_with(tokenize::word_hash("alpha")).len(), 2);
    }

    #[test]
    fn best_walks_past_a_rejected_head() {
        let candidates: Vec<(f32, u32)> = (0..2000u32).map(|i| (2000.0 - i as f32, i)).collect();
        let got = best(candidates, 3, &mut |c| c >= 1500);
        assert_eq!(got.iter().map(|g| g.0).collect::<Vec<_>>(), [1500, 1501, 1502]);
    }
}
