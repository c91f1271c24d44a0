//! Protocol tests: the server driven through its stdio framing by a scripted client, over an
//! in-memory `Agents` whose tasks follow a script.

mod protocol;
mod reindex;
mod review;
mod summary;
mod support;
