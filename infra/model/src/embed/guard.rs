//! The rate limiter and circuit breaker of embedding calls, with the gateway's semantics.
//!
//! Why a second copy: the gateway's `RateLimiter` and the breaker's `Verdict` are private to
//! `gateway/` (only [`RateLimit`] and [`BreakerConfig`] are exported), so embedding calls cannot report
//! to them. The configuration types are shared, so a deployment sets both the same way; once the
//! gateway exports its limiter and verdicts to the crate, this file can shrink to a re-export.
//!
//! - Limiter: one token bucket for requests and one for tokens; a caller *reserves* capacity (the level
//!   may go negative) and sleeps until its turn, so callers queue in order with one short lock each. A
//!   turn past the deadline reserves nothing and fails at once with [`ModelError::DeadlineExceeded`].
//! - Breaker: `failure_threshold` consecutive failures open it; after `cool_down` one probe goes
//!   through; its success closes it, its failure opens it again.

use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use cadre_domain::ports::model::ModelError;
use tokio::time::Instant;

use crate::gateway::{BreakerConfig, RateLimit};

/// Milliseconds of a duration, saturating.
pub(crate) fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// One token bucket; `f64` units are exact for counts below 2^53.
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

    /// How long after `now` a reservation of `amount` could start.
    fn wait_for(&mut self, amount: f64, now: Instant) -> Duration {
        if now > self.at {
            let gained = (now - self.at).as_secs_f64() * self.rate;
            self.level = (self.level + gained).min(self.capacity);
            self.at = now;
        }
        let after = self.level - amount;
        if after >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-after / self.rate)
        }
    }
}

/// The requests and tokens buckets of one embedding model.
#[derive(Debug)]
pub(super) struct Limiter {
    buckets: Mutex<(Option<Bucket>, Option<Bucket>)>,
}

impl Limiter {
    pub(super) fn new(requests: Option<RateLimit>, tokens: Option<RateLimit>) -> Limiter {
        let now = Instant::now();
        Limiter {
            buckets: Mutex::new((
                requests.map(|l| Bucket::new(l, now)),
                tokens.map(|l| Bucket::new(l, now)),
            )),
        }
    }

    /// Waits until one request of `tokens` tokens may start, or fails at once, reserving nothing, when
    /// that would be after `deadline`.
    pub(super) async fn acquire(
        &self,
        tokens: u64,
        deadline: Instant,
        started: Instant,
    ) -> Result<(), ModelError> {
        let now = Instant::now();
        #[allow(clippy::cast_precision_loss)] // Token counts are far below 2^53.
        let tokens = tokens as f64;
        let wait = {
            let mut guard = self.lock();
            let (requests, token_bucket) = &mut *guard;
            let wait = requests
                .as_mut()
                .map_or(Duration::ZERO, |b| b.wait_for(1.0, now))
                .max(token_bucket.as_mut().map_or(Duration::ZERO, |b| b.wait_for(tokens, now)));
            if now + wait > deadline {
                return Err(ModelError::DeadlineExceeded { after_ms: millis(now - started) });
            }
            if let Some(bucket) = requests {
                bucket.level -= 1.0;
            }
            if let Some(bucket) = token_bucket {
                bucket.level -= tokens;
            }
            wait
        };
        if !wait.is_zero() {
            tracing::debug!(wait_ms = millis(wait), "embedding call waits for rate-limit capacity");
            tokio::time::sleep(wait).await;
        }
        Ok(())
    }

    /// Corrects the tokens bucket once the provider has counted (`used` is zero for a failed call).
    pub(super) fn settle(&self, reserved: u64, used: u64) {
        if let Some(bucket) = self.lock().1.as_mut() {
            #[allow(clippy::cast_precision_loss)] // Token counts are far below 2^53.
            let correction = reserved as f64 - used as f64;
            bucket.level = (bucket.level + correction).min(bucket.capacity);
        }
    }

    fn lock(&self) -> MutexGuard<'_, (Option<Bucket>, Option<Bucket>)> {
        self.buckets.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Closed { failures: u32 },
    Open { until: Instant },
    HalfOpen { probing: bool },
}

/// What one attempt showed about the provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Verdict {
    /// It answered (a reply, a 4xx).
    Up,
    /// It failed (transport, 5xx, deadline, still throttled after every retry).
    Down,
    /// Nothing learned (throttled but retrying, or abandoned).
    Unknown,
}

/// The breaker of one embedding provider.
#[derive(Debug)]
pub(super) struct Breaker {
    provider: String,
    config: BreakerConfig,
    state: Mutex<State>,
}

