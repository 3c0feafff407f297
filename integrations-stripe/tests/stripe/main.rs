//! Contract tests against `wiremock`: exact method, path, headers and form body of every
//! operation, and the mapping of real Stripe error bodies (`tests/fixtures/*.json`).

use std::collections::BTreeMap;
use std::time::Duration;

use futures_util::StreamExt;
use integrations_core::provider::{
    CancelReason, CaptureMethod, PaymentProvider, PaymentStatus, RefundReason, RefundRequest,
};
use integrations_core::resilience::{Backoff, RetryPolicy};
use integrations_core::{Currency, ErrorKind, IdempotencyKey, Money, Policy};
use integrations_stripe::api::{
    CancelPaymentIntent, CapturePaymentIntent, ConfirmPaymentIntent, CreateCustomer,
    CreatePaymentIntent, CreateRefund, ListRefunds,
};
use integrations_stripe::{
    DEFAULT_API_VERSION, PROVIDER, RequestOptions, StripeBuilder, StripeClient, StripePayments,
};
use serde_json::{Value, json};
use wiremock::matchers::{body_string, header, method, path};
use wiremock::{Match, Mock, MockBuilder, MockServer, Request, ResponseTemplate};

const KEY: &str = "sk_test_4eC39HqLyjWDarjtT1zdp7dc";

fn fixture(name: &str) -> Value {
    let path = format!("{}/tests/fixtures/{name}.json", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&path).expect(&path)).expect("fixture is JSON")
}

/// The raw query string, exactly.
struct RawQuery(Option<&'static str>);
impl Match for RawQuery {
    fn matches(&self, r: &Request) -> bool {
        r.url.query() == self.0
    }
}

/// The header is absent.
struct NoHeader(&'static str);
impl Match for NoHeader {
    fn matches(&self, r: &Request) -> bool {
        !r.headers.contains_key(self.0)
    }
}

fn no_retry() -> Policy {
    Policy::builder(PROVIDER)
        .retry(RetryPolicy::none())
        .no_circuit_breaker()
        .attempt_timeout(Duration::from_secs(10))
        .build()
}

fn quick_retry() -> Policy {
    Policy::builder(PROVIDER)
        .retry(RetryPolicy::new(
            2,
            Backoff::new(Duration::from_millis(1), Duration::from_millis(2), 2.0),
        ))
        .no_circuit_breaker()
        .attempt_timeout(Duration::from_secs(10))
        .build()
}

async fn setup(policy: Policy) -> (MockServer, StripeClient) {
    let server = MockServer::start().await;
    let client = StripeBuilder::new()
        .with_secret_key(KEY)
        .with_base_url(server.uri())
        .with_policy(policy)
        .build()
        .unwrap()
        .client()
        .clone();
    (server, client)
}

/// A mock for `verb path` that also requires the auth and version headers.
fn stripe(verb: &str, p: &str) -> MockBuilder {
    Mock::given(method(verb))
        .and(path(p.to_owned()))
        .and(header("authorization", format!("Bearer {KEY}").as_str()))
        .and(header("stripe-version", DEFAULT_API_VERSION))
}

/// A POST mock: form content type and the idempotency key, and exactly `body`.
fn stripe_post(p: &str, key: &str, body: &str) -> MockBuilder {
    stripe("POST", p)
        .and(header("content-type", "application/x-www-form-urlencoded"))
        .and(header("idempotency-key", key))
        .and(body_string(body.to_owned()))
}

fn ok(body: Value) -> ResponseTemplate {
    ResponseTemplate::new(200)
        .set_body_json(body)
        .insert_header("request-id", "req_ok")
}

fn pi(id: &str, status: &str, amount: i64, currency: &str) -> Value {
    json!({
        "id": id, "object": "payment_intent", "amount": amount, "amount_capturable": 0,
        "amount_received": if status == "succeeded" { amount } else { 0 }, "currency": currency,
        "status": status, "capture_method": "automatic", "client_secret": format!("{id}_secret_x"),
        "created": 1_721_951_132, "livemode": false, "metadata": {}, "payment_method_types": ["card"]
    })
}

fn charge(id: &str, pi: &str, amount: i64, refunded: i64) -> Value {
    json!({
        "id": id, "object": "charge", "amount": amount, "amount_captured": amount,
        "amount_refunded": refunded, "captured": true, "currency": "usd", "paid": true,
        "payment_intent": pi, "refunded": refunded == amount, "status": "succeeded"
    })
}

fn key(s: &str) -> IdempotencyKey {
    IdempotencyKey::new(s).unwrap()
}

fn usd(m: i64) -> Money {
    Money::from_minor(m, Currency::USD)
}

mod errors;
mod operations;
mod raw_request;
