//! An in-memory `Agents`: each task walks a scripted event log, one event per `snapshot`, so a test
//! sees the same sequence a real task produces (index, plan, a tool-using turn, patch, tests, review)
//! without a model, a store or a sandbox. Shared by the tests and the benchmark.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use cadre_acp::{Agents, AgentsError, Proposal, TaskSnapshot};
use cadre_domain::event::EventRecord;
use cadre_domain::ports::model::TokenUsage;
use cadre_domain::{
    CommitId, Event, Plan, PlanItem, StepKind, Task, TaskId, TaskSettings, TaskState, Timestamp,
};

/// How a scripted task ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(dead_code)]
pub(crate) enum Ending {
    /// Proposes `PATCH` for review.
    Review,
    /// Fails in the test step.
    Fails,
    /// Runs out of budget while generating.
    Budget,
}

/// The change every reviewed task proposes: `add` subtracts in `calc.py`; make it add.
pub(crate) const PATCH: &str = "diff --git a/calc.py b/calc.py
--- a/calc.py
+++ b/calc.py
@@ -1,2 +1,2 @@
 def add(a, b):
-    return a - b
+    return a + b
";

/// `calc.py` at the task's base commit.
pub(crate) const CALC: &str = "def add(a, b):\n    return a - b\n";

struct FakeTask {
    task: Task,
    script: Vec<Event>,
    events: Vec<EventRecord>,
}

#[derive(Default)]
struct State {
    tasks: HashMap<TaskId, FakeTask>,
    /// Calls worth asserting on: `start`, `cancel`, `accept`, `reject`.
    calls: Vec<String>,
}

/// The scripted agents.
pub(crate) struct FakeAgents {
    state: Mutex<State>,
    /// Directories accepted as repositories.
    repos: Vec<PathBuf>,
    ending: Ending,
    /// Tasks stop advancing after this many events (to cancel one mid-task, or close the editor).
    hold_at: Mutex<Option<usize>>,
}

#[allow(dead_code)]
impl FakeAgents {
    pub(crate) fn new(repo: &Path) -> FakeAgents {
        FakeAgents {
            state: Mutex::default(),
            repos: vec![repo.to_path_buf()],
            ending: Ending::Review,
            hold_at: Mutex::new(None),
        }
    }

    pub(crate) fn ending(mut self, ending: Ending) -> FakeAgents {
        self.ending = ending;
        self
    }

    /// Tasks stop after `n` events until [`FakeAgents::release`].
    pub(crate) fn hold_at(self, n: usize) -> FakeAgents {
        *self.hold_at.lock().unwrap() = Some(n);
        self
    }

    pub(crate) fn release(&self) {
        *self.hold_at.lock().unwrap() = None;
    }

    pub(crate) fn calls(&self) -> Vec<String> {
        self.state.lock().unwrap().calls.clone()
    }

    pub(crate) fn tasks(&self) -> Vec<TaskId> {
        self.state.lock().unwrap().tasks.keys().cloned().collect()
    }

    pub(crate) fn state_of(&self, task: &TaskId) -> TaskState {
        let state = self.state.lock().unwrap();
        TaskState::fold(&state.tasks[task].events)
    }

    fn script(&self, task: &Task) -> Vec<Event> {
        let usage = TokenUsage { input: 100, output: 20, cached: 0, thinking: 0 };
        let started = |step, round| Event::StepStarted { step, round, attempt: 1 };
        let mut script = vec![
            Event::Created { task: task.clone() },
            started(StepKind::Index, 0),
            Event::Indexed { files: 2, chunks: 3, parsed: 2, elapsed_ms: 4, note: None },
            started(StepKind::Plan, 0),
            Event::PlanReady { summary: "make add() add".into(), items: 1, usage },
            started(StepKind::Generate, 1),
            Event::AgentTurn {
                round: 1,
                turn: 1,
                calls: vec![
                    "search_code add".into(),
                    "read_file calc.py".into(),
                    "edit calc.py".into(),
                ],
                usage,
            },
        ];
        match self.ending {
            Ending::Budget => script.push(Event::BudgetExhausted {
                step: StepKind::Generate,
                round: 1,
                spent_micros: 2_000_000,
                limit_micros: 2_000_000,
                team: None,
            }),
            Ending::Review | Ending::Fails => {
                script.push(Event::PatchReady {
                    round: 1,
                    files_changed: vec!["calc.py".into()],
                    lines_added: 1,
                    lines_removed: 1,
                    usage,
                });
                script.push(started(StepKind::Test, 1));
                if self.ending == Ending::Fails {
                    script.push(Event::Failed {
                        step: Some(StepKind::Test),
                        reason: "the test command crashed".into(),
                    });
                } else {
                    script.push(Event::TestsFinished {
                        round: 1,
                        passed: true,
                        summary: "1 passed".into(),
                    });
                    script.push(Event::AwaitingReview { round: 1 });
                }
            }
        }
        script
    }

    fn append(task: &mut FakeTask, event: Event) {
        let seq = task.events.len() as u64 + 1;
        task.events.push(EventRecord { seq, at: Timestamp(seq as i64), event });
    }

