//! Retry: how many times, after which delay, and when to give up.

use std::time::Duration;

use super::backoff::Backoff;
use crate::error::{Error, Result};

/// How a failed attempt is retried.
///
/// * Only errors the classifier calls retryable are retried — by default
///   [`Error::is_retryable`], overridable per call site with
///   [`Policy::call_classified`](super::Policy::call_classified).
/// * At most `max_retries` retries (so `max_retries + 1` attempts).
/// * The delay is the [`Backoff`]'s full-jitter delay, unless the error carries the provider's
///   `Retry-After` ([`Error::retry_after`]): then exactly that delay is waited, as long as it is at
///   most `max_retry_after` (default 30 s). A longer `Retry-After` is **not** retried: the
///   [`Error::RateLimited`] is returned at once so the caller can reschedule the work (e.g. leave
///   it in the outbox) rather than hold a task for minutes or hammer the provider early.
///
/// Defaults ([`RetryPolicy::DEFAULT`]): 3 retries, [`Backoff::DEFAULT`], 30 s `max_retry_after`.
///
/// ```
/// use std::time::Duration;
/// use integrations_core::resilience::{Backoff, GiveUpReason, RetryDecision, RetryPolicy};
/// use integrations_core::Error;
///
/// let retry = RetryPolicy::new(2, Backoff::new(Duration::from_millis(10), Duration::from_secs(1), 2.0))
///     .with_max_retry_after(Duration::from_secs(5));
/// let slow_down = Error::rate_limited(Some(Duration::from_secs(2)), "429");
/// assert!(matches!(retry.decide(0, &slow_down, true), RetryDecision::Retry { delay, .. } if delay == Duration::from_secs(2)));
/// let come_back_later = Error::rate_limited(Some(Duration::from_secs(60)), "429");
/// assert_eq!(retry.decide(0, &come_back_later, true), RetryDecision::GiveUp(GiveUpReason::RetryAfterTooLong));
/// assert_eq!(retry.decide(2, &slow_down, true), RetryDecision::GiveUp(GiveUpReason::Exhausted));
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    max_retries: u32,
    backoff: Backoff,
    max_retry_after: Duration,
}

/// Why a retry waits the delay it waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryReason {
    /// The backoff's jittered delay.
    Backoff,
    /// The provider's `Retry-After`.
    RetryAfter,
}

impl RetryReason {
    /// `"backoff"` or `"retry_after"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            RetryReason::Backoff => "backoff",
            RetryReason::RetryAfter => "retry_after",
        }
    }
}

/// Why no retry follows a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GiveUpReason {
    /// The error is not retryable.
    NotRetryable,
    /// Every retry was used.
    Exhausted,
    /// The provider asked for a wait longer than `max_retry_after`.
    RetryAfterTooLong,
    /// Retrying would cross the call's overall deadline.
    Deadline,
    /// No rate-limiter permit for the retry in time.
    RateLimited,
}

impl GiveUpReason {
    /// Snake-case name, for logs.
    pub const fn as_str(self) -> &'static str {
        match self {
            GiveUpReason::NotRetryable => "not_retryable",
            GiveUpReason::Exhausted => "exhausted",
            GiveUpReason::RetryAfterTooLong => "retry_after_too_long",
            GiveUpReason::Deadline => "deadline",
            GiveUpReason::RateLimited => "rate_limited",
        }
    }
}

/// What follows a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryDecision {
    /// Try again after `delay`.
    Retry {
        /// How long to wait first.
        delay: Duration,
        /// Where the delay comes from.
        reason: RetryReason,
    },
    /// Return the error.
    GiveUp(GiveUpReason),
}

impl RetryPolicy {
    /// Default largest `Retry-After` that is waited out (30 s).
    pub const DEFAULT_MAX_RETRY_AFTER: Duration = Duration::from_secs(30);
    /// 3 retries with [`Backoff::DEFAULT`].
    pub const DEFAULT: RetryPolicy = RetryPolicy::new(3, Backoff::DEFAULT);

    /// Up to `max_retries` retries, waiting per `backoff`.
    pub const fn new(max_retries: u32, backoff: Backoff) -> Self {
        RetryPolicy {
            max_retries,
            backoff,
            max_retry_after: Self::DEFAULT_MAX_RETRY_AFTER,
        }
    }
    /// Never retry.
    pub const fn none() -> Self {
        Self::new(0, Backoff::DEFAULT)
    }
    /// The largest `Retry-After` waited out; longer ones end the call with the error.
    #[must_use]
    pub const fn with_max_retry_after(mut self, max: Duration) -> Self {
        self.max_retry_after = max;
        self
    }

    /// Retries allowed after the first attempt.
    pub const fn max_retries(&self) -> u32 {
        self.max_retries
    }
    /// The backoff.
    pub const fn backoff(&self) -> &Backoff {
        &self.backoff
    }
    /// The largest `Retry-After` waited out.
    pub const fn max_retry_after(&self) -> Duration {
        self.max_retry_after
    }

