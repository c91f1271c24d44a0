//! The model gateway: every model call goes through one [`Gateway`], which wraps a provider (`Arc<dyn Model>`)
//! and is itself a [`Model`], so steps cannot tell it is there.
//!
//! For each call, in this order:
//! 1. **cache**: a deterministic call (temperature 0 or unset, not bypassed) is answered from the
//!    [`ModelCache`] when an entry exists (no provider call, no tokens, a `cache_hit` ledger row);
//! 2. **budget**: a call for a task is refused with [`ModelError::BudgetExceeded`] when the task's spend,
//!    plus its calls in flight, plus this call's worst case would pass the per-task budget;
//! 3. **attempts**, each one: the **circuit breaker** fails fast while the provider is down, the **rate
//!    limiter** waits for request and token capacity, the provider is called within what is left of the
//!    call's **deadline**; throttling, 5xx and transport errors are **retried** with full-jitter backoff
//!    and never sooner than the provider asked;
//! 4. **accounting**: one [`UsageRecord`] per call, whatever the outcome (a call abandoned by its caller
//!    is recorded as `cancelled` from a spawned task), with tokens, latency, attempts and the cost from
//!    the [`PriceTable`].
//!
//! `stream` and `count_tokens` take the same path as `complete`: a streamed call is cached, budgeted,
//! limited, retried (a broken stream restarts from its beginning; the text handed out before the break
//! is void, as the port says) and accounted once; a cache hit hands the whole text to `on_text` at once.
//! A token count is never cached, takes one request (and no tokens) from the limiter, and leaves a row
//! with zero tokens and zero cost.
//!
//! Explicit context caching (`cachedContents`) is not here but in the Gemini provider, which alone can
//! rewrite a request around a cached prefix; see `gemini/context_cache.rs`.
//!
//! Key decision: the gateway owns every cross-call concern (limits, breaker, budget, cache), so providers
//! stay one-request translators and the engine's retries (of retryable errors) sit on top of a call that
//! has already retried within its deadline.
//!
//! ```ignore
//! let gateway = Gateway::new(provider, GatewayConfig::new("gemini-3-flash-preview"), GatewayPorts {
//!     ledger: Arc::new(MemoryUsageLedger::new()),
//!     cache: Arc::new(MemoryModelCache::default()),
//!     clock: Arc::new(SystemClock),
//! })?;
//! let (plan, _reply): (Plan, _) = complete_json(&gateway, &request_with_schema).await?;
//! ```

pub(crate) mod breaker;
mod budget;
mod cache;
mod ledger;
pub(crate) mod limiter;
mod prices;
mod retry;
mod structured;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use cadre_domain::ports::clock::Clock;
use cadre_domain::ports::model::{Model, ModelError, ModelReply, ModelRequest, TokenUsage};
use cadre_domain::ports::model_cache::{CacheKey, ModelCache};
use cadre_domain::ports::usage::{CallOutcome, UsageLedger, UsageRecord};
use tokio::time::Instant;
use tracing::{debug, error, warn};

pub use breaker::{BreakerConfig, CircuitBreaker};
pub use cache::{cache_key, is_cacheable, is_storable, MemoryModelCache};
pub use ledger::MemoryUsageLedger;
pub use limiter::{estimate_tokens, RateLimit, TokenEstimate};
pub use prices::{ContextCachePrice, ModelPrice, PriceTable, TierPrice};
pub use retry::{is_retried, RetryPolicy};
pub use structured::{complete_json, strip_json_fence};

use breaker::Verdict;
use budget::{Budget, Reservation};
use limiter::{millis, RateLimiter};

/// The default whole-call deadline: waits, attempts and backoff included.
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(300);

/// The output assumed for estimates when a request sets no `max_output_tokens`.
pub const DEFAULT_OUTPUT_TOKENS: u32 = 8_192;

