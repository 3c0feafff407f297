//! Per-integration counters, latency histograms and health, read as a snapshot or as Prometheus
//! text, and (feature `metrics`) recorded through the [`metrics`](https://docs.rs/metrics) facade.
//!
//! Every [`Policy`](crate::resilience::Policy) records into the [`IntegrationMetrics`] of its
//! provider, found by name in a [`MetricsRegistry`] (the [global](MetricsRegistry::global) one
//! unless the builder was given another). Recording is a handful of relaxed atomic operations,
//! without a lock: one is taken only when an operation is first seen, and per window step once
//! per [`WINDOW_STEP`] to clear the oldest step. Each (provider, operation) holds about 35 KiB;
//! at most [`MAX_OPERATIONS`] operations are told apart per provider.
//!
//! What is kept, per provider and per operation (`create_payment_intent`, `send`, …):
//! - counters since start (calls, successes, failures by kind, retries, …);
//! - a latency histogram since start over [`LATENCY_BUCKETS`] (5 ms … 60 s), exposed as the
//!   Prometheus histogram `integration_latency_seconds{provider,operation,le}` so that
//!   `histogram_quantile` works over any range and across instances;
//! - a sliding window of the last [`WINDOW`] (5 minutes), from which the snapshot's
//!   `p50_ms`/`p95_ms`/`p99_ms`/`max_ms` are computed: they follow an incident within minutes
//!   and are `NaN` (JSON `null`) when the window holds no call.
//!
//! ```
//! use std::time::Duration;
//! use integrations_core::metrics::{Health, MetricsRegistry};
//! use integrations_core::ErrorKind;
//!
//! let registry = MetricsRegistry::new();
//! let stripe = registry.integration("stripe");
//! stripe.record_call();
//! stripe.record_operation_success("create_payment_intent", Duration::from_millis(120));
//! stripe.record_call();
//! stripe.record_operation_failure("create_payment_intent", ErrorKind::Timeout, Duration::from_secs(2));
//!
//! let snapshot = registry.snapshot();
//! let s = snapshot.get("stripe").unwrap();
//! assert_eq!((s.calls, s.successes, s.failures["timeout"]), (2, 1, 1));
//! assert_eq!(s.success_rate, 0.5);
//! assert_eq!(s.health, Health::Healthy); // fewer than HEALTH_MIN_CALLS calls: not judged yet
//! assert_eq!(s.operations[0].window_count, 2);
//! assert!(registry.integration("paypal").snapshot().p99_ms.is_nan()); // no call in the window
//! let text = registry.render_prometheus();
//! assert!(text.contains("integration_calls_total{provider=\"stripe\"} 2\n"));
//! assert!(text.contains(
//!     "integration_latency_seconds_bucket{provider=\"stripe\",operation=\"create_payment_intent\",le=\"0.25\"} 1\n"
//! ));
//! ```

#[cfg(feature = "metrics")]
mod facade;
mod histogram;
mod prometheus;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, RwLock};
use std::time::Duration;

use serde::Serialize;
use tokio::time::Instant;

pub use histogram::{Bound, FixedHistogram, FixedSnapshot, LATENCY_BUCKETS, WINDOW, WINDOW_STEP};
use histogram::{Window, WindowCounts};
pub use prometheus::TextWriter;

use crate::error::ErrorKind;
use crate::resilience::BreakerState;
use crate::resilience::time::{Moment, nanos};

/// The operation recorded by [`IntegrationMetrics::record_success`] and
/// [`IntegrationMetrics::record_failure`], which do not name one.
pub const UNSPECIFIED_OPERATION: &str = "unspecified";
/// Operations told apart per provider (the label set stays bounded); the latency of any further
/// operation is recorded under [`OTHER_OPERATION`].
pub const MAX_OPERATIONS: usize = 32;
/// The operation that stands for every operation past the first [`MAX_OPERATIONS`] − 1.
pub const OTHER_OPERATION: &str = "other";
/// Availability below which a closed-circuit integration is reported [`Health::Degraded`].
pub const DEGRADED_BELOW: f64 = 0.95;
/// Availability below which an integration is reported [`Health::Down`] even with a closed circuit.
pub const DOWN_BELOW: f64 = 0.5;
/// Calls needed before availability alone may mark an integration degraded or down.
pub const HEALTH_MIN_CALLS: u64 = 10;

const KINDS: usize = ErrorKind::ALL.len();

