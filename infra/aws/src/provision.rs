//! Creating a queue with its dead-letter queue, as `terraform/aws` does in a real account: for local
//! runs against an SQS-compatible server, the tests and the benchmark.

use aws_sdk_sqs::types::QueueAttributeName;

use crate::client::{self, Endpoint};
use crate::config::QueueUrl;
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
