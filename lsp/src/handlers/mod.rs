//! Request and notification handlers, one module per concern.

pub(crate) mod code_action;
pub(crate) mod commands;
pub(crate) mod progress;
pub(crate) mod review;
pub(crate) mod save;

use tower_lsp::jsonrpc::{Error, ErrorCode};

use crate::agents::AgentsError;

/// LSP's `RequestFailed`: the request was understood but could not be carried out.
pub(crate) const REQUEST_FAILED: i64 = -32803;

/// A failed request with a message the person can act on.
pub(crate) fn failed(message: impl Into<String>) -> Error {
    Error {
        code: ErrorCode::ServerError(REQUEST_FAILED),
        message: message.into().into(),
        data: None,
    }
}

/// An agents error as a JSON-RPC error; its message is already written for people.
pub(crate) fn agents_error(error: AgentsError) -> Error {
    failed(error.to_string())
}
