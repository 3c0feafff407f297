use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU32, Ordering};

use super::*;
use crate::error::ErrorKind;
use crate::resilience::{Backoff, BreakerState, SlidingWindow};

const MS: Duration = Duration::from_millis(1);
const SEC: Duration = Duration::from_secs(1);

fn nz(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).unwrap()
}

/// A builder on a private registry, retrying 3 times with a backoff of at most 100 ms.
fn builder(registry: &MetricsRegistry) -> PolicyBuilder {
    Policy::builder("stripe")
        .metrics(registry)
        .retry(RetryPolicy::new(3, Backoff::new(100 * MS, 100 * MS, 1.0)))
}

fn no_backoff(retries: u32) -> RetryPolicy {
    RetryPolicy::new(retries, Backoff::new(Duration::ZERO, Duration::ZERO, 1.0))
}

/// Counts attempts and answers each with `answer(attempt number)`.
struct Script<A> {
    attempts: AtomicU32,
    answer: A,
}

impl<A: Fn(u32) -> Result<u32>> Script<A> {
    fn new(answer: A) -> Self {
        Script {
            attempts: AtomicU32::new(0),
            answer,
        }
    }
    fn attempts(&self) -> u32 {
        self.attempts.load(Ordering::SeqCst)
    }
    /// Answers by the attempt number within the call.
    async fn run(&self, a: Attempt) -> Result<u32> {
        self.attempts.fetch_add(1, Ordering::SeqCst);
        (self.answer)(a.number)
    }
}

// Real time: latency is timed on `quanta`, which a paused tokio clock does not move.
#[tokio::test]
async fn success_records_call_and_latency() {
    let registry = MetricsRegistry::new();
    let policy = builder(&registry).build();
    let v = policy
        .call("create_payment", |a| async move {
            assert_eq!(
                (a.number, a.operation, a.is_retry()),
                (1, "create_payment", false)
            );
            tokio::time::sleep(40 * MS).await;
            Ok(7)
        })
        .await
        .unwrap();
    assert_eq!(v, 7);
    let s = registry.snapshot();
    let s = s.get("stripe").unwrap();
    assert_eq!(
        (s.calls, s.successes, s.retries, s.latency_count),
        (1, 1, 0, 1)
    );
    // Latency is real elapsed time (the policy times calls on `quanta`), so only a lower
    // bound is exact: the call slept 40 ms. Window quantiles come from buckets 1/16 of a power
    // of two wide (within 1/32); the upper bound only guards against a unit mistake.
    assert!(
        s.p50_ms >= 40.0 * (1.0 - 1.0 / 32.0) && s.p50_ms < 2_000.0,
        "{}",
        s.p50_ms
    );
    assert_eq!(s.operations[0].operation, "create_payment");
    assert!(Arc::ptr_eq(
        policy.metrics(),
        &registry.integration("stripe")
    ));
}

#[tokio::test(start_paused = true)]
async fn retries_transient_errors_within_backoff_ceilings() {
    let registry = MetricsRegistry::new();
    let policy = Policy::builder("stripe")
        .metrics(&registry)
        .retry(RetryPolicy::new(5, Backoff::new(100 * MS, SEC, 2.0)))
        .build();
    let script = Script::new(|n| {
        if n <= 3 {
            Err(Error::unavailable("503"))
        } else {
            Ok(n)
        }
    });
    let t0 = Instant::now();
    assert_eq!(policy.call("op", |a| script.run(a)).await.unwrap(), 4);
    assert_eq!(script.attempts(), 4);
    // Full jitter below ceilings of 100, 200 and 400 ms.
    assert!(t0.elapsed() <= 700 * MS, "{:?}", t0.elapsed());
    assert_eq!(policy.metrics().retries(), 3);
    assert_eq!(policy.metrics().successes(), 1);
}

