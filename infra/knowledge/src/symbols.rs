//! Go to definition and find references, from the index alone.
//!
//! Definitions come from `kb_symbols` (by exact name). References are found through the lexical index
//! first (chunks holding the name as a whole word), then confirmed and placed on lines with the
//! references recorded for those blobs: a name used nowhere costs one dictionary lookup.

use std::collections::BTreeSet;

use cadre_domain::ports::knowledge::{Definition, KnowledgeError, Reference, SymbolLookup};

use crate::lexical::tokenize::word_hash;
use crate::repo::RepoIndex;
use crate::store::{symbol_kind, unavailable};

pub(crate) fn lookup(
    repo: &RepoIndex,
    name: &str,
    limit: usize,
) -> Result<SymbolLookup, KnowledgeError> {
    let q = |e| unavailable("look up a symbol", e);
    let mut out = SymbolLookup::default();
    let mut stmt = repo
        .conn
        .prepare_cached(
            "SELECT blob, kind, container, start_line, end_line, signature FROM kb_symbols WHERE name = ?1
             ORDER BY blob, start_line",
        )
        .map_err(q)?;
    let mut rows = stmt.query([name]).map_err(q)?;
    while let Some(row) = rows.next().map_err(q)? {
        let blob: i64 = row.get(0).map_err(q)?;
        let Some(paths) = repo.state.blob_paths.get(&blob) else { continue };
        for path in paths {
            out.definitions.push(Definition {
                name: name.to_owned(),
                kind: symbol_kind(row.get(1).map_err(q)?),
                container: row.get(2).map_err(q)?,
                path: path.clone(),
                line: row.get(3).map_err(q)?,
                end_line: row.get(4).map_err(q)?,
                signature: row.get(5).map_err(q)?,
            });
        }
    }
    out.definitions.sort_by(|a, b| (&a.path, a.line).cmp(&(&b.path, b.line)));
    out.definitions.truncate(limit);

    let blobs: BTreeSet<i64> = repo
        .state
        .lexical
        .chunks_with(word_hash(name))
        .into_iter()
        .filter_map(|c| repo.state.chunk_blob.get(&c).copied())
        .collect();
    let mut refs_stmt =
        repo.conn.prepare_cached("SELECT refs FROM kb_blobs WHERE id = ?1").map_err(q)?;
    let mut references = Vec::new();
    for blob in blobs {
        let Some(paths) = repo.state.blob_paths.get(&blob) else { continue };
        let encoded: Vec<u8> = refs_stmt.query_row([blob], |r| r.get(0)).map_err(q)?;
        let mut lines = Vec::new();
        crate::refs::decode(&encoded, |n, _, ls| {
            if n == name {
                lines.extend(ls);
            }
        });
        for path in paths {
            references.extend(lines.iter().map(|&line| Reference { path: path.clone(), line }));
        }
    }
    references.sort_by(|a, b| (&a.path, a.line).cmp(&(&b.path, b.line)));
    references.truncate(limit);
    out.references = references;
    Ok(out)
}