/// Leave to make one attempt; dropped without a report, it counts as [`Verdict::Unknown`].
#[derive(Debug)]
pub(super) struct Permit<'a> {
    breaker: &'a Breaker,
    probe: bool,
    reported: bool,
}

impl Breaker {
    pub(super) fn new(provider: String, config: BreakerConfig) -> Breaker {
        Breaker { provider, config, state: Mutex::new(State::Closed { failures: 0 }) }
    }

    /// Fails fast while open, without taking the half-open probe slot.
    pub(super) fn check(&self) -> Result<(), ModelError> {
        match *self.lock() {
            State::Open { until } if Instant::now() < until => Err(self.open_error(until)),
            State::HalfOpen { probing: true } => Err(self.probing_error()),
            _ => Ok(()),
        }
    }

    /// Leave for one attempt, or [`ModelError::CircuitOpen`].
    pub(super) fn permit(&self) -> Result<Permit<'_>, ModelError> {
        let mut state = self.lock();
        let probe = match *state {
            State::Closed { .. } => false,
            State::Open { until } if Instant::now() < until => return Err(self.open_error(until)),
            State::Open { .. } | State::HalfOpen { probing: false } => {
                tracing::info!(provider = %self.provider, "embedding circuit breaker half-open: sending one probe");
                *state = State::HalfOpen { probing: true };
                true
            }
            State::HalfOpen { probing: true } => return Err(self.probing_error()),
        };
        Ok(Permit { breaker: self, probe, reported: false })
    }

    fn open_error(&self, until: Instant) -> ModelError {
        ModelError::CircuitOpen {
            provider: self.provider.clone(),
            retry_in_ms: millis(until.saturating_duration_since(Instant::now())).max(1),
        }
    }

    fn probing_error(&self) -> ModelError {
        ModelError::CircuitOpen {
            provider: self.provider.clone(),
            retry_in_ms: millis(self.config.cool_down / 10).max(1),
        }
    }

    fn record(&self, probe: bool, verdict: Verdict) {
        let mut state = self.lock();
        let next = match (*state, verdict) {
            (_, Verdict::Up) => State::Closed { failures: 0 },
            (State::Closed { failures }, Verdict::Down) => {
                let failures = failures.saturating_add(1);
                if failures >= self.config.failure_threshold {
                    tracing::warn!(provider = %self.provider, failures, "embedding circuit breaker opened");
                    State::Open { until: Instant::now() + self.config.cool_down }
                } else {
                    State::Closed { failures }
                }
            }
            (State::HalfOpen { .. }, Verdict::Down) if probe => {
                State::Open { until: Instant::now() + self.config.cool_down }
            }
            (State::HalfOpen { .. }, Verdict::Unknown) if probe => {
                State::HalfOpen { probing: false }
            }
            (current, _) => current,
        };
        *state = next;
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Permit<'_> {
    pub(super) fn report(mut self, verdict: Verdict) {
        self.reported = true;
        self.breaker.record(self.probe, verdict);
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        if !self.reported {
            self.breaker.record(self.probe, Verdict::Unknown);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn requests_queue_at_the_steady_rate_after_the_burst() {
        // 4 per 300 ms with a burst of 1: one every 100 ms.
        let limiter = Limiter::new(
            Some(RateLimit { limit: 4, window: Duration::from_millis(300), burst: 1 }),
            None,
        );
        let t0 = Instant::now();
        let far = t0 + Duration::from_secs(60);
        let mut starts = Vec::new();
        for _ in 0..3 {
            limiter.acquire(0, far, t0).await.unwrap();
            starts.push(millis(Instant::now() - t0));
        }
        assert_eq!(starts, [0, 100, 200]);
        let error = limiter.acquire(0, Instant::now(), t0).await.unwrap_err();
        assert!(matches!(error, ModelError::DeadlineExceeded { .. }), "{error:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn the_breaker_opens_probes_and_closes() {
        let breaker = Breaker::new(
            "p".into(),
            BreakerConfig { failure_threshold: 2, cool_down: Duration::from_secs(1) },
        );
        breaker.permit().unwrap().report(Verdict::Down);
        breaker.permit().unwrap().report(Verdict::Down);
        assert!(matches!(breaker.check(), Err(ModelError::CircuitOpen { .. })));
        tokio::time::sleep(Duration::from_secs(1)).await;
        let probe = breaker.permit().unwrap();
        assert!(breaker.permit().is_err(), "one probe at a time");
        probe.report(Verdict::Up);
        assert!(breaker.check().is_ok());
    }
}
