//! The HTML report: one self-contained file (inline CSS and SVG, no script, no network asset), so it
//! can be mailed, attached to CI or opened from disk years later and look the same.
//!
//! It shows the summary, four charts (the solve rate with its interval, the outcome categories, and
//! the distributions of cost and time per task) and one row per task with its trajectory.

use std::fmt::Write;

use crate::outcome::Outcome;
use crate::results::TaskResult;
use crate::run::Manifest;
use crate::stats;
use crate::summary::{percent, seconds, usd, Summary};

/// Bins of the cost and time histograms.
const BINS: usize = 8;

/// What the report is about.
#[derive(Debug, Clone, Copy)]
pub struct ReportInput<'a> {
    /// The run's settings, when known.
    pub manifest: Option<&'a Manifest>,
    /// The summary of `results`.
    pub summary: &'a Summary,
    /// One result per task, in the suite's order.
    pub results: &'a [TaskResult],
    /// When the report was made (milliseconds since the Unix epoch).
    pub generated_at_ms: i64,
}

/// Renders the report.
#[must_use]
pub fn render(input: &ReportInput<'_>) -> String {
    let s = input.summary;
    let title = input.manifest.map_or_else(
        || "Cadre eval".to_owned(),
        |m| format!("Cadre eval: {} with {}", m.suite_name, m.model),
    );
    let mut h = String::with_capacity(16 * 1024);
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{}</title>\n<style>{CSS}</style>\n</head>\n<body>\n<h1>{}</h1>\n",
        escape(&title),
        escape(&title)
    );
    if let Some(m) = input.manifest {
        let _ = writeln!(
            h,
            "<p class=\"settings\">suite <code>{}</code> ({}) · model <code>{}</code> · harness <code>{}</code> · budget ${:.2} per task · at most {} rounds · report of {}</p>",
            escape(&m.suite),
            escape(&m.format),
            escape(&m.model),
            escape(&m.harness),
            m.budget_usd,
            m.max_rounds,
            cadre_domain::ports::usage::utc_day(cadre_domain::Timestamp(input.generated_at_ms))
        );
    }
    summary_table(&mut h, s);
    h.push_str("<div class=\"charts\">\n");
    chart(&mut h, "Solve rate", &solve_rate_svg(s));
    chart(&mut h, "Outcomes", &outcomes_svg(s));
    let costs: Vec<u64> = input.results.iter().map(|r| r.cost_micros).collect();
    chart(&mut h, "Cost per task", &histogram_svg(&costs, |v| usd(v.round().max(0.0) as u64)));
    let walls: Vec<u64> = input.results.iter().map(|r| r.wall_ms).collect();
    chart(&mut h, "Time per task", &histogram_svg(&walls, |v| seconds(v.round().max(0.0) as u64)));
    h.push_str("</div>\n");
    task_table(&mut h, input.results);
    h.push_str("</body>\n</html>\n");
    h
}

const CSS: &str = "body{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:72em}\
h1{font-size:1.4em}h2{font-size:1.05em;margin:0 0 .4em}\
.settings{color:#555}code{font-size:.95em}\
table{border-collapse:collapse;margin:1em 0}td,th{padding:.25em .7em;text-align:left;border-bottom:1px solid #ddd}\
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}\
#summary td:first-child{color:#555}\
.charts{display:flex;flex-wrap:wrap;gap:1.5em}.chart{border:1px solid #ddd;padding:.8em;border-radius:4px}\
.badge{display:inline-block;padding:0 .5em;border-radius:3px;color:#fff;font-size:.9em}\
.reason{color:#555;font-size:.85em;max-width:32em}";

