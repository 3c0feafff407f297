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

#[tokio::test]
async fn create_payment_intent_sends_the_exact_form() {
    let (server, client) = setup(no_retry()).await;
    stripe_post(
        "/v1/payment_intents",
        "order-42/payment",
        "amount=5998&currency=usd&customer=cus_1&payment_method=pm_card_visa\
         &payment_method_types[0]=card&confirm=true&capture_method=manual&description=Order+42\
         &receipt_email=jenny@example.com&metadata[note]=a%26b%3Dc&metadata[order_id]=42&expand[0]=latest_charge",
    )
    .respond_with(ok(pi("pi_1", "requires_capture", 5998, "usd")))
    .expect(1)
    .mount(&server)
    .await;
    let params = CreatePaymentIntent::new(usd(5998))
        .customer("cus_1")
        .payment_method("pm_card_visa")
        .payment_method_type("card")
        .confirm(true)
        .capture_method(CaptureMethod::Manual)
        .description("Order 42")
        .receipt_email("jenny@example.com")
        .metadata("order_id", "42")
        .metadata("note", "a&b=c")
        .expand("latest_charge");
    let got = client
        .create_payment_intent(&params, &key("order-42/payment"))
        .await
        .unwrap();
    assert_eq!(got.id, "pi_1");
    assert_eq!(got.amount, usd(5998));
    assert_eq!(got.status, PaymentStatus::RequiresCapture);
}

#[tokio::test]
async fn retrieve_update_confirm_capture_cancel() {
    let (server, client) = setup(no_retry()).await;
    stripe("GET", "/v1/payment_intents/pi_1")
        .and(RawQuery(Some("expand[0]=latest_charge&expand[1]=customer")))
        .and(NoHeader("idempotency-key"))
        .respond_with(ok(pi("pi_1", "requires_payment_method", 100, "usd")))
        .expect(1)
        .mount(&server)
        .await;
    stripe_post(
        "/v1/payment_intents/pi_1",
        "k-meta",
        "metadata[order_id]=42&metadata[stale]=",
    )
    .respond_with(ok(pi("pi_1", "requires_payment_method", 100, "usd")))
    .expect(1)
    .mount(&server)
    .await;
    stripe_post(
        "/v1/payment_intents/pi_1/confirm",
        "k-confirm",
        "payment_method=pm_card_visa&return_url=https://shop.example/done&expand[0]=latest_charge",
    )
    .respond_with(ok(pi("pi_1", "requires_capture", 100, "usd")))
    .expect(1)
    .mount(&server)
    .await;
    stripe_post(
        "/v1/payment_intents/pi_1/capture",
        "k-capture",
        "amount_to_capture=60",
    )
    .respond_with(ok(pi("pi_1", "succeeded", 100, "usd")))
    .expect(1)
    .mount(&server)
    .await;
    stripe_post("/v1/payment_intents/pi_2/capture", "k-capture-full", "")
        .respond_with(ok(pi("pi_2", "succeeded", 100, "usd")))
        .expect(1)
        .mount(&server)
        .await;
    stripe_post(
        "/v1/payment_intents/pi_3/cancel",
        "k-cancel",
        "cancellation_reason=requested_by_customer",
    )
    .respond_with(ok(pi("pi_3", "canceled", 100, "usd")))
    .expect(1)
    .mount(&server)
    .await;

    client
        .retrieve_payment_intent("pi_1", &["latest_charge", "customer"])
        .await
        .unwrap();
    let meta = BTreeMap::from([
        ("order_id".to_owned(), "42".to_owned()),
        ("stale".to_owned(), String::new()),
    ]);
    client
        .update_payment_intent_metadata("pi_1", &meta, &key("k-meta"))
        .await
        .unwrap();
    let mut confirm =
        ConfirmPaymentIntent::with_payment_method("pm_card_visa").expand("latest_charge");
    confirm.return_url = Some("https://shop.example/done".into());
    client
        .confirm_payment_intent("pi_1", &confirm, &key("k-confirm"))
        .await
        .unwrap();
    client
        .capture_payment_intent(
            "pi_1",
            &CapturePaymentIntent::partial(usd(60)),
            &key("k-capture"),
        )
        .await
        .unwrap();
    client
        .capture_payment_intent(
            "pi_2",
            &CapturePaymentIntent::full(),
            &key("k-capture-full"),
        )
        .await
        .unwrap();
    let canceled = client
        .cancel_payment_intent(
            "pi_3",
            &CancelPaymentIntent::reason(CancelReason::RequestedByCustomer),
            &key("k-cancel"),
        )
        .await
        .unwrap();
    assert_eq!(canceled.status, PaymentStatus::Canceled);
}

