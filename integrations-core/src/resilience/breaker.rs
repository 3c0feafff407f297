//! Circuit breaker: closed → open → half-open, on the failure rate of a sliding window.

use std::borrow::Cow;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::{broadcast, watch};
use tokio::time::Instant;

use super::window::{SlidingWindow, Window};
use crate::error::{Error, ErrorKind, Result};
use crate::metrics::IntegrationMetrics;

/// State of a [`CircuitBreaker`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakerState {
    /// Calls flow; outcomes are counted.
    Closed,
    /// Calls are refused until the open duration has passed.
    Open,
    /// A limited number of probe calls are let through to test the provider.
    HalfOpen,
    /// Opened by hand ([`CircuitBreaker::force_open`]): every call is refused until
    /// [`CircuitBreaker::reset`].
    ForcedOpen,
    /// Switched off by hand ([`CircuitBreaker::disable`]): every call flows, nothing is counted.
    Disabled,
}

impl BreakerState {
    /// Numeric code (0 closed, 1 open, 2 half-open, 3 forced open, 4 disabled), as in the
    /// Prometheus gauge.
    pub const fn as_u8(self) -> u8 {
        self as u8
    }
    /// The state of a code from [`BreakerState::as_u8`]; unknown codes read as `Closed`.
    pub const fn from_u8(code: u8) -> BreakerState {
        match code {
            1 => BreakerState::Open,
            2 => BreakerState::HalfOpen,
            3 => BreakerState::ForcedOpen,
            4 => BreakerState::Disabled,
            _ => BreakerState::Closed,
        }
    }
    /// `"closed"`, `"open"`, `"half_open"`, `"forced_open"` or `"disabled"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half_open",
            BreakerState::ForcedOpen => "forced_open",
            BreakerState::Disabled => "disabled",
        }
    }
}

impl std::fmt::Display for BreakerState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One change of state, as sent to [`CircuitBreaker::subscribe`]rs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateTransition {
    /// State before.
    pub from: BreakerState,
    /// State after.
    pub to: BreakerState,
}

/// What a finished call tells the breaker about the provider's health.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerOutcome {
    /// The provider answered as a healthy provider does (including a decline or a validation
    /// error: the caller was at fault, not the provider).
    Success,
    /// The provider looked unhealthy (unavailable, timed out, answered garbage).
    Failure,
    /// Says nothing about health (a rate limit, or a refusal by the policy's own guards).
    Ignored,
}

impl BreakerOutcome {
    /// Classifies an error.
    ///
    /// Only errors that indicate provider health count as failures:
    /// [`ErrorKind::Unavailable`], [`ErrorKind::Timeout`] and [`ErrorKind::Provider`]. Caller faults
    /// (invalid input, declined, not found, conflict, auth, configuration, signature) count as
    /// successes — the provider answered — so a burst of bad requests never opens the circuit.
    /// [`ErrorKind::RateLimited`] is ignored: the provider is healthy and said when to come back;
    /// the rate limiter and `Retry-After` handle it, and opening the circuit would turn a quota
    /// signal into an outage. Circuit-open and bulkhead-full refusals are the policy's own and are
    /// ignored too.
    pub fn from_error(error: &Error) -> BreakerOutcome {
        match error.kind() {
            ErrorKind::Unavailable | ErrorKind::Timeout | ErrorKind::Provider => {
                BreakerOutcome::Failure
            }
            ErrorKind::RateLimited | ErrorKind::CircuitOpen | ErrorKind::BulkheadFull => {
                BreakerOutcome::Ignored
            }
            ErrorKind::InvalidInput
            | ErrorKind::Unauthenticated
            | ErrorKind::Forbidden
            | ErrorKind::NotFound
            | ErrorKind::Conflict
            | ErrorKind::Declined
            | ErrorKind::InvalidSignature
            | ErrorKind::Configuration => BreakerOutcome::Success,
        }
    }

    /// Classifies a result: `Ok` is a success, an error as in [`BreakerOutcome::from_error`].
    pub fn from_result<T>(result: &Result<T>) -> BreakerOutcome {
        match result {
            Ok(_) => BreakerOutcome::Success,
            Err(e) => BreakerOutcome::from_error(e),
        }
    }
}

