//! Contract tests against `wiremock`: exact paths, query parameters, headers and bodies of every
//! call, the token flow, and error mapping from Google's error JSON (fixtures in `fixtures/`).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use integrations_core::ErrorKind;
use integrations_core::Policy;
use integrations_core::metrics::MetricsRegistry;
use integrations_core::provider::{Cell, Row, SheetsSink};
use integrations_core::resilience::{Backoff, RetryPolicy};
use integrations_sheets::credentials::{GOOGLE_TOKEN_URI, SPREADSHEETS_SCOPE};
use integrations_sheets::sandbox::{TestServiceAccount, test_service_account};
use integrations_sheets::{A1Range, GoogleSheetsBuilder, PROVIDER, ValueInputOption};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Value, json};
use wiremock::matchers::{body_json, body_string_contains, header, method, path, query_param};
use wiremock::{Match, Mock, MockServer, Request, ResponseTemplate};

const SHEET_ID: &str = "1BxiMVs0XRA5nFMdKvBdBZjgmUUqptlbs74OgvE2upms";
const TOKEN: &str = "Bearer ya29.c.b0AXv0zTPJ-test-token";

fn fixture(name: &str) -> Value {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn account() -> TestServiceAccount {
    test_service_account("writer@contract-tests.iam.gserviceaccount.com").unwrap()
}

fn policy(retries: u32) -> Policy {
    Policy::builder(PROVIDER)
        .retry(RetryPolicy::new(
            retries,
            Backoff::new(Duration::from_millis(1), Duration::from_millis(5), 2.0),
        ))
        .attempt_timeout(Duration::from_secs(10))
        .no_circuit_breaker()
        .metrics(&MetricsRegistry::new())
        .build()
}

fn builder(server: &MockServer, sa: &TestServiceAccount, retries: u32) -> GoogleSheetsBuilder {
    GoogleSheetsBuilder::new()
        .with_credentials_json(sa.json())
        .with_spreadsheet_id(SHEET_ID)
        .with_base_url(server.uri())
        .with_token_url(format!("{}/token", server.uri()))
        .with_write_policy(policy(retries))
        .with_read_policy(policy(retries))
        .with_token_policy(policy(retries))
}

/// Verifies the JWT-bearer assertion: RS256 signature by `sa`, header `kid`, and Google's claims.
struct GoogleAssertion(TestServiceAccount);

impl Match for GoogleAssertion {
    fn matches(&self, request: &Request) -> bool {
        let form: Vec<(String, String)> = url::form_urlencoded::parse(&request.body)
            .into_owned()
            .collect();
        let Some((_, jwt)) = form.iter().find(|(k, _)| k == "assertion") else {
            return false;
        };
        let Ok(header) = jsonwebtoken::decode_header(jwt) else {
            return false;
        };
        let Ok(key) = DecodingKey::from_rsa_pem(self.0.public_key_pem().as_bytes()) else {
            return false;
        };
        let mut v = Validation::new(Algorithm::RS256);
        v.set_audience(&[GOOGLE_TOKEN_URI]);
        v.set_issuer(&[self.0.client_email()]);
        v.set_required_spec_claims(&["exp", "iat", "aud", "iss"]);
        let Ok(data) = jsonwebtoken::decode::<Value>(jwt, &key, &v) else {
            return false;
        };
        let c = data.claims;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let (iat, exp) = (
            c["iat"].as_u64().unwrap_or(0),
            c["exp"].as_u64().unwrap_or(0),
        );
        header.alg == Algorithm::RS256
            && header.kid.as_deref() == Some(self.0.private_key_id())
            && c["scope"] == SPREADSHEETS_SCOPE
            && exp == iat + 3600
            && iat.abs_diff(now) < 60
            && c.as_object().is_some_and(|o| o.len() == 5)
    }
}

async fn mount_token(server: &MockServer, sa: &TestServiceAccount, times: u64) {
    Mock::given(method("POST"))
        .and(path("/token"))
        .and(header("content-type", "application/x-www-form-urlencoded"))
        .and(body_string_contains(
            "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer",
        ))
        .and(GoogleAssertion(sa.clone()))
        .respond_with(ResponseTemplate::new(200).set_body_json(fixture("token.json")))
        .expect(times)
        .mount(server)
        .await;
}

#[tokio::test]
async fn append_sends_googles_request_and_decodes_the_answer() {
    let server = MockServer::start().await;
    let sa = account();
    mount_token(&server, &sa, 1).await;
    Mock::given(method("POST"))
        .and(path(format!("/v4/spreadsheets/{SHEET_ID}/values/%27It%27%27s%20here%27%21A1:append")))
        .and(query_param("valueInputOption", "RAW"))
        .and(query_param("insertDataOption", "INSERT_ROWS"))
        .and(header("authorization", TOKEN))
        .and(header("content-type", "application/json"))
        .and(body_json(json!({
            "range": "'It''s here'!A1",
            "majorDimension": "ROWS",
            "values": [["order-1/paid", "EUR", 1250, true], ["order-2/paid", "", 9_007_199_254_740_992_i64, false]],
        })))
        .respond_with(ResponseTemplate::new(200).set_body_json(fixture("append_response.json")))
        .expect(1)
        .mount(&server)
        .await;
    let client = builder(&server, &sa, 0).build_client().unwrap();
    let rows = vec![
        vec![
            Cell::from("order-1/paid"),
            Cell::from("EUR"),
            Cell::Int(1250),
            Cell::Bool(true),
        ],
        vec![
            Cell::from("order-2/paid"),
            Cell::Empty,
            Cell::Int(1 << 53),
            Cell::Bool(false),
        ],
    ];
    let out = client
        .append(&A1Range::cell("It's here", 0, 1), &rows)
        .await
        .unwrap();
    assert_eq!(out.table_range.as_deref(), Some("'It''s here'!A1:C2"));
    assert_eq!(
        out.updates.updated_range.as_deref(),
        Some("'It''s here'!A3:C4")
    );
    assert_eq!(
        (out.updates.updated_rows, out.updates.updated_cells),
        (2, 6)
    );
}

#[tokio::test]
async fn get_update_and_batch_update_requests() {
    let server = MockServer::start().await;
    let sa = account();
    mount_token(&server, &sa, 1).await;
    Mock::given(method("GET"))
        .and(path(format!(
            "/v4/spreadsheets/{SHEET_ID}/values/Orders%21A%3AA"
        )))
        .and(query_param("majorDimension", "ROWS"))
        .and(query_param("valueRenderOption", "FORMATTED_VALUE"))
        .and(header("authorization", TOKEN))
        .respond_with(ResponseTemplate::new(200).set_body_json(fixture("get_key_column.json")))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("PUT"))
        .and(path(format!("/v4/spreadsheets/{SHEET_ID}/values/Orders%21A2%3AC2")))
        .and(query_param("valueInputOption", "USER_ENTERED"))
        .and(header("authorization", TOKEN))
        .and(body_json(json!({"range": "Orders!A2:C2", "majorDimension": "ROWS", "values": [["order-1/paid", "shipped", 1250]]})))
        .respond_with(ResponseTemplate::new(200).set_body_json(fixture("update_response.json")))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(format!("/v4/spreadsheets/{SHEET_ID}/values:batchUpdate")))
        .and(header("authorization", TOKEN))
        .and(body_json(json!({
            "valueInputOption": "RAW",
            "data": [
                {"range": "Orders!A2:B2", "majorDimension": "ROWS", "values": [["order-1/paid", "shipped"]]},
                {"range": "'Q1 / Q2'!A5:B5", "majorDimension": "ROWS", "values": [["order-9/paid", ""]]},
            ],
        })))
        .respond_with(ResponseTemplate::new(200).set_body_json(fixture("batch_update_response.json")))
        .expect(1)
        .mount(&server)
        .await;

    let client = builder(&server, &sa, 0).build_client().unwrap();
    let col = client.get(&A1Range::columns("Orders", 0, 0)).await.unwrap();
    assert_eq!(col.range, "Orders!A1:A1000");
    assert_eq!(
        col.values,
        vec![
            vec![Cell::from("order-1/paid")],
            vec![],
            vec![Cell::from("order-3/paid")]
        ]
    );

    let entered = client.with_value_input(ValueInputOption::UserEntered);
    let row = Row::new("order-1/paid")
        .cell("shipped")
        .cell(1250_i64)
        .to_values();
    let up = entered
        .update(&A1Range::area("Orders", 0, 2, 2, 2), &[row])
        .await
        .unwrap();
    assert_eq!(
        (up.updated_range.as_deref(), up.updated_cells),
        (Some("Orders!A2:C2"), 3)
    );

    let batch = client
        .batch_update(&[
            (
                A1Range::area("Orders", 0, 2, 1, 2),
                vec![vec![Cell::from("order-1/paid"), Cell::from("shipped")]],
            ),
            (
                A1Range::area("Q1 / Q2", 0, 5, 1, 5),
                vec![vec![Cell::from("order-9/paid"), Cell::Empty]],
            ),
        ])
        .await
        .unwrap();
    assert_eq!((batch.total_updated_rows, batch.responses.len()), (2, 2));
}

