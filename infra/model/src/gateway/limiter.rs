//! Client-side rate limits: one token bucket for requests and one for tokens, per gateway (one model).
//!
//! Callers *reserve* capacity and then sleep until their turn, instead of polling: a reservation takes
//! the amount out of the bucket at once (the level may go negative), and the wait is how long the refill
//! needs to bring the level back to zero. Later callers therefore queue behind earlier ones in order,
//! with one short lock per call and no background task. A caller whose turn would come after its
//! deadline reserves nothing and gets [`ModelError::DeadlineExceeded`] at once.
//!
//! The refill rate is `(limit − burst) / window`, so a full burst plus a window's refill never exceeds
//! `limit` in any window: the provider's own per-minute limit is respected even right after an idle spell.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use cadre_domain::ports::model::{ModelError, ModelRequest};
use tokio::time::Instant;

/// A limit of `limit` units (requests or tokens) in any window of length `window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Units allowed per window.
    pub limit: u64,
    /// The window, e.g. one minute.
    pub window: Duration,
    /// Units that may go at once after an idle spell; must be below `limit`. The steady rate is
    /// `(limit − burst) / window`.
    pub burst: u64,
}

impl RateLimit {
    /// `limit` per minute, with a burst of a tenth of it (at least one).
    #[must_use]
    pub fn per_minute(limit: u64) -> RateLimit {
        RateLimit { limit, window: Duration::from_secs(60), burst: (limit / 10).max(1) }
    }

    /// Checks the numbers, naming the limit (`what`) in the error.
    pub(crate) fn validate(&self, what: &str) -> Result<(), ModelError> {
        if self.window.is_zero() || self.burst == 0 || self.burst >= self.limit {
            return Err(ModelError::NotConfigured {
                hint: format!(
                    "the {what} rate limit {} per {:?} with burst {} is not valid; \
                     it needs a non-zero window and 0 < burst < limit",
                    self.limit, self.window, self.burst
                ),
            });
        }
        Ok(())
    }
}

/// Estimated tokens of a request before the call: the port's local estimate of its input (~4 bytes a
/// token over the text, tool declarations, calls and results, and the schema), plus the output cap (or
/// `default_output` when the request sets none).
#[must_use]
pub fn estimate_tokens(request: &ModelRequest, default_output: u32) -> TokenEstimate {
    let input = cadre_domain::ports::model::estimate_input_tokens(request);
    let output = u64::from(request.max_output_tokens.unwrap_or(default_output));
    TokenEstimate { input, output }
}

/// A request's size as estimated before the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenEstimate {
    /// Prompt tokens.
    pub input: u64,
    /// The most output (thinking included) the call may produce.
    pub output: u64,
}

impl TokenEstimate {
    /// Input plus output.
    #[must_use]
    pub fn total(&self) -> u64 {
        self.input.saturating_add(self.output)
    }
}

/// One token bucket; all arithmetic in `f64` units, which is exact enough for counts below 2^53.
#[derive(Debug)]
struct Bucket {
    capacity: f64,
    /// Units per second.
    rate: f64,
    level: f64,
    at: Instant,
}

impl Bucket {
    #[allow(clippy::cast_precision_loss)] // Limits are far below 2^53.
    fn new(limit: RateLimit, now: Instant) -> Bucket {
        let rate = (limit.limit - limit.burst) as f64 / limit.window.as_secs_f64();
        Bucket { capacity: limit.burst as f64, rate, level: limit.burst as f64, at: now }
    }

    fn refill(&mut self, now: Instant) {
        if now > self.at {
            let gained = (now - self.at).as_secs_f64() * self.rate;
            self.level = (self.level + gained).min(self.capacity);
            self.at = now;
        }
    }

    /// How long after `now` a reservation of `amount` could start, without reserving.
    fn wait_for(&mut self, amount: f64, now: Instant) -> Duration {
        self.refill(now);
        let after = self.level - amount;
        if after >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-after / self.rate)
        }
    }

    fn take(&mut self, amount: f64) {
        self.level -= amount;
    }

    fn give_back(&mut self, amount: f64) {
        self.level = (self.level + amount).min(self.capacity);
    }
}