#[tokio::test(start_paused = true)]
async fn gives_up_when_exhausted_with_provider_and_operation() {
    let registry = MetricsRegistry::new();
    let policy = builder(&registry)
        .retry(no_backoff(2))
        .no_circuit_breaker()
        .build();
    let script = Script::new(|_| Err(Error::timeout("slow")));
    let e = policy.call("refund", |a| script.run(a)).await.unwrap_err();
    assert_eq!(script.attempts(), 3);
    assert_eq!(e.kind(), ErrorKind::Timeout);
    assert_eq!(e.provider_name(), Some("stripe"));
    assert_eq!(e.context().operation.as_deref(), Some("refund"));
    let m = policy.metrics();
    assert_eq!(
        (m.calls(), m.failures(ErrorKind::Timeout), m.retries()),
        (1, 1, 2)
    );

    // A provider name and operation set by the provider crate are kept.
    let e = policy
        .call("refund", |_| async {
            Err::<(), _>(
                Error::not_found("x")
                    .with_provider("stripe-connect")
                    .with_operation("get_refund"),
            )
        })
        .await
        .unwrap_err();
    assert_eq!(e.provider_name(), Some("stripe-connect"));
    assert_eq!(e.context().operation.as_deref(), Some("get_refund"));
}

#[tokio::test(start_paused = true)]
async fn permanent_errors_are_not_retried_unless_reclassified() {
    let registry = MetricsRegistry::new();
    let policy = builder(&registry).retry(no_backoff(3)).build();
    let script = Script::new(|n| {
        if n == 1 {
            Err(Error::conflict("lock held"))
        } else {
            Ok(n)
        }
    });
    let e = policy.call("op", |a| script.run(a)).await.unwrap_err();
    assert_eq!((e.kind(), script.attempts()), (ErrorKind::Conflict, 1));

    let script = Script::new(|n| {
        if n == 1 {
            Err(Error::conflict("lock held"))
        } else {
            Ok(n)
        }
    });
    let v = policy
        .call_classified(
            "op",
            |e: &Error| e.kind() == ErrorKind::Conflict || e.is_retryable(),
            |a| script.run(a),
        )
        .await
        .unwrap();
    assert_eq!(v, 2);

    // And the other way round: a call site that never retries timeouts.
    let script = Script::new(|_| Err(Error::timeout("t")));
    policy
        .call_classified("op", |_: &Error| false, |a| script.run(a))
        .await
        .unwrap_err();
    assert_eq!(script.attempts(), 1);
}

#[tokio::test(start_paused = true)]
async fn retry_after_is_honoured_exactly() {
    let registry = MetricsRegistry::new();
    let policy = builder(&registry).build();
    let script = Script::new(|n| {
        if n <= 2 {
            Err(Error::rate_limited(Some(2 * SEC), "429"))
        } else {
            Ok(n)
        }
    });
    let t0 = Instant::now();
    assert_eq!(policy.call("op", |a| script.run(a)).await.unwrap(), 3);
    assert_eq!(t0.elapsed(), 4 * SEC);
}

#[tokio::test(start_paused = true)]
async fn retry_after_above_the_cap_returns_the_error_at_once() {
    let registry = MetricsRegistry::new();
    let policy = builder(&registry)
        .retry(RetryPolicy::new(3, Backoff::DEFAULT).with_max_retry_after(10 * SEC))
        .build();
    let script = Script::new(|_| Err(Error::rate_limited(Some(11 * SEC), "429")));
    let t0 = Instant::now();
    let e = policy.call("op", |a| script.run(a)).await.unwrap_err();
    assert_eq!(
        (e.kind(), e.retry_after()),
        (ErrorKind::RateLimited, Some(11 * SEC))
    );
    assert_eq!((script.attempts(), t0.elapsed()), (1, Duration::ZERO));
    // At the cap it is waited out.
    let script = Script::new(|n| {
        if n == 1 {
            Err(Error::rate_limited(Some(10 * SEC), "429"))
        } else {
            Ok(n)
        }
    });
    policy.call("op", |a| script.run(a)).await.unwrap();
    assert_eq!(t0.elapsed(), 10 * SEC);
}

#[tokio::test(start_paused = true)]
async fn a_sleep_that_would_cross_the_deadline_returns_the_last_error() {
    let registry = MetricsRegistry::new();
    let policy = builder(&registry).deadline(5 * SEC).build();
    let script = Script::new(|n| Err(Error::rate_limited(Some(3 * SEC), format!("429 #{n}"))));
    let t0 = Instant::now();
    let e = policy.call("op", |a| script.run(a)).await.unwrap_err();
    // Attempt 1 at 0 s, sleep to 3 s, attempt 2; a second sleep would end at 6 s > 5 s.
    assert_eq!(script.attempts(), 2);
    assert_eq!(t0.elapsed(), 3 * SEC);
    assert_eq!(e.kind(), ErrorKind::RateLimited);
    assert!(e.message().ends_with("#2"), "{e}");
}

