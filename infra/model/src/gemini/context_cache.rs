//! Explicit context caching (`cachedContents`): a task's requests that repeat a large prefix (system
//! instruction, tools and first turns) send it once into a cached content, then refer to it by name.
//!
//! It lives in the Gemini provider, not the gateway, because using a cache rewrites the request in wire
//! terms (the API refuses `systemInstruction`, `tools` or `toolConfig` beside `cachedContent`), which
//! only the provider knows; the gateway still limits, retries and accounts the call as one. Providers
//! without the feature (OpenAI-compatible, replay) simply have none.
//!
//! **When.** Only for calls that name a task, and only for a prefix this task has sent before (once
//! seen, a prefix is taken to come again), at least the model's minimum cacheable size, and only when
//! [`ContextCacheConfig::saves_money`] says one reuse pays for the cache: creating it bills the prefix
//! at the input price (as sending it would have), the creating call then reads it at the cached price,
//! and storage is billed per hour of the TTL, so one reuse saves `input − cached` per token against
//! `cached + storage × ttl`. A task holds at most [`MAX_CACHES_PER_TASK`] caches; a request that
//! matches one uses it rather than creating a longer one, which keeps an agent loop (whose prefix grows
//! every turn) on one cache of its first turns.
//!
//! **Accounting.** The usage of the call that created a cache includes the cache's tokens as input
//! (the creation charge); `cachedContentTokenCount` is reported as cached tokens on every call that
//! reads it. Storage is priced in the decision but is not a token and is not in the ledger.
//!
//! **End.** Caches expire by their TTL; [`super::GeminiModel::release_context_caches`] deletes a task's
//! caches at once when the caller knows the task is over. A failed creation is logged and the call goes
//! out whole; a cache the provider no longer knows (expired early, deleted) is forgotten and the call
//! is resent whole.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use cadre_domain::ports::model::{ModelRequest, ToolMode};
use cadre_domain::TaskId;
use sha2::{Digest, Sha256};
use tokio::time::Instant;

use crate::gateway::{ContextCachePrice, ModelPrice, PriceTable};

/// Caches one task may hold at once, bounding storage fees.
pub const MAX_CACHES_PER_TASK: usize = 4;
/// Prefixes remembered per task, to notice one coming again.
const SEEN_PER_TASK: usize = 256;
/// Tasks tracked at once; the least recently used is dropped (its caches then just expire).
const MAX_TASKS: usize = 1_024;
/// A cache this close to its expiry is not used: the call could reach the provider after it.
const EXPIRY_MARGIN: Duration = Duration::from_secs(30);
/// The default time a cache lives.
pub const DEFAULT_CACHE_TTL: Duration = Duration::from_secs(600);

/// Prices and lifetime of the caches of one model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContextCacheConfig {
    /// How long a cache lives (sent as its `ttl`).
    pub ttl: Duration,
    /// The model's token prices.
    pub price: ModelPrice,
    /// Its storage price and minimum size.
    pub cache: ContextCachePrice,
}

impl ContextCacheConfig {
    /// The configuration of `model` from a price table, or `None` when the table has no
    /// `context_cache` entry for it (then caching stays off).
    #[must_use]
    pub fn from_table(
        table: &PriceTable,
        model: &str,
        ttl: Duration,
    ) -> Option<ContextCacheConfig> {
        Some(ContextCacheConfig {
            ttl,
            price: table.price(model)?,
            cache: table.context_cache(model)?,
        })
    }

    /// Whether one reuse of a cache pays for it: per token, `input − cached` saved against
    /// `cached + storage × ttl` spent (see the module docs).
    #[must_use]
    pub fn saves_money(&self) -> bool {
        let tier = self.price.base;
        let saved = u128::from(tier.input.saturating_sub(tier.cached_input)) * 3_600_000;
        let spent = u128::from(tier.cached_input) * 3_600_000
            + u128::from(self.cache.storage_per_hour) * self.ttl.as_millis();
        saved > spent
    }
}

