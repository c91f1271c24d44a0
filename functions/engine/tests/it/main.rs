//! The engine over the embedded adapters: real SQLite queue and store, real git worktrees, real
//! processes, and a model reached over HTTP through a local wire-format server.

mod candidates;
mod delivery;
mod support;
