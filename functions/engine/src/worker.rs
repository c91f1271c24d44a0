//! The worker loop: receive, handle concurrently, repeat until told to stop.

use cadre_domain::ports::queue::Delivery;
use cadre_domain::Ports;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::backoff::Backoff;
use crate::handle::{handle, Handled};

/// How the engine treats messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EngineConfig {
    /// How long a received message stays hidden; heartbeats extend it every third of this while its step runs.
    pub visibility: Duration,
    /// Deliveries before a retryable failure is dead-lettered.
    pub max_attempts: u32,
    /// Backoff between retries.
    pub backoff: Backoff,
    /// Messages handled at once.
    pub concurrency: usize,
    /// Pause between polls of an empty queue.
    pub idle_poll: Duration,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            visibility: Duration::from_secs(60),
            max_attempts: 5,
            backoff: Backoff { base: Duration::from_secs(2), max: Duration::from_secs(120) },
            concurrency: 4,
            idle_poll: Duration::from_millis(25),
        }
    }
}

/// Runs steps for messages from the queue in [`Ports`].
#[derive(Clone)]
pub struct Engine {
    ports: Ports,
    config: EngineConfig,
}

impl Engine {
    /// An engine over `ports`.
    #[must_use]
    pub fn new(ports: Ports, config: EngineConfig) -> Self {
        Engine { ports, config }
    }

    /// The ports it runs on.
    #[must_use]
    pub fn ports(&self) -> &Ports {
        &self.ports
    }

    /// Handles one delivery to settlement.
    pub async fn handle(&self, delivery: Delivery) -> Handled {
        handle(&self.ports, &self.config, delivery).await
    }

    /// Receives and handles messages until `stop` turns true. In-flight messages are finished before it
    /// returns; a process killed instead leaves them to be redelivered after their visibility timeout.
    pub async fn run(&self, mut stop: watch::Receiver<bool>) {
        let mut in_flight: JoinSet<Handled> = JoinSet::new();
        let mut idle = self.config.idle_poll;
        loop {
            if *stop.borrow() {
                break;
            }
            let free = self.config.concurrency.saturating_sub(in_flight.len());
            let received = if free > 0 {
                match self.ports.queue.receive(free, self.config.visibility).await {
                    Ok(deliveries) => deliveries,
                    Err(error) => {
                        tracing::warn!(%error, "could not receive from the queue");
                        Vec::new()
                    }
                }
            } else {
                Vec::new()
            };
            let got_some = !received.is_empty();
            for delivery in received {
                let engine = self.clone();
                in_flight.spawn(async move { engine.handle(delivery).await });
            }
            if got_some {
                idle = self.config.idle_poll;
                continue;
            }
            tokio::select! {
                Some(_) = in_flight.join_next(), if !in_flight.is_empty() => {}
                () = tokio::time::sleep(idle) => {
                    idle = (idle * 2).min(self.config.idle_poll * 8);
                }
                _ = stop.changed() => {}
            }
        }
        while in_flight.join_next().await.is_some() {}
    }
}
