//! Materialising a task's repository for the agent, and preparing the scratch copy its check runs in.
//!
//! The agent gets a fresh one-commit repository holding the files of the base commit, not a clone:
//! a clone would carry the source's later history, and with it, for SWE-bench, the very commit that
//! fixed the issue. The commit's author, committer and dates are fixed, so the same files always give
//! the same commit id (and a replayed run sees the same prompts).
//!
//! Everything here is blocking (git and the file system); callers on an async runtime run it on a
//! blocking thread.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::error::EvalError;
use crate::suite::{file_name, EvalTask, RepoSource};

/// Fixed identity and date of a prepared repository's one commit.
const COMMIT_ENV: [(&str, &str); 6] = [
    ("GIT_AUTHOR_NAME", "cadre-eval"),
    ("GIT_AUTHOR_EMAIL", "eval@cadre.invalid"),
    ("GIT_AUTHOR_DATE", "2000-01-01T00:00:00Z"),
    ("GIT_COMMITTER_NAME", "cadre-eval"),
    ("GIT_COMMITTER_EMAIL", "eval@cadre.invalid"),
    ("GIT_COMMITTER_DATE", "2000-01-01T00:00:00Z"),
];

/// A repository ready for the agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prepared {
    /// Its directory.
    pub path: PathBuf,
    /// Its one commit.
    pub commit: String,
}

/// Builds the agent's repository for `task` in `dest` (replacing what is there). Repositories cloned
/// from a URL are kept under `cache` (a bare clone per URL) and reused by later tasks.
///
/// # Errors
/// [`EvalError::Git`] when a clone fails or the base commit is not in the source; [`EvalError::Io`].
pub fn prepare(task: &EvalTask, dest: &Path, cache: &Path) -> Result<Prepared, EvalError> {
    if dest.exists() {
        std::fs::remove_dir_all(dest).map_err(EvalError::io("remove", dest))?;
    }
    std::fs::create_dir_all(dest).map_err(EvalError::io("create the directory", dest))?;
    match &task.repo {
        RepoSource::Directory(src) if is_git_repository(src) => {
            export(src, task.base_commit.as_deref(), dest)?;
        }
        RepoSource::Directory(src) => {
            if let Some(commit) = &task.base_commit {
                return Err(EvalError::Git {
                    command: format!("checkout {commit}"),
                    detail: format!(
                        "{} is not a git repository, so it has no commits",
                        src.display()
                    ),
                });
            }
            copy_tree(src, dest)?;
        }
        RepoSource::Bundle(bundle) => {
            let scratch = dest.with_extension("source.git");
            if scratch.exists() {
                std::fs::remove_dir_all(&scratch).map_err(EvalError::io("remove", &scratch))?;
            }
            git(None, &["clone", "-q", "--bare", &path_arg(bundle), &path_arg(&scratch)])?;
            let exported = export(&scratch, task.base_commit.as_deref(), dest);
            let _ = std::fs::remove_dir_all(&scratch);
            exported?;
        }
        RepoSource::Clone(source) => {
            let local = Path::new(source);
            let src = if local.is_absolute() && local.exists() {
                local.to_path_buf()
            } else {
                cached_clone(source, cache)?
            };
            export(&src, task.base_commit.as_deref(), dest)?;
        }
    }
    let commit = commit_all(dest)?;
    Ok(Prepared { path: dest.to_path_buf(), commit })
}

/// A git repository at `dir` itself (a `.git` inside, or a bare repository), not merely inside one.
fn is_git_repository(dir: &Path) -> bool {
    dir.join(".git").exists() || (dir.join("HEAD").is_file() && dir.join("objects").is_dir())
}

/// A bare clone of `url` under `cache`, made once; concurrent callers race to a rename and the loser
/// uses the winner's.
fn cached_clone(url: &str, cache: &Path) -> Result<PathBuf, EvalError> {
    let target = cache.join(format!("{}.git", file_name(url)));
    if target.exists() {
        return Ok(target);
    }
    std::fs::create_dir_all(cache).map_err(EvalError::io("create the directory", cache))?;
    let partial = cache.join(format!(".{}.{}.partial", file_name(url), std::process::id()));
    if partial.exists() {
        std::fs::remove_dir_all(&partial).map_err(EvalError::io("remove", &partial))?;
    }
    tracing::info!(url, "cloning for the eval");
    git(None, &["clone", "-q", "--bare", url, &path_arg(&partial)])?;
    if std::fs::rename(&partial, &target).is_err() && target.exists() {
        let _ = std::fs::remove_dir_all(&partial);
    }
    Ok(target)
}

