//! State on DynamoDB: where a table is, how its items are laid out, and the calls every store on it
//! makes (paged queries, one conditional transaction per state change, errors mapped to the port).
//!
//! One table per team holds everything, keyed by a string partition key `pk` and sort key `sk`:
//! - `pk = task#ID`: the task item (`sk = task`), its events (`sk = event#SEQ`, SEQ zero-padded to 20
//!   digits so the sort key orders them), its artifacts (`sk = artifact#NAME`) and the chunks of large
//!   artifacts (`sk = chunk#NAME#I`). One partition per task: its log is one `Query`.
//! - `pk = commit#SHA256(KEY)`, `sk = commit`: a step's commit record.
//! - Two sparse global secondary indexes over task items only (they alone carry `kind`):
//!   [`INDEX_BY_CREATED`] (`kind`, `created_at`) lists tasks newest first, and [`INDEX_BY_ID`]
//!   (`kind`, `task_id`) finds the tasks an id prefix names.
//! - `pk = usage#task#TASK`, `sk = AT#UUID`: one model call of the usage ledger, also in the sparse
//!   index [`USAGE_BY_TIME`] (`usage_kind`, `at`); `pk = cache#SHA256(KEY)`: one cached model reply.
//!
//! `terraform/aws` declares the same table; its test compares it with these constants.

pub mod cache;
mod item;
pub mod store;
pub mod usage;

use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::TransactWriteItem;
use cadre_domain::ports::store::StoreError;
use std::fmt;

use crate::config::Credentials;
use item::Item;

/// The table's partition key (a string).
pub const PARTITION_KEY: &str = "pk";
/// The table's sort key (a string).
pub const SORT_KEY: &str = "sk";
/// The index that lists tasks newest first: partition key [`KIND`], sort key [`CREATED_AT`] (a number).
pub const INDEX_BY_CREATED: &str = "by_created";
/// The index that resolves id prefixes: partition key [`KIND`], sort key [`TASK_ID`] (a string).
pub const INDEX_BY_ID: &str = "by_id";
/// The attribute only task items carry (always `task`), which makes both indexes sparse.
pub const KIND: &str = "kind";
/// A task's creation time, Unix milliseconds.
pub const CREATED_AT: &str = "created_at";
/// A task's id.
pub const TASK_ID: &str = "task_id";
/// The index of model calls by time: partition key [`USAGE_KIND`], sort key [`USAGE_AT`] (a number).
pub const USAGE_BY_TIME: &str = "usage_by_time";
/// The attribute only usage items carry (always `usage`), which makes [`USAGE_BY_TIME`] sparse.
pub const USAGE_KIND: &str = "usage_kind";
/// When a model call started, Unix milliseconds (also the time of events and commits).
pub const USAGE_AT: &str = "at";

/// DynamoDB's limit on one item, name and values included.
pub(crate) const MAX_ITEM_BYTES: usize = 400 * 1024;
/// DynamoDB's limits on one `TransactWriteItems`: actions, and bytes over all its items.
pub(crate) const MAX_TRANSACTION_ITEMS: usize = 100;
pub(crate) const MAX_TRANSACTION_BYTES: usize = 4 * 1024 * 1024;

/// Where the state table is.
#[derive(Debug, Clone)]
pub struct DynamoDbConfig {
    /// The table's name.
    pub table: String,
    /// `scheme://host[:port]` of a DynamoDB-compatible server (moto, DynamoDB Local); AWS's own
    /// endpoint for the region when absent.
    pub endpoint_url: Option<String>,
    /// The region; from the environment (`AWS_REGION`, which Lambda sets), else `us-east-1`.
    pub region: Option<String>,
    /// Where credentials come from.
    pub credentials: Credentials,
}

/// Why a `dynamodb://` URL was refused.
#[derive(Debug, thiserror::Error)]
#[error("{text:?} is not a DynamoDB table ({why}); give it as dynamodb://TABLE, or dynamodb://http://HOST:PORT/TABLE for a local server")]
pub struct BadTableUrl {
    /// What was given.
    pub text: String,
    /// What is wrong with it.
    pub why: &'static str,
}

impl DynamoDbConfig {
    /// Parses `dynamodb://TABLE` (AWS) or `dynamodb://http(s)://HOST[:PORT]/TABLE` (a local server),
    /// with the default credential chain.
    ///
    /// # Errors
    /// Returns [`BadTableUrl`] for another scheme, a missing table, or a table name DynamoDB refuses
    /// (3 to 255 of `a-z A-Z 0-9 _ - .`).
    pub fn parse(text: &str) -> Result<DynamoDbConfig, BadTableUrl> {
        let bad = |why| BadTableUrl { text: text.to_owned(), why };
        let rest = text.trim().strip_prefix("dynamodb://").ok_or_else(|| bad("no dynamodb://"))?;
        let (endpoint_url, table) = if rest.starts_with("http://") || rest.starts_with("https://") {
            let scheme_end = rest.find("://").map_or(0, |i| i + 3);
            let Some(slash) = rest[scheme_end..].find('/').map(|i| scheme_end + i) else {
                return Err(bad("the server URL has no /TABLE"));
            };
            if slash == scheme_end {
                return Err(bad("the server URL has no host"));
            }
            (Some(rest[..slash].to_owned()), rest[slash + 1..].trim_matches('/'))
        } else {
            (None, rest.trim_matches('/'))
        };
        let valid = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.');
        if table.is_empty() {
            return Err(bad("it names no table"));
        }
        if !(3..=255).contains(&table.len()) || !table.chars().all(valid) {
            return Err(bad("a table name is 3 to 255 of a-z A-Z 0-9 _ - ."));
        }
        Ok(DynamoDbConfig {
            table: table.to_owned(),
            endpoint_url,
            region: None,
            credentials: Credentials::Chain,
        })
    }
}

