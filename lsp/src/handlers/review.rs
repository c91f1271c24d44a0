//! Human review in the editor: a proposed change becomes a `WorkspaceEdit` of versioned text document
//! edits, re-based onto the buffers as they are now; the person applies it or discards it, and the
//! decision is recorded on the task. Nothing is written to disk here: the editor applies the edit to
//! its buffers, and the person saves.

use std::collections::HashMap;
use std::path::Path;

use cadre_domain::{TaskId, TaskState};
use serde_json::{json, Value};
use tower_lsp::jsonrpc::Result;
use tower_lsp::lsp_types::request::ApplyWorkspaceEdit;
use tower_lsp::lsp_types::{
    ApplyWorkspaceEditParams, CodeAction, Command, CreateFile, CreateFileOptions, DeleteFile,
    DeleteFileOptions, DocumentChangeOperation, DocumentChanges, MessageType, OneOf,
    OptionalVersionedTextDocumentIdentifier, Position, Range, ResourceOp, TextDocumentEdit,
    TextEdit, Url, WorkspaceEdit,
};

use crate::documents::Document;
use crate::handlers::code_action::source_kind;
use crate::handlers::commands::names;
use crate::handlers::{agents_error, failed, progress};
use crate::patch::{self, FileKind};
use crate::state::{lock, PendingEdit, State};

/// The review actions offered for a task awaiting review.
pub(crate) fn actions(task: &TaskId, title: &str, resolve_edit: bool) -> Vec<CodeAction> {
    let short = task.short();
    let apply_title = format!("Cadre: apply the proposed change ({short}: {title})");
    let apply = if resolve_edit {
        CodeAction {
            title: apply_title,
            kind: Some(source_kind()),
            data: Some(json!({"apply": task})),
            ..CodeAction::default()
        }
    } else {
        CodeAction {
            title: apply_title.clone(),
            kind: Some(source_kind()),
            command: Some(Command {
                title: apply_title,
                command: names::ACCEPT.to_owned(),
                arguments: Some(vec![json!({"task": task})]),
            }),
            ..CodeAction::default()
        }
    };
    let discard_title = format!("Cadre: discard the proposed change ({short}: {title})");
    let discard = CodeAction {
        title: discard_title.clone(),
        kind: Some(source_kind()),
        command: Some(Command {
            title: discard_title,
            command: names::REJECT.to_owned(),
            arguments: Some(vec![json!({"task": task})]),
        }),
        ..CodeAction::default()
    };
    vec![apply, discard]
}

/// A computed edit: the workspace edit and what open buffers must read once it is applied.
struct Computed {
    round: u32,
    edit: WorkspaceEdit,
    expected: Vec<(Url, String)>,
    files: Vec<String>,
}

/// Builds the proposed change of `task` as an edit against the buffers (or files) as they are now.
async fn compute(state: &State, task: &TaskId) -> Result<Computed> {
    let proposal = state.agents.proposal(task).await.map_err(agents_error)?;
    let files = patch::parse(&proposal.patch).map_err(|e| failed(e.to_string()))?;
    if files.is_empty() {
        return Err(failed(format!(
            "task {} proposes no change; discard it with cadre.reject",
            task.short()
        )));
    }
    let caps = state.caps();
    let mut operations: Vec<DocumentChangeOperation> = Vec::new();
    let mut plain: HashMap<Url, Vec<TextEdit>> = HashMap::new();
    let mut expected = Vec::new();
    let mut names = Vec::new();
    for file in &files {
        let path = proposal.repo.join(&file.path);
        let uri = Url::from_file_path(&path)
            .map_err(|()| failed(format!("cannot name {} as a file URI", path.display())))?;
        names.push(file.path.clone());
        if file.binary {
            return Err(failed(format!(
                "{} changes as a binary file, which an editor cannot apply; use `cadre apply {}` \
                 from a terminal",
                file.path,
                task.short()
            )));
        }
        let open = lock(&state.documents).get(&uri).cloned();
        match file.kind {
            FileKind::Modify => {
                let (current, version) = match open {
                    Some(doc) => {
                        let version = doc.version;
                        (doc, Some(version))
                    }
                    None => (read_disk(&path).await?, None),
                };
                let edits =
                    patch::rebase(file, current.text()).map_err(|e| failed(e.to_string()))?;
                let text_edits: Vec<TextEdit> =
                    edits.iter().map(|e| crate::to_proto::text_edit(&current, e)).collect();
                if version.is_some() {
                    expected.push((uri.clone(), patch::apply(current.text(), &edits)));
                }
                if caps.document_changes {
                    operations.push(DocumentChangeOperation::Edit(TextDocumentEdit {
                        text_document: OptionalVersionedTextDocumentIdentifier { uri, version },
                        edits: text_edits.into_iter().map(OneOf::Left).collect(),
                    }));
                } else {
                    plain.insert(uri, text_edits);
                }
            }
            FileKind::Create => {
                if open.is_some() || tokio::fs::try_exists(&path).await.unwrap_or(true) {
                    return Err(failed(format!(
                        "{} exists now, and the change would create it anew; reject this proposal \
                         and start a new task",
                        file.path
                    )));
                }
                if !(caps.document_changes && caps.create_files) {
                    return Err(no_resource_ops("creates", &file.path, task));
                }
                operations.push(DocumentChangeOperation::Op(ResourceOp::Create(CreateFile {
                    uri: uri.clone(),
                    options: Some(CreateFileOptions {
                        overwrite: Some(false),
                        ignore_if_exists: Some(false),
                    }),
                    annotation_id: None,
                })));
                operations.push(DocumentChangeOperation::Edit(TextDocumentEdit {
                    text_document: OptionalVersionedTextDocumentIdentifier { uri, version: None },
                    edits: vec![OneOf::Left(TextEdit {
                        range: Range::new(Position::new(0, 0), Position::new(0, 0)),
                        new_text: patch::created_text(file),
                    })],
                }));
            }
            FileKind::Delete => {
                if !(caps.document_changes && caps.delete_files) {
                    return Err(no_resource_ops("deletes", &file.path, task));
                }
                operations.push(DocumentChangeOperation::Op(ResourceOp::Delete(DeleteFile {
                    uri,
                    options: Some(DeleteFileOptions {
                        recursive: Some(false),
                        ignore_if_not_exists: Some(true),
                        annotation_id: None,
                    }),
                })));
            }
        }
    }
    let edit = if caps.document_changes {
        WorkspaceEdit {
            document_changes: Some(DocumentChanges::Operations(operations)),
            ..WorkspaceEdit::default()
        }
    } else {
        WorkspaceEdit { changes: Some(plain), ..WorkspaceEdit::default() }
    };
    Ok(Computed { round: proposal.round, edit, expected, files: names })
}

