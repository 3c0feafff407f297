//! Feature `metrics`: the same counters, gauge and histogram recorded through the
//! [`metrics`] facade, under the names and labels of the Prometheus text, so that whatever
//! exporter the application installed (Prometheus, OpenTelemetry, StatsD, CloudWatch EMF) sees
//! them. Without an installed recorder every call here is a no-op.
//!
//! Latency goes to the facade in seconds, unbucketed: the exporter buckets or summarises it as
//! it is configured to. Health is derived at snapshot time and is not pushed.

use std::time::Duration;

use metrics::SharedString;

use crate::error::ErrorKind;
use crate::resilience::BreakerState;

pub(super) const CALLS: &str = "integration_calls_total";
pub(super) const SUCCESSES: &str = "integration_successes_total";
pub(super) const RETRIES: &str = "integration_retries_total";
pub(super) const SHORT_CIRCUITS: &str = "integration_short_circuits_total";
pub(super) const RATE_LIMITED_WAITS: &str = "integration_rate_limited_waits_total";
pub(super) const RATE_LIMITED_REJECTIONS: &str = "integration_rate_limited_rejections_total";
pub(super) const BULKHEAD_REJECTIONS: &str = "integration_bulkhead_rejections_total";
pub(super) const TIMEOUTS: &str = "integration_timeouts_total";

/// The provider label value, shared (one allocation per integration, not per call).
pub(super) fn label(provider: &str) -> SharedString {
    SharedString::from_shared(std::sync::Arc::<str>::from(provider))
}

pub(super) fn counter(name: &'static str, provider: &SharedString) {
    metrics::counter!(name, "provider" => provider.clone()).increment(1);
}

pub(super) fn failure(provider: &SharedString, kind: ErrorKind) {
    metrics::counter!(
        super::prometheus::FAILURES,
        "provider" => provider.clone(),
        "kind" => kind.as_str()
    )
    .increment(1);
}

pub(super) fn breaker_state(provider: &SharedString, state: BreakerState) {
    metrics::gauge!(super::prometheus::BREAKER, "provider" => provider.clone())
        .set(f64::from(state.as_u8()));
}

pub(super) fn latency(provider: &SharedString, operation: &'static str, latency: Duration) {
    metrics::histogram!(
        super::prometheus::LATENCY,
        "provider" => provider.clone(),
        "operation" => operation
    )
    .record(latency.as_secs_f64());
}
