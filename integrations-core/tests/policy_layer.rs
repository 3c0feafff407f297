//! `PolicyLayer` over real tower services: retry, timeout, breaker, rate limit, readiness and
//! error classification.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use integrations_core::metrics::MetricsRegistry;
use integrations_core::resilience::{
    Backoff, BreakerState, CircuitBreakerConfig, RateLimiter, RetryPolicy,
};
use integrations_core::{Error, ErrorKind, Policy};
use tower::{Service, ServiceBuilder, ServiceExt};

fn fast_retry(n: u32) -> RetryPolicy {
    RetryPolicy::new(
        n,
        Backoff::new(Duration::from_millis(1), Duration::from_millis(2), 2.0),
    )
}

fn policy(registry: &MetricsRegistry) -> Policy {
    Policy::builder("inventory")
        .metrics(registry)
        .no_circuit_breaker()
        .retry(fast_retry(3))
        .attempt_timeout(Duration::from_secs(1))
        .build()
}

/// A service failing its first `failures` calls with an I/O error.
fn flaky(
    failures: u32,
    calls: Arc<AtomicU32>,
) -> impl Service<u32, Response = u32, Error = std::io::Error, Future: Send> + Clone + Send + 'static
{
    tower::service_fn(move |x: u32| {
        let n = calls.fetch_add(1, Ordering::SeqCst);
        async move {
            if n < failures {
                Err(std::io::Error::other("connection reset"))
            } else {
                Ok(x * 2)
            }
        }
    })
}

#[tokio::test]
async fn retries_transient_errors_of_the_inner_service() {
    let registry = MetricsRegistry::new();
    let calls = Arc::new(AtomicU32::new(0));
    let svc = ServiceBuilder::new()
        .layer(policy(&registry).layer("reserve"))
        .service(flaky(2, calls.clone()));
    assert_eq!(svc.oneshot(21).await.unwrap(), 42);
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    let m = registry.integration("inventory");
    assert_eq!((m.calls(), m.successes(), m.retries()), (1, 1, 2));
}

#[tokio::test]
async fn gives_up_after_the_retry_limit_with_the_source_kept() {
    let registry = MetricsRegistry::new();
    let calls = Arc::new(AtomicU32::new(0));
    let svc = ServiceBuilder::new()
        .layer(policy(&registry).layer("reserve"))
        .service(flaky(10, calls.clone()));
    let err = svc.oneshot(1).await.unwrap_err();
    assert_eq!(calls.load(Ordering::SeqCst), 4, "1 attempt + 3 retries");
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    assert_eq!(err.provider_name(), Some("inventory"));
    assert_eq!(err.context().operation.as_deref(), Some("reserve"));
    let source = std::error::Error::source(&err).expect("source kept");
    assert!(source.to_string().contains("connection reset"), "{source}");
}

#[tokio::test]
async fn a_classifier_decides_what_is_retried() {
    let registry = MetricsRegistry::new();
    let calls = Arc::new(AtomicU32::new(0));
    let svc = ServiceBuilder::new()
        .layer(
            policy(&registry)
                .layer("reserve")
                .classify(|e: std::io::Error| Error::invalid_input("sku", e.to_string())),
        )
        .service(flaky(10, calls.clone()));
    let err = svc.oneshot(1).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert_eq!(err.field(), Some("sku"));
    assert_eq!(calls.load(Ordering::SeqCst), 1, "not retried");
}

