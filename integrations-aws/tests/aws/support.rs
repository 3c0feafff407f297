use std::time::Duration;

use integrations_aws::{AwsBuilder, AwsConfig, Credentials};
use integrations_core::metrics::MetricsRegistry;
use integrations_core::resilience::{Backoff, Policy, RetryPolicy};
use wiremock::ResponseTemplate;

/// `AKIDEXAMPLE` credentials, region `us-east-1`, every service at `uri`, no retries.
pub(crate) fn config(uri: &str) -> AwsConfig {
    config_with(uri, RetryPolicy::none())
}

/// As [`config`], with `retry`.
pub(crate) fn config_with(uri: &str, retry: RetryPolicy) -> AwsConfig {
    let policy = Policy::builder("aws-test")
        .retry(retry)
        .no_circuit_breaker()
        .attempt_timeout(Duration::from_secs(5))
        .metrics(&MetricsRegistry::new())
        .build();
    AwsBuilder::new()
        .with_region("us-east-1")
        .with_credentials(Credentials::new(
            "AKIDEXAMPLE",
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
        ))
        .with_base_url(uri)
        .with_policy(policy)
        .build()
        .unwrap()
}

/// Two quick retries.
pub(crate) fn two_retries() -> RetryPolicy {
    RetryPolicy::new(
        2,
        Backoff::new(Duration::from_millis(1), Duration::from_millis(2), 2.0),
    )
}

/// The `Authorization` header a SigV4-signed request to `service` must carry.
pub(crate) fn auth_regex(service: &str, signed_headers: &str) -> String {
    format!(
        r"^AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/\d{{8}}/us-east-1/{service}/aws4_request, SignedHeaders={signed_headers}, Signature=[0-9a-f]{{64}}$"
    )
}

pub(crate) fn fixture(name: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A JSON-protocol error response.
pub(crate) fn json_error(status: u16, fixture_name: &str, request_id: &str) -> ResponseTemplate {
    ResponseTemplate::new(status)
        .insert_header("x-amzn-RequestId", request_id)
        .insert_header("content-type", "application/x-amz-json-1.0")
        .set_body_string(fixture(fixture_name))
}

/// A query-protocol (XML) error response.
pub(crate) fn xml_error(status: u16, fixture_name: &str) -> ResponseTemplate {
    ResponseTemplate::new(status)
        .insert_header("content-type", "text/xml")
        .set_body_string(fixture(fixture_name))
}