    /// Decides what follows a failed attempt, `retries_done` retries into the call, where the
    /// classifier called `error` `retryable`.
    pub fn decide(&self, retries_done: u32, error: &Error, retryable: bool) -> RetryDecision {
        if !retryable {
            return RetryDecision::GiveUp(GiveUpReason::NotRetryable);
        }
        if retries_done >= self.max_retries {
            return RetryDecision::GiveUp(GiveUpReason::Exhausted);
        }
        match error.retry_after() {
            Some(wait) if wait > self.max_retry_after => {
                RetryDecision::GiveUp(GiveUpReason::RetryAfterTooLong)
            }
            Some(wait) => RetryDecision::Retry {
                delay: wait,
                reason: RetryReason::RetryAfter,
            },
            None => RetryDecision::Retry {
                delay: self.backoff.delay(retries_done),
                reason: RetryReason::Backoff,
            },
        }
    }

    /// Runs `attempt` (given the 1-based attempt number) until it succeeds or
    /// [`decide`](RetryPolicy::decide) gives up, sleeping on tokio's clock in between. Errors are
    /// classified with [`Error::is_retryable`]. For rate limiting, a breaker, timeouts and
    /// metrics around the retries, use a [`Policy`](super::Policy).
    ///
    /// # Errors
    /// The last attempt's error.
    pub async fn run<T, F, Fut>(&self, mut attempt: F) -> Result<T>
    where
        F: FnMut(u32) -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let mut retries = 0;
        loop {
            let error = match attempt(retries + 1).await {
                Ok(v) => return Ok(v),
                Err(e) => e,
            };
            match self.decide(retries, &error, error.is_retryable()) {
                RetryDecision::Retry { delay, reason } => {
                    tracing::debug!(
                        attempt = retries + 1,
                        delay_ms = delay.as_millis() as u64,
                        reason = reason.as_str(),
                        error = %error,
                        "retry scheduled"
                    );
                    tokio::time::sleep(delay).await;
                    retries += 1;
                }
                RetryDecision::GiveUp(_) => return Err(error),
            }
        }
    }
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self::DEFAULT
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};
    use tokio::time::Instant;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn decisions() {
        let r = RetryPolicy::new(3, Backoff::new(100 * MS, Duration::from_secs(1), 2.0));
        let unavailable = Error::unavailable("503");
        assert_eq!(
            r.decide(0, &unavailable, false),
            RetryDecision::GiveUp(GiveUpReason::NotRetryable)
        );
        assert_eq!(
            r.decide(3, &unavailable, true),
            RetryDecision::GiveUp(GiveUpReason::Exhausted)
        );
        match r.decide(2, &unavailable, true) {
            RetryDecision::Retry {
                delay,
                reason: RetryReason::Backoff,
            } => assert!(delay <= 400 * MS),
            other => panic!("{other:?}"),
        }
        let at_cap = Error::rate_limited(Some(Duration::from_secs(30)), "429");
        assert_eq!(
            r.decide(0, &at_cap, true),
            RetryDecision::Retry {
                delay: Duration::from_secs(30),
                reason: RetryReason::RetryAfter
            }
        );
        let above = Error::rate_limited(Some(Duration::from_secs(31)), "429");
        assert_eq!(
            r.decide(0, &above, true),
            RetryDecision::GiveUp(GiveUpReason::RetryAfterTooLong)
        );
        assert_eq!(
            RetryPolicy::none().decide(0, &unavailable, true),
            RetryDecision::GiveUp(GiveUpReason::Exhausted)
        );
        assert_eq!(RetryPolicy::default(), RetryPolicy::DEFAULT);
        assert_eq!(r.max_retries(), 3);
        assert_eq!(r.max_retry_after(), Duration::from_secs(30));
        assert_eq!(r.backoff().initial, 100 * MS);
    }

    #[tokio::test(start_paused = true)]
    async fn run_retries_until_success_within_backoff_ceilings() {
        let r = RetryPolicy::new(5, Backoff::new(100 * MS, Duration::from_secs(10), 2.0));
        let calls = AtomicU32::new(0);
        let t0 = Instant::now();
        let v = r
            .run(|n| {
                calls.fetch_add(1, Ordering::SeqCst);
                async move {
                    if n < 4 {
                        Err(Error::timeout("slow"))
                    } else {
                        Ok(n)
                    }
                }
            })
            .await
            .unwrap();
        assert_eq!(v, 4);
        assert_eq!(calls.load(Ordering::SeqCst), 4);
        // Three sleeps with ceilings 100 + 200 + 400 ms.
        assert!(t0.elapsed() <= 700 * MS, "{:?}", t0.elapsed());
    }

    #[tokio::test(start_paused = true)]
    async fn run_stops_on_permanent_errors_and_when_exhausted() {
        let r = RetryPolicy::new(2, Backoff::new(10 * MS, 10 * MS, 1.0));
        let calls = AtomicU32::new(0);
        let e = r
            .run(|_| {
                calls.fetch_add(1, Ordering::SeqCst);
                async { Err::<(), _>(Error::invalid_input("amount", "negative")) }
            })
            .await
            .unwrap_err();
        assert_eq!(
            (e.field(), calls.load(Ordering::SeqCst)),
            (Some("amount"), 1)
        );

        calls.store(0, Ordering::SeqCst);
        let e = r
            .run(|_| {
                calls.fetch_add(1, Ordering::SeqCst);
                async { Err::<(), _>(Error::unavailable("down")) }
            })
            .await
            .unwrap_err();
        assert_eq!(
            (e.kind(), calls.load(Ordering::SeqCst)),
            (crate::ErrorKind::Unavailable, 3)
        );
    }
}
