//! An injectable wall clock, so that timestamp tolerance and dedup expiry can be tested without
//! waiting.

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Where "now" comes from. Verifiers and stores take one so tests can move time.
///
/// Implemented for [`SystemClock`], [`FixedClock`], and for `Arc<C>` / `&C` of any clock.
pub trait Clock: Send + Sync + fmt::Debug {
    /// The current wall-clock time.
    fn now(&self) -> SystemTime;

    /// The current time as whole unix seconds (negative before 1970).
    fn unix_seconds(&self) -> i64 {
        unix_seconds(self.now())
    }
}

impl<C: Clock + ?Sized> Clock for Arc<C> {
    fn now(&self) -> SystemTime {
        (**self).now()
    }
}

impl<C: Clock + ?Sized> Clock for &C {
    fn now(&self) -> SystemTime {
        (**self).now()
    }
}

/// The real clock: [`SystemTime::now`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// A clock that stands still until told to move. Clones share the same time, so a test can keep
/// one handle and give another to the code under test.
///
/// ```
/// use std::time::Duration;
/// use integrations_core::clock::{Clock, FixedClock};
///
/// let clock = FixedClock::from_unix(1_614_265_330);
/// let handle = clock.clone();
/// handle.advance(Duration::from_secs(60));
/// assert_eq!(clock.unix_seconds(), 1_614_265_390);
/// clock.set_unix(0);
/// assert_eq!(handle.unix_seconds(), 0);
/// ```
#[derive(Clone)]
pub struct FixedClock {
    now: Arc<Mutex<SystemTime>>,
}

impl FixedClock {
    /// A clock showing `now`.
    pub fn new(now: SystemTime) -> Self {
        FixedClock {
            now: Arc::new(Mutex::new(now)),
        }
    }

    /// A clock showing `secs` unix seconds (negative is before 1970).
    ///
    /// # Panics
    /// If `SystemTime` cannot represent it (see [`from_unix_seconds`]).
    pub fn from_unix(secs: i64) -> Self {
        FixedClock::new(from_unix_seconds(secs))
    }

    /// Sets the time.
    pub fn set(&self, now: SystemTime) {
        *self.now.lock().unwrap_or_else(PoisonError::into_inner) = now;
    }

    /// Sets the time to `secs` unix seconds.
    pub fn set_unix(&self, secs: i64) {
        self.set(from_unix_seconds(secs));
    }

    /// Moves the time forward by `by` (left unchanged if that leaves `SystemTime`'s range).
    pub fn advance(&self, by: Duration) {
        let mut now = self.now.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(t) = now.checked_add(by) {
            *now = t;
        }
    }

    /// Moves the time backward by `by`, to test clock skew (left unchanged if that leaves
    /// `SystemTime`'s range).
    pub fn rewind(&self, by: Duration) {
        let mut now = self.now.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(t) = now.checked_sub(by) {
            *now = t;
        }
    }
}

impl Clock for FixedClock {
    fn now(&self) -> SystemTime {
        *self.now.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl fmt::Debug for FixedClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FixedClock")
            .field("unix_seconds", &self.unix_seconds())
            .finish()
    }
}

/// `t` as whole unix seconds, rounded towards negative infinity; saturates at the `i64` range.
pub fn unix_seconds(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(before) => {
            let d = before.duration();
            let whole = i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
            if d.subsec_nanos() > 0 {
                whole.saturating_neg().saturating_sub(1)
            } else {
                whole.saturating_neg()
            }
        }
    }
}

/// The instant `secs` unix seconds after (or, negative, before) 1970.
///
/// # Panics
/// If the platform's `SystemTime` cannot represent it (far beyond ±292 billion years on Unix).
pub fn from_unix_seconds(secs: i64) -> SystemTime {
    let magnitude = Duration::from_secs(secs.unsigned_abs());
    if secs >= 0 {
        UNIX_EPOCH + magnitude
    } else {
        UNIX_EPOCH - magnitude
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_clock_clones_share_time() {
        let a = FixedClock::from_unix(100);
        let b = a.clone();
        b.advance(Duration::from_secs(5));
        assert_eq!(a.unix_seconds(), 105);
        a.rewind(Duration::from_secs(10));
        assert_eq!(b.unix_seconds(), 95);
        b.set(UNIX_EPOCH + Duration::from_secs(7));
        assert_eq!(a.now(), UNIX_EPOCH + Duration::from_secs(7));
    }

    #[test]
    fn unix_seconds_round_trip_and_floor() {
        for s in [-1_000, -1, 0, 1, 1_614_265_330] {
            assert_eq!(unix_seconds(from_unix_seconds(s)), s);
        }
        assert_eq!(unix_seconds(UNIX_EPOCH - Duration::from_millis(500)), -1);
        assert_eq!(unix_seconds(UNIX_EPOCH + Duration::from_millis(1500)), 1);
    }

    #[test]
    fn clocks_through_pointers() {
        let c = FixedClock::from_unix(42);
        let arc: Arc<dyn Clock> = Arc::new(c.clone());
        assert_eq!(arc.unix_seconds(), 42);
        let by_ref: &dyn Clock = &&c;
        assert_eq!(by_ref.unix_seconds(), 42);
        let now = SystemClock.unix_seconds();
        assert!(now > 1_600_000_000, "{now}");
        assert!(format!("{c:?}").contains("42"));
    }
}