fn no_resource_ops(what: &str, path: &str, task: &TaskId) -> tower_lsp::jsonrpc::Error {
    failed(format!(
        "the change {what} {path}, and this editor cannot create or delete files through LSP; \
         use `cadre apply {}` from a terminal",
        task.short()
    ))
}

async fn read_disk(path: &Path) -> Result<Document> {
    match tokio::fs::read_to_string(path).await {
        Ok(text) => Ok(Document::new(0, "", text)),
        Err(error) => Err(failed(format!(
            "cannot read {} to apply the change ({error}); restore it, or reject the proposal",
            path.display()
        ))),
    }
}

/// `codeAction/resolve` of "apply": the edit, plus the command that records the accept once the
/// editor has applied it.
pub(crate) async fn resolve_apply(
    state: &State,
    task: &TaskId,
    mut action: CodeAction,
) -> Result<CodeAction> {
    let computed = compute(state, task).await?;
    lock(&state.pending).insert(
        task.clone(),
        PendingEdit { round: computed.round, expected: computed.expected.clone() },
    );
    action.edit = Some(computed.edit);
    action.command = Some(Command {
        title: "record the accept".to_owned(),
        command: names::ACCEPTED.to_owned(),
        arguments: Some(vec![json!({"task": task, "round": computed.round})]),
    });
    Ok(action)
}

/// `cadre.accept`: the server sends the edit with `workspace/applyEdit` and records the accept when the
/// editor says it applied it.
pub(crate) async fn accept(state: &State, task: &TaskId) -> Result<Value> {
    let computed = compute(state, task).await?;
    let title = lock(&state.tasks).get(task).map(|t| t.title.clone());
    let params = ApplyWorkspaceEditParams {
        label: Some(title.unwrap_or_else(|| format!("Cadre: task {}", task.short()))),
        edit: computed.edit,
    };
    let response = state.client.send_request::<ApplyWorkspaceEdit>(params).await.map_err(|e| {
        failed(format!("the editor did not answer the edit ({e}); nothing was recorded"))
    })?;
    if !response.applied {
        let why = response.failure_reason.unwrap_or_else(|| "no reason given".to_owned());
        return Err(failed(format!(
            "the editor did not apply the change ({why}); nothing was recorded, try again"
        )));
    }
    record_accept(state, task, computed.round, &computed.files).await
}

/// `cadre.accepted`: the editor applied a resolved edit; record it if the buffers show it.
pub(crate) async fn accepted(state: &State, task: &TaskId, round: u32) -> Result<Value> {
    let pending = lock(&state.pending).remove(task);
    if let Some(pending) = &pending {
        let documents = lock(&state.documents);
        for (uri, want) in &pending.expected {
            if documents.get(uri).is_some_and(|d| d.text() != want) {
                return Err(failed(format!(
                    "{uri} does not show the proposed change (it changed meanwhile, or the edit was \
                     refused); nothing was recorded: ask for the code action again"
                )));
            }
        }
    }
    let round = pending.map_or(round, |p| p.round);
    record_accept(state, task, round, &[]).await
}

async fn record_accept(
    state: &State,
    task: &TaskId,
    round: u32,
    files: &[String],
) -> Result<Value> {
    state.agents.accept(task, round).await.map_err(agents_error)?;
    state.set_state(task, TaskState::Applied);
    progress::publish(state, task, Vec::new()).await;
    state
        .client
        .show_message(
            MessageType::INFO,
            format!(
                "Cadre: applied task {}'s change to the editor; save the files to write them",
                task.short()
            ),
        )
        .await;
    Ok(json!({"task": task, "applied": true, "round": round, "files": files}))
}

/// `cadre.reject`: records that the person discarded the change.
pub(crate) async fn reject(state: &State, task: &TaskId, reason: Option<String>) -> Result<Value> {
    state.agents.reject(task, reason).await.map_err(agents_error)?;
    state.set_state(task, TaskState::Rejected);
    lock(&state.pending).remove(task);
    progress::publish(state, task, Vec::new()).await;
    Ok(json!({"task": task, "rejected": true}))
}