fn summary_table(h: &mut String, s: &Summary) {
    let ci = s.solve_rate_ci95.map_or_else(String::new, |(lo, hi)| {
        format!(" <span class=\"ci\">(95% CI {} – {})</span>", percent(lo), percent(hi))
    });
    let per_solved = s.cost_per_solved_micros.map_or_else(|| "n/a (none solved)".to_owned(), usd);
    let rows = [
        ("Solve rate", format!("{} ({} / {}){ci}", percent(s.solve_rate), s.solved, s.tasks)),
        ("Cost", format!("{} total", usd(s.cost_micros))),
        ("Cost per task", usd(s.cost_per_task_micros)),
        ("Cost per solved task", per_solved),
        (
            "Time per task",
            format!("p50 {} · p90 {}", seconds(s.wall_p50_ms), seconds(s.wall_p90_ms)),
        ),
        (
            "Tokens",
            format!(
                "{} in ({} cached) · {} out · {} thinking · {} model calls",
                s.tokens.input, s.tokens.cached, s.tokens.output, s.tokens.thinking, s.model_calls
            ),
        ),
    ];
    h.push_str("<table id=\"summary\">\n");
    for (label, value) in rows {
        let _ = writeln!(h, "<tr><td>{label}</td><td>{value}</td></tr>");
    }
    h.push_str("</table>\n");
}

fn chart(h: &mut String, title: &str, svg: &str) {
    let _ = writeln!(h, "<div class=\"chart\"><h2>{title}</h2>\n{svg}</div>");
}

/// A bar from 0 to 100%, filled to the rate, with the interval as a whisker.
fn solve_rate_svg(s: &Summary) -> String {
    let (w, x0, bar) = (370.0, 14.0, 330.0);
    let at = |f: f64| x0 + bar * f.clamp(0.0, 1.0);
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"70\" role=\"img\" aria-label=\"solve rate {}\">",
        percent(s.solve_rate)
    );
    let _ = write!(svg, "<rect x=\"{x0}\" y=\"12\" width=\"{bar}\" height=\"22\" fill=\"#eee\"/>");
    let _ = write!(
        svg,
        "<rect x=\"{x0}\" y=\"12\" width=\"{:.1}\" height=\"22\" fill=\"{}\"/>",
        at(s.solve_rate) - x0,
        Outcome::Solved.colour()
    );
    if let Some((lo, hi)) = s.solve_rate_ci95 {
        let (a, b) = (at(lo), at(hi));
        let _ = write!(
            svg,
            "<g stroke=\"#222\" stroke-width=\"1.5\"><line x1=\"{a:.1}\" y1=\"23\" x2=\"{b:.1}\" y2=\"23\"/><line x1=\"{a:.1}\" y1=\"16\" x2=\"{a:.1}\" y2=\"30\"/><line x1=\"{b:.1}\" y1=\"16\" x2=\"{b:.1}\" y2=\"30\"/></g>"
        );
    }
    for (f, label) in [(0.0, "0%"), (0.5, "50%"), (1.0, "100%")] {
        let _ = write!(
            svg,
            "<text x=\"{:.1}\" y=\"50\" font-size=\"11\" text-anchor=\"middle\">{label}</text>",
            at(f)
        );
    }
    let _ = write!(
        svg,
        "<text x=\"{x0}\" y=\"66\" font-size=\"11\">{} solved; bar 95% Wilson interval</text></svg>",
        percent(s.solve_rate)
    );
    svg
}

/// One horizontal bar per outcome category.
fn outcomes_svg(s: &Summary) -> String {
    let rows = Outcome::ALL.len();
    let height = 18 * rows + 10;
    let max = s.outcomes.iter().map(|&(_, n)| n).max().unwrap_or(0).max(1);
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"360\" height=\"{height}\" role=\"img\" aria-label=\"outcomes\">"
    );
    for (i, outcome) in Outcome::ALL.iter().enumerate() {
        let n = s.outcomes.iter().find(|(o, _)| o == outcome).map_or(0, |&(_, n)| n);
        let y = 5 + 18 * i;
        #[allow(clippy::cast_precision_loss)]
        let width = 220.0 * n as f64 / max as f64;
        let _ = write!(
            svg,
            "<text x=\"0\" y=\"{}\" font-size=\"11\">{}</text><rect x=\"95\" y=\"{y}\" width=\"{width:.1}\" height=\"13\" fill=\"{}\"/><text x=\"{:.1}\" y=\"{}\" font-size=\"11\">{n}</text>",
            y + 11,
            outcome.name(),
            outcome.colour(),
            100.0 + width,
            y + 11
        );
    }
    svg.push_str("</svg>");
    svg
}