#[derive(Debug)]
struct Buckets {
    requests: Option<Bucket>,
    tokens: Option<Bucket>,
}

/// The requests and tokens buckets of one model.
#[derive(Debug)]
pub(crate) struct RateLimiter {
    buckets: Mutex<Buckets>,
}

impl RateLimiter {
    pub(crate) fn new(requests: Option<RateLimit>, tokens: Option<RateLimit>) -> RateLimiter {
        let now = Instant::now();
        RateLimiter {
            buckets: Mutex::new(Buckets {
                requests: requests.map(|l| Bucket::new(l, now)),
                tokens: tokens.map(|l| Bucket::new(l, now)),
            }),
        }
    }

    /// Whether any limit is configured; without one, `acquire` is a no-op and is skipped.
    pub(crate) fn is_active(&self) -> bool {
        let buckets = self.lock();
        buckets.requests.is_some() || buckets.tokens.is_some()
    }

    /// Waits until one request of `tokens` tokens may start, or fails at once with
    /// [`ModelError::DeadlineExceeded`] (reserving nothing) when that would be after `deadline`.
    pub(crate) async fn acquire(
        &self,
        tokens: u64,
        deadline: Instant,
        started: Instant,
    ) -> Result<(), ModelError> {
        let now = Instant::now();
        let wait = {
            let mut buckets = self.lock();
            let Buckets { requests, tokens: token_bucket } = &mut *buckets;
            #[allow(clippy::cast_precision_loss)] // Token counts are far below 2^53.
            let tokens = tokens as f64;
            let wait_requests = requests.as_mut().map_or(Duration::ZERO, |b| b.wait_for(1.0, now));
            let wait_tokens =
                token_bucket.as_mut().map_or(Duration::ZERO, |b| b.wait_for(tokens, now));
            let wait = wait_requests.max(wait_tokens);
            if now + wait > deadline {
                return Err(ModelError::DeadlineExceeded { after_ms: millis(now - started) });
            }
            if let Some(bucket) = requests {
                bucket.take(1.0);
            }
            if let Some(bucket) = token_bucket {
                bucket.take(tokens);
            }
            wait
        };
        if !wait.is_zero() {
            tracing::debug!(wait_ms = millis(wait), "waiting for rate-limit capacity");
            tokio::time::sleep(wait).await;
        }
        Ok(())
    }

