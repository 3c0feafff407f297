//! Client-side rate limiting on `governor`, on tokio's clock.

use std::cell::Cell;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

pub use governor::Quota;
use governor::clock::Clock;
use governor::middleware::NoOpMiddleware;
use governor::nanos::Nanos;
use governor::state::{InMemoryState, NotKeyed};
use tokio::time::Instant;

use super::time::Moment;
use crate::error::{Error, Result};

/// A `governor` clock reading [`tokio::time::Instant`], so that a paused test clock drives the
/// limiter too. Readings are nanoseconds since the clock was made.
#[derive(Debug, Clone, Copy)]
pub struct TokioClock {
    origin: Moment,
}

impl TokioClock {
    /// A clock whose zero is now.
    pub fn new() -> Self {
        TokioClock {
            origin: Moment::now(),
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
    static LENT_NOW: Cell<Option<Moment>> = const { Cell::new(None) };
}

/// Clears the lent reading when dropped, even if the check panicked.
struct LentNow;

impl LentNow {
    fn lend(now: Moment) -> LentNow {
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
        let now = LENT_NOW.with(Cell::get).unwrap_or_else(Moment::now);
        Nanos::from(now.nanos_since(self.origin))
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
/// Tasks that have to wait are served in line, first come first served: while any task waits, a
/// newcomer does not take a freed permit ahead of it (not even through [`check`](RateLimiter::check))
/// but joins the end of the line. Without the line a waiter woke when its permit was due, found it
/// taken by a task that had just arrived, and could lose that race again and again until its
/// budget ran out: measured with 32 tasks on a saturated 200-a-second limiter with a 300 ms budget,
/// 117 of 947 acquisitions were refused although the line ahead of each was 160 ms long, and with
/// 16 tasks at 500 a second the longest wait was 334 ms for a line of 32 ms. `governor` has no
/// queue of its own (its `until_ready` futures race the same way), hence this one.
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
    line: Arc<Line>,
}

/// The tasks waiting for a permit: how many, and whose turn it is (tokio's mutex is fair: lockers
/// get it in the order they asked).
#[derive(Default)]
struct Line {
    waiting: AtomicUsize,
    turn: tokio::sync::Mutex<()>,
}

/// One place in the [`Line`], given up when dropped (also when the waiting future is cancelled).
struct Place<'a>(&'a Line);

impl<'a> Place<'a> {
    fn join(line: &'a Line) -> Self {
        line.waiting.fetch_add(1, Ordering::AcqRel);
        Place(line)
    }
}

impl Drop for Place<'_> {
    fn drop(&mut self) {
        self.0.waiting.fetch_sub(1, Ordering::AcqRel);
    }
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
            line: Arc::default(),
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

    /// Takes a permit if one is free now and no task is waiting in line for one; otherwise says
    /// how long until one is (with tasks in line, an estimate: one replenish interval for each).
    ///
    /// # Errors
    /// The wait until the next permit, when none is free now.
    pub fn check(&self) -> Result<(), Duration> {
        match self.line.waiting.load(Ordering::Acquire) {
            0 => self.take(),
            waiting => Err(self.line_wait(waiting)),
        }
    }

    /// A permit from `governor`, line or no line.
    fn take(&self) -> Result<(), Duration> {
        self.governor
            .check()
            .map_err(|not_until| not_until.wait_time_from(self.governor.clock().now()))
    }

    /// About how long the last of `waiting` tasks in line waits.
    fn line_wait(&self, waiting: usize) -> Duration {
        let waiting = u32::try_from(waiting).unwrap_or(u32::MAX);
        self.quota.replenish_interval().saturating_mul(waiting)
    }

    /// Like [`check`](RateLimiter::check), taking `now` (read by the caller a moment ago) as the
    /// current time instead of reading the clock again.
    pub(crate) fn check_at(&self, now: Moment) -> Result<(), Duration> {
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
        let Err(wait) = self.check() else {
            return Ok(Duration::ZERO);
        };
        let start = Instant::now();
        // The expected wait already exceeds the budget: refuse now rather than after the budget.
        if wait > budget {
            return Err(refusal(wait));
        }
        let _place = Place::join(&self.line);
        on_wait(wait);
        let Ok(_turn) = tokio::time::timeout(budget, self.line.turn.lock()).await else {
            let behind = self.line.waiting.load(Ordering::Acquire);
            return Err(refusal(self.line_wait(behind)));
        };
        // Our turn: only the task at the head of the line takes permits now.
        loop {
            match self.take() {
                Ok(()) => return Ok(start.elapsed()),
                Err(wait) => {
                    if start.elapsed() + wait > budget {
                        return Err(refusal(wait));
                    }
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }
}

/// The refusal of a permit further away than the wait budget.
fn refusal(wait: Duration) -> Error {
    Error::rate_limited(
        Some(wait),
        "client-side rate limit: no permit within the wait budget",
    )
    .not_processed()
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

    /// A newcomer does not take the permit a waiter is about to get: while a task waits in line,
    /// `check` refuses even when governor has a permit free, and the waiter gets it.
    #[tokio::test(start_paused = true)]
    async fn a_newcomer_does_not_take_the_permit_of_a_waiter() {
        let limiter = RateLimiter::per_second(nz(100)).with_burst(nz(1));
        limiter.check().unwrap();
        let waiter = tokio::spawn({
            let limiter = limiter.clone();
            async move { limiter.acquire().await }
        });
        // Let the waiter join the line, then bring its permit due without letting it run.
        tokio::task::yield_now().await;
        tokio::time::advance(Duration::from_millis(10)).await;
        assert_eq!(limiter.check(), Err(Duration::from_millis(10)));
        assert_eq!(waiter.await.unwrap().unwrap(), Duration::from_millis(10));
        // The line is empty again: the next permit is governor's alone to give.
        assert_eq!(limiter.check(), Err(Duration::from_millis(10)));
        tokio::time::advance(Duration::from_millis(10)).await;
        assert_eq!(limiter.check(), Ok(()));
    }

    /// A task whose place in line is further away than its budget is refused at once, and the
    /// refusal says about how long the line is.
    #[tokio::test(start_paused = true)]
    async fn a_line_longer_than_the_budget_is_refused_at_once() {
        let limiter = RateLimiter::per_second(nz(100))
            .with_burst(nz(1))
            .with_max_wait(Duration::from_millis(25));
        limiter.check().unwrap();
        let waiters: Vec<_> = (0..3)
            .map(|_| {
                let limiter = limiter.clone();
                tokio::spawn(async move { limiter.acquire().await })
            })
            .collect();
        tokio::task::yield_now().await;
        let t0 = Instant::now();
        let err = limiter.acquire().await.unwrap_err();
        assert_eq!(t0.elapsed(), Duration::ZERO);
        assert_eq!(err.retry_after(), Some(Duration::from_millis(30)));
        let mut served = 0;
        for w in waiters {
            served += usize::from(w.await.unwrap().is_ok());
        }
        // 10, 20 ms: within 25; the third would need 30 ms and is refused when its budget ends.
        assert_eq!(served, 2);
    }

    /// A saturated limiter serves its waiters in line: with 20 tasks asking again as soon as they
    /// get a permit, no one waits longer than the line ahead of it (20 permits), so no one is
    /// refused within a budget that covers the line. Before the line existed, a waiter woke to
    /// find the permit taken by a newcomer and could lose again and again until its budget ran
    /// out.
    #[tokio::test(start_paused = true)]
    async fn waiters_are_served_in_line_not_starved_by_newcomers() {
        let limiter = RateLimiter::per_second(nz(100))
            .with_burst(nz(1))
            .with_max_wait(Duration::from_millis(500));
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..20 {
            let limiter = limiter.clone();
            tasks.spawn(async move {
                let (mut refused, mut longest) = (0, Duration::ZERO);
                for _ in 0..20 {
                    let t0 = Instant::now();
                    match limiter.acquire().await {
                        Ok(_) => longest = longest.max(t0.elapsed()),
                        Err(_) => refused += 1,
                    }
                    tokio::task::yield_now().await;
                }
                (refused, longest)
            });
        }
        let (mut refused, mut longest) = (0, Duration::ZERO);
        while let Some(r) = tasks.join_next().await {
            let (r, l) = r.unwrap();
            refused += r;
            longest = longest.max(l);
        }
        assert_eq!(refused, 0, "longest wait {longest:?}");
        // 20 in line at 10 ms a permit, plus the one being served.
        assert!(longest <= Duration::from_millis(210), "{longest:?}");
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
        assert_eq!(
            limiter.check_at(Moment::of(t0)).unwrap_err(),
            Duration::from_secs(1)
        );
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
