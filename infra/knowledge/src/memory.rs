//! Long-term memory of a repository: decisions, conventions and past task outcomes, in `kb_memory`,
//! recalled by BM25 over their title (counted twice), body and tags.

use cadre_domain::ports::knowledge::{
    KnowledgeError, Memory, MemoryKind, MemoryQuery, NewMemory, TaskVerdict,
};
use cadre_domain::{TaskId, Timestamp};
use rusqlite::{params, Connection};

use crate::lexical::{query_terms, DocTerms};
use crate::store::unavailable;

pub(crate) fn remember(conn: &Connection, memory: &NewMemory) -> Result<u64, KnowledgeError> {
    let tags = serde_json::to_string(&memory.tags).unwrap_or_else(|_| "[]".into());
    let verdict = memory.verdict.map(verdict_name);
    conn.execute(
        "INSERT INTO kb_memory (kind, title, body, tags, task, verdict, at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            memory.kind.name(),
            memory.title,
            memory.body,
            tags,
            memory.task.as_ref().map(TaskId::as_str),
            verdict,
            memory.at.0
        ],
    )
    .map_err(|e| unavailable("store a memory", e))?;
    Ok(conn.last_insert_rowid().unsigned_abs())
}

pub(crate) fn forget(conn: &Connection, id: u64) -> Result<bool, KnowledgeError> {
    let id = i64::try_from(id).unwrap_or(-1);
    let n = conn
        .execute("DELETE FROM kb_memory WHERE id = ?1", [id])
        .map_err(|e| unavailable("delete a memory", e))?;
    Ok(n > 0)
}

pub(crate) fn recall(
    conn: &Connection,
    query: &MemoryQuery,
) -> Result<Vec<Memory>, KnowledgeError> {
    let q = |e| unavailable("read memories", e);
    let mut stmt = conn
        .prepare_cached(
            "SELECT id, kind, title, body, tags, task, verdict, at FROM kb_memory ORDER BY at DESC, id DESC",
        )
        .map_err(q)?;
    let mut all: Vec<Memory> = stmt
        .query_map([], |r| {
            let kind: String = r.get(1)?;
            let tags: String = r.get(4)?;
            let task: Option<String> = r.get(5)?;
            let verdict: Option<String> = r.get(6)?;
            Ok(Memory {
                id: r.get::<_, i64>(0)?.unsigned_abs(),
                memory: NewMemory {
                    kind: MemoryKind::parse(&kind).unwrap_or(MemoryKind::Decision),
                    title: r.get(2)?,
                    body: r.get(3)?,
                    tags: serde_json::from_str(&tags).unwrap_or_default(),
                    task: task.and_then(|t| TaskId::parse(&t).ok()),
                    verdict: verdict.as_deref().and_then(parse_verdict),
                    at: Timestamp(r.get(7)?),
                },
                score: 0.0,
            })
        })
        .map_err(q)?
        .collect::<Result<_, _>>()
        .map_err(q)?;
    all.retain(|m| query.kinds.is_empty() || query.kinds.contains(&m.memory.kind));
    let limit = if query.limit == 0 { all.len() } else { query.limit };
    let terms = query_terms(&query.text);
    if terms.is_empty() {
        all.truncate(limit);
        return Ok(all);
    }
    let docs: Vec<DocTerms> = all
        .iter()
        .map(|m| {
            let tags = m.memory.tags.join(" ");
            let text = format!("{}\n{}\n{}", m.memory.title, m.memory.body, tags);
            DocTerms::of(&text, &[&m.memory.title], 1)
        })
        .collect();
    #[allow(clippy::cast_precision_loss)]
    let n = docs.len() as f64;
    #[allow(clippy::cast_precision_loss)]
    let avgdl = (docs.iter().map(|d| f64::from(d.len)).sum::<f64>() / n.max(1.0)).max(1.0);
    for (m, doc) in all.iter_mut().zip(&docs) {
        let mut score = 0.0;
        for (term, weight) in &terms {
            let df = docs
                .iter()
                .filter(|d| d.terms.binary_search_by_key(term, |(t, _)| *t).is_ok())
                .count();
            let Ok(at) = doc.terms.binary_search_by_key(term, |(t, _)| *t) else { continue };
            let tf = f64::from(doc.terms[at].1);
            #[allow(clippy::cast_precision_loss)]
            let idf = (1.0 + (n - df as f64 + 0.5) / (df as f64 + 0.5)).ln();
            let norm = 1.2 * (0.25 + 0.75 * f64::from(doc.len) / avgdl);
            score += f64::from(*weight) * idf * tf * 2.2 / (tf + norm);
        }
        m.score = score;
    }
    all.retain(|m| m.score > 0.0);
    // Stable sort: equal scores keep the most recent first.
    all.sort_by(|a, b| b.score.total_cmp(&a.score));
    all.truncate(limit);
    Ok(all)
}

fn verdict_name(v: TaskVerdict) -> &'static str {
    match v {
        TaskVerdict::Accepted => "accepted",
        TaskVerdict::Rejected => "rejected",
        TaskVerdict::Failed => "failed",
    }
}

fn parse_verdict(s: &str) -> Option<TaskVerdict> {
    [TaskVerdict::Accepted, TaskVerdict::Rejected, TaskVerdict::Failed]
        .into_iter()
        .find(|v| verdict_name(*v) == s)
}
