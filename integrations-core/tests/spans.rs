//! The spans of a call under a policy and of each attempt (`integrations_core::telemetry`):
//! names, parents, OpenTelemetry fields, and no secret or query string in any field.

use std::time::Duration;

use integrations_core::http::{self, HttpResponse};
use integrations_core::metrics::MetricsRegistry;
use integrations_core::resilience::{Backoff, RetryPolicy};
use integrations_core::telemetry::{ATTEMPT_SPAN, CALL_SPAN};
use integrations_core::{Error, Policy};
use integrations_testkit::{CapturedSpan, TracingCapture};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn policy(retries: u32, attempt_timeout: Duration) -> Policy {
    Policy::builder("test-provider")
        .retry(RetryPolicy::new(
            retries,
            Backoff::new(Duration::from_millis(1), Duration::from_millis(2), 2.0),
        ))
        .attempt_timeout(attempt_timeout)
        .metrics(&MetricsRegistry::new())
        .build()
}

fn named<'a>(spans: &'a [CapturedSpan], name: &str) -> Vec<(usize, &'a CapturedSpan)> {
    spans
        .iter()
        .enumerate()
        .filter(|(_, s)| s.name == name)
        .collect()
}

#[tokio::test]
async fn a_retried_call_has_one_call_span_and_a_child_span_per_attempt() {
    let capture = TracingCapture::start();
    let p = policy(3, Duration::from_secs(5));
    let out = p
        .call("create_thing", |a| async move {
            if a.number < 3 {
                Err(Error::unavailable("502"))
            } else {
                Ok(7)
            }
        })
        .await
        .unwrap();
    assert_eq!(out, 7);
    let spans = capture.spans();
    let calls = named(&spans, CALL_SPAN);
    assert_eq!(calls.len(), 1, "{spans:#?}");
    let (ci, call) = calls[0];
    assert_eq!(call.field("provider"), Some("test-provider"));
    assert_eq!(call.field("operation"), Some("create_thing"));
    assert_eq!(call.field("otel.kind"), Some("internal"));
    assert_eq!(call.field("outcome"), Some("success"));
    assert_eq!(call.field("attempts"), Some("3"));
    assert_eq!(call.field("error.type"), None);
    let attempts = named(&spans, ATTEMPT_SPAN);
    assert_eq!(attempts.len(), 3, "{spans:#?}");
    for (n, (_, a)) in attempts.iter().enumerate() {
        assert_eq!(a.parent, Some(ci), "attempt {n} is a child of the call");
        assert_eq!(a.field("attempt"), Some((n + 1).to_string().as_str()));
        assert_eq!(a.field("otel.kind"), Some("client"));
    }
    assert_eq!(attempts[0].1.field("error.type"), Some("unavailable"));
    assert_eq!(attempts[0].1.field("otel.status_code"), Some("ERROR"));
    assert_eq!(attempts[2].1.field("error.type"), None);
}

#[tokio::test]
async fn the_call_span_is_a_child_of_the_span_current_where_call_is_called() {
    let capture = TracingCapture::start();
    let p = policy(0, Duration::from_secs(5));
    let request = tracing::info_span!("request");
    // Made inside the request's span, awaited outside it.
    let call = request.in_scope(|| p.call("op", |_| async { Ok(1) }));
    assert_eq!(call.await.unwrap(), 1);
    let spans = capture.spans();
    let requests = named(&spans, "request");
    let calls = named(&spans, CALL_SPAN);
    assert_eq!((requests.len(), calls.len()), (1, 1), "{spans:#?}");
    assert_eq!(calls[0].1.parent, Some(requests[0].0), "{spans:#?}");
    let attempts = named(&spans, ATTEMPT_SPAN);
    assert_eq!(attempts.len(), 1, "{spans:#?}");
    assert_eq!(attempts[0].1.parent, Some(calls[0].0));
}

