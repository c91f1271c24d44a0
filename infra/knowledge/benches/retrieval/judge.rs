//! The query set and how a ranked list is scored against it: recall@k and MRR@k, at chunk and file level.

use std::path::Path;

use cadre_domain::ports::knowledge::Chunk;
use serde::Deserialize;

/// One line of `eval/queries.jsonl` (written by `eval/gen_queries.py`).
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Query {
    pub(crate) id: u32,
    /// `doc` (first sentence of a doc comment) or `hand` (a natural question).
    pub(crate) source: String,
    pub(crate) query: String,
    /// Relative to the corpus root.
    pub(crate) path: String,
    /// `Type::method` or `name`.
    pub(crate) symbol: String,
    /// The doc comment, attributes and the item, 1-based, inclusive.
    pub(crate) start_line: u32,
    pub(crate) end_line: u32,
}

pub(crate) fn load(path: &Path) -> Result<Vec<Query>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        format!("cannot read the query set {}: {e}; run eval/gen_queries.py", path.display())
    })?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(n, l)| {
            serde_json::from_str(l).map_err(|e| format!("{}:{}: {e}", path.display(), n + 1))
        })
        .collect()
}

/// Whether a returned chunk answers the query: in the answer's file, and overlapping its lines or
/// defining its symbol.
pub(crate) fn answers(chunk: &Chunk, q: &Query) -> bool {
    chunk.path == q.path
        && ((chunk.start_line <= q.end_line && q.start_line <= chunk.end_line)
            || chunk.symbol.as_deref() == Some(q.symbol.as_str()))
}

/// The 1-based rank of the first hit that satisfies `hit`, if any.
pub(crate) fn first_rank(chunks: &[Chunk], hit: impl Fn(&Chunk) -> bool) -> Option<usize> {
    chunks.iter().position(hit).map(|i| i + 1)
}

/// Recall@k and MRR@k over the ranks of the first correct hit (`None` = not in the list).
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Score {
    pub(crate) queries: usize,
    pub(crate) at1: usize,
    pub(crate) at5: usize,
    pub(crate) at10: usize,
    pub(crate) reciprocal: f64,
}

impl Score {
    pub(crate) fn add(&mut self, rank: Option<usize>, k: usize) {
        self.queries += 1;
        let Some(rank) = rank.filter(|&r| r <= k) else { return };
        self.at1 += usize::from(rank <= 1);
        self.at5 += usize::from(rank <= 5);
        self.at10 += usize::from(rank <= 10);
        #[allow(clippy::cast_precision_loss)]
        let r = rank as f64;
        self.reciprocal += 1.0 / r;
    }

    #[allow(clippy::cast_precision_loss)]
    pub(crate) fn recall(&self, hits: usize) -> f64 {
        if self.queries == 0 {
            0.0
        } else {
            hits as f64 / self.queries as f64
        }
    }

    #[allow(clippy::cast_precision_loss)]
    pub(crate) fn mrr(&self) -> f64 {
        if self.queries == 0 {
            0.0
        } else {
            self.reciprocal / self.queries as f64
        }
    }
}