#[tokio::test]
async fn refunds_customers_events_and_charges() {
    let (server, client) = setup(no_retry()).await;
    let refund = json!({"id": "re_1", "object": "refund", "amount": 1000, "currency": "usd",
        "charge": "ch_1", "payment_intent": "pi_1", "status": "succeeded", "created": 1,
        "reason": "requested_by_customer", "metadata": {"order_id": "42"}});
    stripe_post(
        "/v1/refunds",
        "order-42/refund/1",
        "payment_intent=pi_1&amount=1000&reason=requested_by_customer&metadata[order_id]=42",
    )
    .respond_with(ok(refund.clone()))
    .expect(1)
    .mount(&server)
    .await;
    stripe("GET", "/v1/refunds/re_1")
        .and(RawQuery(None))
        .respond_with(ok(refund.clone()))
        .expect(1)
        .mount(&server)
        .await;
    stripe_post(
        "/v1/customers",
        "cust-1",
        "email=jenny@example.com&name=Jenny+Rosen&metadata[crm]=7",
    )
    .respond_with(ok(
        json!({"id": "cus_1", "object": "customer", "email": "jenny@example.com"}),
    ))
    .expect(1)
    .mount(&server)
    .await;
    stripe("GET", "/v1/customers/cus_1")
        .respond_with(ok(json!({"id": "cus_1", "object": "customer"})))
        .expect(1)
        .mount(&server)
        .await;
    stripe("GET", "/v1/charges/ch_1")
        .respond_with(ok(charge("ch_1", "pi_1", 5000, 1000)))
        .expect(1)
        .mount(&server)
        .await;
    let mut event = fixture("object_event");
    event["id"] = json!("evt_1");
    stripe("GET", "/v1/events/evt_1")
        .respond_with(ok(event))
        .expect(1)
        .mount(&server)
        .await;

    let r = client
        .create_refund(
            &CreateRefund::for_payment_intent("pi_1")
                .amount(usd(1000))
                .reason(RefundReason::RequestedByCustomer)
                .metadata("order_id", "42"),
            &key("order-42/refund/1"),
        )
        .await
        .unwrap();
    assert_eq!(r.amount, usd(1000));
    assert_eq!(client.retrieve_refund("re_1").await.unwrap(), r);
    let c = client
        .create_customer(
            &CreateCustomer::new()
                .email("jenny@example.com")
                .name("Jenny Rosen")
                .metadata("crm", "7"),
            &key("cust-1"),
        )
        .await
        .unwrap();
    assert_eq!(c.email.as_deref(), Some("jenny@example.com"));
    assert_eq!(client.retrieve_customer("cus_1").await.unwrap().id, "cus_1");
    assert_eq!(
        client.retrieve_charge("ch_1").await.unwrap().refundable(),
        usd(4000)
    );
    let e = client.retrieve_event("evt_1").await.unwrap();
    assert_eq!(e.type_, "plan.created");
}

#[tokio::test]
async fn refund_stream_pages_with_starting_after() {
    let (server, client) = setup(no_retry()).await;
    let r = |id: &str| json!({"id": id, "object": "refund", "amount": 1, "currency": "usd", "status": "succeeded"});
    stripe("GET", "/v1/refunds")
        .and(RawQuery(Some("payment_intent=pi_1&limit=2")))
        .respond_with(ok(json!({"object": "list", "data": [r("re_3"), r("re_2")], "has_more": true, "url": "/v1/refunds"})))
        .expect(2)
        .mount(&server)
        .await;
    stripe("GET", "/v1/refunds")
        .and(RawQuery(Some(
            "payment_intent=pi_1&limit=2&starting_after=re_2",
        )))
        .respond_with(ok(
            json!({"object": "list", "data": [r("re_1")], "has_more": false, "url": "/v1/refunds"}),
        ))
        .expect(1)
        .mount(&server)
        .await;
    let ids: Vec<String> = client
        .refunds_stream(ListRefunds::for_payment_intent("pi_1").limit(2))
        .map(|r| r.unwrap().id)
        .collect()
        .await;
    assert_eq!(ids, ["re_3", "re_2", "re_1"]);
    let page = client
        .list_refunds(&ListRefunds::for_payment_intent("pi_1").limit(2))
        .await
        .unwrap();
    assert!(page.has_more);
}

