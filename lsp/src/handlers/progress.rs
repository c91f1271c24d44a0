//! Following a task: `$/progress` work-done reports from its events (plan → generate → test rounds →
//! ready, with the cost so far), diagnostics for its failing tests, and the summary when it is ready.
//!
//! Each followed task has one tokio task polling [`Agents::snapshot`](crate::agents::Agents::snapshot).
//! A follower that fails ends its progress with the reason; it never takes the server down.

use std::sync::Arc;

use cadre_domain::event::Event;
use cadre_domain::{TaskId, TaskState};
use tower_lsp::lsp_types::notification::Progress;
use tower_lsp::lsp_types::request::{ShowDocument, WorkDoneProgressCreate};
use tower_lsp::lsp_types::{
    MessageType, NumberOrString, ProgressParams, ProgressParamsValue, ShowDocumentParams, Url,
    WorkDoneProgress, WorkDoneProgressBegin, WorkDoneProgressCreateParams, WorkDoneProgressEnd,
    WorkDoneProgressReport,
};

use crate::agents::{AgentsError, Intent, Proposal};
use crate::state::{lock, State, Tracked};
use crate::to_proto;

/// Asks the client for a progress token for `task`; `None` when it shows no progress.
pub(crate) async fn create_token(state: &State, task: &TaskId) -> Option<NumberOrString> {
    if !state.caps().work_done_progress {
        return None;
    }
    let token = to_proto::token(task);
    let params = WorkDoneProgressCreateParams { token: token.clone() };
    match state.client.send_request::<WorkDoneProgressCreate>(params).await {
        Ok(()) => Some(token),
        Err(error) => {
            tracing::debug!(%error, "the client refused a progress token");
            None
        }
    }
}

async fn send(state: &State, token: Option<&NumberOrString>, value: WorkDoneProgress) {
    if let Some(token) = token {
        let params =
            ProgressParams { token: token.clone(), value: ProgressParamsValue::WorkDone(value) };
        state.client.send_notification::<Progress>(params).await;
    }
}

/// Starts following a task the server just started or found running: registers it and spawns its
/// follower.
pub(crate) fn follow(
    state: &Arc<State>,
    task: TaskId,
    intent: Intent,
    title: String,
    token: Option<NumberOrString>,
) {
    {
        let mut tasks = lock(&state.tasks);
        if tasks.contains_key(&task) {
            return;
        }
        let (sender, _) = tokio::sync::watch::channel(TaskState::Queued);
        tasks.insert(task.clone(), Tracked { intent, title, token, state: sender });
    }
    let state = state.clone();
    tokio::spawn(async move { run(&state, &task).await });
}

async fn run(state: &Arc<State>, task: &TaskId) {
    let (title, token, intent) = {
        let tasks = lock(&state.tasks);
        let Some(t) = tasks.get(task) else { return };
        (t.title.clone(), t.token.clone(), t.intent)
    };
    let mut stop = state.stop.subscribe();
    let begin = WorkDoneProgressBegin {
        title: title.clone(),
        cancellable: Some(true),
        message: Some(format!("task {} queued", task.short())),
        percentage: Some(0),
    };
    send(state, token.as_ref(), WorkDoneProgress::Begin(begin)).await;
    let mut seen = 0u64;
    let mut failure: Option<String> = None;
    loop {
        let snapshot = match state.agents.snapshot(task, seen).await {
            Ok(snapshot) => snapshot,
            Err(error) if error.is_retryable() => {
                tracing::warn!(%error, task = %task, "cannot read the task's progress; trying again");
                if pause(state, &mut stop).await {
                    return;
                }
                continue;
            }
            Err(error) => {
                end(state, token.as_ref(), format!("stopped following: {error}")).await;
                return;
            }
        };
        for record in &snapshot.events {
            seen = record.seq;
            on_event(
                state,
                task,
                intent,
                &title,
                token.as_ref(),
                &record.event,
                snapshot.cost_micros,
            )
            .await;
            if let Event::Failed { reason, .. } = &record.event {
                failure = Some(reason.clone());
            }
        }
        state.set_state(task, snapshot.state);
        if to_proto::settled(snapshot.state) {
            finish(
                state,
                task,
                &title,
                token.as_ref(),
                snapshot.state,
                failure,
                snapshot.cost_micros,
            )
            .await;
            return;
        }
        if pause(state, &mut stop).await {
            return;
        }
    }
}

