//! Start latency of a container run: create → start → exit → delete of `/bin/true`, as the test
//! step pays it (workspace copy of an empty worktree, runner process, container, cleanup), with and
//! without the seccomp filter, beside the unisolated host sandbox and the bare cost of starting the
//! runner process, and where a run's time goes (`YoukiSandbox::run_with_phases`).
//!
//! Run as root, in the dev profile the project builds in: `cargo test -p cadre-sandbox --bench
//! start`. `CADRE_BENCH_RUNS` sets runs per row (default 200); 10 warm-up runs precede each row.
//! `CADRE_BENCH_ONLY=cargo` skips the `/bin/true` rows.
//!
//! Then a real `cargo test --offline` as the test step runs it, of a small crate (22 trivial
//! tests + 1 doctest, ~300 ms) and of a bigger one (24 tests doing a prime sieve, file I/O in the
//! temp dir and a child process each, ~1–3 s): inside the container on a worktree without
//! `target/`, every run with the same build cache key (the first, cold, run is reported on its
//! own), against the host in place with a warm `target/` and a tmpfs `TMPDIR` like the
//! container's. Host and container runs alternate (ABBA), `CADRE_BENCH_CARGO_RUNS` (default 10)
//! and `CADRE_BENCH_BIG_RUNS` (default 6) warm runs each. Each run's total splits into `cargo`
//! itself (timed by the shell inside) and what the sandbox adds around it; the container's phases
//! and the machine's load during the runs are printed too.
//! Compare with `/work/shared/anchors/sandbox/RESULTS.md` (crun+seccomp p50 27.5 ms, runc ≈ 29 ms,
//! youki CLI ≈ 28 ms, measured with hyperfine around whole CLI invocations).

#![allow(clippy::print_stdout)] // A benchmark's table is its output.

use cadre_domain::ports::sandbox::{RunSpec, Sandbox};
use cadre_sandbox::{HostSandbox, Limits, RunPhases, Runner, YoukiConfig, YoukiSandbox};
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
fn write_small_crate(dir: &std::path::Path) {
    let unit_tests: String = (0..20)
        .map(|i| {
            format!("    #[test] fn t{i}() {{ assert_eq!(super::add({i}, 1), {}); }}\n", i + 1)
        })
        .collect();
    write_crate(
        dir,
        &format!(
            "/// Adds.\n///\n/// ```\n/// assert_eq!(tiny::add(1, 2), 3);\n/// ```\n\
             pub fn add(a: u32, b: u32) -> u32 {{ a + b }}\n#[cfg(test)]\nmod tests {{\n{unit_tests}}}\n"
        ),
    );
}

/// Writes the bigger crate: 24 unit tests doing real work (a prime sieve, files written, read
/// and deleted in the temp dir, and a child process each: CPU- and syscall-heavy, about 1–3 s of
/// tests on this machine), 1 integration test, 1 doctest.
fn write_big_crate(dir: &std::path::Path) {
    let unit_tests: String =
        (0..24).map(|i| format!("    #[test] fn t{i}() {{ super::work({i}); }}\n")).collect();
    write_crate(
        dir,
        &format!(
            "/// Adds.\n///\n/// ```\n/// assert_eq!(tiny::add(1, 2), 3);\n/// ```\n\
             pub fn add(a: u32, b: u32) -> u32 {{ a + b }}\n\
             /// Primes below `n`.\npub fn primes(n: usize) -> usize {{\n\
             let mut sieve = vec![true; n]; let mut count = 0;\n\
             for i in 2..n {{ if sieve[i] {{ count += 1; let mut j = i * i; \
             while j < n {{ sieve[j] = false; j += i; }} }} }}\n count }}\n\
             #[cfg(test)]\nfn work(i: u32) {{\n\
             assert_eq!(primes(1_000_000), 78_498);\n\
             let dir = std::env::temp_dir().join(format!(\"tiny-{{}}-{{i}}\", std::process::id()));\n\
             std::fs::create_dir_all(&dir).unwrap();\n\
             for f in 0..200 {{ let p = dir.join(f.to_string()); std::fs::write(&p, [i as u8; 4096]).unwrap(); \
             assert_eq!(std::fs::read(&p).unwrap().len(), 4096); std::fs::metadata(&p).unwrap(); }}\n\
             std::fs::remove_dir_all(&dir).unwrap();\n\
             assert!(std::process::Command::new(\"true\").status().unwrap().success());\n}}\n\
             #[cfg(test)]\nmod tests {{\n{unit_tests}}}\n"
        ),
    );
}

