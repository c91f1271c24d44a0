//! A task's events as ACP `session/update`s: the pipeline as plan entries whose status follows the
//! steps, every tool call of the task as a `tool_call` (or a `tool_call_update` of one already
//! shown), and the step summaries, with cost and budget, as agent message chunks.
//!
//! Pure translation: the same events always give the same updates, so a live prompt turn and a
//! `session/load` replay show the same history.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use agent_client_protocol::v1::schema as acp;
use cadre_domain::event::{micros_to_usd, Event, EventRecord};
use cadre_domain::{Plan, StepKind, Task, TaskId};

/// Where each stage of the pipeline is, and what the client was last shown.
#[derive(Debug)]
pub(crate) struct Progress {
    task: TaskId,
    repo: PathBuf,
    /// The budget in force, in micro-dollars (raised by `BudgetRaised`).
    budget: Option<u64>,
    index: acp::PlanEntryStatus,
    planning: acp::PlanEntryStatus,
    write: acp::PlanEntryStatus,
    test: acp::PlanEntryStatus,
    review: acp::PlanEntryStatus,
    /// The plan's steps, once planned; "Write the change" stands for them before.
    steps: Vec<String>,
    /// Tool calls shown as in progress, to be finished by an update rather than shown again.
    open: HashSet<String>,
    /// The entries last sent, so an unchanged plan is not sent again.
    sent: Option<Vec<acp::PlanEntry>>,
}

impl Progress {
    pub(crate) fn new(task: &Task) -> Progress {
        use acp::PlanEntryStatus::Pending;
        Progress {
            task: task.id.clone(),
            repo: PathBuf::from(&task.repo),
            budget: task.settings.budget_micros,
            index: Pending,
            planning: Pending,
            write: Pending,
            test: Pending,
            review: Pending,
            steps: Vec::new(),
            open: HashSet::new(),
            sent: None,
        }
    }

    /// The plan's steps become plan entries.
    pub(crate) fn set_plan(&mut self, plan: &Plan) {
        self.steps = plan
            .steps
            .iter()
            .map(|s| {
                if s.files.is_empty() {
                    s.description.clone()
                } else {
                    format!("{} ({})", s.description, s.files.join(", "))
                }
            })
            .collect();
    }

    /// Spend so far and the budget, for a message: ` · $0.0123 of $2.0000 budget`.
    pub(crate) fn money(&self, cost_micros: Option<u64>) -> String {
        match (cost_micros, self.budget) {
            (Some(cost), Some(budget)) => format!(
                " · ${:.4} spent of ${:.4} budget",
                micros_to_usd(cost),
                micros_to_usd(budget)
            ),
            (Some(cost), None) => format!(" · ${:.4} spent", micros_to_usd(cost)),
            (None, Some(budget)) => format!(" · budget ${:.4}", micros_to_usd(budget)),
            (None, None) => String::new(),
        }
    }

