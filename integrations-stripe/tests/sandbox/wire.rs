//! What the sandbox answers on the wire: Stripe's error shapes, pagination, the fixtures' field shapes, replay headers.

use super::*;

#[tokio::test]
async fn unknown_routes_params_and_objects_answer_like_stripe() {
    let sandbox = Sandbox::start().await.unwrap();
    let client = client(&sandbox, 0);
    let e = client
        .retrieve_payment_intent("pi_missing", &[])
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    assert_eq!(e.code(), Some("resource_missing"));
    let mut bad = CreatePaymentIntent::new(usd(100)).payment_method("pm_nonexistent");
    bad.expand.push("latest_charge".into());
    let e = client
        .create_payment_intent(&bad, &key("bad", "pm"))
        .await
        .unwrap_err();
    assert_eq!(
        (e.kind(), e.field()),
        (ErrorKind::InvalidInput, Some("payment_method"))
    );
    let e = client
        .retrieve_payment_intent("pi_missing", &["not_expandable"])
        .await
        .unwrap_err();
    assert_eq!(e.field(), Some("expand"));
    let resp = reqwest::Client::new()
        .post(format!("{}/v1/nothing_here", sandbox.base_url()))
        .bearer_auth(sandbox.secret_key())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 404);
    let resp = reqwest::Client::new()
        .post(format!("{}/v1/payment_intents", sandbox.base_url()))
        .bearer_auth(sandbox.secret_key())
        .header("content-type", "application/x-www-form-urlencoded")
        .body("amount=100&currency=usd&colour=blue")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    let body: serde_json::Value = serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap();
    assert_eq!(body["error"]["code"], "parameter_unknown");
}

#[tokio::test]
async fn lists_page_through_the_sandbox() {
    let sandbox = Sandbox::start().await.unwrap();
    let client = client(&sandbox, 0);
    let cus = client
        .create_customer(&CreateCustomer::new().name("Jenny"), &key("c", "1"))
        .await
        .unwrap();
    for i in 0..5 {
        let p = CreatePaymentIntent::new(usd(100 + i)).customer(&cus.id);
        client
            .create_payment_intent(&p, &key("list", &i.to_string()))
            .await
            .unwrap();
    }
    let mut params = ListPaymentIntents::default();
    params.customer = Some(cus.id.clone());
    params.limit = Some(2);
    let amounts: Vec<i64> = client
        .payment_intents_stream(params)
        .map(|p| p.unwrap().amount.minor())
        .collect()
        .await;
    assert_eq!(amounts, [104, 103, 102, 101, 100]);
    let list_requests = sandbox
        .requests()
        .into_iter()
        .filter(|r| r.method == "GET" && r.path == "/v1/payment_intents")
        .count();
    assert_eq!(list_requests, 3);
}

fn fixture_keys(name: &str) -> std::collections::BTreeSet<String> {
    let path = format!(
        "{}/tests/fixtures/object_{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    v.as_object().unwrap().keys().cloned().collect()
}

fn keys(v: &serde_json::Value) -> std::collections::BTreeSet<String> {
    v.as_object().unwrap().keys().cloned().collect()
}

#[tokio::test]
async fn objects_have_the_field_shapes_of_stripes_fixtures() {
    let sandbox = Sandbox::start().await.unwrap();
    let payments = StripePayments::new(client(&sandbox, 0));
    let req = CreatePayment::new(usd(5000))
        .payment_method("pm_card_visa")
        .confirm(true);
    let p = payments
        .create_payment(&req, &key("shape", "payment"))
        .await
        .unwrap();
    let r = payments
        .refund(
            &RefundRequest::partial(&p.id, usd(100)),
            &key("shape", "refund"),
        )
        .await
        .unwrap();
    let cus = payments
        .client()
        .create_customer(&CreateCustomer::new(), &key("shape", "customer"))
        .await
        .unwrap();
    let http = reqwest::Client::new();
    let get = |path: String| {
        let req = http
            .get(format!("{}{path}", sandbox.base_url()))
            .bearer_auth(sandbox.secret_key());
        async move {
            serde_json::from_slice::<serde_json::Value>(
                &req.send().await.unwrap().bytes().await.unwrap(),
            )
            .unwrap()
        }
    };
    let pi = get(format!(
        "/v1/payment_intents/{}?expand[0]=latest_charge",
        p.id
    ))
    .await;
    assert_eq!(keys(&pi), fixture_keys("payment_intent"));
    assert_eq!(keys(&pi["latest_charge"]), fixture_keys("charge"));
    assert_eq!(
        keys(&get(format!("/v1/refunds/{}", r.id)).await),
        fixture_keys("refund")
    );
    assert_eq!(
        keys(&get(format!("/v1/customers/{}", cus.id)).await),
        fixture_keys("customer")
    );
    for event in sandbox.events() {
        assert_eq!(keys(&event), fixture_keys("event"));
    }
    // And Stripe's own examples parse with this crate's types.
    for name in ["payment_intent", "charge", "refund", "customer"] {
        let path = format!(
            "{}/tests/fixtures/object_{name}.json",
            env!("CARGO_MANIFEST_DIR")
        );
        let text = std::fs::read_to_string(path).unwrap();
        let ok = match name {
            "payment_intent" => {
                serde_json::from_str::<integrations_stripe::types::PaymentIntent>(&text).is_ok()
            }
            "charge" => serde_json::from_str::<integrations_stripe::types::Charge>(&text).is_ok(),
            "refund" => serde_json::from_str::<integrations_stripe::types::Refund>(&text).is_ok(),
            _ => serde_json::from_str::<integrations_stripe::types::Customer>(&text).is_ok(),
        };
        assert!(ok, "{name}");
    }
}

#[tokio::test]
async fn replays_carry_stripes_headers_on_the_wire() {
    let sandbox = Sandbox::start().await.unwrap();
    let http = reqwest::Client::new();
    let post = |body: &'static str| {
        http.post(format!("{}/v1/payment_intents", sandbox.base_url()))
            .bearer_auth(sandbox.secret_key())
            .header("idempotency-key", "order-1/payment")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
    };
    let first = post("amount=100&currency=usd").await.unwrap();
    assert_eq!(first.status().as_u16(), 200);
    assert!(first.headers().get("idempotent-replayed").is_none());
    let first_id = first.headers()["request-id"].to_str().unwrap().to_owned();
    let first_body = first.bytes().await.unwrap();
    // Same key, same parameters in another order: the stored response, byte for byte.
    let again = post("currency=usd&amount=100").await.unwrap();
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(again.headers()["request-id"].to_str().unwrap(), first_id);
    assert_eq!(again.bytes().await.unwrap(), first_body);
    // Same key, other parameters: 400 idempotency_error.
    let other = post("amount=101&currency=usd").await.unwrap();
    assert_eq!(other.status().as_u16(), 400);
    let body: serde_json::Value = serde_json::from_slice(&other.bytes().await.unwrap()).unwrap();
    assert_eq!(body["error"]["type"], "idempotency_error");
    assert_eq!(sandbox.counters().payment_intents_created, 1);
}