#[tokio::test]
async fn batch_get_sends_every_range_in_order_and_maps_a_bad_one() {
    let server = MockServer::start().await;
    let sa = account();
    mount_token(&server, &sa, 1).await;
    // The whole query string, in order: the repeated `ranges` (form-encoded, as `reqwest`
    // encodes a query), then the rendering.
    let exact_query = |request: &Request| {
        request.url.query()
            == Some(
                "ranges=Orders%21A8&ranges=%27Q1+%2F+Q2%27%21A5\
                 &majorDimension=ROWS&valueRenderOption=FORMATTED_VALUE",
            )
    };
    Mock::given(method("GET"))
        .and(path(format!("/v4/spreadsheets/{SHEET_ID}/values:batchGet")))
        .and(exact_query)
        .and(header("authorization", TOKEN))
        .respond_with(ResponseTemplate::new(200).set_body_json(fixture("batch_get_response.json")))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("/v4/spreadsheets/{SHEET_ID}/values:batchGet")))
        .and(query_param("ranges", "Missing!A1"))
        .respond_with(ResponseTemplate::new(400).set_body_json(fixture("error_400_range.json")))
        .expect(1)
        .mount(&server)
        .await;

    let client = builder(&server, &sa, 0).build_client().unwrap();
    let read = client
        .batch_get(&[
            A1Range::cell("Orders", 0, 8),
            A1Range::cell("Q1 / Q2", 0, 5),
        ])
        .await
        .unwrap();
    assert_eq!(read.len(), 2);
    assert_eq!(read[0].range, "Orders!A8");
    assert_eq!(read[0].values, vec![vec![Cell::from("order-7/paid")]]);
    assert_eq!(read[1].range, "'Q1 / Q2'!A5");
    assert!(read[1].values.is_empty(), "an empty cell has no values");

    let e = client
        .batch_get(&[A1Range::cell("Missing", 0, 1)])
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    assert_eq!(e.status(), Some(400));
    assert!(
        e.to_string().contains("Unable to parse range: Missing!A1"),
        "{e}"
    );
    assert_eq!(e.context().operation.as_deref(), Some("values.batchGet"));
}