/// One deployment's settings for one model.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// The model id used for prices, cache keys and ledger rows, e.g. `gemini-3-flash-preview`.
    pub model: String,
    /// Requests per window, or no limit.
    pub requests: Option<RateLimit>,
    /// Tokens (input + output) per window, or no limit.
    pub tokens: Option<RateLimit>,
    /// Retries of throttling, 5xx and transport errors.
    pub retry: RetryPolicy,
    /// When the provider is considered down.
    pub breaker: BreakerConfig,
    /// The whole call's deadline.
    pub deadline: Duration,
    /// Output tokens assumed when a request sets no cap (rate-limit and budget estimates).
    pub default_output_tokens: u32,
    /// The most one task may spend on this model, in micro-dollars; no limit when absent.
    pub task_budget_micros: Option<u64>,
    /// The most one team may spend per UTC day, in micro-dollars, over the calls naming it; no limit
    /// when absent.
    pub team_daily_budget_micros: Option<u64>,
    /// Cache entries older than this are ignored; no expiry when absent.
    pub cache_ttl: Option<Duration>,
    /// Token prices.
    pub prices: PriceTable,
}

impl GatewayConfig {
    /// No limits or budget, the default retry, breaker and deadline, and the built-in prices.
    #[must_use]
    pub fn new(model: impl Into<String>) -> GatewayConfig {
        GatewayConfig {
            model: model.into(),
            requests: None,
            tokens: None,
            retry: RetryPolicy::default(),
            breaker: BreakerConfig::default(),
            deadline: DEFAULT_DEADLINE,
            default_output_tokens: DEFAULT_OUTPUT_TOKENS,
            task_budget_micros: None,
            team_daily_budget_micros: None,
            cache_ttl: None,
            prices: PriceTable::builtin(),
        }
    }

    fn validate(&self) -> Result<(), ModelError> {
        let bad = |hint: String| Err(ModelError::NotConfigured { hint });
        if self.model.trim().is_empty() {
            return bad(
                "the gateway's model id is empty; set it to the id prices are listed under, \
                        e.g. gemini-3-flash-preview"
                    .to_owned(),
            );
        }
        if self.retry.max_attempts == 0 {
            return bad(
                "the gateway's retry.max_attempts is 0; set it to 1 or more (1 = no retry)"
                    .to_owned(),
            );
        }
        if self.breaker.failure_threshold == 0 {
            return bad(
                "the gateway's breaker.failure_threshold is 0; set it to 1 or more".to_owned()
            );
        }
        if self.deadline.is_zero() {
            return bad("the gateway's call deadline is 0; set it to the longest a call may take"
                .to_owned());
        }
        if let Some(limit) = &self.requests {
            limit.validate("requests")?;
        }
        if let Some(limit) = &self.tokens {
            limit.validate("tokens")?;
        }
        Ok(())
    }
}

/// Where the gateway records usage, caches replies and reads the wall clock (for ledger rows and cache
/// ages; waits use tokio time).
#[derive(Clone)]
pub struct GatewayPorts {
    /// One row per call.
    pub ledger: Arc<dyn UsageLedger>,
    /// Replies of deterministic calls.
    pub cache: Arc<dyn ModelCache>,
    /// Wall-clock time.
    pub clock: Arc<dyn Clock>,
}

/// A provider behind limits, retries, a breaker, a cache, a budget and accounting.
pub struct Gateway {
    inner: Arc<dyn Model>,
    provider: String,
    config: GatewayConfig,
    price: Option<ModelPrice>,
    limiter: RateLimiter,
    breaker: Arc<CircuitBreaker>,
    budget: Budget,
    ports: GatewayPorts,
}

impl fmt::Debug for Gateway {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Gateway")
            .field("provider", &self.provider)
            .field("model", &self.config.model)
            .finish_non_exhaustive()
    }
}

