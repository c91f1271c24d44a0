//! Helpers for the end-to-end tests: fixture repositories and running the `cadre` binary.

pub(crate) mod cadre;
pub(crate) mod repo;