/// Counters, latency histograms (per operation) and breaker state of one integration. Cheap to
/// record into from many tasks at once.
pub struct IntegrationMetrics {
    name: String,
    calls: AtomicU64,
    failures: [AtomicU64; KINDS],
    retries: AtomicU64,
    short_circuits: AtomicU64,
    rate_limited_waits: AtomicU64,
    rate_limited_rejections: AtomicU64,
    bulkhead_rejections: AtomicU64,
    timeouts: AtomicU64,
    breaker_state: AtomicU8,
    /// One slot per operation seen, filled in order and never emptied, so recording finds its
    /// operation without a lock; the last slot is [`OTHER_OPERATION`].
    operations: [OnceLock<Box<OperationMetrics>>; MAX_OPERATIONS],
    /// Held while a slot is filled.
    adding: Mutex<()>,
    /// The name as the facade's `provider` label.
    #[cfg(feature = "metrics")]
    label: metrics::SharedString,
}

/// Latency of one operation: since start (fixed buckets) and over the window.
///
/// The calls that succeeded and those that failed after an attempt have a histogram each: the
/// successes counter is the first one's count, so that a success costs no read-modify-write of a
/// counter of its own (the `policy` bench). Both are exported as one histogram.
#[derive(Debug)]
struct OperationMetrics {
    name: &'static str,
    succeeded: FixedHistogram,
    failed: FixedHistogram,
    window: Window,
}

impl OperationMetrics {
    fn new(name: &'static str) -> Self {
        OperationMetrics {
            name,
            succeeded: FixedHistogram::new(LATENCY_BUCKETS),
            failed: FixedHistogram::new(LATENCY_BUCKETS),
            window: Window::new(),
        }
    }

    /// Every call's latency since start, successes and failures together.
    fn latency(&self) -> FixedSnapshot {
        let mut all = self.succeeded.snapshot();
        all.add(&self.failed.snapshot());
        all
    }
}

impl std::fmt::Debug for IntegrationMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IntegrationMetrics")
            .field("name", &self.name)
            .field("calls", &self.calls())
            .field("successes", &self.successes())
            .field("breaker_state", &self.breaker_state())
            .finish_non_exhaustive()
    }
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

impl IntegrationMetrics {
    /// Metrics for `name`, not registered anywhere (see [`MetricsRegistry::integration`] for shared
    /// ones).
    pub fn new(name: impl Into<String>) -> Self {
        let name: String = name.into();
        IntegrationMetrics {
            #[cfg(feature = "metrics")]
            label: facade::label(&name),
            calls: AtomicU64::new(0),
            failures: std::array::from_fn(|_| AtomicU64::new(0)),
            retries: AtomicU64::new(0),
            short_circuits: AtomicU64::new(0),
            rate_limited_waits: AtomicU64::new(0),
            rate_limited_rejections: AtomicU64::new(0),
            bulkhead_rejections: AtomicU64::new(0),
            timeouts: AtomicU64::new(0),
            breaker_state: AtomicU8::new(BreakerState::Closed.as_u8()),
            operations: std::array::from_fn(|_| OnceLock::new()),
            adding: Mutex::new(()),
            name,
        }
    }

