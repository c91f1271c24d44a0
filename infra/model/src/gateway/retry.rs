//! Which failures are retried, and how long to wait before the next attempt.
//!
//! Exponential backoff with *full jitter* (a uniform draw between zero and the exponential cap), which
//! spreads a crowd of callers that failed together, but never sooner than the provider asked
//! (`retryDelay`, `Retry-After`): the provider's number is a floor, the jitter only adds to it.

use std::time::Duration;

use cadre_domain::ports::model::ModelError;
use rand::Rng as _;

/// How many attempts and how far apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts per call, the first included (1 means no retry).
    pub max_attempts: u32,
    /// The cap of the first backoff; each retry doubles it.
    pub base_delay: Duration,
    /// The largest cap, however many retries.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    /// 4 attempts, backoff caps 0.5 s, 1 s, 2 s (at most 30 s).
    fn default() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 4,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// The wait before attempt `failed + 1`, after `failed` attempts ended in `error`.
    #[must_use]
    pub fn delay(&self, failed: u32, error: &ModelError) -> Duration {
        let shift = failed.saturating_sub(1).min(31);
        let cap = self.base_delay.saturating_mul(1 << shift).min(self.max_delay);
        let jitter = if cap.is_zero() {
            Duration::ZERO
        } else {
            let nanos = u64::try_from(cap.as_nanos()).unwrap_or(u64::MAX);
            Duration::from_nanos(rand::rng().random_range(0..=nanos))
        };
        match error {
            ModelError::RateLimited { retry_after_ms: Some(ms) } => {
                jitter.max(Duration::from_millis(*ms))
            }
            _ => jitter,
        }
    }

    /// How long to wait before the next attempt, or `None` to give up: not retryable, out of
    /// attempts, or the wait (never shorter than the provider asked) would pass the deadline.
    pub(crate) fn next_delay(
        &self,
        error: &ModelError,
        attempts: u32,
        deadline: tokio::time::Instant,
    ) -> Option<Duration> {
        if !is_retried(error) || attempts >= self.max_attempts {
            return None;
        }
        let delay = self.delay(attempts, error);
        (tokio::time::Instant::now() + delay < deadline).then_some(delay)
    }
}

/// Whether the gateway tries `error` again: only a provider that is throttling, failing on its side or
/// unreachable might answer differently. A refused, blocked or malformed answer would come back the same.
#[must_use]
pub fn is_retried(error: &ModelError) -> bool {
    matches!(
        error,
        ModelError::RateLimited { .. }
            | ModelError::ServerError { .. }
            | ModelError::Unreachable { .. }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_jitter_stays_under_the_doubling_cap() {
        let policy = RetryPolicy {
            max_attempts: 10,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(350),
        };
        let error = ModelError::ServerError { status: 503, message: "busy".into() };
        for (failed, cap) in [(1, 100), (2, 200), (3, 350), (9, 350)] {
            for _ in 0..200 {
                let delay = policy.delay(failed, &error);
                assert!(delay <= Duration::from_millis(cap), "{failed}: {delay:?}");
            }
        }
    }

    #[test]
    fn the_providers_delay_is_a_floor() {
        let policy = RetryPolicy::default();
        let error = ModelError::RateLimited { retry_after_ms: Some(1_300) };
        for _ in 0..200 {
            let delay = policy.delay(1, &error);
            assert!(delay >= Duration::from_millis(1_300), "{delay:?}");
            assert!(delay <= Duration::from_millis(1_300).max(policy.base_delay), "{delay:?}");
        }
    }

    #[test]
    fn only_provider_side_trouble_is_retried() {
        assert!(is_retried(&ModelError::RateLimited { retry_after_ms: None }));
        assert!(is_retried(&ModelError::ServerError { status: 500, message: String::new() }));
        assert!(is_retried(&ModelError::Unreachable { endpoint: "e".into(), reason: "r".into() }));
        assert!(!is_retried(&ModelError::Rejected { status: 400, message: String::new() }));
        assert!(!is_retried(&ModelError::Blocked { reason: "SAFETY".into() }));
        assert!(!is_retried(&ModelError::MalformedReply { reason: "r".into() }));
        assert!(!is_retried(&ModelError::DeadlineExceeded { after_ms: 1 }));
    }
}
