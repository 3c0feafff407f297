//! `StripeClient::request`: the endpoints without a typed call, and per-request Connect accounts.

use super::*;

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
