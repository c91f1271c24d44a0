//! Cadre on AWS: the [`Queue`](cadre_domain::ports::queue::Queue) port on Amazon SQS ([`SqsQueue`]),
//! the [`StateStore`](cadre_domain::ports::store::StateStore) port on DynamoDB ([`DynamoDbStore`]: one
//! conditional transaction per state change, so two deliveries of one message cannot both commit), the
//! gateway's usage ledger and model cache in the same table ([`DynamoDbUsageLedger`],
//! [`DynamoDbModelCache`]), and the Lambda entry point that feeds SQS event batches to the engine and reports partial batch failures
//! ([`lambda`]).
//!
//! Key design decision: one adapter serves both ways of running. A long-running worker
//! (`cadre serve-worker --bus sqs://…`) receives through it; a Lambda function hands it the records of
//! its event ([`lambda::handle_batch`]) and then asks it how each was settled. So the engine settles a
//! delivery the same way everywhere (ack, retry later, dead letter), and only the reporting differs.
//!
//! This crate must not know envelopes beyond the two fields that route and order messages (`task_id`,
//! `step`), must not depend on another infra crate or on the engine, and lets no SDK type appear in its
//! public signatures: SQS errors become [`QueueError`](cadre_domain::ports::queue::QueueError) and
//! DynamoDB errors [`StoreError`](cadre_domain::ports::store::StoreError) at the seam.

mod body;
mod client;
pub mod config;
pub mod dynamodb;
mod held;
pub mod lambda;
mod provision;
mod sqs;

pub use client::Endpoint;
pub use config::{parse_routes, ConfigError, Credentials, QueueUrl, SqsConfig};
pub use dynamodb::cache::DynamoDbModelCache;
pub use dynamodb::store::{DynamoDbStore, INLINE_BYTES};
pub use dynamodb::usage::DynamoDbUsageLedger;
pub use dynamodb::{BadTableUrl, DynamoDbConfig};
pub use held::Settlement;
pub use provision::{create_queue_with_dead_letters, create_state_table, QueueSpec};
pub use sqs::{ConnectError, SqsQueue};
