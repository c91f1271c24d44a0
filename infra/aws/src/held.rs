//! What this process remembers about the deliveries it handed out.
//!
//! SQS forgets less than the `Queue` port promises to check: it accepts a delete with a receipt whose
//! message was deleted already, or redelivered since, and a dead letter needs the original bytes, which
//! the port's `dead_letter(receipt, reason)` does not pass. So the adapter keeps, per receipt it handed
//! out, the message's bytes and group, and remembers receipts it settled (or that a redelivery to this
//! process replaced) so a second use is refused as stale. This is in-process memory: a receipt from
//! another process is only checked by SQS itself (see ARCHITECTURE.md for where SQS differs).

use cadre_domain::ports::queue::Receipt;
use cadre_domain::MessageId;
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

/// How long after its message became visible again a held entry is kept.
const FORGET_AFTER: Duration = Duration::from_secs(15 * 60);
/// Settled receipts remembered, newest kept; older ones fall back to SQS's own checks.
const SETTLED_CAPACITY: usize = 65_536;

/// How a delivery was settled through this process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settlement {
    /// Done: deleted, or left for Lambda to delete.
    Acked,
    /// Copied to the dead-letter queue with its reason.
    DeadLettered,
    /// Handed back to come again after a delay.
    RetryLater,
    /// A later delivery of the same message to this process replaced the receipt.
    Superseded,
}

/// Where a delivery came from, which decides whether an ack deletes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Origin {
    /// This process received it: an ack deletes it.
    Received,
    /// A Lambda event carried it: the event source mapping deletes it when the record is not reported
    /// as failed, so an ack only records the outcome.
    Lambda,
}

/// A delivery handed out and not yet settled.
#[derive(Debug, Clone)]
pub(crate) struct Held {
    pub(crate) sqs_id: String,
    pub(crate) id: MessageId,
    pub(crate) body: Vec<u8>,
    pub(crate) group: Option<String>,
    pub(crate) delivery_count: u32,
    pub(crate) origin: Origin,
    /// When SQS will make the message visible again.
    pub(crate) visible_at: Instant,
}

#[derive(Default)]
struct Inner {
    held: HashMap<Receipt, Held>,
    /// The current receipt of each SQS message held.
    by_message: HashMap<String, Receipt>,
    settled: HashMap<Receipt, Settlement>,
    settled_order: VecDeque<Receipt>,
}

/// The bookkeeping, shared by every call on one queue.
#[derive(Default)]
pub(crate) struct Ledger {
    inner: Mutex<Inner>,
}

impl Ledger {
    /// Records a new delivery; a receipt this process held for the same message becomes stale.
    pub(crate) fn hold(&self, receipt: Receipt, held: Held) {
        let mut inner = self.lock();
        // An entry whose message became visible again stays a while, so that a redelivery of the
        // message to this process finds the old receipt and marks it stale; long after, it is dropped.
        let now = Instant::now();
        let expired: Vec<Receipt> = inner
            .held
            .iter()
            .filter(|(_, h)| h.visible_at + FORGET_AFTER < now)
            .map(|(r, _)| r.clone())
            .collect();
        for receipt in expired {
            inner.forget(&receipt);
        }
        if let Some(old) = inner.by_message.get(&held.sqs_id).cloned() {
            if old != receipt {
                inner.forget(&old);
                inner.settle(old, Settlement::Superseded);
            }
        }
        inner.by_message.insert(held.sqs_id.clone(), receipt.clone());
        inner.held.insert(receipt, held);
    }

    /// The delivery behind a receipt, if this process holds it.
    pub(crate) fn get(&self, receipt: &Receipt) -> Option<Held> {
        self.lock().held.get(receipt).cloned()
    }

    /// How the receipt was settled, if this process settled it.
    pub(crate) fn settlement(&self, receipt: &Receipt) -> Option<Settlement> {
        self.lock().settled.get(receipt).copied()
    }

    /// Marks a receipt settled; later uses are refused as stale.
    pub(crate) fn settle(&self, receipt: &Receipt, how: Settlement) {
        let mut inner = self.lock();
        inner.forget(receipt);
        inner.settle(receipt.clone(), how);
    }

    /// Pushes back the time the held message becomes visible (after an extend).
    pub(crate) fn extend(&self, receipt: &Receipt, visible_at: Instant) {
        if let Some(held) = self.lock().held.get_mut(receipt) {
            held.visible_at = visible_at;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding this lock leaves plain maps behind, still consistent enough to use.
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Inner {
    fn forget(&mut self, receipt: &Receipt) {
        if let Some(held) = self.held.remove(receipt) {
            if self.by_message.get(&held.sqs_id) == Some(receipt) {
                self.by_message.remove(&held.sqs_id);
            }
        }
    }

    fn settle(&mut self, receipt: Receipt, how: Settlement) {
        if self.settled.insert(receipt.clone(), how).is_none() {
            self.settled_order.push_back(receipt);
        }
        while self.settled_order.len() > SETTLED_CAPACITY {
            if let Some(oldest) = self.settled_order.pop_front() {
                self.settled.remove(&oldest);
            }
        }
    }
}
