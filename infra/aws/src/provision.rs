//! Creating a queue with its dead-letter queue, and the state table, as `terraform/aws` does in a real
//! account: for local runs against an SQS- and DynamoDB-compatible server, the tests and the benchmark.

use aws_sdk_sqs::types::QueueAttributeName;

use crate::client::{self, Endpoint};
use crate::config::QueueUrl;
use crate::dynamodb::{self, DynamoDbConfig, Table};
use crate::sqs::ConnectError;

/// A queue to create.
#[derive(Debug, Clone)]
pub struct QueueSpec {
    /// Its name; `.fifo` is appended for a FIFO queue when missing.
    pub name: String,
    /// Whether it is FIFO (ordered per message group, de-duplicated by id for 5 minutes).
    pub fifo: bool,
    /// Receives after which SQS moves a message to the dead-letter queue.
    pub max_receives: u32,
    /// The queue's default visibility timeout, in seconds (Lambda needs at least the function's timeout).
    pub visibility_timeout_secs: u32,
}

/// Creates `<name>-dlq` and `<name>` with a redrive policy to it (both FIFO when asked), and returns the
/// queue's URL. Creating a queue that exists with the same attributes is a no-op in SQS.
///
/// # Errors
/// Returns [`ConnectError::CreateFailed`] when SQS refuses either queue.
pub async fn create_queue_with_dead_letters(
    endpoint: &Endpoint,
    spec: &QueueSpec,
) -> Result<QueueUrl, ConnectError> {
    let client = client::build(endpoint).await;
    let base = spec.name.trim_end_matches(".fifo");
    let suffix = if spec.fifo { ".fifo" } else { "" };
    let dead_name = format!("{base}-dlq{suffix}");
    let name = format!("{base}{suffix}");
    let failed =
        |name: &str, cause: String| ConnectError::CreateFailed { name: name.to_owned(), cause };

    let mut create_dead = client.create_queue().queue_name(&dead_name);
    if spec.fifo {
        create_dead = create_dead.attributes(QueueAttributeName::FifoQueue, "true");
    }
    let dead_url = create_dead
        .send()
        .await
        .map_err(|e| failed(&dead_name, client::render(&e)))?
        .queue_url()
        .unwrap_or_default()
        .to_owned();
    let dead_arn = client
        .get_queue_attributes()
        .queue_url(&dead_url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(|e| failed(&dead_name, client::render(&e)))?
        .attributes()
        .and_then(|a| a.get(&QueueAttributeName::QueueArn))
        .cloned()
        .unwrap_or_default();
    let policy = serde_json::json!({
        "deadLetterTargetArn": dead_arn,
        "maxReceiveCount": spec.max_receives.to_string(),
    });
    let mut create = client
        .create_queue()
        .queue_name(&name)
        .attributes(QueueAttributeName::RedrivePolicy, policy.to_string())
        .attributes(
            QueueAttributeName::VisibilityTimeout,
            spec.visibility_timeout_secs.to_string(),
        );
    if spec.fifo {
        create = create.attributes(QueueAttributeName::FifoQueue, "true");
    }
    let url = create.send().await.map_err(|e| failed(&name, client::render(&e)))?;
    QueueUrl::parse(url.queue_url().unwrap_or_default()).map_err(|e| failed(&name, e.to_string()))
}

/// Creates the state table as `terraform/aws` does (on-demand billing, the `pk`/`sk` keys, the two
/// task indexes and the usage index), for local runs against a DynamoDB-compatible server, the tests and the benchmark.
///
/// # Errors
/// Returns [`ConnectError::CreateFailed`] when the server refuses the table.
pub async fn create_state_table(config: &DynamoDbConfig) -> Result<(), ConnectError> {
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType,
        Projection, ProjectionType, ScalarAttributeType,
    };
    let table = Table::connect(config).await;
    let failed = |cause: String| ConnectError::CreateFailed { name: config.table.clone(), cause };
    let key = |name: &str, kind: KeyType| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(kind)
            .build()
            .map_err(|e| failed(e.to_string()))
    };
    let attribute = |name: &str, kind: ScalarAttributeType| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(kind)
            .build()
            .map_err(|e| failed(e.to_string()))
    };
    let index = |name: &str, hash: &str, sort: &str, projection: Projection| {
        GlobalSecondaryIndex::builder()
            .index_name(name)
            .key_schema(key(hash, KeyType::Hash)?)
            .key_schema(key(sort, KeyType::Range)?)
            .projection(projection)
            .build()
            .map_err(|e| failed(e.to_string()))
    };
    let with_task = Projection::builder()
        .projection_type(ProjectionType::Include)
        .non_key_attributes("task")
        .build();
    let keys_only = Projection::builder().projection_type(ProjectionType::KeysOnly).build();
    let with_row = Projection::builder()
        .projection_type(ProjectionType::Include)
        .non_key_attributes("row")
        .build();
    table
        .client
        .create_table()
        .table_name(&config.table)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attribute(dynamodb::PARTITION_KEY, ScalarAttributeType::S)?)
        .attribute_definitions(attribute(dynamodb::SORT_KEY, ScalarAttributeType::S)?)
        .attribute_definitions(attribute(dynamodb::KIND, ScalarAttributeType::S)?)
        .attribute_definitions(attribute(dynamodb::CREATED_AT, ScalarAttributeType::N)?)
        .attribute_definitions(attribute(dynamodb::TASK_ID, ScalarAttributeType::S)?)
        .attribute_definitions(attribute(dynamodb::USAGE_KIND, ScalarAttributeType::S)?)
        .attribute_definitions(attribute(dynamodb::USAGE_AT, ScalarAttributeType::N)?)
        .key_schema(key(dynamodb::PARTITION_KEY, KeyType::Hash)?)
        .key_schema(key(dynamodb::SORT_KEY, KeyType::Range)?)
        .global_secondary_indexes(index(
            dynamodb::INDEX_BY_CREATED,
            dynamodb::KIND,
            dynamodb::CREATED_AT,
            with_task,
        )?)
        .global_secondary_indexes(index(
            dynamodb::INDEX_BY_ID,
            dynamodb::KIND,
            dynamodb::TASK_ID,
            keys_only,
        )?)
        .global_secondary_indexes(index(
            dynamodb::USAGE_BY_TIME,
            dynamodb::USAGE_KIND,
            dynamodb::USAGE_AT,
            with_row,
        )?)
        .send()
        .await
        .map_err(|e| failed(crate::client::render(&e)))?;
    Ok(())
}