fn write_crate(dir: &std::path::Path, lib: &str) {
    std::fs::create_dir_all(dir.join("src")).expect("src");
    std::fs::create_dir_all(dir.join("tests")).expect("tests");
    std::fs::write(
        dir.join("Cargo.toml"),
        "[package]\nname = \"tiny\"\nversion = \"0.1.0\"\nedition = \"2021\"\n",
    )
    .expect("manifest");
    std::fs::write(dir.join("src/lib.rs"), lib).expect("lib");
    std::fs::write(
        dir.join("tests/api.rs"),
        "#[test] fn api() { assert_eq!(tiny::add(2, 2), 4); }\n",
    )
    .expect("integration test");
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The command both sides run: `cargo test` timed from inside the shell, so that a run's total
/// splits into the command itself and what the sandbox adds around it. The time is the output's
/// last line (`inner_ns=…`).
const TIMED_CARGO_TEST: &str = "t0=$(date +%s%N); cargo test --offline -q 2>&1; rc=$?; \
                                echo inner_ns=$(( $(date +%s%N) - t0 )); exit $rc";

/// The command's own time, from [`TIMED_CARGO_TEST`]'s last line.
fn inner(output: &str) -> Duration {
    let ns = output
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("inner_ns="))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no inner_ns line in {output}"));
    Duration::from_nanos(ns)
}

/// How busy all CPUs were between two reads of `/proc/stat`, and the load average.
struct Load(Vec<u64>);

impl Load {
    fn now() -> Load {
        let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
        let cpu = stat.lines().next().unwrap_or_default();
        Load(cpu.split_whitespace().skip(1).filter_map(|v| v.parse().ok()).collect())
    }

    /// Percent of all CPU time that was not idle since `self`.
    fn busy_since(&self) -> f64 {
        let now = Load::now();
        let delta: Vec<u64> = now.0.iter().zip(&self.0).map(|(a, b)| a - b).collect();
        let total: u64 = delta.iter().take(8).sum();
        let idle = delta.get(3).copied().unwrap_or(0) + delta.get(4).copied().unwrap_or(0);
        if total == 0 {
            return 0.0;
        }
        100.0 * (total - idle) as f64 / total as f64
    }
}

fn loadavg() -> String {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    text.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
}

/// Median (nearest rank) of each phase over `runs`, in the phases' order.
fn phase_medians(runs: &[RunPhases]) -> Vec<(String, f64)> {
    let Some(first) = runs.iter().max_by_key(|p| p.iter().count()) else { return Vec::new() };
    first
        .iter()
        .map(|(name, _)| {
            let mut v: Vec<Duration> = runs.iter().filter_map(|p| p.get(name)).collect();
            v.sort();
            (name.to_owned(), pct(&v, 50.0))
        })
        .collect()
}

fn print_phases(title: &str, runs: &[RunPhases]) {
    let medians = phase_medians(runs);
    let sum: f64 = medians.iter().map(|(_, m)| m).sum();
    println!("  {title} (median per phase over {} runs; medians sum to {sum:.1} ms):", runs.len());
    for (name, median) in medians {
        println!("    {name:<20} {median:>8.2} ms");
    }
}