#[tokio::test]
async fn the_sink_reads_the_key_column_and_appends_only_new_rows() {
    let server = MockServer::start().await;
    let sa = account();
    mount_token(&server, &sa, 1).await;
    Mock::given(method("GET"))
        .and(path(format!(
            "/v4/spreadsheets/{SHEET_ID}/values/Orders%21A%3AA"
        )))
        .respond_with(ResponseTemplate::new(200).set_body_json(fixture("get_key_column.json")))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(format!("/v4/spreadsheets/{SHEET_ID}/values/Orders%21A1:append")))
        .and(query_param("valueInputOption", "RAW"))
        .and(query_param("insertDataOption", "INSERT_ROWS"))
        .and(body_json(json!({"range": "Orders!A1", "majorDimension": "ROWS", "values": [["order-2/paid", 20]]})))
        .respond_with(ResponseTemplate::new(200).set_body_json(fixture("append_response.json")))
        .expect(1)
        .mount(&server)
        .await;
    let sink = builder(&server, &sa, 0).build().unwrap();
    let rows = vec![
        Row::new("order-1/paid").cell(10_i64),
        Row::new("order-2/paid").cell(20_i64),
        Row::new("order-3/paid").cell(30_i64),
    ];
    let out = sink.append_rows("Orders", rows).await.unwrap();
    assert_eq!((out.appended, out.already_present), (1, 2));
}