    /// The integration's name (the provider, e.g. `"stripe"`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A logical call entered the policy.
    pub fn record_call(&self) {
        bump(&self.calls);
        #[cfg(feature = "metrics")]
        facade::counter(facade::CALLS, &self.label);
    }
    /// A logical call of `operation` succeeded after `latency` (all attempts and waits included).
    /// Latencies are kept in nanoseconds: one past `u64::MAX` of them (~584 years) counts as
    /// that.
    pub fn record_operation_success(&self, operation: &'static str, latency: Duration) {
        self.record_success_at(operation, nanos(latency), Moment::now());
    }
    /// A logical call of `operation` failed with `kind` after `latency`.
    pub fn record_operation_failure(
        &self,
        operation: &'static str,
        kind: ErrorKind,
        latency: Duration,
    ) {
        self.record_failure_at(operation, kind, nanos(latency), Moment::now());
    }
    /// [`record_operation_success`](Self::record_operation_success) of a call that ended at
    /// `now` (the policy has read the clock already), `latency_ns` nanoseconds after it began.
    pub(crate) fn record_success_at(&self, operation: &'static str, latency_ns: u64, now: Moment) {
        #[cfg(feature = "metrics")]
        facade::counter(facade::SUCCESSES, &self.label);
        self.record_latency(operation, latency_ns, now, true);
    }
    /// [`record_operation_failure`](Self::record_operation_failure) of a call that ended at
    /// `now`.
    pub(crate) fn record_failure_at(
        &self,
        operation: &'static str,
        kind: ErrorKind,
        latency_ns: u64,
        now: Moment,
    ) {
        self.record_rejection(kind);
        self.record_latency(operation, latency_ns, now, false);
    }
    /// [`record_operation_success`](Self::record_operation_success) of
    /// [`UNSPECIFIED_OPERATION`].
    pub fn record_success(&self, latency: Duration) {
        self.record_operation_success(UNSPECIFIED_OPERATION, latency);
    }
    /// [`record_operation_failure`](Self::record_operation_failure) of
    /// [`UNSPECIFIED_OPERATION`].
    pub fn record_failure(&self, kind: ErrorKind, latency: Duration) {
        self.record_operation_failure(UNSPECIFIED_OPERATION, kind, latency);
    }
    /// A logical call was refused before any attempt (circuit open, bulkhead full, rate limit):
    /// counted as a failure of `kind`, without latency.
    pub fn record_rejection(&self, kind: ErrorKind) {
        bump(&self.failures[kind.index()]);
        #[cfg(feature = "metrics")]
        facade::failure(&self.label, kind);
    }
    /// A retry was scheduled.
    pub fn record_retry(&self) {
        bump(&self.retries);
        #[cfg(feature = "metrics")]
        facade::counter(facade::RETRIES, &self.label);
    }
    /// The circuit breaker refused a call.
    pub fn record_short_circuit(&self) {
        bump(&self.short_circuits);
        #[cfg(feature = "metrics")]
        facade::counter(facade::SHORT_CIRCUITS, &self.label);
    }
    /// The rate limiter made a call wait for a permit.
    pub fn record_rate_limited_wait(&self) {
        bump(&self.rate_limited_waits);
        #[cfg(feature = "metrics")]
        facade::counter(facade::RATE_LIMITED_WAITS, &self.label);
    }
    /// The rate limiter refused a call (the wait would have been too long).
    pub fn record_rate_limited_rejection(&self) {
        bump(&self.rate_limited_rejections);
        #[cfg(feature = "metrics")]
        facade::counter(facade::RATE_LIMITED_REJECTIONS, &self.label);
    }
    /// The bulkhead refused a call.
    pub fn record_bulkhead_rejection(&self) {
        bump(&self.bulkhead_rejections);
        #[cfg(feature = "metrics")]
        facade::counter(facade::BULKHEAD_REJECTIONS, &self.label);
    }
    /// An attempt or a whole call ran out of time.
    pub fn record_timeout(&self) {
        bump(&self.timeouts);
        #[cfg(feature = "metrics")]
        facade::counter(facade::TIMEOUTS, &self.label);
    }
    /// The circuit breaker moved to `state`.
    pub fn set_breaker_state(&self, state: BreakerState) {
        self.breaker_state.store(state.as_u8(), Ordering::Relaxed);
        #[cfg(feature = "metrics")]
        facade::breaker_state(&self.label, state);
    }

    /// Counts a finished call's latency, in nanoseconds (and with it a success, if
    /// `succeeded`). Nanoseconds, not a `Duration`: the policy has them as an integer, and the
    /// round trip through a `Duration` cost a division and two multiplications per call.
    #[inline]
    fn record_latency(
        &self,
        operation: &'static str,
        latency_ns: u64,
        now: Moment,
        succeeded: bool,
    ) {
        let op = self.operation(operation);
        let us = latency_ns / 1_000;
        if succeeded {
            op.succeeded.record_micros(us);
        } else {
            op.failed.record_micros(us);
        }
        op.window.record_micros(us, now);
        #[cfg(feature = "metrics")]
        facade::latency(&self.label, op.name, Duration::from_nanos(latency_ns));
    }

    /// The metrics of `operation`, created on first use (without a lock once it exists).
    #[inline]
    fn operation(&self, operation: &'static str) -> &OperationMetrics {
        for slot in &self.operations {
            match slot.get() {
                Some(op) if std::ptr::eq(op.name, operation) || op.name == operation => return op,
                Some(_) => {}
                None => return self.add_operation(operation),
            }
        }
        self.other()
    }

