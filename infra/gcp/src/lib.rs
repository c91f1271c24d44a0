//! Cadre on Google Cloud: the adapters a Cloud Run deployment runs on, and the HTTP entry point that
//! turns Pub/Sub push requests into the engine's deliveries.
//!
//! - [`FirestoreStore`]: the `StateStore` port on Firestore (tasks, event logs, artifacts, step commits
//!   keyed by idempotency key), each state change one atomic commit whose preconditions fail if what it
//!   read has changed (an optimistic transaction), so two deliveries of one message cannot both commit;
//!   large artifacts go to Cloud Storage ([`CloudStorage`]).
//! - [`FirestoreUsageLedger`] and [`FirestoreModelCache`]: the gateway's two ports, so every instance
//!   sees the same spend and the same cached replies.
//! - [`PubSubQueue`]: publishes step messages to one topic per step (ordering key = task id) and reads
//!   the team's dead-letter subscription; [`PushQueue`] is the `Queue` a single push request is handled
//!   through: its `ack`, `retry_later` and `dead_letter` record a [`Verdict`] that the HTTP handler
//!   ([`push_router`]) turns into the status Pub/Sub acts on.
//! - [`OidcVerifier`]: checks the push request's OIDC token (issuer, audience, RS256 signature against
//!   a cached JWKS).
//! - [`VertexVectorIndex`]: Vertex AI Vector Search (upsert and remove datapoints, `findNeighbors` with
//!   restricts per repository and team); no port takes vectors yet, so nothing wires it in.
//!
//! Key design decision: Google's REST APIs over `reqwest` (already in the tree), not the gRPC client
//! crates, whose generated code would add minutes to a cold build on a 2-core CI (see ARCHITECTURE.md
//! for the measurement). The emulators speak the same REST, so the same code runs against both.
//!
//! This crate must not depend on the engine or on another infra crate: the push handler runs whatever
//! [`PushRunner`] the binary gives it (the engine's `handle`), and knows only the ports.

mod auth;
mod firestore;
mod oidc;
mod pubsub;
mod rest;
mod storage;
mod time;
mod vector_store;
mod vertex;

/// Re-exported so the binary can implement [`PushRunner`] without a dependency of its own.
pub use async_trait::async_trait;
pub use auth::GoogleAuth;
pub use firestore::cache::FirestoreModelCache;
pub use firestore::store::{FirestoreStore, DEFAULT_BLOB_THRESHOLD};
pub use firestore::usage::FirestoreUsageLedger;
pub use firestore::FirestoreConfig;
pub use oidc::{OidcConfig, OidcVerifier, PushClaims, TokenError, GOOGLE_ISSUERS, GOOGLE_JWKS_URL};
pub use pubsub::push::{push_router, serve, PushAuth, PushQueue, PushRunner, PushService, Verdict};
pub use pubsub::{PubSubConfig, PubSubQueue, ATTR_MESSAGE_ID, ATTR_NOT_BEFORE, ATTR_REASON};
pub use storage::{CloudStorage, StorageConfig, StorageError};
pub use time::parse_rfc3339_millis;
pub use vector_store::VertexVectorStore;
pub use vertex::{
    Datapoint, Neighbor, Restrict, VectorError, VertexConfig, VertexVectorIndex, REPO_NAMESPACE,
    TEAM_NAMESPACE,
};
