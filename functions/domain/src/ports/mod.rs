//! The ports: traits through which steps and the engine reach storage, queues, models, processes and git.
//! Each has an embedded implementation in `infra/` and, where a cloud needs it, a cloud one.

pub mod clock;
pub mod forge;
pub mod knowledge;
pub mod model;
pub mod model_cache;
pub mod queue;
pub mod sandbox;
pub mod store;
pub mod usage;
pub mod vectors;
pub mod workspace;

use std::sync::Arc;

pub use clock::Clock;
pub use knowledge::KnowledgeBase;
pub use model::Model;
pub use queue::Queue;
pub use sandbox::Sandbox;
pub use store::StateStore;
pub use workspace::Workspace;

/// Every port a step or the engine may use, chosen at run time by the composition root.
#[derive(Clone)]
pub struct Ports {
    /// Tasks, events, artifacts and step commits.
    pub store: Arc<dyn StateStore>,
    /// The message bus between steps.
    pub queue: Arc<dyn Queue>,
    /// The model gateway.
    pub model: Arc<dyn Model>,
    /// Where tests run.
    pub sandbox: Arc<dyn Sandbox>,
    /// Git worktrees and patches.
    pub workspace: Arc<dyn Workspace>,
    /// Time.
    pub clock: Arc<dyn Clock>,
    /// The knowledge base: code retrieval and long-term memory.
    pub knowledge: Arc<dyn KnowledgeBase>,
}