#[tokio::test]
async fn the_crates_own_errors_pass_through_unchanged() {
    let registry = MetricsRegistry::new();
    let calls = Arc::new(AtomicU32::new(0));
    let seen = calls.clone();
    let svc = ServiceBuilder::new()
        .layer(policy(&registry).layer("charge"))
        .service_fn(move |_: u32| {
            seen.fetch_add(1, Ordering::SeqCst);
            async { Err::<u32, _>(Error::declined(Some("card_declined".into()), None, "no")) }
        });
    let err = svc.oneshot(1).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Declined);
    assert_eq!(err.code(), Some("card_declined"));
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn each_attempt_is_cut_off_at_the_attempt_timeout() {
    let registry = MetricsRegistry::new();
    let policy = Policy::builder("inventory")
        .metrics(&registry)
        .no_circuit_breaker()
        .retry(fast_retry(1))
        .attempt_timeout(Duration::from_millis(100))
        .build();
    let calls = Arc::new(AtomicU32::new(0));
    let seen = calls.clone();
    let svc = ServiceBuilder::new()
        .layer(policy.layer("reserve"))
        .service_fn(move |x: u32| {
            seen.fetch_add(1, Ordering::SeqCst);
            async move {
                tokio::time::sleep(Duration::from_secs(10)).await;
                Ok::<_, std::io::Error>(x)
            }
        });
    let started = tokio::time::Instant::now();
    let err = svc.oneshot(1).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout);
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(registry.integration("inventory").timeouts(), 2);
}

#[tokio::test]
async fn the_breaker_opens_and_then_refuses_without_calling_the_service() {
    let registry = MetricsRegistry::new();
    let policy = Policy::builder("inventory")
        .metrics(&registry)
        .circuit_breaker(
            CircuitBreakerConfig::new()
                .with_minimum_calls(2)
                .with_open_duration(Duration::from_secs(60)),
        )
        .retry(RetryPolicy::none())
        .build();
    let calls = Arc::new(AtomicU32::new(0));
    let mut svc = ServiceBuilder::new()
        .layer(policy.layer("reserve"))
        .service(flaky(u32::MAX, calls.clone()));
    for _ in 0..2 {
        let err = svc.ready().await.unwrap().call(1).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unavailable);
    }
    assert_eq!(
        policy.circuit_breaker().unwrap().state(),
        BreakerState::Open
    );
    let err = svc.ready().await.unwrap().call(1).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::CircuitOpen);
    assert_eq!(
        calls.load(Ordering::SeqCst),
        2,
        "refused before the service"
    );
    assert_eq!(registry.integration("inventory").short_circuits(), 1);
}

#[tokio::test]
async fn the_rate_limiter_refuses_a_call_beyond_the_quota() {
    let registry = MetricsRegistry::new();
    let policy = Policy::builder("inventory")
        .metrics(&registry)
        .rate_limiter(
            RateLimiter::per_minute(NonZeroU32::new(1).unwrap()).with_max_wait(Duration::ZERO),
        )
        .build();
    let calls = Arc::new(AtomicU32::new(0));
    let mut svc = ServiceBuilder::new()
        .layer(policy.layer("reserve"))
        .service(flaky(0, calls.clone()));
    assert_eq!(svc.ready().await.unwrap().call(1).await.unwrap(), 2);
    let err = svc.ready().await.unwrap().call(1).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::RateLimited);
    assert!(err.is_failover_safe(), "refused locally: never sent");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(
        registry.integration("inventory").rate_limited_rejections(),
        1
    );
}

/// A service that must be polled ready before each call, as tower's contract says; a clone
/// starts not ready. It fails the first `failures` calls.
#[derive(Clone)]
struct Strict {
    ready: bool,
    readied: Arc<AtomicU32>,
    called: Arc<AtomicU32>,
    failures: u32,
    refuse_ready: bool,
}

impl Service<u32> for Strict {
    type Response = u32;
    type Error = std::io::Error;
    type Future = std::future::Ready<Result<u32, std::io::Error>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), std::io::Error>> {
        if self.refuse_ready {
            return Poll::Ready(Err(std::io::Error::other("backend gone")));
        }
        self.readied.fetch_add(1, Ordering::SeqCst);
        self.ready = true;
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, x: u32) -> Self::Future {
        assert!(self.ready, "called without poll_ready");
        self.ready = false;
        let n = self.called.fetch_add(1, Ordering::SeqCst);
        std::future::ready(if n < self.failures {
            Err(std::io::Error::other("503"))
        } else {
            Ok(x)
        })
    }
}