/// Waits one poll interval; true when the server is shutting down.
async fn pause(state: &State, stop: &mut tokio::sync::watch::Receiver<bool>) -> bool {
    let poll = *lock(&state.poll);
    tokio::select! {
        () = tokio::time::sleep(poll) => *stop.borrow(),
        _ = stop.changed() => true,
    }
}

async fn on_event(
    state: &State,
    task: &TaskId,
    intent: Intent,
    title: &str,
    token: Option<&NumberOrString>,
    event: &Event,
    cost_micros: Option<u64>,
) {
    if let Some((message, percentage)) = to_proto::progress(event) {
        let report = WorkDoneProgressReport {
            cancellable: Some(true),
            message: Some(format!("{message}{}", to_proto::cost(cost_micros))),
            percentage,
        };
        send(state, token, WorkDoneProgress::Report(report)).await;
    }
    match event {
        Event::TestsFinished { round, passed: false, .. } => {
            failing_tests(state, task, *round).await;
        }
        Event::TestsFinished { passed: true, .. } => publish(state, task, Vec::new()).await,
        Event::PlanReady { .. } if intent == Intent::Explain => explain(state, task, title).await,
        Event::BudgetExhausted { .. } => {
            let text = format!(
                "{title} stopped at its budget (task {}): {}; raise the budget (`cadre --help` lists                  how) and it goes on, or cancel it with cadre.cancel",
                task.short(),
                event.describe()
            );
            state.client.show_message(MessageType::WARNING, text).await;
        }
        _ => {}
    }
}

/// Publishes diagnostics for a failed round's tests at the lines the runner named.
async fn failing_tests(state: &State, task: &TaskId, round: u32) {
    let (report, snapshot) =
        match (state.agents.report(task, round).await, state.agents.snapshot(task, u64::MAX).await)
        {
            (Ok(Some(report)), Ok(snapshot)) => (report, snapshot),
            (Err(error), _) | (_, Err(error)) => {
                tracing::warn!(%error, task = %task, "cannot read the failed round's test report");
                return;
            }
            (Ok(None), _) => return,
        };
    let repo = std::path::PathBuf::from(&snapshot.task.repo);
    let diagnostics = {
        let documents = lock(&state.documents);
        to_proto::failure_diagnostics(&repo, task.short(), round, &report.failures, |uri, line| {
            documents.get(uri).and_then(|d| d.line(line)).map(crate::documents::utf16_len)
        })
    };
    publish(state, task, diagnostics).await;
}

/// Replaces a task's published diagnostics.
pub(crate) async fn publish(
    state: &State,
    task: &TaskId,
    diagnostics: Vec<(tower_lsp::lsp_types::Url, tower_lsp::lsp_types::Diagnostic)>,
) {
    for (uri, merged) in state.set_diagnostics(task, diagnostics) {
        state.client.publish_diagnostics(uri, merged, None).await;
    }
}

/// An explanation is the plan: show it, then stop the task, which was never meant to change code.
async fn explain(state: &State, task: &TaskId, title: &str) {
    match state.agents.plan(task).await {
        Ok(Some(plan)) => {
            let mut text = format!("{title}:\n{}", plan.summary.trim());
            for step in &plan.steps {
                text.push_str(&format!("\n- {}", step.description));
            }
            state.client.show_message(MessageType::INFO, text).await;
        }
        Ok(None) => {}
        Err(error) => tracing::warn!(%error, "cannot read the explanation"),
    }
    let reason = Some("explain: the plan is the answer; no change was wanted".to_owned());
    if let Err(error) = state.agents.cancel(task, reason).await {
        tracing::warn!(%error, task = %task, "cannot stop the explain task after its plan");
    }
}

async fn end(state: &State, token: Option<&NumberOrString>, message: String) {
    send(state, token, WorkDoneProgress::End(WorkDoneProgressEnd { message: Some(message) })).await;
}

