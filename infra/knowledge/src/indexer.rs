//! An index run: plan (which files changed), parse in parallel, write in one transaction, then update
//! the in-memory state.
//!
//! Workers (one per core) read, hash, parse, chunk and tokenize files; this thread writes their results
//! to SQLite and the new lexical segment as they arrive, so parsing and writing overlap. A file whose
//! stat is unchanged is not read; a file whose git blob id is already indexed is not parsed. Nothing in
//! memory changes until the transaction commits, so a failed run leaves the index as it was.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use cadre_domain::ports::knowledge::{
    FileNote, IndexReport, IndexScope, IndexTotals, KnowledgeError, Language, LexicalReason,
    SkipReason, VectorStatus,
};
use rusqlite::{params, Transaction};

use crate::lexical::{DocTerms, Segment, SegmentBuilder};
use crate::repo::{Delta, FileRow, RepoIndex, RepoState};
use crate::store::{self, unavailable};
use crate::syntax::{Def, Lines, Parsers, PhaseTimes, Span};
use crate::walk::{self, Found, IndexLimits};

/// How far a run is, for a progress bar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Files handled so far.
    pub done: u64,
    /// Files to handle in this run.
    pub total: u64,
}

/// Symbol names and signatures count this many times more than body text in a chunk's terms.
const SYMBOL_BOOST: u32 = 3;
/// More segments than this are merged into one (all but the largest).
const MAX_SEGMENTS: usize = 8;
/// A run that parsed at least this many files checkpoints SQLite's write-ahead log.
const CHECKPOINT_AFTER_FILES: u64 = 200;

enum Outcome {
    Skipped(Found, SkipReason),
    Known(Found, String),
    New(Found, Box<Parsed>),
}

struct Parsed {
    oid: String,
    language: Language,
    text: String,
    lines: u32,
    note: Option<LexicalReason>,
    chunks: Vec<(Span, usize, usize, DocTerms)>,
    defs: Vec<Def>,
    refs: Vec<u8>,
}