/// Settings of a [`CircuitBreaker`].
///
/// Defaults ([`CircuitBreakerConfig::DEFAULT`]): open at a failure rate of 50 % over the last 20
/// calls, once at least 10 calls were seen; stay open 30 s; then let 3 probes through, all of
/// which must succeed to close again.
///
/// ```
/// use std::time::Duration;
/// use integrations_core::resilience::{CircuitBreakerConfig, SlidingWindow};
///
/// let config = CircuitBreakerConfig::new()
///     .with_failure_rate_threshold(25)
///     .with_window(SlidingWindow::Time(Duration::from_secs(60)))
///     .with_minimum_calls(20)
///     .with_open_duration(Duration::from_secs(10))
///     .with_half_open_probes(1);
/// assert_eq!(config.failure_rate_threshold, 25);
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct CircuitBreakerConfig {
    /// Failure rate, in percent (1–100), at or above which the circuit opens.
    pub failure_rate_threshold: u8,
    /// The calls the rate is computed over.
    pub window: SlidingWindow,
    /// Calls the window must hold before the rate is judged at all. Capped at the window's size
    /// for a count window.
    pub minimum_calls: u32,
    /// How long the circuit stays open before letting probes through.
    pub open_duration: Duration,
    /// Probe calls let through while half-open (at least 1). All must succeed to close; any
    /// failure reopens.
    pub half_open_probes: u32,
}

impl CircuitBreakerConfig {
    /// 50 %, last 20 calls, at least 10 calls, open 30 s, 3 probes.
    pub const DEFAULT: CircuitBreakerConfig = CircuitBreakerConfig {
        failure_rate_threshold: 50,
        window: SlidingWindow::Count(20),
        minimum_calls: 10,
        open_duration: Duration::from_secs(30),
        half_open_probes: 3,
    };

    /// The defaults.
    pub const fn new() -> Self {
        Self::DEFAULT
    }
    /// Sets the failure rate (percent, clamped to 1–100) at which the circuit opens.
    pub const fn with_failure_rate_threshold(mut self, percent: u8) -> Self {
        self.failure_rate_threshold = percent;
        self
    }
    /// Sets the window the failure rate is computed over.
    pub const fn with_window(mut self, window: SlidingWindow) -> Self {
        self.window = window;
        self
    }
    /// Sets the number of calls needed before the rate is judged.
    pub const fn with_minimum_calls(mut self, calls: u32) -> Self {
        self.minimum_calls = calls;
        self
    }
    /// Sets how long the circuit stays open.
    pub const fn with_open_duration(mut self, duration: Duration) -> Self {
        self.open_duration = duration;
        self
    }
    /// Sets the number of half-open probes (at least 1).
    pub const fn with_half_open_probes(mut self, probes: u32) -> Self {
        self.half_open_probes = probes;
        self
    }

    fn normalised(mut self) -> Self {
        self.failure_rate_threshold = self.failure_rate_threshold.clamp(1, 100);
        self.half_open_probes = self.half_open_probes.max(1);
        self.minimum_calls = self.minimum_calls.max(1);
        if let SlidingWindow::Count(n) = self.window {
            let n = n.max(1);
            self.window = SlidingWindow::Count(n);
            self.minimum_calls = self.minimum_calls.min(n);
        }
        self
    }
}

