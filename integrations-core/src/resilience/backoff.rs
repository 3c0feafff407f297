//! Exponential backoff with full jitter.

use std::time::Duration;

/// Exponential backoff with full jitter, as a plain value.
///
/// The ceiling of the `n`-th retry (0-based) is `min(max, initial * multiplier^n)`; the delay
/// actually slept is drawn uniformly from `[0, ceiling]` ("full jitter", which spreads the retries
/// of many clients that failed together instead of having them return in waves).
///
/// Defaults ([`Backoff::DEFAULT`]): `initial` 100 ms, `max` 10 s, `multiplier` 2.0, so the
/// ceilings are 100 ms, 200 ms, 400 ms, … reaching 10 s at the 8th retry.
///
/// ```
/// use std::time::Duration;
/// use integrations_core::resilience::Backoff;
///
/// let backoff = Backoff::new(Duration::from_millis(50), Duration::from_secs(2), 3.0);
/// assert_eq!(backoff.ceiling(0), Duration::from_millis(50));
/// assert_eq!(backoff.ceiling(2), Duration::from_millis(450));
/// assert_eq!(backoff.ceiling(10), Duration::from_secs(2));
/// assert!(backoff.delay(2) <= Duration::from_millis(450));
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    /// Ceiling of the first retry's delay.
    pub initial: Duration,
    /// Largest ceiling, whatever the retry number.
    pub max: Duration,
    /// Growth of the ceiling per retry. Values below 1 (or not finite) are treated as 1.
    pub multiplier: f64,
}

impl Backoff {
    /// 100 ms initial, 10 s max, multiplier 2.
    pub const DEFAULT: Backoff =
        Backoff::new(Duration::from_millis(100), Duration::from_secs(10), 2.0);

    /// A backoff with the given `initial` ceiling, `max` ceiling and `multiplier`.
    pub const fn new(initial: Duration, max: Duration, multiplier: f64) -> Self {
        Backoff {
            initial,
            max,
            multiplier,
        }
    }

    /// The ceiling of the `retry`-th retry (0-based): `min(max, initial * multiplier^retry)`.
    pub fn ceiling(&self, retry: u32) -> Duration {
        let multiplier = if self.multiplier.is_finite() && self.multiplier >= 1.0 {
            self.multiplier
        } else {
            1.0
        };
        let exponent = i32::try_from(retry).unwrap_or(i32::MAX);
        let secs = self.initial.as_secs_f64() * multiplier.powi(exponent);
        if !secs.is_finite() || secs >= self.max.as_secs_f64() {
            return self.max;
        }
        // `secs` is finite, non-negative and below `max`, so this cannot panic.
        Duration::from_secs_f64(secs).min(self.max)
    }

    /// A delay for the `retry`-th retry (0-based), uniform in `[0, ceiling(retry)]`.
    pub fn delay(&self, retry: u32) -> Duration {
        self.delay_with(retry, &mut fastrand::Rng::new())
    }

    /// Like [`Backoff::delay`], drawing from `rng` (seed it for reproducible tests).
    pub fn delay_with(&self, retry: u32, rng: &mut fastrand::Rng) -> Duration {
        let ceiling = u64::try_from(self.ceiling(retry).as_nanos()).unwrap_or(u64::MAX);
        Duration::from_nanos(rng.u64(0..=ceiling))
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff::DEFAULT
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ceilings_grow_then_cap() {
        let b = Backoff::DEFAULT;
        assert_eq!(b.ceiling(0), Duration::from_millis(100));
        assert_eq!(b.ceiling(1), Duration::from_millis(200));
        assert_eq!(b.ceiling(3), Duration::from_millis(800));
        assert_eq!(b.ceiling(7), Duration::from_secs(10));
        assert_eq!(b.ceiling(u32::MAX), Duration::from_secs(10));
        assert_eq!(Backoff::default(), Backoff::DEFAULT);
    }

    #[test]
    fn odd_multipliers_are_treated_as_constant() {
        for m in [0.5, f64::NAN, f64::INFINITY, f64::NEG_INFINITY, -2.0] {
            let b = Backoff::new(Duration::from_millis(30), Duration::from_secs(1), m);
            assert_eq!(b.ceiling(5), Duration::from_millis(30), "{m}");
        }
        let huge = Backoff::new(Duration::from_millis(30), Duration::from_secs(1), f64::MAX);
        assert_eq!(huge.ceiling(3), Duration::from_secs(1));
    }

    #[test]
    fn full_jitter_stays_in_range_and_spreads() {
        let b = Backoff::new(Duration::from_millis(100), Duration::from_secs(1), 2.0);
        let mut rng = fastrand::Rng::with_seed(7);
        let delays: Vec<Duration> = (0..2000).map(|_| b.delay_with(2, &mut rng)).collect();
        assert!(delays.iter().all(|d| *d <= Duration::from_millis(400)));
        // Full jitter: both halves of the range are used, not only values near the ceiling.
        assert!(delays.iter().any(|d| *d < Duration::from_millis(100)));
        assert!(delays.iter().any(|d| *d > Duration::from_millis(300)));
        let mean = delays.iter().sum::<Duration>() / 2000;
        assert!(
            mean > Duration::from_millis(170) && mean < Duration::from_millis(230),
            "{mean:?}"
        );
    }

    #[test]
    fn zero_backoff_never_sleeps() {
        let b = Backoff::new(Duration::ZERO, Duration::ZERO, 2.0);
        assert_eq!(b.delay(4), Duration::ZERO);
    }
}