#[tokio::test(start_paused = true)]
async fn the_deadline_cuts_a_running_attempt_and_stops_retrying() {
    let registry = MetricsRegistry::new();
    let policy = builder(&registry)
        .retry(no_backoff(10))
        .attempt_timeout(2 * SEC)
        .deadline(5 * SEC)
        .build();
    let attempts = AtomicU32::new(0);
    let t0 = Instant::now();
    let e = policy
        .call("op", |_| {
            attempts.fetch_add(1, Ordering::SeqCst);
            async {
                tokio::time::sleep(3600 * SEC).await;
                Ok(())
            }
        })
        .await
        .unwrap_err();
    // Timeouts at 2 s and 4 s, then the deadline at 5 s.
    assert_eq!(attempts.load(Ordering::SeqCst), 3);
    assert_eq!(t0.elapsed(), 5 * SEC);
    assert_eq!(e.kind(), ErrorKind::Timeout);
    assert!(e.message().contains("deadline"), "{e}");
    assert_eq!(policy.metrics().timeouts(), 3);
    assert_eq!(policy.metrics().failures(ErrorKind::Timeout), 1);
}

#[tokio::test(start_paused = true)]
async fn attempt_timeout_then_retry_then_success() {
    let registry = MetricsRegistry::new();
    let policy = builder(&registry)
        .retry(no_backoff(2))
        .attempt_timeout(SEC)
        .build();
    let t0 = Instant::now();
    let v = policy
        .call("op", |a| async move {
            if a.number == 1 {
                tokio::time::sleep(3600 * SEC).await;
            }
            Ok(a.number)
        })
        .await
        .unwrap();
    assert_eq!((v, t0.elapsed()), (2, SEC));
    let m = policy.metrics();
    assert_eq!((m.timeouts(), m.retries(), m.successes()), (1, 1, 1));
}

#[tokio::test(start_paused = true)]
async fn the_breaker_counts_logical_calls_and_short_circuits() {
    let registry = MetricsRegistry::new();
    let policy = builder(&registry)
        .retry(no_backoff(2))
        .circuit_breaker(
            CircuitBreakerConfig::new()
                .with_window(SlidingWindow::Count(10))
                .with_minimum_calls(3)
                .with_open_duration(30 * SEC)
                .with_half_open_probes(1),
        )
        .build();
    let breaker = policy.circuit_breaker().unwrap();
    let script = Script::new(|_| Err(Error::unavailable("503")));
    policy.call("op", |a| script.run(a)).await.unwrap_err();
    // Three attempts, one logical call in the breaker's window.
    assert_eq!((script.attempts(), breaker.window_counts()), (3, (1, 1)));
    policy.call("op", |a| script.run(a)).await.unwrap_err();
    policy.call("op", |a| script.run(a)).await.unwrap_err();
    assert_eq!(breaker.state(), BreakerState::Open);
    assert_eq!(policy.metrics().breaker_state(), BreakerState::Open);

    let before = script.attempts();
    let e = policy.call("op", |a| script.run(a)).await.unwrap_err();
    assert_eq!(
        script.attempts(),
        before,
        "short-circuited calls never reach the provider"
    );
    assert_eq!(e.kind(), ErrorKind::CircuitOpen);
    assert_eq!(
        (e.provider_name(), e.context().operation.as_deref()),
        (Some("stripe"), Some("op"))
    );
    let m = policy.metrics();
    assert_eq!(
        (m.short_circuits(), m.failures(ErrorKind::CircuitOpen)),
        (1, 1)
    );
    assert_eq!(m.calls(), m.successes() + m.total_failures());

    // After the open duration one probe goes through and closes the circuit.
    tokio::time::advance(30 * SEC).await;
    policy.call("op", |_| async { Ok(()) }).await.unwrap();
    assert_eq!(breaker.state(), BreakerState::Closed);
    assert_eq!(
        registry.snapshot().get("stripe").unwrap().breaker_state,
        BreakerState::Closed
    );
}