impl Default for CircuitBreakerConfig {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// A circuit breaker guarding one provider. Cloning shares the breaker.
///
/// Closed, it counts outcomes ([`BreakerOutcome`]) in a sliding window and opens once the window
/// holds at least `minimum_calls` and the failure rate reaches the threshold. Open, it refuses
/// calls with [`Error::CircuitOpen`] (marked not processed, so failover may move on) without
/// touching the provider. After `open_duration` the next call finds it half-open and goes through
/// as a probe, up to `half_open_probes` at once; when all probes succeed it closes, and the first
/// failing probe opens it again.
///
/// Every transition is logged (`tracing`, target of this module), written to the integration's
/// metrics, sent to [`subscribe`](CircuitBreaker::subscribe)rs and to [`watch`](CircuitBreaker::watch)ers.
/// Time is read from [`tokio::time::Instant`], so tests can run on a paused clock.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use integrations_core::resilience::{BreakerState, CircuitBreaker, CircuitBreakerConfig};
/// use integrations_core::{Error, ErrorKind};
///
/// let breaker = CircuitBreaker::new("sendgrid", CircuitBreakerConfig::new().with_minimum_calls(2));
/// for _ in 0..2 {
///     let r: Result<(), Error> = breaker.call("send", async { Err(Error::unavailable("503")) }).await;
///     assert!(r.is_err());
/// }
/// assert_eq!(breaker.state(), BreakerState::Open);
/// let refused = breaker.call("send", async { Ok(()) }).await.unwrap_err();
/// assert_eq!(refused.kind(), ErrorKind::CircuitOpen);
/// # }
/// ```
#[derive(Clone)]
pub struct CircuitBreaker {
    inner: Arc<Inner>,
}

struct Inner {
    provider: Cow<'static, str>,
    config: CircuitBreakerConfig,
    /// `generation << 8 | state`: read without locking on every call.
    word: AtomicU64,
    /// Nanoseconds since `origin` at which an open circuit lets probes through.
    open_until: AtomicU64,
    origin: Instant,
    /// Mirrors `core.window.is_full_and_clean()`, so a success needs no lock while healthy.
    full_and_clean: AtomicBool,
    core: Mutex<Core>,
    transitions: broadcast::Sender<StateTransition>,
    watch: watch::Sender<BreakerState>,
    metrics: Arc<IntegrationMetrics>,
}

struct Core {
    window: Window,
    probes_issued: u32,
    probes_succeeded: u32,
}

impl std::fmt::Debug for CircuitBreaker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CircuitBreaker")
            .field("provider", &self.inner.provider)
            .field("state", &self.state())
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

const fn pack(generation: u64, state: BreakerState) -> u64 {
    (generation << 8) | state.as_u8() as u64
}
const fn unpack(word: u64) -> (u64, BreakerState) {
    (word >> 8, BreakerState::from_u8((word & 0xff) as u8))
}

/// What a permit lets through, and whether its outcome was reported.
///
/// A whole word, not a byte: the policy copies a fresh permit into its future as words, and a
/// word read over a byte just written cannot be forwarded from the store buffer (a stall of
/// about 12 % of the policy's own time in `perf annotate`, with a `kind` byte and a `settled`
/// flag).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u64)]
enum PermitKind {
    Closed,
    Probe,
    Disabled,
    /// The outcome was reported (or the permit was released).
    Settled,
}

/// Leave to make one call through a [`CircuitBreaker`]. Report the outcome with
/// [`BreakerPermit::record`]; a permit dropped without a report (a cancelled call) counts as
/// [`BreakerOutcome::Ignored`] and frees its half-open probe slot.
#[must_use = "report the call's outcome with `record`"]
pub struct BreakerPermit<'a> {
    breaker: &'a CircuitBreaker,
    generation: u64,
    kind: PermitKind,
    operation: &'static str,
}

impl std::fmt::Debug for BreakerPermit<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BreakerPermit")
            .field("probe", &(self.kind == PermitKind::Probe))
            .field("operation", &self.operation)
            .finish_non_exhaustive()
    }
}

impl BreakerPermit<'_> {
    /// Whether this call is a half-open probe.
    pub fn is_probe(&self) -> bool {
        self.kind == PermitKind::Probe
    }
    /// Reports the call's outcome.
    #[inline]
    pub fn record(mut self, outcome: BreakerOutcome) {
        let kind = std::mem::replace(&mut self.kind, PermitKind::Settled);
        self.breaker
            .settle(self.generation, kind, self.operation, outcome);
    }
    /// Reports a result, classified with [`BreakerOutcome::from_result`].
    #[inline]
    pub fn record_result<T>(self, result: &Result<T>) {
        self.record(BreakerOutcome::from_result(result));
    }
}

impl Drop for BreakerPermit<'_> {
    fn drop(&mut self) {
        if self.kind != PermitKind::Settled {
            self.breaker.settle(
                self.generation,
                self.kind,
                self.operation,
                BreakerOutcome::Ignored,
            );
        }
    }
}

