//! Test support shared by every crate's tests: port contract suites (the same story run against every
//! adapter of a port) and local servers that speak real wire formats (so adapters are tested at the wire,
//! never by mocking a trait).
//!
//! This crate is a dev-dependency only; nothing in a shipped binary may depend on it.

pub mod contracts;
pub mod model_server;
