//! Contract tests against the documented ntfy API (wiremock), and core's `Notifier` suite.

use std::time::Duration;

use integrations_core::metrics::MetricsRegistry;
use integrations_core::provider::Notification;
use integrations_core::resilience::{Backoff, RetryPolicy};
use integrations_core::{ErrorKind, Notifier, Policy};
use integrations_custom_provider::{NtfyBuilder, NtfyNotifier};
use integrations_testkit::{NotifierSuiteConfig, notifier_suite, unique_run_id};
use serde_json::json;
use wiremock::matchers::{body_json, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn fast_policy() -> Policy {
    Policy::builder("ntfy")
        .retry(RetryPolicy::new(
            2,
            Backoff::new(Duration::from_millis(1), Duration::from_millis(2), 2.0),
        ))
        .metrics(&MetricsRegistry::new())
        .build()
}

fn notifier(server: &MockServer) -> NtfyNotifier {
    NtfyBuilder::new()
        .with_base_url(server.uri())
        .with_topic("orders")
        .with_token("tk_secret_token")
        .with_policy(fast_policy())
        .build()
        .unwrap()
}

fn ok_answer(id: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "id": id, "time": 1_700_000_000, "expires": 1_700_043_200,
        "event": "message", "topic": "orders", "message": "m"
    }))
}

#[tokio::test]
async fn publish_sends_the_documented_request() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/"))
        .and(header("authorization", "Bearer tk_secret_token"))
        .and(header("content-type", "application/json"))
        .and(body_json(json!({
            "topic": "orders",
            "message": "Order 42 was paid.",
            "title": "Order paid",
            "tags": ["order_id:42"]
        })))
        .respond_with(ok_answer("sPs71M8A2T"))
        .expect(1)
        .mount(&server)
        .await;
    let sent = notifier(&server)
        .publish(
            &Notification::new("Order 42 was paid.")
                .subject("Order paid")
                .attribute("order_id", "42"),
        )
        .await
        .unwrap();
    assert_eq!(sent.message_id, "sPs71M8A2T");
    assert_eq!(sent.provider, "ntfy");
}

#[tokio::test]
async fn errors_map_by_meaning_and_keep_ntfys_code() {
    let cases = [
        (
            403,
            json!({"code": 40301, "http": 403, "error": "forbidden"}),
            ErrorKind::Forbidden,
        ),
        (
            429,
            json!({"code": 42901, "http": 429, "error": "limit reached: too many requests"}),
            ErrorKind::RateLimited,
        ),
        (
            400,
            json!({"code": 40009, "http": 400, "error": "invalid request: topic invalid"}),
            ErrorKind::InvalidInput,
        ),
        (
            500,
            json!({"code": 50001, "http": 500, "error": "internal server error"}),
            ErrorKind::Unavailable,
        ),
    ];
    for (status, body, kind) in cases {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(status).set_body_json(body.clone()))
            .mount(&server)
            .await;
        let e = notifier(&server)
            .publish(&Notification::new("x"))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), kind, "{status}: {e}");
        assert_eq!(
            e.code(),
            body["code"].as_i64().map(|c| c.to_string()).as_deref()
        );
        assert_eq!(e.provider_name(), Some("ntfy"));
    }
}

#[tokio::test]
async fn a_5xx_is_retried_then_succeeds() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(502))
        .up_to_n_times(1)
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ok_answer("second"))
        .expect(1)
        .mount(&server)
        .await;
    let sent = notifier(&server)
        .publish(&Notification::new("x"))
        .await
        .unwrap();
    assert_eq!(sent.message_id, "second");
}

#[tokio::test]
async fn passes_cores_notifier_suite() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ok_answer("m1"))
        .mount(&server)
        .await;
    notifier_suite(
        &notifier(&server),
        &NotifierSuiteConfig::new(unique_run_id()),
    )
    .await;
    // The suite's invalid notifications never reached the server.
    let requests = server.received_requests().await.unwrap();
    assert!(requests.iter().all(|r| !r.body.is_empty()));
}

#[test]
fn build_names_what_is_wrong_and_debug_hides_the_token() {
    let e = NtfyBuilder::new().build().unwrap_err();
    assert_eq!(e.field(), Some("NTFY_TOPIC"));
    let e = NtfyBuilder::new()
        .with_topic("has space")
        .build()
        .unwrap_err();
    assert_eq!(e.field(), Some("NTFY_TOPIC"));
    let e = NtfyBuilder::new()
        .with_topic("t")
        .with_base_url("ftp://x")
        .build()
        .unwrap_err();
    assert_eq!(e.field(), Some("NTFY_BASE_URL"));
    let b = NtfyBuilder::new()
        .with_topic("t")
        .with_token("tk_secret_token");
    assert!(!format!("{b:?}").contains("tk_secret"));
    let n = b.build().unwrap();
    assert!(!format!("{n:?}").contains("tk_secret"));
}
