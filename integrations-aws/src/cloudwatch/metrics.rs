//! CloudWatch `PutMetricData` (query protocol), batched, and publishing core's metrics snapshot.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::SystemTime;

use integrations_core::metrics::{IntegrationSnapshot, MetricsSnapshot};
use integrations_core::resilience::BreakerState;
use integrations_core::{Error, Result};

use super::iso8601;
use crate::client::AwsClient;
use crate::config::{AwsConfig, Service};

const VERSION: &str = "2010-08-01";
/// Most metric data in one `PutMetricData` call.
pub const MAX_DATA_PER_CALL: usize = 1000;
/// Largest `PutMetricData` request body, in bytes.
pub const MAX_REQUEST_BYTES: usize = 1024 * 1024;

/// One data point.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct MetricDatum {
    /// Metric name.
    pub name: String,
    /// Value (finite).
    pub value: f64,
    /// CloudWatch unit (`Count`, `Milliseconds`, `Percent`, `None`, …).
    pub unit: &'static str,
    /// Dimensions (at most 30).
    pub dimensions: Vec<(String, String)>,
    /// Timestamp (default: when CloudWatch receives it).
    pub timestamp: Option<SystemTime>,
}

impl MetricDatum {
    /// A datum.
    pub fn new(name: impl Into<String>, value: f64, unit: &'static str) -> Self {
        MetricDatum {
            name: name.into(),
            value,
            unit,
            dimensions: Vec::new(),
            timestamp: None,
        }
    }
    /// Adds a dimension.
    #[must_use]
    pub fn dimension(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.dimensions.push((name.into(), value.into()));
        self
    }
    /// Sets the timestamp.
    #[must_use]
    pub fn at(mut self, t: SystemTime) -> Self {
        self.timestamp = Some(t);
        self
    }

    fn params(&self, n: usize) -> Result<Vec<(String, String)>> {
        if self.name.is_empty() || !self.value.is_finite() || self.dimensions.len() > 30 {
            return Err(Error::invalid_input(
                "metric_data",
                format!(
                    "`{}`: needs a name, a finite value and at most 30 dimensions",
                    self.name
                ),
            ));
        }
        let base = format!("MetricData.member.{n}");
        let mut p = vec![
            (format!("{base}.MetricName"), self.name.clone()),
            (format!("{base}.Value"), format_value(self.value)),
            (format!("{base}.Unit"), self.unit.to_owned()),
        ];
        if let Some(t) = self.timestamp {
            p.push((format!("{base}.Timestamp"), iso8601(t)));
        }
        for (i, (k, v)) in self.dimensions.iter().enumerate() {
            p.push((
                format!("{base}.Dimensions.member.{}.Name", i + 1),
                k.clone(),
            ));
            p.push((
                format!("{base}.Dimensions.member.{}.Value", i + 1),
                v.clone(),
            ));
        }
        Ok(p)
    }
}

fn format_value(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.0}")
    } else {
        v.to_string()
    }
}

/// Publishes metric data to CloudWatch.
#[derive(Debug)]
pub struct CloudWatchMetrics {
    client: AwsClient,
    previous: Mutex<HashMap<(String, &'static str), u64>>,
}

impl CloudWatchMetrics {
    /// A client for `config`'s region, credentials and CloudWatch endpoint.
    pub fn new(config: &AwsConfig) -> Self {
        CloudWatchMetrics {
            client: AwsClient::new(config, Service::CloudWatch),
            previous: Mutex::new(HashMap::new()),
        }
    }

    /// Puts `data` under `namespace` in as few calls as the limits allow (1000 data and 1 MiB
    /// per call); returns the number of calls made.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for an empty namespace or an invalid datum; the mapped AWS error
    /// of the first failing call (earlier calls stay applied).
    pub async fn put_metric_data(&self, namespace: &str, data: &[MetricDatum]) -> Result<usize> {
        if namespace.is_empty() || namespace.starts_with("AWS/") {
            return Err(Error::invalid_input(
                "namespace",
                "must be non-empty and not start with `AWS/`",
            ));
        }
        let mut calls = 0;
        for chunk in chunk_params(namespace, data)? {
            self.client.query("PutMetricData", VERSION, &chunk).await?;
            calls += 1;
        }
        Ok(calls)
    }

