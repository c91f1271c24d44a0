//! Nothing is written without consent: a task's proposed change is shown as a tool call with one
//! diff per file, then asked for through `session/request_permission` (allow once, allow always,
//! reject). On allow the files are written through the client's `fs/write_text_file` when it offers
//! it, so unsaved buffers are respected, and to disk otherwise; on reject nothing is written and the
//! task is recorded rejected.
//!
//! The diffs are computed against the files as the editor shows them now (read through
//! `fs/read_text_file` when offered), and exactly what was shown is what gets written.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use agent_client_protocol::v1::schema as acp;
use agent_client_protocol::v1::ConnectionTo;
use agent_client_protocol::Client;
use cadre_domain::TaskId;
use tokio::sync::watch;

use crate::patch::{self, FileChange};
use crate::server::{agents_error, Shared};
use crate::sessions::Session;
use crate::updates::message;

const ALLOW_ONCE: &str = "allow-once";
const ALLOW_ALWAYS: &str = "allow-always";
const REJECT: &str = "reject";

/// One file as it will be written: its absolute path, its text now (`None`: absent) and after
/// (`None`: removed).
struct Write {
    path: PathBuf,
    old: Option<String>,
    new: Option<String>,
}

/// Asks for consent to the proposal of round `round` and acts on the answer. `None` when the task was
/// recorded applied or rejected (the caller shows that and ends the turn); otherwise the stop reason.
pub(crate) async fn review(
    shared: &Arc<Shared>,
    session: &Arc<Session>,
    task: &TaskId,
    round: u32,
    sid: &acp::SessionId,
    cx: &ConnectionTo<Client>,
    cancelled: &mut watch::Receiver<u64>,
) -> Result<Option<acp::StopReason>, agent_client_protocol::Error> {
    let send = |update| cx.send_notification(acp::SessionNotification::new(sid.clone(), update));
    let call_id = acp::ToolCallId::new(format!("{}:proposal:r{round}", task.as_str()));
    let proposal = shared.agents.proposal(task).await.map_err(agents_error)?;
    let writes = match prepare(shared, sid, cx, &proposal.repo, &proposal.patch).await {
        Ok(writes) => writes,
        Err(problem) => {
            send(acp::SessionUpdate::ToolCall(
                acp::ToolCall::new(call_id, format!("Apply the change of round {round}"))
                    .kind(acp::ToolKind::Edit)
                    .status(acp::ToolCallStatus::Failed)
                    .content(vec![acp::ContentBlock::from(problem.clone()).into()]),
            ))?;
            send(message(format!(
                "Nothing was written: {problem}. The task still awaits review (`cadre show {}`).\n",
                task.short()
            )))?;
            return Ok(Some(acp::StopReason::EndTurn));
        }
    };
    let title = format!("Apply the change of round {round} to {} file(s)", writes.len());
    let diffs: Vec<acp::ToolCallContent> = writes
        .iter()
        .map(|w| {
            acp::Diff::new(w.path.clone(), w.new.clone().unwrap_or_default())
                .old_text(w.old.clone())
                .into()
        })
        .collect();
    let locations: Vec<acp::ToolCallLocation> =
        writes.iter().map(|w| acp::ToolCallLocation::new(w.path.clone())).collect();
    send(acp::SessionUpdate::ToolCall(
        acp::ToolCall::new(call_id.clone(), title.clone())
            .kind(acp::ToolKind::Edit)
            .status(acp::ToolCallStatus::Pending)
            .content(diffs)
            .locations(locations),
    ))?;

    let answer = if session.allow_always.load(Ordering::SeqCst) {
        send(message("Allowed: you chose \"always allow\" in this session.\n".into()))?;
        Answer::Allow
    } else {
        let request = acp::RequestPermissionRequest::new(
            sid.clone(),
            acp::ToolCallUpdate::new(
                call_id.clone(),
                acp::ToolCallUpdateFields::new().title(title),
            ),
            vec![
                acp::PermissionOption::new(
                    ALLOW_ONCE,
                    "Apply",
                    acp::PermissionOptionKind::AllowOnce,
                ),
                acp::PermissionOption::new(
                    ALLOW_ALWAYS,
                    "Always apply in this session",
                    acp::PermissionOptionKind::AllowAlways,
                ),
                acp::PermissionOption::new(REJECT, "Reject", acp::PermissionOptionKind::RejectOnce),
            ],
        );
        tokio::select! {
            response = cx.send_request(request).block_task() => match response {
                Ok(response) => Answer::from(&response.outcome),
                Err(error) => {
                    tracing::warn!(error = %error.message, "permission request failed");
                    Answer::Cancelled
                }
            },
            changed = cancelled.changed() => {
                if changed.is_ok() { Answer::Cancelled } else { Answer::Reject }
            }
        }
    };
    let update = |status, text: String| {
        send(acp::SessionUpdate::ToolCallUpdate(acp::ToolCallUpdate::new(
            call_id.clone(),
            acp::ToolCallUpdateFields::new()
                .status(status)
                .content(vec![acp::ContentBlock::from(text).into()]),
        )))
    };
    match answer {
        Answer::Cancelled => {
            update(
                acp::ToolCallStatus::Failed,
                "cancelled: nothing was written; the task still awaits review".into(),
            )?;
            send(message(format!(
                "Nothing was written. Task {} still awaits review: `cadre apply {0}` or `cadre reject {0}`.\n",
                task.short()
            )))?;
            Ok(Some(acp::StopReason::Cancelled))
        }
        Answer::Reject => {
            shared
                .agents
                .reject(task, Some("rejected in the editor".into()))
                .await
                .map_err(agents_error)?;
            update(acp::ToolCallStatus::Failed, "rejected: nothing was written".into())?;
            Ok(None)
        }
        Answer::Allow | Answer::AllowAlways => {
            if answer == Answer::AllowAlways {
                session.allow_always.store(true, Ordering::SeqCst);
            }
            if let Err(problem) = write_all(shared, sid, cx, &writes).await {
                update(acp::ToolCallStatus::Failed, problem.clone())?;
                send(message(format!(
                    "{problem}. The task still awaits review (`cadre show {}`).\n",
                    task.short()
                )))?;
                return Ok(Some(acp::StopReason::EndTurn));
            }
            shared.agents.accept(task, round).await.map_err(agents_error)?;
            let names: Vec<String> = writes.iter().map(|w| w.path.display().to_string()).collect();
            update(acp::ToolCallStatus::Completed, format!("written: {}", names.join(", ")))?;
            Ok(None)
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    Allow,
    AllowAlways,
    Reject,
    Cancelled,
}

impl From<&acp::RequestPermissionOutcome> for Answer {
    fn from(outcome: &acp::RequestPermissionOutcome) -> Answer {
        match outcome {
            acp::RequestPermissionOutcome::Selected(selected) => {
                match selected.option_id.0.as_ref() {
                    ALLOW_ONCE => Answer::Allow,
                    ALLOW_ALWAYS => Answer::AllowAlways,
                    _ => Answer::Reject,
                }
            }
            _ => Answer::Cancelled,
        }
    }
}

/// Re-bases the patch onto the files as they are now; all files or none.
async fn prepare(
    shared: &Arc<Shared>,
    sid: &acp::SessionId,
    cx: &ConnectionTo<Client>,
    repo: &std::path::Path,
    patch_text: &str,
) -> Result<Vec<Write>, String> {
    let changes = patch::parse(patch_text).map_err(|e| e.to_string())?;
    if changes.is_empty() {
        return Err("the proposed patch changes no file".into());
    }
    let mut writes = Vec::new();
    for change in &changes {
        let old = match change.source() {
            Some(source) => Some(read(shared, sid, cx, &patch::absolute(repo, source)).await?),
            None => None,
        };
        let new = match change {
            FileChange::Create { text, .. } => Some(text.clone()),
            FileChange::Delete { .. } => None,
            FileChange::Modify { to, hunks, .. } => Some(
                patch::apply(to, old.as_deref().unwrap_or(""), hunks).map_err(|e| e.to_string())?,
            ),
        };
        if let FileChange::Modify { from, to, .. } = change {
            if from != to {
                // A move: the old path goes away.
                writes.push(Write {
                    path: patch::absolute(repo, from),
                    old: old.clone(),
                    new: None,
                });
                writes.push(Write { path: patch::absolute(repo, to), old: None, new });
                continue;
            }
        }
        writes.push(Write { path: patch::absolute(repo, change.path()), old, new });
    }
    Ok(writes)
}

/// The file as the editor shows it (unsaved changes included) when the client can say, else as on
/// disk.
async fn read(
    shared: &Arc<Shared>,
    sid: &acp::SessionId,
    cx: &ConnectionTo<Client>,
    path: &std::path::Path,
) -> Result<String, String> {
    if shared.client_fs().read {
        match cx.send_request(acp::ReadTextFileRequest::new(sid.clone(), path)).block_task().await {
            Ok(response) => return Ok(response.content),
            Err(error) => {
                tracing::debug!(path = %path.display(), error = %error.message, "client read failed; reading the disk");
            }
        }
    }
    tokio::fs::read_to_string(path)
        .await
        .map_err(|e| format!("cannot read {}: {e}", path.display()))
}

/// Writes every file: through the client when it offers `fs/write_text_file`, else to disk. A removal
/// is always done on disk (ACP has no delete).
async fn write_all(
    shared: &Arc<Shared>,
    sid: &acp::SessionId,
    cx: &ConnectionTo<Client>,
    writes: &[Write],
) -> Result<(), String> {
    let through_client = shared.client_fs().write;
    for write in writes {
        let path = &write.path;
        match &write.new {
            Some(text) if through_client => {
                cx.send_request(acp::WriteTextFileRequest::new(
                    sid.clone(),
                    path.clone(),
                    text.clone(),
                ))
                .block_task()
                .await
                .map_err(|e| {
                    format!("the editor could not write {}: {}", path.display(), e.message)
                })?;
            }
            Some(text) => {
                if let Some(dir) = path.parent() {
                    tokio::fs::create_dir_all(dir)
                        .await
                        .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
                }
                tokio::fs::write(path, text)
                    .await
                    .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
            }
            None => match tokio::fs::remove_file(path).await {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(format!("cannot remove {}: {e}", path.display())),
            },
        }
    }
    Ok(())
}
