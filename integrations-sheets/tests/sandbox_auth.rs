//! Service-account auth against the sandbox: the token endpoint's verification and error shapes,
//! the client's token cache, single-flight refresh and 401 handling.

mod common;

use std::time::{Duration, SystemTime};

use common::fast_builder;
use futures_util::future::join_all;
use integrations_core::ErrorKind;
use integrations_core::provider::{Row, SheetsSink};
use integrations_sheets::A1Range;
use integrations_sheets::credentials::{GOOGLE_TOKEN_URI, SPREADSHEETS_SCOPE};
use integrations_sheets::sandbox::{
    Endpoint, Fault, SANDBOX_CLIENT_EMAIL, Sandbox, generate_service_account, test_service_account,
};
use serde_json::Value;

async fn exchange(sandbox: &Sandbox, grant_type: &str, assertion: &str) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .post(sandbox.token_url())
        .form(&[("grant_type", grant_type), ("assertion", assertion)])
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap())
}

const BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

#[tokio::test]
async fn the_token_endpoint_verifies_assertions_like_google() {
    let sandbox = Sandbox::start().await.unwrap();
    let key = sandbox.service_account().key().unwrap();
    let now = SystemTime::now();

    let good = key
        .assertion(SPREADSHEETS_SCOPE, GOOGLE_TOKEN_URI, now)
        .unwrap();
    let (status, body) = exchange(&sandbox, BEARER, &good).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3599);
    assert!(body["access_token"].as_str().unwrap().starts_with("ya29."));

    let cases: Vec<(String, &str, &str)> = vec![
        (
            key.assertion(SPREADSHEETS_SCOPE, "https://example.com/token", now)
                .unwrap(),
            "invalid_grant",
            "Invalid JWT: Failed audience check.",
        ),
        (
            key.assertion(
                SPREADSHEETS_SCOPE,
                GOOGLE_TOKEN_URI,
                now - Duration::from_secs(7200),
            )
            .unwrap(),
            "invalid_grant",
            "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. Check your iat and exp values in the JWT claim.",
        ),
        (
            key.assertion(
                SPREADSHEETS_SCOPE,
                GOOGLE_TOKEN_URI,
                now + Duration::from_secs(3600),
            )
            .unwrap(),
            "invalid_grant",
            "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. Check your iat and exp values in the JWT claim.",
        ),
        (
            key.assertion("https://example.com/auth/everything", GOOGLE_TOKEN_URI, now)
                .unwrap(),
            "invalid_scope",
            "Invalid OAuth scope or ID token audience provided.",
        ),
        (
            key.assertion("", GOOGLE_TOKEN_URI, now).unwrap(),
            "invalid_scope",
            "Empty or missing scope not allowed.",
        ),
        (
            test_service_account("stranger@elsewhere.iam.gserviceaccount.com")
                .unwrap()
                .key()
                .unwrap()
                .assertion(SPREADSHEETS_SCOPE, GOOGLE_TOKEN_URI, now)
                .unwrap(),
            "invalid_grant",
            "Invalid grant: account not found",
        ),
        (
            tamper_scope(&good),
            "invalid_grant",
            "Invalid JWT Signature.",
        ),
        (
            "not.a.jwt".to_owned(),
            "invalid_grant",
            "Invalid JWT: the assertion is not a well-formed JWT.",
        ),
    ];
    for (assertion, error, description) in cases {
        let (status, body) = exchange(&sandbox, BEARER, &assertion).await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(body["error"], error, "{body}");
        assert_eq!(body["error_description"], description, "{body}");
    }
    let (status, body) = exchange(&sandbox, "password", &good).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("unsupported_grant_type"))
    );
    assert_eq!(sandbox.stats().tokens_issued, 1);
}

/// The same header and signature over a payload with another scope.
fn tamper_scope(jwt: &str) -> String {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let parts: Vec<&str> = jwt.split('.').collect();
    let mut claims: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    claims["scope"] = Value::from("https://www.googleapis.com/auth/cloud-platform");
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap());
    format!("{}.{payload}.{}", parts[0], parts[2])
}

#[tokio::test]
async fn a_key_the_sandbox_does_not_know_signs_an_invalid_signature() {
    let sandbox = Sandbox::start().await.unwrap();
    // Same account, a key id the sandbox never saw (a rotated-out key).
    let rotated = generate_service_account(SANDBOX_CLIENT_EMAIL).unwrap();
    let client = fast_builder(&sandbox)
        .with_credentials_json(rotated.json())
        .build_client()
        .unwrap();
    let e = client
        .get(&A1Range::columns("Sheet1", 0, 0))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unauthenticated);
    assert_eq!(e.code(), Some("invalid_grant"));
    assert_eq!(e.status(), Some(400));
    assert!(e.to_string().contains("Invalid JWT Signature."), "{e}");
    assert!(!e.is_retryable());
    assert_eq!(sandbox.stats().token_requests, 1, "not retried");
    // Once registered, the same key works.
    sandbox.register_service_account(&rotated).unwrap();
    client.get(&A1Range::columns("Sheet1", 0, 0)).await.unwrap();
}

