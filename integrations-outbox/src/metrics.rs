//! [`OutboxMetrics`]: what the dispatcher delivered, failed and how long delivery took, plus the
//! store's [`OutboxBacklog`] (and, when observed, its [`OutboxCounts`]) as gauges; read as Prometheus text and (feature `metrics`) recorded
//! through the [`metrics`](https://docs.rs/metrics) facade under the same names.
//!
//! | series | type | meaning |
//! |---|---|---|
//! | `outbox_attempts_total{kind}` | counter | deliveries attempted (a handler ran to an end) |
//! | `outbox_deliveries_total{kind}` | counter | jobs delivered and marked done |
//! | `outbox_failures_total{kind,outcome}` | counter | failed attempts: `retried` or `dead_lettered` |
//! | `outbox_lease_lost_total{kind}` | counter | results the store refused: the lease had passed to another worker |
//! | `outbox_store_errors_total` | counter | claims or results the store failed to record |
//! | `outbox_delivery_seconds{kind}` | histogram | job recorded → delivered and marked done ([`DELIVERY_BUCKETS`]) |
//! | `outbox_jobs{state}` | gauge | jobs `pending`, `leased`, `dead` (dead letters); `done` only once full counts were observed |
//! | `outbox_oldest_pending_age_seconds` | gauge | how long the oldest due job has waited for a worker (0 with none) |
//!
//! The gauges are what was last given to [`OutboxMetrics::observe_backlog`] or
//! [`OutboxMetrics::observe_counts`] (or read by [`OutboxMetrics::refresh`], or by the dispatcher
//! every [`counts_interval`](crate::DispatcherBuilder::counts_interval)); counting is a query on
//! the store, so nothing reads it per scrape. `refresh` and the dispatcher read the
//! [backlog](OutboxStore::backlog), whose cost follows the unfinished jobs; the `done` gauge
//! appears only when a caller observes full [counts](OutboxStore::counts), which read every done
//! job and is worth asking for only now and then.
//!
//! ```
//! use std::sync::Arc;
//! use integrations_outbox::{InMemoryOutbox, NewJob, OutboxMetrics, OutboxStore};
//!
//! # tokio_test_block_on(async {
//! let store = InMemoryOutbox::new();
//! store.record_event("evt_1", vec![NewJob::new("email", serde_json::json!({}))]).await?;
//! let metrics = OutboxMetrics::new();
//! let backlog = metrics.refresh(&store).await?;
//! assert_eq!(backlog.pending, 1);
//! let text = metrics.render_prometheus();
//! assert!(text.contains("outbox_jobs{state=\"pending\"} 1\n"));
//! # Ok::<(), integrations_core::Error>(())
//! # }).unwrap();
//! # fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
//! #     tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f)
//! # }
//! ```

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, RwLock};
use std::time::Duration;

use integrations_core::Result;
use integrations_core::metrics::{Bound, FixedHistogram, TextWriter};

use super::store::OutboxStore;
use super::types::{OutboxBacklog, OutboxCounts};

const fn b(micros: u64, le: &'static str) -> Bound {
    Bound { micros, le }
}

/// Bucket bounds of `outbox_delivery_seconds`: 100 ms to 4 h (plus `+Inf`), from a delivery on
/// the first attempt to one after the default eight attempts with backoff up to 5 minutes.
pub const DELIVERY_BUCKETS: &[Bound] = &[
    b(100_000, "0.1"),
    b(500_000, "0.5"),
    b(1_000_000, "1"),
    b(5_000_000, "5"),
    b(10_000_000, "10"),
    b(30_000_000, "30"),
    b(60_000_000, "60"),
    b(300_000_000, "300"),
    b(900_000_000, "900"),
    b(3_600_000_000, "3600"),
    b(14_400_000_000, "14400"),
];

pub(crate) const ATTEMPTS: &str = "outbox_attempts_total";
pub(crate) const DELIVERIES: &str = "outbox_deliveries_total";
pub(crate) const FAILURES: &str = "outbox_failures_total";
pub(crate) const LEASE_LOST: &str = "outbox_lease_lost_total";
pub(crate) const STORE_ERRORS: &str = "outbox_store_errors_total";
pub(crate) const DELIVERY: &str = "outbox_delivery_seconds";
pub(crate) const JOBS: &str = "outbox_jobs";
pub(crate) const OLDEST_PENDING: &str = "outbox_oldest_pending_age_seconds";

/// How one delivery attempt ended, as the dispatcher saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ended {
    /// Delivered and marked done, `latency` after the job was recorded.
    Delivered {
        latency: Duration,
    },
    Retried,
    DeadLettered,
    LeaseLost,
    StoreError,
}