/// Runs an index over `root`.
pub(crate) fn run(
    repo: &mut RepoIndex,
    root: &Path,
    scope: &IndexScope,
    limits: &IndexLimits,
    progress: &(dyn Fn(Progress) + Sync),
) -> Result<IndexReport, KnowledgeError> {
    let started = Instant::now();
    let meta = std::fs::metadata(root)
        .map_err(|e| KnowledgeError::BadRoot { path: root.to_path_buf(), reason: e.to_string() })?;
    if !meta.is_dir() {
        return Err(KnowledgeError::BadRoot {
            path: root.to_path_buf(),
            reason: "not a directory".into(),
        });
    }
    if let IndexScope::Paths(paths) = scope {
        for p in paths {
            check_relative(p)?;
        }
    }
    if *scope == IndexScope::Full {
        clear(repo)?;
    }

    let mut report = empty_report();
    let mut work: Vec<Found> = Vec::new();
    let mut removed: Vec<String> = Vec::new();
    match scope {
        IndexScope::Full | IndexScope::Changed => {
            let found = walk::walk(root);
            report.files_seen = found.len() as u64;
            let present: HashSet<&str> = found.iter().map(|f| f.path.as_str()).collect();
            removed = repo
                .state
                .files
                .keys()
                .filter(|p| !present.contains(p.as_str()))
                .cloned()
                .collect();
            for f in found {
                match repo.state.files.get(&f.path) {
                    Some(row) if row.size == f.size && row.mtime_ns == f.mtime_ns => {
                        report.files_unchanged += 1;
                    }
                    _ => work.push(f),
                }
            }
        }
        IndexScope::Paths(paths) => {
            report.files_seen = paths.len() as u64;
            for p in paths {
                match walk::stat(root, p) {
                    Some(found) => work.push(found),
                    None if repo.state.files.contains_key(p) => removed.push(p.clone()),
                    None => {}
                }
            }
        }
    }
    removed.sort();
    // Largest first, so the last file a worker takes is a small one.
    work.sort_by_key(|f| std::cmp::Reverse(f.size));

    let mut delta = Delta::default();
    // Small while writing (see WRITE_CACHE_KIB); a failed run leaves it small until the next one ends.
    store::set_cache_kib(&repo.conn, store::WRITE_CACHE_KIB)?;
    let tx = repo.conn.transaction().map_err(|e| unavailable("start an index transaction", e))?;
    let mut writer = Writer::new(&tx, &repo.state, &mut delta, &mut report);
    let total = work.len() as u64;
    let walked = started.elapsed();
    let mut writing = Duration::ZERO;
    let workers = parse_all(&work, &repo.state.oids, limits, |outcome, done| {
        let t = Instant::now();
        writer.write(outcome)?;
        writing += t.elapsed();
        progress(Progress { done, total });
        Ok(())
    })?;
    let parsed_at = started.elapsed();
    let segment_add = writer.segment_time;
    for path in &removed {
        writer.remove(path)?;
    }
    writer.drop_orphans()?;
    let builder = std::mem::take(&mut writer.builder);
    drop(writer);

    let t = Instant::now();
    if !builder.is_empty() {
        let name = next_segment_name(&tx)?;
        let bytes = builder.finish();
        let seg = Segment::from_bytes(bytes.clone()).map_err(KnowledgeError::Corrupt)?;
        write_segment(&repo.dir.join("lexical").join(&name), &bytes)?;
        tx.execute(
            "INSERT INTO kb_segments (name, docs) VALUES (?1, ?2)",
            params![name, seg.n_docs()],
        )
        .map_err(|e| unavailable("record a lexical segment", e))?;
        delta.segment = Some((name, seg));
    }
    let segment_write = t.elapsed();
    let t = Instant::now();
    {
        let mut dead = tx
            .prepare_cached("INSERT OR IGNORE INTO kb_dead (chunk) VALUES (?1)")
            .map_err(|e| unavailable("record deleted chunks", e))?;
        for chunk in &delta.chunks_dead {
            dead.execute([chunk]).map_err(|e| unavailable("record deleted chunks", e))?;
        }
    }
    store::set_meta(&tx, "root", &root.to_string_lossy())?;
    let generation = store::bump_generation(&tx)?;
    tx.commit().map_err(|e| unavailable("commit the index", e))?;
    store::set_cache_kib(&repo.conn, store::QUERY_CACHE_KIB)?;
    let committed = t.elapsed();
    let t = Instant::now();
    repo.apply(delta);
    repo.generation = generation;
    maintain(repo)?;
    if report.files_parsed >= CHECKPOINT_AFTER_FILES {
        // Fold the write-ahead log into the database so the index's size on disk is its real size.
        let _ = repo.conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);");
    }

    report.totals = totals(repo)?;
    let finished = t.elapsed();
    report.elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    tracing::debug!(
        files = report.files_seen,
        parsed = report.files_parsed,
        chunks = report.chunks_added,
        walk_ms = walked.as_millis(),
        parse_phase_ms = (parsed_at - walked).as_millis(),
        read_ms = workers.read.as_millis(),
        hash_ms = workers.hash.as_millis(),
        decode_ms = workers.decode.as_millis(),
        tree_sitter_ms = workers.analysis.parse.as_millis(),
        outline_ms = workers.analysis.outline.as_millis(),
        refs_ms = workers.analysis.refs.as_millis(),
        free_tree_ms = workers.analysis.free.as_millis(),
        terms_ms = workers.terms.as_millis(),
        workers_blocked_ms = workers.blocked.as_millis(),
        write_ms = writing.as_millis(),
        segment_add_ms = segment_add.as_millis(),
        segment_write_ms = segment_write.as_millis(),
        commit_ms = committed.as_millis(),
        finish_ms = finished.as_millis(),
        ms = report.elapsed_ms,
        "index run"
    );
    Ok(report)
}