impl CircuitBreaker {
    /// A breaker for `provider`, recording into metrics of its own (not registered anywhere).
    pub fn new(provider: impl Into<Cow<'static, str>>, config: CircuitBreakerConfig) -> Self {
        let provider = provider.into();
        let metrics = Arc::new(IntegrationMetrics::new(provider.as_ref()));
        Self::with_metrics(provider, config, metrics)
    }

    /// A breaker for `provider` writing its state into `metrics`.
    pub fn with_metrics(
        provider: impl Into<Cow<'static, str>>,
        config: CircuitBreakerConfig,
        metrics: Arc<IntegrationMetrics>,
    ) -> Self {
        let config = config.normalised();
        metrics.set_breaker_state(BreakerState::Closed);
        CircuitBreaker {
            inner: Arc::new(Inner {
                provider: provider.into(),
                config,
                word: AtomicU64::new(pack(0, BreakerState::Closed)),
                open_until: AtomicU64::new(0),
                origin: Instant::now(),
                full_and_clean: AtomicBool::new(false),
                core: Mutex::new(Core {
                    window: Window::new(config.window),
                    probes_issued: 0,
                    probes_succeeded: 0,
                }),
                transitions: broadcast::channel(64).0,
                watch: watch::channel(BreakerState::Closed).0,
                metrics,
            }),
        }
    }

    /// The provider this breaker guards.
    pub fn provider(&self) -> &str {
        &self.inner.provider
    }
    /// The settings in force (normalised: threshold clamped, at least one probe).
    pub fn config(&self) -> &CircuitBreakerConfig {
        &self.inner.config
    }
    /// The metrics the breaker writes its state and short-circuits into.
    pub fn metrics(&self) -> &Arc<IntegrationMetrics> {
        &self.inner.metrics
    }

    /// The current state. An open circuit whose open duration has passed still reads `Open` until
    /// the next call moves it to half-open.
    pub fn state(&self) -> BreakerState {
        unpack(self.inner.word.load(Ordering::Acquire)).1
    }

    /// Every transition from now on (a bounded channel: a receiver that falls more than 64
    /// transitions behind skips the oldest).
    pub fn subscribe(&self) -> broadcast::Receiver<StateTransition> {
        self.inner.transitions.subscribe()
    }

    /// The latest state, with change notification.
    pub fn watch(&self) -> watch::Receiver<BreakerState> {
        self.inner.watch.subscribe()
    }

    /// `(calls, failures)` currently in the sliding window.
    pub fn window_counts(&self) -> (u64, u64) {
        let now = self.now_nanos();
        self.lock().window.totals(now)
    }

