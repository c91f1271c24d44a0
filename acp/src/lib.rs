//! Cadre as an Agent Client Protocol agent (`cadre acp`): Zed, JetBrains IDEs and the Neovim ACP
//! plugins host Cadre's agents in their side panel over stdio.
//!
//! A session is a repository; each prompt is a task on Cadre's engine, shown while it runs as
//! `session/update`s (the pipeline as a plan whose entries follow the steps, every tool call, the
//! step summaries with cost and budget), and whose proposed change is written only after the person
//! allows it through `session/request_permission`.
//!
//! Key design decision: the server reaches Cadre only through its [`Agents`] trait, implemented by
//! the `cadre` binary over the same store, queue and in-process worker as `cadre lsp`, so a task
//! outlives the editor session, and `session/load` picks it up at the next start.
//!
//! This crate must not depend on the engine, on an adapter, or on the LSP frontend; it is the only
//! crate that knows the `agent-client-protocol` types.
#![deny(clippy::unwrap_used, clippy::expect_used)]

mod agents;
mod consent;
mod patch;
mod prompt;
mod server;
mod sessions;
mod transport;
mod updates;

pub use agents::{Agents, AgentsError, Proposal, TaskSnapshot};
pub use async_trait::async_trait;
pub use server::{serve, serve_stdio, ServeError, ServerOptions};
