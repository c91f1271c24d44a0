//! `cadre index` and `cadre search`: the knowledge base from the command line.
//!
//! Indexes live under Cadre's data directory, one per repository (`<home>/knowledge/<key>`, the key a
//! hash of the repository's absolute path). Progress goes to stderr, results to stdout.

use std::io::{IsTerminal, Write};
use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use cadre_domain::ports::knowledge::{
    IndexReport, IndexScope, KnowledgeBase, Language, RetrievalMode, SearchFilter, SearchMode,
    SearchQuery, VectorStatus,
};
use cadre_knowledge::{EmbeddedKnowledge, Progress};

use crate::cli::{IndexArgs, SearchArgs};
use crate::out;
use crate::wiring::{Core, Environment, Home};

/// Notes listed in full before "… and N more".
const NOTES_SHOWN: usize = 10;

/// The knowledge base, with the embedder `CADRE_EMBED` names (lexical only without one).
fn open(home: &Home, env: &Environment) -> Result<Arc<EmbeddedKnowledge>> {
    Ok(Core::open_with_embeddings(home, env)?.knowledge)
}

pub(crate) async fn index(args: IndexArgs, home: &Home, env: &Environment) -> Result<ExitCode> {
    let kb = open(home, env)?;
    let root = args
        .path
        .canonicalize()
        .with_context(|| format!("cannot index {}: it does not exist", args.path.display()))?;
    if !root.is_dir() {
        bail!("cannot index {}: not a directory; give the repository's directory", root.display());
    }
    let key = EmbeddedKnowledge::repo_key(&root)?;
    let scope = if args.full {
        IndexScope::Full
    } else if args.only.is_empty() {
        IndexScope::Changed
    } else {
        IndexScope::Paths(args.only.clone())
    };
    let report = kb
        .index_with_progress(&key, &root, scope, progress_bar())
        .await
        .with_context(|| format!("indexing {} failed", root.display()))?;
    finish_progress();
    summary(&root, &report);
    Ok(ExitCode::SUCCESS)
}

/// A one-line progress bar on stderr, redrawn at most every 1 % (only when stderr is a terminal).
fn progress_bar() -> Arc<dyn Fn(Progress) + Send + Sync> {
    if !std::io::stderr().is_terminal() {
        return Arc::new(|_| {});
    }
    let last = AtomicU64::new(u64::MAX);
    Arc::new(move |p: Progress| {
        let percent = (p.done * 100).checked_div(p.total).unwrap_or(100);
        if last.swap(percent, Ordering::Relaxed) == percent {
            return;
        }
        let filled = usize::try_from(percent / 5).unwrap_or(20);
        let bar = format!("{}{}", "#".repeat(filled), " ".repeat(20 - filled.min(20)));
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\rindexing [{bar}] {percent:>3}%  {}/{} files", p.done, p.total);
        let _ = err.flush();
    })
}

fn finish_progress() {
    if std::io::stderr().is_terminal() {
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r{}\r", " ".repeat(60));
    }
}

fn summary(root: &Path, r: &IndexReport) {
    #[allow(clippy::cast_precision_loss)]
    let secs = (r.elapsed_ms as f64 / 1000.0).max(0.001);
    out::line(format!("indexed {} in {secs:.2} s", root.display()));
    out::line(format!(
        "  files    {} seen: {} read ({} parsed), {} unchanged, {} removed, {} skipped",
        r.files_seen,
        r.files_indexed,
        r.files_parsed,
        r.files_unchanged,
        r.files_removed,
        r.skipped.len()
    ));
    #[allow(clippy::cast_precision_loss)]
    let rate = r.lines as f64 / secs;
    out::line(format!("  lines    {} parsed ({rate:.0} lines/s, {:.1} MB)", r.lines, mb(r.bytes)));
    out::line(format!(
        "  index    {} files, {} chunks (+{}), {} symbols (+{})",
        r.totals.files, r.totals.chunks, r.chunks_added, r.totals.symbols, r.symbols_added
    ));
    let vectors = match &r.vectors {
        VectorStatus::NoEmbedder => {
            "none: no embedder is configured, so search is lexical only".to_owned()
        }
        VectorStatus::Embedded { chunks } => format!("{chunks} chunks embedded"),
        VectorStatus::Failed { error } => {
            format!("failed ({error}); search is lexical until the next run")
        }
    };
    out::line(format!("  vectors  {vectors}"));
    notes("skipped", r.skipped.iter().map(|n| format!("{}: {}", n.path, n.reason)));
    notes(
        "indexed by lines only",
        r.lexical_only.iter().map(|n| format!("{}: {}", n.path, n.reason)),
    );
}

fn notes(title: &str, items: impl ExactSizeIterator<Item = String>) {
    let total = items.len();
    if total == 0 {
        return;
    }
    out::line(format!("  {title} ({total}):"));
    for item in items.take(NOTES_SHOWN) {
        out::line(format!("    {item}"));
    }
    if total > NOTES_SHOWN {
        out::line(format!("    … and {} more", total - NOTES_SHOWN));
    }
}

#[allow(clippy::cast_precision_loss)]
fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1e6
}

pub(crate) async fn search(args: SearchArgs, home: &Home, env: &Environment) -> Result<ExitCode> {
    let kb = open(home, env)?;
    let key = EmbeddedKnowledge::repo_key(&args.path)
        .with_context(|| format!("cannot search {}", args.path.display()))?;
    let mut languages = Vec::new();
    for name in &args.languages {
        let Some(language) = Language::parse(name) else {
            let known: Vec<&str> = Language::ALL.iter().map(|l| l.name()).collect();
            bail!("unknown language `{name}`; use one of {}", known.join(", "));
        };
        languages.push(language);
    }
    let query = SearchQuery {
        text: args.query.clone(),
        limit: args.limit.max(1),
        mode: SearchMode::Hybrid,
        filter: SearchFilter { path_prefix: args.prefix.clone(), languages },
    };
    let results = kb.search(&key, &query).await?;
    let mode = match &results.mode {
        RetrievalMode::Lexical => "lexical".to_owned(),
        RetrievalMode::Vector => "vector".to_owned(),
        RetrievalMode::Fused => "lexical + vector (fused)".to_owned(),
        RetrievalMode::LexicalOnly { reason } => format!("lexical only ({reason})"),
    };
    out::line(format!("# {} results, {mode}", results.hits.len()));
    for hit in &results.hits {
        let c = &hit.chunk;
        let location = format!("{}:{}", c.path, c.start_line);
        out::line(format!(
            "{location:<50}  {:>7.3}  {}",
            hit.score,
            c.symbol.as_deref().unwrap_or("-")
        ));
        if args.text {
            for line in c.text.lines() {
                out::line(format!("    {line}"));
            }
        }
    }
    if results.hits.is_empty() {
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}
