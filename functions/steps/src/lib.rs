//! The pipeline's steps: `index`, `plan`, `generate`, `test` and `review`, each one stateless async function
//! from a message (plus what the store holds for its task) to a [`cadre_domain::StepOutcome`].
//!
//! Key decision: a step never writes state or publishes itself; it returns everything it wants written
//! and published, and the engine commits that atomically under the message's idempotency key.
//! Steps reach the world only through [`cadre_domain::Ports`]: no tokio, no direct file or network I/O,
//! no clock reads, and a step never calls another step.
#![deny(clippy::unwrap_used, clippy::expect_used)]

pub mod agent;
pub mod context;
pub mod conversation;
pub mod edit_format;
pub mod generate;
pub mod index;
pub mod plan;
pub mod prompt;
pub mod retrieval;
pub mod review;
pub mod scan;
mod store_read;
pub mod test;
pub mod test_command;
pub mod test_output;

pub use generate::generate;
pub use index::index;
pub use plan::plan;
pub use review::review;
pub use test::test;
