//! Index benchmark: `cargo bench -p cadre-knowledge --bench index -- DIR`
//! (a corpus: `bash /work/shared/anchors/index/make-corpus.sh` builds `/tmp/idx-corpus`).
//!
//! Prints: full index throughput (lines/s, MB/s), single-file re-index time (an edit, re-indexed alone,
//! and found by a `Changed` walk), query latency p50/p99 over a fixed query set, symbol lookup and
//! repository map times, index size on disk, and peak RSS. The edited file is restored at the end.
//! Each index run's phases (walk, parse, write) are printed from the indexer's `index run` debug event.
//! With `--ceiling`, it then times on one thread, per CPU second, tree-sitter's parse alone and
//! [`cadre_knowledge::outline`] (parse, chunks, symbols, references) over the corpus's `.rs` files, to
//! show where the full index's time goes (compare with the anchors' py-tree-sitter parse ceiling).
#![allow(clippy::print_stdout, clippy::print_stderr, clippy::cast_precision_loss)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cadre_domain::ports::knowledge::{
    IndexScope, KnowledgeBase, MapRequest, SearchMode, SearchQuery,
};
use cadre_knowledge::EmbeddedKnowledge;

const QUERIES: &[&str] = &[
    "spawn_blocking",
    "IndexWriter",
    "PutObjectOutput",
    "ServerConnection",
    "parse_quote",
    "poll_read",
    "ZqxNoSuchIdentifier",
    "read file to string",
    "retry with exponential backoff",
    "tls handshake client hello",
    "serialize map to json",
    "cancel task on drop",
    "http request headers",
    "compile regex literal",
    "thread pool worker",
    "tcp listener accept connection",
    "signature v4 canonical request",
    "segment merge policy",
    "deserialize struct field",
    "unicode class negation",
];
const QUERY_ROUNDS: usize = 20;

fn main() {
    // Ignored when a subscriber is already set; the bench only reads the indexer's phase timings.
    let _ = tracing::subscriber::set_global_default(PhaseLog);
    let Some(dir) = std::env::args().skip(1).find(|a| !a.starts_with('-')) else {
        eprintln!("usage: cargo bench -p cadre-knowledge --bench index -- DIR");
        std::process::exit(2);
    };
    let root = PathBuf::from(dir);
    let runtime =
        tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    runtime.block_on(run(&root));
    if std::env::args().any(|a| a == "--ceiling") {
        ceiling(&root);
    }
}

/// Single-threaded parse and outline rates over every `.rs` file, read into memory first.
fn ceiling(root: &Path) {
    let mut files = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("read dir").flatten() {
            let path = entry.path();
            if path.is_dir() && !path.ends_with(".git") {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let rel = path.strip_prefix(root).expect("prefix").to_string_lossy().into_owned();
                files.push((rel, std::fs::read(&path).expect("read")));
            }
        }
    }
    let bytes: usize = files.iter().map(|f| f.1.len()).sum();
    let lines: usize = files.iter().map(|f| f.1.iter().filter(|&&b| b == b'\n').count()).sum();
    let rate = |what: &str, cpu: f64| {
        println!(
            "ceiling, one thread, {} .rs files: {what}: {cpu:.2} CPU s, {:.1} MB per CPU s, {:.0} lines per CPU s",
            files.len(),
            bytes as f64 / 1e6 / cpu,
            lines as f64 / cpu
        );
    };
    let mut parser = tree_sitter::Parser::new();
    parser.set_language(&tree_sitter_rust::LANGUAGE.into()).expect("rust grammar");
    let before = cpu_seconds();
    let mut errors = 0;
    for (_, text) in &files {
        let tree = parser.parse(text, None).expect("parse");
        errors += usize::from(tree.root_node().has_error());
    }
    rate(&format!("tree-sitter parse only ({errors} with errors)"), cpu_seconds() - before);
    let before = cpu_seconds();
    let mut chunks = 0;
    for (path, text) in &files {
        chunks += cadre_knowledge::outline(path, text).chunks.len();
    }
    rate(
        &format!("outline: parse + chunks + symbols + references ({chunks} chunks)"),
        cpu_seconds() - before,
    );
}

