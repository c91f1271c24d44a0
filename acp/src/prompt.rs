//! One prompt turn: the prompt becomes a task's goal, the task is followed event by event as
//! `session/update`s, and the turn ends with the stop reason of how the task stopped:
//! `end_turn` once its change was allowed or rejected (or it failed), `cancelled` after
//! `session/cancel`, `max_tokens` when its budget ran out.
//!
//! A session whose last task has not finished (the editor closed while it ran, then loaded the
//! session) goes on following that task instead of starting another.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use agent_client_protocol::v1::schema as acp;
use agent_client_protocol::v1::ConnectionTo;
use agent_client_protocol::Client;
use cadre_domain::{Event, TaskId, TaskState};

use crate::consent;
use crate::server::{agents_error, invalid_params, Shared};
use crate::sessions::Session;
use crate::updates::{message, Progress};

/// Runs the turn and returns its response.
pub(crate) async fn turn(
    shared: &Arc<Shared>,
    session: &Arc<Session>,
    request: acp::PromptRequest,
    cx: &ConnectionTo<Client>,
) -> Result<acp::PromptResponse, agent_client_protocol::Error> {
    let mut cancelled = session.cancellations();
    cancelled.borrow_and_update();
    let sid = request.session_id.clone();
    let send = |update| cx.send_notification(acp::SessionNotification::new(sid.clone(), update));

    let unfinished = match session.last_task() {
        Some(task) => {
            let snapshot = shared.agents.snapshot(&task, u64::MAX).await.map_err(agents_error)?;
            (!snapshot.state.is_terminal()).then_some((task, snapshot.state))
        }
        None => None,
    };
    let task = match unfinished {
        Some((task, state)) => {
            send(message(format!(
                "Task {} from before is {state}; following it. Send your request again once it ends.\n",
                task.short()
            )))?;
            task
        }
        None => {
            let goal = goal(&request.prompt)?;
            // Said at once: starting a task inspects the repository and writes the store, which
            // takes tens of milliseconds on a busy machine.
            send(message(format!("Starting a Cadre task in {}…\n", session.repo.display())))?;
            let task = shared.agents.start(goal, &session.repo).await.map_err(agents_error)?;
            session.push_task(task.clone());
            shared.book.save(&session.id, &session.record()).await;
            send(message(format!(
                "Cadre task {} started in {}\n",
                task.short(),
                session.repo.display()
            )))?;
            task
        }
    };
    let stop = follow(shared, session, &task, &sid, cx, &mut cancelled).await?;
    Ok(acp::PromptResponse::new(stop))
}

/// Follows `task` until it stops, sending its new events as updates.
async fn follow(
    shared: &Arc<Shared>,
    session: &Arc<Session>,
    task: &TaskId,
    sid: &acp::SessionId,
    cx: &ConnectionTo<Client>,
    cancelled: &mut tokio::sync::watch::Receiver<u64>,
) -> Result<acp::StopReason, agent_client_protocol::Error> {
    let send = |update| cx.send_notification(acp::SessionNotification::new(sid.clone(), update));
    let agents = &shared.agents;
    let mut progress: Option<Progress> = None;
    let mut seq = 0;
    loop {
        let snapshot = agents.snapshot(task, seq).await.map_err(agents_error)?;
        let progress = progress.get_or_insert_with(|| Progress::new(&snapshot.task));
        let shown = session.shown_seq.load(Ordering::SeqCst);
        for record in &snapshot.events {
            if matches!(record.event, Event::PlanReady { .. }) {
                if let Ok(Some(plan)) = agents.plan(task).await {
                    progress.set_plan(&plan);
                }
            }
            // Events shown before (by an earlier turn or a replay) still move the plan's statuses.
            let updates = progress.on_event(record, snapshot.cost_micros);
            if record.seq > shown {
                for update in updates {
                    send(update)?;
                }
                session.shown_seq.store(record.seq, Ordering::SeqCst);
            }
            seq = record.seq;
        }
        match snapshot.state {
            TaskState::AwaitingReview { round } => {
                if let Some(stop) =
                    consent::review(shared, session, task, round, sid, cx, cancelled).await?
                {
                    return Ok(stop);
                }
                // Allowed or rejected: the next snapshot shows it, then the turn ends.
                continue;
            }
            TaskState::Applied | TaskState::Rejected | TaskState::Failed => {
                return Ok(acp::StopReason::EndTurn)
            }
            TaskState::Cancelled => return Ok(acp::StopReason::Cancelled),
            TaskState::BudgetExhausted { .. } => return Ok(acp::StopReason::MaxTokens),
            TaskState::Queued
            | TaskState::Indexing
            | TaskState::Planning
            | TaskState::Generating { .. }
            | TaskState::Testing { .. } => {}
        }
        tokio::select! {
            () = tokio::time::sleep(shared.options.poll_interval) => {}
            changed = cancelled.changed() => {
                if changed.is_ok() {
                    return cancel(shared, task, sid, cx).await;
                }
            }
        }
    }
}

/// Cancels the task for `session/cancel` and ends the turn as cancelled, whatever the task did.
pub(crate) async fn cancel(
    shared: &Arc<Shared>,
    task: &TaskId,
    sid: &acp::SessionId,
    cx: &ConnectionTo<Client>,
) -> Result<acp::StopReason, agent_client_protocol::Error> {
    let text = match shared.agents.cancel(task, Some("cancelled from the editor".into())).await {
        Ok((_, true)) => format!("Task {} cancelled.\n", task.short()),
        Ok((state, false)) => format!("Task {} was already {state}.\n", task.short()),
        Err(error) => format!("Task {} could not be cancelled: {error}\n", task.short()),
    };
    cx.send_notification(acp::SessionNotification::new(sid.clone(), message(text)))?;
    Ok(acp::StopReason::Cancelled)
}

/// The task's goal from the prompt: its text, the files it links to, and the text of resources the
/// editor embedded (a selection, an open buffer), each named by its URI.
pub(crate) fn goal(prompt: &[acp::ContentBlock]) -> Result<String, agent_client_protocol::Error> {
    let mut text = String::new();
    let mut context = String::new();
    for block in prompt {
        match block {
            acp::ContentBlock::Text(t) => {
                if !text.is_empty() {
                    text.push('\n');
                }
                text.push_str(&t.text);
            }
            acp::ContentBlock::ResourceLink(link) => {
                context.push_str(&format!("\nSee {} ({})", link.name, file_path(&link.uri)));
            }
            acp::ContentBlock::Resource(resource) => match &resource.resource {
                acp::EmbeddedResourceResource::TextResourceContents(r) => {
                    context.push_str(&format!(
                        "\n\nContext from {}:\n```\n{}\n```",
                        file_path(&r.uri),
                        r.text.trim_end()
                    ));
                }
                acp::EmbeddedResourceResource::BlobResourceContents(r) => {
                    context.push_str(&format!("\n(binary resource {} not shown)", r.uri));
                }
                _ => {}
            },
            _ => {
                return Err(invalid_params(
                    "Cadre reads text, resource links and embedded text resources only; \
                     describe the image or audio in words"
                        .into(),
                ))
            }
        }
    }
    if text.trim().is_empty() && context.is_empty() {
        return Err(invalid_params("the prompt has no text; say what Cadre should change".into()));
    }
    Ok(format!("{}{context}", text.trim()))
}

/// `file:///repo/src/a.rs` → `/repo/src/a.rs`; other URIs as they are.
fn file_path(uri: &str) -> &str {
    uri.strip_prefix("file://").unwrap_or(uri)
}