    #[cold]
    fn add_operation(&self, operation: &'static str) -> &OperationMetrics {
        let _adding = self.adding.lock().unwrap_or_else(PoisonError::into_inner);
        for (i, slot) in self.operations.iter().enumerate() {
            match slot.get() {
                Some(op) if op.name == operation => return op,
                Some(_) => {}
                None => {
                    let name = if i == MAX_OPERATIONS - 1 {
                        OTHER_OPERATION
                    } else {
                        operation
                    };
                    return slot.get_or_init(|| Box::new(OperationMetrics::new(name)));
                }
            }
        }
        self.other()
    }

    /// The last slot, [`OTHER_OPERATION`] (every slot is taken when this is called).
    fn other(&self) -> &OperationMetrics {
        self.operations[MAX_OPERATIONS - 1]
            .get_or_init(|| Box::new(OperationMetrics::new(OTHER_OPERATION)))
    }

    /// Logical calls started.
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }
    /// Logical calls that succeeded: the count of their latency histograms (each bucket only
    /// grows, so neither does the sum read bucket by bucket).
    pub fn successes(&self) -> u64 {
        self.operations
            .iter()
            .map_while(|slot| slot.get())
            .map(|op| op.succeeded.count())
            .sum()
    }
    /// Logical calls that failed with `kind`.
    pub fn failures(&self, kind: ErrorKind) -> u64 {
        self.failures[kind.index()].load(Ordering::Relaxed)
    }
    /// Logical calls that failed, whatever the kind.
    pub fn total_failures(&self) -> u64 {
        self.failures
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .sum()
    }
    /// Retries scheduled.
    pub fn retries(&self) -> u64 {
        self.retries.load(Ordering::Relaxed)
    }
    /// Calls refused by an open circuit.
    pub fn short_circuits(&self) -> u64 {
        self.short_circuits.load(Ordering::Relaxed)
    }
    /// Waits for a rate-limiter permit.
    pub fn rate_limited_waits(&self) -> u64 {
        self.rate_limited_waits.load(Ordering::Relaxed)
    }
    /// Calls refused by the rate limiter.
    pub fn rate_limited_rejections(&self) -> u64 {
        self.rate_limited_rejections.load(Ordering::Relaxed)
    }
    /// Calls refused by the bulkhead.
    pub fn bulkhead_rejections(&self) -> u64 {
        self.bulkhead_rejections.load(Ordering::Relaxed)
    }
    /// Attempts or calls that ran out of time.
    pub fn timeouts(&self) -> u64 {
        self.timeouts.load(Ordering::Relaxed)
    }
    /// The breaker state last reported.
    pub fn breaker_state(&self) -> BreakerState {
        BreakerState::from_u8(self.breaker_state.load(Ordering::Relaxed))
    }

    /// A consistent-enough copy of everything, with window quantiles and health computed.
    pub fn snapshot(&self) -> IntegrationSnapshot {
        let now = Instant::now();
        let mut ops: Vec<&OperationMetrics> = self
            .operations
            .iter()
            .map_while(|slot| slot.get().map(|op| &**op))
            .collect();
        ops.sort_by_key(|op| op.name);
        let mut window = WindowCounts::empty();
        let (mut count, mut sum_seconds) = (0u64, 0.0f64);
        let operations: Vec<OperationSnapshot> = ops
            .iter()
            .map(|op| {
                let fixed = op.latency();
                let w = op.window.read(now);
                window.merge(&w);
                count += fixed.count;
                sum_seconds += fixed.sum_seconds;
                OperationSnapshot::new(op.name, fixed, &w)
            })
            .collect();
        let failures: BTreeMap<&'static str, u64> = ErrorKind::ALL
            .iter()
            .map(|k| (k.as_str(), self.failures(*k)))
            .collect();
        let successes = self.successes();
        let total_failures: u64 = failures.values().sum();
        let provider_faults: u64 = ErrorKind::ALL
            .iter()
            .filter(|k| is_provider_fault(**k))
            .map(|k| self.failures(*k))
            .sum();
        let completed = successes + total_failures;
        let ratio = |good: u64| {
            if completed == 0 {
                1.0
            } else {
                good as f64 / completed as f64
            }
        };
        let success_rate = ratio(successes);
        let availability = ratio(completed - provider_faults);
        let breaker_state = self.breaker_state();
        IntegrationSnapshot {
            name: self.name.clone(),
            calls: self.calls(),
            successes,
            failures,
            retries: self.retries(),
            short_circuits: self.short_circuits(),
            rate_limited_waits: self.rate_limited_waits(),
            rate_limited_rejections: self.rate_limited_rejections(),
            bulkhead_rejections: self.bulkhead_rejections(),
            timeouts: self.timeouts(),
            success_rate,
            availability,
            latency_count: count,
            latency_sum_ms: sum_seconds * 1000.0,
            window_secs: WINDOW.as_secs(),
            window_count: window.total,
            p50_ms: window.quantile_ms(0.5),
            p95_ms: window.quantile_ms(0.95),
            p99_ms: window.quantile_ms(0.99),
            max_ms: window.max_ms(),
            breaker_state,
            health: Health::derive(breaker_state, availability, completed),
            operations,
        }
    }
}

