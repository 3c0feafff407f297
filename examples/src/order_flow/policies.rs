//! The resilience policies of a run, one per integration, all recording into the run's
//! [`MetricsRegistry`] (the report's table).
//!
//! Against a real provider they follow its published limits and its official SDK's retries;
//! against an in-process sandbox the backoffs are short and the SendGrid breaker is sized so that
//! the injected outage opens it within a few calls and a probe half a second later can close it.

use std::num::NonZeroU32;
use std::time::Duration;

use integrations_core::Policy;
use integrations_core::metrics::MetricsRegistry;
use integrations_core::resilience::{
    Backoff, CircuitBreakerConfig, RateLimiter, RetryPolicy, SlidingWindow,
};
use integrations_stripe::Mode;

/// Stripe: the test-mode rate limit (25/s) and the SDKs' two retries for the real API; 500/s and
/// short backoffs for the sandbox.
///
/// `attempt_timeout` overrides the per-attempt timeout (here and in every function below).
pub fn stripe(
    registry: &MetricsRegistry,
    local: bool,
    attempt_timeout: Option<Duration>,
) -> Policy {
    // The real: Stripe's published test-mode limit and the official SDKs' retries. The sandbox
    // runs in process: no quota to respect, and short backoffs keep the run fast.
    let (rps, backoff, timeout) = if local {
        (
            500,
            Backoff::new(Duration::from_millis(20), Duration::from_millis(200), 2.0),
            10,
        )
    } else {
        (
            Mode::Test.published_rate_limit(),
            Backoff::new(Duration::from_millis(500), Duration::from_secs(5), 2.0),
            80,
        )
    };
    Policy::builder(integrations_stripe::PROVIDER)
        .rate_limiter(RateLimiter::per_second(
            NonZeroU32::new(rps).unwrap_or(NonZeroU32::MIN),
        ))
        .circuit_breaker(CircuitBreakerConfig::DEFAULT)
        .retry(RetryPolicy::new(2, backoff).with_max_retry_after(Duration::from_secs(10)))
        .attempt_timeout(attempt_timeout.unwrap_or(Duration::from_secs(timeout)))
        .metrics(registry)
        .build()
}

/// An email provider named `name` (the name its metrics are kept under).
///
/// `deadline` bounds each call (retries included): the share of the email job's handler timeout
/// this provider gets ([`JobBudgets`]).
pub fn email(
    name: &'static str,
    registry: &MetricsRegistry,
    local: bool,
    attempt_timeout: Option<Duration>,
    deadline: Option<Duration>,
) -> Policy {
    // Locally the breaker is sized so a short burst of 500s opens it within a few calls and a
    // probe half a second later can close it: the outage shows within a run of seconds.
    let (backoff, breaker, timeout) = if local {
        (
            Backoff::new(Duration::from_millis(10), Duration::from_millis(100), 2.0),
            CircuitBreakerConfig::new()
                .with_window(SlidingWindow::Count(10))
                .with_minimum_calls(6)
                .with_failure_rate_threshold(50)
                .with_open_duration(Duration::from_millis(500))
                .with_half_open_probes(2),
            5,
        )
    } else {
        (
            Backoff::new(Duration::from_millis(500), Duration::from_secs(10), 2.0),
            CircuitBreakerConfig::DEFAULT,
            30,
        )
    };
    with_deadline(
        Policy::builder(name)
            .retry(RetryPolicy::new(2, backoff).with_max_retry_after(Duration::from_secs(60)))
            .circuit_breaker(breaker)
            .attempt_timeout(attempt_timeout.unwrap_or(Duration::from_secs(timeout)))
            .metrics(registry),
        deadline,
    )
}

/// Google Sheets: 60 writes a minute, evenly spaced (Google's per-user limit, which the sandbox
/// enforces too), five retries.
///
/// `deadline` bounds each call, as for [`email`].
pub fn sheets(
    name: &'static str,
    registry: &MetricsRegistry,
    local: bool,
    attempt_timeout: Option<Duration>,
    deadline: Option<Duration>,
) -> Policy {
    // Google's published 60 writes a minute per user, evenly spaced; the sandbox enforces it too.
    let backoff = if local {
        Backoff::new(Duration::from_millis(100), Duration::from_secs(2), 2.0)
    } else {
        Backoff::new(Duration::from_secs(1), Duration::from_secs(32), 2.0)
    };
    with_deadline(
        Policy::builder(name)
            .rate_limiter(
                RateLimiter::per_minute(NonZeroU32::new(60).unwrap_or(NonZeroU32::MIN))
                    .with_burst(NonZeroU32::MIN)
                    .with_max_wait(Duration::from_secs(60)),
            )
            .retry(RetryPolicy::new(5, backoff))
            .attempt_timeout(attempt_timeout.unwrap_or(Duration::from_secs(30)))
            .metrics(registry),
        deadline,
    )
}

/// A local integration (the JSONL notifier, the OAuth token endpoint, SNS): two quick retries.
///
/// `deadline` bounds each call, as for [`email`].
pub fn local(
    name: &'static str,
    registry: &MetricsRegistry,
    attempt_timeout: Option<Duration>,
    deadline: Option<Duration>,
) -> Policy {
    with_deadline(
        Policy::builder(name)
            .retry(RetryPolicy::new(
                2,
                Backoff::new(Duration::from_millis(10), Duration::from_millis(100), 2.0),
            ))
            .attempt_timeout(attempt_timeout.unwrap_or(Duration::from_secs(5)))
            .metrics(registry),
        deadline,
    )
}

fn with_deadline(b: integrations_core::resilience::PolicyBuilder, d: Option<Duration>) -> Policy {
    match d {
        Some(d) => b.deadline(d),
        None => b,
    }
    .build()
}

/// What a job's handler calls one after the other (the two providers of a failover, a Sheets
/// read then write), declared as one policy whose worst case is the sum of theirs — the bound
/// [`DispatcherBuilder::handler_with_policy`](integrations_outbox::DispatcherBuilder::handler_with_policy)
/// checks the handler timeout against. Unbounded if any part is. Only declared, never called.
pub fn in_sequence(name: &'static str, parts: &[&Policy]) -> Policy {
    let b = Policy::builder(name).no_attempt_timeout();
    let sum = parts.iter().try_fold(Duration::ZERO, |acc, p| {
        p.worst_case().map(|w| acc.saturating_add(w))
    });
    match sum {
        Some(sum) => b.deadline(sum),
        None => b,
    }
    .build()
}

/// How a delivery's handler timeout is shared among the calls it makes: each call's policy gets
/// its share as a deadline, so the handler's worst case always fits its timeout — whatever the
/// lease (a short one with `--state-dir`, for fast recovery, cuts retries short instead of
/// letting the dispatcher cut a call off mid-request).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobBudgets {
    /// Each of the two email providers (the failover may call both).
    pub email_each: Duration,
    /// Each of the Sheets calls of a row (a read, then a write).
    pub sheets_each: Duration,
    /// The notifier.
    pub notify: Duration,
}

impl JobBudgets {
    /// The shares of `handler_timeout`, with a tenth kept back for the handler's own work.
    pub fn of(handler_timeout: Duration) -> Self {
        let usable = handler_timeout * 9 / 10;
        JobBudgets {
            email_each: usable / 2,
            sheets_each: usable / 2,
            notify: usable,
        }
    }
}
