//! Retry backoff: exponential with jitter, capped.

use std::time::Duration;

use rand::Rng;

/// Delay before a retry: `base * factor^(attempt-1)`, capped at `max`, then spread by
/// `±jitter` (a fraction) so tasks that failed together do not retry in lockstep.
///
/// # Examples
///
/// ```
/// use durable_core::Backoff;
/// use std::time::Duration;
///
/// let backoff = Backoff::exponential(Duration::from_millis(100), Duration::from_secs(2))
///     .jitter(0.0);
/// assert_eq!(backoff.delay(1), Duration::from_millis(100));
/// assert_eq!(backoff.delay(2), Duration::from_millis(200));
/// assert_eq!(backoff.delay(10), Duration::from_secs(2));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Backoff {
    base: Duration,
    max: Duration,
    factor: f64,
    jitter: f64,
}

impl Default for Backoff {
    /// 1 s, doubling, capped at 1 h, ±25 % jitter.
    fn default() -> Self {
        Self::exponential(Duration::from_secs(1), Duration::from_secs(3600))
    }
}

impl Backoff {
    /// Exponential backoff doubling from `base` up to `max`, with ±25 % jitter.
    pub fn exponential(base: Duration, max: Duration) -> Self {
        Self {
            base,
            max: max.max(base),
            factor: 2.0,
            jitter: 0.25,
        }
    }

    /// The same delay before every retry (still jittered unless `jitter(0.0)`).
    pub fn constant(delay: Duration) -> Self {
        Self {
            base: delay,
            max: delay,
            factor: 1.0,
            jitter: 0.25,
        }
    }

    /// Sets the growth factor (at least 1).
    #[must_use]
    pub fn factor(mut self, factor: f64) -> Self {
        self.factor = factor.max(1.0);
        self
    }

    /// Sets the jitter as a fraction of the delay, clamped to `0.0..=1.0`.
    #[must_use]
    pub fn jitter(mut self, jitter: f64) -> Self {
        self.jitter = jitter.clamp(0.0, 1.0);
        self
    }

    /// The upper bound of any delay before jitter.
    pub fn max(&self) -> Duration {
        self.max
    }

    /// Delay before the retry that follows failed attempt number `attempt` (1-based).
    pub fn delay(&self, attempt: u32) -> Duration {
        let exponent = attempt.saturating_sub(1).min(64) as i32;
        let raw = self.base.as_secs_f64() * self.factor.powi(exponent);
        let capped = raw.min(self.max.as_secs_f64());
        let spread = if self.jitter > 0.0 {
            rand::rng().random_range(-self.jitter..=self.jitter)
        } else {
            0.0
        };
        // Saturates: a maximum near `Duration::MAX` plus jitter does not fit a `Duration`,
        // and a panic here would happen while an attempt's outcome is being recorded.
        Duration::try_from_secs_f64((capped * (1.0 + spread)).max(0.0)).unwrap_or(Duration::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_and_caps() {
        let b = Backoff::exponential(Duration::from_secs(1), Duration::from_secs(8)).jitter(0.0);
        let delays: Vec<_> = (1..=6).map(|a| b.delay(a).as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 8, 8]);
    }

    #[test]
    fn huge_maximum_saturates_instead_of_panicking() {
        assert_eq!(
            Backoff::constant(Duration::MAX).jitter(0.0).delay(1),
            Duration::MAX
        );
        let b = Backoff::constant(Duration::MAX);
        for _ in 0..100 {
            assert!(b.delay(1) > Duration::from_secs(1 << 60));
        }
        let b = Backoff::exponential(Duration::from_secs(1), Duration::MAX);
        assert!(b.delay(u32::MAX) > Duration::from_secs(1 << 40));
    }

    #[test]
    fn jitter_stays_within_bounds() {
        let b = Backoff::constant(Duration::from_secs(10)).jitter(0.5);
        for _ in 0..1000 {
            let d = b.delay(3).as_secs_f64();
            assert!((5.0..=15.0).contains(&d), "{d}");
        }
    }
}
