//! The harness's transcript as the store holds it: one record per turn, and the compaction that keeps a
//! long loop within the model's context.
//!
//! Why one record per turn: the engine commits each turn's record with the turn's events under the
//! turn's idempotency key, so the transcript in the store is always exactly the committed turns, and a
//! crash repeats only the turn in flight (on a fresh checkout of the previous turn's patch, so an edit
//! is never applied twice).

use cadre_domain::ports::model::{estimate_input_tokens, ChatMessage, ModelRequest, Role};
use serde::{Deserialize, Serialize};
use std::fmt::Write;

/// Estimated input tokens above which old turns are compacted into a summary.
pub const COMPACT_AT_TOKENS: u64 = 48_000;
/// Messages kept verbatim at the end of a compacted transcript.
pub const KEEP_RECENT: usize = 8;

/// What one turn added and left behind.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TurnRecord {
    /// Messages the turn added to the transcript, in order (turn 1 starts with the opening message).
    pub messages: Vec<ChatMessage>,
    /// The cumulative diff against the base commit after the turn.
    pub patch: String,
    /// Facts that outlive compaction: test results, refused edits ("tried X, it failed because Y").
    #[serde(default)]
    pub notes: Vec<String>,
    /// The summary the model gave when it called `finish`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished: Option<String>,
    /// Consecutive turns, ending with this one, in which the model made no usable tool call.
    #[serde(default)]
    pub failed_in_a_row: u32,
    /// The test runs of this turn, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub test_runs: Vec<TestRun>,
}

/// One `run_tests` call: enough to show a failing test going to passing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TestRun {
    /// Whether the suite passed.
    pub passed: bool,
    /// "3 passed, 1 failed (exit code 1)".
    pub summary: String,
    /// The failing tests' names.
    pub failing: Vec<String>,
}

/// A test the agent saw fail and then pass: the evidence that the change fixes what the goal describes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reproduction {
    /// The test.
    pub test: String,
    /// The turn where it first failed.
    pub failed_in_turn: u32,
    /// The turn of the last run, where it (and the rest of the suite) passed.
    pub passed_in_turn: u32,
}

/// Tests that failed in some run and passed in the last run, when the last run passed: what "reproduce
/// first, then fix" looks like in the record. Empty when the agent never saw a test fail, or never saw
/// the suite pass at the end.
#[must_use]
pub fn reproductions(records: &[TurnRecord]) -> Vec<Reproduction> {
    let runs: Vec<(u32, &TestRun)> = records
        .iter()
        .enumerate()
        .flat_map(|(i, r)| {
            r.test_runs.iter().map(move |t| (u32::try_from(i + 1).unwrap_or(u32::MAX), t))
        })
        .collect();
    let Some((last_turn, last)) = runs.last() else { return Vec::new() };
    if !last.passed {
        return Vec::new();
    }
    let mut out: Vec<Reproduction> = Vec::new();
    for (turn, run) in &runs {
        for test in &run.failing {
            if !out.iter().any(|r| &r.test == test) {
                out.push(Reproduction {
                    test: test.clone(),
                    failed_in_turn: *turn,
                    passed_in_turn: *last_turn,
                });
            }
        }
    }
    out
}

/// The conversation to send: every committed turn's messages, compacted when they grow too long.
#[must_use]
pub fn conversation(records: &[TurnRecord], probe: &ModelRequest) -> Vec<ChatMessage> {
    let messages: Vec<ChatMessage> = records.iter().flat_map(|r| r.messages.clone()).collect();
    let request = ModelRequest { messages: messages.clone(), ..probe.clone() };
    if estimate_input_tokens(&request) <= COMPACT_AT_TOKENS {
        return messages;
    }
    let notes: Vec<&String> = records.iter().flat_map(|r| &r.notes).collect();
    compact(&messages, &notes)
}