#[derive(Debug)]
struct KindMetrics {
    attempts: AtomicU64,
    delivered: AtomicU64,
    retried: AtomicU64,
    dead_lettered: AtomicU64,
    lease_lost: AtomicU64,
    delivery: FixedHistogram,
}

/// Delivery counters and latency per job kind, and the last observed [`OutboxBacklog`]. Shared
/// by the dispatchers of a process ([`OutboxMetrics::global`] unless a builder was given
/// another).
#[derive(Debug, Default)]
pub struct OutboxMetrics {
    kinds: RwLock<BTreeMap<String, Arc<KindMetrics>>>,
    store_errors: AtomicU64,
    gauges: Mutex<Gauges>,
}

/// What the gauges show: the last backlog observed, and the last full counts, if any.
#[derive(Debug, Default, Clone, Copy)]
struct Gauges {
    backlog: Option<OutboxBacklog>,
    counts: Option<OutboxCounts>,
}

fn load(c: &AtomicU64) -> u64 {
    c.load(Ordering::Relaxed)
}

impl OutboxMetrics {
    /// Empty metrics, not shared with anything.
    pub fn new() -> Self {
        Self::default()
    }

    /// The process-wide metrics, used by dispatchers that were not given any.
    pub fn global() -> Arc<OutboxMetrics> {
        static GLOBAL: OnceLock<Arc<OutboxMetrics>> = OnceLock::new();
        Arc::clone(GLOBAL.get_or_init(|| Arc::new(OutboxMetrics::new())))
    }

    fn kind(&self, kind: &str) -> Arc<KindMetrics> {
        if let Some(k) = self
            .kinds
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(kind)
        {
            return Arc::clone(k);
        }
        let mut kinds = self.kinds.write().unwrap_or_else(PoisonError::into_inner);
        Arc::clone(kinds.entry(kind.to_owned()).or_insert_with(|| {
            Arc::new(KindMetrics {
                attempts: AtomicU64::new(0),
                delivered: AtomicU64::new(0),
                retried: AtomicU64::new(0),
                dead_lettered: AtomicU64::new(0),
                lease_lost: AtomicU64::new(0),
                delivery: FixedHistogram::new(DELIVERY_BUCKETS),
            })
        }))
    }

    /// Counts one attempt at a job of `kind` that ended as `ended`.
    pub(crate) fn record(&self, kind: &str, ended: Ended) {
        let k = self.kind(kind);
        let bump = |c: &AtomicU64| {
            c.fetch_add(1, Ordering::Relaxed);
        };
        bump(&k.attempts);
        match ended {
            Ended::Delivered { latency } => {
                bump(&k.delivered);
                k.delivery.record(latency);
            }
            Ended::Retried => bump(&k.retried),
            Ended::DeadLettered => bump(&k.dead_lettered),
            Ended::LeaseLost => bump(&k.lease_lost),
            Ended::StoreError => bump(&self.store_errors),
        }
        #[cfg(feature = "metrics")]
        facade::record(kind, ended);
    }

    /// Counts a claim the store failed.
    pub(crate) fn record_store_error(&self) {
        self.store_errors.fetch_add(1, Ordering::Relaxed);
        #[cfg(feature = "metrics")]
        metrics::counter!(STORE_ERRORS).increment(1);
    }

