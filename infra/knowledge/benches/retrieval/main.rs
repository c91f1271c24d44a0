//! Retrieval-quality evaluation: recall@k and MRR of lexical, vector and fused retrieval through the
//! real [`EmbeddedKnowledge`], on a query set built from a real repository (`eval/README.md`).
//!
//! ```sh
//! bash infra/knowledge/eval/setup.sh                                   # venv + MiniLM weights
//! /tmp/cadre-eval/venv/bin/python infra/knowledge/eval/gen_queries.py  # corpus + eval/queries.jsonl
//! /tmp/cadre-eval/venv/bin/python infra/knowledge/eval/embed_server.py --cache /tmp/cadre-eval/vectors.sqlite &
//! cargo bench -p cadre-knowledge --bench retrieval -- --embed-url http://127.0.0.1:8392/v1
//! ```
//!
//! Flags: `--corpus DIR` (default `/tmp/cadre-eval/corpus`), `--queries FILE` (default
//! `eval/queries.jsonl`), `--embed-url URL` (without it only lexical retrieval runs, and the table says
//! so), `--model NAME`, `--dims N` (384), `--k N` (10), `--out FILE` (each query's ranks, JSONL).
//! A hit is a returned chunk in the answer's file that overlaps the answer item's lines or defines
//! its symbol; the file-level columns only ask for the file.
#![allow(clippy::print_stdout, clippy::print_stderr, clippy::cast_precision_loss)]

mod embedder;
mod judge;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cadre_domain::ports::knowledge::{
    IndexScope, KnowledgeBase, RetrievalMode, SearchMode, SearchQuery, VectorStatus,
};
use cadre_knowledge::EmbeddedKnowledge;

use embedder::HttpEmbedder;
use judge::{Query, Score};

struct Args {
    corpus: PathBuf,
    queries: PathBuf,
    embed_url: Option<String>,
    model: String,
    dims: usize,
    k: usize,
    out: Option<PathBuf>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        corpus: PathBuf::from("/tmp/cadre-eval/corpus"),
        queries: Path::new(env!("CARGO_MANIFEST_DIR")).join("eval/queries.jsonl"),
        embed_url: None,
        model: "all-MiniLM-L6-v2".to_owned(),
        dims: 384,
        k: 10,
        out: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "--bench" {
            continue; // added by `cargo bench`
        }
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--corpus" => args.corpus = PathBuf::from(value()?),
            "--queries" => args.queries = PathBuf::from(value()?),
            "--embed-url" => args.embed_url = Some(value()?),
            "--model" => args.model = value()?,
            "--dims" => args.dims = value()?.parse().map_err(|e| format!("--dims: {e}"))?,
            "--k" => args.k = value()?.parse().map_err(|e| format!("--k: {e}"))?,
            "--out" => args.out = Some(PathBuf::from(value()?)),
            other => {
                return Err(format!(
                    "unknown flag {other}; see the doc comment of benches/retrieval/main.rs"
                ))
            }
        }
    }
    Ok(args)
}

fn main() {
    let args = match parse_args() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("retrieval bench: {e}");
            std::process::exit(2);
        }
    };
    let runtime =
        tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    if let Err(e) = runtime.block_on(run(&args)) {
        eprintln!("retrieval bench: {e}");
        std::process::exit(1);
    }
}

/// One query's outcome in one mode.
struct Outcome {
    rank: Option<usize>,
    file_rank: Option<usize>,
    took: Duration,
    top: String,
}

