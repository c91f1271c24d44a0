//! `cadre eval` through the real binary: a suite of six small Python and Rust tasks run end to end
//! against a scripted Gemini server that answers like a model would (right edits for most tasks, a
//! wrong one for one, a reply that spends the budget for another), the HTML report in headless
//! Chromium, a deterministic re-run from the recording, SWE-bench JSONL over a local mirror, an eval
//! killed mid-run and resumed, and `cadre eval compare`.

use cadre_testkit::model_server::{CapturedRequest, ModelServer, Scripted, ScriptedCall};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::support::cadre::Cadre;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/e2e/fixtures/eval")
}

fn local_suite() -> String {
    fixtures().join("local").display().to_string()
}

/// Phrases of each local task's goal, which every request about the task carries.
const LOCAL_TASKS: &[(&str, &str)] = &[
    ("average()", "py-fix-average"),
    ("slugify()", "py-feature-slugify"),
    ("is_palindrome()", "py-doc-palindrome"),
    ("clamp()", "rs-fix-clamp"),
    ("word_count()", "rs-doc-word-count"),
    ("peek()", "rs-feature-peek"),
];

/// The task whose plan costs $0.03: with a $0.05 budget, generate's worst case no longer fits.
const COSTLY: &str = "rs-feature-peek";

fn is_plan(req: &CapturedRequest) -> bool {
    req.system_text.contains("planning engineer")
}

fn is_generate(req: &CapturedRequest) -> bool {
    req.system_text.contains("implementing engineer")
}

