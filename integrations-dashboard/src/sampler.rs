//! [`Sampler`]: what happened per integration **since the previous sample**, and the outbox's
//! depth, read from core's [`MetricsRegistry`] (which counts since the process started) and an
//! [`OutboxStore`].

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use integrations_core::Result;
use integrations_core::metrics::MetricsRegistry;
use integrations_outbox::{OutboxCounter, OutboxCounts, OutboxStore};

/// One integration's activity between two samples.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct IntegrationPoint {
    /// The integration's name in the registry.
    pub name: String,
    /// Calls started in the interval.
    pub calls: u64,
    /// Calls that succeeded in the interval.
    pub successes: u64,
    /// Calls that failed in the interval.
    pub failures: u64,
    /// Latencies recorded in the interval.
    pub latency_count: u64,
    /// Their sum, in milliseconds.
    pub latency_sum_ms: f64,
    /// The registry's p50 at the sample, in milliseconds; `NaN` when it has none.
    pub p50_ms: f64,
    /// The registry's p99 at the sample, in milliseconds; `NaN` when it has none.
    pub p99_ms: f64,
}

impl IntegrationPoint {
    /// The p50 to chart for this interval: `None` when no latency was recorded in it or the
    /// registry gave no number (`NaN`); never a made-up 0.
    pub fn p50(&self) -> Option<f64> {
        self.quantile(self.p50_ms)
    }

    /// The p99 to chart for this interval, under the same rule as [`p50`](Self::p50).
    pub fn p99(&self) -> Option<f64> {
        self.quantile(self.p99_ms)
    }

    fn quantile(&self, v: f64) -> Option<f64> {
        (self.latency_count > 0 && v.is_finite()).then_some(v)
    }
}

/// One sample: per integration what changed since the previous one (integrations that did
/// nothing have no entry), and the outbox's counts.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Sample {
    /// When it was taken, unix milliseconds.
    pub at_ms: i64,
    /// The integrations active in the interval, by name.
    pub integrations: Vec<IntegrationPoint>,
    /// The outbox's counts; `None` without an outbox or when reading them failed.
    pub outbox: Option<OutboxCounts>,
}

impl Sample {
    /// `name`'s activity in this interval, if it had any.
    pub fn integration(&self, name: &str) -> Option<&IntegrationPoint> {
        self.integrations.iter().find(|p| p.name == name)
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct Seen {
    calls: u64,
    successes: u64,
    failures: u64,
    latency_count: u64,
    latency_sum_ms: f64,
}

/// Turns a registry's running totals into per-interval [`Sample`]s.
pub struct Sampler {
    registry: MetricsRegistry,
    outbox: Option<OutboxCounter>,
    seen: HashMap<String, Seen>,
}

impl fmt::Debug for Sampler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sampler")
            .field("registry", &self.registry)
            .field("outbox", &self.outbox.is_some())
            .finish_non_exhaustive()
    }
}

impl Sampler {
    /// Samples `registry` (and `outbox`, when given). The first sample counts everything the
    /// registry holds, which in a fresh process is what happened since start. The outbox is
    /// read through an [`OutboxCounter`]: its backlog on every sample, its done jobs and event
    /// records once a minute.
    pub fn new(registry: MetricsRegistry, outbox: Option<Arc<dyn OutboxStore>>) -> Self {
        Sampler {
            registry,
            outbox: outbox.map(OutboxCounter::new),
            seen: HashMap::new(),
        }
    }

    /// Takes one sample stamped `at_ms` (unix milliseconds).
    ///
    /// # Errors
    /// The outbox's failure to count its jobs. The integrations' deltas are then lost for
    /// neither this nor the next sample: they are counted again next time.
    pub async fn sample_at(&mut self, at_ms: i64) -> Result<Sample> {
        let outbox = match &self.outbox {
            Some(o) => Some(o.read().await?),
            None => None,
        };
        Ok(self.sample_metrics(at_ms, outbox))
    }