async fn finish(
    state: &State,
    task: &TaskId,
    title: &str,
    token: Option<&NumberOrString>,
    settled: TaskState,
    failure: Option<String>,
    cost_micros: Option<u64>,
) {
    match settled {
        TaskState::AwaitingReview { round } => {
            end(state, token, format!("ready for review (round {round})")).await;
            let summary = match review_summary(state, task, title, cost_micros).await {
                Ok((summary, _)) => summary,
                Err(error) => {
                    format!("{title}: ready for review, but its change cannot be read: {error}")
                }
            };
            present(state, task, summary).await;
        }
        TaskState::Failed => {
            let reason = failure.unwrap_or_else(|| "see `cadre status`".to_owned());
            end(state, token, format!("failed: {reason}")).await;
            state
                .client
                .show_message(
                    MessageType::ERROR,
                    format!("{title} failed (task {}): {reason}", task.short()),
                )
                .await;
        }
        other => end(state, token, other.to_string()).await,
    }
}

/// Cancels the task whose progress the person cancelled in the editor.
pub(crate) async fn cancel_by_token(state: &State, token: &NumberOrString) {
    let task = lock(&state.tasks)
        .iter()
        .find(|(_, t)| t.token.as_ref() == Some(token))
        .map(|(id, _)| id.clone());
    let Some(task) = task else {
        tracing::debug!(?token, "cancel for a progress token Cadre does not know");
        return;
    };
    let reason = Some("cancelled from the editor".to_owned());
    match state.agents.cancel(&task, reason).await {
        Ok((found, false)) => tracing::debug!(task = %task, state = %found, "nothing to cancel"),
        Ok((_, true)) => {}
        Err(error) => state.client.show_message(MessageType::ERROR, error.to_string()).await,
    }
}

/// The readable summary of a task awaiting review, with the proposal it describes.
pub(crate) async fn review_summary(
    state: &State,
    task: &TaskId,
    title: &str,
    cost_micros: Option<u64>,
) -> Result<(String, Proposal), AgentsError> {
    let proposal = state.agents.proposal(task).await?;
    let goal = match state.agents.snapshot(task, u64::MAX).await {
        Ok(snapshot) => snapshot.task.goal,
        Err(error) => {
            tracing::debug!(%error, task = %task, "cannot read the task's goal for its summary");
            String::new()
        }
    };
    let mut rounds = Vec::new();
    for n in 1..proposal.round {
        let report = state.agents.report(task, n).await.unwrap_or_else(|error| {
            tracing::debug!(%error, task = %task, round = n, "cannot read a round's test report");
            None
        });
        rounds.push((n, report));
    }
    rounds.push((proposal.round, proposal.report.clone()));
    let files = to_proto::diff_stat(&proposal.patch);
    let summary = to_proto::summary(&to_proto::Review {
        title,
        task_short: task.short(),
        goal: &goal,
        round: proposal.round,
        plan: proposal.plan.as_ref(),
        rounds: &rounds,
        files: &files,
        cost_micros,
    });
    Ok((summary, proposal))
}

/// Shows a summary: opened as a document (`window/showDocument` on a file in the temporary directory,
/// never in the workspace) where the client can, else as a message. A document that cannot be written
/// or shown falls back to the message, so the person always sees it.
pub(crate) async fn present(state: &State, task: &TaskId, summary: String) {
    if state.caps().show_document {
        match show_document(state, task, &summary).await {
            Ok(()) => return,
            Err(why) => {
                tracing::debug!(task = %task, why = %why, "summary shown as a message instead")
            }
        }
    }
    state.client.show_message(MessageType::INFO, summary).await;
}

async fn show_document(state: &State, task: &TaskId, summary: &str) -> Result<(), String> {
    let dir = std::env::temp_dir().join("cadre-lsp");
    let file = dir.join(format!("review-{}.md", task.short()));
    tokio::fs::create_dir_all(&dir).await.map_err(|e| format!("{}: {e}", dir.display()))?;
    tokio::fs::write(&file, summary).await.map_err(|e| format!("{}: {e}", file.display()))?;
    let uri = Url::from_file_path(&file).map_err(|()| format!("{} is no URI", file.display()))?;
    let params =
        ShowDocumentParams { uri, external: Some(false), take_focus: Some(false), selection: None };
    match state.client.send_request::<ShowDocument>(params).await {
        Ok(result) if result.success => Ok(()),
        Ok(_) => Err("the client could not open the summary".to_owned()),
        Err(error) => Err(error.to_string()),
    }
}
