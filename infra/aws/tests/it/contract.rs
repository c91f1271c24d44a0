//! The `Queue` port's contract suite against SQS.
//!
//! Only the basic half runs: SQS keeps its own time, so the timed stories (which move a manual clock
//! through visibility timeouts and delays) cannot drive it; `sqs.rs` covers the same behaviour with
//! real, short waits. The queue is FIFO, because only FIFO queues drop a re-published message id
//! (within SQS's 5-minute de-duplication window), which the suite's duplicate story requires.

use cadre_domain::ports::queue::Queue;
use cadre_testkit::contracts::queue::{queue_contract_basic, CONTRACT_MAX_DELIVERIES};
use std::sync::Arc;

use crate::moto;

#[tokio::test]
async fn sqs_fifo_queue_passes_the_basic_contract() {
    queue_contract_basic(|| async {
        moto::queue("contract", true, CONTRACT_MAX_DELIVERIES).await as Arc<dyn Queue>
    })
    .await;
}
