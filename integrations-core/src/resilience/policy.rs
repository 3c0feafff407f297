//! The composed policy: bulkhead → deadline → rate limit → circuit breaker → retry → timeout.

use std::borrow::{Borrow, Cow};
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::Either;
use tokio::time::Instant;
use tracing::{Instrument, Span};

use super::breaker::{BreakerOutcome, BreakerPermit, CircuitBreaker, CircuitBreakerConfig};
use super::bulkhead::{Bulkhead, BulkheadPermit};
use super::limiter::RateLimiter;
use super::retry::{GiveUpReason, RetryDecision, RetryPolicy};
use super::time::{Moment, TimeSource, nanos};
use crate::error::{Error, Result};
use crate::metrics::{IntegrationMetrics, MetricsRegistry};
use crate::telemetry;

mod attempt;
use attempt::AttemptEnd;

/// What the policy tells the closure about the attempt it is making.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attempt {
    /// 1 for the first attempt, 2 for the first retry, …
    pub number: u32,
    /// The operation given to [`Policy::call`].
    pub operation: &'static str,
}

impl Attempt {
    /// Whether this is a retry (attempt 2 or later).
    pub fn is_retry(&self) -> bool {
        self.number > 1
    }
}

/// The resilience policy of one provider: every piece of this module composed in the documented
/// order (see the [module docs](super)). Cloning shares the limiter, breaker, bulkhead and
/// metrics.
///
/// # Time
///
/// A call's latency is timed on the CPU's TSC (`quanta`). The rate limiter's check, the overall
/// deadline and the latency window need tokio's clock: without the `test-util` feature the
/// policy maps its TSC reading onto tokio's clock (corrected against `CLOCK_MONOTONIC` once a
/// second) rather than reading it, which saves a `clock_gettime` on every call but does not see
/// a paused tokio clock. **A test that pauses tokio's clock** (`tokio::time::pause`,
/// `#[tokio::test(start_paused = true)]`) and relies on a policy's rate limiter, deadline or
/// latency window must enable `integrations-core/test-util` (or the facade's `test-util`) in
/// its dev-dependencies; the policy then reads tokio's clock itself. Attempt timeouts, backoff
/// sleeps and waits for a permit are tokio timers, which follow a paused clock either way.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use std::num::NonZeroU32;
/// use std::time::Duration;
/// use integrations_core::resilience::{Backoff, CircuitBreakerConfig, RateLimiter, RetryPolicy};
/// use integrations_core::metrics::MetricsRegistry;
/// use integrations_core::{Error, Policy};
///
/// let registry = MetricsRegistry::new();
/// let policy = Policy::builder("sendgrid")
///     .rate_limiter(RateLimiter::per_second(NonZeroU32::new(10).unwrap()))
///     .circuit_breaker(CircuitBreakerConfig::new())
///     .retry(RetryPolicy::new(3, Backoff::new(Duration::from_millis(1), Duration::from_millis(5), 2.0)))
///     .attempt_timeout(Duration::from_secs(10))
///     .deadline(Duration::from_secs(30))
///     .bulkhead(32, Duration::from_millis(100))
///     .metrics(&registry)
///     .build();
///
/// let sent = policy
///     .call("send_mail", |attempt| async move {
///         if attempt.number == 1 { Err(Error::unavailable("502 Bad Gateway")) } else { Ok("accepted") }
///     })
///     .await
///     .unwrap();
/// assert_eq!(sent, "accepted");
/// assert_eq!(policy.metrics().retries(), 1);
/// assert_eq!(registry.snapshot().get("sendgrid").unwrap().successes, 1);
/// # }
/// ```
#[derive(Clone)]
pub struct Policy {
    inner: Arc<Inner>,
}

struct Inner {
    provider: Cow<'static, str>,
    bulkhead: Option<Bulkhead>,
    deadline: Option<Duration>,
    limiter: Option<RateLimiter>,
    breaker: Option<CircuitBreaker>,
    retry: RetryPolicy,
    attempt_timeout: Option<Duration>,
    metrics: Arc<IntegrationMetrics>,
    /// Where the call's readings of tokio's clock come from (see [`super::time`]).
    time: TimeSource,
}

