//! The summary table, the comparison of two runs and the HTML report, from results made by hand.

use cadre_eval::report::{escape, render, ReportInput};
use cadre_eval::summary::task_table;
use cadre_eval::{Comparison, Manifest, Outcome, Summary};
use expect_test::expect;

use crate::support::result;

fn six() -> Vec<cadre_eval::TaskResult> {
    vec![
        result("py-fix", Outcome::Solved, 1_200, 3_000),
        result("py-feature", Outcome::Solved, 1_500, 4_000),
        result("py-doc", Outcome::TestsFailed, 1_300, 3_500),
        result("rs-fix", Outcome::Solved, 2_000, 9_000),
        result("rs-doc", Outcome::Solved, 2_200, 10_000),
        result("rs-feature", Outcome::Budget, 30_050, 1_500),
    ]
}

#[test]
fn the_summary_has_the_rate_interval_costs_and_percentiles() {
    let results = six();
    let s = Summary::of(&results);
    assert_eq!((s.tasks, s.solved), (6, 4));
    assert_eq!(s.cost_micros, 38_250);
    assert_eq!(s.cost_per_task_micros, 6_375);
    assert_eq!(s.cost_per_solved_micros, Some(9_563));
    assert_eq!((s.wall_p50_ms, s.wall_p90_ms), (3_750, 9_500));
    assert_eq!(
        s.outcomes,
        vec![(Outcome::Solved, 4), (Outcome::TestsFailed, 1), (Outcome::Budget, 1)]
    );
    expect![[r#"
        solve rate        66.7% (4/6)  (95% CI 30.0% – 90.3%)
        cost              $0.0383 total
        cost per task     $0.0064
        cost per solved   $0.0096
        time per task     p50 3.8 s  p90 9.5 s
        tokens            6000 in (600 cached)  1200 out  300 thinking  in 12 calls
        outcomes          solved 4, tests_failed 1, budget 1"#]]
    .assert_eq(&s.table());
    expect![[r#"
        task        outcome              cost      time  calls  rounds
        py-fix      solved            $0.0012     3.0 s      2       1
        py-feature  solved            $0.0015     4.0 s      2       1
        py-doc      tests_failed      $0.0013     3.5 s      2       1
        rs-fix      solved            $0.0020     9.0 s      2       1
        rs-doc      solved            $0.0022    10.0 s      2       1
        rs-feature  budget            $0.0301     1.5 s      2       1"#]]
    .assert_eq(&task_table(&results));

    let none = Summary::of(&[]);
    assert_eq!(
        (none.solve_rate, none.solve_rate_ci95, none.cost_per_solved_micros),
        (0.0, None, None)
    );
    assert!(none.table().contains("n/a (none solved)"));
}

#[test]
fn a_comparison_names_the_tasks_that_moved_over_the_common_ones() {
    let a = six();
    let mut b = six();
    b[2] = result("py-doc", Outcome::Solved, 1_000, 3_000); // gained
    b[0] = result("py-fix", Outcome::NoChange, 500, 2_000); // lost
    b[5] = result("rs-feature", Outcome::Error, 100, 1_000); // another failure
    b.remove(4); // rs-doc only in A
    b.push(result("go-new", Outcome::Solved, 1, 1)); // only in B
    let c = Comparison::of(&a, &b);
    assert_eq!(c.tasks.len(), 5);
    expect![[r#"
        over the 5 task(s) both runs have:
                                          A                B        B - A
        solve rate              60.0% (3/5)      60.0% (3/5)      +0.0 pp
        cost                        $0.0361          $0.0051     -$0.0310
        cost per task               $0.0072          $0.0010     -$0.0062
        cost per solved             $0.0120          $0.0017     -$0.0103
        time p50                      3.5 s            3.0 s       -0.5 s
        solved only in B: py-doc
        solved only in A: py-fix
        only in A (not compared): rs-doc
        only in B (not compared): go-new

          task        A              B                  cost A      cost B
        + py-doc      tests_failed   solved            $0.0013     $0.0010
          py-feature  solved         solved            $0.0015     $0.0015
        - py-fix      solved         no_change         $0.0012     $0.0005
        ~ rs-feature  budget         error             $0.0301     $0.0001
          rs-fix      solved         solved            $0.0020     $0.0020"#]]
    .assert_eq(&c.table());
}

#[test]
fn the_report_is_one_self_contained_page_with_the_summary_and_charts() {
    let mut results = six();
    results[2].reason =
        Some("the check `python3 -m unittest` exited 1 <script>alert(1)</script>".into());
    results.push(result("<b>odd</b> id", Outcome::Timeout, 0, 1_800_000));
    let summary = Summary::of(&results);
    let manifest = Manifest {
        suite: "/suites/fixture".into(),
        suite_name: "fixture".into(),
        format: "local".into(),
        model: "gemini:gemini-3-flash-preview".into(),
        harness: "edit-blocks".into(),
        budget_usd: 0.05,
        max_rounds: 3,
        started_at_ms: 0,
    };
    let html = render(&ReportInput {
        manifest: Some(&manifest),
        summary: &summary,
        results: &results,
        generated_at_ms: 1_795_564_800_000,
    });
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(html.contains("<title>Cadre eval: fixture with gemini:gemini-3-flash-preview</title>"));
    assert!(html.contains("57.1% (4 / 7)"), "{html}");
    assert!(html.contains("report of 2026-11-25"));
    assert_eq!(html.matches("<svg").count(), 4);
    assert_eq!(html.matches("<tr><td>").count(), 6 + 7, "six summary rows and a row per task");
    for outcome in Outcome::ALL {
        assert!(html.contains(&format!(">{}</text>", outcome.name())), "{outcome} in the chart");
    }
    // Nothing from a task's id or reason becomes markup, and nothing is fetched.
    assert!(!html.contains("<script>") && !html.contains("<b>odd"));
    assert!(html.contains("&lt;b&gt;odd&lt;/b&gt; id"));
    let own = html.replace("xmlns=\"http://www.w3.org/2000/svg\"", "");
    assert!(!own.contains("http") && !own.contains("src=") && !own.contains("<link"), "{own}");
    assert!(html.contains("cadre --home /runs/a/home show 0190c000-0000-7000-8000-000000000001"));
    assert_eq!(escape("a&'\""), "a&amp;&#39;&quot;");
}