impl Strict {
    fn new(failures: u32) -> Self {
        Strict {
            ready: false,
            readied: Arc::new(AtomicU32::new(0)),
            called: Arc::new(AtomicU32::new(0)),
            failures,
            refuse_ready: false,
        }
    }
}

#[tokio::test]
async fn every_retry_makes_its_service_ready_first() {
    let registry = MetricsRegistry::new();
    let inner = Strict::new(2);
    let (readied, called) = (inner.readied.clone(), inner.called.clone());
    let mut svc = ServiceBuilder::new()
        .layer(policy(&registry).layer("reserve"))
        .service(inner);
    assert_eq!(svc.ready().await.unwrap().call(7).await.unwrap(), 7);
    assert_eq!(called.load(Ordering::SeqCst), 3);
    assert_eq!(
        readied.load(Ordering::SeqCst),
        3,
        "once by the caller, once per retry"
    );
    // The service left behind is a clone that is not ready: the caller readies it again.
    assert_eq!(svc.ready().await.unwrap().call(8).await.unwrap(), 8);
}

#[tokio::test]
async fn poll_ready_takes_nothing_from_the_policy() {
    let registry = MetricsRegistry::new();
    let policy = Policy::builder("inventory")
        .metrics(&registry)
        .rate_limiter(
            RateLimiter::per_minute(NonZeroU32::new(1).unwrap()).with_max_wait(Duration::ZERO),
        )
        .build();
    let mut svc = ServiceBuilder::new()
        .layer(policy.layer("reserve"))
        .service(Strict::new(0));
    // Readied and dropped three times: no call counted, no rate-limit permit spent.
    for _ in 0..3 {
        let _ = svc.ready().await.unwrap();
    }
    assert_eq!(registry.integration("inventory").calls(), 0);
    assert_eq!(svc.ready().await.unwrap().call(5).await.unwrap(), 5);
}

#[tokio::test]
async fn a_readiness_error_is_classified_and_named() {
    let registry = MetricsRegistry::new();
    let mut inner = Strict::new(0);
    inner.refuse_ready = true;
    let mut svc = ServiceBuilder::new()
        .layer(policy(&registry).layer("reserve"))
        .service(inner);
    let err = svc.ready().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    assert_eq!(err.provider_name(), Some("inventory"));
    assert_eq!(err.context().operation.as_deref(), Some("reserve"));
}

