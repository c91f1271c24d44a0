//! Integration tests of `cadre-knowledge` over fixture repositories written by each test.

mod chunks;
mod context;
mod index;
mod memory;
mod repomap;
mod search;
mod support;
mod symbols;
mod vectors;