#[tokio::test]
async fn a_401_fetches_a_new_token_and_repeats_once() {
    let server = MockServer::start().await;
    let sa = account();
    mount_token(&server, &sa, 2).await;
    Mock::given(method("GET"))
        .respond_with(
            ResponseTemplate::new(401).set_body_json(fixture("error_401_unauthenticated.json")),
        )
        .up_to_n_times(1)
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_json(fixture("get_empty.json")))
        .expect(1)
        .mount(&server)
        .await;
    let client = builder(&server, &sa, 3).build_client().unwrap();
    let v = client.get(&A1Range::columns("Orders", 0, 0)).await.unwrap();
    assert!(v.values.is_empty());
    assert_eq!(client.token_exchanges(), 2);
}

#[tokio::test]
async fn a_plain_append_retries_429_but_not_500() {
    let server = MockServer::start().await;
    let sa = account();
    mount_token(&server, &sa, 1).await;
    let append = format!("/v4/spreadsheets/{SHEET_ID}/values/Orders%21A1:append");
    Mock::given(method("POST"))
        .and(path(append.clone()))
        .and(body_string_contains("order-1"))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("retry-after", "0")
                .set_body_json(fixture("error_429_resource_exhausted.json")),
        )
        .up_to_n_times(1)
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(append.clone()))
        .and(body_string_contains("order-1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(fixture("append_response.json")))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(append))
        .and(body_string_contains("order-2"))
        .respond_with(ResponseTemplate::new(500).set_body_json(fixture("error_500_internal.json")))
        .expect(1)
        .mount(&server)
        .await;
    let client = builder(&server, &sa, 3).build_client().unwrap();
    let range = A1Range::cell("Orders", 0, 1);
    client
        .append(&range, &[vec![Cell::from("order-1")]])
        .await
        .unwrap();
    let e = client
        .append(&range, &[vec![Cell::from("order-2")]])
        .await
        .unwrap_err();
    assert_eq!(
        (e.kind(), e.code()),
        (ErrorKind::Unavailable, Some("INTERNAL"))
    );
}

#[tokio::test]
async fn googles_errors_map_by_status_and_reason() {
    let server = MockServer::start().await;
    let sa = account();
    // One token, and one more after the 401 (which is repeated once with it).
    mount_token(&server, &sa, 2).await;
    let cases: [(&str, u16, ErrorKind, &str, bool); 7] = [
        (
            "error_400_range.json",
            400,
            ErrorKind::InvalidInput,
            "INVALID_ARGUMENT",
            false,
        ),
        (
            "error_401_unauthenticated.json",
            401,
            ErrorKind::Unauthenticated,
            "ACCESS_TOKEN_EXPIRED",
            false,
        ),
        (
            "error_403_permission_denied.json",
            403,
            ErrorKind::Forbidden,
            "PERMISSION_DENIED",
            false,
        ),
        (
            "error_404_not_found.json",
            404,
            ErrorKind::NotFound,
            "NOT_FOUND",
            false,
        ),
        (
            "error_429_resource_exhausted.json",
            429,
            ErrorKind::RateLimited,
            "RATE_LIMIT_EXCEEDED",
            true,
        ),
        (
            "error_500_internal.json",
            500,
            ErrorKind::Unavailable,
            "INTERNAL",
            true,
        ),
        (
            "error_503_unavailable.json",
            503,
            ErrorKind::Unavailable,
            "UNAVAILABLE",
            true,
        ),
    ];
    let client = builder(&server, &sa, 0).build_client().unwrap();
    for (i, (file, status, kind, code, retryable)) in cases.into_iter().enumerate() {
        let sheet = format!("Case_{i}");
        let mut resp = ResponseTemplate::new(status).set_body_json(fixture(file));
        if status == 429 {
            resp = resp.insert_header("retry-after", "7");
        }
        Mock::given(method("GET"))
            .and(path(format!(
                "/v4/spreadsheets/{SHEET_ID}/values/{sheet}%21A%3AA"
            )))
            .respond_with(resp)
            .mount(&server)
            .await;
        let e = client
            .get(&A1Range::columns(sheet.as_str(), 0, 0))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), kind, "{file}: {e}");
        assert_eq!(e.status(), Some(status), "{file}");
        assert_eq!(e.code(), Some(code), "{file}");
        assert_eq!(e.is_retryable(), retryable, "{file}");
        assert_eq!(e.provider_name(), Some(PROVIDER));
        let message = fixture(file)["error"]["message"]
            .as_str()
            .unwrap()
            .to_owned();
        assert_eq!(e.message(), message, "{file}");
        match status {
            400 => assert_eq!(e.field(), Some("range")),
            429 => {
                assert_eq!(e.retry_after(), Some(Duration::from_secs(7)));
                assert!(e.is_failover_safe());
            }
            503 => assert!(e.is_failover_safe()),
            500 => assert!(!e.is_failover_safe()),
            _ => {}
        }
    }
}

