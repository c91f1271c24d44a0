//! `textDocument/codeAction` and `codeAction/resolve`.
//!
//! Offering actions computes nothing slow: a look at a few lines of the open buffer (a TODO comment,
//! a function header above the cursor) and at the tasks awaiting review. Starting a task, and
//! computing a proposed change's edit, happen later: on `workspace/executeCommand`, or on
//! `codeAction/resolve` for clients that resolve lazily.

use serde_json::{json, Value};
use tower_lsp::jsonrpc::{Error, Result};
use tower_lsp::lsp_types::{
    CodeAction, CodeActionKind, CodeActionOrCommand, CodeActionParams, Command, Diagnostic, Range,
};

use crate::agents::Intent;
use crate::context;
use crate::handlers::commands::names;
use crate::handlers::review;
use crate::state::{lock, State};
use cadre_domain::TaskState;

/// The kind of Cadre's actions that change code around a selection or function.
pub(crate) fn refactor_kind() -> CodeActionKind {
    CodeActionKind::new("refactor.cadre")
}

/// The kind of review actions and of "plan a change…".
pub(crate) fn source_kind() -> CodeActionKind {
    CodeActionKind::new("source.cadre")
}

fn kind_of(intent: Intent) -> CodeActionKind {
    match intent {
        Intent::Fix | Intent::Todo => CodeActionKind::QUICKFIX,
        Intent::Implement | Intent::Tests | Intent::Explain | Intent::Refactor => refactor_kind(),
        Intent::Plan => source_kind(),
    }
}

/// Whether `kind` is asked for by the client's `only` filter (a kind matches its own prefixes).
fn wanted(only: Option<&[CodeActionKind]>, kind: &CodeActionKind) -> bool {
    only.is_none_or(|only| {
        only.iter().any(|o| {
            let (o, k) = (o.as_str(), kind.as_str());
            k == o || k.starts_with(&format!("{o}."))
        })
    })
}

/// The arguments of `cadre.start` for one offered action.
fn start_arguments(
    intent: Intent,
    uri: &tower_lsp::lsp_types::Url,
    range: Range,
    diagnostics: &[Diagnostic],
) -> Value {
    json!({"intent": intent, "uri": uri, "range": range, "diagnostics": diagnostics})
}

fn task_action(
    intent: Intent,
    arguments: Value,
    diagnostics: Option<Vec<Diagnostic>>,
    lazy: bool,
) -> CodeAction {
    let command = Command {
        title: intent.title().to_owned(),
        command: names::START.to_owned(),
        arguments: Some(vec![arguments.clone()]),
    };
    CodeAction {
        title: intent.title().to_owned(),
        kind: Some(kind_of(intent)),
        diagnostics,
        command: (!lazy).then_some(command),
        data: lazy.then(|| json!({"start": arguments})),
        ..CodeAction::default()
    }
}

/// The actions for a range of a document. Answers from memory only.
pub(crate) fn code_actions(state: &State, params: &CodeActionParams) -> Vec<CodeActionOrCommand> {
    let caps = state.caps();
    let uri = &params.text_document.uri;
    let range = params.range;
    let only = params.context.only.as_deref();
    let lazy = caps.resolve_command;
    let mut actions: Vec<CodeAction> = Vec::new();

    for diagnostic in &params.context.diagnostics {
        let args =
            start_arguments(Intent::Fix, uri, diagnostic.range, std::slice::from_ref(diagnostic));
        actions.push(task_action(Intent::Fix, args, Some(vec![diagnostic.clone()]), lazy));
    }
    {
        let documents = lock(&state.documents);
        let document = documents.get(uri);
        if let Some((line, _)) = document.and_then(|d| context::todo_in(d, range)) {
            let at = Range::new(
                tower_lsp::lsp_types::Position::new(u32::try_from(line).unwrap_or(0), 0),
                tower_lsp::lsp_types::Position::new(u32::try_from(line).unwrap_or(0), 0),
            );
            actions.push(task_action(
                Intent::Todo,
                start_arguments(Intent::Todo, uri, at, &[]),
                None,
                lazy,
            ));
        }
        let selection = range.start != range.end;
        let in_function =
            document.and_then(|d| context::function_at(d, range.start.line as usize)).is_some();
        if selection || in_function {
            for intent in [Intent::Implement, Intent::Tests, Intent::Explain, Intent::Refactor] {
                let args = start_arguments(intent, uri, range, &[]);
                actions.push(task_action(intent, args, None, lazy));
            }
        }
    }
    actions.push(task_action(
        Intent::Plan,
        start_arguments(Intent::Plan, uri, range, &[]),
        None,
        lazy,
    ));

    let awaiting: Vec<(cadre_domain::TaskId, String, u32)> = lock(&state.tasks)
        .iter()
        .filter_map(|(id, t)| match *t.state.borrow() {
            TaskState::AwaitingReview { round } => Some((id.clone(), t.title.clone(), round)),
            _ => None,
        })
        .collect();
    for (task, title, _round) in awaiting {
        actions.extend(review::actions(&task, &title, caps.resolve_edit));
    }

    actions
        .into_iter()
        .filter(|a| a.kind.as_ref().is_none_or(|k| wanted(only, k)))
        .map(|a| {
            if caps.code_action_literals {
                CodeActionOrCommand::CodeAction(a)
            } else {
                // A client without literal support takes bare commands.
                let command = a.command.unwrap_or_else(|| Command {
                    title: a.title.clone(),
                    command: names::START.to_owned(),
                    arguments: a.data.and_then(|d| d.get("start").cloned()).map(|v| vec![v]),
                });
                CodeActionOrCommand::Command(command)
            }
        })
        .collect()
}

/// Fills in a lazily offered action: the command of a task action, or the proposed change's edit of
/// a review action.
pub(crate) async fn resolve(state: &State, mut action: CodeAction) -> Result<CodeAction> {
    let Some(data) = action.data.take() else { return Ok(action) };
    if let Some(arguments) = data.get("start") {
        action.command = Some(Command {
            title: action.title.clone(),
            command: names::START.to_owned(),
            arguments: Some(vec![arguments.clone()]),
        });
        return Ok(action);
    }
    if let Some(task) = data.get("apply").and_then(Value::as_str) {
        let task = state.agents.resolve(task).await.map_err(crate::handlers::agents_error)?;
        return review::resolve_apply(state, &task, action).await;
    }
    Err(Error::invalid_params(format!(
        "codeAction/resolve got data Cadre did not make ({data}); ask for code actions again"
    )))
}
