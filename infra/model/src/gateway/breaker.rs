//! A circuit breaker per provider: after `failure_threshold` consecutive failures it opens and calls fail
//! fast with [`ModelError::CircuitOpen`] instead of adding load to a provider that is down. After the
//! cool-down it is half-open: exactly one probe call goes through; its success closes the breaker, its
//! failure opens it for another cool-down.
//!
//! Failures are transport errors, 5xx, attempts cut by the deadline and a call still rate limited after
//! its retries. Any answer that shows the provider is up (a reply, a 4xx, a block) counts as a success.

use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use cadre_domain::ports::model::ModelError;
use tokio::time::Instant;

use super::limiter::millis;

/// When the breaker opens and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerConfig {
    /// Consecutive failures that open the breaker.
    pub failure_threshold: u32,
    /// How long it stays open before letting a probe through.
    pub cool_down: Duration,
}

impl Default for BreakerConfig {
    /// Opens after 5 consecutive failures, probes after 30 s.
    fn default() -> BreakerConfig {
        BreakerConfig { failure_threshold: 5, cool_down: Duration::from_secs(30) }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Closed { failures: u32 },
    Open { until: Instant },
    HalfOpen { probing: bool },
}

/// The breaker of one provider; share it (`Arc`) between gateways that call the same provider.
#[derive(Debug)]
pub struct CircuitBreaker {
    provider: String,
    config: BreakerConfig,
    state: Mutex<State>,
}

/// What one attempt showed about the provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// The provider answered.
    Up,
    /// The provider failed (transport, 5xx, deadline, throttled after every retry).
    Down,
    /// Nothing learned (throttled, but the call will retry; or the attempt was abandoned).
    Unknown,
}

impl Verdict {
    /// What a failed attempt says about the provider's health: shared by model and embedding calls
    /// so one provider is judged the same way whichever port called it.
    pub(crate) fn of(error: &ModelError, will_retry: bool) -> Verdict {
        match error {
            ModelError::Unreachable { .. }
            | ModelError::ServerError { .. }
            | ModelError::DeadlineExceeded { .. } => Verdict::Down,
            ModelError::RateLimited { .. } if will_retry => Verdict::Unknown,
            ModelError::RateLimited { .. } => Verdict::Down,
            _ => Verdict::Up,
        }
    }
}

/// Leave to make one attempt; report what it showed with [`Permit::report`].
#[derive(Debug)]
pub(crate) struct Permit<'a> {
    breaker: &'a CircuitBreaker,
    probe: bool,
    reported: bool,
}

impl CircuitBreaker {
    /// A closed breaker for `provider` (the name appears in [`ModelError::CircuitOpen`]).
    #[must_use]
    pub fn new(provider: impl Into<String>, config: BreakerConfig) -> CircuitBreaker {
        CircuitBreaker {
            provider: provider.into(),
            config,
            state: Mutex::new(State::Closed { failures: 0 }),
        }
    }

    /// Whether the breaker is open now (for status displays; calls use `permit`).
    #[must_use]
    pub fn is_open(&self) -> bool {
        matches!(*self.lock(), State::Open { until } if Instant::now() < until)
    }

    /// Fails fast while open, without taking the half-open probe slot.
    pub(crate) fn check(&self) -> Result<(), ModelError> {
        match *self.lock() {
            State::Open { until } if Instant::now() < until => Err(self.open_error(until)),
            State::HalfOpen { probing: true } => Err(self.probing_error()),
            _ => Ok(()),
        }
    }

