//! `cadre-api`: Cadre's authenticated task API, so editors and the CLI can use a remote deployment
//! instead of the engine in their own process; and [`ApiClient`], its client.
//!
//! Routes (JSON in and out, `Authorization: Bearer TOKEN` on all but `/healthz`):
//! `POST /v1/tasks` (goal, repository, settings) · `GET /v1/tasks` · `GET /v1/tasks/{id}` (state and
//! cost) · `GET /v1/tasks/{id}/events?after=N&wait=SECS` (a long-poll, so an editor follows progress
//! without hammering) · `GET …/plan` · `GET …/rounds/{n}/report` · `GET …/proposal` (the patch) ·
//! `POST …/accept|reject|cancel|resume`. Errors are `{error, fix}` with 400, 401 (with
//! `WWW-Authenticate`), 404, 409, 422 or 503. `wire.rs` holds every type.
//!
//! Key decision: the API is a thin layer over the domain ports (`StateStore`, `Queue`, the usage
//! ledger, `Workspace` for a repository's head) plus the engine's public task controls (`resume`,
//! `cancel`, `raise_budget`): it runs no step and knows no adapter, so the same router serves the
//! embedded home locally and Firestore + Pub/Sub on Cloud Run, and a task it creates is an ordinary
//! task any worker runs. Tokens are configured as SHA-256 digests per team; a caller sees and
//! changes only its team's tasks, and its tasks are charged to its team.
//!
//! It must not run steps, write into a repository, clone anything (a git URL is refused as not
//! supported yet), or log a token.

pub mod auth;
mod client;
mod error;
mod ports;
mod server;
pub mod wire;

pub use auth::{ApiToken, Team, Tokens, TokensError};
pub use client::ApiClient;
pub use error::{ApiError, ErrorBody};
pub use ports::{ApiConfig, ApiPorts};
pub use server::{router, serve};