#[tokio::test]
async fn connect_account_header_is_sent() {
    let server = MockServer::start().await;
    let client = StripeBuilder::new()
        .with_secret_key(KEY)
        .with_base_url(server.uri())
        .with_account("acct_1032D82eZvKYlo2C")
        .with_api_version("2024-06-20")
        .with_policy(no_retry())
        .build()
        .unwrap();
    Mock::given(method("GET"))
        .and(path("/v1/customers/cus_1"))
        .and(header("stripe-account", "acct_1032D82eZvKYlo2C"))
        .and(header("stripe-version", "2024-06-20"))
        .respond_with(ok(json!({"id": "cus_1"})))
        .expect(1)
        .mount(&server)
        .await;
    client.client().retrieve_customer("cus_1").await.unwrap();
}

#[tokio::test]
async fn error_fixtures_map_by_meaning() {
    struct Case {
        fixture: &'static str,
        status: u16,
        headers: &'static [(&'static str, &'static str)],
        kind: ErrorKind,
        code: Option<&'static str>,
        decline_code: Option<&'static str>,
        retryable: bool,
    }
    let cases = [
        Case {
            fixture: "card_declined",
            status: 402,
            headers: &[],
            kind: ErrorKind::Declined,
            code: Some("card_declined"),
            decline_code: Some("generic_decline"),
            retryable: false,
        },
        Case {
            fixture: "insufficient_funds",
            status: 402,
            headers: &[],
            kind: ErrorKind::Declined,
            code: Some("card_declined"),
            decline_code: Some("insufficient_funds"),
            retryable: false,
        },
        Case {
            fixture: "expired_card",
            status: 402,
            headers: &[],
            kind: ErrorKind::Declined,
            code: Some("expired_card"),
            decline_code: Some("expired_card"),
            retryable: false,
        },
        Case {
            fixture: "idempotency_error",
            status: 400,
            headers: &[],
            kind: ErrorKind::Conflict,
            code: None,
            decline_code: None,
            retryable: false,
        },
        Case {
            fixture: "idempotency_error",
            status: 409,
            headers: &[],
            kind: ErrorKind::Conflict,
            code: None,
            decline_code: None,
            retryable: true,
        },
        Case {
            fixture: "resource_missing",
            status: 404,
            headers: &[],
            kind: ErrorKind::NotFound,
            code: Some("resource_missing"),
            decline_code: None,
            retryable: false,
        },
        Case {
            fixture: "authentication_error",
            status: 401,
            headers: &[],
            kind: ErrorKind::Unauthenticated,
            code: None,
            decline_code: None,
            retryable: false,
        },
        Case {
            fixture: "authentication_error",
            status: 403,
            headers: &[],
            kind: ErrorKind::Forbidden,
            code: None,
            decline_code: None,
            retryable: false,
        },
        Case {
            fixture: "rate_limit",
            status: 429,
            headers: &[("retry-after", "1")],
            kind: ErrorKind::RateLimited,
            code: Some("rate_limit"),
            decline_code: None,
            retryable: true,
        },
        Case {
            fixture: "api_error",
            status: 500,
            headers: &[],
            kind: ErrorKind::Unavailable,
            code: None,
            decline_code: None,
            retryable: true,
        },
        Case {
            fixture: "api_error",
            status: 500,
            headers: &[("stripe-should-retry", "false")],
            kind: ErrorKind::Unavailable,
            code: None,
            decline_code: None,
            retryable: false,
        },
        Case {
            fixture: "resource_missing",
            status: 400,
            headers: &[("stripe-should-retry", "true")],
            kind: ErrorKind::InvalidInput,
            code: Some("resource_missing"),
            decline_code: None,
            retryable: true,
        },
        Case {
            fixture: "refund_too_large",
            status: 400,
            headers: &[],
            kind: ErrorKind::InvalidInput,
            code: Some("amount_too_large"),
            decline_code: None,
            retryable: false,
        },
    ];
    for case in cases {
        let (server, client) = setup(no_retry()).await;
        let mut resp = ResponseTemplate::new(case.status)
            .set_body_json(fixture(case.fixture))
            .insert_header("request-id", "req_fixture");
        for (k, v) in case.headers {
            resp = resp.insert_header(*k, *v);
        }
        Mock::given(method("GET"))
            .respond_with(resp)
            .expect(1)
            .mount(&server)
            .await;
        let err = client
            .retrieve_payment_intent("pi_1", &[])
            .await
            .unwrap_err();
        let what = format!("{} {}", case.fixture, case.status);
        assert_eq!(err.kind(), case.kind, "{what}: {err}");
        assert_eq!(err.code(), case.code, "{what}");
        assert_eq!(err.is_retryable(), case.retryable, "{what}");
        assert_eq!(err.request_id(), Some("req_fixture"), "{what}");
        assert_eq!(err.status(), Some(case.status), "{what}");
        assert_eq!(err.provider_name(), Some(PROVIDER), "{what}");
        if let integrations_core::Error::Declined { decline_code, .. } = &err {
            assert_eq!(decline_code.as_deref(), case.decline_code, "{what}");
        }
        if case.fixture == "refund_too_large" {
            assert_eq!(err.field(), Some("amount"));
        }
        if case.fixture == "rate_limit" {
            assert_eq!(err.retry_after(), Some(Duration::from_secs(1)));
        }
        let msg = err.to_string();
        assert!(!msg.contains(KEY), "{msg}");
    }
}