#[tokio::test]
async fn composes_with_tower_layers_inside() {
    // A concurrency limit inside the policy: every retry waits for its own slot.
    let registry = MetricsRegistry::new();
    let calls = Arc::new(AtomicU32::new(0));
    let svc = ServiceBuilder::new()
        .layer(policy(&registry).layer("reserve"))
        .concurrency_limit(1)
        .service(flaky(1, calls.clone()));
    let (a, b) = tokio::join!(svc.clone().oneshot(1), svc.oneshot(2));
    assert_eq!((a.unwrap(), b.unwrap()), (2, 4));
    assert_eq!(calls.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn with_a_subscriber_the_layer_call_has_its_spans() {
    use integrations_core::telemetry::{ATTEMPT_SPAN, CALL_SPAN};
    let capture = integrations_testkit::TracingCapture::start();
    let registry = MetricsRegistry::new();
    let calls = Arc::new(AtomicU32::new(0));
    let svc = ServiceBuilder::new()
        .layer(policy(&registry).layer("reserve"))
        .service(flaky(1, calls.clone()));
    assert_eq!(svc.oneshot(4).await.unwrap(), 8);
    let spans = capture.spans();
    let call: Vec<usize> = (0..spans.len())
        .filter(|&i| spans[i].name == CALL_SPAN)
        .collect();
    assert_eq!(call.len(), 1, "{spans:#?}");
    let c = &spans[call[0]];
    assert_eq!(c.field("provider"), Some("inventory"));
    assert_eq!(c.field("operation"), Some("reserve"));
    assert_eq!(c.field("outcome"), Some("success"));
    assert_eq!(c.field("attempts"), Some("2"));
    let attempts: Vec<_> = spans.iter().filter(|s| s.name == ATTEMPT_SPAN).collect();
    assert_eq!(attempts.len(), 2, "{spans:#?}");
    assert!(attempts.iter().all(|a| a.parent == Some(call[0])));
    assert_eq!(attempts[0].field("error.type"), Some("unavailable"));
    let m = registry.integration("inventory");
    assert_eq!((m.calls(), m.successes(), m.retries()), (1, 1, 1));
}

#[tokio::test]
async fn a_dropped_call_gives_its_breaker_probe_back() {
    // Half-open with one probe: a layer call holding the probe is dropped mid-attempt; the
    // probe must be freed so that the next call can probe.
    let registry = MetricsRegistry::new();
    let policy = Policy::builder("inventory")
        .metrics(&registry)
        .circuit_breaker(
            CircuitBreakerConfig::new()
                .with_minimum_calls(1)
                .with_half_open_probes(1)
                .with_open_duration(Duration::from_millis(1)),
        )
        .retry(RetryPolicy::none())
        .attempt_timeout(Duration::from_secs(5))
        .build();
    let breaker = policy.circuit_breaker().unwrap().clone();
    let failing = ServiceBuilder::new()
        .layer(policy.layer("reserve"))
        .service(flaky(1, Arc::new(AtomicU32::new(0))));
    failing.oneshot(1).await.unwrap_err();
    assert_eq!(breaker.state(), BreakerState::Open);
    tokio::time::sleep(Duration::from_millis(5)).await;
    let mut hanging = ServiceBuilder::new()
        .layer(policy.layer("reserve"))
        .service_fn(|_: u32| std::future::pending::<Result<u32, std::io::Error>>());
    let fut = hanging.ready().await.unwrap().call(1);
    let mut fut = Box::pin(fut);
    assert!(futures_poll_once(fut.as_mut()).await.is_none());
    assert_eq!(breaker.state(), BreakerState::HalfOpen);
    drop(fut);
    let ok = ServiceBuilder::new()
        .layer(policy.layer("reserve"))
        .service(flaky(0, Arc::new(AtomicU32::new(0))));
    assert_eq!(ok.oneshot(1).await.unwrap(), 2);
    assert_eq!(breaker.state(), BreakerState::Closed);
}

/// Polls `fut` once: its output if it finished.
async fn futures_poll_once<F: std::future::Future + Unpin>(mut fut: F) -> Option<F::Output> {
    std::future::poll_fn(|cx| {
        Poll::Ready(match std::pin::Pin::new(&mut fut).poll(cx) {
            Poll::Ready(v) => Some(v),
            Poll::Pending => None,
        })
    })
    .await
}

/// The call's span is made when the layer's `call` is called (as `Policy::call`'s), not when
/// its future is first polled: its parent is the span current at `call`. Before df68e25 it was
/// the span the future was first polled in.
#[tokio::test]
async fn the_layer_calls_span_is_made_where_call_is_called() {
    use integrations_core::telemetry::CALL_SPAN;
    use tracing::Instrument;
    let capture = integrations_testkit::TracingCapture::start();
    let registry = MetricsRegistry::new();
    let mut svc = ServiceBuilder::new()
        .layer(policy(&registry).layer("reserve"))
        .service(flaky(0, Arc::new(AtomicU32::new(0))));
    let made = tracing::info_span!("made");
    let polled = tracing::info_span!("polled");
    svc.ready().await.unwrap();
    let fut = made.in_scope(|| svc.call(1));
    assert_eq!(fut.instrument(polled).await.unwrap(), 2);
    let spans = capture.spans();
    let made_at = spans.iter().position(|s| s.name == "made").unwrap();
    let call = spans
        .iter()
        .find(|s| s.name == CALL_SPAN)
        .expect("a call span");
    assert_eq!(call.parent, Some(made_at), "{spans:#?}");
}
