//! Client-side rate limiting on `governor`, on tokio's clock.

use std::cell::Cell;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

pub use governor::Quota;
use governor::clock::Clock;
use governor::middleware::NoOpMiddleware;
use governor::nanos::Nanos;
use governor::state::{InMemoryState, NotKeyed};
use tokio::time::Instant;

use crate::error::{Error, Result};

/// A `governor` clock reading [`tokio::time::Instant`], so that a paused test clock drives the
/// limiter too. Readings are nanoseconds since the clock was made.
#[derive(Debug, Clone, Copy)]
pub struct TokioClock {
    origin: Instant,
}

impl TokioClock {
    /// A clock whose zero is now.
    pub fn new() -> Self {
        TokioClock {
            origin: Instant::now(),
        }
    }
}

impl Default for TokioClock {
    fn default() -> Self {
        Self::new()
    }
}

thread_local! {
    /// A reading of the clock lent by [`RateLimiter::check_at`] for the duration of one synchronous
    /// check, so that a caller which has just read the clock does not pay for a second reading.
    static LENT_NOW: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// Clears the lent reading when dropped, even if the check panicked.
struct LentNow;

impl LentNow {
    fn lend(now: Instant) -> LentNow {
        LENT_NOW.with(|c| c.set(Some(now)));
        LentNow
    }
}

impl Drop for LentNow {
    fn drop(&mut self) {
        LENT_NOW.with(|c| c.set(None));
    }
}

impl Clock for TokioClock {
    type Instant = Nanos;

    fn now(&self) -> Nanos {
        let now = LENT_NOW.with(Cell::get).unwrap_or_else(Instant::now);
        let elapsed = now.saturating_duration_since(self.origin);
        Nanos::from(u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX))
    }
}

type Governor = governor::RateLimiter<NotKeyed, InMemoryState, TokioClock, NoOpMiddleware<Nanos>>;

/// A per-provider request quota (GCRA, via `governor`). Cloning shares the quota's state.
///
/// [`acquire`](RateLimiter::acquire) takes one permit, waiting for it when the wait is at most
/// `max_wait` (default [`RateLimiter::DEFAULT_MAX_WAIT`], 1 s) and refusing with
/// [`Error::RateLimited`] otherwise. The refusal carries the wait as `retry_after` and is marked not
/// processed: the provider never saw the request.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use std::num::NonZeroU32;
/// use std::time::Duration;
/// use integrations_core::resilience::RateLimiter;
///
/// // Stripe's default live-mode limit is 100 read requests per second.
/// let limiter = RateLimiter::per_second(NonZeroU32::new(100).unwrap())
///     .with_burst(NonZeroU32::new(20).unwrap())
///     .with_max_wait(Duration::from_millis(250));
/// let waited = limiter.acquire().await.unwrap();
/// assert_eq!(waited, Duration::ZERO);
/// # }
/// ```
#[derive(Clone)]
pub struct RateLimiter {
    governor: Arc<Governor>,
    quota: Quota,
    max_wait: Duration,
}

impl std::fmt::Debug for RateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimiter")
            .field("quota", &self.quota)
            .field("max_wait", &self.max_wait)
            .finish_non_exhaustive()
    }
}

impl RateLimiter {
    /// How long [`acquire`](RateLimiter::acquire) waits for a permit by default.
    pub const DEFAULT_MAX_WAIT: Duration = Duration::from_secs(1);

    /// A limiter for any `governor` quota.
    pub fn new(quota: Quota) -> Self {
        RateLimiter {
            governor: Arc::new(Governor::direct_with_clock(quota, TokioClock::new())),
            quota,
            max_wait: Self::DEFAULT_MAX_WAIT,
        }
    }
    /// `n` requests per second, with a burst of `n`.
    pub fn per_second(n: NonZeroU32) -> Self {
        Self::new(Quota::per_second(n))
    }
    /// `n` requests per minute, with a burst of `n`.
    pub fn per_minute(n: NonZeroU32) -> Self {
        Self::new(Quota::per_minute(n))
    }
    /// The same rate with a burst of `burst` requests. Starts from a fresh, full quota: configure
    /// before sharing.
    #[must_use]
    pub fn with_burst(self, burst: NonZeroU32) -> Self {
        Self {
            max_wait: self.max_wait,
            ..Self::new(self.quota.allow_burst(burst))
        }
    }
    /// How long [`acquire`](RateLimiter::acquire) may wait for a permit before refusing.
    #[must_use]
    pub fn with_max_wait(mut self, max_wait: Duration) -> Self {
        self.max_wait = max_wait;
        self
    }

    /// The quota.
    pub fn quota(&self) -> Quota {
        self.quota
    }
    /// The longest wait for a permit.
    pub fn max_wait(&self) -> Duration {
        self.max_wait
    }

    /// Takes a permit if one is free now; otherwise says how long until one is.
    ///
    /// # Errors
    /// The wait until the next permit, when none is free now.
    pub fn check(&self) -> Result<(), Duration> {
        self.governor
            .check()
            .map_err(|not_until| not_until.wait_time_from(self.governor.clock().now()))
    }

    /// Like [`check`](RateLimiter::check), taking `now` (read by the caller a moment ago) as the
    /// current time instead of reading the clock again.
    pub(crate) fn check_at(&self, now: Instant) -> Result<(), Duration> {
        let _lent = LentNow::lend(now);
        self.check()
    }

