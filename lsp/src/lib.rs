//! `cadre-lsp`: Cadre's agents as code actions in any editor, over the Language Server Protocol on
//! stdio (`cadre lsp`).
//!
//! A person picks "Cadre: fix this" on a diagnostic, "Cadre: do this TODO" on a comment, "Cadre:
//! implement this", "write tests for this", "explain" or "refactor…" on a selection or function, or
//! "Cadre: plan a change…" anywhere. The server starts a task with the editor's context (file, range,
//! diagnostics, unsaved text), reports its progress with `$/progress`, publishes diagnostics for the
//! tests it saw fail, and, when the task is ready, offers its change as a versioned `WorkspaceEdit`
//! re-based onto the buffers as they are then; the person applies it or discards it, and the decision
//! is recorded on the task. Commands (`workspace/executeCommand`) list, show, accept, reject and cancel
//! tasks, search the knowledge base and re-index it with unsaved text. `EXTENSIONS.md` documents them.
//!
//! Key decision: the server talks to Cadre only through the [`Agents`] trait. The `cadre` binary
//! implements it over its store, queue and an in-process engine worker; tests use a double. The server
//! therefore never builds an adapter, and a task outlives the editor session that started it.
//!
//! This crate is the only one that knows `lsp-types` and `tower-lsp`. It must not write to stdout
//! except through the protocol, must not write a file of the person's workspace (the editor applies
//! edits to its buffers), and must not block a `codeAction` on anything slower than a look at memory.
#![deny(clippy::unwrap_used, clippy::expect_used)]

pub mod agents;
pub mod context;
pub mod documents;
mod framing;
mod handlers;
pub mod patch;
mod server;
pub mod settings;
mod state;
pub mod to_proto;

pub use agents::{Agents, AgentsError, Intent, Proposal, TaskRequest, TaskSnapshot};
/// The attribute [`Agents`] implementations need, re-exported so they need not depend on it.
pub use async_trait::async_trait;
pub use server::{serve, serve_stdio, service, Server, CONCURRENCY};
pub use settings::Settings;
pub use state::ServerOptions;