/// A cache to use for one call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct CacheUse {
    /// The cached content's resource name.
    pub(super) name: String,
    /// How many leading turns it holds.
    pub(super) turns: usize,
}

/// What a new cache needs: which prefix, under which fingerprint.
#[derive(Debug)]
pub(super) struct Creation {
    pub(super) task: TaskId,
    pub(super) fingerprint: [u8; 32],
    pub(super) turns: usize,
}

#[derive(Debug)]
struct Entry {
    fingerprint: [u8; 32],
    name: String,
    turns: usize,
    expires: Instant,
    /// Tokens of the creation not yet added to a successful call's usage.
    uncharged: u64,
}

#[derive(Debug, Default)]
struct TaskCaches {
    seen: VecDeque<[u8; 32]>,
    caches: Vec<Entry>,
    pending: HashSet<[u8; 32]>,
    /// A creation failed: the provider refuses caches for this task (too small, no quota), so none
    /// is tried again.
    refused: bool,
    last_used: u64,
}

/// Every task's caches and the prefixes it has sent.
#[derive(Debug)]
pub(super) struct ContextCaches {
    config: ContextCacheConfig,
    tasks: Mutex<(HashMap<TaskId, TaskCaches>, u64)>,
}

/// What to do for one call.
#[derive(Debug)]
pub(super) enum Plan {
    /// Send it whole.
    Whole,
    /// Use this cache.
    Use(CacheUse),
    /// Create a cache of this prefix first.
    Create(Creation),
}

impl ContextCaches {
    pub(super) fn new(config: ContextCacheConfig) -> ContextCaches {
        ContextCaches { config, tasks: Mutex::new((HashMap::new(), 0)) }
    }

    pub(super) fn ttl(&self) -> Duration {
        self.config.ttl
    }

    /// Decides for `request` sent to `model`; records its prefixes as seen.
    pub(super) fn plan(&self, model: &str, request: &ModelRequest) -> Plan {
        let Some(task) = &request.task else { return Plan::Whole };
        if request.messages.is_empty() {
            return Plan::Whole;
        }
        let prefixes = prefixes(model, request);
        let now = Instant::now();
        let mut guard = self.tasks.lock().unwrap_or_else(PoisonError::into_inner);
        let (tasks, clock) = &mut *guard;
        *clock += 1;
        if !tasks.contains_key(task) && tasks.len() >= MAX_TASKS {
            if let Some(oldest) =
                tasks.iter().min_by_key(|(_, t)| t.last_used).map(|(k, _)| k.clone())
            {
                tasks.remove(&oldest);
            }
        }
        let state = tasks.entry(task.clone()).or_default();
        state.last_used = *clock;
        state.caches.retain(|e| e.expires > now + EXPIRY_MARGIN);
        let live = state
            .caches
            .iter()
            .filter(|e| prefixes.get(e.turns).is_some_and(|p| p.fingerprint == e.fingerprint))
            .max_by_key(|e| e.turns)
            .map(|e| CacheUse { name: e.name.clone(), turns: e.turns });
        let busy =
            state.refused || !state.pending.is_empty() || state.caches.len() >= MAX_CACHES_PER_TASK;
        let creation = if live.is_some() || busy {
            None
        } else {
            prefixes
                .iter()
                .enumerate()
                .rev()
                .find(|(turns, p)| {
                    (*turns > 0 || p.has_preamble)
                        && p.tokens >= self.config.cache.min_tokens
                        && state.seen.contains(&p.fingerprint)
                        && !state.pending.contains(&p.fingerprint)
                })
                .map(|(turns, p)| Creation {
                    task: task.clone(),
                    fingerprint: p.fingerprint,
                    turns,
                })
        };
        for prefix in &prefixes {
            if !state.seen.contains(&prefix.fingerprint) {
                if state.seen.len() >= SEEN_PER_TASK {
                    state.seen.pop_front();
                }
                state.seen.push_back(prefix.fingerprint);
            }
        }
        match (live, creation) {
            (Some(live), _) => Plan::Use(live),
            (None, Some(creation)) => {
                state.pending.insert(creation.fingerprint);
                Plan::Create(creation)
            }
            (None, None) => Plan::Whole,
        }
    }