    fn now_nanos(&self) -> u64 {
        let elapsed = Instant::now().saturating_duration_since(self.inner.origin);
        u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX)
    }

    fn lock(&self) -> MutexGuard<'_, Core> {
        self.inner
            .core
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Asks leave for one call of `operation`.
    ///
    /// # Errors
    /// [`Error::CircuitOpen`] (with provider and operation, marked not processed) while the circuit
    /// is open or forced open, or half-open with every probe slot taken.
    #[inline]
    pub fn try_acquire(&self, operation: &'static str) -> Result<BreakerPermit<'_>> {
        let (generation, state) = unpack(self.inner.word.load(Ordering::Acquire));
        match state {
            BreakerState::Closed => Ok(self.permit(generation, PermitKind::Closed, operation)),
            BreakerState::Disabled => Ok(self.permit(generation, PermitKind::Disabled, operation)),
            BreakerState::ForcedOpen => Err(self.reject(operation, state)),
            BreakerState::Open
                if self.now_nanos() < self.inner.open_until.load(Ordering::Acquire) =>
            {
                Err(self.reject(operation, state))
            }
            BreakerState::Open | BreakerState::HalfOpen => self.acquire_slow(operation),
        }
    }

    /// Refuses as [`try_acquire`](CircuitBreaker::try_acquire) would while the circuit is open
    /// or forced open, without taking a permit. Cheap: one atomic load, plus one clock reading
    /// when open. Lets a caller skip work (such as taking a rate-limit permit) for a call that
    /// would be refused.
    ///
    /// # Errors
    /// [`Error::CircuitOpen`], as [`try_acquire`](CircuitBreaker::try_acquire).
    #[inline]
    pub fn check(&self, operation: &'static str) -> Result<()> {
        let (_, state) = unpack(self.inner.word.load(Ordering::Acquire));
        match state {
            BreakerState::ForcedOpen => Err(self.reject(operation, state)),
            BreakerState::Open
                if self.now_nanos() < self.inner.open_until.load(Ordering::Acquire) =>
            {
                Err(self.reject(operation, state))
            }
            _ => Ok(()),
        }
    }

    fn permit(
        &self,
        generation: u64,
        kind: PermitKind,
        operation: &'static str,
    ) -> BreakerPermit<'_> {
        BreakerPermit {
            breaker: self,
            generation,
            kind,
            operation,
        }
    }

    #[cold]
    fn reject(&self, operation: &'static str, state: BreakerState) -> Error {
        self.inner.metrics.record_short_circuit();
        tracing::debug!(
            provider = %self.inner.provider,
            operation,
            state = state.as_str(),
            "circuit open: call short-circuited"
        );
        Error::circuit_open(String::new())
            .with_provider(self.inner.provider.clone())
            .with_operation(operation)
    }

    fn acquire_slow(&self, operation: &'static str) -> Result<BreakerPermit<'_>> {
        let mut core = self.lock();
        let (mut generation, mut state) = unpack(self.inner.word.load(Ordering::Acquire));
        if state == BreakerState::Open
            && self.now_nanos() >= self.inner.open_until.load(Ordering::Acquire)
        {
            generation = self.transition(&mut core, BreakerState::HalfOpen, operation);
            state = BreakerState::HalfOpen;
        }
        match state {
            BreakerState::Closed => Ok(self.permit(generation, PermitKind::Closed, operation)),
            BreakerState::Disabled => Ok(self.permit(generation, PermitKind::Disabled, operation)),
            BreakerState::HalfOpen if core.probes_issued < self.inner.config.half_open_probes => {
                core.probes_issued += 1;
                tracing::debug!(
                    provider = %self.inner.provider,
                    operation,
                    probe = core.probes_issued,
                    "circuit half-open: probe let through"
                );
                Ok(self.permit(generation, PermitKind::Probe, operation))
            }
            _ => {
                drop(core);
                Err(self.reject(operation, state))
            }
        }
    }

    /// Inline: the healthy path (a success with a full, clean window) returns at once.
    #[inline]
    fn settle(
        &self,
        generation: u64,
        kind: PermitKind,
        operation: &'static str,
        outcome: BreakerOutcome,
    ) {
        if matches!(kind, PermitKind::Disabled | PermitKind::Settled) {
            return;
        }
        if kind == PermitKind::Closed
            && outcome == BreakerOutcome::Success
            && self.inner.full_and_clean.load(Ordering::Acquire)
        {
            // The window is full and holds only successes: one more changes nothing. (The flag is
            // only ever set while closed, and a stale permit's outcome would be ignored anyway.)
            return;
        }
        self.settle_locked(generation, kind, operation, outcome);
    }

    #[inline(never)]
    fn settle_locked(
        &self,
        generation: u64,
        kind: PermitKind,
        operation: &'static str,
        outcome: BreakerOutcome,
    ) {
        // Only a time window needs the clock.
        let now = match self.inner.config.window {
            SlidingWindow::Count(_) => 0,
            SlidingWindow::Time(_) => self.now_nanos(),
        };
        let mut core = self.lock();
        let (current, state) = unpack(self.inner.word.load(Ordering::Acquire));
        if current != generation {
            // The circuit changed state since this call started: its outcome belongs to a
            // period that is over.
            return;
        }
        match (state, kind) {
            (BreakerState::Closed, PermitKind::Closed) => {
                if outcome == BreakerOutcome::Ignored {
                    return;
                }
                core.window.record(now, outcome == BreakerOutcome::Failure);
                self.inner
                    .full_and_clean
                    .store(core.window.is_full_and_clean(), Ordering::Release);
                let (calls, failures) = core.window.totals(now);
                let cfg = &self.inner.config;
                if calls >= u64::from(cfg.minimum_calls)
                    && failures * 100 >= u64::from(cfg.failure_rate_threshold) * calls
                {
                    tracing::warn!(
                        provider = %self.inner.provider,
                        operation,
                        calls,
                        failures,
                        threshold_percent = cfg.failure_rate_threshold,
                        "failure rate reached the threshold"
                    );
                    self.transition(&mut core, BreakerState::Open, operation);
                }
            }
            (BreakerState::HalfOpen, PermitKind::Probe) => match outcome {
                BreakerOutcome::Ignored => core.probes_issued -= 1,
                BreakerOutcome::Success => {
                    core.probes_succeeded += 1;
                    if core.probes_succeeded >= self.inner.config.half_open_probes {
                        self.transition(&mut core, BreakerState::Closed, operation);
                    }
                }
                BreakerOutcome::Failure => {
                    self.transition(&mut core, BreakerState::Open, operation);
                }
            },
            _ => {}
        }
    }

    /// Moves to `to` (caller holds the lock); returns the new generation.
    fn transition(&self, core: &mut Core, to: BreakerState, operation: &'static str) -> u64 {
        let (generation, from) = unpack(self.inner.word.load(Ordering::Acquire));
        let next = generation.wrapping_add(1) & (u64::MAX >> 8);
        core.window.clear();
        self.inner.full_and_clean.store(false, Ordering::Release);
        core.probes_issued = 0;
        core.probes_succeeded = 0;
        if to == BreakerState::Open {
            let until = self.now_nanos().saturating_add(
                u64::try_from(self.inner.config.open_duration.as_nanos()).unwrap_or(u64::MAX),
            );
            self.inner.open_until.store(until, Ordering::Release);
        }
        self.inner.word.store(pack(next, to), Ordering::Release);
        self.inner.metrics.set_breaker_state(to);
        let provider = &*self.inner.provider;
        match to {
            BreakerState::Open | BreakerState::ForcedOpen => tracing::warn!(
                provider,
                operation,
                from = from.as_str(),
                to = to.as_str(),
                open_for_ms =
                    u64::try_from(self.inner.config.open_duration.as_millis()).unwrap_or(u64::MAX),
                "circuit breaker opened"
            ),
            _ => tracing::info!(
                provider,
                operation,
                from = from.as_str(),
                to = to.as_str(),
                "circuit breaker state changed"
            ),
        }
        // No receivers is fine.
        let _ = self.inner.transitions.send(StateTransition { from, to });
        self.inner.watch.send_replace(to);
        next
    }

    fn manual(&self, to: BreakerState) {
        let mut core = self.lock();
        if self.state() == to {
            core.window.clear();
            self.inner.full_and_clean.store(false, Ordering::Release);
            return;
        }
        self.transition(&mut core, to, "manual");
    }

    /// Opens the circuit until [`reset`](CircuitBreaker::reset): every call is refused.
    pub fn force_open(&self) {
        self.manual(BreakerState::ForcedOpen);
    }
    /// Switches the breaker off until [`reset`](CircuitBreaker::reset): every call flows and
    /// nothing is counted.
    pub fn disable(&self) {
        self.manual(BreakerState::Disabled);
    }
    /// Closes the circuit with an empty window, whatever the state.
    pub fn reset(&self) {
        self.manual(BreakerState::Closed);
    }

    /// Runs `call` under the breaker: refused while open, outcome recorded with
    /// [`BreakerOutcome::from_result`].
    ///
    /// # Errors
    /// [`Error::CircuitOpen`] when refused; otherwise whatever `call` returns.
    pub async fn call<T, Fut>(&self, operation: &'static str, call: Fut) -> Result<T>
    where
        Fut: Future<Output = Result<T>>,
    {
        let permit = self.try_acquire(operation)?;
        let result = call.await;
        permit.record_result(&result);
        result
    }
}

#[cfg(test)]
#[path = "breaker_tests.rs"]
mod tests;
