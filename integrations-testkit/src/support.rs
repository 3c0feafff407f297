//! Small helpers every provider's tests repeat: a fast policy and fixture files.

use std::path::{Path, PathBuf};
use std::time::Duration;

use integrations_core::Policy;
use integrations_core::metrics::MetricsRegistry;
use integrations_core::resilience::{Backoff, RetryPolicy};

/// A policy for tests: `retries` quick retries (1 ms doubling to 20 ms), a 2 s attempt timeout,
/// no rate limiter, no circuit breaker, and a private metrics registry, so tests neither wait
/// nor see each other's numbers.
pub fn fast_policy(provider: &'static str, retries: u32) -> Policy {
    Policy::builder(provider)
        .retry(RetryPolicy::new(
            retries,
            Backoff::new(Duration::from_millis(1), Duration::from_millis(20), 2.0),
        ))
        .attempt_timeout(Duration::from_secs(2))
        .no_circuit_breaker()
        .metrics(&MetricsRegistry::new())
        .build()
}

/// `<manifest_dir>/tests/fixtures/<name>`: pass `env!("CARGO_MANIFEST_DIR")`.
pub fn fixture_path(manifest_dir: &str, name: &str) -> PathBuf {
    Path::new(manifest_dir)
        .join("tests")
        .join("fixtures")
        .join(name)
}

/// The text of a fixture file (see [`fixture_path`]).
///
/// # Panics
/// When the file cannot be read, naming it: a test with a missing fixture must fail loudly.
pub fn fixture(manifest_dir: &str, name: &str) -> String {
    let path = fixture_path(manifest_dir, name);
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("fixture {} cannot be read: {e}", path.display()))
}

/// A fixture file parsed as JSON (see [`fixture`]).
///
/// # Panics
/// When the file cannot be read or is not JSON, naming it.
pub fn fixture_json(manifest_dir: &str, name: &str) -> serde_json::Value {
    let text = fixture(manifest_dir, name);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("fixture {name} is not JSON: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_policy_names_the_provider() {
        assert_eq!(fast_policy("acme", 2).provider(), "acme");
    }

    #[test]
    #[should_panic(expected = "cannot be read")]
    fn a_missing_fixture_fails_loudly() {
        fixture(env!("CARGO_MANIFEST_DIR"), "no-such-file.json");
    }
}
