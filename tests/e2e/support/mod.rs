//! Helpers for the end-to-end tests: fixture repositories and running the `cadre` binary.

pub mod cadre;
pub mod repo;