impl std::fmt::Debug for Policy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let i = &*self.inner;
        f.debug_struct("Policy")
            .field("provider", &i.provider)
            .field("bulkhead", &i.bulkhead)
            .field("deadline", &i.deadline)
            .field("rate_limiter", &i.limiter)
            .field("circuit_breaker", &i.breaker)
            .field("retry", &i.retry)
            .field("attempt_timeout", &i.attempt_timeout)
            .finish_non_exhaustive()
    }
}

/// Builds a [`Policy`]. Defaults: [`RetryPolicy::DEFAULT`], a circuit breaker with
/// [`CircuitBreakerConfig::DEFAULT`], a per-attempt timeout of
/// [`PolicyBuilder::DEFAULT_ATTEMPT_TIMEOUT`] (30 s), no rate limiter, no bulkhead, no overall
/// deadline, metrics in [`MetricsRegistry::global`].
#[must_use = "call `build()`"]
#[derive(Debug)]
pub struct PolicyBuilder {
    provider: Cow<'static, str>,
    bulkhead: Option<(usize, Duration)>,
    deadline: Option<Duration>,
    limiter: Option<RateLimiter>,
    breaker: Option<CircuitBreakerConfig>,
    retry: RetryPolicy,
    attempt_timeout: Option<Duration>,
    registry: Option<MetricsRegistry>,
    time: TimeSource,
}

impl PolicyBuilder {
    /// Per-attempt timeout unless set otherwise.
    pub const DEFAULT_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(30);

    /// Takes a permit of `limiter` before the call and before every retry.
    pub fn rate_limiter(mut self, limiter: RateLimiter) -> Self {
        self.limiter = Some(limiter);
        self
    }
    /// Guards the call with a circuit breaker of `config`.
    pub fn circuit_breaker(mut self, config: CircuitBreakerConfig) -> Self {
        self.breaker = Some(config);
        self
    }
    /// No circuit breaker.
    pub fn no_circuit_breaker(mut self) -> Self {
        self.breaker = None;
        self
    }
    /// Retries per `retry` ([`RetryPolicy::none`] for none).
    pub fn retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }
    /// Cuts each attempt off after `timeout` (a retryable [`Error::Timeout`]).
    pub fn attempt_timeout(mut self, timeout: Duration) -> Self {
        self.attempt_timeout = Some(timeout);
        self
    }
    /// No per-attempt timeout (the overall deadline, if any, still applies).
    pub fn no_attempt_timeout(mut self) -> Self {
        self.attempt_timeout = None;
        self
    }
    /// Bounds the whole call — bulkhead wait, rate-limit waits, attempts and backoff sleeps — by
    /// `deadline`.
    pub fn deadline(mut self, deadline: Duration) -> Self {
        self.deadline = Some(deadline);
        self
    }
    /// At most `max_concurrent` calls at once, a further one waiting up to `max_wait` for a slot.
    pub fn bulkhead(mut self, max_concurrent: usize, max_wait: Duration) -> Self {
        self.bulkhead = Some((max_concurrent, max_wait));
        self
    }
    /// Records into `registry` instead of the global one.
    pub fn metrics(mut self, registry: &MetricsRegistry) -> Self {
        self.registry = Some(registry.clone());
        self
    }

    /// Reads tokio's clock through `time` (tests of the production source under `cfg(test)`).
    #[cfg(test)]
    pub(crate) fn time_source(mut self, time: TimeSource) -> Self {
        self.time = time;
        self
    }

    /// The policy.
    pub fn build(self) -> Policy {
        let registry = self
            .registry
            .as_ref()
            .unwrap_or_else(|| MetricsRegistry::global());
        let metrics = registry.integration(&self.provider);
        let breaker = self.breaker.map(|config| {
            CircuitBreaker::with_metrics(self.provider.clone(), config, Arc::clone(&metrics))
        });
        Policy {
            inner: Arc::new(Inner {
                bulkhead: self.bulkhead.map(|(n, wait)| Bulkhead::new(n, wait)),
                deadline: self.deadline,
                limiter: self.limiter,
                breaker,
                retry: self.retry,
                attempt_timeout: self.attempt_timeout,
                metrics,
                provider: self.provider,
                time: self.time,
            }),
        }
    }
}