/// Drops one file; `false` when it was not indexed.
pub(crate) fn remove_file(repo: &mut RepoIndex, path: &str) -> Result<bool, KnowledgeError> {
    if !repo.state.files.contains_key(path) {
        return Ok(false);
    }
    let mut delta = Delta::default();
    let mut report = empty_report();
    let tx = repo.conn.transaction().map_err(|e| unavailable("start a transaction", e))?;
    let mut writer = Writer::new(&tx, &repo.state, &mut delta, &mut report);
    writer.remove(path)?;
    writer.drop_orphans()?;
    drop(writer);
    {
        let mut dead = tx
            .prepare_cached("INSERT OR IGNORE INTO kb_dead (chunk) VALUES (?1)")
            .map_err(|e| unavailable("record deleted chunks", e))?;
        for chunk in &delta.chunks_dead {
            dead.execute([chunk]).map_err(|e| unavailable("record deleted chunks", e))?;
        }
    }
    let generation = store::bump_generation(&tx)?;
    tx.commit().map_err(|e| unavailable("commit the removal", e))?;
    repo.apply(delta);
    repo.generation = generation;
    Ok(true)
}

fn empty_report() -> IndexReport {
    IndexReport {
        files_seen: 0,
        files_indexed: 0,
        files_parsed: 0,
        files_unchanged: 0,
        files_removed: 0,
        lines: 0,
        bytes: 0,
        chunks_added: 0,
        symbols_added: 0,
        totals: IndexTotals::default(),
        skipped: Vec::new(),
        lexical_only: Vec::new(),
        vectors: VectorStatus::NoEmbedder,
        elapsed_ms: 0,
    }
}

pub(crate) fn check_relative(path: &str) -> Result<(), KnowledgeError> {
    let bad = |why: &str| KnowledgeError::BadPath { path: path.to_owned(), why: why.to_owned() };
    if path.is_empty() {
        return Err(bad("the path is empty"));
    }
    if path.starts_with('/') || path.contains('\\') || Path::new(path).is_absolute() {
        return Err(bad("give it relative to the repository root, with `/` separators"));
    }
    if path.split('/').any(|c| c == ".." || c == "." || c.is_empty()) {
        return Err(bad("it must not contain `..`, `.` or empty components"));
    }
    Ok(())
}

/// Where the workers' time went, summed over workers (so it can exceed the wall time).
#[derive(Debug, Default, Clone, Copy)]
struct WorkerTimes {
    read: Duration,
    hash: Duration,
    decode: Duration,
    analysis: PhaseTimes,
    terms: Duration,
    /// Waiting for the writer to take an outcome (the channel was full).
    blocked: Duration,
}

impl WorkerTimes {
    fn add(&mut self, other: &WorkerTimes) {
        self.read += other.read;
        self.hash += other.hash;
        self.decode += other.decode;
        self.analysis.parse += other.analysis.parse;
        self.analysis.outline += other.analysis.outline;
        self.analysis.refs += other.analysis.refs;
        self.analysis.free += other.analysis.free;
        self.terms += other.terms;
        self.blocked += other.blocked;
    }
}

/// Reads, hashes and parses `work` on every core, handing each outcome to `sink` on this thread.
fn parse_all(
    work: &[Found],
    known: &HashMap<String, i64>,
    limits: &IndexLimits,
    mut sink: impl FnMut(Outcome, u64) -> Result<(), KnowledgeError>,
) -> Result<WorkerTimes, KnowledgeError> {
    let next = AtomicUsize::new(0);
    let threads = std::thread::available_parallelism()
        .map_or(2, std::num::NonZero::get)
        .min(work.len().max(1));
    let (tx, rx) = mpsc::sync_channel::<Outcome>(64);
    std::thread::scope(|scope| {
        let mut workers = Vec::with_capacity(threads);
        for _ in 0..threads {
            let tx = tx.clone();
            let next = &next;
            workers.push(scope.spawn(move || {
                let mut parsers = Parsers::new();
                let mut times = WorkerTimes::default();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(found) = work.get(i) else { break };
                    let outcome = process(found.clone(), known, limits, &mut parsers, &mut times);
                    let t = Instant::now();
                    if tx.send(outcome).is_err() {
                        break;
                    }
                    times.blocked += t.elapsed();
                }
                times.analysis = parsers.times;
                times
            }));
        }
        drop(tx);
        let mut done = 0;
        for outcome in rx.iter() {
            done += 1;
            // On an error the receiver is dropped when this returns, so the workers stop at their next send.
            sink(outcome, done)?;
        }
        let mut total = WorkerTimes::default();
        for worker in workers {
            if let Ok(times) = worker.join() {
                total.add(&times);
            }
        }
        Ok(total)
    })
}