/// Whether a failure of `kind` says something about the provider's health (as opposed to a fault
/// of the caller, such as invalid input or a declined card). Used for [`IntegrationSnapshot::availability`].
pub fn is_provider_fault(kind: ErrorKind) -> bool {
    matches!(
        kind,
        ErrorKind::Unavailable
            | ErrorKind::Timeout
            | ErrorKind::RateLimited
            | ErrorKind::CircuitOpen
            | ErrorKind::BulkheadFull
            | ErrorKind::Provider
    )
}

/// Overall health of one integration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Health {
    /// Circuit closed (or disabled) and availability at least [`DEGRADED_BELOW`].
    Healthy,
    /// Circuit half-open, or availability below [`DEGRADED_BELOW`] over at least
    /// [`HEALTH_MIN_CALLS`] calls.
    Degraded,
    /// Circuit open (or forced open), or availability below [`DOWN_BELOW`] over at least
    /// [`HEALTH_MIN_CALLS`] calls.
    Down,
}

impl Health {
    /// Health from the breaker state and the availability over `completed` calls.
    pub fn derive(breaker: BreakerState, availability: f64, completed: u64) -> Health {
        match breaker {
            BreakerState::Open | BreakerState::ForcedOpen => return Health::Down,
            BreakerState::HalfOpen => return Health::Degraded,
            BreakerState::Closed | BreakerState::Disabled => {}
        }
        if completed < HEALTH_MIN_CALLS {
            Health::Healthy
        } else if availability < DOWN_BELOW {
            Health::Down
        } else if availability < DEGRADED_BELOW {
            Health::Degraded
        } else {
            Health::Healthy
        }
    }

    /// `"healthy"`, `"degraded"` or `"down"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Health::Healthy => "healthy",
            Health::Degraded => "degraded",
            Health::Down => "down",
        }
    }
}

/// One integration's metrics at a point in time. Counters are totals since start; the latency
/// quantiles cover the last [`WINDOW`] and are `NaN` (JSON `null`) when it holds no call.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct IntegrationSnapshot {
    /// Integration (provider) name.
    pub name: String,
    /// Logical calls started.
    pub calls: u64,
    /// Logical calls that succeeded.
    pub successes: u64,
    /// Failed logical calls by error kind (every kind present, zeros included).
    pub failures: BTreeMap<&'static str, u64>,
    /// Retries scheduled.
    pub retries: u64,
    /// Calls refused by an open circuit.
    pub short_circuits: u64,
    /// Waits for a rate-limiter permit.
    pub rate_limited_waits: u64,
    /// Calls refused by the rate limiter.
    pub rate_limited_rejections: u64,
    /// Calls refused by the bulkhead.
    pub bulkhead_rejections: u64,
    /// Attempts or calls that ran out of time.
    pub timeouts: u64,
    /// Successes over completed calls (1.0 before any call). Declines and invalid input lower it.
    pub success_rate: f64,
    /// Completed calls that did not fail for a provider reason ([`is_provider_fault`]) over all
    /// completed calls (1.0 before any call).
    pub availability: f64,
    /// Calls whose latency was recorded, since start.
    pub latency_count: u64,
    /// Sum of recorded latencies since start, in milliseconds.
    pub latency_sum_ms: f64,
    /// Length of the window the quantiles cover, in seconds ([`WINDOW`]).
    pub window_secs: u64,
    /// Calls whose latency is in the window.
    pub window_count: u64,
    /// Median latency of a logical call over the window, in milliseconds (`NaN` if none).
    pub p50_ms: f64,
    /// 95th percentile latency over the window, in milliseconds (`NaN` if none).
    pub p95_ms: f64,
    /// 99th percentile latency over the window, in milliseconds (`NaN` if none).
    pub p99_ms: f64,
    /// Largest latency in the window, in milliseconds (`NaN` if none).
    pub max_ms: f64,
    /// Circuit breaker state.
    pub breaker_state: BreakerState,
    /// Health derived from breaker state and availability.
    pub health: Health,
    /// Latency per operation, sorted by name (only operations that were called).
    pub operations: Vec<OperationSnapshot>,
}