    /// The updates one event makes: the plan first when it changed, then tool calls and messages.
    pub(crate) fn on_event(
        &mut self,
        record: &EventRecord,
        cost_micros: Option<u64>,
    ) -> Vec<acp::SessionUpdate> {
        use acp::PlanEntryStatus::{Completed, InProgress, Pending};
        let mut out = Vec::new();
        let id = self.task.as_str().to_owned();
        match &record.event {
            Event::Created { .. } | Event::StepStarted { step: StepKind::Review, .. } => {}
            Event::StepStarted { step: StepKind::Index, .. } => {
                self.index = InProgress;
                out.push(self.start_call(
                    format!("{id}:index"),
                    "Index the repository".into(),
                    acp::ToolKind::Search,
                ));
            }
            Event::StepStarted { step: StepKind::Plan, .. } => {
                self.index = Completed;
                self.planning = InProgress;
            }
            Event::StepStarted { step: StepKind::Generate, .. } => {
                self.planning = Completed;
                self.write = InProgress;
            }
            Event::StepStarted { step: StepKind::Test, round, .. } => {
                self.test = InProgress;
                out.push(self.start_call(
                    format!("{id}:test:r{round}"),
                    format!("Run the tests (round {round})"),
                    acp::ToolKind::Execute,
                ));
            }
            Event::StepRetrying { .. }
            | Event::BudgetExhausted { .. }
            | Event::Cancelled { .. } => {
                out.push(message(format!(
                    "{}{}\n",
                    record.event.describe(),
                    self.money(cost_micros)
                )));
            }
            Event::Indexed { .. } => {
                self.index = Completed;
                out.push(self.finish_call(
                    format!("{id}:index"),
                    "Index the repository".into(),
                    acp::ToolKind::Search,
                    acp::ToolCallStatus::Completed,
                    record.event.describe(),
                ));
            }
            Event::PlanReady { summary, usage, .. } => {
                self.index = Completed;
                self.planning = Completed;
                let mut text = format!("Plan: {summary}\n");
                for (n, step) in self.steps.iter().enumerate() {
                    text.push_str(&format!("{}. {step}\n", n + 1));
                }
                text.push_str(&format!("({} tokens{})\n", usage.total(), self.money(cost_micros)));
                out.push(message(text));
            }
            Event::AgentTurn { round, turn, calls, .. } => {
                self.write = InProgress;
                for (n, call) in calls.iter().enumerate() {
                    out.push(self.agent_call(format!("{id}:r{round}:t{turn}:{n}"), call));
                }
            }
            Event::PatchReady { round, files_changed, lines_added, lines_removed, .. } => {
                self.write = Completed;
                let call = acp::ToolCall::new(
                    format!("{id}:patch:r{round}"),
                    format!(
                        "Edit {} file(s) (+{lines_added} -{lines_removed}), round {round}",
                        files_changed.len()
                    ),
                )
                .kind(acp::ToolKind::Edit)
                .status(acp::ToolCallStatus::Completed)
                .content(vec![acp::ContentBlock::from(record.event.describe()).into()])
                .locations(
                    files_changed.iter().map(|f| acp::ToolCallLocation::new(self.at(f))).collect(),
                );
                out.push(acp::SessionUpdate::ToolCall(call));
            }
            Event::TestsFinished { round, passed, .. } => {
                let status = if *passed {
                    self.test = Completed;
                    acp::ToolCallStatus::Completed
                } else {
                    self.test = Pending;
                    self.write = InProgress;
                    acp::ToolCallStatus::Failed
                };
                out.push(self.finish_call(
                    format!("{id}:test:r{round}"),
                    format!("Run the tests (round {round})"),
                    acp::ToolKind::Execute,
                    status,
                    record.event.describe(),
                ));
                out.push(message(format!(
                    "{}{}\n",
                    record.event.describe(),
                    self.money(cost_micros)
                )));
            }
            Event::Scanned { round, .. } => {
                let call =
                    acp::ToolCall::new(format!("{id}:scan:r{round}"), record.event.describe())
                        .kind(acp::ToolKind::Other)
                        .status(acp::ToolCallStatus::Completed);
                out.push(acp::SessionUpdate::ToolCall(call));
            }
            Event::AwaitingReview { round } => {
                self.write = Completed;
                self.test = Completed;
                self.review = InProgress;
                out.push(message(format!(
                    "The change of round {round} is ready for review{}\n",
                    self.money(cost_micros)
                )));
            }
            Event::Applied { .. } => {
                self.review = Completed;
                out.push(message(format!("{}\n", record.event.describe())));
            }
            Event::Rejected { .. } | Event::Failed { .. } => {
                out.push(message(format!(
                    "{}{}\n",
                    record.event.describe(),
                    self.money(cost_micros)
                )));
            }
            Event::Candidate { candidate, event } => {
                match event.as_ref() {
                    // Candidates run side by side; each one's tool calls are shown under its number.
                    Event::AgentTurn { round, turn, calls, .. } => {
                        self.write = InProgress;
                        for (n, call) in calls.iter().enumerate() {
                            out.push(self.agent_call(
                                format!("{id}:c{candidate}:r{round}:t{turn}:{n}"),
                                call,
                            ));
                        }
                    }
                    _ => out.push(message(format!("{}\n", record.event.describe()))),
                }
            }
            Event::CandidatesRanked { .. } => {
                out.push(message(format!(
                    "{}{}\n",
                    record.event.describe(),
                    self.money(cost_micros)
                )));
            }
            Event::BudgetRaised { limit_micros } => {
                self.budget = Some(*limit_micros);
                out.push(message(format!("{}\n", record.event.describe())));
            }
        }
        if let Some(plan) = self.plan_update() {
            out.insert(0, plan);
        }
        out
    }