#[tokio::test]
async fn token_endpoint_errors_map_to_auth_and_configuration() {
    for (file, kind, code, field) in [
        (
            "oauth_invalid_grant.json",
            ErrorKind::Unauthenticated,
            "invalid_grant",
            None,
        ),
        (
            "oauth_invalid_scope.json",
            ErrorKind::Configuration,
            "invalid_scope",
            Some("scope"),
        ),
    ] {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/token"))
            .respond_with(ResponseTemplate::new(400).set_body_json(fixture(file)))
            .expect(1)
            .mount(&server)
            .await;
        let client = builder(&server, &account(), 3).build_client().unwrap();
        let e = client
            .get(&A1Range::columns("Orders", 0, 0))
            .await
            .unwrap_err();
        assert_eq!(
            (e.kind(), e.code(), e.status()),
            (kind, Some(code), Some(400)),
            "{file}: {e}"
        );
        assert_eq!(e.field(), field);
        assert!(!e.is_retryable());
        assert_eq!(
            e.message(),
            fixture(file)["error_description"].as_str().unwrap()
        );
    }
}

/// Token endpoints answering `expires_in: 0` (or absurdly large) neither refresh on every call
/// nor panic the refresh (`Instant` overflow): the lifetime is clamped to [60 s, 24 h].
#[tokio::test]
async fn absurd_token_lifetimes_are_clamped() {
    for expires_in in [
        json!(0),
        json!(u64::MAX),
        json!(9_223_372_036_854_775_807_u64),
    ] {
        let server = MockServer::start().await;
        let sa = account();
        let mut token = fixture("token.json");
        token["expires_in"] = expires_in.clone();
        Mock::given(method("POST"))
            .and(path("/token"))
            .respond_with(ResponseTemplate::new(200).set_body_json(token))
            .expect(1)
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .respond_with(
                ResponseTemplate::new(200)
                    .set_body_json(json!({"range": "Sheet1!A1:A1000", "majorDimension": "ROWS"})),
            )
            .mount(&server)
            .await;
        let client = builder(&server, &sa, 0).build_client().unwrap();
        let range = integrations_sheets::A1Range::columns("Sheet1", 0, 0);
        for _ in 0..3 {
            client.get(&range).await.unwrap();
        }
        assert_eq!(client.token_exchanges(), 1, "expires_in {expires_in}");
    }
}
