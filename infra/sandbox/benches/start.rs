//! Start latency of a container run: create → start → exit → delete of `/bin/true`, as the test
//! step pays it (workspace copy of an empty worktree, runner process, container, cleanup), with and
//! without the seccomp filter, beside the unisolated host sandbox and the bare cost of starting the
//! runner process.
//!
//! Run as root, in the dev profile the project builds in: `cargo test -p cadre-sandbox --bench
//! start`. `CADRE_BENCH_RUNS` sets runs per row (default 200); 10 warm-up runs precede each row.
//!
//! The last rows time a real `cargo test --offline` of a small crate as the test step runs it:
//! inside the container on a worktree without `target/`, every run with the same build cache key
//! (the first, cold, run is reported on its own), against the host in place with a warm
//! `target/` (`CADRE_BENCH_CARGO_RUNS` warm runs each, default 10), and print the median
//! overhead of the warm runs.
//! Compare with `/work/shared/anchors/sandbox/RESULTS.md` (crun+seccomp p50 27.5 ms, runc ≈ 29 ms,
//! youki CLI ≈ 28 ms, measured with hyperfine around whole CLI invocations).

#![allow(clippy::print_stdout)] // A benchmark's table is its output.

use cadre_domain::ports::sandbox::{RunSpec, Sandbox};
use cadre_sandbox::{HostSandbox, Limits, Runner, YoukiConfig, YoukiSandbox};
use std::time::{Duration, Instant};

const WARMUP: usize = 10;

fn runs() -> usize {
    std::env::var_os("CADRE_BENCH_RUNS")
        .and_then(|v| v.to_str().and_then(|v| v.parse().ok()))
        .unwrap_or(200)
}

/// Nearest-rank percentile of sorted samples.
fn pct(sorted: &[Duration], p: f64) -> f64 {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted[rank.min(sorted.len()) - 1].as_secs_f64() * 1000.0
}

fn report(name: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let mean = samples.iter().sum::<Duration>().as_secs_f64() * 1000.0 / samples.len() as f64;
    println!(
        "{name:<28} n={:<4} p50 {:>7.2} ms  p90 {:>7.2} ms  p99 {:>7.2} ms  min {:>7.2}  mean {:>7.2}",
        samples.len(),
        pct(&samples, 50.0),
        pct(&samples, 90.0),
        pct(&samples, 99.0),
        samples[0].as_secs_f64() * 1000.0,
        mean
    );
}

async fn time_runs(sandbox: &dyn Sandbox, spec: &RunSpec, n: usize) -> Vec<Duration> {
    for _ in 0..WARMUP.min(n) {
        let out = sandbox.run(spec).await.expect("run");
        assert_eq!(out.exit_code, Some(0), "{out:?}");
    }
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        let out = sandbox.run(spec).await.expect("run");
        samples.push(t.elapsed());
        assert_eq!(out.exit_code, Some(0), "{out:?}");
    }
    samples
}