impl Policy {
    /// A builder for `provider`'s policy.
    pub fn builder(provider: impl Into<Cow<'static, str>>) -> PolicyBuilder {
        PolicyBuilder {
            provider: provider.into(),
            bulkhead: None,
            deadline: None,
            limiter: None,
            breaker: Some(CircuitBreakerConfig::DEFAULT),
            retry: RetryPolicy::DEFAULT,
            attempt_timeout: Some(PolicyBuilder::DEFAULT_ATTEMPT_TIMEOUT),
            registry: None,
            time: TimeSource::DEFAULT,
        }
    }

    /// The provider's name.
    pub fn provider(&self) -> &str {
        &self.inner.provider
    }
    /// The provider's metrics.
    pub fn metrics(&self) -> &Arc<IntegrationMetrics> {
        &self.inner.metrics
    }
    /// The circuit breaker, to observe or steer by hand.
    pub fn circuit_breaker(&self) -> Option<&CircuitBreaker> {
        self.inner.breaker.as_ref()
    }
    /// The rate limiter.
    pub fn rate_limiter(&self) -> Option<&RateLimiter> {
        self.inner.limiter.as_ref()
    }
    /// The bulkhead.
    pub fn bulkhead(&self) -> Option<&Bulkhead> {
        self.inner.bulkhead.as_ref()
    }
    /// The retry policy.
    pub fn retry_policy(&self) -> &RetryPolicy {
        &self.inner.retry
    }
    /// The per-attempt timeout.
    pub fn attempt_timeout(&self) -> Option<Duration> {
        self.inner.attempt_timeout
    }
    /// The overall deadline.
    pub fn deadline(&self) -> Option<Duration> {
        self.inner.deadline
    }

    /// The longest one [`call`](Policy::call) can take, or `None` if it is unbounded (no
    /// attempt timeout and no deadline). Computed from the settings, with saturating arithmetic:
    ///
    /// ```text
    /// bulkhead wait
    ///   + (retries + 1) × (rate-limit wait + attempt timeout)
    ///   + Σ over retries i of max(backoff ceiling(i), Retry-After cap)
    /// ```
    ///
    /// capped by the overall deadline when there is one. Whoever bounds the call from outside
    /// (an outbox handler timeout, an HTTP server's request timeout) must allow at least this
    /// much, or set the policy's [`deadline`](PolicyBuilder::deadline) from its own bound:
    /// otherwise a call is cut off mid-request, possibly after the provider acted, and retried.
    ///
    /// ```
    /// use std::time::Duration;
    /// use integrations_core::Policy;
    /// use integrations_core::resilience::{Backoff, RetryPolicy};
    ///
    /// let policy = Policy::builder("sendgrid")
    ///     .retry(RetryPolicy::new(2, Backoff::new(Duration::from_millis(500), Duration::from_secs(10), 2.0))
    ///         .with_max_retry_after(Duration::from_secs(60)))
    ///     .attempt_timeout(Duration::from_secs(30))
    ///     .build();
    /// // 3 attempts × 30 s + 2 waits of at most 60 s (the Retry-After cap).
    /// assert_eq!(policy.worst_case(), Some(Duration::from_secs(210)));
    /// ```
    pub fn worst_case(&self) -> Option<Duration> {
        let inner = &*self.inner;
        let retry = &inner.retry;
        let attempts = retry.max_retries().saturating_add(1);
        let bounded = inner.attempt_timeout.map(|timeout| {
            let limiter_wait = inner
                .limiter
                .as_ref()
                .map_or(Duration::ZERO, RateLimiter::max_wait);
            let per_attempt = timeout.saturating_add(limiter_wait);
            let mut total = inner
                .bulkhead
                .as_ref()
                .map_or(Duration::ZERO, Bulkhead::max_wait)
                .saturating_add(per_attempt.saturating_mul(attempts));
            // The first retries one by one; any beyond at the backoff's `max` (an upper bound).
            const EXACT: u32 = 64;
            for i in 0..retry.max_retries().min(EXACT) {
                let wait = retry.backoff().ceiling(i).max(retry.max_retry_after());
                total = total.saturating_add(wait);
            }
            let rest = retry.max_retries().saturating_sub(EXACT);
            let tail = retry.backoff().max.max(retry.max_retry_after());
            total.saturating_add(tail.saturating_mul(rest))
        });
        match (bounded, inner.deadline) {
            (Some(b), Some(d)) => Some(b.min(d)),
            (b, d) => b.or(d),
        }
    }

