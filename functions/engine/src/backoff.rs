//! Exponential backoff with full jitter (a random delay between zero and the exponential cap), which
//! spreads retries of many failing messages instead of having them return in lockstep.

use std::time::Duration;

/// Backoff settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The cap for the first retry.
    pub base: Duration,
    /// The largest cap.
    pub max: Duration,
}

impl Backoff {
    /// The cap before retry number `attempt` (1-based): `base · 2^(attempt-1)`, at most `max`.
    #[must_use]
    pub fn cap(&self, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt.saturating_sub(1).min(30));
        self.base.saturating_mul(factor).min(self.max)
    }

    /// A random delay in `[0, cap(attempt)]`.
    #[must_use]
    pub fn delay(&self, attempt: u32) -> Duration {
        let cap = u64::try_from(self.cap(attempt).as_millis()).unwrap_or(u64::MAX);
        Duration::from_millis(rand::random_range(0..=cap))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_grow_exponentially_up_to_max_and_delays_stay_under_the_cap() {
        let b = Backoff { base: Duration::from_millis(100), max: Duration::from_secs(1) };
        let caps: Vec<u128> = (1..=6).map(|a| b.cap(a).as_millis()).collect();
        assert_eq!(caps, vec![100, 200, 400, 800, 1000, 1000]);
        for attempt in 1..=6 {
            assert!(b.delay(attempt) <= b.cap(attempt));
        }
    }
}
