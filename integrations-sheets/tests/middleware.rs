//! A `reqwest_middleware::ClientWithMiddleware` given to the builder: its middleware sees every
//! request the crate sends — the token exchange, the sink's key-column read and its append, and
//! each retry — and the plain behaviour (bearer token, Google's query parameters, the body) stays.

use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;

use integrations_core::metrics::MetricsRegistry;
use integrations_core::provider::{Row, SheetsSink};
use integrations_core::resilience::{Backoff, RetryPolicy};
use integrations_core::{ErrorKind, Policy};
use integrations_sheets::sandbox::{TestServiceAccount, test_service_account};
use integrations_sheets::{GoogleSheetsBuilder, PROVIDER};
use reqwest_middleware::{ClientBuilder, Middleware, Next};
use serde_json::{Value, json};
use wiremock::matchers::{body_json, header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

const SHEET_ID: &str = "1BxiMVs0XRA5nFMdKvBdBZjgmUUqptlbs74OgvE2upms";

fn fixture(name: &str) -> Value {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Stamps each request with `x-trace-seq: <n>` and records `METHOD path` of what it saw.
#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<String>>>);

#[async_trait::async_trait]
impl Middleware for Recorder {
    async fn handle(
        &self,
        mut req: reqwest::Request,
        extensions: &mut http::Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<reqwest::Response> {
        let n = {
            let mut seen = self.0.lock().unwrap();
            seen.push(format!("{} {}", req.method(), req.url().path()));
            seen.len()
        };
        req.headers_mut()
            .insert("x-trace-seq", n.to_string().parse().expect("header value"));
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

fn policy(retries: u32) -> Policy {
    Policy::builder(PROVIDER)
        .retry(RetryPolicy::new(
            retries,
            Backoff::new(Duration::from_millis(1), Duration::from_millis(2), 2.0),
        ))
        .no_circuit_breaker()
        .metrics(&MetricsRegistry::new())
        .build()
}

fn builder(server: &MockServer, sa: &TestServiceAccount) -> GoogleSheetsBuilder {
    GoogleSheetsBuilder::new()
        .with_credentials_json(sa.json())
        .with_spreadsheet_id(SHEET_ID)
        .with_base_url(server.uri())
        .with_token_url(format!("{}/token", server.uri()))
        .with_write_policy(policy(1))
        .with_read_policy(policy(0))
        .with_token_policy(policy(0))
}

#[tokio::test]
async fn the_middleware_sees_the_token_fetch_the_read_and_every_append_attempt() {
    let server = MockServer::start().await;
    let sa = test_service_account("writer@middleware-tests.iam.gserviceaccount.com").unwrap();
    // 1: the token exchange, through the middleware too.
    Mock::given(method("POST"))
        .and(path("/token"))
        .and(header("x-trace-seq", "1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(fixture("token.json")))
        .expect(1)
        .mount(&server)
        .await;
    // 2: the sink reads the key column.
    Mock::given(method("GET"))
        .and(path(format!(
            "/v4/spreadsheets/{SHEET_ID}/values/Orders%21A%3AA"
        )))
        .and(header("x-trace-seq", "2"))
        .and(header(
            "authorization",
            "Bearer ya29.c.b0AXv0zTPJ-test-token",
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(fixture("get_key_column.json")))
        .expect(1)
        .mount(&server)
        .await;
    // 3: the append fails with a 503 (Google did not process it) and is retried by the write
    // policy; 4: the retry lands.
    let append = format!("/v4/spreadsheets/{SHEET_ID}/values/Orders%21A1:append");
    let body =
        json!({"range": "Orders!A1", "majorDimension": "ROWS", "values": [["order-2/paid", 20]]});
    Mock::given(method("POST"))
        .and(path(append.clone()))
        .and(header("x-trace-seq", "3"))
        .and(body_json(body.clone()))
        .respond_with(
            ResponseTemplate::new(503).set_body_json(fixture("error_503_unavailable.json")),
        )
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(append))
        .and(header("x-trace-seq", "4"))
        .and(query_param("valueInputOption", "RAW"))
        .and(query_param("insertDataOption", "INSERT_ROWS"))
        .and(header(
            "authorization",
            "Bearer ya29.c.b0AXv0zTPJ-test-token",
        ))
        .and(body_json(body))
        .respond_with(ResponseTemplate::new(200).set_body_json(fixture("append_response.json")))
        .expect(1)
        .mount(&server)
        .await;

    let recorder = Recorder::default();
    let client = ClientBuilder::new(reqwest::Client::new())
        .with(recorder.clone())
        .build();
    let sink = builder(&server, &sa)
        .with_http_client(client)
        .build()
        .unwrap();
    let rows = vec![
        Row::new("order-1/paid").cell(10_i64),
        Row::new("order-2/paid").cell(20_i64),
    ];
    let out = sink.append_rows("Orders", rows).await.unwrap();
    assert_eq!((out.appended, out.already_present), (1, 1));
    let seen = recorder.0.lock().unwrap().clone();
    let read = format!("GET /v4/spreadsheets/{SHEET_ID}/values/Orders%21A%3AA");
    let write = format!("POST /v4/spreadsheets/{SHEET_ID}/values/Orders%21A1:append");
    assert_eq!(
        seen,
        vec!["POST /token".to_owned(), read.clone(), write.clone(), write]
    );
}

#[tokio::test]
async fn a_middleware_refusal_is_an_unavailable_error_and_nothing_reaches_google() {
    let server = MockServer::start().await;
    let sa = test_service_account("writer@middleware-tests.iam.gserviceaccount.com").unwrap();
    let client = ClientBuilder::new(reqwest::Client::new())
        .with(Refuse)
        .build();
    let sink = builder(&server, &sa)
        .with_http_client(client)
        .build()
        .unwrap();
    let err = sink
        .append_rows("Orders", vec![Row::new("order-1/paid").cell(10_i64)])
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    assert!(
        !err.to_string().contains("refused by policy"),
        "the middleware's own text stays out of the message: {err}"
    );
    assert!(server.received_requests().await.unwrap().is_empty());
}