    /// Runs `f` under the policy, retrying errors that [`Error::is_retryable`] calls retryable.
    ///
    /// `f` is called once per attempt with the [`Attempt`]; it must make the request anew each
    /// time (reusing one idempotency key across attempts).
    ///
    /// # Errors
    /// The last attempt's error, or the policy's own: [`Error::BulkheadFull`],
    /// [`Error::RateLimited`] (client-side, not processed), [`Error::CircuitOpen`],
    /// [`Error::Timeout`] (attempt timeout on the last attempt, or the overall deadline). Every
    /// error carries the provider (unless it named one already) and the operation.
    // Not an `async fn`: that would wrap `run`'s future in one more state machine, which moves
    // the closure and the arguments once more on every call (measured with `scripts/policy-ir`).
    // Always inlined, as are `run` and `run_unspanned`: each only builds the call's future (its
    // `poll` is not inlined by this). Built where the caller awaits it, the future's 250-odd
    // bytes are written in place; returned from a call that was not inlined, they were built
    // in a temporary and copied into the awaiting future by `memmove` (12 % of a composed call
    // in `perf`, ~20 ns; `scripts/policy-wall`: 109 → 87 ns a composed call).
    #[inline(always)]
    pub fn call<T, F, Fut>(
        &self,
        operation: &'static str,
        f: F,
    ) -> impl Future<Output = Result<T>> + Send
    where
        F: FnMut(Attempt) -> Fut + Send,
        Fut: Future<Output = Result<T>> + Send,
        T: Send,
    {
        Self::run(self, operation, Error::is_retryable, f)
    }

    /// Like [`call`](Policy::call), with `classify` deciding which errors are retried (for
    /// example to retry a [`Error::Conflict`] that a provider raises for a lock held by a
    /// concurrent request). `Retry-After`, the retry limit and the deadline still apply.
    ///
    /// # Errors
    /// As [`call`](Policy::call).
    // Always inlined: see `call`.
    #[inline(always)]
    pub fn call_classified<T, F, Fut, C>(
        &self,
        operation: &'static str,
        classify: C,
        f: F,
    ) -> impl Future<Output = Result<T>> + Send
    where
        C: Fn(&Error) -> bool + Send + Sync,
        F: FnMut(Attempt) -> Fut + Send,
        Fut: Future<Output = Result<T>> + Send,
        T: Send,
    {
        Self::run(self, operation, classify, f)
    }

