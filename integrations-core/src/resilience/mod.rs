//! Resilience around outbound calls: backoff, retry, circuit breaker, rate limiter, bulkhead and
//! timeouts, each a small value usable alone, composed as one [`Policy`] per provider.
//!
//! | piece | what it does |
//! |---|---|
//! | [`Backoff`] | exponential backoff with full jitter |
//! | [`RetryPolicy`] | how many retries, `Retry-After` respected up to a cap |
//! | [`CircuitBreaker`] | stops calling a provider that keeps failing, probes it before trusting it again |
//! | [`RateLimiter`] | keeps within the provider's quota (GCRA via `governor`, on tokio's clock) |
//! | [`Bulkhead`] | bounds the calls in flight to one provider |
//! | [`Policy`] | all of the above, plus per-attempt timeout and overall deadline, with tracing and metrics |
//! | `PolicyLayer` | a [`Policy`] as a tower `Layer`, in front of any tower `Service` (feature `tower`) |
//!
//! # Order of composition
//!
//! From the outside in, a [`Policy`] applies:
//!
//! 1. **bulkhead** — outermost. A call holds its slot while it waits for a rate-limit permit and
//!    while it sleeps between retries, so the bulkhead bounds everything the service has tied up
//!    in this provider, waiting calls included. Refusal: [`Error::BulkheadFull`](crate::Error::BulkheadFull).
//! 2. **overall deadline** — measured from the start of the call and covering the bulkhead wait,
//!    rate-limit waits, every attempt and every backoff sleep. A backoff sleep that would cross
//!    the deadline is not slept: the last error is returned at once. An attempt still running at
//!    the deadline is cut off with [`Error::Timeout`](crate::Error::Timeout), and no retry follows.
//!    Waits for a bulkhead slot or a rate-limit permit are bounded by the time left too; when
//!    that runs out they end with their guard's own refusal (`BulkheadFull`, `RateLimited`), which
//!    unlike a timeout tells the caller that the provider never saw the request.
//! 3. **rate limit** — one permit before the call; **and one more before every retry**, so retries
//!    never push a provider past its quota. A call waits for its permit up to the limiter's
//!    `max_wait` and is otherwise refused with a not-processed `RateLimited`; a retry that gets no
//!    permit in time is not made, and the call ends with the last attempt's error.
//! 4. **circuit breaker** — guards the logical call: one permit per call, one outcome per call
//!    (the final one, after retries; see [`BreakerOutcome`] for which errors count against the
//!    provider). An open circuit refuses before any attempt — and is looked at (without taking
//!    anything) before the rate limiter, so a refused call spends no permit.
//! 5. **retry** — with [`Backoff`] (full jitter) or the provider's `Retry-After`.
//! 6. **per-attempt timeout** — innermost, around each attempt.
//!
//! The timeout must sit *inside* the retry. Outside, it bounds all attempts together: a first
//! attempt that hangs eats the whole budget and the retry never gets to run. Inside, each attempt
//! is cut off on its own and the next one starts with a full budget; the overall deadline is what
//! bounds the total.
//!
//! ```text
//! wrong:  timeout(retry(call))        one slow attempt = the whole call fails, no retry
//! right:  retry(timeout(call))        each attempt bounded, retried; deadline bounds the total
//! ```
//!
//! The pieces compose by hand in the same order when a policy is too much — here for one call,
//! without a bulkhead, deadline or metrics:
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> integrations_core::Result<()> {
//! use std::num::NonZeroU32;
//! use std::time::Duration;
//! use integrations_core::resilience::{
//!     Backoff, CircuitBreaker, CircuitBreakerConfig, RateLimiter, RetryPolicy,
//! };
//! use integrations_core::Error;
//!
//! let limiter = RateLimiter::per_second(NonZeroU32::new(25).unwrap());
//! let breaker = CircuitBreaker::new("sheets", CircuitBreakerConfig::new());
//! let retry = RetryPolicy::new(2, Backoff::new(Duration::from_millis(5), Duration::from_millis(50), 2.0));
//!
//! limiter.acquire().await?;                              // rate limit the logical call
//! let rows = breaker
//!     .call("append", retry.run(|attempt| {              // breaker around retry
//!         let limiter = limiter.clone();
//!         async move {
//!             if attempt > 1 {
//!                 limiter.acquire().await?;              // every retry takes a permit too
//!             }
//!             tokio::time::timeout(Duration::from_secs(5), async { Ok::<_, Error>(3) }) // timeout innermost
//!                 .await
//!                 .map_err(|_| Error::timeout("append timed out"))?
//!         }
//!     }))
//!     .await?;
//! assert_eq!(rows, 3);
//! # Ok(()) }
//! ```
//!
//! # Observability
//!
//! Every decision — retry scheduled (with delay and reason), giving up, breaker transition,
//! short-circuit, rate-limit wait or refusal, bulkhead refusal, attempt timeout, deadline — emits a
//! `tracing` event with the fields `provider` and `operation`, and updates the provider's
//! [`IntegrationMetrics`](crate::metrics::IntegrationMetrics).
//!
//! A call's latency is timed with `quanta` (the CPU's TSC where it is reliable: a reading costs
//! a third of the OS clock's), everything else — timeouts, the deadline, backoff, the rate limiter,
//! the breaker — on tokio's clock. On a paused tokio clock the recorded latency is therefore the
//! real time a call took, not the paused clock's jumps. Where a call needs tokio's time itself
//! (the limiter's permit check, the deadline, the latency window), the policy maps its TSC
//! reading onto tokio's clock instead of reading it, unless the `test-util` feature is on: see
//! [`Policy`]'s *Time* section for what that means for tests that pause the clock.

mod backoff;
mod breaker;
mod bulkhead;
#[cfg(feature = "tower")]
mod layer;
mod limiter;
mod policy;
mod retry;
pub(crate) mod time;
mod window;

pub use backoff::Backoff;
pub use breaker::{
    BreakerOutcome, BreakerPermit, BreakerState, CircuitBreaker, CircuitBreakerConfig,
    StateTransition,
};
pub use bulkhead::{Bulkhead, BulkheadPermit};
#[cfg(feature = "tower")]
#[cfg_attr(docsrs, doc(cfg(feature = "tower")))]
pub use layer::{ClassifyError, DefaultClassifier, PolicyFuture, PolicyLayer, PolicyService};
pub use limiter::{Quota, RateLimiter, TokioClock};
pub use policy::{Attempt, Policy, PolicyBuilder};
pub use retry::{GiveUpReason, RetryDecision, RetryPolicy, RetryReason};
pub use window::SlidingWindow;
