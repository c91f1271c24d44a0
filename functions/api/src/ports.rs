//! What the API is built from: the domain ports it reads and writes, and its limits.

use std::sync::Arc;
use std::time::Duration;

use cadre_domain::ports::usage::UsageLedger;
use cadre_domain::ports::{Clock, Queue, StateStore, Workspace};

/// The ports the API uses: the same store and queue the workers use, the usage ledger the gateway
/// writes, git to find a repository's head, and time.
#[derive(Clone)]
pub struct ApiPorts {
    /// Tasks, events and artifacts.
    pub store: Arc<dyn StateStore>,
    /// Where a new or resumed task's next step is published.
    pub queue: Arc<dyn Queue>,
    /// Spend per task and per team.
    pub ledger: Arc<dyn UsageLedger>,
    /// Finds a repository's root and head commit.
    pub workspace: Arc<dyn Workspace>,
    /// Time.
    pub clock: Arc<dyn Clock>,
}

/// The API's limits and defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiConfig {
    /// The budget of a task created without one, in micro-dollars.
    pub default_budget_micros: Option<u64>,
    /// A team's daily model budget; a task is refused (409) once the team's spend today reaches it.
    /// The gateway enforces the same limit call by call while tasks run.
    pub team_daily_budget_micros: Option<u64>,
    /// Rounds of a task created without a number.
    pub default_rounds: u32,
    /// The most rounds a caller may ask for.
    pub max_rounds: u32,
    /// The longest an events long-poll is held open.
    pub max_wait: Duration,
    /// How often a held long-poll looks at the store.
    pub poll: Duration,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            default_budget_micros: Some(2_000_000),
            team_daily_budget_micros: None,
            default_rounds: 3,
            max_rounds: 10,
            max_wait: Duration::from_secs(30),
            poll: Duration::from_millis(200),
        }
    }
}