#[tokio::test]
async fn retries_reuse_one_idempotency_key() {
    let (server, client) = setup(quick_retry()).await;
    stripe_post(
        "/v1/payment_intents",
        "order-7/payment",
        "amount=100&currency=usd",
    )
    .respond_with(ResponseTemplate::new(500).set_body_json(fixture("api_error")))
    .up_to_n_times(2)
    .with_priority(1)
    .mount(&server)
    .await;
    stripe_post(
        "/v1/payment_intents",
        "order-7/payment",
        "amount=100&currency=usd",
    )
    .respond_with(ok(pi("pi_7", "requires_payment_method", 100, "usd")))
    .with_priority(2)
    .mount(&server)
    .await;
    let got = client
        .create_payment_intent(&CreatePaymentIntent::new(usd(100)), &key("order-7/payment"))
        .await
        .unwrap();
    assert_eq!(got.id, "pi_7");
    let requests = server.received_requests().await.unwrap();
    assert_eq!(requests.len(), 3);
    for r in &requests {
        assert_eq!(r.headers["idempotency-key"], "order-7/payment");
    }
}

#[tokio::test]
async fn declines_and_idempotency_conflicts_are_not_retried() {
    let (server, client) = setup(quick_retry()).await;
    Mock::given(method("POST"))
        .and(path("/v1/payment_intents/pi_1/confirm"))
        .respond_with(ResponseTemplate::new(402).set_body_json(fixture("insufficient_funds")))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/payment_intents/pi_2/confirm"))
        .respond_with(ResponseTemplate::new(400).set_body_json(fixture("idempotency_error")))
        .expect(1)
        .mount(&server)
        .await;
    let k = key("k");
    let e = client
        .confirm_payment_intent("pi_1", &ConfirmPaymentIntent::default(), &k)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Declined);
    let e = client
        .confirm_payment_intent("pi_2", &ConfirmPaymentIntent::default(), &k)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Conflict);
}

#[tokio::test]
async fn invalid_input_is_refused_before_any_call() {
    let (server, client) = setup(no_retry()).await;
    Mock::given(wiremock::matchers::any())
        .respond_with(ResponseTemplate::new(500))
        .expect(0)
        .mount(&server)
        .await;
    let k = key("k");
    let e = client
        .create_payment_intent(&CreatePaymentIntent::new(usd(0)), &k)
        .await
        .unwrap_err();
    assert_eq!(e.field(), Some("amount"));
    let e = client
        .create_payment_intent(
            &CreatePaymentIntent::new(Money::from_minor(5125, Currency::KWD)),
            &k,
        )
        .await
        .unwrap_err();
    assert_eq!(e.field(), Some("amount"));
    let e = client
        .retrieve_payment_intent("pi_1/../../customers", &[])
        .await
        .unwrap_err();
    assert_eq!(e.field(), Some("id"));
    let mut both = CreateRefund::for_payment_intent("pi_1");
    both.charge = Some("ch_1".into());
    let e = client.create_refund(&both, &k).await.unwrap_err();
    assert_eq!(e.field(), Some("payment_intent"));
}

