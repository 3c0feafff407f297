//! `POST /webhooks/stripe` and `/webhooks/sendgrid`: bad signatures refused, good ones applied,
//! redeliveries without a second effect.

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::Harness;
use integrations_core::IdempotencyKey;
use integrations_core::provider::PaymentProvider;
use integrations_order_service::effects::{NOTIFY_PAID, SHEETS_ROW};
use integrations_order_service::orders::OrderStatus;
use integrations_outbox::OutboxStore;
use integrations_stripe::StripePayments;
use integrations_stripe::webhook::{WebhookSecret, sign_for_test};
use serde_json::Value;

/// Pays `order`'s intent the way a browser would, directly at Stripe, so the service learns of
/// it only through the webhook.
async fn pay_at_stripe(h: &Harness, order: &Value) {
    let payments = StripePayments::new(h.stripe.client().unwrap());
    let pi = order["paymentIntentId"].as_str().unwrap();
    let key = IdempotencyKey::derive(pi, "browser-confirm").unwrap();
    payments
        .confirm_payment(pi, Some("pm_card_visa"), &key)
        .await
        .unwrap();
}

async fn status_of(h: &Harness, order: &Value) -> String {
    let r = h
        .get(&format!("/api/orders/{}", order["id"].as_str().unwrap()))
        .await;
    r.json["data"]["order"]["status"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn stripe_signature_failures_are_400_and_change_nothing() {
    let h = Harness::new().await;
    let order = h.create_order().await["order"].clone();
    h.take_deliveries();
    pay_at_stripe(&h, &order).await;
    let d = h
        .take_deliveries()
        .into_iter()
        .find(|d| d.event_type == "payment_intent.succeeded")
        .unwrap();
    let t = d
        .signature
        .split(',')
        .next()
        .unwrap()
        .trim_start_matches("t=")
        .parse()
        .unwrap();

    let forged = sign_for_test(&d.payload, &WebhookSecret::new("whsec_attacker"), t);
    let mut altered = d.payload.to_vec();
    let pos = altered.iter().position(|b| *b == b'6').unwrap();
    altered[pos] = b'9';
    let stale = sign_for_test(&d.payload, &h.stripe.webhook_secret(), t - 3600);
    let attempts: Vec<(Option<String>, Vec<u8>)> = vec![
        (Some(forged), d.payload.to_vec()),
        (Some(d.signature.clone()), altered),
        (Some(stale), d.payload.to_vec()),
        (Some("t=1,v1=zz".to_owned()), d.payload.to_vec()),
        (None, d.payload.to_vec()),
    ];
    for (sig, body) in attempts {
        let mut req = Request::builder().method("POST").uri("/webhooks/stripe");
        if let Some(s) = &sig {
            req = req.header("stripe-signature", s);
        }
        let r = h.send(req.body(Body::from(body)).unwrap()).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{sig:?}: {}", r.text);
        assert_eq!(r.json["error"]["type"], "invalid_signature", "{}", r.text);
    }
    assert_eq!(status_of(&h, &order).await, "pending");
    assert_eq!(h.outbox.counts().await.unwrap().events, 0);
}

#[tokio::test]
async fn a_verified_event_pays_the_order_once_and_redeliveries_have_no_second_effect() {
    let h = Harness::new().await;
    let order = h.create_order().await["order"].clone();
    pay_at_stripe(&h, &order).await;
    assert_eq!(
        status_of(&h, &order).await,
        "pending",
        "not paid before the webhook"
    );

    let all = h.take_deliveries();
    let succeeded = all
        .iter()
        .find(|d| d.event_type == "payment_intent.succeeded")
        .unwrap()
        .clone();
    let r = h.deliver(&succeeded).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json["data"]["duplicate"], false);
    assert_eq!(status_of(&h, &order).await, "paid");
    let counts = h.outbox.counts().await.unwrap();
    assert_eq!((counts.events, counts.pending), (1, 3));

    // The same delivery again, and a fresh resend of the event: acknowledged, nothing recorded.
    let r = h.deliver(&succeeded).await;
    assert_eq!(
        (r.status, &r.json["data"]["duplicate"]),
        (StatusCode::OK, &Value::Bool(true))
    );
    assert!(h.stripe.resend_event(&succeeded.event_id));
    let resent = h.take_deliveries();
    assert_eq!(resent.len(), 1);
    assert_eq!(resent[0].event_id, succeeded.event_id);
    let r = h.deliver(&resent[0]).await;
    assert_eq!(r.json["data"]["duplicate"], true, "{}", r.text);
    assert_eq!(h.outbox.counts().await.unwrap().pending, 3);

    // The other events of the flow are recorded (for dedup) without jobs.
    for d in all
        .iter()
        .filter(|d| d.event_type != "payment_intent.succeeded")
    {
        let r = h.deliver(d).await;
        assert_eq!(r.status, StatusCode::OK, "{}: {}", d.event_type, r.text);
    }
    assert_eq!(h.outbox.counts().await.unwrap().pending, 3);

    let stats = h.drain().await;
    assert_eq!((stats.succeeded, stats.dead_lettered), (3, 0));
    let sent = h.email.sent();
    assert_eq!(sent.len(), 1);
    let id = order["id"].as_str().unwrap();
    assert_eq!(
        sent[0].custom_args.get("order_id").map(String::as_str),
        Some(id)
    );
    assert_eq!(h.sheets.rows("Orders").len(), 1);
    assert_eq!(
        h.sheets.rows("Orders")[0].key(),
        format!("stripe:{}/{SHEETS_ROW}", succeeded.event_id)
    );
    let published = h.notifier.published();
    assert_eq!(published.len(), 1);
    assert_eq!(
        published[0].dedup_id.as_deref(),
        Some(format!("stripe:{}/{NOTIFY_PAID}", succeeded.event_id).as_str())
    );

    // After delivery, a redelivery still does nothing.
    let r = h.deliver(&succeeded).await;
    assert_eq!(r.json["data"]["duplicate"], true);
    assert_eq!(h.drain().await.claimed, 0);
    assert_eq!(h.email.sent().len(), 1);
    assert_eq!(h.outbox.counts().await.unwrap().dead, 0);
}

/// The service creates the intent and then records it on the order. An event that changes the
/// order and arrives in between is refused (409) with nothing recorded, so Stripe's redelivery
/// applies it; an event that changes nothing is taken quietly.
#[tokio::test]
async fn an_event_before_the_order_records_its_payment_is_refused_until_it_is_recorded() {
    let h = Harness::new().await;
    let order = h.create_order().await["order"].clone();
    let (id, pi) = (
        order["id"].as_str().unwrap(),
        order["paymentIntentId"].as_str().unwrap(),
    );
    let unattach = format!("UPDATE orders SET payment_id = NULL WHERE id = '{id}'");
    h.db.execute(&unattach, &unattach).await;
    pay_at_stripe(&h, &order).await;
    let all = h.take_deliveries();
    let created = all
        .iter()
        .find(|d| d.event_type == "payment_intent.created")
        .unwrap();
    let r = h.deliver(created).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let succeeded = all
        .iter()
        .find(|d| d.event_type == "payment_intent.succeeded")
        .unwrap();

    let r = h.deliver(succeeded).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
    assert!(r.text.contains(pi), "{}", r.text);
    assert_eq!(status_of(&h, &order).await, "pending");
    let counts = h.outbox.counts().await.unwrap();
    assert_eq!(
        (counts.events, counts.pending),
        (1, 0),
        "only `created` taken"
    );

    h.orders
        .attach_payment(id, pi, OrderStatus::Pending)
        .await
        .unwrap();
    let r = h.deliver(succeeded).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json["data"]["duplicate"], false, "{}", r.text);
    assert_eq!(status_of(&h, &order).await, "paid");
    assert_eq!(h.outbox.counts().await.unwrap().pending, 3);
}

