//! Stripe's error bodies mapped by meaning, retries, refusals before any call, and secrets kept out of Debug.

use super::*;

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