#[tokio::test]
async fn isk_amounts_are_converted_at_the_boundary() {
    let (server, client) = setup(no_retry()).await;
    // 5 ISK is 500 on Stripe's wire, both ways.
    stripe_post("/v1/payment_intents", "isk", "amount=500&currency=isk")
        .respond_with(ok(pi("pi_isk", "requires_payment_method", 500, "isk")))
        .expect(1)
        .mount(&server)
        .await;
    let got = client
        .create_payment_intent(
            &CreatePaymentIntent::new(Money::from_minor(5, Currency::ISK)),
            &key("isk"),
        )
        .await
        .unwrap();
    assert_eq!(got.amount, Money::from_minor(5, Currency::ISK));
}

#[tokio::test]
async fn payments_refuses_over_refunds_before_calling_stripe() {
    let (server, client) = setup(no_retry()).await;
    let mut intent = pi("pi_1", "succeeded", 5000, "usd");
    intent["latest_charge"] = charge("ch_1", "pi_1", 5000, 2000);
    stripe("GET", "/v1/payment_intents/pi_1")
        .and(RawQuery(Some("expand[0]=latest_charge")))
        .respond_with(ok(intent))
        .mount(&server)
        .await;
    // The lookup for a refund an earlier attempt may have made with this key: none.
    stripe("GET", "/v1/refunds")
        .and(RawQuery(Some("payment_intent=pi_1&limit=100")))
        .respond_with(ok(
            json!({"object": "list", "data": [], "has_more": false, "url": "/v1/refunds"}),
        ))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(500))
        .expect(0)
        .mount(&server)
        .await;
    let payments = StripePayments::new(client);
    let e = payments
        .refund(
            &RefundRequest::partial("pi_1", usd(3001)),
            &key("order-1/refund/1"),
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    assert_eq!(e.field(), Some("amount"));
    assert_eq!(e.code(), Some("amount_too_large"));
    assert!(e.to_string().contains("exceeds"), "{e}");
}

#[tokio::test]
async fn payments_refund_sends_the_checked_amount_and_maps_stripes_refusal() {
    let (server, client) = setup(no_retry()).await;
    let mut intent = pi("pi_1", "succeeded", 5000, "usd");
    intent["latest_charge"] = charge("ch_1", "pi_1", 5000, 0);
    stripe("GET", "/v1/payment_intents/pi_1")
        .respond_with(ok(intent))
        .mount(&server)
        .await;
    // A concurrent refund got there first: Stripe refuses, with its own wording.
    stripe_post(
        "/v1/refunds",
        "order-1/refund/2",
        "payment_intent=pi_1&amount=5000&metadata[integrations_idempotency_key]=order-1/refund/2",
    )
    .respond_with(ResponseTemplate::new(400).set_body_json(fixture("refund_too_large")))
    .expect(1)
    .mount(&server)
    .await;
    let payments = StripePayments::new(client);
    let e = payments
        .refund(&RefundRequest::full("pi_1"), &key("order-1/refund/2"))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    assert_eq!(e.field(), Some("amount"));
    assert_eq!(e.code(), Some("amount_too_large"));
}

#[tokio::test]
async fn debug_of_client_and_builder_never_shows_the_key() {
    let builder = StripeBuilder::new().with_secret_key(KEY);
    let shown = format!("{builder:?} {:?}", builder.clone().build().unwrap());
    assert!(
        !shown.contains(KEY) && !shown.contains("4eC39HqLyjWDarjtT1zdp7dc"),
        "{shown}"
    );
    let payments = builder.build().unwrap();
    let shown = format!("{payments:?}");
    assert!(!shown.contains("4eC39HqLyjWDarjtT1zdp7dc"), "{shown}");
}

// --- `request`: the endpoints without a typed call ---

/// A client acting as `acct_1Client` by default.
async fn setup_connect(policy: Policy) -> (MockServer, StripeClient) {
    let server = MockServer::start().await;
    let client = StripeBuilder::new()
        .with_secret_key(KEY)
        .with_base_url(server.uri())
        .with_policy(policy)
        .with_account("acct_1Client")
        .build()
        .unwrap()
        .client()
        .clone();
    (server, client)
}

