//! Which files of a directory are indexed: the walk (honouring `.gitignore`, `.ignore` and git's
//! excludes, also outside a git repository), and the rules that skip binaries, huge files and minified
//! files with a note.

use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use cadre_domain::ports::knowledge::SkipReason;

/// Limits on what is indexed.
#[derive(Debug, Clone, Copy)]
pub struct IndexLimits {
    /// Files larger than this are skipped (generated data, bundles, dumps).
    pub max_file_bytes: u64,
    /// Files of at least [`IndexLimits::minified_min_bytes`] whose lines average more than this many
    /// bytes are skipped as minified or generated.
    pub minified_avg_line_bytes: u64,
    /// Below this size no file is judged minified.
    pub minified_min_bytes: u64,
}

impl Default for IndexLimits {
    fn default() -> Self {
        IndexLimits {
            max_file_bytes: 1024 * 1024,
            // Generated code with long doc lines (aws-sdk clients: ~800 bytes per line on average)
            // is still code worth finding; minified bundles average thousands of bytes per line.
            minified_avg_line_bytes: 1000,
            minified_min_bytes: 4096,
        }
    }
}

/// A file found by the walk.
#[derive(Debug, Clone)]
pub(crate) struct Found {
    /// Repository-relative, `/`-separated.
    pub(crate) path: String,
    pub(crate) abs: PathBuf,
    pub(crate) size: u64,
    pub(crate) mtime_ns: i64,
}

/// Every non-ignored regular file under `root`, sorted by path. Unreadable entries are left out (and
/// logged): they cannot be indexed and must not stop the walk.
pub(crate) fn walk(root: &Path) -> Vec<Found> {
    let mut out = Vec::new();
    let walker = ignore::WalkBuilder::new(root).require_git(false).follow_links(false).build();
    for entry in walker {
        let entry = match entry {
            Ok(entry) => entry,
            Err(error) => {
                tracing::debug!(%error, "walk entry skipped");
                continue;
            }
        };
        if !entry.file_type().is_some_and(|t| t.is_file()) {
            continue;
        }
        let Ok(rel) = entry.path().strip_prefix(root) else { continue };
        let Some(path) = relative_string(rel) else { continue };
        let Ok(meta) = entry.metadata() else { continue };
        out.push(Found {
            path,
            abs: entry.path().to_path_buf(),
            size: meta.len(),
            mtime_ns: mtime_ns(&meta),
        });
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    out
}

/// `a/b/c.rs` from a relative path; `None` for non-UTF-8 names.
pub(crate) fn relative_string(rel: &Path) -> Option<String> {
    let mut parts = Vec::new();
    for c in rel.components() {
        parts.push(c.as_os_str().to_str()?);
    }
    Some(parts.join("/"))
}

/// The stat of one file, `None` when it is not a regular file.
pub(crate) fn stat(root: &Path, path: &str) -> Option<Found> {
    let abs = root.join(path);
    let meta = std::fs::symlink_metadata(&abs).ok()?;
    if !meta.is_file() {
        return None;
    }
    Some(Found { path: path.to_owned(), abs, size: meta.len(), mtime_ns: mtime_ns(&meta) })
}

fn mtime_ns(meta: &std::fs::Metadata) -> i64 {
    meta.modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

/// Why a file's bytes should not be indexed, if they should not.
pub(crate) fn skip_reason(bytes: &[u8], limits: &IndexLimits) -> Option<SkipReason> {
    let size = bytes.len() as u64;
    if size > limits.max_file_bytes {
        return Some(SkipReason::TooLarge { bytes: size, limit: limits.max_file_bytes });
    }
    // Git's heuristic: a NUL byte in the first 8000 bytes means binary.
    if bytes[..bytes.len().min(8000)].contains(&0) {
        return Some(SkipReason::Binary);
    }
    if size >= limits.minified_min_bytes {
        let lines = bytes.iter().filter(|&&b| b == b'\n').count() as u64 + 1;
        let avg = size / lines;
        if avg > limits.minified_avg_line_bytes {
            return Some(SkipReason::Minified { avg_line_bytes: avg });
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skips_binary_large_and_minified() {
        let limits = IndexLimits { max_file_bytes: 10_000, ..IndexLimits::default() };
        assert_eq!(skip_reason(b"fn main() {}\n", &limits), None);
        assert_eq!(skip_reason(b"\x89PNG\0\0", &limits), Some(SkipReason::Binary));
        assert_eq!(
            skip_reason(&vec![b'a'; 10_001], &limits),
            Some(SkipReason::TooLarge { bytes: 10_001, limit: 10_000 })
        );
        let minified = "var a=1;".repeat(800);
        assert!(matches!(
            skip_reason(minified.as_bytes(), &limits),
            Some(SkipReason::Minified { .. })
        ));
        let code = "let x = 1;\n".repeat(800);
        assert_eq!(skip_reason(code.as_bytes(), &limits), None);
        let long_doc_lines = format!("/// {}\nfn f() {{}}\n", "word ".repeat(160)).repeat(10);
        assert_eq!(skip_reason(long_doc_lines.as_bytes(), &limits), None, "generated code is kept");
    }
}
