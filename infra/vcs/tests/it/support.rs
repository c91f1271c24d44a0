//! Test repositories: made and inspected with the `git` CLI, isolated from the host's git config.

use cadre_domain::ids::CommitId;
use cadre_vcs::GitWorkspace;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use tempfile::TempDir;

/// Runs git in `dir` and returns its stdout; panics with git's message on failure.
pub(crate) fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("LC_ALL", "C")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_OPTIONAL_LOCKS", "0")
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?} in {} failed: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A fresh repository in its own temp dir.
pub(crate) struct Repo {
    dir: TempDir,
}

impl Repo {
    /// `git init` with an identity and no commits.
    pub(crate) fn empty() -> Repo {
        let dir = tempfile::tempdir().unwrap();
        git(dir.path(), &["init", "-q", "-b", "main"]);
        git(dir.path(), &["config", "user.name", "Test"]);
        git(dir.path(), &["config", "user.email", "test@example.com"]);
        Repo { dir }
    }

    /// A repository whose first commit holds `files`.
    pub(crate) fn with(files: &[(&str, &str)]) -> (Repo, CommitId) {
        let repo = Repo::empty();
        for (path, content) in files {
            repo.write(path, content);
        }
        let head = repo.commit("initial");
        (repo, head)
    }

    pub(crate) fn path(&self) -> &Path {
        self.dir.path()
    }

    pub(crate) fn write(&self, rel: &str, content: &str) {
        let p = self.path().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
    }

    pub(crate) fn read(&self, rel: &str) -> Option<String> {
        std::fs::read_to_string(self.path().join(rel)).ok()
    }

    /// Commits everything and returns the new HEAD.
    pub(crate) fn commit(&self, message: &str) -> CommitId {
        git(self.path(), &["add", "-A"]);
        git(self.path(), &["commit", "-q", "-m", message]);
        CommitId::parse(&git(self.path(), &["rev-parse", "HEAD"])).unwrap()
    }

    pub(crate) fn status(&self) -> String {
        git(self.path(), &["status", "--porcelain=v1"])
    }
}

/// A workspace whose worktrees root is a fresh temp dir (kept alive by the returned guard).
pub(crate) fn workspace() -> (TempDir, GitWorkspace) {
    let root = tempfile::tempdir().unwrap();
    let ws = GitWorkspace::new(root.path().join("worktrees"));
    (root, ws)
}

/// Every file under `dir` (recursively, `.git` included) with its bytes; symlinks as their target.
pub(crate) fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let entry = entry.unwrap();
            let path = entry.path();
            let kind = entry.file_type().unwrap();
            let rel = path.strip_prefix(dir).unwrap().to_path_buf();
            if kind.is_dir() {
                out.insert(rel, b"<dir>".to_vec());
                stack.push(path);
            } else if kind.is_symlink() {
                out.insert(
                    rel,
                    std::fs::read_link(&path).unwrap().into_os_string().into_encoded_bytes(),
                );
            } else {
                out.insert(rel, std::fs::read(&path).unwrap());
            }
        }
    }
    out
}
