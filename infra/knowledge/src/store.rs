//! The SQLite side of an index: schema and the queries every other module shares.
//!
//! Tables (all prefixed `kb_`): `kb_meta` (root, embedding model, schema version), `kb_files` (path →
//! blob and stat, or why it was skipped), `kb_blobs` (one row per distinct content: git blob id, text,
//! language, encoded references), `kb_chunks` and `kb_symbols` (keyed by blob, so identical or renamed
//! files are never parsed twice), `kb_segments` and `kb_dead` (the lexical index's files and the chunks
//! deleted since they were written), `kb_vectors` and `kb_memory`.

use std::path::Path;

use cadre_domain::ports::knowledge::{ChunkKind, KnowledgeError, SymbolKind};
use rusqlite::{params, Connection, OptionalExtension};

const SCHEMA_VERSION: &str = "1";

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS kb_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS kb_blobs (
    id INTEGER PRIMARY KEY,
    oid TEXT NOT NULL UNIQUE,
    language INTEGER NOT NULL,
    text BLOB NOT NULL,
    lines INTEGER NOT NULL,
    note TEXT,
    refs BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS kb_files (
    path TEXT PRIMARY KEY,
    blob INTEGER,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    skipped TEXT
);
CREATE INDEX IF NOT EXISTS kb_files_blob ON kb_files(blob);
CREATE TABLE IF NOT EXISTS kb_chunks (
    id INTEGER PRIMARY KEY,
    blob INTEGER NOT NULL,
    ord INTEGER NOT NULL,
    kind INTEGER NOT NULL,
    symbol TEXT,
    start_line INTEGER NOT NULL,
    end_line INTEGER NOT NULL,
    start_byte INTEGER NOT NULL,
    end_byte INTEGER NOT NULL,
    context TEXT
);
CREATE INDEX IF NOT EXISTS kb_chunks_blob ON kb_chunks(blob);
CREATE TABLE IF NOT EXISTS kb_symbols (
    blob INTEGER NOT NULL,
    name TEXT NOT NULL,
    kind INTEGER NOT NULL,
    container TEXT,
    start_line INTEGER NOT NULL,
    end_line INTEGER NOT NULL,
    signature TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS kb_symbols_name ON kb_symbols(name);
CREATE INDEX IF NOT EXISTS kb_symbols_blob ON kb_symbols(blob);
CREATE TABLE IF NOT EXISTS kb_segments (name TEXT PRIMARY KEY, docs INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS kb_dead (chunk INTEGER PRIMARY KEY);
CREATE TABLE IF NOT EXISTS kb_vectors (chunk INTEGER PRIMARY KEY, vector BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS kb_memory (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    title TEXT NOT NULL,
    body TEXT NOT NULL,
    tags TEXT NOT NULL,
    task TEXT,
    verdict TEXT,
    at INTEGER NOT NULL
);
";

/// SQLite's page cache while searching: the chunk and symbol tables' hot pages stay in memory.
pub(crate) const QUERY_CACHE_KIB: u32 = 65536;
/// SQLite's page cache while an index run writes: small, so dirty pages spill to the write-ahead log
/// as the run goes (while the workers parse) instead of all at once when it commits, which ran alone at
/// the end of a full index and took a tenth of its time.
pub(crate) const WRITE_CACHE_KIB: u32 = 8192;

/// Sets the page cache size.
pub(crate) fn set_cache_kib(conn: &Connection, kib: u32) -> Result<(), KnowledgeError> {
    conn.execute_batch(&format!("PRAGMA cache_size = -{kib};"))
        .map_err(|e| unavailable("size the index database's cache", e))
}

/// Opens (creating) the index database of one repository.
pub(crate) fn open(path: &Path) -> Result<Connection, KnowledgeError> {
    let conn =
        Connection::open(path).map_err(|e| unavailable(&format!("open {}", path.display()), e))?;
    conn.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 5000;
         PRAGMA temp_store = MEMORY;",
    )
    .map_err(|e| unavailable("configure the index database", e))?;
    set_cache_kib(&conn, QUERY_CACHE_KIB)?;
    conn.execute_batch(SCHEMA).map_err(|e| unavailable("create the index tables", e))?;
    match meta(&conn, "schema")? {
        None => set_meta(&conn, "schema", SCHEMA_VERSION)?,
        Some(v) if v == SCHEMA_VERSION => {}
        Some(v) => {
            return Err(KnowledgeError::Corrupt(format!(
                "index schema {v}, this build reads {SCHEMA_VERSION}"
            )))
        }
    }
    Ok(conn)
}

pub(crate) fn meta(conn: &Connection, key: &str) -> Result<Option<String>, KnowledgeError> {
    conn.query_row("SELECT value FROM kb_meta WHERE key = ?1", [key], |r| r.get(0))
        .optional()
        .map_err(|e| unavailable("read kb_meta", e))
}

pub(crate) fn set_meta(conn: &Connection, key: &str, value: &str) -> Result<(), KnowledgeError> {
    conn.execute(
        "INSERT INTO kb_meta (key, value) VALUES (?1, ?2)
         ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        params![key, value],
    )
    .map(|_| ())
    .map_err(|e| unavailable("write kb_meta", e))
}

/// The index's generation: bumped by every committed change, so a process holding the index open
/// notices another process's run and reloads.
pub(crate) fn generation(conn: &Connection) -> Result<u64, KnowledgeError> {
    Ok(meta(conn, "generation")?.and_then(|v| v.parse().ok()).unwrap_or(0))
}

pub(crate) fn bump_generation(conn: &Connection) -> Result<u64, KnowledgeError> {
    let next = generation(conn)? + 1;
    set_meta(conn, "generation", &next.to_string())?;
    Ok(next)
}

/// Maps a SQLite error to the port's error, naming what was being done.
pub(crate) fn unavailable(what: &str, error: rusqlite::Error) -> KnowledgeError {
    KnowledgeError::Unavailable(format!("cannot {what}: {error}"))
}

pub(crate) fn chunk_kind_code(kind: ChunkKind) -> i64 {
    match kind {
        ChunkKind::Function => 1,
        ChunkKind::Method => 2,
        ChunkKind::Type => 3,
        ChunkKind::Container => 4,
        ChunkKind::Other => 5,
        ChunkKind::Lines => 6,
    }
}

pub(crate) fn chunk_kind(code: i64) -> ChunkKind {
    match code {
        1 => ChunkKind::Function,
        2 => ChunkKind::Method,
        3 => ChunkKind::Type,
        4 => ChunkKind::Container,
        5 => ChunkKind::Other,
        _ => ChunkKind::Lines,
    }
}

pub(crate) fn symbol_kind_code(kind: SymbolKind) -> i64 {
    match kind {
        SymbolKind::Function => 1,
        SymbolKind::Method => 2,
        SymbolKind::Struct => 3,
        SymbolKind::Enum => 4,
        SymbolKind::Trait => 5,
        SymbolKind::TypeAlias => 6,
        SymbolKind::Constant => 7,
        SymbolKind::Module => 8,
        SymbolKind::Macro => 9,
    }
}

pub(crate) fn symbol_kind(code: i64) -> SymbolKind {
    match code {
        1 => SymbolKind::Function,
        2 => SymbolKind::Method,
        3 => SymbolKind::Struct,
        4 => SymbolKind::Enum,
        5 => SymbolKind::Trait,
        6 => SymbolKind::TypeAlias,
        8 => SymbolKind::Module,
        9 => SymbolKind::Macro,
        _ => SymbolKind::Constant,
    }
}
