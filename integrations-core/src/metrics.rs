//! Per-integration counters, latency percentiles and health, read as a snapshot or as Prometheus
//! text.
//!
//! Every [`Policy`](crate::resilience::Policy) records into the [`IntegrationMetrics`] of its
//! provider, found by name in a [`MetricsRegistry`] (the [global](MetricsRegistry::global) one
//! unless the builder was given another). Recording is a handful of relaxed atomic increments plus
//! one uncontended lock around the latency histogram.
//!
//! ```
//! use std::time::Duration;
//! use integrations_core::metrics::{Health, MetricsRegistry};
//! use integrations_core::ErrorKind;
//!
//! let registry = MetricsRegistry::new();
//! let stripe = registry.integration("stripe");
//! stripe.record_call();
//! stripe.record_success(Duration::from_millis(120));
//! stripe.record_call();
//! stripe.record_failure(ErrorKind::Timeout, Duration::from_secs(2));
//!
//! let snapshot = registry.snapshot();
//! let s = snapshot.get("stripe").unwrap();
//! assert_eq!((s.calls, s.successes, s.failures["timeout"]), (2, 1, 1));
//! assert_eq!(s.success_rate, 0.5);
//! assert_eq!(s.health, Health::Healthy); // fewer than HEALTH_MIN_CALLS calls: not judged yet
//! let text = registry.render_prometheus();
//! assert!(text.contains("integration_calls_total{integration=\"stripe\"} 2\n"));
//! ```

mod prometheus;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, RwLock};
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::error::ErrorKind;
use crate::resilience::BreakerState;

/// Largest latency the histogram tells apart (10 minutes, in microseconds); longer ones count as
/// this.
const MAX_TRACKED_MICROS: u64 = 600_000_000;
/// Significant figures kept by the histogram (1 % precision, about 50 KiB per integration).
const SIGNIFICANT_FIGURES: u8 = 2;
/// Availability below which a closed-circuit integration is reported [`Health::Degraded`].
pub const DEGRADED_BELOW: f64 = 0.95;
/// Availability below which an integration is reported [`Health::Down`] even with a closed circuit.
pub const DOWN_BELOW: f64 = 0.5;
/// Calls needed before availability alone may mark an integration degraded or down.
pub const HEALTH_MIN_CALLS: u64 = 10;

const KINDS: usize = ErrorKind::ALL.len();

/// Counters, latency histogram and breaker state of one integration. Cheap to record into from
/// many tasks at once.
pub struct IntegrationMetrics {
    name: String,
    calls: AtomicU64,
    successes: AtomicU64,
    failures: [AtomicU64; KINDS],
    retries: AtomicU64,
    short_circuits: AtomicU64,
    rate_limited_waits: AtomicU64,
    rate_limited_rejections: AtomicU64,
    bulkhead_rejections: AtomicU64,
    timeouts: AtomicU64,
    breaker_state: AtomicU8,
    latency: Mutex<Latency>,
}