async fn run(root: &Path) {
    let data = tempfile::tempdir().expect("tempdir");
    let kb = EmbeddedKnowledge::open(data.path()).expect("open");
    let key = EmbeddedKnowledge::repo_key(root).expect("repo key");
    println!("corpus: {}", root.display());

    let started = Instant::now();
    let cpu_before = cpu_seconds();
    let progress = Arc::new(|_| {});
    let report =
        kb.index_with_progress(&key, root, IndexScope::Full, progress).await.expect("index");
    let wall = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu_before;
    println!(
        "full index: {} files seen, {} parsed, {} skipped, {} lexical-only; {} lines, {:.1} MB; {} chunks, {} symbols",
        report.files_seen,
        report.files_parsed,
        report.skipped.len(),
        report.lexical_only.len(),
        report.lines,
        report.bytes as f64 / 1e6,
        report.totals.chunks,
        report.totals.symbols
    );
    println!(
        "full index: {wall:.2} s wall, {:.0} lines/s, {:.1} MB/s",
        report.lines as f64 / wall,
        report.bytes as f64 / 1e6 / wall
    );
    // CPU time does not depend on what else runs on the machine: compare it with the anchors' per-core rates.
    println!(
        "full index: {cpu:.2} CPU s ({:.2} cores busy), {:.0} lines per CPU s, {:.1} MB per CPU s; load average {}",
        cpu / wall,
        report.lines as f64 / cpu,
        report.bytes as f64 / 1e6 / cpu,
        std::fs::read_to_string("/proc/loadavg").unwrap_or_default().split(' ').next().unwrap_or("?")
    );

    // One file edited, re-indexed alone (as an editor save would), then found by a walk (as after a commit).
    let target = pick_file(root);
    let original = std::fs::read(root.join(&target)).expect("read target");
    let mut alone = Vec::new();
    let mut walked = Vec::new();
    for round in 0..7 {
        let mut edited = original.clone();
        edited.extend_from_slice(
            format!("\n// bench edit {round}\nfn bench_edit_{round}() {{}}\n").as_bytes(),
        );
        std::fs::write(root.join(&target), &edited).expect("edit");
        let t = Instant::now();
        let r =
            kb.index(&key, root, IndexScope::Paths(vec![target.clone()])).await.expect("reindex");
        alone.push(t.elapsed());
        assert_eq!(r.files_parsed, 1);
        edited.extend_from_slice(b"// and once more\n");
        std::fs::write(root.join(&target), &edited).expect("edit");
        let t = Instant::now();
        let r = kb.index(&key, root, IndexScope::Changed).await.expect("reindex");
        walked.push(t.elapsed());
        assert_eq!(r.files_parsed, 1);
    }
    std::fs::write(root.join(&target), &original).expect("restore");
    kb.index(&key, root, IndexScope::Paths(vec![target.clone()])).await.expect("reindex");
    println!(
        "incremental ({target}, {} KB): one file alone p50 {:.1} ms (max {:.1}); after a `Changed` walk p50 {:.1} ms",
        original.len() / 1024,
        ms(percentile(&mut alone, 50.0)),
        ms(*alone.iter().max().expect("runs")),
        ms(percentile(&mut walked, 50.0))
    );

    let mut latencies = Vec::new();
    let mut lookups = Vec::new();
    for round in 0..QUERY_ROUNDS {
        for q in QUERIES {
            let mut query = SearchQuery::new(*q, 10);
            query.mode = SearchMode::Lexical;
            let t = Instant::now();
            let results = kb.search(&key, &query).await.expect("search");
            latencies.push(t.elapsed());
            if round == 0 {
                let top = results.hits.first().map_or("-".to_owned(), |h| {
                    format!(
                        "{}:{} {}",
                        h.chunk.path,
                        h.chunk.start_line,
                        h.chunk.symbol.as_deref().unwrap_or("-")
                    )
                });
                println!("  query {q:?}: {} hits, top {top}", results.hits.len());
            }
        }
        for name in ["spawn_blocking", "IndexWriter", "parse_quote"] {
            let t = Instant::now();
            kb.lookup_symbol(&key, name, 100).await.expect("lookup");
            lookups.push(t.elapsed());
        }
    }
    println!(
        "queries: {} runs, p50 {:.2} ms, p99 {:.2} ms; symbol lookup p50 {:.2} ms, p99 {:.2} ms",
        latencies.len(),
        ms(percentile(&mut latencies, 50.0)),
        ms(percentile(&mut latencies, 99.0)),
        ms(percentile(&mut lookups, 50.0)),
        ms(percentile(&mut lookups, 99.0))
    );

    let t = Instant::now();
    let map = kb
        .repo_map(&key, &MapRequest { token_budget: 1024, ..MapRequest::default() })
        .await
        .expect("map");
    println!(
        "repo map (1024 tokens): {:.0} ms, {} files, {} tokens",
        ms(t.elapsed()),
        map.files.len(),
        map.tokens
    );

    let stats = kb.stats(&key).await.expect("stats");
    println!(
        "index on disk: {:.1} MB ({} segments); peak RSS {:.0} MB",
        stats.disk_bytes as f64 / 1e6,
        stats.segments,
        peak_rss_kb() as f64 / 1024.0
    );
}

/// A mid-sized `.rs` file, deterministically.
fn pick_file(root: &Path) -> String {
    let mut files: Vec<(u64, String)> = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("read dir").flatten() {
            let path = entry.path();
            if path.file_name().is_some_and(|n| n == ".git") {
                continue;
            }
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let size = entry.metadata().map(|m| m.len()).unwrap_or(0);
                let rel = path.strip_prefix(root).expect("prefix").to_string_lossy().into_owned();
                files.push((size, rel));
            }
        }
    }
    files.sort();
    files.get(files.len() / 2).map(|f| f.1.clone()).expect("a .rs file in the corpus")
}

fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    samples.sort();
    let at = ((samples.len() as f64 - 1.0) * p / 100.0).round() as usize;
    samples[at.min(samples.len() - 1)]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// User + system CPU seconds of this process so far (`/proc/self/stat`, in USER_HZ = 100 ticks).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> =
        stat.rsplit_once(')').map_or("", |(_, rest)| rest).split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    (ticks(11) + ticks(12)) as f64 / 100.0
}

fn peak_rss_kb() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Prints the fields of the indexer's `index run` debug event (walk, parse and write times), so a
/// throughput figure comes with where its time went. A subscriber of a dozen lines, because
/// `tracing-subscriber` is not a dependency of this crate.
struct PhaseLog;

impl tracing::Subscriber for PhaseLog {
    fn enabled(&self, metadata: &tracing::Metadata<'_>) -> bool {
        metadata.target().starts_with("cadre_knowledge::indexer")
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        struct Fields(String, bool);
        impl tracing::field::Visit for Fields {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                if field.name() == "message" {
                    self.1 = format!("{value:?}") == "index run";
                } else {
                    self.0.push_str(&format!(" {}={value:?}", field.name()));
                }
            }
        }
        let mut fields = Fields(String::new(), false);
        event.record(&mut fields);
        if fields.1 {
            println!("  phases:{}", fields.0);
        }
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}