#[tokio::test]
async fn a_failed_call_records_its_error_type() {
    let capture = TracingCapture::start();
    let p = policy(0, Duration::from_millis(20));
    let e = p
        .call("slow", |_| async {
            tokio::time::sleep(Duration::from_secs(5)).await;
            Ok(())
        })
        .await
        .unwrap_err();
    assert_eq!(e.kind(), integrations_core::ErrorKind::Timeout);
    let spans = capture.spans();
    let (_, call) = named(&spans, CALL_SPAN)[0];
    assert_eq!(call.field("outcome"), Some("failure"));
    assert_eq!(call.field("error.type"), Some("timeout"));
    assert_eq!(call.field("otel.status_code"), Some("ERROR"));
    let (_, attempt) = named(&spans, ATTEMPT_SPAN)[0];
    assert_eq!(
        attempt.field("error.type"),
        Some("timeout"),
        "cut off by the attempt timeout"
    );

    // Refused before any attempt: a call span, no attempt span.
    let capture = TracingCapture::start();
    p.circuit_breaker().unwrap().force_open();
    let e = p.call("refused", |_| async { Ok(()) }).await.unwrap_err();
    assert_eq!(e.kind(), integrations_core::ErrorKind::CircuitOpen);
    let spans = capture.spans();
    assert_eq!(named(&spans, ATTEMPT_SPAN).len(), 0, "{spans:#?}");
    let (_, call) = named(&spans, CALL_SPAN)[0];
    assert_eq!(call.field("error.type"), Some("circuit_open"));
    assert_eq!(call.field("attempts"), Some("0"));
}

#[tokio::test]
async fn http_attempts_carry_method_host_path_and_status_but_no_secret_or_query() {
    const STRIPE_KEY: &str = "sk_test_51SpansNeverCarryThisKey";
    const SENDGRID_KEY: &str = "SG.spans-never.carry-this-key";
    const AWS_SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
    const QUERY_SECRET: &str = "query-secret-value";
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/things"))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/things"))
        .respond_with(ResponseTemplate::new(201).set_body_string("{}"))
        .mount(&server)
        .await;
    let capture = TracingCapture::start();
    let client = http::default_client();
    let url = format!("{}/v1/things?api_key={QUERY_SECRET}", server.uri());
    let p = policy(2, Duration::from_secs(5));
    let resp = http::send(
        &p,
        "create_thing",
        |_| {
            client
                .post(&url)
                .bearer_auth(STRIPE_KEY)
                .header("x-sendgrid-key", SENDGRID_KEY)
                .header("x-aws-secret", AWS_SECRET)
                .body(format!("secret={AWS_SECRET}"))
        },
        |r: &HttpResponse| http::status_error(r, "test-provider", r.text().into_owned()),
    )
    .await
    .unwrap();
    assert_eq!(resp.status.as_u16(), 201);

    let spans = capture.spans();
    let attempts = named(&spans, ATTEMPT_SPAN);
    assert_eq!(attempts.len(), 2, "{spans:#?}");
    let port = server.address().port().to_string();
    for (status, (_, a)) in ["503", "201"].iter().zip(&attempts) {
        assert_eq!(a.field("http.request.method"), Some("POST"));
        assert_eq!(a.field("server.address"), Some("127.0.0.1"));
        assert_eq!(a.field("server.port"), Some(port.as_str()));
        assert_eq!(a.field("url.path"), Some("/v1/things"));
        assert_eq!(a.field("http.response.status_code"), Some(*status));
    }
    assert_eq!(attempts[0].1.field("error.type"), Some("unavailable"));

    // Every span field, and every event for good measure.
    let mut everything: Vec<String> = spans
        .iter()
        .flat_map(|s| s.fields.iter().map(|(k, v)| format!("{}: {k}={v}", s.name)))
        .collect();
    everything.extend(capture.lines());
    assert!(!everything.is_empty());
    for secret in [
        STRIPE_KEY,
        SENDGRID_KEY,
        AWS_SECRET,
        QUERY_SECRET,
        "api_key",
    ] {
        for field in &everything {
            assert!(!field.contains(secret), "`{secret}` leaked into {field}");
        }
    }
}

/// The closure's synchronous part runs in the attempt's span, as the future it returns does.
#[tokio::test]
async fn the_closure_is_called_in_the_attempt_span() {
    let capture = TracingCapture::start();
    let p = policy(0, Duration::from_secs(5));
    p.call("sync", |_| {
        let _s = tracing::info_span!("sync_part").entered();
        async { Ok(()) }
    })
    .await
    .unwrap();
    let spans = capture.spans();
    let sync = named(&spans, "sync_part");
    assert_eq!(sync.len(), 1, "{spans:#?}");
    let parent = sync[0].1.parent.map(|i| spans[i].name.clone());
    assert_eq!(parent.as_deref(), Some(ATTEMPT_SPAN), "{spans:#?}");
}
