//! Integration tests of the Google Cloud adapters against the official Pub/Sub and Firestore emulators
//! (started once for this binary), local servers for Cloud Storage and Google's signing keys, and the
//! Terraform configuration parsed offline.

mod deployment;
mod emulators;
mod oidc;
mod pipeline;
mod push;
mod storage_server;
mod store;
mod support;
mod terraform;
mod usage;
mod vertex;
