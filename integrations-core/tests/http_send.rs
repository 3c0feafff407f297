//! `http::send` against a real HTTP server (wiremock): retries reuse the request as built for each
//! attempt, non-2xx answers go through the provider's parse_error, transport failures map to the
//! right kinds.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use integrations_core::http::{self, HttpResponse};
use integrations_core::metrics::MetricsRegistry;
use integrations_core::resilience::{Backoff, RetryPolicy};
use integrations_core::{Error, ErrorKind, Policy};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn policy(retries: u32) -> Policy {
    Policy::builder("test")
        .retry(RetryPolicy::new(
            retries,
            Backoff::new(Duration::from_millis(1), Duration::from_millis(5), 2.0),
        ))
        .attempt_timeout(Duration::from_millis(500))
        .metrics(&MetricsRegistry::new())
        .build()
}

fn parse(resp: &HttpResponse) -> Error {
    http::status_error(resp, "test", resp.text().into_owned())
}

#[tokio::test]
async fn retries_5xx_with_the_same_idempotency_key_then_succeeds() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/things"))
        .and(header("idempotency-key", "order-1/create"))
        .respond_with(ResponseTemplate::new(500).set_body_string("boom"))
        .up_to_n_times(2)
        .expect(2)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/things"))
        .and(header("idempotency-key", "order-1/create"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({"id": "t_1"})))
        .expect(1)
        .mount(&server)
        .await;

    let client = http::default_client();
    let url = format!("{}/v1/things", server.uri());
    let attempts = AtomicU32::new(0);
    let p = policy(3);
    let resp = http::send(
        &p,
        "create_thing",
        |a| {
            attempts.store(a.number, Ordering::SeqCst);
            client
                .post(&url)
                .header("Idempotency-Key", "order-1/create")
        },
        parse,
    )
    .await
    .unwrap();
    assert_eq!(resp.json::<serde_json::Value>().unwrap()["id"], "t_1");
    assert_eq!(attempts.load(Ordering::SeqCst), 3);
    let snap = p.metrics().snapshot();
    assert_eq!(snap.retries, 2);
}

#[tokio::test]
async fn client_errors_are_not_retried_and_keep_status() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(404).set_body_string("no such thing"))
        .expect(1)
        .mount(&server)
        .await;
    let client = http::default_client();
    let url = format!("{}/v1/things/x", server.uri());
    let err = http::send(&policy(3), "get_thing", |_| client.get(&url), parse)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert_eq!(err.status(), Some(404));
    assert_eq!(err.provider_name(), Some("test"));
    assert!(err.to_string().contains("no such thing"), "{err}");
}

#[tokio::test]
async fn connection_refused_is_unavailable_and_not_processed() {
    // Bind then drop a listener so the port is (almost certainly) closed.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let client = http::default_client();
    let url = format!("http://127.0.0.1:{port}/x?api_key=SECRET");
    let err = http::send(&policy(0), "get", |_| client.get(&url), parse)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    assert!(
        err.is_failover_safe(),
        "connect failures never reached the provider"
    );
    let chain = format!("{err} {:?}", std::error::Error::source(&err));
    assert!(!chain.contains("SECRET"), "URL query leaked: {chain}");
}

#[tokio::test]
async fn slow_answers_time_out_per_attempt() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(5)))
        .mount(&server)
        .await;
    let client = http::default_client();
    let url = format!("{}/slow", server.uri());
    let p = Policy::builder("test")
        .retry(RetryPolicy::none())
        .attempt_timeout(Duration::from_millis(100))
        .metrics(&MetricsRegistry::new())
        .build();
    let err = http::send(&p, "slow", |_| client.get(&url), parse)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout);
    assert!(
        !err.is_failover_safe(),
        "a timed-out request may have been processed"
    );
}

#[tokio::test]
async fn rate_limited_answers_carry_retry_after() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "120"))
        .mount(&server)
        .await;
    let client = http::default_client();
    let url = format!("{}/x", server.uri());
    let calls = Arc::new(AtomicU32::new(0));
    let c = calls.clone();
    // Retry-After far above the policy's cap: the policy gives up rather than hammer early.
    let err = http::send(
        &policy(3),
        "x",
        move |_| {
            c.fetch_add(1, Ordering::SeqCst);
            client.get(&url)
        },
        parse,
    )
    .await
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::RateLimited);
    assert_eq!(err.retry_after(), Some(Duration::from_secs(120)));
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

/// A redirect is never followed: the credential headers would go wherever `Location` points.
#[tokio::test]
async fn redirects_are_not_followed_so_credentials_stay_with_the_provider() {
    let provider = MockServer::start().await;
    let elsewhere = MockServer::start().await;
    let target = format!("http://localhost:{}/steal", elsewhere.address().port());
    Mock::given(method("GET"))
        .and(path("/v1/things"))
        .respond_with(ResponseTemplate::new(302).insert_header("location", target.as_str()))
        .expect(2)
        .mount(&provider)
        .await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200))
        .expect(0)
        .mount(&elsewhere)
        .await;
    for client in [
        http::default_client(),
        http::HttpClientBuilder::new().build().unwrap(),
    ] {
        let e = http::send(
            &policy(0),
            "get",
            |_| {
                client
                    .get(format!("{}/v1/things", provider.uri()))
                    .bearer_auth("sk_secret")
            },
            parse,
        )
        .await
        .unwrap_err();
        assert_eq!(e.status(), Some(302), "{e}");
        assert_eq!(e.kind(), ErrorKind::Provider);
    }
    assert!(elsewhere.received_requests().await.unwrap().is_empty());
}
