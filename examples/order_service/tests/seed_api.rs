//! The seed's §4 "API Documentation", replayed request by request as written: bodies and headers
//! copied from the document, `<token>` replaced by a real minted JWT, ids and keys replaced by
//! the ones the service returned. Each answer is checked for its status and the documented
//! envelope (`{"success": true, "data": …}`, or `{"success": false, "error": {…}}`).
//!
//! §4.1 says every endpoint except webhooks and health checks needs authentication; the
//! document's payment examples omit the header, so they are sent with the same bearer token.
//! The monitoring routes are public in this service, and are sent without one, as written.

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::{Harness, Resp};
use integrations_core::IdempotencyKey;
use integrations_order_service::history::MetricsHistory;
use integrations_order_service::jwt::JwtVerifier;
use integrations_stripe::api::ConfirmPaymentIntent;
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::{Value, json};

const ISS: &str = "https://auth.example.com/";
const AUD: &str = "order-service";
const SECRET: &[u8] = b"seed-api-test-secret-at-least-32-bytes";

/// §4.2 "Create Order", verbatim.
const CREATE_ORDER: &str = r#"{
  "customerId": "cust_123",
  "customerEmail": "john@example.com",
  "customerName": "John Doe",
  "items": [
    {
      "id": "item_1",
      "name": "Product A",
      "quantity": 2,
      "price": 29.99
    }
  ],
  "totalAmount": 59.98,
  "currency": "usd",
  "shippingAddress": {
    "street": "123 Main St",
    "city": "New York",
    "state": "NY",
    "zipCode": "10001",
    "country": "USA"
  }
}"#;

/// §4.2 "Confirm Payment", verbatim (ids replaced before sending).
const CONFIRM_PAYMENT: &str = r#"{
  "paymentIntentId": "pi_xxx",
  "orderId": "550e8400-e29b-41d4-a716-446655440000"
}"#;

/// §4.2 "Create Refund", verbatim (id replaced before sending).
const CREATE_REFUND: &str = r#"{
  "orderId": "550e8400-e29b-41d4-a716-446655440000",
  "amount": 59.98,
  "reason": "requested_by_customer"
}"#;

/// §4.2 "Stripe Webhook", verbatim (its `{ ... }` is the document's ellipsis).
const STRIPE_WEBHOOK: &str = r#"{
  "type": "payment_intent.succeeded",
  "data": { ... }
}"#;

const DOC_ORDER_ID: &str = "550e8400-e29b-41d4-a716-446655440000";

fn token() -> String {
    let now = integrations_order_service::history::now_ms() / 1000;
    encode(
        &Header::new(Algorithm::HS256),
        &json!({ "sub": "cust_123", "iss": ISS, "aud": AUD, "iat": now, "exp": now + 600 }),
        &EncodingKey::from_secret(SECRET),
    )
    .unwrap()
}

async fn send(
    h: &Harness,
    method: &str,
    uri: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> Resp {
    let mut b = Request::builder().method(method).uri(uri);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let body = body.map_or_else(Body::empty, |s| Body::from(s.to_owned()));
    h.send(b.body(body).unwrap()).await
}

#[track_caller]
fn success(r: &Resp, status: StatusCode, what: &str) -> Value {
    assert_eq!(r.status, status, "{what}: {}", r.text);
    assert_eq!(r.json["success"], true, "{what}: {}", r.text);
    let obj = r.json.as_object().unwrap();
    assert_eq!(obj.len(), 2, "{what}: only success and data: {}", r.text);
    assert!(r.json["data"].is_object(), "{what}: {}", r.text);
    r.json["data"].clone()
}

#[track_caller]
fn failure(r: &Resp, status: StatusCode, what: &str) -> Value {
    assert_eq!(r.status, status, "{what}: {}", r.text);
    assert_eq!(r.json["success"], false, "{what}: {}", r.text);
    assert_eq!(r.json.as_object().unwrap().len(), 2, "{what}: {}", r.text);
    let e = &r.json["error"];
    assert!(e["type"].is_string(), "{what}: {}", r.text);
    assert!(e["message"].is_string(), "{what}: {}", r.text);
    e.clone()
}

async fn harness() -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let history = MetricsHistory::open(dir.path().join("history.db"))
        .await
        .unwrap();
    // The history keeps its file open; the directory may go.
    let verifier = JwtVerifier::new(ISS, AUD).unwrap().hs256(SECRET).unwrap();
    Harness::with(|b| b.jwt(verifier).metrics_history(history)).await
}