#[tokio::test]
async fn a_scope_google_refuses_is_a_configuration_error() {
    let sandbox = Sandbox::start().await.unwrap();
    let client = fast_builder(&sandbox)
        .with_scope("https://example.com/all")
        .build_client()
        .unwrap();
    let e = client
        .get(&A1Range::columns("Sheet1", 0, 0))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Configuration);
    assert_eq!(e.field(), Some("scope"));
    assert_eq!(e.code(), Some("invalid_scope"));
}

#[tokio::test(start_paused = true)]
async fn tokens_are_cached_and_refreshed_before_they_expire() {
    let sandbox = Sandbox::builder()
        .token_lifetime(Duration::from_secs(600))
        .start()
        .await
        .unwrap();
    let client = fast_builder(&sandbox).build_client().unwrap();
    let range = A1Range::columns("Sheet1", 0, 0);
    client.get(&range).await.unwrap();
    tokio::time::sleep(Duration::from_secs(299)).await;
    client.get(&range).await.unwrap();
    assert_eq!(sandbox.stats().tokens_issued, 1, "still fresh");
    // Default margin 5 min, capped at half the lifetime: refreshed after 300 s of 600.
    tokio::time::sleep(Duration::from_secs(2)).await;
    client.get(&range).await.unwrap();
    assert_eq!(sandbox.stats().tokens_issued, 2);
    assert_eq!(client.token_exchanges(), 2);
    assert_eq!(
        sandbox.stats().unauthenticated,
        0,
        "never used an expired token"
    );
}

#[tokio::test(start_paused = true)]
async fn an_absurd_expires_in_is_clamped_to_a_day() {
    // `expires_in: u64::MAX` used to overflow `Instant` and panic the refresh.
    let sandbox = Sandbox::builder()
        .token_lifetime(Duration::from_secs(u64::MAX))
        .start()
        .await
        .unwrap();
    let client = fast_builder(&sandbox).build_client().unwrap();
    let range = A1Range::columns("Sheet1", 0, 0);
    client.get(&range).await.unwrap();
    client.get(&range).await.unwrap();
    assert_eq!(sandbox.stats().tokens_issued, 1);
    // Believed for 24 h at most (minus the 5 min margin), so it is refreshed within a day.
    tokio::time::sleep(Duration::from_secs(24 * 3600)).await;
    client.get(&range).await.unwrap();
    assert_eq!(sandbox.stats().tokens_issued, 2);
}

#[tokio::test(start_paused = true)]
async fn a_failed_refresh_falls_back_to_the_still_valid_token() {
    let sandbox = Sandbox::builder()
        .token_lifetime(Duration::from_secs(600))
        .start()
        .await
        .unwrap();
    let client = fast_builder(&sandbox).build_client().unwrap();
    let range = A1Range::columns("Sheet1", 0, 0);
    client.get(&range).await.unwrap();
    tokio::time::sleep(Duration::from_secs(400)).await;
    sandbox.fail_next_on(Endpoint::Token, 100, Fault::ServerError);
    client.get(&range).await.unwrap();
    tokio::time::sleep(Duration::from_secs(300)).await;
    let e = client.get(&range).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
    assert_eq!(e.code(), Some("internal_failure"));
}

#[tokio::test(start_paused = true)]
async fn concurrent_callers_share_one_refresh() {
    let sandbox = Sandbox::start().await.unwrap();
    let client = fast_builder(&sandbox)
        .with_reads_per_minute(1000)
        .build_client()
        .unwrap();
    let range = A1Range::columns("Sheet1", 0, 0);
    let calls = (0..25).map(|_| client.get(&range));
    for r in join_all(calls).await {
        r.unwrap();
    }
    assert_eq!(sandbox.stats().token_requests, 1);

    // A refresh that fails is shared as well: one exchange, every caller gets its error.
    let stranger = test_service_account("stranger@elsewhere.iam.gserviceaccount.com").unwrap();
    let refused = fast_builder(&sandbox)
        .with_credentials_json(stranger.json())
        .build_client()
        .unwrap();
    let calls = (0..10).map(|_| refused.get(&range));
    for r in join_all(calls).await {
        assert_eq!(r.unwrap_err().kind(), ErrorKind::Unauthenticated);
    }
    assert_eq!(sandbox.stats().token_requests, 2);
}

#[tokio::test(start_paused = true)]
async fn a_401_refreshes_the_token_once_and_retries() {
    let sandbox = Sandbox::start().await.unwrap();
    sandbox.add_sheet(sandbox.spreadsheet_id(), "Orders");
    let sink = fast_builder(&sandbox).build().unwrap();
    let client = sink.client().clone();
    client.get(&A1Range::columns("Orders", 0, 0)).await.unwrap();
    sandbox.expire_tokens();
    client.get(&A1Range::columns("Orders", 0, 0)).await.unwrap();
    assert_eq!(sandbox.stats().tokens_issued, 2);
    assert_eq!(sandbox.stats().unauthenticated, 1);
    // The append path too.
    sandbox.expire_tokens();
    let out = sink
        .append_rows("Orders", vec![Row::new("order-1/paid").cell(1_i64)])
        .await
        .unwrap();
    assert_eq!(out.appended, 1);
    assert_eq!(sandbox.stats().tokens_issued, 3);
}