    /// Leave for one attempt, or [`ModelError::CircuitOpen`] while open or while the probe is out.
    pub(crate) fn permit(&self) -> Result<Permit<'_>, ModelError> {
        let mut state = self.lock();
        let probe = match *state {
            State::Closed { .. } => false,
            State::Open { until } if Instant::now() < until => return Err(self.open_error(until)),
            State::Open { .. } | State::HalfOpen { probing: false } => {
                tracing::info!(provider = %self.provider, "circuit breaker half-open: sending one probe");
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

    /// While the probe is out nobody knows when it ends; a tenth of the cool-down is the hint.
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
                    tracing::warn!(provider = %self.provider, failures, cool_down_ms = millis(self.config.cool_down),
                        "circuit breaker opened");
                    State::Open { until: Instant::now() + self.config.cool_down }
                } else {
                    State::Closed { failures }
                }
            }
            (State::HalfOpen { .. }, Verdict::Down) if probe => {
                tracing::warn!(provider = %self.provider, "circuit breaker probe failed; open again");
                State::Open { until: Instant::now() + self.config.cool_down }
            }
            (State::HalfOpen { .. }, Verdict::Unknown) if probe => {
                State::HalfOpen { probing: false }
            }
            // A late report from an attempt that started before the breaker opened changes nothing.
            (current, _) => current,
        };
        if next != *state
            && matches!(next, State::Closed { failures: 0 })
            && !matches!(*state, State::Closed { .. })
        {
            tracing::info!(provider = %self.provider, "circuit breaker closed");
        }
        *state = next;
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Permit<'_> {
    /// Reports what the attempt showed.
    pub(crate) fn report(mut self, verdict: Verdict) {
        self.reported = true;
        self.breaker.record(self.probe, verdict);
    }
}

impl Drop for Permit<'_> {
    /// An attempt abandoned without a report (the caller stopped waiting) frees the probe slot.
    fn drop(&mut self) {
        if !self.reported {
            self.breaker.record(self.probe, Verdict::Unknown);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker() -> CircuitBreaker {
        CircuitBreaker::new(
            "gemini:test",
            BreakerConfig { failure_threshold: 3, cool_down: Duration::from_secs(10) },
        )
    }

    fn fail(breaker: &CircuitBreaker) {
        breaker.permit().unwrap().report(Verdict::Down);
    }

    #[tokio::test(start_paused = true)]
    async fn opens_after_consecutive_failures_only() {
        let breaker = breaker();
        fail(&breaker);
        fail(&breaker);
        breaker.permit().unwrap().report(Verdict::Up);
        fail(&breaker);
        fail(&breaker);
        assert!(!breaker.is_open(), "a success in between resets the count");
        fail(&breaker);
        assert!(breaker.is_open());
        let error = breaker.permit().unwrap_err();
        assert_eq!(
            error,
            ModelError::CircuitOpen { provider: "gemini:test".into(), retry_in_ms: 10_000 }
        );
        assert_eq!(breaker.check().unwrap_err(), error);
    }

    #[tokio::test(start_paused = true)]
    async fn half_open_lets_one_probe_through_and_closes_on_its_success() {
        let breaker = breaker();
        (0..3).for_each(|_| fail(&breaker));
        tokio::time::sleep(Duration::from_secs(4)).await;
        assert!(matches!(
            breaker.permit().unwrap_err(),
            ModelError::CircuitOpen { retry_in_ms: 6_000, .. }
        ));
        tokio::time::sleep(Duration::from_secs(6)).await;
        let probe = breaker.permit().unwrap();
        assert!(breaker.permit().is_err(), "only one probe at a time");
        assert!(breaker.check().is_err());
        probe.report(Verdict::Up);
        assert!(breaker.permit().is_ok());
        assert!(breaker.check().is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_probe_opens_for_another_cool_down() {
        let breaker = breaker();
        (0..3).for_each(|_| fail(&breaker));
        tokio::time::sleep(Duration::from_secs(10)).await;
        fail(&breaker);
        assert!(matches!(
            breaker.permit().unwrap_err(),
            ModelError::CircuitOpen { retry_in_ms: 10_000, .. }
        ));
    }

    #[tokio::test(start_paused = true)]
    async fn an_abandoned_probe_frees_the_slot() {
        let breaker = breaker();
        (0..3).for_each(|_| fail(&breaker));
        tokio::time::sleep(Duration::from_secs(10)).await;
        drop(breaker.permit().unwrap());
        let probe = breaker.permit().unwrap();
        probe.report(Verdict::Unknown);
        assert!(breaker.permit().is_ok());
    }
}