#[tokio::test(start_paused = true)]
async fn every_retry_takes_a_rate_limit_permit() {
    let registry = MetricsRegistry::new();
    let limiter = RateLimiter::per_minute(nz(2)).with_max_wait(Duration::ZERO);
    let policy = builder(&registry)
        .retry(no_backoff(5))
        .rate_limiter(limiter)
        .build();
    let script = Script::new(|_| Err(Error::unavailable("503")));
    let e = policy.call("op", |a| script.run(a)).await.unwrap_err();
    // Two permits: the call and one retry. The third attempt finds none and the last real error
    // is returned.
    assert_eq!(script.attempts(), 2);
    assert_eq!(e.kind(), ErrorKind::Unavailable);

    // The next call is refused before reaching the provider.
    let e = policy.call("op", |a| script.run(a)).await.unwrap_err();
    assert_eq!(script.attempts(), 2);
    assert_eq!(e.kind(), ErrorKind::RateLimited);
    assert!(e.context().not_processed);
    assert_eq!(e.retry_after(), Some(30 * SEC));
    let m = policy.metrics();
    assert_eq!(
        (
            m.rate_limited_rejections(),
            m.failures(ErrorKind::RateLimited)
        ),
        (2, 1)
    );
}

#[tokio::test(start_paused = true)]
async fn the_limiter_waits_within_max_wait() {
    let registry = MetricsRegistry::new();
    let limiter = RateLimiter::per_second(nz(1)).with_max_wait(2 * SEC);
    let policy = builder(&registry).rate_limiter(limiter).build();
    let t0 = Instant::now();
    for _ in 0..3 {
        policy.call("op", |_| async { Ok(()) }).await.unwrap();
    }
    assert_eq!(t0.elapsed(), 2 * SEC);
    assert_eq!(policy.metrics().rate_limited_waits(), 2);
    assert_eq!(policy.metrics().rate_limited_rejections(), 0);
}

