//! The repository map: files and their key symbols, ranked by importance, cut to a token budget.
//!
//! The ranking follows Aider's repo map: a graph of files, with an edge from a file to each file
//! defining a name it uses (weighted by how often, by how specific the name is, and by the task's
//! focus), ranked by personalized PageRank; each file's rank then flows along its edges to the
//! definitions it uses, which ranks the symbols. The map shows the best symbols that fit the budget,
//! found by binary search over how many to show.

use std::collections::HashMap;
use std::fmt::Write;

use cadre_domain::ports::knowledge::{
    estimate_tokens, KnowledgeError, MapFile, MapRequest, MapSymbol, RepoMap, SymbolKind,
};

use crate::repo::RepoIndex;
use crate::store::{symbol_kind, unavailable};

const DAMPING: f64 = 0.85;
const ITERATIONS: usize = 30;

struct Def {
    file: usize,
    name: usize,
    kind: SymbolKind,
    line: u32,
    signature: String,
}

/// The def-use graph of the whole index, built once per index state (it only changes when files do)
/// and kept with it; a map request only re-weights it for its focus and ranks.
pub(crate) struct MapGraph {
    files: Vec<String>,
    names: Vec<String>,
    defs: Vec<Def>,
    /// (from file, to file, name, weight without focus).
    edges: Vec<(usize, usize, usize, f64)>,
}

fn load_graph(repo: &RepoIndex) -> Result<MapGraph, KnowledgeError> {
    let q = |e| unavailable("build the repository map", e);
    // One path per blob: a copied file adds nothing to a map.
    let mut files: Vec<(&str, i64)> = repo
        .state
        .blob_paths
        .iter()
        .filter_map(|(b, p)| p.first().map(|p| (p.as_str(), *b)))
        .collect();
    files.sort_unstable();
    let file_of: HashMap<i64, usize> =
        files.iter().enumerate().map(|(i, (_, b))| (*b, i)).collect();

    let mut names: Vec<String> = Vec::new();
    let mut name_ids: HashMap<String, usize> = HashMap::new();
    let mut defs: Vec<Def> = Vec::new();
    let mut definers: Vec<Vec<usize>> = Vec::new();
    {
        let mut stmt = repo
            .conn
            .prepare("SELECT blob, name, kind, start_line, signature FROM kb_symbols ORDER BY blob, start_line")
            .map_err(q)?;
        let mut rows = stmt.query([]).map_err(q)?;
        while let Some(row) = rows.next().map_err(q)? {
            let Some(&file) = file_of.get(&row.get::<_, i64>(0).map_err(q)?) else { continue };
            let name: String = row.get(1).map_err(q)?;
            let id = *name_ids.entry(name.clone()).or_insert_with(|| {
                names.push(name);
                definers.push(Vec::new());
                names.len() - 1
            });
            if definers[id].last() != Some(&file) {
                definers[id].push(file);
            }
            defs.push(Def {
                file,
                name: id,
                kind: symbol_kind(row.get(2).map_err(q)?),
                line: row.get(3).map_err(q)?,
                signature: row.get(4).map_err(q)?,
            });
        }
    }
    let mut edges: Vec<(usize, usize, usize, f64)> = Vec::new();
    {
        let mut stmt = repo.conn.prepare("SELECT id, refs FROM kb_blobs").map_err(q)?;
        let mut rows = stmt.query([]).map_err(q)?;
        while let Some(row) = rows.next().map_err(q)? {
            let Some(&from) = file_of.get(&row.get::<_, i64>(0).map_err(q)?) else { continue };
            let encoded: Vec<u8> = row.get(1).map_err(q)?;
            crate::refs::decode(&encoded, |name, count, _| {
                let Some(&id) = name_ids.get(name) else { return };
                let targets = &definers[id];
                let weight = name_weight(name, targets.len(), &[]) * f64::from(count).sqrt();
                for &to in targets {
                    if to != from {
                        edges.push((from, to, id, weight));
                    }
                }
            });
        }
    }
    let files = files.into_iter().map(|(p, _)| p.to_owned()).collect();
    Ok(MapGraph { files, names, defs, edges })
}