async fn run(args: &Args) -> Result<(), String> {
    let queries = judge::load(&args.queries)?;
    for q in &queries {
        if !args.corpus.join(&q.path).is_file() {
            return Err(format!(
                "query {} answers with {}, which is not in the corpus {}; run eval/gen_queries.py",
                q.id,
                q.path,
                args.corpus.display()
            ));
        }
    }
    let data = tempfile::tempdir().map_err(|e| format!("tempdir: {e}"))?;
    let mut kb = EmbeddedKnowledge::open(data.path()).map_err(|e| e.to_string())?;
    if let Some(url) = &args.embed_url {
        kb = kb.with_embedder(Arc::new(HttpEmbedder::new(url, &args.model, args.dims)?));
    }
    let key = EmbeddedKnowledge::repo_key(&args.corpus).map_err(|e| e.to_string())?;
    println!(
        "corpus: {} ({} queries from {}); load average {}",
        args.corpus.display(),
        queries.len(),
        args.queries.display(),
        load_average()
    );

    let started = Instant::now();
    let report = kb.index(&key, &args.corpus, IndexScope::Full).await.map_err(|e| e.to_string())?;
    let stats = kb.stats(&key).await.map_err(|e| e.to_string())?;
    println!(
        "index: {} files, {} lines, {} chunks, {} symbols, {} vectors ({:?}) in {:.1} s",
        report.files_indexed,
        report.lines,
        report.totals.chunks,
        report.totals.symbols,
        stats.vectors,
        report.vectors,
        started.elapsed().as_secs_f64()
    );
    if let VectorStatus::Failed { error } = &report.vectors {
        return Err(format!(
            "embedding failed during indexing: {error}; is embed_server.py running?"
        ));
    }

    let mut modes = vec![SearchMode::Lexical];
    if args.embed_url.is_some() {
        modes.extend([SearchMode::Vector, SearchMode::Hybrid]);
    }
    let mut outcomes: Vec<Vec<Outcome>> = Vec::new();
    for &mode in &modes {
        let mut per_query = Vec::with_capacity(queries.len());
        for q in &queries {
            let mut search = SearchQuery::new(q.query.clone(), args.k);
            search.mode = mode;
            let t = Instant::now();
            let results = kb.search(&key, &search).await.map_err(|e| e.to_string())?;
            let took = t.elapsed();
            let expected = match mode {
                SearchMode::Lexical => RetrievalMode::Lexical,
                SearchMode::Vector => RetrievalMode::Vector,
                SearchMode::Hybrid => RetrievalMode::Fused,
            };
            if results.mode != expected {
                return Err(format!(
                    "query {} in mode {mode:?} ran as {:?}, not {expected:?}",
                    q.id, results.mode
                ));
            }
            let chunks: Vec<_> = results.hits.into_iter().map(|h| h.chunk).collect();
            let top = chunks.first().map_or("-".to_owned(), |c| {
                format!("{}:{} {}", c.path, c.start_line, c.symbol.as_deref().unwrap_or("-"))
            });
            per_query.push(Outcome {
                rank: judge::first_rank(&chunks, |c| judge::answers(c, q)),
                file_rank: judge::first_rank(&chunks, |c| c.path == q.path),
                took,
                top,
            });
        }
        outcomes.push(per_query);
    }

    print_table(args, &queries, &modes, &outcomes);
    if let Some(out) = &args.out {
        write_details(out, &queries, &modes, &outcomes)?;
        println!("per-query ranks: {}", out.display());
    }
    println!("load average at the end {}", load_average());
    Ok(())
}

/// Whether a query belongs to a row group of the table.
type Member = fn(&Query) -> bool;

fn print_table(args: &Args, queries: &[Query], modes: &[SearchMode], outcomes: &[Vec<Outcome>]) {
    let k = args.k;
    println!();
    println!(
        "| mode | queries | n | recall@1 | recall@5 | recall@{k} | MRR@{k} | file recall@{k} | file MRR@{k} | p50 ms | p99 ms |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (mode, per_query) in modes.iter().zip(outcomes) {
        // The hand-written questions are split by id parity: any retrieval change is judged on the
        // odd half ("hand-tune") and reported on the even half ("hand-held-out"), never tuned on.
        let groups: [(&str, Member); 5] = [
            ("all", |_| true),
            ("doc", |q| q.source == "doc"),
            ("hand", |q| q.source == "hand"),
            ("hand-tune", |q| q.source == "hand" && q.id % 2 == 1),
            ("hand-held-out", |q| q.source == "hand" && q.id % 2 == 0),
        ];
        for (label, member) in groups {
            let (mut chunk, mut file) = (Score::default(), Score::default());
            let mut times = Vec::new();
            for (q, o) in queries.iter().zip(per_query) {
                if !member(q) {
                    continue;
                }
                chunk.add(o.rank, k);
                file.add(o.file_rank, k);
                times.push(o.took);
            }
            if chunk.queries == 0 {
                continue;
            }
            println!(
                "| {mode:?} | {label} | {} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} | {:.1} | {:.1} |",
                chunk.queries,
                chunk.recall(chunk.at1),
                chunk.recall(chunk.at5),
                chunk.recall(chunk.at10),
                chunk.mrr(),
                file.recall(file.at10),
                file.mrr(),
                ms(percentile(&mut times, 50.0)),
                ms(percentile(&mut times, 99.0)),
            );
        }
    }
    if modes.len() == 1 {
        println!(
            "| Vector, Hybrid | - | - | absent: no --embed-url, so no embedder was configured |"
        );
    }
    println!();
}

fn write_details(
    out: &Path,
    queries: &[Query],
    modes: &[SearchMode],
    outcomes: &[Vec<Outcome>],
) -> Result<(), String> {
    let mut file = std::fs::File::create(out).map_err(|e| format!("{}: {e}", out.display()))?;
    for (i, q) in queries.iter().enumerate() {
        let mut row = serde_json::json!({
            "id": q.id, "source": q.source, "query": q.query, "path": q.path, "symbol": q.symbol,
        });
        for (mode, per_query) in modes.iter().zip(outcomes) {
            let o = &per_query[i];
            row[format!("{mode:?}").to_lowercase()] =
                serde_json::json!({ "rank": o.rank, "file_rank": o.file_rank, "top": o.top });
        }
        writeln!(file, "{row}").map_err(|e| format!("{}: {e}", out.display()))?;
    }
    Ok(())
}

fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    samples.sort();
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let at = ((samples.len() as f64 - 1.0) * p / 100.0).round() as usize;
    samples.get(at.min(samples.len().saturating_sub(1))).copied().unwrap_or_default()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split(' ')
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}