struct Latency {
    histogram: Histogram<u64>,
    sum_micros: u64,
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
        IntegrationMetrics {
            name: name.into(),
            calls: AtomicU64::new(0),
            successes: AtomicU64::new(0),
            failures: std::array::from_fn(|_| AtomicU64::new(0)),
            retries: AtomicU64::new(0),
            short_circuits: AtomicU64::new(0),
            rate_limited_waits: AtomicU64::new(0),
            rate_limited_rejections: AtomicU64::new(0),
            bulkhead_rejections: AtomicU64::new(0),
            timeouts: AtomicU64::new(0),
            breaker_state: AtomicU8::new(BreakerState::Closed.as_u8()),
            latency: Mutex::new(Latency {
                histogram: Histogram::new_with_bounds(1, MAX_TRACKED_MICROS, SIGNIFICANT_FIGURES)
                    .expect("constant histogram bounds are valid"),
                sum_micros: 0,
            }),
        }
    }

    /// The integration's name (the provider, e.g. `"stripe"`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A logical call entered the policy.
    pub fn record_call(&self) {
        bump(&self.calls);
    }
    /// A logical call succeeded after `latency` (all attempts and waits included).
    pub fn record_success(&self, latency: Duration) {
        bump(&self.successes);
        self.record_latency(latency);
    }
    /// A logical call failed with `kind` after `latency`.
    pub fn record_failure(&self, kind: ErrorKind, latency: Duration) {
        self.record_rejection(kind);
        self.record_latency(latency);
    }
    /// A logical call was refused before any attempt (circuit open, bulkhead full, rate limit):
    /// counted as a failure of `kind`, without latency.
    pub fn record_rejection(&self, kind: ErrorKind) {
        bump(&self.failures[kind.index()]);
    }
    /// A retry was scheduled.
    pub fn record_retry(&self) {
        bump(&self.retries);
    }
    /// The circuit breaker refused a call.
    pub fn record_short_circuit(&self) {
        bump(&self.short_circuits);
    }
    /// The rate limiter made a call wait for a permit.
    pub fn record_rate_limited_wait(&self) {
        bump(&self.rate_limited_waits);
    }
    /// The rate limiter refused a call (the wait would have been too long).
    pub fn record_rate_limited_rejection(&self) {
        bump(&self.rate_limited_rejections);
    }
    /// The bulkhead refused a call.
    pub fn record_bulkhead_rejection(&self) {
        bump(&self.bulkhead_rejections);
    }
    /// An attempt or a whole call ran out of time.
    pub fn record_timeout(&self) {
        bump(&self.timeouts);
    }
    /// The circuit breaker moved to `state`.
    pub fn set_breaker_state(&self, state: BreakerState) {
        self.breaker_state.store(state.as_u8(), Ordering::Relaxed);
    }

    fn record_latency(&self, latency: Duration) {
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        let mut l = self.latency.lock().unwrap_or_else(PoisonError::into_inner);
        l.histogram
            .saturating_record(micros.clamp(1, MAX_TRACKED_MICROS));
        l.sum_micros = l.sum_micros.saturating_add(micros);
    }

    /// Logical calls started.
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }
    /// Logical calls that succeeded.
    pub fn successes(&self) -> u64 {
        self.successes.load(Ordering::Relaxed)
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

    /// A consistent-enough copy of everything, with percentiles and health computed.
    pub fn snapshot(&self) -> IntegrationSnapshot {
        let (p50, p95, p99, max, sum_micros, count) = {
            let l = self.latency.lock().unwrap_or_else(PoisonError::into_inner);
            let h = &l.histogram;
            let q = |p: f64| {
                if h.is_empty() {
                    0
                } else {
                    h.value_at_quantile(p)
                }
            };
            (q(0.5), q(0.95), q(0.99), h.max(), l.sum_micros, h.len())
        };
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
        let ms = |micros: u64| micros as f64 / 1000.0;
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
            latency_sum_ms: ms(sum_micros),
            p50_ms: ms(p50),
            p95_ms: ms(p95),
            p99_ms: ms(p99),
            max_ms: ms(max),
            breaker_state,
            health: Health::derive(breaker_state, availability, completed),
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

/// One integration's metrics at a point in time. Counters are totals since start.
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
    /// Calls whose latency was recorded.
    pub latency_count: u64,
    /// Sum of recorded latencies, in milliseconds.
    pub latency_sum_ms: f64,
    /// Median latency of a logical call, in milliseconds.
    pub p50_ms: f64,
    /// 95th percentile latency, in milliseconds.
    pub p95_ms: f64,
    /// 99th percentile latency, in milliseconds.
    pub p99_ms: f64,
    /// Largest latency, in milliseconds.
    pub max_ms: f64,
    /// Circuit breaker state.
    pub breaker_state: BreakerState,
    /// Health derived from breaker state and availability.
    pub health: Health,
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
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn registry_shares_one_metrics_per_name() {
        let r = MetricsRegistry::new();
        let a = r.integration("stripe");
        let b = r.clone().integration("stripe");
        assert!(Arc::ptr_eq(&a, &b));
        assert!(!Arc::ptr_eq(&a, &r.integration("sendgrid")));
        assert!(std::ptr::eq(
            MetricsRegistry::global(),
            MetricsRegistry::global()
        ));
        let names: Vec<_> = r
            .snapshot()
            .integrations
            .into_iter()
            .map(|s| s.name)
            .collect();
        assert_eq!(names, ["sendgrid", "stripe"]);
    }

    #[test]
    fn percentiles_and_rates() {
        let m = IntegrationMetrics::new("ses");
        for i in 1..=100 {
            m.record_call();
            m.record_success(ms(i));
        }
        for _ in 0..5 {
            m.record_call();
            m.record_failure(ErrorKind::Declined, ms(1));
        }
        m.record_call();
        m.record_rejection(ErrorKind::CircuitOpen);
        let s = m.snapshot();
        assert_eq!((s.calls, s.successes), (106, 100));
        assert_eq!(s.failures["declined"], 5);
        assert_eq!(s.failures["circuit_open"], 1);
        assert_eq!(s.failures.len(), ErrorKind::ALL.len());
        assert!((s.success_rate - 100.0 / 106.0).abs() < 1e-9);
        // Declines are the caller's business; only the circuit-open rejection is a provider fault.
        assert!((s.availability - 105.0 / 106.0).abs() < 1e-9);
        assert_eq!(s.latency_count, 105);
        // 105 latencies: 1 ms six times, then 2..=100 ms; 1 % precision of the histogram.
        assert!((s.p50_ms - 48.0).abs() <= 0.5, "{}", s.p50_ms);
        assert!((s.p95_ms - 95.0).abs() <= 1.0, "{}", s.p95_ms);
        assert!((s.p99_ms - 99.0).abs() <= 1.0, "{}", s.p99_ms);
        assert!((s.max_ms - 100.0).abs() <= 1.0, "{}", s.max_ms);
        assert!(
            (s.latency_sum_ms - 5055.0).abs() < 1e-6,
            "{}",
            s.latency_sum_ms
        );
        assert_eq!(s.health, Health::Healthy);
    }

    #[test]
    fn health_follows_breaker_then_availability() {
        assert_eq!(Health::derive(BreakerState::Open, 1.0, 1000), Health::Down);
        assert_eq!(
            Health::derive(BreakerState::ForcedOpen, 1.0, 1000),
            Health::Down
        );
        assert_eq!(
            Health::derive(BreakerState::HalfOpen, 1.0, 1000),
            Health::Degraded
        );
        assert_eq!(
            Health::derive(BreakerState::Closed, 0.0, 9),
            Health::Healthy
        );
        assert_eq!(Health::derive(BreakerState::Closed, 0.4, 10), Health::Down);
        assert_eq!(
            Health::derive(BreakerState::Closed, 0.9, 10),
            Health::Degraded
        );
        assert_eq!(
            Health::derive(BreakerState::Disabled, 0.99, 10),
            Health::Healthy
        );

        let m = IntegrationMetrics::new("sns");
        m.set_breaker_state(BreakerState::Open);
        assert_eq!(m.breaker_state(), BreakerState::Open);
        assert_eq!(m.snapshot().health, Health::Down);
    }

    #[test]
    fn empty_metrics_are_healthy_and_zero() {
        let s = IntegrationMetrics::new("x").snapshot();
        assert_eq!((s.calls, s.latency_count), (0, 0));
        assert_eq!((s.success_rate, s.availability, s.p99_ms), (1.0, 1.0, 0.0));
        assert_eq!(s.health, Health::Healthy);
    }

    #[test]
    fn snapshot_serialises_to_json() {
        let r = MetricsRegistry::new();
        let m = r.integration("stripe");
        m.record_call();
        m.record_failure(ErrorKind::RateLimited, ms(3));
        let v = serde_json::to_value(r.snapshot()).unwrap();
        let s = &v["integrations"][0];
        assert_eq!(s["name"], "stripe");
        assert_eq!(s["failures"]["rate_limited"], 1);
        assert_eq!(s["breaker_state"], "closed");
        assert_eq!(s["health"], "healthy");
        assert_eq!(s["success_rate"], 0.0);
        assert!(s["p95_ms"].is_f64());
    }

    /// Checks every line against the text exposition grammar we emit, and that each sample's
    /// family was declared with `# TYPE` before it.
    fn assert_valid_exposition(text: &str) {
        let mut declared: Vec<(String, String)> = Vec::new();
        assert!(text.ends_with('\n'));
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# HELP ") {
                let (name, help) = rest.split_once(' ').expect("help text");
                assert!(!help.is_empty() && is_metric_name(name), "{line}");
            } else if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').expect("type");
                assert!(["counter", "gauge", "summary"].contains(&kind), "{line}");
                assert!(
                    !declared.iter().any(|(n, _)| n == name),
                    "declared twice: {line}"
                );
                declared.push((name.to_owned(), kind.to_owned()));
            } else {
                let (series, value) = line.rsplit_once(' ').expect("value");
                value
                    .parse::<f64>()
                    .unwrap_or_else(|_| panic!("value in {line}"));
                let (name, labels) = series.split_once('{').expect("labels");
                assert!(is_metric_name(name) && labels.ends_with('}'), "{line}");
                let (family, kind) = declared.last().expect("sample before TYPE");
                let ok = name == family
                    || (kind == "summary"
                        && (name == format!("{family}_sum") || name == format!("{family}_count")));
                assert!(ok, "{line} outside its family {family}");
                if kind == "counter" {
                    assert!(name.ends_with("_total"), "{line}");
                }
                for pair in labels.trim_end_matches('}').split("\",") {
                    let (label, v) = pair.split_once("=\"").expect("label=\"value\"");
                    assert!(is_metric_name(label), "{line}");
                    assert!(!v.trim_end_matches('"').contains('\n'), "{line}");
                }
            }
        }
    }

    fn is_metric_name(s: &str) -> bool {
        !s.is_empty()
            && !s.starts_with(|c: char| c.is_ascii_digit())
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    }

    #[test]
    fn prometheus_text_is_valid_and_complete() {
        let r = MetricsRegistry::new();
        let m = r.integration("stripe");
        for _ in 0..3 {
            m.record_call();
            m.record_success(ms(250));
        }
        m.record_call();
        m.record_failure(ErrorKind::Timeout, ms(2000));
        m.record_retry();
        m.record_timeout();
        m.set_breaker_state(BreakerState::HalfOpen);
        r.integration("sendgrid");
        let text = r.render_prometheus();
        assert_valid_exposition(&text);
        for expected in [
            "# TYPE integration_calls_total counter\n",
            "integration_calls_total{integration=\"stripe\"} 4\n",
            "integration_calls_total{integration=\"sendgrid\"} 0\n",
            "integration_successes_total{integration=\"stripe\"} 3\n",
            "integration_retries_total{integration=\"stripe\"} 1\n",
            "integration_timeouts_total{integration=\"stripe\"} 1\n",
            "integration_failures_total{integration=\"stripe\",kind=\"timeout\"} 1\n",
            "integration_failures_total{integration=\"stripe\",kind=\"declined\"} 0\n",
            "# TYPE integration_latency_seconds summary\n",
            "integration_latency_seconds{integration=\"stripe\",quantile=\"0.5\"} 0.25",
            "integration_latency_seconds_count{integration=\"stripe\"} 4\n",
            "integration_latency_seconds_sum{integration=\"stripe\"} 2.75\n",
            "# TYPE integration_breaker_state gauge\n",
            "integration_breaker_state{integration=\"stripe\"} 2\n",
            "integration_health{integration=\"stripe\"} 1\n",
        ] {
            assert!(text.contains(expected), "missing {expected:?} in\n{text}");
        }
        let p99 = text
            .lines()
            .find(|l| {
                l.starts_with(
                    "integration_latency_seconds{integration=\"stripe\",quantile=\"0.99\"}",
                )
            })
            .and_then(|l| l.rsplit_once(' '))
            .map(|(_, v)| v.parse::<f64>().unwrap())
            .unwrap();
        assert!((p99 - 2.0).abs() < 0.02, "{p99}");
    }

    #[test]
    fn prometheus_label_values_are_escaped() {
        let r = MetricsRegistry::new();
        r.integration("we\"ird\\name\nx");
        let text = r.render_prometheus();
        assert!(
            text.contains("integration_calls_total{integration=\"we\\\"ird\\\\name\\nx\"} 0\n"),
            "{text}"
        );
        assert_valid_exposition(&text);
    }
}
