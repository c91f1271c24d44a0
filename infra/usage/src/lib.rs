//! Model usage and the model response cache in SQLite: adapters for the
//! [`UsageLedger`](cadre_domain::ports::usage::UsageLedger) and
//! [`ModelCache`](cadre_domain::ports::model_cache::ModelCache) ports.
//!
//! Key design decision: one row per call in a plain table (`usage_calls`), with every token count and the
//! cost as integer columns, so totals per task, step, day or model are one `GROUP BY` and a task's spend
//! is one indexed sum. The file may be the one the state store and the embedded queue use: this crate's
//! tables are prefixed `usage_` and `model_cache_` and it never touches others.
//!
//! This crate must not price calls or decide what to cache (the gateway in `cadre-model` does), must not
//! depend on another infra crate, and must never block the async runtime with a database call.

pub mod sqlite;

pub use sqlite::{SqliteModelCache, SqliteUsageLedger};