/// Writes the files of `commit` (default `HEAD`) of the repository `src` into `dest`.
fn export(src: &Path, commit: Option<&str>, dest: &Path) -> Result<(), EvalError> {
    let commit = commit.unwrap_or("HEAD");
    let verify = format!("{commit}^{{commit}}");
    git(Some(src), &["rev-parse", "-q", "--verify", &verify]).map_err(|_| EvalError::Git {
        command: format!("rev-parse {commit}"),
        detail: format!(
            "commit {commit} is not in {}; update the mirror (git fetch) or check base_commit",
            src.display()
        ),
    })?;
    let command = format!("archive {commit} | tar -x -C {}", dest.display());
    let spawn_failed =
        |e: std::io::Error| EvalError::Git { command: command.clone(), detail: e.to_string() };
    let mut archive = Command::new("git")
        .args(["-C", &path_arg(src), "archive", "--format=tar", commit])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(spawn_failed)?;
    let Some(tar_input) = archive.stdout.take() else {
        return Err(EvalError::Git { command, detail: "no output pipe".into() });
    };
    let tar = Command::new("tar")
        .args(["-x", "-C", &path_arg(dest)])
        .stdin(tar_input)
        .stderr(Stdio::piped())
        .output()
        .map_err(spawn_failed)?;
    let archived = archive.wait_with_output().map_err(spawn_failed)?;
    if !archived.status.success() || !tar.status.success() {
        let detail = format!(
            "{}{}",
            String::from_utf8_lossy(&archived.stderr).trim(),
            String::from_utf8_lossy(&tar.stderr).trim()
        );
        return Err(EvalError::Git { command, detail });
    }
    Ok(())
}

/// `git init` + one commit of everything in `dir`, with the fixed identity; returns the commit id.
fn commit_all(dir: &Path) -> Result<String, EvalError> {
    git(Some(dir), &["init", "-q", "-b", "main"])?;
    git(Some(dir), &["add", "-A"])?;
    git(
        Some(dir),
        &[
            "-c",
            "commit.gpgsign=false",
            "commit",
            "-q",
            "--no-verify",
            "--allow-empty",
            "-m",
            "eval base",
        ],
    )?;
    Ok(git(Some(dir), &["rev-parse", "HEAD"])?.trim().to_owned())
}

/// Copies the files under `src` over `dest` (directories merged, files replaced, symlinks recreated),
/// leaving out `.git`. Used for a plain-files repository and for a task's hidden files.
///
/// # Errors
/// [`EvalError::Io`] naming the file.
pub fn copy_tree(src: &Path, dest: &Path) -> Result<(), EvalError> {
    std::fs::create_dir_all(dest).map_err(EvalError::io("create the directory", dest))?;
    let entries = std::fs::read_dir(src).map_err(EvalError::io("read the directory", src))?;
    for entry in entries {
        let entry = entry.map_err(EvalError::io("read the directory", src))?;
        if entry.file_name() == ".git" {
            continue;
        }
        let from = entry.path();
        let to = dest.join(entry.file_name());
        let kind = entry.file_type().map_err(EvalError::io("read", &from))?;
        if kind.is_dir() {
            copy_tree(&from, &to)?;
        } else if kind.is_symlink() {
            let target =
                std::fs::read_link(&from).map_err(EvalError::io("read the link", &from))?;
            if to.symlink_metadata().is_ok() {
                std::fs::remove_file(&to).map_err(EvalError::io("replace", &to))?;
            }
            std::os::unix::fs::symlink(&target, &to)
                .map_err(EvalError::io("create the link", &to))?;
        } else {
            std::fs::copy(&from, &to).map_err(EvalError::io("copy to", &to))?;
        }
    }
    Ok(())
}

/// Applies a unified diff to the files of `dir` (a git checkout), all or nothing.
///
/// # Errors
/// [`EvalError::PatchDoesNotApply`] with git's reason, changing nothing.
pub fn apply_patch(dir: &Path, patch: &str) -> Result<(), EvalError> {
    let mut child = Command::new("git")
        .args(["-C", &path_arg(dir), "apply", "--whitespace=nowarn", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| EvalError::Git { command: "apply".into(), detail: e.to_string() })?;
    if let Some(mut stdin) = child.stdin.take() {
        // A write error means git exited early; its status and message say why.
        let _ = stdin.write_all(patch.as_bytes());
    }
    let out = child
        .wait_with_output()
        .map_err(|e| EvalError::Git { command: "apply".into(), detail: e.to_string() })?;
    if out.status.success() {
        Ok(())
    } else {
        Err(EvalError::PatchDoesNotApply {
            detail: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        })
    }
}

/// Runs git (in `dir` when given) and returns its stdout.
fn git(dir: Option<&Path>, args: &[&str]) -> Result<String, EvalError> {
    let mut command = Command::new("git");
    if let Some(dir) = dir {
        command.arg("-C").arg(dir);
    }
    let out = command
        .args(args)
        .envs(COMMIT_ENV)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| EvalError::Git { command: args.join(" "), detail: e.to_string() })?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(EvalError::Git {
            command: args.join(" "),
            detail: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        })
    }
}

fn path_arg(path: &Path) -> String {
    path.display().to_string()
}
