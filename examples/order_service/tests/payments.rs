//! `POST /api/payments/confirm` and `POST /api/payments/refund` on the Stripe sandbox.

mod common;

use axum::http::StatusCode;
use common::Harness;
use serde_json::json;

#[tokio::test]
async fn confirm_pays_the_order_with_its_own_intent() {
    let h = Harness::new().await;
    let data = h.create_order().await;
    let order = &data["order"];
    let r = h.confirm(order, "pm_card_visa").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json["data"]["order"]["status"], "paid");
    assert_eq!(r.json["data"]["payment"]["status"], "succeeded");
    assert_eq!(r.json["data"]["payment"]["amountReceived"], "60.00");
    let pi = order["paymentIntentId"].as_str().unwrap();
    assert_eq!(h.stripe.intent_counters(pi).unwrap().successful_charges, 1);

    // Confirming again is harmless: the intent is settled, nothing is charged twice.
    let r = h.confirm(order, "pm_card_visa").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(h.stripe.intent_counters(pi).unwrap().successful_charges, 1);
}

#[tokio::test]
async fn a_foreign_intent_is_refused_before_anything_is_charged() {
    let h = Harness::new().await;
    let mine = h.create_order().await["order"].clone();
    let theirs = h.create_order().await["order"].clone();
    let r = h
        .post(
            "/api/payments/confirm",
            &json!({
                "orderId": mine["id"],
                "paymentIntentId": theirs["paymentIntentId"],
                "paymentMethod": "pm_card_visa",
            }),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert_eq!(r.field(), Some("paymentIntentId"));
    assert_eq!(r.code(), Some("payment_intent_mismatch"));
    for o in [&mine, &theirs] {
        let pi = o["paymentIntentId"].as_str().unwrap();
        assert_eq!(h.stripe.intent_counters(pi).unwrap().successful_charges, 0);
        let now = h
            .get(&format!("/api/orders/{}", o["id"].as_str().unwrap()))
            .await;
        assert_eq!(now.json["data"]["order"]["status"], "pending");
    }
    // An intent the service never created at all.
    let r = h
        .post(
            "/api/payments/confirm",
            &json!({"orderId": mine["id"], "paymentIntentId": "pi_someone_else"}),
        )
        .await;
    assert_eq!(r.code(), Some("payment_intent_mismatch"));
    // Unknown order; missing fields name the field.
    let r = h
        .post(
            "/api/payments/confirm",
            &json!({"orderId": "ord_missing", "paymentIntentId": "pi_1"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = h
        .post("/api/payments/confirm", &json!({"orderId": mine["id"]}))
        .await;
    assert_eq!(r.field(), Some("paymentIntentId"));
    let r = h
        .post(
            "/api/payments/confirm",
            &json!({"orderId": mine["id"], "paymentIntentId": mine["paymentIntentId"]}),
        )
        .await;
    assert_eq!(r.field(), Some("paymentMethod"), "{}", r.text);
}

#[tokio::test]
async fn a_declined_card_is_402_and_the_order_can_be_paid_with_another() {
    let h = Harness::new().await;
    let order = h.create_order().await["order"].clone();
    let r = h
        .confirm(&order, "pm_card_chargeDeclinedInsufficientFunds")
        .await;
    assert_eq!(r.status, StatusCode::PAYMENT_REQUIRED, "{}", r.text);
    assert_eq!(r.json["error"]["type"], "declined");
    assert_eq!(r.json["error"]["declineCode"], "insufficient_funds");
    let now = h
        .get(&format!("/api/orders/{}", order["id"].as_str().unwrap()))
        .await;
    assert_eq!(now.json["data"]["order"]["status"], "payment_failed");

    let r = h.confirm(&order, "pm_card_visa").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json["data"]["order"]["status"], "paid");
}

#[tokio::test]
async fn refunds_are_partial_guarded_and_never_exceed_what_is_left() {
    let h = Harness::new().await;
    let unpaid = h.create_order().await["order"].clone();
    let r = h
        .post(
            "/api/payments/refund",
            &json!({"orderId": unpaid["id"], "amount": "1.00"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
    assert_eq!(r.code(), Some("order_not_refundable"));

    let order = h.paid_order().await;
    let id = order["id"].clone();
    let r = h
        .post(
            "/api/payments/refund",
            &json!({"orderId": id, "amount": "25.50", "reason": "requested_by_customer"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json["data"]["refund"]["amount"], "25.50");
    assert_eq!(r.json["data"]["order"]["status"], "partially_refunded");
    assert_eq!(r.json["data"]["remaining"], "34.50");

    for (amount, field, code) in [
        (json!("34.51"), "amount", Some("amount_too_large")),
        (json!("60.00"), "amount", Some("amount_too_large")),
        (json!("0"), "amount", None),
        (json!("1.001"), "amount", None),
        (json!(1.001), "amount", None),
        (json!(-1), "amount", None),
        (json!("-1.00"), "amount", None),
    ] {
        let r = h
            .post(
                "/api/payments/refund",
                &json!({"orderId": id, "amount": amount}),
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{amount}: {}", r.text);
        assert_eq!(r.field(), Some(field));
        if code.is_some() {
            assert_eq!(r.code(), code);
        }
    }
    let r = h
        .post(
            "/api/payments/refund",
            &json!({"orderId": id, "reason": "because"}),
        )
        .await;
    assert_eq!(r.field(), Some("reason"));
    assert_eq!(
        h.stripe.counters().refunds,
        1,
        "refused refunds never reached Stripe"
    );

    // No amount: refund what is left.
    let r = h
        .post("/api/payments/refund", &json!({"orderId": id}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json["data"]["refund"]["amount"], "34.50");
    assert_eq!(r.json["data"]["order"]["status"], "refunded");
    assert_eq!(r.json["data"]["order"]["refundedAmount"], "60.00");
    let r = h
        .post("/api/payments/refund", &json!({"orderId": id}))
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert_eq!(h.stripe.counters().refunds, 2);

    // Each refund had its own key, derived from the order and numbered.
    let keys: Vec<_> = h
        .stripe
        .requests()
        .into_iter()
        .filter(|r| r.method == "POST" && r.path == "/v1/refunds")
        .filter_map(|r| r.idempotency_key)
        .collect();
    let id = id.as_str().unwrap();
    assert_eq!(keys, [format!("{id}/refund/1"), format!("{id}/refund/2")]);
}

#[tokio::test]
async fn concurrent_refunds_cannot_both_take_the_last_of_the_money() {
    let h = Harness::new().await;
    let order = h.paid_order().await;
    let body = json!({"orderId": order["id"], "amount": "40.00"});
    let (a, b) = tokio::join!(
        h.post("/api/payments/refund", &body),
        h.post("/api/payments/refund", &body)
    );
    let mut statuses = [a.status.as_u16(), b.status.as_u16()];
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 400], "{} / {}", a.text, b.text);
    assert_eq!(h.stripe.counters().refunds, 1);
}

/// Makes every write of an order's refunded amount fail until [`heal_refund_record`] (a store
/// failing after the provider acted).
async fn fail_refund_record(h: &Harness) {
    h.db.execute(
        "CREATE TRIGGER fail_refund_record
            BEFORE UPDATE OF refunded_minor ON orders
            BEGIN SELECT RAISE(ABORT, 'injected: the refund record fails'); END;",
        "CREATE FUNCTION fail_refund_record() RETURNS trigger LANGUAGE plpgsql AS
            $$ BEGIN RAISE EXCEPTION 'injected: the refund record fails'; END $$;
         CREATE TRIGGER fail_refund_record BEFORE UPDATE OF refunded_minor ON orders
            FOR EACH ROW EXECUTE FUNCTION fail_refund_record();",
    )
    .await;
}

async fn heal_refund_record(h: &Harness) {
    h.db.execute(
        "DROP TRIGGER fail_refund_record",
        "DROP TRIGGER fail_refund_record ON orders",
    )
    .await;
}

#[tokio::test]
async fn a_refund_whose_record_failed_is_reconciled_and_not_made_again() {
    let h = Harness::new().await;
    let order = h.paid_order().await;
    let id = order["id"].as_str().unwrap().to_owned();
    fail_refund_record(&h).await;
    let r = h
        .post(
            "/api/payments/refund",
            &json!({"orderId": id, "amount": "25.50"}),
        )
        .await;
    assert!(!r.status.is_success(), "{}", r.text);
    assert_eq!(h.stripe.counters().refunds, 1, "the provider refunded");
    heal_refund_record(&h).await;

    // The client tries again, with another amount: the pending refund is reconciled, reported,
    // and nothing more is refunded.
    let r = h
        .post(
            "/api/payments/refund",
            &json!({"orderId": id, "amount": "10.00"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
    assert_eq!(r.code(), Some("earlier_refund_completed"));
    assert_eq!(h.stripe.counters().refunds, 1, "not refunded again");
    let o = h.orders.get(&id).await.unwrap().unwrap();
    assert_eq!(
        (o.refunded.to_decimal_string(), o.status.as_str()),
        ("25.50".to_owned(), "partially_refunded")
    );

    // Asked again, it is a new refund with the next key.
    let r = h
        .post(
            "/api/payments/refund",
            &json!({"orderId": id, "amount": "10.00"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json["data"]["remaining"], "24.50");
    assert_eq!(h.stripe.counters().refunds, 2);
    let keys: Vec<_> = h
        .stripe
        .requests()
        .into_iter()
        .filter(|r| r.method == "POST" && r.path == "/v1/refunds")
        .filter_map(|r| r.idempotency_key)
        .collect();
    assert_eq!(keys, [format!("{id}/refund/1"), format!("{id}/refund/2")]);
}

#[tokio::test]
async fn the_retry_of_a_refund_whose_record_failed_answers_with_that_refund() {
    let h = Harness::new().await;
    let order = h.paid_order().await;
    let id = order["id"].as_str().unwrap().to_owned();
    fail_refund_record(&h).await;
    let body = json!({"orderId": id, "amount": "25.50"});
    assert!(
        !h.post("/api/payments/refund", &body)
            .await
            .status
            .is_success()
    );
    heal_refund_record(&h).await;
    let r = h.post("/api/payments/refund", &body).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json["data"]["reconciled"], true);
    assert_eq!(r.json["data"]["refund"]["amount"], "25.50");
    assert_eq!(r.json["data"]["order"]["refundedAmount"], "25.50");
    assert_eq!(h.stripe.counters().refunds, 1);
}

#[tokio::test]
async fn a_refund_recorded_but_never_sent_is_sent_with_its_own_key() {
    use integrations_order_service::orders::RefundStart;
    let h = Harness::new().await;
    let order = h.paid_order().await;
    let id = order["id"].as_str().unwrap().to_owned();
    // A crash between recording the intent and calling the provider.
    let usd = |m| integrations_core::Money::from_minor(m, integrations_core::Currency::USD);
    let start = h
        .orders
        .begin_refund(&id, Some(usd(1000)), None)
        .await
        .unwrap();
    assert!(matches!(start, RefundStart::New(ref i) if i.number == 1));
    assert_eq!(h.stripe.counters().refunds, 0);
    let r = h
        .post(
            "/api/payments/refund",
            &json!({"orderId": id, "amount": "10.00"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json["data"]["reconciled"], true);
    assert_eq!(r.json["data"]["order"]["refundedAmount"], "10.00");
    assert_eq!(h.stripe.counters().refunds, 1);
    let keys: Vec<_> = h
        .stripe
        .requests()
        .into_iter()
        .filter(|r| r.method == "POST" && r.path == "/v1/refunds")
        .filter_map(|r| r.idempotency_key)
        .collect();
    assert_eq!(keys, [format!("{id}/refund/1")]);
}

#[tokio::test]
async fn a_refund_made_outside_the_service_does_not_complete_a_pending_intent() {
    use integrations_order_service::orders::RefundStart;
    use integrations_stripe::api::CreateRefund;
    let h = Harness::new().await;
    let order = h.paid_order().await;
    let id = order["id"].as_str().unwrap().to_owned();
    let pi = order["paymentIntentId"].as_str().unwrap().to_owned();
    let usd = |m| integrations_core::Money::from_minor(m, integrations_core::Currency::USD);
    // A crash between recording the intent and calling the provider…
    let start = h
        .orders
        .begin_refund(&id, Some(usd(1000)), None)
        .await
        .unwrap();
    assert!(matches!(start, RefundStart::New(ref i) if i.number == 1));
    // …and meanwhile someone refunds the same amount in the dashboard, without the intent's key.
    let stripe = h.stripe.client_builder().build().unwrap();
    let outside = stripe
        .client()
        .create_refund(
            &CreateRefund::for_payment_intent(pi.clone()).amount(usd(1000)),
            &integrations_core::IdempotencyKey::new("dashboard-refund-1").unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(h.stripe.counters().refunds, 1);

    // The payment's refunded amount covers the intent, but no refund carries its key: the intent
    // is sent with its own key and answered with the refund that key made.
    let r = h
        .post(
            "/api/payments/refund",
            &json!({"orderId": id, "amount": "10.00"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json["data"]["reconciled"], true);
    let refund_id = r.json["data"]["refund"]["id"].as_str().unwrap_or_default();
    assert!(refund_id.starts_with("re_"), "{}", r.text);
    assert_ne!(refund_id, outside.id, "{}", r.text);
    assert_eq!(r.json["data"]["refund"]["amount"], "10.00");
    assert_eq!(r.json["data"]["order"]["refundedAmount"], "10.00");
    assert_eq!(
        h.stripe.counters().refunds,
        2,
        "the intent's refund was made"
    );
    let keys: Vec<_> = h
        .stripe
        .requests()
        .into_iter()
        .filter(|r| r.method == "POST" && r.path == "/v1/refunds")
        .filter_map(|r| r.idempotency_key)
        .filter(|k| k.starts_with(&format!("{id}/")))
        .collect();
    assert_eq!(keys, [format!("{id}/refund/1")]);

    // Asked again, the intent is done: the next refund has the next key, and the outside one
    // was never counted as the service's.
    let r = h
        .post(
            "/api/payments/refund",
            &json!({"orderId": id, "amount": "10.00"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json["data"]["reconciled"], false);
    assert_eq!(h.stripe.counters().refunds, 3);
}

#[tokio::test]
async fn two_instances_on_one_database_make_one_refund_per_intent() {
    use integrations_core::PaymentProvider;
    let h = Harness::new().await;
    let second = h.second_instance().await;
    let stripe = h.stripe.client_builder().build().unwrap();
    for round in 0..6 {
        let order = h.paid_order().await;
        let id = order["id"].as_str().unwrap().to_owned();
        let body = json!({"orderId": id, "amount": "30.00"});
        let (a, b) = tokio::join!(
            h.post("/api/payments/refund", &body),
            Harness::post_to(&second, "/api/payments/refund", &body)
        );
        for r in [&a, &b] {
            assert!(
                [200, 409].contains(&r.status.as_u16()),
                "round {round}: {}",
                r.text
            );
        }
        let local = h.orders.get(&id).await.unwrap().unwrap();
        let paid = stripe
            .retrieve_payment(order["paymentIntentId"].as_str().unwrap())
            .await
            .unwrap();
        assert_eq!(
            local.refunded, paid.amount_refunded,
            "round {round}: recorded what the provider refunded ({} / {})",
            a.text, b.text
        );
        let keys: Vec<_> = h
            .stripe
            .requests()
            .into_iter()
            .filter(|r| r.method == "POST" && r.path == "/v1/refunds")
            .filter_map(|r| r.idempotency_key)
            .filter(|k| k.starts_with(&format!("{id}/")))
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        assert_eq!(
            keys.len() as u32,
            local.refund_count,
            "round {round}: one key per recorded refund: {keys:?}"
        );
    }
}