#[tokio::test]
async fn every_request_of_the_seed_api_documentation_as_written() {
    let h = harness().await;
    let bearer = format!("Bearer {}", token());
    let auth = ("Authorization", bearer.as_str());
    let json_ct = ("Content-Type", "application/json");

    // 4.1 without credentials: refused.
    let r = send(&h, "GET", "/api/orders/abc", &[], None).await;
    failure(&r, StatusCode::UNAUTHORIZED, "no credentials");

    // Create Order.
    let r = send(
        &h,
        "POST",
        "/api/orders",
        &[json_ct, auth],
        Some(CREATE_ORDER),
    )
    .await;
    let data = success(&r, StatusCode::CREATED, "Create Order");
    let order = &data["order"];
    let id = order["id"].as_str().unwrap().to_owned();
    assert_eq!(order["status"], "pending");
    assert!(order["createdAt"].as_str().unwrap().ends_with('Z'));
    assert_eq!(order["totalAmount"], "59.98");
    let secret = data["clientSecret"].as_str().unwrap();
    assert!(
        secret.starts_with("pi_") && secret.contains("_secret_"),
        "{secret}"
    );
    let intent = order["paymentIntentId"].as_str().unwrap().to_owned();

    // A second order, so that List Orders has a page after the first.
    let r = send(
        &h,
        "POST",
        "/api/orders",
        &[json_ct, auth],
        Some(CREATE_ORDER),
    )
    .await;
    let second = success(&r, StatusCode::CREATED, "Create Order again");
    let second_id = second["order"]["id"].as_str().unwrap().to_owned();

    // Get Order.
    let r = send(&h, "GET", &format!("/api/orders/{id}"), &[auth], None).await;
    let data = success(&r, StatusCode::OK, "Get Order");
    assert_eq!(data["order"]["id"], id.as_str());
    assert_eq!(data["order"]["customerEmail"], "john@example.com");
    assert_eq!(data["order"]["shippingAddress"]["zipCode"], "10001");

    // List Orders: `<pagination_key>` is the key the first page returned.
    let r = send(&h, "GET", "/api/orders?limit=1", &[auth], None).await;
    let first_page = success(&r, StatusCode::OK, "List Orders, first page");
    assert_eq!(first_page["orders"][0]["id"], second_id.as_str());
    let key = first_page["nextCursor"].as_str().unwrap().to_owned();
    let r = send(
        &h,
        "GET",
        &format!("/api/orders?limit=20&lastKey={key}"),
        &[auth],
        None,
    )
    .await;
    let page = success(&r, StatusCode::OK, "List Orders");
    assert_eq!(page["count"], 1);
    assert_eq!(page["orders"][0]["id"], id.as_str());
    assert_eq!(page["nextCursor"], Value::Null);

    // The client pays with the client secret (Stripe.js, here the sandbox's API)…
    let stripe = h.stripe.client().unwrap();
    stripe
        .confirm_payment_intent(
            &intent,
            &ConfirmPaymentIntent::with_payment_method("pm_card_visa"),
            &IdempotencyKey::derive("frontend", &intent).unwrap(),
        )
        .await
        .unwrap();
    // …then Confirm Payment.
    let body = CONFIRM_PAYMENT
        .replace("pi_xxx", &intent)
        .replace(DOC_ORDER_ID, &id);
    let r = send(
        &h,
        "POST",
        "/api/payments/confirm",
        &[json_ct, auth],
        Some(&body),
    )
    .await;
    let data = success(&r, StatusCode::OK, "Confirm Payment");
    assert_eq!(data["order"]["status"], "paid");
    assert_eq!(data["payment"]["status"], "succeeded");
    assert_eq!(data["payment"]["amount"], "59.98");

    // Stripe Webhook, as written: the placeholder signature is refused…
    let r = send(
        &h,
        "POST",
        "/webhooks/stripe",
        &[("Stripe-Signature", "<signature>")],
        Some(STRIPE_WEBHOOK),
    )
    .await;
    failure(&r, StatusCode::BAD_REQUEST, "Stripe Webhook as written");
    // …and the real payment_intent.succeeded Stripe signed is accepted.
    let delivered = h.deliver_all("payment_intent.succeeded").await;
    assert!(!delivered.is_empty());
    let d = &delivered[0];
    let r = h.deliver(d).await;
    success(&r, StatusCode::OK, "Stripe Webhook, signed (a duplicate)");

    // Create Refund: all of 59.98, as a JSON number.
    let body = CREATE_REFUND.replace(DOC_ORDER_ID, &id);
    let r = send(
        &h,
        "POST",
        "/api/payments/refund",
        &[json_ct, auth],
        Some(&body),
    )
    .await;
    let data = success(&r, StatusCode::OK, "Create Refund");
    assert_eq!(data["refund"]["amount"], "59.98");
    assert_eq!(data["order"]["status"], "refunded");
    assert_eq!(data["remaining"], "0.00");

    // System Health.
    let r = send(&h, "GET", "/api/monitoring/health", &[], None).await;
    let data = success(&r, StatusCode::OK, "System Health");
    assert_eq!(data["status"], "ok");

    // Metrics.
    let r = send(
        &h,
        "GET",
        "/api/monitoring/metrics?timeRange=24h",
        &[auth],
        None,
    )
    .await;
    let data = success(&r, StatusCode::OK, "Metrics");
    assert_eq!(data["timeRange"], "24h");
    assert!(data["integrations"].is_array());

    // Integration Status.
    let r = send(&h, "GET", "/api/monitoring/integrations", &[auth], None).await;
    let data = success(&r, StatusCode::OK, "Integration Status");
    let stripe = &data["integrations"][0];
    assert_eq!(stripe["name"], "stripe");
    assert!(stripe["metrics"]["successRate"].is_number(), "{stripe}");
}