    /// Records the outcome of a creation: the cache `name` holding `tokens`, or a refusal (after which
    /// this task creates no cache).
    pub(super) fn created(
        &self,
        creation: &Creation,
        outcome: Option<(String, u64)>,
    ) -> Option<CacheUse> {
        let mut guard = self.tasks.lock().unwrap_or_else(PoisonError::into_inner);
        let state = guard.0.entry(creation.task.clone()).or_default();
        state.pending.remove(&creation.fingerprint);
        let Some((name, tokens)) = outcome else {
            state.refused = true;
            return None;
        };
        state.caches.push(Entry {
            fingerprint: creation.fingerprint,
            name: name.clone(),
            turns: creation.turns,
            expires: Instant::now() + self.config.ttl,
            uncharged: tokens,
        });
        Some(CacheUse { name, turns: creation.turns })
    }

    /// The creation tokens of cache `name` not yet charged, now charged to the caller's reply.
    pub(super) fn take_charge(&self, name: &str) -> u64 {
        let mut guard = self.tasks.lock().unwrap_or_else(PoisonError::into_inner);
        guard
            .0
            .values_mut()
            .flat_map(|t| t.caches.iter_mut())
            .find(|e| e.name == name)
            .map_or(0, |e| std::mem::take(&mut e.uncharged))
    }

    /// Forgets cache `name` (the provider no longer knows it).
    pub(super) fn forget(&self, name: &str) {
        let mut guard = self.tasks.lock().unwrap_or_else(PoisonError::into_inner);
        for state in guard.0.values_mut() {
            state.caches.retain(|e| e.name != name);
        }
    }

    /// Removes and returns the names of `task`'s caches (of every task when `None`), to delete them.
    pub(super) fn drain(&self, task: Option<&TaskId>) -> Vec<String> {
        let mut guard = self.tasks.lock().unwrap_or_else(PoisonError::into_inner);
        let tasks = &mut guard.0;
        let drained: Vec<TaskCaches> = match task {
            Some(task) => tasks.remove(task).into_iter().collect(),
            None => tasks.drain().map(|(_, t)| t).collect(),
        };
        drained.into_iter().flat_map(|t| t.caches).map(|e| e.name).collect()
    }
}

/// One candidate prefix: the preamble plus the first `turns` turns (its index).
#[derive(Debug)]
struct Prefix {
    fingerprint: [u8; 32],
    tokens: u64,
    has_preamble: bool,
}

