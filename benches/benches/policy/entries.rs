//! What the `policy` bench and the `policy_ir` example both run: the policies under test, the
//! trivial call they wrap and the tower peers, defined once so that the instruction counts and
//! criterion's times measure the same thing.

#![allow(dead_code)] // each of the two includes uses a part

use std::hint::black_box;
use std::num::NonZeroU32;
use std::time::Duration;

use integrations_core::metrics::MetricsRegistry;
use integrations_core::resilience::{
    Backoff, CircuitBreakerConfig, Quota, RateLimiter, RetryPolicy,
};
use integrations_core::{Policy, Result};

pub(crate) const TIMEOUT: Duration = Duration::from_secs(30);

pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// tower's retry policy for the peer stack: up to `0` retries of any error, no backoff (the
/// success path never retries, so the backoff does not enter the measurement).
#[derive(Clone)]
pub(crate) struct TowerAttempts(pub u32);

impl<Req: Clone, Res, E> tower::retry::Policy<Req, Res, E> for TowerAttempts {
    type Future = std::future::Ready<()>;
    fn retry(
        &mut self,
        _: &mut Req,
        result: &mut std::result::Result<Res, E>,
    ) -> Option<Self::Future> {
        match result {
            Err(_) if self.0 > 0 => {
                self.0 -= 1;
                Some(std::future::ready(()))
            }
            _ => None,
        }
    }
    fn clone_request(&mut self, req: &Req) -> Option<Req> {
        Some(req.clone())
    }
}

pub(crate) type TrivialFn = fn(u64) -> std::future::Ready<std::result::Result<u64, BoxError>>;

/// The same `service_fn` every tower-shaped entry wraps.
pub(crate) fn trivial_service() -> tower::util::ServiceFn<TrivialFn> {
    tower::service_fn(|x: u64| std::future::ready(Ok(black_box(x) + 1)))
}

/// tower's own stack doing the policy's jobs, outermost first: concurrency limit, rate limit,
/// retry, per-attempt timeout (no circuit breaker: tower has none).
pub(crate) fn tower_stack() -> impl tower::Service<u64, Response = u64, Error = BoxError> {
    tower::ServiceBuilder::new()
        .concurrency_limit(1024)
        .rate_limit(1_000_000_000, Duration::from_secs(1))
        .retry(TowerAttempts(3))
        .timeout(TIMEOUT)
        .service(trivial_service())
}

/// Runs `iters` calls through `svc` (ready, then call), timing them.
pub(crate) async fn drive<S>(mut svc: S, iters: u64) -> Duration
where
    S: tower::Service<u64, Response = u64>,
    S::Error: std::fmt::Debug,
{
    use tower::ServiceExt;
    let start = std::time::Instant::now();
    for _ in 0..iters {
        let ready = svc.ready().await.expect("ready");
        black_box(ready.call(1).await.expect("ok"));
    }
    start.elapsed()
}

pub(crate) fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("current-thread runtime")
}

pub(crate) async fn trivial(x: u64) -> Result<u64> {
    Ok(black_box(x) + 1)
}

/// A billion permits a second: never exhausted by a bench loop.
pub(crate) fn huge_quota() -> Quota {
    Quota::per_second(NonZeroU32::new(1_000_000_000).expect("non-zero"))
}

/// Rate limiter, circuit breaker, retry and a per-attempt timeout.
pub(crate) fn composed(registry: &MetricsRegistry) -> Policy {
    Policy::builder("bench")
        .metrics(registry)
        .rate_limiter(RateLimiter::new(huge_quota()))
        .circuit_breaker(CircuitBreakerConfig::new())
        .retry(RetryPolicy::new(
            3,
            Backoff::new(Duration::from_millis(100), Duration::from_secs(10), 2.0),
        ))
        .attempt_timeout(TIMEOUT)
        .build()
}

/// A per-attempt timeout and nothing else (no breaker, no retries, no limiter).
pub(crate) fn timeout_only(registry: &MetricsRegistry) -> Policy {
    Policy::builder("bench-bare")
        .metrics(registry)
        .no_circuit_breaker()
        .retry(RetryPolicy::none())
        .attempt_timeout(TIMEOUT)
        .build()
}