impl Gateway {
    /// Puts `inner` behind a gateway configured by `config`.
    ///
    /// # Errors
    /// [`ModelError::NotConfigured`] naming the setting when the configuration is not usable (an empty
    /// model id, zero attempts, a zero deadline, a rate limit whose burst is not below its limit).
    pub fn new(
        inner: Arc<dyn Model>,
        config: GatewayConfig,
        ports: GatewayPorts,
    ) -> Result<Gateway, ModelError> {
        config.validate()?;
        let provider = inner.describe();
        let price = config.prices.price(&config.model);
        if price.is_none() {
            warn!(model = %config.model, "the model is not in the price table; its calls are recorded at cost 0 \
                  and budgets cannot limit them; add it to the price table");
        }
        Ok(Gateway {
            limiter: RateLimiter::new(config.requests, config.tokens),
            breaker: Arc::new(CircuitBreaker::new(provider.clone(), config.breaker)),
            budget: Budget::new(config.task_budget_micros),
            inner,
            provider,
            price,
            config,
            ports,
        })
    }

    /// Uses `breaker` instead of this gateway's own, so gateways for several models of one provider
    /// open and close together.
    #[must_use]
    pub fn with_breaker(mut self, breaker: Arc<CircuitBreaker>) -> Gateway {
        self.breaker = breaker;
        self
    }

    /// The breaker this gateway reports to.
    #[must_use]
    pub fn breaker(&self) -> &Arc<CircuitBreaker> {
        &self.breaker
    }

    /// Cache, budget, then attempts; fills in what the ledger row needs as it goes.
    async fn serve(
        &self,
        request: &ModelRequest,
        op: Op<'_>,
        started: Instant,
        row: &mut PendingRow,
    ) -> Result<Answer, ModelError> {
        let key = (!matches!(op, Op::Count) && is_cacheable(request))
            .then(|| cache_key(&self.config.model, request));
        if let Some(key) = &key {
            if let Some(reply) = self.cached(key).await {
                row.record.cache_hit = true;
                if let Op::Stream(on_text) = op {
                    on_text(&reply.text);
                }
                return Ok(Answer::Reply(reply));
            }
        }
        let estimate = match op {
            // Counting bills no tokens; it still takes a request from the limiter.
            Op::Count => TokenEstimate { input: 0, output: 0 },
            Op::Complete | Op::Stream(_) => {
                estimate_tokens(request, self.config.default_output_tokens)
            }
        };
        let worst = self.price.map_or(0, |p| p.worst_case_micros(estimate));
        if let (Some(team), Some(limit)) = (&request.team, self.config.team_daily_budget_micros) {
            let now = self.ports.clock.now();
            row.team_reservation =
                Some(self.budget.reserve_team(&*self.ports.ledger, team, worst, limit, now).await?);
        }
        if let Some(task) = &request.task {
            row.reservation = self
                .budget
                .reserve(&*self.ports.ledger, task, worst, request.budget_micros)
                .await?;
        }
        let answer = self.attempts(request, op, estimate, started, row).await?;
        if let (Some(key), Answer::Reply(reply)) = (&key, &answer) {
            if is_storable(request, reply) {
                if let Err(e) = self.ports.cache.put(key, reply, self.ports.clock.now()).await {
                    warn!(error = %e, "cannot store the reply in the model cache; continuing without");
                }
            }
        }
        Ok(answer)
    }

    /// One provider call of the kind `op` asks for.
    async fn call_inner(&self, request: &ModelRequest, op: Op<'_>) -> Result<Answer, ModelError> {
        match op {
            Op::Complete => self.inner.complete(request).await.map(Answer::Reply),
            Op::Stream(on_text) => self.inner.stream(request, on_text).await.map(Answer::Reply),
            Op::Count => self.inner.count_tokens(request).await.map(Answer::Count),
        }
    }

    /// Runs one gateway call of kind `op` and writes its ledger row.
    async fn run(&self, request: &ModelRequest, op: Op<'_>) -> Result<Answer, ModelError> {
        let started = Instant::now();
        let mut row = PendingRow::new(self, request, started);
        let result = self.serve(request, op, started, &mut row).await;
        row.finish(result.as_ref().err(), self.price).await;
        result
    }