/// Writes the small crate the cargo rows build: 21 unit tests, 1 integration test, 1 doctest.
fn write_crate(dir: &std::path::Path) {
    std::fs::create_dir_all(dir.join("src")).expect("src");
    std::fs::create_dir_all(dir.join("tests")).expect("tests");
    std::fs::write(
        dir.join("Cargo.toml"),
        "[package]\nname = \"tiny\"\nversion = \"0.1.0\"\nedition = \"2021\"\n",
    )
    .expect("manifest");
    let unit_tests: String = (0..20)
        .map(|i| {
            format!("    #[test] fn t{i}() {{ assert_eq!(super::add({i}, 1), {}); }}\n", i + 1)
        })
        .collect();
    std::fs::write(
        dir.join("src/lib.rs"),
        format!(
            "/// Adds.\n///\n/// ```\n/// assert_eq!(tiny::add(1, 2), 3);\n/// ```\n\
             pub fn add(a: u32, b: u32) -> u32 {{ a + b }}\n#[cfg(test)]\nmod tests {{\n{unit_tests}}}\n"
        ),
    )
    .expect("lib");
    std::fs::write(
        dir.join("tests/api.rs"),
        "#[test] fn api() { assert_eq!(tiny::add(2, 2), 4); }\n",
    )
    .expect("integration test");
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// A real `cargo test --offline` of a small crate, as the test step runs it: inside the container
/// the worktree has no `target/` (each round is a fresh checkout) and every run passes the same
/// build cache key, so the first run builds cold into the cache and the later ones are warm; on
/// the host (unisolated, in place) a second copy of the crate keeps a warm `target/`.
/// `CADRE_BENCH_CARGO_RUNS` warm runs each (default 10), interleaved.
async fn cargo_overhead(root: &std::path::Path) {
    let n: usize = std::env::var_os("CADRE_BENCH_CARGO_RUNS")
        .and_then(|v| v.to_str().and_then(|v| v.parse().ok()))
        .unwrap_or(10);
    let home = std::path::PathBuf::from(
        std::env::var_os("HOME").expect("HOME must name the home holding .cargo and .rustup"),
    );
    let (on_host_tree, in_container_tree) =
        (tempfile::tempdir().expect("tempdir"), tempfile::tempdir().expect("tempdir"));
    write_crate(on_host_tree.path());
    write_crate(in_container_tree.path());
    let key = format!("bench-{}", std::process::id());
    let spec = |dir: &std::path::Path, cache: Option<&str>, command: &str| RunSpec {
        workdir: dir.to_path_buf(),
        command: command.into(),
        env: Vec::new(),
        timeout: Duration::from_secs(300),
        output_limit: 64 * 1024,
        network: Default::default(),
        cache: cache.map(str::to_owned),
    };
    let quiet = "cargo test --offline -q 2>&1";
    let host_spec = spec(on_host_tree.path(), None, quiet);
    let container_spec = spec(in_container_tree.path(), Some(&key), quiet);
    let host = HostSandbox::new();
    let mut cfg = config(root, true).with_home_toolchains(&home);
    cfg.limits = Limits { memory_bytes: 2 << 30, pids: 512, cpu_millicores: 2000 };
    let container = YoukiSandbox::new(cfg).expect("sandbox");
    let _weighed = HostCgroup::enter();

    // Cold: the host builds its target/, the container its cache, each from nothing.
    let t = Instant::now();
    let cold = host.run(&host_spec).await.expect("host build");
    let host_cold = t.elapsed();
    assert_eq!(cold.exit_code, Some(0), "{}", cold.output);
    let t = Instant::now();
    let cold = container.run(&container_spec).await.expect("container build");
    let container_cold = t.elapsed();
    assert_eq!(cold.exit_code, Some(0), "{}", cold.output);
    // The second container run must find everything built (nothing compiled) and no target/ in
    // the worktree.
    let verbose = spec(in_container_tree.path(), Some(&key), "cargo test --offline 2>&1");
    let second = container.run(&verbose).await.expect("container run");
    assert_eq!(second.exit_code, Some(0), "{}", second.output);
    let rebuilt = second.output.contains("Compiling");
    assert!(!in_container_tree.path().join("target").exists(), "the build wrote the worktree");
    let (files, bytes) = tree_size(in_container_tree.path());
    let (_, target_bytes) = tree_size(&on_host_tree.path().join("target"));
    println!(
        "cargo test --offline of a 22-test crate + 1 doctest; container: worktree without target/ \
         ({files} files, {bytes} bytes copied per run), build cache key {key:?}, warm run rebuilt: \
         {rebuilt}; host: in place with a warm target/ ({:.1} MB)",
        target_bytes as f64 / 1e6
    );
    println!(
        "first (cold) run: container {:.0} ms, host {:.0} ms ({:+.1}%)",
        ms(container_cold),
        ms(host_cold),
        (ms(container_cold) / ms(host_cold) - 1.0) * 100.0
    );
    let (mut on_host, mut in_container) = (Vec::new(), Vec::new());
    for _ in 0..n {
        for (sandbox, run, samples) in [
            (&host as &dyn Sandbox, &host_spec, &mut on_host),
            (&container as &dyn Sandbox, &container_spec, &mut in_container),
        ] {
            let t = Instant::now();
            let out = sandbox.run(run).await.expect("run");
            samples.push(t.elapsed());
            assert_eq!(out.exit_code, Some(0), "{}", out.output);
        }
    }
    let p50 = |mut v: Vec<Duration>| {
        v.sort();
        pct(&v, 50.0)
    };
    report("cargo test warm, host", on_host.clone());
    report("cargo test warm, youki+cache", in_container.clone());
    let (h, c) = (p50(on_host), p50(in_container));
    println!(
        "warm cargo test overhead inside the container: {:+.1}% (p50 {c:.0} ms vs {h:.0} ms on the host)",
        (c / h - 1.0) * 100.0
    );
    assert!(container.remove_cache(&key).await.expect("remove the cache"));
}

/// The cpu cgroup (v1) the host runs go into for the cargo rows: the container runs' parent
/// cgroup weighs as many host processes as their CPU limit has cores (`cpu.shares`), so on a
/// machine shared with other work the host runs get the same weight (this process moves, and the
/// host sandbox's commands are its children). Left, and removed, on drop.
struct HostCgroup(Option<std::path::PathBuf>);

impl HostCgroup {
    const CPU: &'static str = "/sys/fs/cgroup/cpu";

    fn enter() -> HostCgroup {
        let cpu = std::path::Path::new(Self::CPU);
        let Ok(shares) = std::fs::read_to_string(cpu.join("cadre-bench/cpu.shares")) else {
            println!("no cgroup v1 cpu controller: host runs keep their default cpu weight");
            return HostCgroup(None);
        };
        let dir = cpu.join("cadre-bench-host");
        std::fs::create_dir_all(&dir).expect("host cpu cgroup");
        std::fs::write(dir.join("cpu.shares"), shares.trim()).expect("cpu.shares");
        std::fs::write(dir.join("cgroup.procs"), std::process::id().to_string()).expect("enter");
        println!(
            "cpu weight: container runs' parent and host runs both cpu.shares {}",
            shares.trim()
        );
        HostCgroup(Some(dir))
    }
}

impl Drop for HostCgroup {
    fn drop(&mut self) {
        let Some(dir) = &self.0 else { return };
        let root = std::path::Path::new(Self::CPU).join("cgroup.procs");
        let _ = std::fs::write(root, std::process::id().to_string());
        for _ in 0..100 {
            if std::fs::remove_dir(dir).is_ok() {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// Files and bytes under `dir`.
fn tree_size(dir: &std::path::Path) -> (u64, u64) {
    let (mut files, mut bytes) = (0, 0);
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let Ok(meta) = entry.metadata() else { continue };
        if meta.is_dir() {
            let (f, b) = tree_size(&entry.path());
            files += f;
            bytes += b;
        } else {
            files += 1;
            bytes += meta.len();
        }
    }
    (files, bytes)
}

fn config(root: &std::path::Path, seccomp: bool) -> YoukiConfig {
    let runner =
        Runner { program: env!("CARGO_BIN_EXE_cadre-sandbox-runner").into(), args: Vec::new() };
    let mut cfg = YoukiConfig::new(root.join(if seccomp { "seccomp" } else { "plain" }), runner);
    cfg.limits = Limits { memory_bytes: 256 << 20, pids: 128, cpu_millicores: 2000 };
    cfg.seccomp = seccomp;
    cfg.cgroup_parent = "cadre-bench".into();
    cfg
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let n = runs();
    let root = tempfile::tempdir().expect("tempdir");
    let work = tempfile::tempdir().expect("tempdir");
    let spec = RunSpec {
        workdir: work.path().to_path_buf(),
        command: "/bin/true".into(),
        env: Vec::new(),
        timeout: Duration::from_secs(30),
        output_limit: 64 * 1024,
        network: Default::default(),
        cache: None,
    };
    println!("start latency of `/bin/true`, {n} runs per row after {WARMUP} warm-up runs");

    // The floor under every container run: starting the runner process, which exits at once.
    let mut floor = Vec::with_capacity(n);
    for i in 0..WARMUP + n {
        let t = Instant::now();
        let status = tokio::process::Command::new(env!("CARGO_BIN_EXE_cadre-sandbox-runner"))
            .arg("--bogus")
            .stderr(std::process::Stdio::null())
            .status()
            .await
            .expect("runner");
        if i >= WARMUP {
            floor.push(t.elapsed());
        }
        assert_eq!(status.code(), Some(2));
    }
    report("runner process (exec+exit)", floor);

    report("host sandbox (unisolated)", time_runs(&HostSandbox::new(), &spec, n).await);
    let plain = YoukiSandbox::new(config(root.path(), false)).expect("sandbox (run as root)");
    let filtered = YoukiSandbox::new(config(root.path(), true)).expect("sandbox");
    // Interleaved, so both rows see the same background load on a shared machine.
    let cached =
        RunSpec { cache: Some(format!("bench-true-{}", std::process::id())), ..spec.clone() };
    let (mut a, mut b, mut c) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..n / 10 {
        a.extend(time_runs(&plain, &spec, 10).await);
        b.extend(time_runs(&filtered, &spec, 10).await);
        c.extend(time_runs(&filtered, &cached, 10).await);
    }
    report("youki sandbox, no seccomp", a);
    report("youki sandbox + seccomp", b);
    report("youki + seccomp + cache", c);
    filtered.remove_cache(cached.cache.as_deref().unwrap_or_default()).await.expect("remove");
    cargo_overhead(root.path()).await;
    for dir in std::fs::read_dir("/sys/fs/cgroup").into_iter().flatten().flatten() {
        let _ = std::fs::remove_dir(dir.path().join("cadre-bench"));
    }
}