    /// The plan, when its entries changed since last sent.
    fn plan_update(&mut self) -> Option<acp::SessionUpdate> {
        use acp::PlanEntryPriority::{High, Medium};
        let entry = |text: &str, status: &acp::PlanEntryStatus, priority| {
            acp::PlanEntry::new(text, priority, status.clone())
        };
        let mut entries = vec![
            entry("Index the repository", &self.index, Medium),
            entry("Plan the change", &self.planning, Medium),
        ];
        if self.steps.is_empty() {
            entries.push(entry("Write the change", &self.write, High));
        } else {
            entries.extend(self.steps.iter().map(|s| entry(s, &self.write, High)));
        }
        entries.push(entry("Run the tests", &self.test, Medium));
        entries.push(entry("Propose the change for review", &self.review, Medium));
        if self.sent.as_ref() == Some(&entries) {
            return None;
        }
        self.sent = Some(entries.clone());
        Some(acp::SessionUpdate::Plan(acp::Plan::new(entries)))
    }

    fn at(&self, relative: &str) -> PathBuf {
        self.repo.join(relative)
    }

    fn start_call(&mut self, id: String, title: String, kind: acp::ToolKind) -> acp::SessionUpdate {
        self.open.insert(id.clone());
        acp::SessionUpdate::ToolCall(
            acp::ToolCall::new(id, title).kind(kind).status(acp::ToolCallStatus::InProgress),
        )
    }

    /// Finishes a call shown as in progress, or shows it finished when it never was (a replay that
    /// starts mid-task, a step started by another process).
    fn finish_call(
        &mut self,
        id: String,
        title: String,
        kind: acp::ToolKind,
        status: acp::ToolCallStatus,
        text: String,
    ) -> acp::SessionUpdate {
        let content = vec![acp::ContentBlock::from(text).into()];
        if self.open.remove(&id) {
            acp::SessionUpdate::ToolCallUpdate(acp::ToolCallUpdate::new(
                id,
                acp::ToolCallUpdateFields::new().status(status).content(content),
            ))
        } else {
            acp::SessionUpdate::ToolCall(
                acp::ToolCall::new(id, title).kind(kind).status(status).content(content),
            )
        }
    }

    /// One call of the tool-using harness, e.g. `read_file calc.py` or `edit calc.py: refused (not
    /// found)`.
    fn agent_call(&self, id: String, line: &str) -> acp::SessionUpdate {
        let mut words = line.split_whitespace();
        let tool = words.next().unwrap_or("");
        let kind = match tool {
            "search_code" | "find_definition" | "find_references" => acp::ToolKind::Search,
            "read_file" | "list_dir" => acp::ToolKind::Read,
            "edit" => acp::ToolKind::Edit,
            "run_tests" | "run" => acp::ToolKind::Execute,
            "finish" => acp::ToolKind::Think,
            _ => acp::ToolKind::Other,
        };
        let failed = line.contains("refused") || line.contains("failed") || line.contains("error");
        let status =
            if failed { acp::ToolCallStatus::Failed } else { acp::ToolCallStatus::Completed };
        let mut call = acp::ToolCall::new(id, line)
            .kind(kind)
            .status(status)
            .content(vec![acp::ContentBlock::from(line.to_owned()).into()]);
        if matches!(kind, acp::ToolKind::Read | acp::ToolKind::Edit) {
            if let Some(path) = words.next().map(|w| w.trim_end_matches([':', ','])) {
                if is_relative_path(path) {
                    call = call.locations(vec![acp::ToolCallLocation::new(self.at(path))]);
                }
            }
        }
        acp::SessionUpdate::ToolCall(call)
    }
}

fn is_relative_path(text: &str) -> bool {
    !text.is_empty() && !Path::new(text).is_absolute() && !text.contains("..")
}

/// An agent message chunk of plain text.
pub(crate) fn message(text: String) -> acp::SessionUpdate {
    acp::SessionUpdate::AgentMessageChunk(acp::ContentChunk::new(acp::ContentBlock::from(text)))
}