impl fmt::Display for DynamoDbConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.endpoint_url {
            Some(url) => write!(f, "dynamodb://{url}/{}", self.table),
            None => write!(f, "dynamodb://{}", self.table),
        }
    }
}

/// A DynamoDB client bound to one table.
#[derive(Clone)]
pub(crate) struct Table {
    pub(crate) client: aws_sdk_dynamodb::Client,
    pub(crate) name: String,
}

impl fmt::Debug for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Table").field("name", &self.name).finish_non_exhaustive()
    }
}

/// How a conditional transaction ended.
#[derive(Debug)]
pub(crate) enum Written {
    /// Every write happened.
    Done,
    /// DynamoDB cancelled it; the reason code of each action, in order (`None` for the ones that
    /// were fine, `ConditionalCheckFailed`, `TransactionConflict`, …).
    Cancelled(Vec<String>),
}

impl Written {
    /// Whether the cancellation came from a condition or a concurrent transaction: what was read
    /// changed, so reading again and deciding again may succeed.
    pub(crate) fn is_contention(codes: &[String]) -> bool {
        codes.iter().any(|c| c == "ConditionalCheckFailed" || c == "TransactionConflict")
    }
}

impl Table {
    /// A client for the table `config` names.
    pub(crate) async fn connect(config: &DynamoDbConfig) -> Table {
        let sdk = crate::client::sdk_config(
            config.endpoint_url.as_deref(),
            config.region.as_deref(),
            &config.credentials,
        )
        .await;
        Table { client: aws_sdk_dynamodb::Client::new(&sdk), name: config.table.clone() }
    }

    /// Every item a query yields, page after page, stopping once `max` are gathered.
    pub(crate) async fn query_all(
        &self,
        query: QueryFluentBuilder,
        max: usize,
    ) -> Result<Vec<Item>, StoreError> {
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let out = query
                .clone()
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| self.unavailable("Query", &e))?;
            items.extend(out.items().iter().cloned());
            start = out.last_evaluated_key().cloned();
            if start.is_none() || items.len() >= max {
                items.truncate(max);
                return Ok(items);
            }
        }
    }

    /// Writes `items` in one transaction, refusing (before sending) what DynamoDB would refuse for its
    /// size with an error that says so.
    pub(crate) async fn transact(
        &self,
        what: &str,
        items: Vec<TransactWriteItem>,
        bytes: usize,
    ) -> Result<Written, StoreError> {
        if items.len() > MAX_TRANSACTION_ITEMS || bytes > MAX_TRANSACTION_BYTES {
            return Err(StoreError::Corrupt(format!(
                "{what} would write {} items of {bytes} bytes in one DynamoDB transaction, over its limit of {MAX_TRANSACTION_ITEMS} items and {MAX_TRANSACTION_BYTES} bytes; \
                 make the step's artifacts smaller (Cadre keeps no artifact outside the table on AWS yet)",
                items.len()
            )));
        }
        match self.client.transact_write_items().set_transact_items(Some(items)).send().await {
            Ok(_) => Ok(Written::Done),
            Err(SdkError::ServiceError(e)) => match e.err() {
                TransactWriteItemsError::TransactionCanceledException(cancelled) => {
                    let codes = cancelled
                        .cancellation_reasons()
                        .iter()
                        .map(|r| r.code().unwrap_or("None").to_owned())
                        .collect();
                    Ok(Written::Cancelled(codes))
                }
                other => Err(StoreError::Unavailable(format!(
                    "dynamodb table {}: TransactWriteItems for {what} failed: {} {}; check the table and the function's permissions",
                    self.name,
                    other.code().unwrap_or("error"),
                    other.message().unwrap_or_default()
                ))),
            },
            Err(e) => Err(self.unavailable("TransactWriteItems", &e)),
        }
    }

    /// A failed call as the port's error: the table, the call, the SDK's error with its causes.
    pub(crate) fn unavailable<E, R>(&self, call: &str, error: &SdkError<E, R>) -> StoreError
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
        R: fmt::Debug,
    {
        let fix = match error.code() {
            Some("ResourceNotFoundException") => {
                "; the table does not exist: create it (terraform/aws does), or fix CADRE_STATE"
            }
            Some("AccessDeniedException") => {
                "; the function's role may not do this: apply terraform/aws's policy"
            }
            _ => "",
        };
        StoreError::Unavailable(format!(
            "dynamodb table {}: {call} failed: {}{fix}",
            self.name,
            crate::client::render(error)
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::DynamoDbConfig;

    #[test]
    fn parses_table_urls() {
        let aws = DynamoDbConfig::parse("dynamodb://cadre-payments-state").unwrap();
        assert_eq!(
            (aws.table.as_str(), aws.endpoint_url.as_deref()),
            ("cadre-payments-state", None)
        );
        assert_eq!(aws.to_string(), "dynamodb://cadre-payments-state");
        let local = DynamoDbConfig::parse("dynamodb://http://127.0.0.1:5111/state_1").unwrap();
        assert_eq!(local.table, "state_1");
        assert_eq!(local.endpoint_url.as_deref(), Some("http://127.0.0.1:5111"));
        assert_eq!(local.to_string(), "dynamodb://http://127.0.0.1:5111/state_1");
        for bad in [
            "dynamodb://",
            "dynamodb://ab",
            "dynamodb://a table",
            "dynamodb://http://127.0.0.1:5111",
            "dynamodb://http:///t123",
            "sqlite",
            "table",
        ] {
            let error = DynamoDbConfig::parse(bad).unwrap_err().to_string();
            assert!(error.contains("dynamodb://TABLE"), "{bad}: {error}");
        }
    }
}
