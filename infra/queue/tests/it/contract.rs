//! The shared `Queue` contract suite, run against the embedded queue.

use cadre_domain::ports::queue::Queue;
use cadre_queue::{EmbeddedQueue, QueueConfig};
use cadre_testkit::contracts::queue::{queue_contract, CONTRACT_MAX_DELIVERIES};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Every story gets its own named queue in one shared file, so the suite also shows that named queues
/// in one file do not see each other's messages.
#[tokio::test]
async fn embedded_queue_keeps_the_queue_contract() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cadre.db");
    let stories = AtomicUsize::new(0);
    let config = QueueConfig { max_deliveries: CONTRACT_MAX_DELIVERIES };
    queue_contract(|clock| {
        let name = format!("story-{}", stories.fetch_add(1, Ordering::SeqCst));
        let queue = EmbeddedQueue::open(&path, &name, config, clock).unwrap();
        async move { Arc::new(queue) as Arc<dyn Queue> }
    })
    .await;
    assert!(stories.load(Ordering::SeqCst) >= 10, "the suite made a queue per story");
}