/// A histogram of `values` in [`BINS`] equal bins, each labelled with its upper bound.
fn histogram_svg(values: &[u64], label: impl Fn(f64) -> String) -> String {
    let bins = stats::histogram(values, BINS);
    let max = bins.iter().map(|&(_, n)| n).max().unwrap_or(0).max(1);
    let (plot_h, bar_w, x0) = (110.0, 40.0, 24.0);
    let width = x0 + bar_w * bins.len() as f64 + 10.0;
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"160\" role=\"img\" aria-label=\"histogram\">"
    );
    let _ = write!(
        svg,
        "<line x1=\"{x0}\" y1=\"{}\" x2=\"{:.1}\" y2=\"{}\" stroke=\"#888\"/><text x=\"0\" y=\"14\" font-size=\"10\">{max}</text><text x=\"0\" y=\"{}\" font-size=\"10\">0</text>",
        plot_h + 10.0,
        width - 10.0,
        plot_h + 10.0,
        plot_h + 10.0
    );
    for (i, (upper, n)) in bins.iter().enumerate() {
        #[allow(clippy::cast_precision_loss)]
        let (x, h) = (x0 + bar_w * i as f64, plot_h * *n as f64 / max as f64);
        let _ = write!(
            svg,
            "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{h:.1}\" fill=\"#5c6bc0\"><title>≤ {}: {n}</title></rect>",
            x + 2.0,
            plot_h + 10.0 - h,
            bar_w - 4.0,
            escape(&label(*upper))
        );
        if i % 2 == 1 || bins.len() <= 4 {
            let _ = write!(
                svg,
                "<text x=\"{:.1}\" y=\"{}\" font-size=\"9\" text-anchor=\"end\">{}</text>",
                x + bar_w,
                plot_h + 24.0,
                escape(&label(*upper))
            );
        }
    }
    let _ = write!(
        svg,
        "<text x=\"{x0}\" y=\"152\" font-size=\"10\">tasks per bin, {} tasks</text></svg>",
        values.len()
    );
    svg
}

fn task_table(h: &mut String, results: &[TaskResult]) {
    h.push_str(
        "<h2>Tasks</h2>\n<table id=\"tasks\">\n<tr><th>task</th><th>outcome</th><th class=\"n\">cost</th><th class=\"n\">time</th><th class=\"n\">calls</th><th class=\"n\">rounds</th><th class=\"n\">tokens in / out</th><th>trajectory</th></tr>\n",
    );
    for r in results {
        let reason = r
            .reason
            .as_deref()
            .map(|text| format!("<div class=\"reason\">{}</div>", escape(&clip(text, 300))))
            .unwrap_or_default();
        let trajectory = match &r.trajectory.cadre_task {
            // The whole id: task ids are time-ordered, so tasks of one run share their first digits.
            Some(id) => format!(
                "<code>cadre --home {} show {}</code>",
                escape(&r.trajectory.home),
                escape(id)
            ),
            None => "none".to_owned(),
        };
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td><span class=\"badge\" style=\"background:{}\">{}</span>{reason}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{} / {}</td><td>{trajectory}</td></tr>",
            escape(&r.task),
            r.outcome.colour(),
            r.outcome.name(),
            usd(r.cost_micros),
            seconds(r.wall_ms),
            r.model_calls,
            r.rounds,
            r.tokens.input,
            r.tokens.output + r.tokens.thinking
        );
    }
    h.push_str("</table>\n");
}

/// At most `max` characters of `text`, with an ellipsis when cut.
fn clip(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_owned()
    } else {
        let mut cut: String = text.chars().take(max).collect();
        cut.push('…');
        cut
    }
}

/// Text made safe inside HTML elements and attribute values.
#[must_use]
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}
