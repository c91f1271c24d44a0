//! Turning a model-supplied, repository-relative path into a file inside a worktree, or refusing it.
//!
//! The path text is checked first (relative, no `..`, not into `.git`); then every part of it that
//! already exists on disk is checked for symlinks, because a checked-in `docs -> /etc` link would
//! otherwise carry a harmless-looking `docs/passwd` out of the worktree. Nothing here follows a
//! symlink whose target lies outside the worktree or does not exist (a dangling link would be
//! created wherever it points). The checks and the later write are not atomic: nothing else writes
//! the worktree while a step edits it, so that window is accepted.

use cadre_domain::ports::workspace::WorkspaceError;
use std::io;
use std::path::{Path, PathBuf};

fn bad(path: &str, why: impl Into<String>) -> WorkspaceError {
    WorkspaceError::BadPath { path: path.to_owned(), why: why.into() }
}

/// The worktree's own directory with symlinks resolved, the yardstick for "inside".
pub(crate) fn canonical_root(root: &Path) -> Result<PathBuf, WorkspaceError> {
    std::fs::canonicalize(root).map_err(|e| {
        WorkspaceError::Git(format!(
            "worktree {} cannot be read: {e}; check it out again with `checkout`",
            root.display()
        ))
    })
}

/// Checks only the text of `rel` and returns its components.
fn components(rel: &str) -> Result<Vec<&str>, WorkspaceError> {
    if rel.is_empty() {
        return Err(bad(rel, "it is empty; name a file relative to the repository root"));
    }
    if rel.contains('\0') {
        return Err(bad(rel, "it contains a NUL byte"));
    }
    if rel.starts_with('/') {
        return Err(bad(rel, "it is absolute; use a path relative to the repository root"));
    }
    let parts: Vec<&str> = rel.split('/').collect();
    for part in &parts {
        match *part {
            ".." => return Err(bad(rel, "it has a `..` component that could leave the worktree")),
            "" | "." => {
                return Err(bad(rel, "it has an empty or `.` component; write it as a/b/c"));
            }
            p if p.eq_ignore_ascii_case(".git") => {
                return Err(bad(rel, "it points into `.git`, which only git may write"));
            }
            _ => {}
        }
    }
    Ok(parts)
}

/// Resolves `rel` under the worktree at `root` (whose canonical form is `canonical`), refusing any
/// path that escapes it, including through a symlink.
pub(crate) fn resolve(root: &Path, canonical: &Path, rel: &str) -> Result<PathBuf, WorkspaceError> {
    let parts = components(rel)?;
    let git_dir = canonical.join(".git");
    let mut current = root.to_path_buf();
    for part in parts {
        current.push(part);
        match std::fs::symlink_metadata(&current) {
            // The rest does not exist yet and will be made of plain directories.
            Err(e) if e.kind() == io::ErrorKind::NotFound => break,
            Err(e) => {
                return Err(WorkspaceError::Git(format!(
                    "cannot inspect {}: {e}",
                    current.display()
                )))
            }
            Ok(meta) if meta.file_type().is_symlink() => match std::fs::canonicalize(&current) {
                Ok(target) if target.starts_with(&git_dir) => {
                    return Err(bad(rel, "it goes through a symlink into `.git`"));
                }
                Ok(target) if target.starts_with(canonical) => {}
                Ok(target) => {
                    return Err(bad(
                        rel,
                        format!(
                            "it goes through a symlink pointing outside the worktree, to {}",
                            target.display()
                        ),
                    ));
                }
                Err(_) => {
                    return Err(bad(rel, "it goes through a symlink whose target does not exist"));
                }
            },
            Ok(_) => {}
        }
    }
    Ok(root.join(rel))
}

#[cfg(test)]
mod tests {
    use super::components;

    #[test]
    fn text_checks() {
        for ok in ["a", "src/lib.rs", ".gitignore", "a/.github/x", "..a/b.."] {
            assert!(components(ok).is_ok(), "{ok}");
        }
        for refused in [
            "",
            "/etc/passwd",
            "../x",
            "a/../../x",
            "a//b",
            "./a",
            "a/",
            ".git/config",
            "x/.GIT/y",
            "a\0b",
        ] {
            assert!(components(refused).is_err(), "{refused:?}");
        }
    }
}