    /// Like [`sample_at`](Self::sample_at), with the outbox's counts read by the caller (or
    /// `None` when they could not be read).
    pub fn sample_metrics(&mut self, at_ms: i64, outbox: Option<OutboxCounts>) -> Sample {
        let snapshot = self.registry.snapshot();
        let mut integrations = Vec::new();
        for s in &snapshot.integrations {
            let failures: u64 = s.failures.values().sum();
            let now = Seen {
                calls: s.calls,
                successes: s.successes,
                failures,
                latency_count: s.latency_count,
                latency_sum_ms: s.latency_sum_ms,
            };
            let before = self.seen.insert(s.name.clone(), now).unwrap_or_default();
            // Counters only grow; if one shrank the registry was replaced: count it anew.
            let fresh = now.calls < before.calls || now.latency_count < before.latency_count;
            let before = if fresh { Seen::default() } else { before };
            let p = IntegrationPoint {
                name: s.name.clone(),
                calls: now.calls.saturating_sub(before.calls),
                successes: now.successes.saturating_sub(before.successes),
                failures: now.failures.saturating_sub(before.failures),
                latency_count: now.latency_count.saturating_sub(before.latency_count),
                latency_sum_ms: (now.latency_sum_ms - before.latency_sum_ms).max(0.0),
                p50_ms: s.p50_ms,
                p99_ms: s.p99_ms,
            };
            if p.calls > 0 || p.successes > 0 || p.failures > 0 || p.latency_count > 0 {
                integrations.push(p);
            }
        }
        Sample {
            at_ms,
            integrations,
            outbox,
        }
    }
}

/// Now, unix milliseconds.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use integrations_core::ErrorKind;
    use integrations_outbox::InMemoryOutbox;

    use super::*;

    #[tokio::test]
    async fn samples_are_deltas_and_idle_integrations_have_no_entry() {
        let registry = MetricsRegistry::new();
        let outbox: Arc<dyn OutboxStore> = Arc::new(InMemoryOutbox::new());
        let mut s = Sampler::new(registry.clone(), Some(outbox));
        let m = registry.integration("stripe");
        m.record_call();
        m.record_success(Duration::from_millis(100));
        m.record_call();
        m.record_failure(ErrorKind::Timeout, Duration::from_millis(300));
        let first = s.sample_at(1_000).await.unwrap();
        let p = first.integration("stripe").unwrap();
        assert_eq!((p.calls, p.successes, p.failures), (2, 1, 1));
        assert_eq!(p.latency_count, 2);
        assert!(
            (p.latency_sum_ms - 400.0).abs() < 1.0,
            "{}",
            p.latency_sum_ms
        );
        assert!(p.p50().is_some() && p.p99().is_some());
        assert_eq!(first.outbox, Some(OutboxCounts::default()));

        let idle = s.sample_at(2_000).await.unwrap();
        assert!(idle.integration("stripe").is_none(), "{idle:?}");

        m.record_call();
        m.record_success(Duration::from_millis(50));
        let third = s.sample_at(3_000).await.unwrap();
        let p = third.integration("stripe").unwrap();
        assert_eq!(
            (p.calls, p.successes, p.failures, p.latency_count),
            (1, 1, 0, 1)
        );
        assert_eq!(third.at_ms, 3_000);
    }

    #[test]
    fn nan_and_empty_intervals_chart_no_quantile() {
        let mut p = IntegrationPoint {
            name: "x".into(),
            calls: 1,
            successes: 1,
            failures: 0,
            latency_count: 1,
            latency_sum_ms: 5.0,
            p50_ms: f64::NAN,
            p99_ms: 7.0,
        };
        assert_eq!(p.p50(), None);
        assert_eq!(p.p99(), Some(7.0));
        p.latency_count = 0;
        assert_eq!(p.p99(), None, "no latency in the interval: no point");
    }

    #[test]
    fn a_replaced_registry_is_counted_anew() {
        let registry = MetricsRegistry::new();
        let m = registry.integration("a");
        for _ in 0..3 {
            m.record_call();
            m.record_success(Duration::from_millis(1));
        }
        let mut s = Sampler::new(registry, None);
        assert_eq!(s.sample_metrics(1, None).integrations[0].calls, 3);
        let fresh = MetricsRegistry::new();
        fresh.integration("a").record_call();
        s.registry = fresh;
        assert_eq!(s.sample_metrics(2, None).integrations[0].calls, 1);
    }
}
