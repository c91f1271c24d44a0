//! Tests of `cadre-forge` against real local servers: a scripted HTTP server speaking the subset of
//! GitHub's and GitLab's REST APIs Cadre uses (asserting the exact requests), `git http-backend`
//! behind a small HTTP server for pushes, and the webhook router on a real socket.

mod github;
mod gitlab;
mod push;
mod support;
mod webhook;