    /// Takes a permit, waiting up to [`max_wait`](RateLimiter::max_wait); returns how long it
    /// waited.
    ///
    /// # Errors
    /// [`Error::RateLimited`] (with the wait as `retry_after`, marked not processed) when the next
    /// permit is further away than `max_wait`.
    pub async fn acquire(&self) -> Result<Duration> {
        self.acquire_within(self.max_wait).await
    }

    /// Like [`acquire`](RateLimiter::acquire), with a wait budget of `budget` instead of
    /// `max_wait`.
    ///
    /// # Errors
    /// [`Error::RateLimited`] when the next permit is further away than `budget`.
    pub async fn acquire_within(&self, budget: Duration) -> Result<Duration> {
        self.acquire_observed(budget, |_| {}).await
    }

    /// Shared by [`acquire_within`](RateLimiter::acquire_within) and the policy: `on_wait` hears
    /// each wait before it is slept.
    pub(crate) async fn acquire_observed(
        &self,
        budget: Duration,
        mut on_wait: impl FnMut(Duration),
    ) -> Result<Duration> {
        let Err(mut wait) = self.check() else {
            return Ok(Duration::ZERO);
        };
        let start = Instant::now();
        loop {
            let waited = start.elapsed();
            if waited + wait > budget {
                return Err(Error::rate_limited(
                    Some(wait),
                    "client-side rate limit: no permit within the wait budget",
                )
                .not_processed());
            }
            on_wait(wait);
            tokio::time::sleep(wait).await;
            match self.check() {
                Ok(()) => return Ok(start.elapsed()),
                // Another task took the permit first: wait again, within what is left.
                Err(next) => wait = next,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nz(n: u32) -> NonZeroU32 {
        NonZeroU32::new(n).unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn burst_then_waits_then_refuses() {
        let limiter = RateLimiter::per_second(nz(10)).with_max_wait(Duration::from_millis(150));
        for _ in 0..10 {
            assert_eq!(limiter.acquire().await.unwrap(), Duration::ZERO);
        }
        // The 11th permit is 100 ms away: within the budget, so it waits on the paused clock.
        let t0 = Instant::now();
        assert_eq!(limiter.acquire().await.unwrap(), Duration::from_millis(100));
        assert_eq!(t0.elapsed(), Duration::from_millis(100));
        // Claim the next permit too, leaving the one after 200 ms away: beyond the budget.
        assert!(limiter.acquire().await.is_ok());
        limiter.check().unwrap_err();
        let err = limiter
            .acquire_within(Duration::from_millis(50))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::RateLimited);
        assert!(err.is_failover_safe());
        assert!(err.context().not_processed);
        let retry_after = err.retry_after().unwrap();
        assert!(
            retry_after > Duration::from_millis(50) && retry_after <= Duration::from_millis(100),
            "{retry_after:?}"
        );
        // Refusing did not sleep.
        assert_eq!(t0.elapsed(), Duration::from_millis(200));
    }

    #[tokio::test(start_paused = true)]
    async fn quota_refills_with_time() {
        let limiter = RateLimiter::per_minute(nz(2)).with_max_wait(Duration::ZERO);
        limiter.acquire().await.unwrap();
        limiter.acquire().await.unwrap();
        let wait = limiter.check().unwrap_err();
        assert_eq!(wait, Duration::from_secs(30));
        assert!(limiter.acquire().await.is_err());
        tokio::time::advance(Duration::from_secs(30)).await;
        assert_eq!(limiter.acquire().await.unwrap(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn burst_setting_and_shared_state() {
        let limiter = RateLimiter::per_second(nz(1))
            .with_burst(nz(3))
            .with_max_wait(Duration::ZERO);
        assert_eq!(limiter.max_wait(), Duration::ZERO);
        assert_eq!(limiter.quota().burst_size(), nz(3));
        let clone = limiter.clone();
        limiter.check().unwrap();
        clone.check().unwrap();
        limiter.check().unwrap();
        assert_eq!(clone.check().unwrap_err(), Duration::from_secs(1));
        assert!(format!("{limiter:?}").starts_with("RateLimiter"));
    }

    #[tokio::test(start_paused = true)]
    async fn check_at_uses_the_lent_time_only_for_that_check() {
        let limiter = RateLimiter::per_second(nz(1));
        let t0 = Instant::now();
        limiter.check().unwrap();
        tokio::time::advance(Duration::from_secs(1)).await;
        // As of t0 the next permit is a second away; as of now it is free.
        assert_eq!(limiter.check_at(t0).unwrap_err(), Duration::from_secs(1));
        assert!(LENT_NOW.with(Cell::get).is_none());
        limiter.check().unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn contended_waiters_share_the_budget() {
        let limiter = RateLimiter::per_second(nz(10))
            .with_burst(nz(1))
            .with_max_wait(Duration::from_millis(250));
        limiter.check().unwrap();
        let mut tasks = Vec::new();
        for _ in 0..3 {
            let l = limiter.clone();
            tasks.push(tokio::spawn(async move { l.acquire().await }));
        }
        let mut ok = 0;
        for t in tasks {
            if t.await.unwrap().is_ok() {
                ok += 1;
            }
        }
        // Permits at 100 ms, 200 ms, 300 ms: only the first two fit in a 250 ms budget.
        assert_eq!(ok, 2);
    }
}