    /// The cached reply, with zero usage (a hit costs nothing); a cache error or a stale entry is a miss.
    async fn cached(&self, key: &CacheKey) -> Option<ModelReply> {
        let entry = match self.ports.cache.get(key).await {
            Ok(entry) => entry?,
            Err(e) => {
                warn!(error = %e, "cannot read the model cache; calling the provider");
                return None;
            }
        };
        if let Some(ttl) = self.config.cache_ttl {
            let age = self.ports.clock.now().millis_since(entry.stored_at);
            if age > millis(ttl) {
                return None;
            }
        }
        Some(ModelReply { usage: TokenUsage::default(), ..entry.reply })
    }

    /// The retry loop: breaker, limiter, one provider call within the deadline, then retry or stop.
    async fn attempts(
        &self,
        request: &ModelRequest,
        op: Op<'_>,
        estimate: TokenEstimate,
        started: Instant,
        row: &mut PendingRow,
    ) -> Result<Answer, ModelError> {
        let deadline = started + self.config.deadline;
        let reserved = estimate.total();
        loop {
            self.breaker.check()?;
            if self.limiter.is_active() {
                self.limiter.acquire(reserved, deadline, started).await?;
            }
            let permit = match self.breaker.permit() {
                Ok(permit) => permit,
                Err(open) => {
                    // Opened while this call waited for capacity: give the reserved tokens back.
                    self.limiter.settle(reserved, 0);
                    return Err(open);
                }
            };
            row.record.attempts += 1;
            // A broken stream is retried from its start: the caller's `on_text` sees the text again.
            let result = tokio::time::timeout_at(deadline, self.call_inner(request, op))
                .await
                .unwrap_or_else(|_| {
                    Err(ModelError::DeadlineExceeded { after_ms: millis(started.elapsed()) })
                });
            let error = match result {
                Ok(Answer::Reply(reply)) => {
                    permit.report(Verdict::Up);
                    // A server that reports no usage (some OpenAI-compatible ones) is charged the
                    // estimated input plus the reply at ~4 characters a token, not nothing.
                    let used = match reply.usage.total() {
                        0 => estimate.input + u64::try_from(reply.text.len() / 4).unwrap_or(0),
                        n => n,
                    };
                    self.limiter.settle(reserved, used);
                    row.record.tokens = row.record.tokens.plus(reply.usage);
                    return Ok(Answer::Reply(reply));
                }
                Ok(count @ Answer::Count(_)) => {
                    permit.report(Verdict::Up);
                    self.limiter.settle(reserved, 0);
                    return Ok(count);
                }
                Err(error) => error,
            };
            self.limiter.settle(reserved, 0);
            let retry_in = self.config.retry.next_delay(&error, row.record.attempts, deadline);
            permit.report(Verdict::of(&error, retry_in.is_some()));
            let Some(delay) = retry_in else { return Err(error) };
            warn!(provider = %self.provider, attempt = row.record.attempts, delay_ms = millis(delay),
                  error = %error, "model call failed; retrying");
            tokio::time::sleep(delay).await;
        }
    }
}

/// Which port method a gateway call serves.
#[derive(Clone, Copy)]
enum Op<'a> {
    Complete,
    Stream(&'a (dyn for<'t> Fn(&'t str) + Send + Sync)),
    Count,
}

/// What a provider call gave back.
enum Answer {
    Reply(ModelReply),
    Count(u64),
}

/// Every call, whichever method, goes through [`Gateway::run`]: the same cache (not for counts),
/// budget, breaker, limits, retries and one ledger row.
#[async_trait]
impl Model for Gateway {
    async fn complete(&self, request: &ModelRequest) -> Result<ModelReply, ModelError> {
        match self.run(request, Op::Complete).await? {
            Answer::Reply(reply) => Ok(reply),
            Answer::Count(_) => Err(mismatch()),
        }
    }

    async fn stream(
        &self,
        request: &ModelRequest,
        on_text: &(dyn for<'t> Fn(&'t str) + Send + Sync),
    ) -> Result<ModelReply, ModelError> {
        match self.run(request, Op::Stream(on_text)).await? {
            Answer::Reply(reply) => Ok(reply),
            Answer::Count(_) => Err(mismatch()),
        }
    }

    async fn count_tokens(&self, request: &ModelRequest) -> Result<u64, ModelError> {
        match self.run(request, Op::Count).await? {
            Answer::Count(tokens) => Ok(tokens),
            Answer::Reply(_) => Err(mismatch()),
        }
    }

    fn describe(&self) -> String {
        self.inner.describe()
    }
}