#[tokio::test(start_paused = true)]
async fn the_bulkhead_refuses_after_max_wait() {
    let registry = MetricsRegistry::new();
    let policy = builder(&registry).bulkhead(1, 100 * MS).build();
    let busy = policy.clone();
    let holder = tokio::spawn(async move {
        busy.call("slow", |_| async {
            tokio::time::sleep(SEC).await;
            Ok(())
        })
        .await
    });
    tokio::task::yield_now().await;
    assert_eq!(policy.bulkhead().unwrap().available(), 0);
    let t0 = Instant::now();
    let called = AtomicU32::new(0);
    let e = policy
        .call("op", |_| {
            called.fetch_add(1, Ordering::SeqCst);
            async { Ok(()) }
        })
        .await
        .unwrap_err();
    assert_eq!(
        (e.kind(), t0.elapsed(), called.load(Ordering::SeqCst)),
        (ErrorKind::BulkheadFull, 100 * MS, 0)
    );
    assert_eq!(e.provider_name(), Some("stripe"));
    holder.await.unwrap().unwrap();
    let m = policy.metrics();
    assert_eq!(
        (
            m.bulkhead_rejections(),
            m.failures(ErrorKind::BulkheadFull),
            m.successes()
        ),
        (1, 1, 1)
    );
    assert_eq!(policy.bulkhead().unwrap().available(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_call_gives_back_its_slot_and_probe() {
    let registry = MetricsRegistry::new();
    let policy = builder(&registry)
        .bulkhead(1, Duration::ZERO)
        .circuit_breaker(
            CircuitBreakerConfig::new()
                .with_minimum_calls(1)
                .with_half_open_probes(1)
                .with_open_duration(SEC),
        )
        .retry(RetryPolicy::none())
        .build();
    policy
        .call("op", |_| async { Err::<(), _>(Error::unavailable("x")) })
        .await
        .unwrap_err();
    tokio::time::advance(SEC).await;
    let hung = policy.call("op", |_| async {
        tokio::time::sleep(3600 * SEC).await;
        Ok(())
    });
    assert!(tokio::time::timeout(SEC, hung).await.is_err());
    assert_eq!(policy.bulkhead().unwrap().available(), 1);
    policy.call("op", |_| async { Ok(()) }).await.unwrap();
    assert_eq!(
        policy.circuit_breaker().unwrap().state(),
        BreakerState::Closed
    );
}

#[test]
fn builder_defaults_and_debug() {
    let registry = MetricsRegistry::new();
    let p = Policy::builder(String::from("ses"))
        .metrics(&registry)
        .build();
    assert_eq!(p.provider(), "ses");
    assert_eq!(p.retry_policy(), &RetryPolicy::DEFAULT);
    assert_eq!(
        p.attempt_timeout(),
        Some(PolicyBuilder::DEFAULT_ATTEMPT_TIMEOUT)
    );
    assert_eq!(
        p.circuit_breaker().unwrap().config(),
        &CircuitBreakerConfig::DEFAULT
    );
    assert!(p.rate_limiter().is_none() && p.bulkhead().is_none() && p.deadline().is_none());
    let bare = Policy::builder("sns")
        .metrics(&registry)
        .no_circuit_breaker()
        .no_attempt_timeout()
        .build();
    assert!(bare.circuit_breaker().is_none() && bare.attempt_timeout().is_none());
    let debug = format!("{p:?}");
    assert!(
        debug.starts_with("Policy { provider: \"ses\"") && debug.ends_with(".. }"),
        "{debug}"
    );
}

#[test]
fn call_futures_are_send() {
    fn assert_send<T: Send>(_: T) {}
    let policy = Policy::builder("x")
        .metrics(&MetricsRegistry::new())
        .build();
    assert_send(policy.call("op", |_| async { Ok(1) }));
    assert_send(policy.call_classified("op", |_: &Error| true, |_| async { Ok(1) }));
}

/// Asserts that `capture` saw the event `message` carrying the provider and `operation`.
fn assert_event(capture: &integrations_testkit::TracingCapture, message: &str, operation: &str) {
    // Every event carries the provider and the operation.
    let found = capture.events().iter().any(|e| {
        e.message == message
            && e.field("provider") == Some("stripe")
            && e.field("operation") == Some(operation)
    });
    assert!(
        found,
        "no event {message:?} with provider and operation {operation:?} in {:#?}",
        capture.lines()
    );
}

#[tokio::test(start_paused = true)]
async fn every_decision_is_traced_with_provider_and_operation() {
    // Not a scoped `set_default` subscriber, whose callsites other test threads can settle as
    // "never" for the whole binary: the testkit's capture.
    let capture = integrations_testkit::TracingCapture::start();
    let registry = MetricsRegistry::new();
    let policy = builder(&registry)
        .retry(no_backoff(1))
        .attempt_timeout(500 * MS)
        .rate_limiter(RateLimiter::per_second(nz(1)).with_max_wait(600 * MS))
        .circuit_breaker(CircuitBreakerConfig::new().with_minimum_calls(1))
        .build();
    // Attempt 1 times out at 0.5 s; the retry waits 0.5 s for its permit, times out at 1.5 s;
    // giving up opens the circuit.
    policy
        .call("charge", |_| async {
            tokio::time::sleep(2 * SEC).await;
            Ok(())
        })
        .await
        .unwrap_err();
    assert_event(&capture, "attempt timed out", "charge");
    assert_event(&capture, "retry scheduled", "charge");
    assert_event(&capture, "rate limited: waiting for a permit", "charge");
    assert_event(&capture, "giving up", "charge");
    assert_event(&capture, "circuit breaker opened", "charge");
    // At 1.5 s the open circuit refuses at once, before the rate limiter.
    policy
        .call("refund", |_| async { Ok(()) })
        .await
        .unwrap_err();
    assert_event(&capture, "circuit open: call short-circuited", "refund");
    // Closed by hand: the next call waits 0.5 s for the permit of 2 s; then the following permit
    // is 1 s away, beyond the 0.6 s budget.
    policy.circuit_breaker().unwrap().reset();
    assert_event(&capture, "circuit breaker state changed", "manual");
    policy.call("refund", |_| async { Ok(()) }).await.unwrap();
    policy
        .call("refund", |_| async { Ok(()) })
        .await
        .unwrap_err();
    assert_event(
        &capture,
        "rate limited: no permit within the wait budget",
        "refund",
    );

    let policy = builder(&registry).bulkhead(1, Duration::ZERO).build();
    let busy = policy.clone();
    let holder = tokio::spawn(async move {
        busy.call("hold", |_| std::future::pending::<Result<()>>())
            .await
    });
    tokio::task::yield_now().await;
    policy
        .call("lookup", |_| async { Ok(()) })
        .await
        .unwrap_err();
    assert_event(&capture, "bulkhead full: call refused", "lookup");
    holder.abort();
}

#[tokio::test(start_paused = true)]
async fn waiting_for_a_permit_does_not_eat_the_attempt_timeout() {
    let registry = MetricsRegistry::new();
    let policy = builder(&registry)
        .retry(RetryPolicy::none())
        .attempt_timeout(SEC)
        .rate_limiter(RateLimiter::per_second(nz(1)).with_max_wait(2 * SEC))
        .bulkhead(1, 5 * SEC)
        .build();
    let slow_but_in_time = |_| async {
        tokio::time::sleep(900 * MS).await;
        Ok(())
    };
    let t0 = Instant::now();
    policy.call("op", slow_but_in_time).await.unwrap();
    // The next permit is at 1 s: the call waits 0.1 s, then its attempt gets a full second.
    policy.call("op", slow_but_in_time).await.unwrap();
    assert_eq!(t0.elapsed(), SEC + 900 * MS);

    // Waiting for a bulkhead slot (held until 2.5 s) and then for a permit (at 3 s) does not eat
    // it either.
    let busy = policy.clone();
    let holder = tokio::spawn(async move {
        busy.call("hold", |_| async {
            tokio::time::sleep(500 * MS).await;
            Ok(())
        })
        .await
    });
    tokio::task::yield_now().await;
    policy.call("op", slow_but_in_time).await.unwrap();
    holder.await.unwrap().unwrap();
    assert_eq!(t0.elapsed(), 3 * SEC + 900 * MS);
    assert_eq!(policy.metrics().timeouts(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_refused_call_spends_no_rate_limit_permit() {
    let registry = MetricsRegistry::new();
    let limiter = RateLimiter::per_minute(nz(1)).with_max_wait(Duration::ZERO);
    let policy = builder(&registry).rate_limiter(limiter).build();
    let breaker = policy.circuit_breaker().unwrap();
    breaker.force_open();
    let e = policy.call("op", |_| async { Ok(()) }).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::CircuitOpen);
    breaker.reset();
    policy.call("op", |_| async { Ok(()) }).await.unwrap();
    let e = policy.call("op", |_| async { Ok(()) }).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::RateLimited);
}

#[test]
fn worst_case_adds_attempts_waits_and_guards_and_is_capped_by_the_deadline() {
    let registry = MetricsRegistry::new();
    let retry =
        RetryPolicy::new(2, Backoff::new(500 * MS, 10 * SEC, 2.0)).with_max_retry_after(60 * SEC);
    let base = || {
        Policy::builder("sendgrid")
            .metrics(&registry)
            .no_circuit_breaker()
            .retry(retry)
            .attempt_timeout(30 * SEC)
    };
    // 3 × 30 s + 2 × max(backoff, 60 s Retry-After cap).
    assert_eq!(base().build().worst_case(), Some(210 * SEC));
    // Bulkhead wait once, a rate-limit wait per attempt.
    let guarded = base()
        .bulkhead(4, 2 * SEC)
        .rate_limiter(RateLimiter::per_second(nz(10)).with_max_wait(SEC))
        .build();
    assert_eq!(guarded.worst_case(), Some(215 * SEC));
    assert_eq!(
        base().deadline(40 * SEC).build().worst_case(),
        Some(40 * SEC)
    );
    let unbounded = base().no_attempt_timeout().build();
    assert_eq!(unbounded.worst_case(), None);
    assert_eq!(
        base()
            .no_attempt_timeout()
            .deadline(SEC)
            .build()
            .worst_case(),
        Some(SEC)
    );
    // Saturates instead of overflowing.
    let huge = base()
        .retry(RetryPolicy::new(
            u32::MAX,
            Backoff::new(SEC, Duration::MAX, 2.0),
        ))
        .attempt_timeout(Duration::MAX)
        .build();
    assert_eq!(huge.worst_case(), Some(Duration::MAX));
}

/// The production time source (the call's TSC reading mapped onto tokio's clock, see
/// `resilience::time`), on the real clock: the rate limiter refills, the deadline cuts and the
/// latency window counts as with tokio's own readings.
#[tokio::test]
async fn the_tsc_time_source_drives_the_limiter_deadline_and_window() {
    let registry = MetricsRegistry::new();
    let policy = builder(&registry)
        .time_source(super::TimeSource::Tsc)
        // One permit, then one every 50 ms.
        .rate_limiter(RateLimiter::per_second(nz(20)).with_burst(nz(1)))
        .deadline(300 * MS)
        .build();
    let t0 = std::time::Instant::now();
    assert_eq!(policy.call("op", |_| async { Ok(1) }).await.unwrap(), 1);
    assert_eq!(policy.call("op", |_| async { Ok(2) }).await.unwrap(), 2);
    let waited = t0.elapsed();
    assert!(waited >= 40 * MS && waited < 250 * MS, "{waited:?}");
    assert_eq!(policy.metrics().rate_limited_waits(), 1);
    let s = registry.snapshot();
    let s = s.get("stripe").unwrap();
    assert_eq!((s.successes, s.window_count), (2, 2));
    assert!(s.p99_ms.is_finite() && s.p99_ms < 250.0, "{}", s.p99_ms);

    // A hanging attempt is cut off at the overall deadline, counted from the call's start.
    let t1 = std::time::Instant::now();
    let err = policy
        .call("op", |_| std::future::pending::<Result<u32>>())
        .await
        .unwrap_err();
    let took = t1.elapsed();
    assert_eq!(err.kind(), ErrorKind::Timeout);
    assert!(err.to_string().contains("overall deadline"), "{err}");
    assert!(took >= 290 * MS && took < 2 * SEC, "{took:?}");
}

/// A deadline past the range of the clock (`Duration::MAX`) is no deadline: no timer is armed,
/// so a paused clock's auto-advance does not jump to it while the attempt waits on something
/// outside tokio's clock (found in review: a saturated deadline ~292 years out fired).
#[tokio::test(start_paused = true)]
async fn a_deadline_past_the_clocks_range_is_no_deadline() {
    let registry = MetricsRegistry::new();
    let policy = builder(&registry)
        .no_attempt_timeout()
        .deadline(Duration::MAX)
        .build();
    let (tx, rx) = tokio::sync::oneshot::channel::<u32>();
    std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(100));
        let _ = tx.send(7);
    });
    let rx = std::sync::Mutex::new(Some(rx));
    let v = policy
        .call("unbounded", |_| {
            let rx = rx.lock().unwrap().take().unwrap();
            async move { Ok(rx.await.unwrap()) }
        })
        .await;
    assert_eq!(v.unwrap(), 7);
}

/// A retry refused a permit gives up naming the attempt that failed, not the retry.
#[tokio::test(start_paused = true)]
async fn a_retry_refused_a_permit_names_the_attempt_that_failed() {
    let capture = integrations_testkit::TracingCapture::start();
    let registry = MetricsRegistry::new();
    let limiter = RateLimiter::per_minute(nz(1)).with_max_wait(Duration::ZERO);
    let policy = builder(&registry)
        .retry(no_backoff(5))
        .rate_limiter(limiter)
        .build();
    let script = Script::new(|_| Err(Error::unavailable("503")));
    policy.call("limited", |a| script.run(a)).await.unwrap_err();
    assert_eq!(script.attempts(), 1);
    let ev: Vec<_> = capture
        .events()
        .into_iter()
        .filter(|e| e.message == "giving up" && e.field("operation") == Some("limited"))
        .collect();
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0].field("attempt"), Some("1"));
    assert_eq!(
        ev[0].field("reason"),
        Some(GiveUpReason::RateLimited.as_str())
    );
    let retry: Vec<_> = capture
        .events()
        .into_iter()
        .filter(|e| e.message == "retry scheduled" && e.field("operation") == Some("limited"))
        .collect();
    assert_eq!(retry.len(), 1);
    assert_eq!(retry[0].field("attempt"), Some("1"));
}

/// An attempt timeout equal to the remaining deadline: the deadline wins.
#[tokio::test(start_paused = true)]
async fn a_tie_between_the_attempt_timeout_and_the_deadline_goes_to_the_deadline() {
    let registry = MetricsRegistry::new();
    let policy = builder(&registry)
        .retry(no_backoff(3))
        .attempt_timeout(2 * SEC)
        .deadline(2 * SEC)
        .build();
    let e = policy
        .call("tie", |_| async {
            tokio::time::sleep(3600 * SEC).await;
            Ok(())
        })
        .await
        .unwrap_err();
    assert!(e.message().contains("overall deadline"), "{e}");
    assert_eq!(policy.metrics().timeouts(), 1);
}

#[path = "policy_latency_tests.rs"]
mod latency;
