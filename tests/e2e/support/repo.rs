//! Fixture git repositories written from one string of `//- /path` sections (rust-analyzer style).

use std::path::{Path, PathBuf};
use std::process::Command;

/// A temporary git repository with one commit of the fixture's files.
pub(crate) struct Repo {
    dir: tempfile::TempDir,
}

impl Repo {
    /// Writes the fixture's files, then `git init` + commit.
    pub(crate) fn new(fixture: &str) -> Repo {
        let dir = tempfile::tempdir().unwrap();
        for (path, text) in parse_fixture(fixture) {
            let full = dir.path().join(&path);
            std::fs::create_dir_all(full.parent().unwrap()).unwrap();
            std::fs::write(full, text).unwrap();
        }
        let repo = Repo { dir };
        repo.git(&["init", "-q", "-b", "main"]);
        repo.git(&["add", "-A"]);
        repo.git(&["commit", "-q", "-m", "fixture"]);
        repo
    }

    pub(crate) fn path(&self) -> &Path {
        self.dir.path()
    }

    pub(crate) fn file(&self, path: &str) -> PathBuf {
        self.dir.path().join(path)
    }

    pub(crate) fn read(&self, path: &str) -> String {
        std::fs::read_to_string(self.file(path)).unwrap()
    }

    pub(crate) fn write(&self, path: &str, text: &str) {
        std::fs::write(self.file(path), text).unwrap();
    }

    /// Runs git in the repository and returns its stdout; panics when git fails.
    pub(crate) fn git(&self, args: &[&str]) -> String {
        let out = Command::new("git")
            .args([
                "-c",
                "user.name=Fixture",
                "-c",
                "user.email=fixture@example.invalid",
                "-c",
                "commit.gpgsign=false",
            ])
            .args(args)
            .current_dir(self.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "git {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs a shell command in the repository and returns whether it exited 0.
    pub(crate) fn sh(&self, command: &str) -> bool {
        Command::new("sh")
            .args(["-c", command])
            .current_dir(self.path())
            .output()
            .unwrap()
            .status
            .success()
    }
}

/// Splits `//- /path` sections into (path, text).
pub(crate) fn parse_fixture(fixture: &str) -> Vec<(String, String)> {
    let mut files: Vec<(String, String)> = Vec::new();
    for line in fixture.trim_start().lines() {
        if let Some(path) = line.strip_prefix("//- /") {
            files.push((path.trim().to_owned(), String::new()));
        } else if let Some((_, text)) = files.last_mut() {
            text.push_str(line);
            text.push('\n');
        }
    }
    files
}

/// A Python project whose `add` is wrong, with a unittest suite: `test_add` fails, `test_mul` passes.
pub(crate) const BROKEN_CALC: &str = r#"
//- /calc.py
def add(a, b):
    return a - b


def mul(a, b):
    return a * b
//- /test_calc.py
import unittest

from calc import add, mul


class CalcTest(unittest.TestCase):
    def test_add(self):
        self.assertEqual(add(2, 3), 5)

    def test_mul(self):
        self.assertEqual(mul(2, 3), 6)


if __name__ == "__main__":
    unittest.main()
"#;
