//! The exact request of every typed operation.

use super::*;

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