/// Method, path, headers, body, expected status.
type Case<'a> = (
    &'a str,
    String,
    Vec<(&'a str, &'a str)>,
    Option<&'a str>,
    StatusCode,
);

#[tokio::test]
async fn every_error_path_uses_the_same_envelope() {
    let h = harness().await;
    let bearer = format!("Bearer {}", token());
    let auth = ("Authorization", bearer.as_str());
    let json_ct = ("Content-Type", "application/json");
    let cases: Vec<Case<'_>> = vec![
        (
            "GET",
            "/nowhere".into(),
            vec![],
            None,
            StatusCode::NOT_FOUND,
        ),
        (
            "GET",
            "/api/nowhere".into(),
            vec![auth],
            None,
            StatusCode::NOT_FOUND,
        ),
        (
            "DELETE",
            "/api/orders".into(),
            vec![auth],
            None,
            StatusCode::METHOD_NOT_ALLOWED,
        ),
        (
            "PUT",
            "/api/orders/x".into(),
            vec![auth],
            None,
            StatusCode::METHOD_NOT_ALLOWED,
        ),
        (
            "POST",
            "/api/monitoring/health".into(),
            vec![],
            None,
            StatusCode::METHOD_NOT_ALLOWED,
        ),
        (
            "GET",
            "/webhooks/stripe".into(),
            vec![],
            None,
            StatusCode::METHOD_NOT_ALLOWED,
        ),
        (
            "GET",
            "/api/orders/nope".into(),
            vec![auth],
            None,
            StatusCode::NOT_FOUND,
        ),
        (
            "GET",
            "/api/orders/%FF".into(),
            vec![auth],
            None,
            StatusCode::BAD_REQUEST,
        ),
        (
            "GET",
            "/api/orders?limit=0".into(),
            vec![auth],
            None,
            StatusCode::BAD_REQUEST,
        ),
        (
            "GET",
            "/api/orders?lastKey=zz".into(),
            vec![auth],
            None,
            StatusCode::BAD_REQUEST,
        ),
        (
            "POST",
            "/api/orders".into(),
            vec![json_ct, auth],
            Some("{"),
            StatusCode::BAD_REQUEST,
        ),
        (
            "POST",
            "/api/orders".into(),
            vec![json_ct, auth],
            Some("[]"),
            StatusCode::BAD_REQUEST,
        ),
        (
            "POST",
            "/api/orders".into(),
            vec![json_ct, ("Authorization", "Bearer a.b.c")],
            Some("{}"),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "POST",
            "/api/payments/confirm".into(),
            vec![json_ct, auth],
            Some("{}"),
            StatusCode::BAD_REQUEST,
        ),
        (
            "POST",
            "/api/payments/refund".into(),
            vec![json_ct, auth],
            Some(r#"{"orderId": "nope"}"#),
            StatusCode::NOT_FOUND,
        ),
        (
            "POST",
            "/api/monitoring/dead-letters/nope/replay".into(),
            vec![auth],
            None,
            StatusCode::NOT_FOUND,
        ),
        (
            "GET",
            "/api/monitoring/metrics?timeRange=30d".into(),
            vec![auth],
            None,
            StatusCode::BAD_REQUEST,
        ),
        (
            "POST",
            "/webhooks/stripe".into(),
            vec![],
            Some("{}"),
            StatusCode::BAD_REQUEST,
        ),
        (
            "POST",
            "/webhooks/sns".into(),
            vec![],
            Some("{}"),
            StatusCode::NOT_FOUND,
        ),
    ];
    for (method, uri, headers, body, status) in cases {
        let r = send(&h, method, &uri, &headers, body).await;
        failure(&r, status, &format!("{method} {uri}"));
    }
    let big = format!(
        r#"{{"pad": "{}"}}"#,
        "x".repeat(integrations_order_service::API_BODY_LIMIT)
    );
    let r = send(&h, "POST", "/api/orders", &[json_ct, auth], Some(&big)).await;
    failure(&r, StatusCode::PAYLOAD_TOO_LARGE, "a body over the limit");
}