fn process(
    found: Found,
    known: &HashMap<String, i64>,
    limits: &IndexLimits,
    parsers: &mut Parsers,
    times: &mut WorkerTimes,
) -> Outcome {
    if found.size > limits.max_file_bytes {
        let reason = SkipReason::TooLarge { bytes: found.size, limit: limits.max_file_bytes };
        return Outcome::Skipped(found, reason);
    }
    let t = Instant::now();
    let bytes = match std::fs::read(&found.abs) {
        Ok(bytes) => bytes,
        Err(e) => return Outcome::Skipped(found, SkipReason::Unreadable { error: e.to_string() }),
    };
    let read = Instant::now();
    times.read += read - t;
    if let Some(reason) = walk::skip_reason(&bytes, limits) {
        return Outcome::Skipped(found, reason);
    }
    let oid = crate::blob::blob_id(&bytes);
    let hashed = Instant::now();
    times.hash += hashed - read;
    if known.contains_key(&oid) {
        return Outcome::Known(found, oid);
    }
    let (text, valid) = match String::from_utf8(bytes) {
        Ok(text) => (text, true),
        Err(e) => (String::from_utf8_lossy(e.as_bytes()).into_owned(), false),
    };
    times.decode += hashed.elapsed();
    let language = crate::language::detect(&found.path);
    let analysis = parsers.analyze(&found.path, language, &text, valid);
    let t = Instant::now();
    let lines = Lines::new(&text);
    let chunks = analysis
        .spans
        .into_iter()
        .map(|span| {
            let (start, end) = lines.byte_range(span.start_line, span.end_line);
            let mut boosted: Vec<&str> = Vec::new();
            if let Some(symbol) = &span.symbol {
                boosted.push(symbol);
            }
            if let Some(context) = &span.context {
                boosted.push(context);
            }
            let terms = DocTerms::of(text.get(start..end).unwrap_or(""), &boosted, SYMBOL_BOOST);
            (span, start, end, terms)
        })
        .collect();
    let parsed = Parsed {
        oid,
        language,
        lines: lines.count(),
        note: analysis.lexical,
        chunks,
        defs: analysis.defs,
        refs: crate::refs::encode(&analysis.refs),
        text,
    };
    times.terms += t.elapsed();
    Outcome::New(found, Box::new(parsed))
}

/// Writes outcomes into the run's transaction and collects the state delta.
struct Writer<'a> {
    tx: &'a Transaction<'a>,
    files: &'a HashMap<String, FileRow>,
    oids: &'a HashMap<String, i64>,
    new_oids: HashMap<String, i64>,
    next_chunk: u32,
    builder: SegmentBuilder,
    /// Time spent adding documents to the lexical segment (the rest of writing is SQLite).
    segment_time: Duration,
    orphans: HashSet<i64>,
    delta: &'a mut Delta,
    report: &'a mut IndexReport,
}

impl<'a> Writer<'a> {
    /// A writer of one index update inside `tx`, starting from the index's current `state`.
    fn new(
        tx: &'a Transaction<'a>,
        state: &'a RepoState,
        delta: &'a mut Delta,
        report: &'a mut IndexReport,
    ) -> Self {
        Writer {
            tx,
            files: &state.files,
            oids: &state.oids,
            new_oids: HashMap::new(),
            next_chunk: state.next_chunk,
            builder: SegmentBuilder::default(),
            segment_time: Duration::ZERO,
            orphans: HashSet::new(),
            delta,
            report,
        }
    }

    fn write(&mut self, outcome: Outcome) -> Result<(), KnowledgeError> {
        match outcome {
            Outcome::Skipped(found, reason) => {
                let json = serde_json::to_string(&reason).unwrap_or_default();
                self.set_file(&found, None, Some(&json))?;
                self.report.skipped.push(FileNote { path: found.path, reason });
            }
            Outcome::Known(found, oid) => {
                let blob = self.oids.get(&oid).or_else(|| self.new_oids.get(&oid)).copied();
                self.count(&found);
                self.set_file(&found, blob, None)?;
            }
            Outcome::New(found, parsed) => {
                self.count(&found);
                if let Some(&blob) = self.new_oids.get(&parsed.oid) {
                    // The same content twice in one run: parsed twice, stored once.
                    self.set_file(&found, Some(blob), None)?;
                    return Ok(());
                }
                let blob = self.insert_blob(&found, *parsed)?;
                self.set_file(&found, Some(blob), None)?;
            }
        }
        Ok(())
    }