    /// Corrects the tokens bucket once the provider has counted: `reserved` was taken before the call,
    /// `used` is what the provider billed (zero for a failed call).
    pub(crate) fn settle(&self, reserved: u64, used: u64) {
        let mut buckets = self.lock();
        if let Some(bucket) = buckets.tokens.as_mut() {
            #[allow(clippy::cast_precision_loss)] // Token counts are far below 2^53.
            if used > reserved {
                bucket.take((used - reserved) as f64);
            } else {
                bucket.give_back((reserved - used) as f64);
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Buckets> {
        self.buckets.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

pub(crate) fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use cadre_domain::ports::model::ChatMessage;

    fn limit(limit: u64, window_ms: u64, burst: u64) -> RateLimit {
        RateLimit { limit, window: Duration::from_millis(window_ms), burst }
    }

    fn far() -> Instant {
        Instant::now() + Duration::from_secs(3600)
    }

    /// Starts `n` callers at once and returns their start offsets in ms, sorted.
    async fn start_offsets(limiter: RateLimiter, n: usize, tokens: u64) -> Vec<u64> {
        let limiter = std::sync::Arc::new(limiter);
        let t0 = Instant::now();
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..n {
            let limiter = std::sync::Arc::clone(&limiter);
            set.spawn(async move {
                limiter.acquire(tokens, far(), t0).await.unwrap();
                millis(Instant::now() - t0)
            });
        }
        let mut offsets = set.join_all().await;
        offsets.sort_unstable();
        offsets
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_goes_at_once_then_the_steady_rate_follows() {
        // 4 per 300 ms with a burst of 1: the steady rate is 3 per 300 ms, one every 100 ms.
        let limiter = RateLimiter::new(Some(limit(4, 300, 1)), None);
        assert_eq!(start_offsets(limiter, 5, 0).await, vec![0, 100, 200, 300, 400]);
    }

    #[tokio::test(start_paused = true)]
    async fn no_window_ever_holds_more_than_the_limit() {
        let limiter = RateLimiter::new(Some(limit(5, 1000, 3)), None);
        let offsets = start_offsets(limiter, 30, 0).await;
        for (i, start) in offsets.iter().enumerate() {
            let in_window = offsets[i..].iter().take_while(|t| **t <= start + 1000).count();
            assert!(in_window <= 5, "{in_window} starts in [{start}, {start}+1000]: {offsets:?}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn token_usage_is_settled_after_the_call() {
        // 1000 tokens per second, burst 100: a 100-token call goes at once.
        let limiter = RateLimiter::new(None, Some(limit(1100, 1000, 100)));
        let t0 = Instant::now();
        limiter.acquire(100, far(), t0).await.unwrap();
        // It really used 50: the other 50 come back, so the next 50-token call need not wait.
        limiter.settle(100, 50);
        limiter.acquire(50, far(), t0).await.unwrap();
        assert_eq!(Instant::now(), t0);
        // It used 150 instead: the bucket owes 100, i.e. 100 ms at 1000 tokens/s.
        limiter.settle(50, 150);
        limiter.acquire(0, far(), t0).await.unwrap();
        assert_eq!(millis(Instant::now() - t0), 100);
    }

    #[tokio::test(start_paused = true)]
    async fn a_wait_past_the_deadline_fails_at_once_and_reserves_nothing() {
        let limiter = RateLimiter::new(Some(limit(2, 1000, 1)), None);
        let t0 = Instant::now();
        limiter.acquire(0, far(), t0).await.unwrap();
        let error = limiter.acquire(0, t0 + Duration::from_millis(500), t0).await.unwrap_err();
        assert!(matches!(error, ModelError::DeadlineExceeded { after_ms: 0 }), "{error:?}");
        assert_eq!(Instant::now(), t0, "it must not sleep before failing");
        // The refused call took nothing: the next one starts after one interval, not two.
        limiter.acquire(0, far(), t0).await.unwrap();
        assert_eq!(millis(Instant::now() - t0), 1000);
    }

    #[test]
    fn estimates_count_text_schema_and_output_cap() {
        let request = ModelRequest {
            purpose: "plan".into(),
            system: "x".repeat(40),
            messages: vec![ChatMessage::user("y".repeat(41))],
            response_schema: None,
            temperature: None,
            max_output_tokens: None,
            task: None,
            template: None,
            cache: cadre_domain::ports::model::CachePolicy::Use,
            ..Default::default()
        };
        // (40 + 41 + 8 per turn) / 4, rounded up.
        assert_eq!(estimate_tokens(&request, 500), TokenEstimate { input: 23, output: 500 });
        let with_tool = ModelRequest {
            tools: vec![cadre_domain::ports::model::ToolSpec {
                name: "t".into(),
                description: "d".repeat(39),
                parameters: serde_json::json!({}),
            }],
            ..request.clone()
        };
        assert_eq!(estimate_tokens(&with_tool, 500).input, 33, "tool declarations count too");
        let capped = ModelRequest { max_output_tokens: Some(7), ..request };
        assert_eq!(estimate_tokens(&capped, 500).output, 7);
    }

    #[test]
    fn limits_are_validated() {
        assert!(RateLimit::per_minute(100).validate("requests").is_ok());
        assert_eq!(RateLimit::per_minute(100).burst, 10);
        assert!(limit(1, 1000, 1).validate("requests").is_err());
        assert!(limit(5, 0, 1).validate("requests").is_err());
        assert!(limit(5, 1000, 0).validate("requests").is_err());
    }
}