    /// [`run_unspanned`](Self::run_unspanned), in the call's span when anybody listens to it.
    ///
    /// Not an `async fn`: the call's future is `run_unspanned`'s own unless the spans are
    /// recorded, not one more state machine around it that would take its arguments and move
    /// them into it on the first poll. The call's span is therefore made with the call's
    /// future, in the span current where [`call`](Policy::call) is called.
    ///
    /// `this` is the policy, borrowed ([`call`](Policy::call)) or owned ([`PolicyLayer`]'s
    /// `'static` future): owned, it moves into the call's future rather than into one more
    /// `async` block around it, which would copy the whole call's future twice more.
    ///
    /// [`PolicyLayer`]: super::PolicyLayer
    // Always inlined: see `call`.
    #[inline(always)]
    pub(super) fn run<P, T, F, Fut, C>(
        this: P,
        operation: &'static str,
        classify: C,
        f: F,
    ) -> impl Future<Output = Result<T>>
    where
        P: Borrow<Policy>,
        C: Fn(&Error) -> bool,
        F: FnMut(Attempt) -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        // Nobody can listen: no span at all, neither for the call nor for its attempts (see
        // `telemetry::interested`).
        if !telemetry::interested() {
            return Either::Left(Self::run_unspanned(
                this, operation, classify, f, None, false,
            ));
        }
        let span = telemetry::call_span(&this.borrow().inner.provider, operation);
        // Nobody listens to this one (a level filter, say): no `Instrumented` layer around the
        // call, and no box.
        if span.is_disabled() {
            return Either::Left(Self::run_unspanned(
                this, operation, classify, f, None, true,
            ));
        }
        // Boxed: recording the spans costs far more than the box, and inline the spanned future
        // would grow every call's future (and what `PolicyLayer` boxes for it).
        Either::Right(Box::pin(Self::run_spanned(
            this, span, operation, classify, f,
        )))
    }

    /// [`run_unspanned`](Self::run_unspanned) in the call's `span` ([`crate::telemetry`]).
    async fn run_spanned<P, T, F, Fut, C>(
        this: P,
        span: Span,
        operation: &'static str,
        classify: C,
        f: F,
    ) -> Result<T>
    where
        P: Borrow<Policy>,
        C: Fn(&Error) -> bool,
        F: FnMut(Attempt) -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let mut attempts = 0;
        let result = Self::run_unspanned(
            this.borrow(),
            operation,
            classify,
            f,
            Some(&mut attempts),
            true,
        )
        .instrument(span.clone())
        .await;
        telemetry::record_call(&span, attempts, &result);
        result
    }

    /// The call itself: the policy's steps around the attempts, recording the call's metrics.
    // Not an `async fn`: an `async fn`'s future moves its arguments into locals of its own on
    // the first poll, a copy of every argument (and `operation`'s was a store-forwarding stall
    // at the top of every call in `perf annotate`); an `async move` block uses what it captured
    // in place, and its future is smaller. What lives across its awaits is kept small (a
    // `PolicyLayer` allocates it, and a caller that moves the future copies every byte): the
    // attempt is a hand-written future, the retry decision a plain function (248 bytes around
    // a trivial call).
    #[allow(clippy::manual_async_fn)]
    // Always inlined: see `call`.
    #[inline(always)]
    fn run_unspanned<P, T, F, Fut, C>(
        this: P,
        operation: &'static str,
        classify: C,
        mut f: F,
        mut attempts: Option<&mut u32>,
        spans: bool,
    ) -> impl Future<Output = Result<T>>
    where
        P: Borrow<Policy>,
        C: Fn(&Error) -> bool,
        F: FnMut(Attempt) -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        async move {
            let this: &Policy = this.borrow();
            let inner = &*this.inner;
            inner.metrics.record_call();
            // An open circuit refuses before anything is waited for or spent (no rate-limit
            // permit is used up by a call that would be refused).
            if let Some(b) = &inner.breaker {
                if let Err(e) = b.check(operation) {
                    return Err(this.rejected(e, operation));
                }
            }
            // Latency is timed on `quanta` (the TSC where it is reliable: ~7 ns a reading here
            // against ~20 for the OS clock). The limiter, the deadline and the timers run on
            // tokio's clock; its reading is the same TSC reading mapped onto it
            // (`TimeSource::Tsc`), or a reading of its own where tests may pause it
            // (`TimeSource::Tokio`), taken only where one of them needs it.
            let timer = quanta::Instant::now();
            let start = (inner.limiter.is_some() || inner.deadline.is_some())
                .then(|| inner.time.moment_at(timer));
            // The deadline is an `Instant`: timers and the waits' budgets need one.
            let deadline = inner
                .deadline
                .zip(start)
                .and_then(|(d, s)| s.checked_after(d))
                .and_then(Moment::instant);

            // Bulkhead, outermost: the slot is held through waits and backoff sleeps.
            let mut waited = false;
            let _slot = match &inner.bulkhead {
                None => None,
                Some(b) => match b.try_acquire() {
                    Some(slot) => Some(slot),
                    None => {
                        waited = true;
                        // Waiting paths are boxed: they are rare, and inline they would grow every
                        // call's future (and what a tower layer allocates for it).
                        Some(Box::pin(this.wait_for_bulkhead(b, operation, deadline)).await?)
                    }
                },
            };
            // The rate limiter and the breaker guard the logical call.
            if let Some(limiter) = &inner.limiter {
                // A free permit is taken here, without entering the waiting path's future.
                if start.is_none_or(|now| limiter.check_at(now).is_err()) {
                    match Box::pin(this.take_permit(limiter, operation, 1, None, deadline)).await {
                        Ok(w) => waited |= w,
                        Err(e) => return Err(this.rejected(e, operation)),
                    }
                }
            }
            let permit: Option<BreakerPermit<'_>> = match &inner.breaker {
                None => None,
                Some(b) => match b.try_acquire(operation) {
                    Ok(p) => Some(p),
                    Err(e) => return Err(this.rejected(e, operation)),
                },
            };

            let mut retries = 0u32;
            // The first attempt's timeout runs from now; reading the clock again only if we waited
            // (with no reading yet, the attempt reads it if its first poll does not finish it).
            let mut attempt_start = if waited { Some(Moment::now()) } else { start };
            let result: std::result::Result<T, Box<Error>> = loop {
                if let Some(n) = attempts.as_deref_mut() {
                    *n = retries + 1;
                }
                // The attempt's future borrows the deadline: it is read only if the attempt does not
                // finish on its first poll, and a copy would grow every call's future.
                let error = match this
                    .attempt(
                        retries + 1,
                        operation,
                        attempt_start,
                        &deadline,
                        &mut f,
                        spans,
                    )
                    .await
                {
                    AttemptEnd::Ok(v) => break Ok(v),
                    // Kept boxed across the backoff sleep: the call's future holds a pointer, not
                    // an `Error`.
                    AttemptEnd::Failed(e) => e,
                    AttemptEnd::Deadline(e) => break Err(e),
                };
                let retryable = classify(&error);
                let Some(delay) = this.retry_delay(retries, operation, deadline, &error, retryable)
                else {
                    break Err(error);
                };
                Box::pin(tokio::time::sleep(delay)).await;
                retries += 1;
                // Every retry takes a permit too, so retries never push the provider past its
                // quota.
                if let Some(limiter) = &inner.limiter {
                    if Box::pin(this.take_permit(limiter, operation, retries + 1, None, deadline))
                        .await
                        .is_err()
                    {
                        // The attempt that failed (`retries` has counted it already).
                        let failed = Attempt {
                            number: retries,
                            operation,
                        };
                        this.give_up(failed, GiveUpReason::RateLimited, &error);
                        break Err(error);
                    }
                }
                attempt_start = Some(Moment::now());
            };

            if let Some(permit) = permit {
                permit.record(match &result {
                    Ok(_) => BreakerOutcome::Success,
                    Err(e) => BreakerOutcome::from_error(e),
                });
            }
            let ended = quanta::Instant::now();
            let latency = nanos(ended.saturating_duration_since(timer));
            // The sliding window steps on tokio's clock (so a paused test clock moves it too). When
            // the call already read that clock at its start, its end is that reading plus the
            // latency: the window moves in 30 s steps, a second reading would only cost time.
            let end = start.map_or_else(|| inner.time.moment_at(ended), |s| s.after_nanos(latency));
            match result {
                Ok(v) => {
                    inner.metrics.record_success_at(operation, latency, end);
                    tracing::trace!(
                        provider = &*inner.provider,
                        operation,
                        attempts = retries + 1,
                        latency_us = latency / 1_000,
                        "call succeeded"
                    );
                    Ok(v)
                }
                Err(e) => {
                    inner
                        .metrics
                        .record_failure_at(operation, e.kind(), latency, end);
                    let e = this.decorate(*e, operation);
                    tracing::debug!(
                        provider = &*inner.provider,
                        operation,
                        attempts = retries + 1,
                        latency_us = latency / 1_000,
                        error = %e,
                        "call failed"
                    );
                    Err(e)
                }
            }
        }
    }

    /// How long to wait before retrying after attempt `retries + 1` failed with `error`, or
    /// `None` to give up (logged). A function of its own, not part of the call's `async` block:
    /// its locals would be kept in every call's future.
    fn retry_delay(
        &self,
        retries: u32,
        operation: &'static str,
        deadline: Option<Instant>,
        error: &Error,
        retryable: bool,
    ) -> Option<Duration> {
        let inner = &*self.inner;
        let attempt = Attempt {
            number: retries + 1,
            operation,
        };
        match inner.retry.decide(retries, error, retryable) {
            RetryDecision::Retry { delay, reason } => {
                let wakes = Instant::now().checked_add(delay);
                if deadline.is_some_and(|d| wakes.is_none_or(|w| w >= d)) {
                    self.give_up(attempt, GiveUpReason::Deadline, error);
                    return None;
                }
                inner.metrics.record_retry();
                tracing::info!(
                    provider = &*inner.provider,
                    operation,
                    attempt = attempt.number,
                    delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                    reason = reason.as_str(),
                    error = %error,
                    "retry scheduled"
                );
                Some(delay)
            }
            RetryDecision::GiveUp(reason) => {
                self.give_up(attempt, reason, error);
                None
            }
        }
    }

    async fn wait_for_bulkhead(
        &self,
        bulkhead: &Bulkhead,
        operation: &'static str,
        deadline: Option<Instant>,
    ) -> Result<BulkheadPermit> {
        let budget = match deadline {
            Some(d) => bulkhead
                .max_wait()
                .min(d.saturating_duration_since(Instant::now())),
            None => bulkhead.max_wait(),
        };
        match bulkhead.acquire_within(budget).await {
            Ok(slot) => Ok(slot),
            Err(e) => {
                self.inner.metrics.record_bulkhead_rejection();
                tracing::warn!(
                    provider = &*self.inner.provider,
                    operation,
                    max_concurrent = bulkhead.max_concurrent(),
                    "bulkhead full: call refused"
                );
                Err(self.rejected(e, operation))
            }
        }
    }

    /// A rate-limiter permit for attempt `number`, within `max_wait` and the deadline; `true` if
    /// it had to wait. `now`, when given, is a clock reading taken a moment ago.
    async fn take_permit(
        &self,
        limiter: &RateLimiter,
        operation: &'static str,
        number: u32,
        now: Option<Moment>,
        deadline: Option<Instant>,
    ) -> Result<bool> {
        let inner = &*self.inner;
        let provider = &*inner.provider;
        // Fast path: a free permit, checked against the caller's clock reading when it has one.
        let free = match now {
            Some(now) => limiter.check_at(now),
            None => limiter.check(),
        };
        if free.is_ok() {
            return Ok(false);
        }
        let budget = match deadline {
            Some(d) => limiter
                .max_wait()
                .min(d.saturating_duration_since(Instant::now())),
            None => limiter.max_wait(),
        };
        let waited = limiter
            .acquire_observed(budget, |wait| {
                inner.metrics.record_rate_limited_wait();
                tracing::debug!(
                    provider,
                    operation,
                    attempt = number,
                    wait_ms = wait.as_millis() as u64,
                    "rate limited: waiting for a permit"
                );
            })
            .await;
        match waited {
            Ok(_) => Ok(true),
            Err(e) => {
                inner.metrics.record_rate_limited_rejection();
                tracing::warn!(
                    provider,
                    operation,
                    attempt = number,
                    retry_after_ms = e.retry_after().map_or(0, |d| d.as_millis() as u64),
                    "rate limited: no permit within the wait budget"
                );
                Err(e)
            }
        }
    }

    fn give_up(&self, attempt: Attempt, reason: GiveUpReason, error: &Error) {
        if reason == GiveUpReason::NotRetryable {
            tracing::debug!(
                provider = &*self.inner.provider,
                operation = attempt.operation,
                attempt = attempt.number,
                error = %error,
                "not retryable: returning the error"
            );
            return;
        }
        tracing::warn!(
            provider = &*self.inner.provider,
            operation = attempt.operation,
            attempt = attempt.number,
            reason = reason.as_str(),
            error = %error,
            "giving up"
        );
    }

    /// A call refused before its first attempt: counted as a failure without latency.
    #[cold]
    fn rejected(&self, e: Error, operation: &'static str) -> Error {
        self.inner.metrics.record_rejection(e.kind());
        self.decorate(e, operation)
    }

    pub(super) fn decorate(&self, e: Error, operation: &'static str) -> Error {
        let e = e.or_provider(self.inner.provider.clone());
        if e.context().operation.is_none() {
            e.with_operation(operation)
        } else {
            e
        }
    }
}

#[cfg(test)]
#[path = "policy_tests.rs"]
mod tests;