    fn count(&mut self, found: &Found) {
        self.report.files_indexed += 1;
        self.report.bytes += found.size;
    }

    fn insert_blob(&mut self, found: &Found, parsed: Parsed) -> Result<i64, KnowledgeError> {
        let q = |e| unavailable("store a parsed file", e);
        let note = parsed.note.as_ref().map(|n| serde_json::to_string(n).unwrap_or_default());
        self.tx
            .prepare_cached(
                "INSERT INTO kb_blobs (oid, language, text, lines, note, refs) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )
            .and_then(|mut s| {
                s.execute(params![
                    parsed.oid,
                    crate::language::code(parsed.language),
                    parsed.text.as_bytes(),
                    parsed.lines,
                    note,
                    parsed.refs
                ])
            })
            .map_err(q)?;
        let blob = self.tx.last_insert_rowid();
        {
            let mut insert = self
                .tx
                .prepare_cached(
                    "INSERT INTO kb_chunks (id, blob, ord, kind, symbol, start_line, end_line, start_byte, end_byte, context)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                )
                .map_err(q)?;
            for (ord, (span, start, end, terms)) in parsed.chunks.iter().enumerate() {
                let id = self.next_chunk;
                self.next_chunk += 1;
                insert
                    .execute(params![
                        id,
                        blob,
                        ord,
                        store::chunk_kind_code(span.kind),
                        span.symbol,
                        span.start_line,
                        span.end_line,
                        start,
                        end,
                        span.context
                    ])
                    .map_err(q)?;
                let t = Instant::now();
                self.builder.add(id, terms);
                self.segment_time += t.elapsed();
                self.delta.chunks_added.push((id, blob));
            }
            let mut insert = self
                .tx
                .prepare_cached(
                    "INSERT INTO kb_symbols (blob, name, kind, container, start_line, end_line, signature)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                )
                .map_err(q)?;
            for d in &parsed.defs {
                insert
                    .execute(params![
                        blob,
                        d.name,
                        store::symbol_kind_code(d.kind),
                        d.container,
                        d.start_line,
                        d.end_line,
                        d.signature
                    ])
                    .map_err(q)?;
            }
        }
        self.report.files_parsed += 1;
        self.report.lines += u64::from(parsed.lines);
        self.report.chunks_added += parsed.chunks.len() as u64;
        self.report.symbols_added += parsed.defs.len() as u64;
        if let Some(reason) = parsed.note {
            self.report.lexical_only.push(FileNote { path: found.path.clone(), reason });
        }
        self.new_oids.insert(parsed.oid.clone(), blob);
        self.delta.blobs_added.push((blob, parsed.oid, parsed.language));
        Ok(blob)
    }

    fn set_file(
        &mut self,
        found: &Found,
        blob: Option<i64>,
        skipped: Option<&str>,
    ) -> Result<(), KnowledgeError> {
        if let Some(old) = self.files.get(&found.path).and_then(|r| r.blob) {
            if Some(old) != blob {
                self.orphans.insert(old);
            }
        }
        let size = i64::try_from(found.size).unwrap_or(i64::MAX);
        self.tx
            .prepare_cached(
                "INSERT INTO kb_files (path, blob, size, mtime_ns, skipped) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT(path) DO UPDATE SET blob = excluded.blob, size = excluded.size,
                     mtime_ns = excluded.mtime_ns, skipped = excluded.skipped",
            )
            .and_then(|mut s| s.execute(params![found.path, blob, size, found.mtime_ns, skipped]))
            .map_err(|e| unavailable("record a file", e))?;
        self.delta.files_set.push((
            found.path.clone(),
            FileRow { blob, size: found.size, mtime_ns: found.mtime_ns },
        ));
        Ok(())
    }

    fn remove(&mut self, path: &str) -> Result<(), KnowledgeError> {
        if let Some(old) = self.files.get(path).and_then(|r| r.blob) {
            self.orphans.insert(old);
        }
        self.tx
            .execute("DELETE FROM kb_files WHERE path = ?1", [path])
            .map_err(|e| unavailable("remove a file", e))?;
        self.delta.files_removed.push(path.to_owned());
        self.report.files_removed += 1;
        Ok(())
    }

    /// Deletes blobs no file holds any more, with their chunks, symbols and vectors.
    fn drop_orphans(&mut self) -> Result<(), KnowledgeError> {
        let q = |e| unavailable("delete unused blobs", e);
        for &blob in &self.orphans {
            let used: bool = self
                .tx
                .prepare_cached("SELECT EXISTS (SELECT 1 FROM kb_files WHERE blob = ?1)")
                .and_then(|mut s| s.query_row([blob], |r| r.get(0)))
                .map_err(q)?;
            if used {
                continue;
            }
            let chunks: Vec<u32> = self
                .tx
                .prepare_cached("SELECT id FROM kb_chunks WHERE blob = ?1")
                .and_then(|mut s| s.query_map([blob], |r| r.get(0))?.collect())
                .map_err(q)?;
            let oid: String = self
                .tx
                .query_row("SELECT oid FROM kb_blobs WHERE id = ?1", [blob], |r| r.get(0))
                .map_err(q)?;
            for sql in [
                "DELETE FROM kb_vectors WHERE chunk IN (SELECT id FROM kb_chunks WHERE blob = ?1)",
                "DELETE FROM kb_chunks WHERE blob = ?1",
                "DELETE FROM kb_symbols WHERE blob = ?1",
                "DELETE FROM kb_blobs WHERE id = ?1",
            ] {
                self.tx.prepare_cached(sql).and_then(|mut s| s.execute([blob])).map_err(q)?;
            }
            self.delta.chunks_dead.extend(chunks);
            self.delta.blobs_removed.push((blob, oid));
        }
        Ok(())
    }
}

/// Empties the index (memories stay) for a full rebuild.
fn clear(repo: &mut RepoIndex) -> Result<(), KnowledgeError> {
    repo.conn
        .execute_batch(
            "BEGIN; DELETE FROM kb_files; DELETE FROM kb_chunks; DELETE FROM kb_symbols; DELETE FROM kb_blobs;
             DELETE FROM kb_segments; DELETE FROM kb_dead; DELETE FROM kb_vectors;
             INSERT INTO kb_meta (key, value) VALUES ('generation', '0')
                 ON CONFLICT(key) DO UPDATE SET value = CAST(value AS INTEGER) + 1; COMMIT;",
        )
        .map_err(|e| unavailable("clear the index", e))?;
    for (name, _) in &repo.state.lexical.segments {
        let _ = std::fs::remove_file(repo.segment_path(name));
    }
    let next = repo.state.next_chunk;
    // Every vector of the old index goes; the store is told after the run (see `EmbeddedKnowledge`).
    let mut stale = std::mem::take(&mut repo.state.stale_vectors);
    stale.extend(repo.state.embedded.iter().copied());
    repo.state =
        crate::repo::RepoState { next_chunk: next, stale_vectors: stale, ..Default::default() };
    repo.generation = store::generation(&repo.conn)?;
    Ok(())
}

fn next_segment_name(tx: &Transaction<'_>) -> Result<String, KnowledgeError> {
    let n: u64 = store::meta(tx, "next_segment")?.and_then(|v| v.parse().ok()).unwrap_or(1);
    store::set_meta(tx, "next_segment", &(n + 1).to_string())?;
    Ok(format!("seg-{n:08}.bin"))
}

fn write_segment(path: &Path, bytes: &[u8]) -> Result<(), KnowledgeError> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes)
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| KnowledgeError::Unavailable(format!("cannot write {}: {e}", path.display())))
}