/// `call_inner` answers each `Op` with its own `Answer` kind, so this cannot happen.
fn mismatch() -> ModelError {
    ModelError::MalformedReply { reason: "the gateway got an answer of the wrong kind".to_owned() }
}

/// A call's ledger row while the call runs. Dropped unfinished (the caller stopped waiting), it is
/// recorded as `cancelled` from a spawned task, so an abandoned call still leaves its row.
struct PendingRow {
    ledger: Arc<dyn UsageLedger>,
    started: Instant,
    record: UsageRecord,
    /// Released only after the row is written (see `budget`).
    reservation: Option<Reservation>,
    /// The same, against the team's daily budget.
    team_reservation: Option<Reservation>,
    done: bool,
}

impl PendingRow {
    fn new(gateway: &Gateway, request: &ModelRequest, started: Instant) -> PendingRow {
        PendingRow {
            ledger: Arc::clone(&gateway.ports.ledger),
            started,
            record: UsageRecord {
                at: gateway.ports.clock.now(),
                model: gateway.config.model.clone(),
                task: request.task.clone(),
                step: request.purpose.clone(),
                template: request.template.clone(),
                tokens: TokenUsage::default(),
                latency_ms: 0,
                cost_micros: 0,
                cache_hit: false,
                outcome: CallOutcome::Failed { kind: "cancelled".to_owned() },
                attempts: 0,
                team: request.team.clone(),
            },
            reservation: None,
            team_reservation: None,
            done: false,
        }
    }

    async fn finish(mut self, error: Option<&ModelError>, price: Option<ModelPrice>) {
        let record = &mut self.record;
        record.latency_ms = millis(self.started.elapsed());
        record.outcome = match error {
            None => CallOutcome::Ok,
            Some(e) => CallOutcome::Failed { kind: e.kind().to_owned() },
        };
        record.cost_micros = price.map_or(0, |p| p.cost_micros(&record.tokens));
        debug!(
            model = %record.model,
            step = %record.step,
            outcome = record.outcome.label(),
            attempts = record.attempts,
            cache_hit = record.cache_hit,
            latency_ms = record.latency_ms,
            input_tokens = record.tokens.input,
            output_tokens = record.tokens.output,
            thinking_tokens = record.tokens.thinking,
            cost_micros = record.cost_micros,
            "gateway call"
        );
        // Marked first: if this await is abandoned the row is already on its way, not recorded twice.
        self.done = true;
        write_row(&*self.ledger, &self.record).await;
        self.reservation = None;
        self.team_reservation = None;
    }
}

impl Drop for PendingRow {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        self.record.latency_ms = millis(self.started.elapsed());
        let record = self.record.clone();
        let ledger = Arc::clone(&self.ledger);
        let reservations = (self.reservation.take(), self.team_reservation.take());
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(async move {
                    write_row(&*ledger, &record).await;
                    drop(reservations);
                });
            }
            Err(_) => {
                error!(model = %record.model, step = %record.step, attempts = record.attempts,
                             "usage row of a cancelled model call lost: no tokio runtime to write it")
            }
        }
    }
}

/// Writes one row; a ledger failure is logged with the row's numbers (an accounting invariant is broken)
/// but does not fail the call, whose tokens are already spent.
async fn write_row(ledger: &dyn UsageLedger, record: &UsageRecord) {
    if let Err(e) = ledger.record(record).await {
        error!(
            error = %e,
            model = %record.model,
            task = ?record.task.as_ref().map(ToString::to_string),
            step = %record.step,
            outcome = record.outcome.label(),
            input_tokens = record.tokens.input,
            output_tokens = record.tokens.output,
            cost_micros = record.cost_micros,
            "usage row not recorded"
        );
    }
}