    fn unknown(task: &TaskId) -> AgentsError {
        AgentsError::Refused(format!("no task {}", task.short()))
    }
}

#[cadre_acp::async_trait]
impl Agents for FakeAgents {
    async fn check(&self) -> Vec<String> {
        Vec::new()
    }

    async fn repository(&self, dir: &Path) -> Result<PathBuf, AgentsError> {
        self.repos.iter().find(|r| dir.starts_with(r)).cloned().ok_or_else(|| {
            AgentsError::Refused(format!("{} is not in a git repository", dir.display()))
        })
    }

    async fn start(&self, goal: String, repo: &Path) -> Result<TaskId, AgentsError> {
        let task = Task {
            id: TaskId::generate(),
            repo: repo.display().to_string(),
            goal,
            base_commit: CommitId::parse("0123456789abcdef0123456789abcdef01234567").unwrap(),
            settings: TaskSettings { budget_micros: Some(2_000_000), ..TaskSettings::default() },
            created_at: Timestamp(0),
        };
        let script = self.script(&task);
        let mut fake = FakeTask { task: task.clone(), script, events: Vec::new() };
        let first = fake.script.remove(0);
        Self::append(&mut fake, first);
        let mut state = self.state.lock().unwrap();
        state.calls.push(format!("start {}", task.goal));
        state.tasks.insert(task.id.clone(), fake);
        Ok(task.id)
    }

    async fn snapshot(&self, task: &TaskId, after_seq: u64) -> Result<TaskSnapshot, AgentsError> {
        let hold = *self.hold_at.lock().unwrap();
        let mut state = self.state.lock().unwrap();
        let fake = state.tasks.get_mut(task).ok_or_else(|| Self::unknown(task))?;
        let running = !TaskState::fold(&fake.events).is_terminal();
        if running && !fake.script.is_empty() && hold.is_none_or(|n| fake.events.len() < n) {
            let next = fake.script.remove(0);
            Self::append(fake, next);
        }
        let events: Vec<EventRecord> =
            fake.events.iter().filter(|r| r.seq > after_seq).cloned().collect();
        Ok(TaskSnapshot {
            task: fake.task.clone(),
            state: TaskState::fold(&fake.events),
            events,
            cost_micros: Some(1_234),
        })
    }

    async fn cancel(
        &self,
        task: &TaskId,
        _reason: Option<String>,
    ) -> Result<(TaskState, bool), AgentsError> {
        let mut state = self.state.lock().unwrap();
        state.calls.push(format!("cancel {}", task.short()));
        let fake = state.tasks.get_mut(task).ok_or_else(|| Self::unknown(task))?;
        let now = TaskState::fold(&fake.events);
        if now.is_terminal() {
            return Ok((now, false));
        }
        Self::append(fake, Event::Cancelled { reason: Some("cancelled from the editor".into()) });
        Ok((TaskState::Cancelled, true))
    }

    async fn plan(&self, task: &TaskId) -> Result<Option<Plan>, AgentsError> {
        let state = self.state.lock().unwrap();
        let fake = state.tasks.get(task).ok_or_else(|| Self::unknown(task))?;
        let planned = fake.events.iter().any(|r| matches!(r.event, Event::PlanReady { .. }));
        Ok(planned.then(|| Plan {
            summary: "make add() add".into(),
            steps: vec![PlanItem {
                description: "return a + b in add()".into(),
                files: vec!["calc.py".into()],
            }],
            acceptance_criteria: vec!["test_add passes".into()],
        }))
    }

    async fn proposal(&self, task: &TaskId) -> Result<Proposal, AgentsError> {
        let state = self.state.lock().unwrap();
        let fake = state.tasks.get(task).ok_or_else(|| Self::unknown(task))?;
        match TaskState::fold(&fake.events) {
            TaskState::AwaitingReview { round } => {
                Ok(Proposal { round, repo: PathBuf::from(&fake.task.repo), patch: PATCH.into() })
            }
            other => Err(AgentsError::Refused(format!("task is {other}, not awaiting review"))),
        }
    }

    async fn accept(&self, task: &TaskId, round: u32) -> Result<(), AgentsError> {
        let mut state = self.state.lock().unwrap();
        state.calls.push(format!("accept {} r{round}", task.short()));
        let fake = state.tasks.get_mut(task).ok_or_else(|| Self::unknown(task))?;
        Self::append(fake, Event::Applied { round });
        Ok(())
    }

    async fn reject(&self, task: &TaskId, reason: Option<String>) -> Result<(), AgentsError> {
        let mut state = self.state.lock().unwrap();
        state.calls.push(format!("reject {}", task.short()));
        let fake = state.tasks.get_mut(task).ok_or_else(|| Self::unknown(task))?;
        Self::append(fake, Event::Rejected { reason });
        Ok(())
    }

    async fn resolve(&self, text: &str) -> Result<TaskId, AgentsError> {
        let state = self.state.lock().unwrap();
        let found: Vec<&TaskId> =
            state.tasks.keys().filter(|id| id.as_str().starts_with(text)).collect();
        match found.as_slice() {
            [one] => Ok((*one).clone()),
            _ => Err(AgentsError::Refused(format!("no single task matches {text}"))),
        }
    }

    async fn shutdown(&self) {}
}
