//! The SQLite ledger and cache on real files in temporary directories, checked against the MUST
//! sentences of their ports' `# Errors` docs.

mod cache;
mod ledger;

use std::path::PathBuf;

/// A fresh file path in a directory removed when the guard drops.
fn db_file() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cadre.db");
    (dir, path)
}