pub(crate) fn build(repo: &mut RepoIndex, request: &MapRequest) -> Result<RepoMap, KnowledgeError> {
    if repo.state.map_graph.is_none() {
        repo.state.map_graph = Some(std::sync::Arc::new(load_graph(repo)?));
    }
    let graph = repo
        .state
        .map_graph
        .clone()
        .ok_or_else(|| KnowledgeError::Unavailable("no map graph".into()))?;
    let MapGraph { files, names, defs, edges: base } = &*graph;

    let focus_file: Vec<bool> =
        files.iter().map(|p| request.focus_paths.iter().any(|f| f == p)).collect();
    let focus_name: Vec<bool> =
        names.iter().map(|n| request.focus_symbols.iter().any(|f| f == n)).collect();
    let edges: Vec<(usize, usize, usize, f64)> = base
        .iter()
        .map(|&(from, to, name, w)| {
            let mut w = w;
            if focus_name[name] {
                w *= 10.0;
            }
            if focus_file[from] {
                w *= 50.0;
            }
            (from, to, name, w)
        })
        .collect();

    let ranks = pagerank(files.len(), &edges, &focus_file);
    let mut out_weight = vec![0f64; files.len()];
    for &(from, _, _, w) in &edges {
        out_weight[from] += w;
    }
    let mut def_rank: HashMap<(usize, usize), f64> = HashMap::new();
    for &(from, to, name, w) in &edges {
        *def_rank.entry((to, name)).or_default() += ranks[from] * w / out_weight[from];
    }

    // One entry per (file, name): its first definition.
    let mut seen = std::collections::HashSet::new();
    let mut ranked: Vec<(f64, &Def)> = defs
        .iter()
        .filter(|d| seen.insert((d.file, d.name)))
        .map(|d| {
            let focus = if focus_name[d.name] { 1.0 } else { 0.0 };
            let rank = def_rank.get(&(d.file, d.name)).copied().unwrap_or(0.0)
                + ranks[d.file] * 1e-3
                + focus;
            (rank, d)
        })
        .collect();
    ranked
        .sort_by(|a, b| b.0.total_cmp(&a.0).then((a.1.file, a.1.line).cmp(&(b.1.file, b.1.line))));

    let render = |k: usize| -> (String, Vec<MapFile>) {
        let mut by_file: Vec<(usize, Vec<(f64, &Def)>)> = Vec::new();
        let mut slot: HashMap<usize, usize> = HashMap::new();
        for &(rank, d) in ranked.iter().take(k) {
            let at = *slot.entry(d.file).or_insert_with(|| {
                by_file.push((d.file, Vec::new()));
                by_file.len() - 1
            });
            by_file[at].1.push((rank, d));
        }
        let mut text = String::new();
        let mut out = Vec::with_capacity(by_file.len());
        for (file, mut symbols) in by_file {
            symbols.sort_by_key(|(_, d)| d.line);
            let _ = writeln!(text, "{}:", files[file]);
            for (_, d) in &symbols {
                let _ = writeln!(text, "{:>6}: {}", d.line, d.signature);
            }
            out.push(MapFile {
                path: files[file].clone(),
                rank: ranks[file],
                symbols: symbols
                    .iter()
                    .map(|(rank, d)| MapSymbol {
                        name: names[d.name].clone(),
                        kind: d.kind,
                        line: d.line,
                        signature: d.signature.clone(),
                        rank: *rank,
                    })
                    .collect(),
            });
        }
        (text, out)
    };

    // The most symbols whose map fits the budget. A symbol line takes at least 3 tokens (a line
    // number, a colon and a name), which bounds the search.
    let (mut lo, mut hi) = (0usize, ranked.len().min(request.token_budget / 3));
    while lo < hi {
        let mid = lo + (hi - lo).div_ceil(2);
        if estimate_tokens(&render(mid).0) <= request.token_budget {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    let (text, files_out) = render(lo);
    Ok(RepoMap {
        tokens: estimate_tokens(&text),
        files: files_out,
        text,
        truncated: lo < ranked.len(),
    })
}

/// How much a use of `name` says about the files defining it (after Aider's weights).
fn name_weight(name: &str, definers: usize, focus: &[String]) -> f64 {
    let mut w = 1.0;
    if focus.iter().any(|f| f == name) {
        w *= 10.0;
    }
    let bytes = name.as_bytes();
    let camel = bytes.windows(2).any(|p| p[0].is_ascii_lowercase() && p[1].is_ascii_uppercase());
    if name.len() >= 8 && (name.contains('_') || camel) {
        w *= 10.0;
    }
    if name.starts_with('_') {
        w *= 0.1;
    }
    if definers > 5 {
        w *= 0.1;
    }
    w
}

/// Personalized PageRank over the weighted file graph; the personalization is the focus files, or
/// uniform without focus.
fn pagerank(n: usize, edges: &[(usize, usize, usize, f64)], focus: &[bool]) -> Vec<f64> {
    if n == 0 {
        return Vec::new();
    }
    let focused = focus.iter().filter(|f| **f).count();
    #[allow(clippy::cast_precision_loss)]
    let personal: Vec<f64> = if focused == 0 {
        vec![1.0 / n as f64; n]
    } else {
        focus.iter().map(|&f| if f { 1.0 / focused as f64 } else { 0.0 }).collect()
    };
    let mut out_weight = vec![0f64; n];
    for &(from, _, _, w) in edges {
        out_weight[from] += w;
    }
    let mut rank = personal.clone();
    for _ in 0..ITERATIONS {
        let dangling: f64 = (0..n).filter(|&i| out_weight[i] == 0.0).map(|i| rank[i]).sum();
        let mut next: Vec<f64> =
            personal.iter().map(|p| (1.0 - DAMPING) * p + DAMPING * dangling * p).collect();
        for &(from, to, _, w) in edges {
            next[to] += DAMPING * rank[from] * w / out_weight[from];
        }
        rank = next;
    }
    rank
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pagerank_favours_the_used_file() {
        // 0 and 2 both use names defined in 1.
        let edges = [(0, 1, 0, 1.0), (2, 1, 0, 1.0), (1, 0, 1, 0.1)];
        let r = pagerank(3, &edges, &[false; 3]);
        assert!(r[1] > r[0] && r[0] > r[2], "{r:?}");
        let total: f64 = r.iter().sum();
        assert!((total - 1.0).abs() < 1e-6, "{total}");
    }

    #[test]
    fn specific_names_weigh_more() {
        assert!(name_weight("parse_config", 1, &[]) > name_weight("new", 1, &[]));
        assert!(name_weight("new", 9, &[]) < name_weight("new", 1, &[]));
        assert!(name_weight("run", 1, &["run".into()]) > name_weight("run", 1, &[]));
    }
}
