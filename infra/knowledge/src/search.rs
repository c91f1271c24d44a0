//! Search over one repository: BM25, vectors, and their fusion by reciprocal rank.

use std::collections::HashMap;

use cadre_domain::ports::knowledge::{
    KnowledgeError, RetrievalMode, SearchHit, SearchMode, SearchQuery, SearchResults,
};

use crate::lexical::query_terms;
use crate::repo::RepoIndex;

/// The constant of reciprocal rank fusion (Cormack et al.): 60 damps the head of each list.
const RRF_K: f64 = 60.0;
/// Weight of the path field against the text (BM25F-style): a path is short and says much, like a title.
const PATH_WEIGHT: f32 = 2.0;
/// Files found by their path alone that join the candidates (by their first chunk).
const PATH_ONLY_FILES: usize = 10;

/// What the caller learnt about vectors before taking the index lock.
pub(crate) enum QueryVector {
    /// The vector store's nearest chunks to the query's embedding, nearest first, with their cosine.
    Ready(Vec<(u32, f32)>),
    /// Vector retrieval cannot run, and why.
    Unavailable(String),
}

pub(crate) fn search(
    repo: &mut RepoIndex,
    query: &SearchQuery,
    vector: QueryVector,
) -> Result<SearchResults, KnowledgeError> {
    let terms = query_terms(&query.text);
    if terms.is_empty() {
        return Err(KnowledgeError::BadQuery {
            query: query.text.clone(),
            why: "it has no word of two or more letters or digits to search for".into(),
        });
    }
    let limit = query.limit.max(1);
    let path_scores = path_scores(repo, &terms);
    let repo = &*repo;
    let prefix = query.filter.path_prefix.as_deref();
    let languages = &query.filter.languages;
    let mut accept = |chunk: u32| repo.chunk_path(chunk, prefix, languages).is_some();

    let want_vectors = query.mode != SearchMode::Lexical;
    let (vector_hits, mode) = match (want_vectors, vector) {
        (false, _) => (Vec::new(), RetrievalMode::Lexical),
        (true, QueryVector::Unavailable(reason)) => {
            (Vec::new(), RetrievalMode::LexicalOnly { reason })
        }
        (true, QueryVector::Ready(_)) if repo.state.embedded.is_empty() => {
            let reason = "no chunk has a vector yet; run `cadre index` with an embedder".to_owned();
            (Vec::new(), RetrievalMode::LexicalOnly { reason })
        }
        (true, QueryVector::Ready(nearest)) => {
            // The store does not know paths or languages: its neighbours are filtered here.
            let hits: Vec<(u32, f32)> = nearest.into_iter().filter(|&(c, _)| accept(c)).collect();
            let mode = if query.mode == SearchMode::Vector {
                RetrievalMode::Vector
            } else {
                RetrievalMode::Fused
            };
            (hits, mode)
        }
    };
    let lexical_hits = if mode == RetrievalMode::Vector {
        Vec::new()
    } else {
        let candidates = repo.state.lexical.search(&terms, (limit * 3).max(30), &mut accept);
        with_paths(repo, candidates, &path_scores, &mut accept)?
    };

    let ranked: Vec<(u32, f64, Option<u32>, Option<u32>)> = match mode {
        RetrievalMode::Vector => vector_hits
            .iter()
            .enumerate()
            .map(|(i, &(c, s))| (c, f64::from(s), None, Some(rank(i))))
            .collect(),
        RetrievalMode::Fused => fuse(&lexical_hits, &vector_hits),
        _ => lexical_hits
            .iter()
            .enumerate()
            .map(|(i, &(c, s))| (c, f64::from(s), Some(rank(i)), None))
            .collect(),
    };
    let mut hits = Vec::with_capacity(limit);
    for (chunk, score, lexical_rank, vector_rank) in ranked.into_iter().take(limit) {
        let Some((path, language)) = repo.chunk_path(chunk, prefix, languages) else { continue };
        let chunk = repo.chunk(chunk, path, language)?;
        hits.push(SearchHit { chunk, score, lexical_rank, vector_rank });
    }
    Ok(SearchResults { hits, mode })
}

