//! Real test suites run inside the sandbox: a Python unittest package and a Rust crate built
//! offline with the host's read-only cargo and rustup homes.

use crate::container_support::{snapshot, TestSandbox};
use crate::support::spec;
use cadre_sandbox::Limits;
use std::path::{Path, PathBuf};
use std::time::Duration;

fn write(root: &Path, files: &[(&str, &str)]) {
    for (path, text) in files {
        let path = root.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
}

#[tokio::test]
async fn a_python_unittest_suite_runs_with_its_failures() {
    let sb = TestSandbox::new();
    let work = tempfile::tempdir().unwrap();
    write(
        work.path(),
        &[
            ("calc/__init__.py", "def add(a, b):\n    return a + b\n"),
            (
                "tests/test_calc.py",
                "import unittest\nfrom calc import add\n\n\
                 class T(unittest.TestCase):\n\
                 \x20   def test_add(self):\n        self.assertEqual(add(1, 2), 3)\n\
                 \x20   def test_wrong(self):\n        self.assertEqual(add(2, 2), 5)\n\
                 \x20   @unittest.skip('later')\n    def test_skip(self):\n        pass\n",
            ),
            ("tests/__init__.py", ""),
        ],
    );
    let before = snapshot(work.path());
    let out = sb.run(&spec(work.path(), "python3 -m unittest -v 2>&1")).await;
    assert_eq!(out.exit_code, Some(1), "{out:?}");
    for line in [
        "test_add (tests.test_calc.T.test_add) ... ok",
        "test_skip (tests.test_calc.T.test_skip) ... skipped 'later'",
        "test_wrong (tests.test_calc.T.test_wrong) ... FAIL",
        "AssertionError: 4 != 5",
        "Ran 3 tests",
        "FAILED (failures=1, skipped=1)",
    ] {
        assert!(out.output.contains(line), "missing {line:?} in:\n{}", out.output);
    }
    // Python wrote its bytecode caches into the copy, not the worktree.
    assert_eq!(snapshot(work.path()), before);
}

/// The host's home, where rustup and cargo live (read-only inside).
fn home() -> PathBuf {
    PathBuf::from(
        std::env::var_os("HOME").expect("HOME must name the home holding .cargo and .rustup"),
    )
}

#[tokio::test]
async fn cargo_test_of_a_small_crate_runs_offline() {
    let home = home();
    assert!(
        home.join(".cargo").is_dir() && home.join(".rustup").is_dir(),
        "no cargo/rustup under {}",
        home.display()
    );
    let sb = TestSandbox::with(|cfg| {
        // rustc and the linker need more than the escape tests' limits.
        cfg.limits = Limits { memory_bytes: 1 << 30, pids: 256, cpu_millicores: 2000 };
        let toolchains = cfg.clone().with_home_toolchains(&home);
        *cfg = toolchains;
    });
    let work = tempfile::tempdir().unwrap();
    write(
        work.path(),
        &[
            ("Cargo.toml", "[package]\nname = \"tiny\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[lib]\ndoctest = false\n"),
            (
                "src/lib.rs",
                "pub fn add(a: u32, b: u32) -> u32 { a + b }\n\n\
                 #[cfg(test)]\nmod tests {\n\
                 \x20   #[test] fn adds() { assert_eq!(super::add(1, 2), 3); }\n\
                 \x20   #[test] fn fails() { assert_eq!(super::add(2, 2), 5, \"two and two\"); }\n}\n",
            ),
        ],
    );
    let mut s = spec(work.path(), "cargo test --offline 2>&1");
    s.timeout = Duration::from_secs(120);
    let out = sb.run(&s).await;
    assert_eq!(out.exit_code, Some(101), "{}", out.output);
    for line in [
        "test tests::adds ... ok",
        "test tests::fails ... FAILED",
        "two and two",
        "test result: FAILED. 1 passed; 1 failed",
    ] {
        assert!(out.output.contains(line), "missing {line:?} in:\n{}", out.output);
    }
    assert!(!work.path().join("target").exists(), "the build wrote into the worktree");
}