/// Merges segments when they pile up, and rewrites the index when many chunks are dead.
fn maintain(repo: &mut RepoIndex) -> Result<(), KnowledgeError> {
    let lexical = &repo.state.lexical;
    let total = lexical.total_docs();
    let full = lexical.dead.len() > 1000 && lexical.dead.len() * 4 > total;
    if !full && lexical.segments.len() <= MAX_SEGMENTS {
        return Ok(());
    }
    // Keep the largest segment unless rewriting everything; merge the rest.
    let keep = if full {
        None
    } else {
        lexical.segments.iter().enumerate().max_by_key(|(_, (_, s))| s.n_docs()).map(|(i, _)| i)
    };
    let mut merged_ids: Vec<u32> = Vec::new();
    let mut retired: Vec<String> = Vec::new();
    for (i, (name, seg)) in lexical.segments.iter().enumerate() {
        if Some(i) == keep {
            continue;
        }
        retired.push(name.clone());
        for doc in 0..seg.n_docs() {
            let chunk = seg.doc(doc).0;
            if !lexical.dead.contains(&chunk) {
                merged_ids.push(chunk);
            }
        }
    }
    merged_ids.sort_unstable();
    let mut builder = SegmentBuilder::default();
    {
        let q = |e| unavailable("merge lexical segments", e);
        let mut stmt = repo
            .conn
            .prepare_cached(
                "SELECT c.symbol, c.context, substr(b.text, c.start_byte + 1, c.end_byte - c.start_byte)
                 FROM kb_chunks c JOIN kb_blobs b ON b.id = c.blob WHERE c.id = ?1",
            )
            .map_err(q)?;
        for &id in &merged_ids {
            let (symbol, context, text): (Option<String>, Option<String>, Vec<u8>) =
                stmt.query_row([id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?))).map_err(q)?;
            let text = String::from_utf8_lossy(&text);
            let boosted: Vec<&str> =
                symbol.iter().chain(context.iter()).map(String::as_str).collect();
            builder.add(id, &DocTerms::of(&text, &boosted, SYMBOL_BOOST));
        }
    }
    let tx = repo.conn.transaction().map_err(|e| unavailable("merge lexical segments", e))?;
    let mut new_segment = None;
    if !builder.is_empty() {
        let name = next_segment_name(&tx)?;
        let bytes = builder.finish();
        let seg = Segment::from_bytes(bytes.clone()).map_err(KnowledgeError::Corrupt)?;
        write_segment(&repo.dir.join("lexical").join(&name), &bytes)?;
        tx.execute(
            "INSERT INTO kb_segments (name, docs) VALUES (?1, ?2)",
            params![name, seg.n_docs()],
        )
        .map_err(|e| unavailable("record a lexical segment", e))?;
        new_segment = Some((name, seg));
    }
    for name in &retired {
        tx.execute("DELETE FROM kb_segments WHERE name = ?1", [name])
            .map_err(|e| unavailable("retire a lexical segment", e))?;
    }
    if full {
        tx.execute("DELETE FROM kb_dead", [])
            .map_err(|e| unavailable("clear deleted chunks", e))?;
    }
    let generation = store::bump_generation(&tx)?;
    tx.commit().map_err(|e| unavailable("commit a segment merge", e))?;
    repo.generation = generation;
    let lexical = &mut repo.state.lexical;
    lexical.segments.retain(|(name, _)| !retired.contains(name));
    if full {
        lexical.dead.clear();
    }
    lexical.segments.extend(new_segment);
    for name in retired {
        let _ = std::fs::remove_file(repo.dir.join("lexical").join(name));
    }
    tracing::debug!(segments = repo.state.lexical.segments.len(), full, "lexical segments merged");
    Ok(())
}

pub(crate) fn totals(repo: &RepoIndex) -> Result<IndexTotals, KnowledgeError> {
    let q = |e| unavailable("count the index", e);
    let count = |sql: &str| -> Result<u64, KnowledgeError> {
        repo.conn.query_row(sql, [], |r| r.get::<_, i64>(0)).map(i64::unsigned_abs).map_err(q)
    };
    Ok(IndexTotals {
        files: count("SELECT COUNT(*) FROM kb_files WHERE blob IS NOT NULL")?,
        chunks: count("SELECT COUNT(*) FROM kb_chunks")?,
        symbols: count("SELECT COUNT(*) FROM kb_symbols")?,
    })
}