    fn gauges(&self) -> std::sync::MutexGuard<'_, Gauges> {
        self.gauges.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Keeps `backlog` for the gauges (and sets the facade's gauges): pending, leased, dead and
    /// the oldest pending age. A `done` gauge from earlier full counts stays as it was.
    pub fn observe_backlog(&self, backlog: &OutboxBacklog) {
        self.gauges().backlog = Some(*backlog);
        #[cfg(feature = "metrics")]
        facade::backlog(backlog);
    }

    /// Keeps `counts` for the gauges (and sets the facade's gauges), the `done` jobs included.
    pub fn observe_counts(&self, counts: &OutboxCounts) {
        {
            let mut g = self.gauges();
            g.backlog = Some((*counts).into());
            g.counts = Some(*counts);
        }
        #[cfg(feature = "metrics")]
        facade::counts(counts);
    }

    /// Reads `store`'s [backlog](OutboxStore::backlog) and [observes](Self::observe_backlog) it.
    ///
    /// # Errors
    /// What [`OutboxStore::backlog`] returns.
    pub async fn refresh(&self, store: &dyn OutboxStore) -> Result<OutboxBacklog> {
        let backlog = store.backlog().await?;
        self.observe_backlog(&backlog);
        Ok(backlog)
    }

    /// The backlog last observed (by either `observe_*`), if any.
    pub fn last_backlog(&self) -> Option<OutboxBacklog> {
        self.gauges().backlog
    }

    /// The full counts last observed, if any.
    pub fn last_counts(&self) -> Option<OutboxCounts> {
        self.gauges().counts
    }

    /// Everything in the Prometheus text exposition format (version 0.0.4).
    pub fn render_prometheus(&self) -> String {
        let kinds: Vec<(String, Arc<KindMetrics>)> = self
            .kinds
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|(k, m)| (k.clone(), Arc::clone(m)))
            .collect();
        let mut w = TextWriter::new();
        type Get = fn(&KindMetrics) -> u64;
        let per_kind: [(&str, &str, Get); 3] = [
            (
                ATTEMPTS,
                "Delivery attempts that ran to an end, whatever the outcome.",
                |k| load(&k.attempts),
            ),
            (DELIVERIES, "Jobs delivered and marked done.", |k| {
                load(&k.delivered)
            }),
            (
                LEASE_LOST,
                "Results the store refused because the lease had passed to another worker.",
                |k| load(&k.lease_lost),
            ),
        ];
        for (name, help, get) in per_kind {
            w.header(name, "counter", help);
            for (kind, k) in &kinds {
                w.sample(name, &[("kind", kind)], get(k));
            }
        }
        w.header(
            FAILURES,
            "counter",
            "Failed delivery attempts: retried later, or dead-lettered.",
        );
        for (kind, k) in &kinds {
            w.sample(
                FAILURES,
                &[("kind", kind), ("outcome", "retried")],
                load(&k.retried),
            );
            w.sample(
                FAILURES,
                &[("kind", kind), ("outcome", "dead_lettered")],
                load(&k.dead_lettered),
            );
        }
        w.header(
            STORE_ERRORS,
            "counter",
            "Claims or results the store failed to record.",
        );
        w.sample(STORE_ERRORS, &[], load(&self.store_errors));
        w.header(
            DELIVERY,
            "histogram",
            "Time from recording a job to delivering it and marking it done.",
        );
        for (kind, k) in &kinds {
            let h = k.delivery.snapshot();
            w.histogram(DELIVERY, &[("kind", kind)], &h.buckets, h.sum_seconds);
        }
        let gauges = *self.gauges();
        if let Some(c) = gauges.backlog {
            w.header(JOBS, "gauge", "Outbox jobs by state (dead: dead letters).");
            let done = gauges.counts.map(|full| ("done", full.done));
            for (state, n) in [
                Some(("pending", c.pending)),
                Some(("leased", c.leased)),
                done,
                Some(("dead", c.dead)),
            ]
            .into_iter()
            .flatten()
            {
                w.sample(JOBS, &[("state", state)], n);
            }
            w.header(
                OLDEST_PENDING,
                "gauge",
                "How long the oldest due pending job has waited for a worker (0 with none).",
            );
            w.sample(OLDEST_PENDING, &[], oldest_secs(&c));
        }
        w.finish()
    }
}

fn oldest_secs(c: &OutboxBacklog) -> f64 {
    c.oldest_pending_age.map_or(0.0, |d| d.as_secs_f64())
}

/// Feature `metrics`: the same series through the facade.
#[cfg(feature = "metrics")]
mod facade {
    use super::{
        ATTEMPTS, DELIVERIES, DELIVERY, Ended, FAILURES, JOBS, LEASE_LOST, OLDEST_PENDING,
        OutboxBacklog, OutboxCounts, STORE_ERRORS, oldest_secs,
    };

    pub(super) fn record(kind: &str, ended: Ended) {
        let kind = kind.to_owned();
        metrics::counter!(ATTEMPTS, "kind" => kind.clone()).increment(1);
        match ended {
            Ended::Delivered { latency } => {
                metrics::counter!(DELIVERIES, "kind" => kind.clone()).increment(1);
                metrics::histogram!(DELIVERY, "kind" => kind).record(latency.as_secs_f64());
            }
            Ended::Retried => {
                metrics::counter!(FAILURES, "kind" => kind, "outcome" => "retried").increment(1)
            }
            Ended::DeadLettered => {
                metrics::counter!(FAILURES, "kind" => kind, "outcome" => "dead_lettered")
                    .increment(1)
            }
            Ended::LeaseLost => metrics::counter!(LEASE_LOST, "kind" => kind).increment(1),
            Ended::StoreError => metrics::counter!(STORE_ERRORS).increment(1),
        }
    }

    pub(super) fn backlog(c: &OutboxBacklog) {
        for (state, n) in [
            ("pending", c.pending),
            ("leased", c.leased),
            ("dead", c.dead),
        ] {
            metrics::gauge!(JOBS, "state" => state).set(n as f64);
        }
        metrics::gauge!(OLDEST_PENDING).set(oldest_secs(c));
    }

    pub(super) fn counts(c: &OutboxCounts) {
        backlog(&(*c).into());
        metrics::gauge!(JOBS, "state" => "done").set(c.done as f64);
    }
}

#[cfg(test)]
#[path = "metrics_tests.rs"]
mod tests;