/// Keeps the opening message and the last [`KEEP_RECENT`] messages (starting at a model turn, so every
/// tool result still follows its call), and replaces the middle by a summary of the calls made and the
/// notes; the summary joins the opening message so user and model turns still alternate.
#[must_use]
pub fn compact(messages: &[ChatMessage], notes: &[&String]) -> Vec<ChatMessage> {
    if messages.len() <= KEEP_RECENT + 1 {
        return messages.to_vec();
    }
    let mut keep_from = messages.len() - KEEP_RECENT;
    while keep_from < messages.len() && messages[keep_from].role != Role::Model {
        keep_from += 1;
    }
    if keep_from <= 1 || keep_from >= messages.len() {
        return messages.to_vec();
    }
    let mut summary = String::from("\n\n# Progress so far (older turns, summarised)\n");
    for m in &messages[1..keep_from] {
        for call in &m.tool_calls {
            let args = call.args.to_string();
            let args: String = args.chars().take(120).collect();
            let _ = writeln!(summary, "- called {} {args}", call.name);
        }
    }
    if !notes.is_empty() {
        summary.push_str("\n# Notes\n");
        for note in notes {
            let _ = writeln!(summary, "- {note}");
        }
    }
    summary.push_str(
        "\nThe working copy holds every edit made so far; read files again before editing them.\n",
    );
    let mut opening = messages[0].clone();
    opening.text.push_str(&summary);
    let mut out = vec![opening];
    out.extend_from_slice(&messages[keep_from..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use cadre_domain::ports::model::{ToolCall, ToolResult};
    use serde_json::json;

    fn call_turn(i: usize) -> [ChatMessage; 2] {
        let call = ToolCall {
            id: None,
            name: "read_file".into(),
            args: json!({"path": format!("f{i}.py")}),
            thought_signature: Some(format!("sig{i}")),
        };
        let model =
            ChatMessage { role: Role::Model, tool_calls: vec![call], ..ChatMessage::default() };
        let result = ToolResult {
            id: None,
            name: "read_file".into(),
            response: json!({"content": "x".repeat(40_000)}),
        };
        [model, ChatMessage::tool_results(vec![result])]
    }

    #[test]
    fn long_transcripts_keep_the_opening_the_recent_turns_and_a_summary_of_the_rest() {
        let mut messages = vec![ChatMessage::user("# Goal\nfix it")];
        for i in 0..10 {
            messages.extend(call_turn(i));
        }
        let note = "run_tests: 1 passed, 1 failed".to_owned();
        let out = compact(&messages, &[&note]);
        assert_eq!(out.len(), 1 + KEEP_RECENT);
        assert!(out[0].text.starts_with("# Goal\nfix it"));
        assert!(out[0].text.contains("called read_file {\"path\":\"f0.py\"}"), "{}", out[0].text);
        assert!(out[0].text.contains("run_tests: 1 passed, 1 failed"));
        assert_eq!(out[1].role, Role::Model, "the kept tail starts at a call");
        assert_eq!(out[1].tool_calls[0].thought_signature.as_deref(), Some("sig6"));
        assert_eq!(out.last(), messages.last());
    }

    #[test]
    fn a_test_that_failed_and_passes_at_the_end_is_a_reproduction() {
        let run = |passed: bool, failing: &[&str]| TestRun {
            passed,
            summary: String::new(),
            failing: failing.iter().map(|s| (*s).to_owned()).collect(),
        };
        let turn = |runs: Vec<TestRun>| TurnRecord { test_runs: runs, ..TurnRecord::default() };
        let records = vec![
            turn(vec![]),
            turn(vec![run(false, &["test_sum"])]),
            turn(vec![run(false, &["test_sum", "test_other"])]),
            turn(vec![run(true, &[])]),
        ];
        let found = reproductions(&records);
        assert_eq!(
            found,
            vec![
                Reproduction { test: "test_sum".into(), failed_in_turn: 2, passed_in_turn: 4 },
                Reproduction { test: "test_other".into(), failed_in_turn: 3, passed_in_turn: 4 },
            ]
        );
        // Never passing at the end proves nothing.
        assert!(reproductions(&records[..3]).is_empty());
    }

    #[test]
    fn short_transcripts_are_sent_whole() {
        let records =
            vec![TurnRecord { messages: vec![ChatMessage::user("hi")], ..TurnRecord::default() }];
        let probe = ModelRequest::new("generate", "system", Vec::new());
        assert_eq!(conversation(&records, &probe), vec![ChatMessage::user("hi")]);
    }
}
