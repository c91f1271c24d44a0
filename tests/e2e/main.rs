//! End-to-end tests of the real `cadre` binary: a fixture git repository, a local HTTP server speaking
//! the real Gemini / OpenAI wire formats, real SQLite files, real git, real processes (and kill -9).

mod acp;
mod budget;
mod candidates;
mod cli_errors;
mod doctor;
mod editor;
mod eval;
mod forge;
mod harness;
mod knowledge;
mod ops_docs;
mod pipeline;
mod remote;
mod retrieval;
mod scan;
mod support;
mod tidy;
