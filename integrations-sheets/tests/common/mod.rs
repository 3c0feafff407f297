//! Helpers shared by the integration tests.
#![allow(dead_code, unreachable_pub)]

use std::time::Duration;

use integrations_core::Policy;
use integrations_core::metrics::MetricsRegistry;
use integrations_core::resilience::{Backoff, RetryPolicy};
use integrations_sheets::sandbox::{Endpoint, RecordedRequest, Sandbox};
use integrations_sheets::{GoogleSheetsBuilder, PROVIDER};

/// A policy with quick retries, a 2 s attempt timeout, no breaker and private metrics.
pub fn fast_policy() -> Policy {
    Policy::builder(PROVIDER)
        .retry(RetryPolicy::new(
            4,
            Backoff::new(Duration::from_millis(10), Duration::from_millis(100), 2.0),
        ))
        .attempt_timeout(Duration::from_secs(2))
        .no_circuit_breaker()
        .metrics(&MetricsRegistry::new())
        .build()
}

/// A builder on `sandbox` with [`fast_policy`] everywhere.
pub fn fast_builder(sandbox: &Sandbox) -> GoogleSheetsBuilder {
    sandbox
        .client_builder()
        .with_write_policy(fast_policy())
        .with_read_policy(fast_policy())
        .with_token_policy(fast_policy())
}

/// The recorded requests to `endpoint`.
pub fn requests_to(sandbox: &Sandbox, endpoint: Endpoint) -> Vec<RecordedRequest> {
    sandbox
        .requests()
        .into_iter()
        .filter(|r| r.endpoint == endpoint)
        .collect()
}

/// Column A of a sheet.
pub fn keys(sandbox: &Sandbox, sheet: &str) -> Vec<String> {
    sandbox
        .rows(sandbox.spreadsheet_id(), sheet)
        .unwrap_or_default()
        .into_iter()
        .map(|r| r.into_iter().next().unwrap_or_default())
        .collect()
}
