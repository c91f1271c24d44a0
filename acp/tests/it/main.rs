//! The ACP agent over the wire: an in-memory pipe, a scripted `Agents`, and a client that speaks
//! JSON-RPC lines; plus the independent Node client on the official TypeScript SDK.

mod client;
mod fake;
mod protocol;