#[derive(Debug, serde::Deserialize)]
struct CheckoutSession {
    id: String,
    url: Option<String>,
}

#[tokio::test]
async fn request_posts_a_checkout_session_with_one_key_and_the_override_account() {
    let (server, client) = setup_connect(quick_retry()).await;
    let body = "line_items[0][price]=price_1&line_items[0][quantity]=2\
                &metadata[order_id]=42&mode=payment&success_url=https://shop.example/done?s%3D1";
    stripe_post("/v1/checkout/sessions", "order-42/checkout", body)
        .and(header("stripe-account", "acct_1Override"))
        .respond_with(ResponseTemplate::new(500).set_body_json(fixture("api_error")))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    stripe_post("/v1/checkout/sessions", "order-42/checkout", body)
        .and(header("stripe-account", "acct_1Override"))
        .respond_with(ok(json!({
            "id": "cs_test_1", "object": "checkout.session",
            "url": "https://checkout.stripe.com/c/pay/cs_test_1", "a_field_from_the_future": 1
        })))
        .with_priority(2)
        .mount(&server)
        .await;
    let params = json!({
        "mode": "payment",
        "success_url": "https://shop.example/done?s=1",
        "line_items": [{ "price": "price_1", "quantity": 2 }],
        "metadata": { "order_id": "42" },
    });
    let session: integrations_core::Result<CheckoutSession> = client
        .request(
            http::Method::POST,
            "/v1/checkout/sessions",
            &params,
            RequestOptions::new()
                .idempotency_key(key("order-42/checkout"))
                .stripe_account("acct_1Override"),
        )
        .await;
    let got = server.received_requests().await.unwrap();
    let session: CheckoutSession =
        session.unwrap_or_else(|e| panic!("{e}: {:?}", std::str::from_utf8(&got[0].body)));
    assert_eq!(session.id, "cs_test_1");
    assert_eq!(
        session.url.as_deref(),
        Some("https://checkout.stripe.com/c/pay/cs_test_1")
    );
    let requests = server.received_requests().await.unwrap();
    assert_eq!(requests.len(), 2, "the 500 was retried once");
    for r in &requests {
        assert_eq!(r.method.as_str(), "POST");
        assert_eq!(r.url.path(), "/v1/checkout/sessions");
        assert_eq!(r.headers["idempotency-key"], "order-42/checkout");
        assert_eq!(r.headers["stripe-account"], "acct_1Override");
        assert_eq!(
            r.headers["content-type"],
            "application/x-www-form-urlencoded"
        );
        assert_eq!(std::str::from_utf8(&r.body).unwrap(), body);
    }
    // Without an override, the client's account.
    stripe_post("/v1/checkout/sessions", "order-43/checkout", "mode=setup")
        .and(header("stripe-account", "acct_1Client"))
        .respond_with(ok(json!({"id": "cs_test_2", "url": null})))
        .expect(1)
        .mount(&server)
        .await;
    let got = client
        .request_json(
            http::Method::POST,
            "/v1/checkout/sessions",
            &json!({"mode": "setup"}),
            RequestOptions::new().idempotency_key(key("order-43/checkout")),
        )
        .await
        .unwrap();
    assert_eq!(got["id"], "cs_test_2");
}