    /// Publishes core's metrics snapshot under `namespace`, one set of data per integration
    /// (dimension `Integration`): `Calls`, `Successes`, `Failures` (also per `ErrorKind`),
    /// `Retries`, `ShortCircuits`, `Timeouts` and `RateLimited` as counts *since the previous
    /// call* (totals on the first), `SuccessRate` and `Availability` in percent, `LatencyP50`,
    /// `LatencyP95`, `LatencyP99` and `LatencyMax` in milliseconds over core's 5-minute window
    /// (left out when no call finished in it), and `CircuitOpen` (0 or 1).
    /// Returns the number of calls made.
    ///
    /// # Errors
    /// See [`CloudWatchMetrics::put_metric_data`].
    pub async fn publish_snapshot(
        &self,
        namespace: &str,
        snapshot: &MetricsSnapshot,
    ) -> Result<usize> {
        let now = SystemTime::now();
        let data: Vec<MetricDatum> = {
            let mut prev = self.previous.lock().unwrap_or_else(PoisonError::into_inner);
            snapshot
                .integrations
                .iter()
                .flat_map(|i| snapshot_data(i, &mut prev, now))
                .collect()
        };
        self.put_metric_data(namespace, &data).await
    }
}

fn chunk_params(namespace: &str, data: &[MetricDatum]) -> Result<Vec<Vec<(String, String)>>> {
    let mut out = Vec::new();
    let mut current: Vec<(String, String)> = Vec::new();
    let (mut count, mut bytes) = (0usize, 0usize);
    for d in data {
        let size: usize = d
            .params(1)?
            .iter()
            .map(|(k, v)| k.len() + v.len() * 3 + 2)
            .sum();
        if count == MAX_DATA_PER_CALL || (count > 0 && bytes + size > MAX_REQUEST_BYTES - 4096) {
            out.push(std::mem::take(&mut current));
            count = 0;
            bytes = 0;
        }
        if current.is_empty() {
            current.push(("Namespace".to_owned(), namespace.to_owned()));
        }
        count += 1;
        bytes += size;
        current.extend(d.params(count)?);
    }
    if !current.is_empty() {
        out.push(current);
    }
    Ok(out)
}

fn snapshot_data(
    i: &IntegrationSnapshot,
    prev: &mut HashMap<(String, &'static str), u64>,
    now: SystemTime,
) -> Vec<MetricDatum> {
    let mut delta = |metric: &'static str, total: u64| -> f64 {
        let last = prev.insert((i.name.clone(), metric), total).unwrap_or(0);
        // A registry reset makes totals go down: count from zero again.
        total.checked_sub(last).unwrap_or(total) as f64
    };
    let failures: u64 = i.failures.values().sum();
    let mut out = vec![
        MetricDatum::new("Calls", delta("calls", i.calls), "Count"),
        MetricDatum::new("Successes", delta("successes", i.successes), "Count"),
        MetricDatum::new("Failures", delta("failures", failures), "Count"),
        MetricDatum::new("Retries", delta("retries", i.retries), "Count"),
        MetricDatum::new(
            "ShortCircuits",
            delta("short_circuits", i.short_circuits),
            "Count",
        ),
        MetricDatum::new("Timeouts", delta("timeouts", i.timeouts), "Count"),
        MetricDatum::new(
            "RateLimited",
            delta(
                "rate_limited_events",
                i.rate_limited_rejections + i.rate_limited_waits,
            ),
            "Count",
        ),
        MetricDatum::new("SuccessRate", i.success_rate * 100.0, "Percent"),
        MetricDatum::new("Availability", i.availability * 100.0, "Percent"),
        MetricDatum::new("LatencyP50", i.p50_ms, "Milliseconds"),
        MetricDatum::new("LatencyP95", i.p95_ms, "Milliseconds"),
        MetricDatum::new("LatencyP99", i.p99_ms, "Milliseconds"),
        MetricDatum::new("LatencyMax", i.max_ms, "Milliseconds"),
        MetricDatum::new(
            "CircuitOpen",
            f64::from(u8::from(matches!(
                i.breaker_state,
                BreakerState::Open | BreakerState::ForcedOpen
            ))),
            "None",
        ),
    ];
    for (kind, n) in &i.failures {
        let key: &'static str = kind;
        let d = delta(key, *n);
        if d > 0.0 {
            out.push(MetricDatum::new("Failures", d, "Count").dimension("ErrorKind", *kind));
        }
    }
    out.into_iter()
        .filter(|d| d.value.is_finite())
        .map(|d| d.dimension("Integration", i.name.clone()).at(now))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_by_count_and_encodes_members() {
        let data: Vec<MetricDatum> = (0..2500)
            .map(|i| {
                MetricDatum::new(format!("m{i}"), f64::from(i), "Count")
                    .dimension("Integration", "stripe")
            })
            .collect();
        let chunks = chunk_params("Shop", &data).unwrap();
        let per: Vec<usize> = chunks
            .iter()
            .map(|c| c.iter().filter(|(k, _)| k.ends_with(".MetricName")).count())
            .collect();
        assert_eq!(per, [1000, 1000, 500]);
        let first = &chunks[1];
        assert_eq!(first[0], ("Namespace".to_owned(), "Shop".to_owned()));
        assert!(first.contains(&(
            "MetricData.member.1.MetricName".to_owned(),
            "m1000".to_owned()
        )));
        assert!(first.contains(&(
            "MetricData.member.1000.Dimensions.member.1.Value".to_owned(),
            "stripe".to_owned()
        )));
        assert!(first.contains(&("MetricData.member.1.Value".to_owned(), "1000".to_owned())));
    }

    #[test]
    fn chunks_by_bytes_and_refuses_bad_data() {
        let long = "d".repeat(250);
        let data: Vec<MetricDatum> = (0..1000)
            .map(|i| {
                (0..30).fold(MetricDatum::new(format!("m{i}"), 1.5, "None"), |d, j| {
                    d.dimension(format!("k{j}"), long.clone())
                })
            })
            .collect();
        let chunks = chunk_params("Shop", &data).unwrap();
        assert!(chunks.len() > 1);
        for c in &chunks {
            let body = url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs(c)
                .finish();
            assert!(body.len() <= MAX_REQUEST_BYTES, "{}", body.len());
        }
        assert!(chunk_params("Shop", &[MetricDatum::new("x", f64::NAN, "None")]).is_err());
        assert_eq!(format_value(3.0), "3");
        assert_eq!(format_value(2.5), "2.5");
    }

    #[test]
    fn latency_is_left_out_while_the_window_is_empty() {
        let m = integrations_core::metrics::IntegrationMetrics::new("stripe");
        let names = |m: &integrations_core::metrics::IntegrationMetrics| -> Vec<String> {
            snapshot_data(&m.snapshot(), &mut HashMap::new(), SystemTime::UNIX_EPOCH)
                .into_iter()
                .map(|d| d.name)
                .collect()
        };
        let before = names(&m);
        assert!(before.contains(&"Calls".to_owned()), "{before:?}");
        assert!(
            !before.iter().any(|n| n.starts_with("Latency")),
            "{before:?}"
        );
        m.record_call();
        m.record_operation_success("confirm", std::time::Duration::from_millis(40));
        let after = names(&m);
        for n in ["LatencyP50", "LatencyP95", "LatencyP99", "LatencyMax"] {
            assert!(after.contains(&n.to_owned()), "{n} missing: {after:?}");
        }
    }
}