#[tokio::test]
async fn sendgrid_events_are_verified_recorded_on_the_order_and_deduplicated() {
    let h = Harness::new().await;
    let order = h.create_order().await["order"].clone();
    let id = order["id"].as_str().unwrap();
    let batch = format!(
        r#"[{{"email":"john@example.com","timestamp":1700000000,"event":"processed","sg_event_id":"ev-1","sg_message_id":"m1.filter","order_id":"{id}"}},
{{"email":"john@example.com","timestamp":1700000060,"event":"delivered","sg_event_id":"ev-2","sg_message_id":"m1.filter","order_id":"{id}"}}]"#
    );
    let now = integrations_core::clock::unix_seconds(std::time::SystemTime::now());
    let signed = h.sendgrid_signer.sign_for_test(now, batch.as_bytes());
    let post = |headers: axum::http::HeaderMap, body: String| {
        let mut req = Request::builder()
            .method("POST")
            .uri("/webhooks/sendgrid")
            .body(Body::from(body))
            .unwrap();
        req.headers_mut().extend(headers);
        h.send(req)
    };
    let r = post(signed.headers(), batch.clone()).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        (&r.json["data"]["received"], &r.json["data"]["duplicates"]),
        (&2.into(), &0.into())
    );
    let now_order = h.get(&format!("/api/orders/{id}")).await;
    assert_eq!(now_order.json["data"]["order"]["emailStatus"], "delivered");

    let r = post(signed.headers(), batch.clone()).await;
    assert_eq!(
        (&r.json["data"]["received"], &r.json["data"]["duplicates"]),
        (&0.into(), &2.into())
    );

    let forged = integrations_sendgrid::webhook::EventWebhookSigner::generate()
        .sign_for_test(now, batch.as_bytes());
    let r = post(forged.headers(), batch.replace("delivered", "bounce")).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert_eq!(r.json["error"]["type"], "invalid_signature");
    let r = post(axum::http::HeaderMap::new(), batch).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let still = h.get(&format!("/api/orders/{id}")).await;
    assert_eq!(still.json["data"]["order"]["emailStatus"], "delivered");
}