#[tokio::test]
async fn request_maps_stripe_errors_like_the_typed_calls() {
    let (server, client) = setup(quick_retry()).await;
    stripe("POST", "/v1/subscriptions")
        .respond_with(
            ResponseTemplate::new(402)
                .set_body_json(fixture("card_declined"))
                .insert_header("request-id", "req_sub"),
        )
        .expect(1)
        .mount(&server)
        .await;
    stripe("GET", "/v1/setup_intents/seti_missing")
        .respond_with(ResponseTemplate::new(404).set_body_json(fixture("resource_missing")))
        .expect(1)
        .mount(&server)
        .await;
    let e = client
        .request_json(
            http::Method::POST,
            "/v1/subscriptions",
            &json!({"customer": "cus_1"}),
            RequestOptions::new().idempotency_key(key("order-44/subscription")),
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Declined);
    assert_eq!(e.status(), Some(402));
    assert_eq!(e.request_id(), Some("req_sub"));
    assert_eq!(e.provider_name(), Some(PROVIDER));
    assert!(!e.is_retryable());
    let e = client
        .request_json(
            http::Method::GET,
            "/v1/setup_intents/seti_missing",
            &(),
            RequestOptions::new(),
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    assert_eq!(e.code(), Some("resource_missing"));
}

#[derive(Debug, PartialEq, serde::Deserialize)]
struct SetupIntent {
    id: String,
    status: String,
    usage: String,
}

#[tokio::test]
async fn request_gets_a_setup_intent_into_the_callers_struct() {
    let (server, client) = setup(no_retry()).await;
    stripe("GET", "/v1/setup_intents/seti_1")
        .and(RawQuery(Some("expand[0]=payment_method")))
        .and(NoHeader("idempotency-key"))
        .and(NoHeader("stripe-account"))
        .respond_with(ok(json!({
            "id": "seti_1", "object": "setup_intent", "status": "succeeded",
            "usage": "off_session", "payment_method": {"id": "pm_1", "object": "payment_method"}
        })))
        .expect(1)
        .mount(&server)
        .await;
    // A key on a GET is not sent.
    let got: SetupIntent = client
        .request(
            http::Method::GET,
            "/v1/setup_intents/seti_1",
            &json!({"expand": ["payment_method"]}),
            RequestOptions::new().idempotency_key(key("ignored")),
        )
        .await
        .unwrap();
    assert_eq!(
        got,
        SetupIntent {
            id: "seti_1".into(),
            status: "succeeded".into(),
            usage: "off_session".into(),
        }
    );
}

#[tokio::test]
async fn request_refuses_bad_input_before_any_request() {
    let (server, client) = setup(no_retry()).await;
    for bad in [
        "https://evil.example/v1/customers",
        "//evil.example/v1/customers",
        "/v1/../v2/accounts",
        "/v1/customers?limit=1",
        "v1/customers",
    ] {
        let e = client
            .request_json(http::Method::GET, bad, &(), RequestOptions::new())
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{bad}");
        assert_eq!(e.field(), Some("path"), "{bad}");
    }
    let params = json!({"mode": "payment"});
    let post = |options| {
        client.request_json(
            http::Method::POST,
            "/v1/checkout/sessions",
            &params,
            options,
        )
    };
    let e = post(RequestOptions::new()).await.unwrap_err();
    assert_eq!(e.field(), Some("idempotency_key"));
    let e = post(
        RequestOptions::new()
            .idempotency_key(key("k"))
            .stripe_account("acct_1\r\nX-Evil: 1"),
    )
    .await
    .unwrap_err();
    assert_eq!(e.field(), Some("stripe_account"));
    let e = client
        .request_json(
            http::Method::PUT,
            "/v1/customers/cus_1",
            &(),
            RequestOptions::new(),
        )
        .await
        .unwrap_err();
    assert_eq!(e.field(), Some("method"));
    let e = client
        .request_json(
            http::Method::GET,
            "/v1/customers",
            &[("limit", "3")],
            RequestOptions::new(),
        )
        .await
        .unwrap_err();
    assert_eq!(e.field(), Some("params"), "a list of pairs is not a map");
    assert!(server.received_requests().await.unwrap().is_empty());
}

#[tokio::test]
async fn for_account_gives_typed_calls_a_per_request_account() {
    let (server, client) = setup_connect(no_retry()).await;
    stripe("GET", "/v1/customers/cus_1")
        .and(header("stripe-account", "acct_1Other"))
        .respond_with(ok(fixture("object_customer")))
        .expect(1)
        .mount(&server)
        .await;
    stripe("GET", "/v1/customers/cus_1")
        .and(header("stripe-account", "acct_1Client"))
        .respond_with(ok(fixture("object_customer")))
        .expect(1)
        .mount(&server)
        .await;
    let other = client.for_account("acct_1Other").unwrap();
    assert_eq!(other.account(), Some("acct_1Other"));
    other.retrieve_customer("cus_1").await.unwrap();
    // The original handle is unchanged.
    assert_eq!(client.account(), Some("acct_1Client"));
    client.retrieve_customer("cus_1").await.unwrap();
    assert_eq!(
        client.for_account("cus_1").unwrap_err().field(),
        Some("stripe_account")
    );
}