fn rank(i: usize) -> u32 {
    u32::try_from(i + 1).unwrap_or(u32::MAX)
}

/// BM25 of the query against file paths (a second field): blob → score.
fn path_scores(repo: &mut RepoIndex, terms: &[(u64, f32)]) -> HashMap<i64, f32> {
    #[allow(clippy::cast_precision_loss)]
    let files = repo.state.blob_paths.len().max(1) as f32;
    let index = repo.path_terms();
    let mut scores: HashMap<i64, f32> = HashMap::new();
    for (term, weight) in terms {
        let Some(blobs) = index.get(term) else { continue };
        #[allow(clippy::cast_precision_loss)]
        let df = blobs.len() as f32;
        let idf = (1.0 + (files - df + 0.5) / (df + 0.5)).ln();
        for blob in blobs {
            *scores.entry(*blob).or_default() += weight * idf * PATH_WEIGHT;
        }
    }
    scores
}

/// Adds each candidate's path score, and lets the best files matched by path alone join with their
/// first chunk (`net server` finds `src/net/server.rs` even if its text says neither word). The path is
/// scored at query time, so a renamed file needs no re-tokenizing.
fn with_paths(
    repo: &RepoIndex,
    candidates: Vec<(u32, f32)>,
    path_scores: &HashMap<i64, f32>,
    accept: &mut impl FnMut(u32) -> bool,
) -> Result<Vec<(u32, f32)>, KnowledgeError> {
    let blob_of = |chunk: u32| repo.state.chunk_blob.get(&chunk).copied();
    let mut seen_blobs: std::collections::HashSet<i64> = std::collections::HashSet::new();
    let mut out: Vec<(u32, f32)> = candidates
        .into_iter()
        .map(|(chunk, score)| {
            let bonus = blob_of(chunk).and_then(|b| {
                seen_blobs.insert(b);
                path_scores.get(&b).copied()
            });
            (chunk, score + bonus.unwrap_or(0.0))
        })
        .collect();
    let mut path_only: Vec<(i64, f32)> = path_scores
        .iter()
        .filter(|(b, _)| !seen_blobs.contains(b))
        .map(|(b, s)| (*b, *s))
        .collect();
    path_only.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    let mut added = 0;
    for (blob, score) in path_only {
        if added == PATH_ONLY_FILES {
            break;
        }
        if let Some(chunk) = repo.first_chunk(blob)? {
            if accept(chunk) {
                out.push((chunk, score));
                added += 1;
            }
        }
    }
    out.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    Ok(out)
}

/// Reciprocal rank fusion: each list adds `1 / (k + rank)`.
pub(crate) fn fuse(
    lexical: &[(u32, f32)],
    vector: &[(u32, f32)],
) -> Vec<(u32, f64, Option<u32>, Option<u32>)> {
    let mut by_chunk: HashMap<u32, (f64, Option<u32>, Option<u32>)> = HashMap::new();
    for (i, &(chunk, _)) in lexical.iter().enumerate() {
        let e = by_chunk.entry(chunk).or_default();
        e.0 += 1.0 / (RRF_K + f64::from(rank(i)));
        e.1 = Some(rank(i));
    }
    for (i, &(chunk, _)) in vector.iter().enumerate() {
        let e = by_chunk.entry(chunk).or_default();
        e.0 += 1.0 / (RRF_K + f64::from(rank(i)));
        e.2 = Some(rank(i));
    }
    let mut out: Vec<_> = by_chunk.into_iter().map(|(c, (s, l, v))| (c, s, l, v)).collect();
    out.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    out
}

#[cfg(test)]
mod tests {
    use super::fuse;

    #[test]
    fn fusion_rewards_agreement() {
        let lexical = [(1, 9.0), (2, 8.0), (3, 7.0)];
        let vector = [(3, 0.9), (4, 0.8), (1, 0.7)];
        let order: Vec<u32> = fuse(&lexical, &vector).into_iter().map(|r| r.0).collect();
        assert_eq!(order, [1, 3, 2, 4]);
    }
}
