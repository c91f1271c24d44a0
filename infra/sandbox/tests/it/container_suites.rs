//! Real test suites run inside the sandbox: a Python unittest package and a Rust crate built
//! offline with the host's read-only cargo and rustup homes.

use crate::container_support::{snapshot, TestSandbox};
use crate::support::spec;
use cadre_domain::report::TestCounts;
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

/// Fails, naming the path, when a toolchain path the suite needs is missing: never a skip.
fn require(path: &Path, what: &str) {
    assert!(path.exists(), "{} is missing: {what}", path.display());
}

/// The failures as `name @ file:line: message`, one per line, for exact assertions.
fn shown(parsed: &cadre_steps::test_output::Parsed) -> String {
    parsed
        .failures
        .iter()
        .map(|f| format!("{} @ {:?}:{:?}: {}\n", f.name, f.file, f.line, f.message))
        .collect()
}

/// Issue 5: a small Rust crate's `cargo test --offline` inside the container, with the host's
/// rustup toolchain and cargo home (registry included) bind-mounted read-only, the build dir
/// (`target/`) inside the workspace copy, and one failing test, parsed by the test step's parser.
#[tokio::test]
async fn cargo_test_of_a_small_crate_runs_offline() {
    let home = home();
    require(&home.join(".rustup/toolchains"), "the rustup toolchains (rustc, cargo)");
    require(&home.join(".cargo/bin/cargo"), "cargo's rustup proxy");
    require(&home.join(".cargo/registry"), "cargo's registry cache for --offline builds");
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
    assert!(!work.path().join("target").exists(), "the build wrote into the worktree");
    let parsed = cadre_steps::test_output::parse(&out.output, &[], &[]);
    assert_eq!(
        parsed.counts,
        Some(TestCounts { passed: 1, failed: 1, skipped: 0 }),
        "{}",
        out.output
    );
    assert_eq!(parsed.failing_tests, ["tests::fails"]);
    assert_eq!(
        shown(&parsed),
        "tests::fails @ Some(\"src/lib.rs\"):Some(6): assertion `left == right` failed: two and two\n  left: 4\n right: 5\n",
        "{}",
        out.output
    );
}

/// Issue 5: a small Python package's pytest suite inside the container, one failing test, read
/// by the test step's parser from the text output and, through the step's own command wrapper,
/// from the JUnit report pytest wrote in the workspace copy.
#[tokio::test]
async fn a_pytest_suite_runs_and_its_failure_parses() {
    // Debian's python3-pytest, for the system python3 the default root mounts (.ci/run installs it).
    require(Path::new("/usr/lib/python3/dist-packages/pytest"), "apt-get install python3-pytest");
    let sb = TestSandbox::new();
    let work = tempfile::tempdir().unwrap();
    write(
        work.path(),
        &[
            ("calc/__init__.py", "def add(a, b):\n    return a + b\n"),
            (
                "tests/test_calc.py",
                "from calc import add\n\n\n\
                 def test_add():\n    assert add(1, 2) == 3\n\n\n\
                 def test_wrong():\n    assert add(2, 2) == 5, \"two and two\"\n",
            ),
            ("tests/__init__.py", ""),
            ("pytest.ini", "[pytest]\naddopts = -p no:cacheprovider\n"),
        ],
    );
    let before = snapshot(work.path());
    let command = cadre_steps::test_output::junit::with_reports(
        "/usr/bin/python3 -m pytest --junitxml=junit.xml",
    );
    let mut s = spec(work.path(), &command);
    s.output_limit = 1 << 20;
    let out = sb.run(&s).await;
    assert_eq!(out.exit_code, Some(1), "{}", out.output);
    let (text, reports) = cadre_steps::test_output::junit::split(&out.output);
    assert_eq!(reports.len(), 1, "the JUnit report was not printed back: {}", out.output);
    assert_eq!(reports[0].0, "junit.xml");
    let parsed = cadre_steps::test_output::parse(&text, &[], &[]);
    assert_eq!(parsed.counts, Some(TestCounts { passed: 1, failed: 1, skipped: 0 }), "{text}");
    assert_eq!(
        shown(&parsed),
        "tests/test_calc.py::test_wrong @ Some(\"tests/test_calc.py\"):Some(9): AssertionError: two and two\nassert 4 == 5\n +  where 4 = add(2, 2)\n",
        "{text}"
    );
    // The report alone says the same, under JUnit's dotted name.
    let from_report = cadre_steps::test_output::parse("", &reports, &[]);
    assert_eq!(from_report.failing_tests, ["tests.test_calc.test_wrong"]);
    assert_eq!(from_report.failures[0].line, Some(9));
    assert_eq!(snapshot(work.path()), before, "the run changed the worktree");
}

/// Issue 5's cargo overhead: with a build cache key, cargo builds into the cache (not into the
/// worktree or the per-run copy), so the second run with the same key compiles nothing.
#[tokio::test]
async fn cargo_builds_once_per_cache_key() {
    let home = home();
    require(&home.join(".cargo/bin/cargo"), "cargo's rustup proxy");
    let sb = TestSandbox::with(|cfg| {
        cfg.limits = Limits { memory_bytes: 1 << 30, pids: 256, cpu_millicores: 2000 };
        let toolchains = cfg.clone().with_home_toolchains(&home);
        *cfg = toolchains;
    });
    let work = tempfile::tempdir().unwrap();
    write(
        work.path(),
        &[
            ("Cargo.toml", "[package]\nname = \"tiny\"\nversion = \"0.1.0\"\nedition = \"2021\"\n"),
            ("src/lib.rs", "pub fn add(a: u32, b: u32) -> u32 { a + b }\n"),
        ],
    );
    let before = snapshot(work.path());
    let mut s = spec(work.path(), "cargo build --offline 2>&1");
    s.timeout = Duration::from_secs(120);
    s.cache = Some("task-cargo".into());
    let first = sb.run(&s).await;
    assert_eq!(first.exit_code, Some(0), "{}", first.output);
    assert!(first.output.contains("Compiling tiny"), "{}", first.output);
    let second = sb.run(&s).await;
    assert_eq!(second.exit_code, Some(0), "{}", second.output);
    assert!(!second.output.contains("Compiling"), "rebuilt with a warm cache: {}", second.output);
    // Another key starts cold.
    s.cache = Some("task-other".into());
    let other = sb.run(&s).await;
    assert!(other.output.contains("Compiling tiny"), "{}", other.output);
    let built = sb.dir.path().join("runtime/caches/task-cargo/data/cargo-target/debug");
    assert!(built.is_dir(), "no build in the cache");
    assert_eq!(snapshot(work.path()), before, "the build wrote the worktree");
}
