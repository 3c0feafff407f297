//! A `reqwest_middleware::ClientWithMiddleware` given to the builder: its middleware runs on every
//! attempt of the policy, and the plain behaviour (auth, version, idempotency key, retries) stays.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use integrations_core::Policy;
use integrations_core::metrics::MetricsRegistry;
use integrations_core::resilience::{Backoff, RetryPolicy};
use integrations_stripe::{DEFAULT_API_VERSION, PROVIDER, RequestOptions, StripeBuilder};
use reqwest_middleware::{ClientBuilder, Middleware, Next};
use serde_json::{Value, json};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const KEY: &str = "sk_test_middleware123";

/// Stamps each request with `x-trace-attempt: <n>`, counting the requests it saw.
struct TraceHeader(Arc<AtomicU32>);

#[async_trait::async_trait]
impl Middleware for TraceHeader {
    async fn handle(
        &self,
        mut req: reqwest::Request,
        extensions: &mut http::Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<reqwest::Response> {
        let n = self.0.fetch_add(1, Ordering::SeqCst) + 1;
        req.headers_mut().insert(
            "x-trace-attempt",
            n.to_string().parse().expect("header value"),
        );
        next.run(req, extensions).await
    }
}

/// Refuses every request before it is sent.
struct Refuse;

#[async_trait::async_trait]
impl Middleware for Refuse {
    async fn handle(
        &self,
        _: reqwest::Request,
        _: &mut http::Extensions,
        _: Next<'_>,
    ) -> reqwest_middleware::Result<reqwest::Response> {
        Err(reqwest_middleware::Error::middleware(
            std::io::Error::other("refused by policy"),
        ))
    }
}

/// One retry, recording into a registry of the test's own.
fn one_retry() -> Policy {
    Policy::builder(PROVIDER)
        .metrics(&MetricsRegistry::new())
        .retry(RetryPolicy::new(
            1,
            Backoff::new(Duration::from_millis(1), Duration::from_millis(2), 2.0),
        ))
        .no_circuit_breaker()
        .build()
}

#[tokio::test]
async fn the_middleware_sees_every_attempt_and_its_header_reaches_stripe() {
    let server = MockServer::start().await;
    // The first attempt fails with a 500 and is retried; the retry carries the same key.
    Mock::given(method("POST"))
        .and(path("/v1/customers"))
        .and(header("x-trace-attempt", "1"))
        .respond_with(
            ResponseTemplate::new(500)
                .set_body_json(json!({"error": {"type": "api_error", "message": "try again"}})),
        )
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/customers"))
        .and(header("x-trace-attempt", "2"))
        .and(header("authorization", format!("Bearer {KEY}").as_str()))
        .and(header("stripe-version", DEFAULT_API_VERSION))
        .and(header("idempotency-key", "order-7/customer"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"id": "cus_1", "object": "customer"})),
        )
        .expect(1)
        .mount(&server)
        .await;

    let seen = Arc::new(AtomicU32::new(0));
    let client = ClientBuilder::new(reqwest::Client::new())
        .with(TraceHeader(seen.clone()))
        .build();
    let stripe = StripeBuilder::new()
        .with_secret_key(KEY)
        .with_base_url(server.uri())
        .with_policy(one_retry())
        .with_http_client(client)
        .build()
        .unwrap();
    let customer: Value = stripe
        .client()
        .request(
            http::Method::POST,
            "/v1/customers",
            &json!({"email": "a@example.com"}),
            RequestOptions::new().idempotency_key(
                integrations_core::IdempotencyKey::new("order-7/customer").unwrap(),
            ),
        )
        .await
        .unwrap();
    assert_eq!(customer["id"], "cus_1");
    assert_eq!(seen.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_middleware_failure_is_a_retryable_unavailable_error_naming_stripe() {
    let server = MockServer::start().await;
    let client = ClientBuilder::new(reqwest::Client::new())
        .with(Refuse)
        .build();
    let stripe = StripeBuilder::new()
        .with_secret_key(KEY)
        .with_base_url(server.uri())
        .with_policy(one_retry())
        .with_http_client(client)
        .build()
        .unwrap();
    let err = stripe
        .client()
        .request::<Value>(
            http::Method::GET,
            "/v1/balance",
            &json!({}),
            RequestOptions::new(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), integrations_core::ErrorKind::Unavailable);
    assert_eq!(err.provider_name(), Some(PROVIDER));
    assert_eq!(stripe.client().policy().metrics().retries(), 1);
    let source = std::error::Error::source(&err).expect("the middleware's error");
    assert!(source.to_string().contains("refused by policy"), "{source}");
    // Nothing reached the server, and the key never shows in the error.
    assert!(server.received_requests().await.unwrap().is_empty());
    assert!(!format!("{err:?}").contains(KEY));
}