/// The prefixes of `request` that leave at least its last turn to send: 0 turns (preamble only) up to
/// all but the last. Fingerprints chain, so each costs one hash of its last turn.
fn prefixes(model: &str, request: &ModelRequest) -> Vec<Prefix> {
    let tools = serde_json::to_string(&request.tools).unwrap_or_default();
    let mode = match request.tool_mode {
        ToolMode::Auto => "auto",
        ToolMode::Required => "required",
        ToolMode::None => "none",
    };
    let mut hasher = Sha256::new();
    for field in [model, &request.system, &tools, mode] {
        hasher.update(field.len().to_le_bytes());
        hasher.update(field.as_bytes());
    }
    let mut fingerprint: [u8; 32] = hasher.finalize().into();
    let has_preamble = !request.system.is_empty() || !request.tools.is_empty();
    let mut bytes = request.system.len() + if request.tools.is_empty() { 0 } else { tools.len() };
    let tokens = |bytes: usize| u64::try_from(bytes.div_ceil(4)).unwrap_or(u64::MAX);
    let mut out = vec![Prefix { fingerprint, tokens: tokens(bytes), has_preamble }];
    for message in &request.messages[..request.messages.len() - 1] {
        let json = serde_json::to_string(message).unwrap_or_default();
        let mut hasher = Sha256::new();
        hasher.update(fingerprint);
        hasher.update(json.as_bytes());
        fingerprint = hasher.finalize().into();
        bytes += json.len();
        out.push(Prefix { fingerprint, tokens: tokens(bytes), has_preamble });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use cadre_domain::ports::model::ChatMessage;

    fn config(ttl_s: u64) -> ContextCacheConfig {
        ContextCacheConfig {
            ttl: Duration::from_secs(ttl_s),
            price: ModelPrice::per_million_usd(0.50, 3.00, 0.05),
            cache: ContextCachePrice { storage_per_hour: 1_000_000, min_tokens: 100 },
        }
    }

    #[test]
    fn one_reuse_pays_for_a_short_lived_cache_but_not_an_hour_long_one() {
        // Saved 0.45 per token; spent 0.05 + 1.00 × hours.
        assert!(config(600).saves_money());
        assert!(config(1_400).saves_money());
        assert!(!config(1_500).saves_money());
        assert!(!config(3_600).saves_money());
    }

    fn request(task: &TaskId, turns: &[&str]) -> ModelRequest {
        let messages = turns
            .iter()
            .enumerate()
            .map(|(i, t)| if i % 2 == 0 { ChatMessage::user(*t) } else { ChatMessage::model(*t) })
            .collect();
        ModelRequest {
            task: Some(task.clone()),
            ..ModelRequest::new("generate", "s".repeat(40), messages)
        }
    }

    #[tokio::test]
    async fn a_prefix_seen_before_is_cached_then_reused_and_a_growing_loop_keeps_one_cache() {
        let caches = ContextCaches::new(config(600));
        let task = TaskId::generate();
        let repo = "r".repeat(800);
        let turns = [repo.as_str(), "ok", "fix it", "done", "and the test", "done", "thanks"];
        assert!(matches!(caches.plan("m", &request(&task, &turns[..1])), Plan::Whole));
        // The preamble alone was seen, but it is below the minimum size; [repo] is new.
        assert!(matches!(caches.plan("m", &request(&task, &turns[..3])), Plan::Whole));
        let Plan::Create(creation) = caches.plan("m", &request(&task, &turns[..5])) else {
            panic!("the longest prefix seen before should be cached")
        };
        assert_eq!(creation.turns, 2);
        assert!(
            matches!(caches.plan("m", &request(&task, &turns[..5])), Plan::Whole),
            "a creation in flight is not started twice"
        );
        let used = caches.created(&creation, Some(("cachedContents/c1".into(), 300))).unwrap();
        assert_eq!(used, CacheUse { name: "cachedContents/c1".into(), turns: 2 });
        let Plan::Use(later) = caches.plan("m", &request(&task, &turns)) else {
            panic!("a longer conversation with the same start uses the cache")
        };
        assert_eq!(later, used);
        assert_eq!(
            (caches.take_charge("cachedContents/c1"), caches.take_charge("cachedContents/c1")),
            (300, 0)
        );
        // Another task, or another model, shares nothing.
        assert!(matches!(caches.plan("m", &request(&TaskId::generate(), &turns)), Plan::Whole));
        assert!(matches!(caches.plan("other", &request(&task, &turns)), Plan::Whole));
        assert_eq!(caches.drain(Some(&task)), ["cachedContents/c1"]);
        assert!(caches.drain(None).is_empty());
    }

    #[tokio::test]
    async fn a_refused_creation_is_not_tried_again() {
        let caches = ContextCaches::new(config(600));
        let task = TaskId::generate();
        let big = "b".repeat(800);
        let turns = [big.as_str(), "ok", "go"];
        let _ = caches.plan("m", &request(&task, &turns));
        let Plan::Create(creation) = caches.plan("m", &request(&task, &turns)) else { panic!() };
        assert_eq!(caches.created(&creation, None), None);
        assert!(matches!(caches.plan("m", &request(&task, &turns)), Plan::Whole));
    }

    #[tokio::test]
    async fn small_prefixes_and_calls_without_a_task_are_sent_whole() {
        let caches = ContextCaches::new(config(600));
        let no_task = ModelRequest::new("plan", "s", vec![ChatMessage::user("u")]);
        assert!(matches!(caches.plan("m", &no_task), Plan::Whole));
        assert!(matches!(caches.plan("m", &no_task), Plan::Whole));
    }
}