/// The fixture task a request is about.
fn task_of(req: &CapturedRequest, tasks: &[(&str, &'static str)]) -> Option<&'static str> {
    let body = req.body.to_string();
    tasks.iter().find(|(phrase, _)| body.contains(phrase)).map(|&(_, task)| task)
}

/// The scripted answer of `task` to a plan or generate request, from `fixtures/eval/answers/`.
fn answer(req: &CapturedRequest, task: &str) -> Scripted {
    let kind = if is_plan(req) {
        "plan.json"
    } else if is_generate(req) {
        "edit.txt"
    } else {
        return Scripted::Status {
            code: 400,
            body: json!({"error": {"message": "unexpected prompt"}}),
        };
    };
    let text = std::fs::read_to_string(fixtures().join(format!("answers/{task}.{kind}"))).unwrap();
    if task == COSTLY && is_plan(req) {
        // 10,000 output tokens at $3 per million: $0.03.
        let body = json!({
            "candidates": [{"content": {"role": "model", "parts": [{"text": text}]}, "finishReason": "STOP"}],
            "usageMetadata": {"promptTokenCount": 100, "candidatesTokenCount": 10_000, "totalTokenCount": 10_100},
            "modelVersion": "gemini-3-flash-preview"
        });
        return Scripted::Raw {
            code: 200,
            content_type: "application/json".into(),
            body: body.to_string(),
        };
    }
    Scripted::Text(text)
}

fn model(tasks: &'static [(&'static str, &'static str)]) -> impl Fn(&CapturedRequest) -> Scripted {
    move |req| match task_of(req, tasks) {
        Some(task) => answer(req, task),
        None => Scripted::Status { code: 400, body: json!({"error": {"message": "unknown task"}}) },
    }
}

/// The results file's lines, as JSON.
fn results(run: &Path) -> Vec<Value> {
    std::fs::read_to_string(run.join("results.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn outcomes(run: &Path) -> BTreeMap<String, String> {
    results(run)
        .iter()
        .map(|r| {
            (r["task"].as_str().unwrap().to_owned(), r["outcome"].as_str().unwrap().to_owned())
        })
        .collect()
}

fn expected(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|&(t, o)| (t.to_owned(), o.to_owned())).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_suite_runs_end_to_end_is_replayed_and_its_report_renders() {
    let server = ModelServer::start().await;
    server.respond_with(model(LOCAL_TASKS));
    let cadre = Cadre::new().gemini(&server.base_url());
    let dir = tempfile::tempdir().unwrap();
    let (run, recording) = (dir.path().join("run"), dir.path().join("model.jsonl"));
    let suite = local_suite();
    let args = ["--jobs", "3", "--budget-usd", "0.05"];
    let mut command = vec!["eval", &suite, "--out", run.to_str().unwrap()];
    command.extend(args);
    command.extend(["--record", recording.to_str().unwrap()]);
    let out = cadre.run(&command).await.expect_code(0);

    assert_eq!(
        outcomes(&run),
        expected(&[
            ("py-doc-palindrome", "tests_failed"),
            ("py-feature-slugify", "solved"),
            ("py-fix-average", "solved"),
            ("rs-doc-word-count", "solved"),
            ("rs-feature-peek", "budget"),
            ("rs-fix-clamp", "solved"),
        ]),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("solve rate        66.7% (4/6)  (95% CI 30.0% – 90.3%)"),
        "{}",
        out.stdout
    );
    let lines = results(&run);
    let by_task = |t: &str| lines.iter().find(|r| r["task"] == t).unwrap().clone();
    // A solved edit-blocks task: one plan call and one generate call, one round, charged to the task.
    let average = by_task("py-fix-average");
    assert_eq!((average["model_calls"].as_u64(), average["rounds"].as_u64()), (Some(2), Some(1)));
    assert!(average["tokens"]["input"].as_u64().unwrap() > 0, "{average}");
    assert!(average["cost_micros"].as_u64().unwrap() > 0, "{average}");
    assert!(average["wall_ms"].as_u64().unwrap() > 0, "{average}");
    // The wrong implementation passed the visible tests but not the hidden ones.
    let palindrome = by_task("py-doc-palindrome");
    assert!(palindrome["reason"].as_str().unwrap().contains("exited 1"), "{palindrome}");
    let log = std::fs::read_to_string(run.join("logs/py-doc-palindrome.check.txt")).unwrap();
    assert!(log.contains("test_sentence"), "{log}");
    // The costly plan left no room for generate: the task stopped, it did not hang. The ledger has
    // the plan call and the refused generate call (never sent: see the request count below).
    let peek = by_task(COSTLY);
    assert_eq!(peek["model_calls"].as_u64(), Some(2), "{peek}");
    assert_eq!(peek["cost_micros"].as_u64(), Some(30_050), "{peek}");
    assert!(peek["reason"].as_str().unwrap().contains("budget exhausted in generate"), "{peek}");

    // The hidden tests never reached the agent: not in its repository, not in any prompt.
    assert!(run.join("work/py-fix-average/repo/stats.py").exists());
    assert!(!run.join("work/py-fix-average/repo/test_hidden.py").exists());
    assert!(!run.join("work/rs-fix-clamp/repo/tests").exists());
    for req in server.requests() {
        let body = req.body.to_string();
        assert!(!body.contains("Hidden") && !body.contains("test_hidden"), "{body}");
    }

    // Each trajectory is a Cadre task in the run's home.
    let clamp = by_task("rs-fix-clamp");
    let home = clamp["trajectory"]["home"].as_str().unwrap();
    let id = clamp["trajectory"]["cadre_task"].as_str().unwrap();
    let shown = cadre.run(&["--home", home, "status", id]).await.expect_code(0);
    assert!(shown.stdout.contains("state  awaiting_review (round 1)"), "{}", shown.stdout);

    // The report renders in a real browser and shows the summary and the charts.
    let summary: Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("summary.json")).unwrap()).unwrap();
    assert_eq!((summary["tasks"].as_u64(), summary["solved"].as_u64()), (Some(6), Some(4)));
    let dom = dump_dom(&run.join("report.html")).await;
    assert!(dom.contains("<table id=\"summary\">"), "{dom}");
    assert!(dom.contains("66.7% (4 / 6)"), "{dom}");
    assert!(dom.contains("Cost per solved task"), "{dom}");
    assert!(dom.contains("rs-feature-peek"), "{dom}");
    assert_eq!(dom.matches("<svg").count(), 4, "solve rate, outcomes, cost and time charts");

    // One plan and one generate call per task, but for the one that stopped before generate.
    assert_eq!(server.request_count(), 11);

    // The recording replays the same run with no model server.
    drop(server);
    let replayed = dir.path().join("replayed");
    let model = format!("replay:{}", recording.display());
    let mut command = vec!["eval", &suite, "--out", replayed.to_str().unwrap(), "--model", &model];
    command.extend(args);
    command.extend(["--only", "py-fix-average", "--only", "py-doc-palindrome"]);
    let out = cadre.run(&command).await.expect_code(0);
    assert_eq!(
        outcomes(&replayed),
        expected(&[("py-doc-palindrome", "tests_failed"), ("py-fix-average", "solved")]),
        "{}",
        out.stdout
    );
}

/// What headless Chromium makes of a page: its DOM after loading.
async fn dump_dom(page: &Path) -> String {
    let profile = tempfile::tempdir().unwrap();
    let mut chromium = tokio::process::Command::new("chromium");
    chromium
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg("--dump-dom")
        .arg(format!("file://{}", page.display()))
        .kill_on_drop(true);
    let out = chromium.output();
    let out = tokio::time::timeout(Duration::from_secs(60), out)
        .await
        .expect("chromium did not finish in 60 s")
        .unwrap_or_else(|e| {
            panic!("cannot run chromium ({e}); install Debian's chromium (.ci/run does)")
        });
    assert!(out.status.success(), "chromium failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// Builds the mirror `DIR/acme__mathlib` the way the fixture's `base_commit` was made: the base files
/// in one commit, then a later commit with the fix, which the agent must never see.
fn mathlib_mirror(dir: &Path) -> PathBuf {
    let repo = dir.join("acme__mathlib");
    let git = |args: &[&str]| {
        let out = Command::new("git")
            .args(["-c", "commit.gpgsign=false"])
            .args(args)
            .current_dir(&repo)
            .envs([
                ("GIT_AUTHOR_NAME", "Fixture"),
                ("GIT_AUTHOR_EMAIL", "fixture@example.invalid"),
                ("GIT_AUTHOR_DATE", "2024-01-01T00:00:00Z"),
                ("GIT_COMMITTER_NAME", "Fixture"),
                ("GIT_COMMITTER_EMAIL", "fixture@example.invalid"),
                ("GIT_COMMITTER_DATE", "2024-01-01T00:00:00Z"),
            ])
            .output()
            .unwrap();
        assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    let swe = fixtures().join("swebench");
    copy_dir(&swe.join("mathlib-base"), &repo);
    git(&["init", "-q", "-b", "main"]);
    git(&["add", "-A"]);
    git(&["commit", "-q", "-m", "base"]);
    let base = git(&["rev-parse", "HEAD"]);
    copy_dir(&swe.join("mathlib-fix"), &repo);
    git(&["add", "-A"]);
    git(&["commit", "-q", "-m", "fix clip and mean"]);
    assert_eq!(
        base.trim(),
        "dcbffec74266357fc451db1b0465a7cee2d975b3",
        "instances.jsonl names this"
    );
    repo
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swe_bench_instances_run_from_a_local_mirror() {
    const SWE_TASKS: &[(&str, &str)] =
        &[("upper bound", "acme__mathlib-1"), ("ZeroDivisionError", "acme__mathlib-2")];
    let server = ModelServer::start().await;
    server.respond_with(model(SWE_TASKS));
    let cadre = Cadre::new().gemini(&server.base_url());
    let dir = tempfile::tempdir().unwrap();
    let mirror = dir.path().join("mirror");
    mathlib_mirror(&mirror);
    let run = dir.path().join("run");
    let suite = fixtures().join("swebench/instances.jsonl");
    let out = cadre
        .run(&[
            "eval",
            suite.to_str().unwrap(),
            "--mirror",
            mirror.to_str().unwrap(),
            "--out",
            run.to_str().unwrap(),
        ])
        .await
        .expect_code(0);
    assert_eq!(
        outcomes(&run),
        expected(&[("acme__mathlib-1", "solved"), ("acme__mathlib-2", "did_not_apply")]),
        "{}",
        out.stdout
    );
    // The agent edited the test file the instance's test_patch changes, so the tests could not be added.
    let mean = results(&run).into_iter().find(|r| r["task"] == "acme__mathlib-2").unwrap();
    assert!(mean["reason"].as_str().unwrap().contains("test patch does not apply"), "{mean}");
    // The agent got the base commit's files and no history: not the later fix, not the new test.
    let repo = run.join("work/acme__mathlib-1/repo");
    assert!(std::fs::read_to_string(repo.join("mathlib/ops.py")).unwrap().contains("return value"));
    assert!(!repo.join("tests/test_clip.py").exists());
    let log = Command::new("git").args(["log", "--oneline"]).current_dir(&repo).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&log.stdout).lines().count(), 1);
    // The agent's own test runs were the instance's PASS_TO_PASS tests.
    let check = std::fs::read_to_string(run.join("logs/acme__mathlib-1.check.txt")).unwrap();
    assert!(
        check.starts_with("$ /usr/bin/python3 -m pytest -q -p no:cacheprovider tests/test_clip.py::test_upper_bound tests/test_ops.py::test_add"),
        "{check}"
    );
    assert!(check.contains("3 passed"), "{check}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_eval_resumes_and_counts_every_task_once() {
    // slugify's first generate call hangs, so it is in flight when the eval is killed.
    let server = ModelServer::start().await;
    let slugify_generates = Arc::new(AtomicU32::new(0));
    let calls = slugify_generates.clone();
    let answer_all = model(LOCAL_TASKS);
    server.respond_with(move |req| {
        let slugify = task_of(req, LOCAL_TASKS) == Some("py-feature-slugify");
        if slugify && is_generate(req) && calls.fetch_add(1, Ordering::SeqCst) == 0 {
            return Scripted::Delay { millis: 60_000, then: Box::new(answer_all(req)) };
        }
        answer_all(req)
    });
    let cadre = Cadre::new().gemini(&server.base_url());
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let suite = local_suite();
    let command = [
        "eval",
        &suite,
        "--out",
        run.to_str().unwrap(),
        "--jobs",
        "2",
        "--only",
        "py-fix-average",
        "--only",
        "py-feature-slugify",
        "--only",
        "py-doc-palindrome",
    ];

    // Its output goes to files: an unread pipe would fill up and stall it.
    let (stdout, stderr) = (dir.path().join("first.out"), dir.path().join("first.err"));
    let mut first = cadre
        .command(&command)
        .stdout(std::fs::File::create(&stdout).unwrap())
        .stderr(std::fs::File::create(&stderr).unwrap())
        .spawn()
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while results(&run).len() < 2 || slugify_generates.load(Ordering::SeqCst) == 0 {
        if tokio::time::Instant::now() > deadline {
            first.start_kill().unwrap();
            let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
            panic!("the first run never got two results:\n{}\n{}", read(&stdout), read(&stderr));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    first.start_kill().unwrap(); // SIGKILL: slugify is mid-generate.
    first.wait().await.unwrap();
    assert_eq!(
        outcomes(&run),
        expected(&[("py-doc-palindrome", "tests_failed"), ("py-fix-average", "solved")])
    );

    let out = cadre.run(&command).await.expect_code(0);
    assert!(out.stdout.contains("resuming: 2 task(s) recorded, 1 to run"), "{}", out.stdout);
    let lines = results(&run);
    let mut tasks: Vec<&str> = lines.iter().map(|r| r["task"].as_str().unwrap()).collect();
    tasks.sort_unstable();
    assert_eq!(tasks, ["py-doc-palindrome", "py-feature-slugify", "py-fix-average"]);
    assert_eq!(outcomes(&run)["py-feature-slugify"], "solved");
    assert!(out.stdout.contains("solve rate        66.7% (2/3)"), "{}", out.stdout);
    // The killed run's slugify task was cancelled, and the one recorded is the re-run.
    let home = run.join("home");
    let status = cadre.run(&["--home", home.to_str().unwrap(), "status"]).await.expect_code(0);
    assert_eq!(status.stdout.matches("cancelled").count(), 1, "{}", status.stdout);
    assert_eq!(slugify_generates.load(Ordering::SeqCst), 2);

    // Running it again finds nothing to do and counts nothing twice.
    let again = cadre.run(&command).await.expect_code(0);
    assert!(again.stdout.contains("resuming: 3 task(s) recorded, 0 to run"), "{}", again.stdout);
    assert_eq!(results(&run).len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compare_shows_the_tasks_that_moved_and_the_change_in_rate_and_cost() {
    let dir = tempfile::tempdir().unwrap();
    let line = |task: &str, outcome: &str, cost: u64| {
        json!({"task": task, "solved": outcome == "solved", "outcome": outcome,
               "tokens": {"input": 1000, "output": 100, "cached": 0, "thinking": 0},
               "cost_micros": cost, "wall_ms": 2000, "model_calls": 2, "rounds": 1,
               "trajectory": {"home": "/nowhere"}, "finished_at_ms": 0})
        .to_string()
    };
    let write = |name: &str, lines: &[String]| {
        let run = dir.path().join(name);
        std::fs::create_dir_all(&run).unwrap();
        std::fs::write(run.join("results.jsonl"), lines.join("\n") + "\n").unwrap();
        run
    };
    let a = write(
        "a",
        &[line("t1", "solved", 1000), line("t2", "tests_failed", 3000), line("t3", "budget", 5000)],
    );
    let b = write(
        "b",
        &[line("t1", "solved", 1000), line("t2", "solved", 1000), line("t4", "solved", 1000)],
    );
    let out = Cadre::new()
        .run(&["eval", "compare", a.to_str().unwrap(), b.to_str().unwrap()])
        .await
        .expect_code(0);
    let text = out.stdout;
    assert!(text.contains("over the 2 task(s) both runs have:"), "{text}");
    assert!(text.contains("50.0% (1/2)") && text.contains("100.0% (2/2)"), "{text}");
    assert!(text.contains("+50.0 pp"), "{text}");
    assert!(text.contains("-$0.0020"), "cost fell by $0.002: {text}");
    assert!(text.contains("solved only in B: t2"), "{text}");
    assert!(text.contains("only in A (not compared): t3"), "{text}");
    assert!(text.contains("+ t2"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_past_its_time_limit_is_cancelled_and_counted_as_a_timeout() {
    let server = ModelServer::start().await;
    server.respond_with(|_| Scripted::Delay {
        millis: 60_000,
        then: Box::new(Scripted::Text("too late".into())),
    });
    let cadre = Cadre::new().gemini(&server.base_url());
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let suite = local_suite();
    // A short visibility timeout makes heartbeats frequent, so the cancelled step stops soon.
    let out = cadre
        .run(&[
            "--visibility-timeout",
            "3",
            "eval",
            &suite,
            "--out",
            run.to_str().unwrap(),
            "--only",
            "py-fix-average",
            "--task-timeout",
            "2",
        ])
        .await
        .expect_code(0);
    assert_eq!(outcomes(&run), expected(&[("py-fix-average", "timeout")]), "{}", out.stdout);
    let result = results(&run).remove(0);
    assert_eq!(result["reason"], "still running after --task-timeout 2 s");
    let id = result["trajectory"]["cadre_task"].as_str().unwrap();
    let home = run.join("home");
    let status = cadre.run(&["--home", home.to_str().unwrap(), "status", id]).await.expect_code(0);
    assert!(status.stdout.contains("state  cancelled"), "{}", status.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tool_harness_is_judged_by_the_same_check() {
    let server = ModelServer::start().await;
    server.respond_with(|req| {
        if is_plan(req) {
            return answer(req, "py-fix-average");
        }
        // The turn a Gemini request is for: its contents alternate user / model.
        let turn = req.body["contents"].as_array().map_or(0, |c| c.len().div_ceil(2));
        let call = if turn <= 1 {
            let fix = json!({"path": "stats.py", "search": "(len(values) - 1)", "replace": "len(values)"});
            ScriptedCall::new("edit", fix)
        } else {
            ScriptedCall::new("finish", json!({"summary": "divide by len(values)"}))
        };
        Scripted::ToolCalls { text: String::new(), calls: vec![call] }
    });
    let cadre = Cadre::new().gemini(&server.base_url());
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let suite = local_suite();
    let args = ["eval", &suite, "--out", run.to_str().unwrap(), "--harness", "tools"];
    let out = cadre.run(&[&args[..], &["--only", "py-fix-average"]].concat()).await.expect_code(0);
    assert_eq!(outcomes(&run), expected(&[("py-fix-average", "solved")]), "{}", out.stdout);
    let result = results(&run).remove(0);
    assert_eq!(result["model_calls"], 3, "a plan call and two turns: {result}");
    let manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("run.json")).unwrap()).unwrap();
    assert_eq!(manifest["harness"], "tools");
}
