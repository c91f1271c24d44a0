//! The task API in process (axum on a local port) over a real SQLite store, embedded queue and usage
//! ledger in a temporary Cadre home, with real git repositories.

mod endpoints;
mod support;