/// A real `cargo test --offline` of a crate, as the test step runs it: inside the container
/// the worktree has no `target/` (each round is a fresh checkout) and every run passes the same
/// build cache key, so the first run builds cold into the cache and the later ones are warm; on
/// the host (unisolated, in place) a second copy of the crate keeps a warm `target/`.
/// `runs` warm runs each, alternating host and container and which of them goes first (ABBA),
/// so both see the same background load.
async fn cargo_overhead(
    root: &std::path::Path,
    label: &str,
    write: fn(&std::path::Path),
    runs: usize,
) {
    let home = std::path::PathBuf::from(
        std::env::var_os("HOME").expect("HOME must name the home holding .cargo and .rustup"),
    );
    let (on_host_tree, in_container_tree) =
        (tempfile::tempdir().expect("tempdir"), tempfile::tempdir().expect("tempdir"));
    write(on_host_tree.path());
    write(in_container_tree.path());
    let key = format!("bench-{}-{label}", std::process::id());
    let spec = |dir: &std::path::Path, cache: Option<&str>, command: &str| RunSpec {
        workdir: dir.to_path_buf(),
        command: command.into(),
        env: Vec::new(),
        timeout: Duration::from_secs(300),
        output_limit: 64 * 1024,
        network: Default::default(),
        cache: cache.map(str::to_owned),
    };
    // The container's /tmp is a tmpfs: the host runs get one too (when the host has /dev/shm),
    // so that the comparison measures isolation, not which medium temp files land on.
    let host_tmp = tempfile::Builder::new()
        .prefix("cadre-bench-tmp")
        .tempdir_in("/dev/shm")
        .or_else(|_| tempfile::tempdir())
        .expect("host temp dir");
    let mut host_spec = spec(on_host_tree.path(), None, TIMED_CARGO_TEST);
    host_spec.env.push(("TMPDIR".into(), host_tmp.path().display().to_string()));
    let container_spec = spec(in_container_tree.path(), Some(&key), TIMED_CARGO_TEST);
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
        "\n[{label}] cargo test --offline; container: worktree without target/ ({files} files, \
         {bytes} bytes copied per run), build cache key {key:?}, warm run rebuilt: {rebuilt}; \
         host: in place with a warm target/ ({:.1} MB), TMPDIR {}",
        target_bytes as f64 / 1e6,
        host_tmp.path().display()
    );
    println!(
        "[{label}] first (cold) run: container {:.0} ms, host {:.0} ms ({:+.1}%)",
        ms(container_cold),
        ms(host_cold),
        (ms(container_cold) / ms(host_cold) - 1.0) * 100.0
    );
    let (load_before, busy) = (loadavg(), Load::now());
    let (mut host_total, mut host_inner) = (Vec::new(), Vec::new());
    let (mut box_total, mut box_inner, mut box_phases) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..runs {
        for container_turn in [i % 2 == 0, i % 2 != 0] {
            let t = Instant::now();
            if container_turn {
                let (out, phases) =
                    container.run_with_phases(&container_spec).await.expect("container run");
                box_total.push(t.elapsed());
                assert_eq!(out.exit_code, Some(0), "{}", out.output);
                box_inner.push(inner(&out.output));
                box_phases.push(phases);
            } else {
                let out = host.run(&host_spec).await.expect("host run");
                host_total.push(t.elapsed());
                assert_eq!(out.exit_code, Some(0), "{}", out.output);
                host_inner.push(inner(&out.output));
            }
        }
    }
    println!(
        "[{label}] load: loadavg {load_before} before, {} after; all CPUs {:.0}% busy during the \
         runs (this benchmark alone keeps about one of {} busy)",
        loadavg(),
        busy.busy_since(),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let p50 = |v: &[Duration]| {
        let mut v = v.to_vec();
        v.sort();
        pct(&v, 50.0)
    };
    report(&format!("[{label}] host, total"), host_total.clone());
    report(&format!("[{label}] youki, total"), box_total.clone());
    report(&format!("[{label}] host, cargo itself"), host_inner.clone());
    report(&format!("[{label}] youki, cargo itself"), box_inner.clone());
    let fixed: Vec<Duration> =
        box_total.iter().zip(&box_inner).map(|(t, i)| t.saturating_sub(*i)).collect();
    report(&format!("[{label}] youki, around cargo"), fixed);
    print_phases(&format!("[{label}] youki phases"), &box_phases);
    let (h, c) = (p50(&host_total), p50(&box_total));
    let (hi, ci) = (p50(&host_inner), p50(&box_inner));
    // Paired: each container run against the host run next to it, so slow stretches of load
    // hit both sides of a pair.
    let mut paired: Vec<f64> =
        box_total.iter().zip(&host_total).map(|(c, h)| (ms(*c) / ms(*h) - 1.0) * 100.0).collect();
    paired.sort_by(f64::total_cmp);
    println!(
        "[{label}] warm cargo test overhead inside the container: {:+.1}% (p50 {c:.0} ms vs {h:.0} \
         ms on the host; median of paired runs {:+.1}%); cargo itself {:+.1}% (p50 {ci:.0} vs \
         {hi:.0} ms)",
        (c / h - 1.0) * 100.0,
        paired[paired.len() / 2],
        (ci / hi - 1.0) * 100.0
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

fn env_count(name: &str, default: usize) -> usize {
    std::env::var_os(name).and_then(|v| v.to_str().and_then(|v| v.parse().ok())).unwrap_or(default)
}

/// The `/bin/true` rows: the runner's floor, the host sandbox, and the container with and
/// without seccomp and with a build cache, interleaved; then the phases of the last row.
async fn start_rows(root: &std::path::Path, spec: &RunSpec, n: usize) {
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

    report("host sandbox (unisolated)", time_runs(&HostSandbox::new(), spec, n).await);
    let plain = YoukiSandbox::new(config(root, false)).expect("sandbox (run as root)");
    let filtered = YoukiSandbox::new(config(root, true)).expect("sandbox");
    // Interleaved, so both rows see the same background load on a shared machine.
    let cached =
        RunSpec { cache: Some(format!("bench-true-{}", std::process::id())), ..spec.clone() };
    let (mut a, mut b, mut c) = (Vec::new(), Vec::new(), Vec::new());
    let mut phases = Vec::new();
    for _ in 0..n / 10 {
        a.extend(time_runs(&plain, spec, 10).await);
        b.extend(time_runs(&filtered, spec, 10).await);
        for _ in 0..10 {
            let t = Instant::now();
            let (out, run_phases) = filtered.run_with_phases(&cached).await.expect("run");
            c.push(t.elapsed());
            assert_eq!(out.exit_code, Some(0), "{out:?}");
            phases.push(run_phases);
        }
    }
    report("youki sandbox, no seccomp", a);
    report("youki sandbox + seccomp", b);
    report("youki + seccomp + cache", c);
    print_phases("youki + seccomp + cache, phases", &phases);
    filtered.remove_cache(cached.cache.as_deref().unwrap_or_default()).await.expect("remove");
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
    let only_cargo = std::env::var_os("CADRE_BENCH_ONLY").is_some_and(|v| v == "cargo");
    if !only_cargo {
        start_rows(root.path(), &spec, n).await;
    }
    let cargo_runs = env_count("CADRE_BENCH_CARGO_RUNS", 10);
    if cargo_runs > 0 {
        cargo_overhead(root.path(), "small", write_small_crate, cargo_runs).await;
    }
    let big_runs = env_count("CADRE_BENCH_BIG_RUNS", 6);
    if big_runs > 0 {
        cargo_overhead(root.path(), "big", write_big_crate, big_runs).await;
    }
    for dir in std::fs::read_dir("/sys/fs/cgroup").into_iter().flatten().flatten() {
        let _ = std::fs::remove_dir(dir.path().join("cadre-bench"));
    }
}