/// Latency of one operation of an integration at a point in time.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct OperationSnapshot {
    /// Operation name (`"create_payment_intent"`).
    pub operation: &'static str,
    /// Calls whose latency was recorded, since start.
    pub latency_count: u64,
    /// Sum of recorded latencies since start, in milliseconds.
    pub latency_sum_ms: f64,
    /// `(le, cumulative count)` over [`LATENCY_BUCKETS`] since start, `"+Inf"` last.
    pub latency_buckets: Vec<(&'static str, u64)>,
    /// Calls whose latency is in the window.
    pub window_count: u64,
    /// Median latency over the window, in milliseconds (`NaN` if none).
    pub p50_ms: f64,
    /// 95th percentile latency over the window, in milliseconds (`NaN` if none).
    pub p95_ms: f64,
    /// 99th percentile latency over the window, in milliseconds (`NaN` if none).
    pub p99_ms: f64,
    /// Largest latency in the window, in milliseconds (`NaN` if none).
    pub max_ms: f64,
}

impl OperationSnapshot {
    fn new(operation: &'static str, fixed: FixedSnapshot, w: &WindowCounts) -> Self {
        OperationSnapshot {
            operation,
            latency_count: fixed.count,
            latency_sum_ms: fixed.sum_seconds * 1000.0,
            latency_buckets: fixed.buckets,
            window_count: w.total,
            p50_ms: w.quantile_ms(0.5),
            p95_ms: w.quantile_ms(0.95),
            p99_ms: w.quantile_ms(0.99),
            max_ms: w.max_ms(),
        }
    }
}

/// All integrations' metrics at a point in time, sorted by name.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct MetricsSnapshot {
    /// One entry per integration.
    pub integrations: Vec<IntegrationSnapshot>,
}

impl MetricsSnapshot {
    /// The entry of `name`, if any.
    pub fn get(&self, name: &str) -> Option<&IntegrationSnapshot> {
        self.integrations.iter().find(|i| i.name == name)
    }
}

/// A set of [`IntegrationMetrics`] by name. Cloning shares the set.
#[derive(Clone, Default)]
pub struct MetricsRegistry {
    integrations: Arc<RwLock<BTreeMap<String, Arc<IntegrationMetrics>>>>,
}

impl std::fmt::Debug for MetricsRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<String> = self.read().keys().cloned().collect();
        f.debug_struct("MetricsRegistry")
            .field("integrations", &names)
            .finish()
    }
}

impl MetricsRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// The process-wide registry, used by policies that were not given one.
    pub fn global() -> &'static MetricsRegistry {
        static GLOBAL: OnceLock<MetricsRegistry> = OnceLock::new();
        GLOBAL.get_or_init(MetricsRegistry::new)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, Arc<IntegrationMetrics>>> {
        self.integrations
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The metrics of `name`, created on first use. Every caller asking for the same name shares
    /// one [`IntegrationMetrics`].
    pub fn integration(&self, name: &str) -> Arc<IntegrationMetrics> {
        if let Some(m) = self.read().get(name) {
            return Arc::clone(m);
        }
        let mut map = self
            .integrations
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        Arc::clone(
            map.entry(name.to_owned())
                .or_insert_with(|| Arc::new(IntegrationMetrics::new(name))),
        )
    }

    /// Every integration's snapshot, sorted by name.
    pub fn snapshot(&self) -> MetricsSnapshot {
        let all: Vec<Arc<IntegrationMetrics>> = self.read().values().cloned().collect();
        MetricsSnapshot {
            integrations: all.iter().map(|m| m.snapshot()).collect(),
        }
    }

    /// Every integration's metrics in the Prometheus text exposition format (version 0.0.4), ready
    /// to serve as `text/plain; version=0.0.4` on a scrape endpoint.
    pub fn render_prometheus(&self) -> String {
        prometheus::render(&self.snapshot())
    }
}

#[cfg(test)]
mod tests;
