//! Webhook vectors (valid, tampered, wrong secret, rotation, several `v1`, expired, future,
//! malformed, re-serialised body), dedup, and signed deliveries from the sandbox.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use hmac::{Hmac, Mac};
use integrations_core::clock::{FixedClock, from_unix_seconds};
use integrations_core::provider::{CreatePayment, PaymentProvider, RefundRequest};
use integrations_core::webhook::{InMemoryDedupStore, WebhookSecret};
use integrations_core::{Currency, Error, IdempotencyKey, Money, SignatureFailure};
use integrations_stripe::StripePayments;
use integrations_stripe::sandbox::{Sandbox, WebhookDelivery};
use integrations_stripe::types::EventObject;
use integrations_stripe::webhook::{
    DEFAULT_TOLERANCE, StripeWebhookVerifier, sign_for_test, verify,
};
use sha2::Sha256;
use wiremock::matchers::{header_exists, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const T: i64 = 1_700_000_000;
const SECRET: &str = "whsec_test_4eC39HqLyjWDarjtT1zdp7dc";
const BODY: &str = r#"{
  "id": "evt_1OKxyz",
  "object": "event",
  "api_version": "2025-03-31.basil",
  "created": 1700000000,
  "data": {
    "object": {
      "id": "pi_1OKxyz",
      "object": "payment_intent",
      "amount": 5998,
      "amount_received": 5998,
      "currency": "usd",
      "status": "succeeded",
      "metadata": {"order_id": "42"}
    }
  },
  "livemode": false,
  "pending_webhooks": 1,
  "request": {"id": "req_1", "idempotency_key": "order-42/payment"},
  "type": "payment_intent.succeeded"
}"#;

fn secret(s: &str) -> WebhookSecret {
    WebhookSecret::new(s)
}

/// Stripe's scheme computed independently with the `hmac` crate.
fn reference_signature(secret: &str, t: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{t}.").as_bytes());
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

fn at(t: i64) -> SystemTime {
    from_unix_seconds(t)
}

fn reason(e: Error) -> SignatureFailure {
    match e {
        Error::InvalidSignature { reason, .. } => reason,
        other => panic!("expected an invalid signature, got {other}"),
    }
}

#[test]
fn valid_signature_yields_a_typed_event() {
    let header = format!(
        "t={T},v1={}",
        reference_signature(SECRET, T, BODY.as_bytes())
    );
    assert_eq!(header, sign_for_test(BODY.as_bytes(), &secret(SECRET), T));
    let e = verify(
        BODY.as_bytes(),
        &header,
        &[secret(SECRET)],
        DEFAULT_TOLERANCE,
        at(T + 5),
    )
    .unwrap();
    assert_eq!(e.id, "evt_1OKxyz");
    assert_eq!(e.type_, "payment_intent.succeeded");
    assert_eq!(e.created, T);
    assert!(!e.livemode);
    assert_eq!(e.api_version.as_deref(), Some("2025-03-31.basil"));
    let pi = e.payment_intent().unwrap();
    assert_eq!(pi.amount, Money::from_minor(5998, Currency::USD));
    assert_eq!(pi.metadata["order_id"], "42");
}

#[test]
fn tampered_body_does_not_verify() {
    let header = sign_for_test(BODY.as_bytes(), &secret(SECRET), T);
    let tampered = BODY.replace("5998", "1");
    let e = verify(
        tampered.as_bytes(),
        &header,
        &[secret(SECRET)],
        DEFAULT_TOLERANCE,
        at(T),
    )
    .unwrap_err();
    assert_eq!(reason(e), SignatureFailure::NoMatch);
}

#[test]
fn wrong_secret_does_not_verify() {
    let header = sign_for_test(BODY.as_bytes(), &secret("whsec_other"), T);
    let e = verify(
        BODY.as_bytes(),
        &header,
        &[secret(SECRET)],
        DEFAULT_TOLERANCE,
        at(T),
    )
    .unwrap_err();
    assert_eq!(reason(e), SignatureFailure::NoMatch);
}

#[test]
fn rotated_secrets_both_verify() {
    let secrets = [secret("whsec_new"), secret("whsec_old")];
    for s in ["whsec_old", "whsec_new"] {
        let header = sign_for_test(BODY.as_bytes(), &secret(s), T);
        verify(BODY.as_bytes(), &header, &secrets, DEFAULT_TOLERANCE, at(T)).unwrap();
    }
}

#[test]
fn two_v1_signatures_one_valid() {
    let good = reference_signature(SECRET, T, BODY.as_bytes());
    let bad = reference_signature("whsec_expired", T, BODY.as_bytes());
    for header in [
        format!("t={T},v1={bad},v1={good}"),
        format!("t={T},v1={good},v1={bad}"),
        format!("t={T},v0={bad},v1={bad},v1={good}"),
        format!("v1={good}, t={T}, v1=not-hex"),
    ] {
        verify(
            BODY.as_bytes(),
            &header,
            &[secret(SECRET)],
            DEFAULT_TOLERANCE,
            at(T),
        )
        .unwrap();
    }
    let e = verify(
        BODY.as_bytes(),
        &format!("t={T},v1={bad},v0={good}"),
        &[secret(SECRET)],
        DEFAULT_TOLERANCE,
        at(T),
    )
    .unwrap_err();
    assert_eq!(
        reason(e),
        SignatureFailure::NoMatch,
        "a v0 signature is ignored"
    );
}

#[test]
fn expired_and_future_timestamps_are_refused() {
    let header = sign_for_test(BODY.as_bytes(), &secret(SECRET), T);
    let s = [secret(SECRET)];
    verify(BODY.as_bytes(), &header, &s, DEFAULT_TOLERANCE, at(T + 300)).unwrap();
    verify(BODY.as_bytes(), &header, &s, DEFAULT_TOLERANCE, at(T - 300)).unwrap();
    let expired = verify(BODY.as_bytes(), &header, &s, DEFAULT_TOLERANCE, at(T + 301)).unwrap_err();
    assert!(matches!(
        reason(expired),
        SignatureFailure::TimestampOutsideTolerance { timestamp: T, .. }
    ));
    let future = verify(BODY.as_bytes(), &header, &s, DEFAULT_TOLERANCE, at(T - 301)).unwrap_err();
    assert!(matches!(
        reason(future),
        SignatureFailure::TimestampOutsideTolerance { .. }
    ));
    verify(
        BODY.as_bytes(),
        &header,
        &s,
        Duration::from_secs(3600),
        at(T + 3000),
    )
    .unwrap();
}

#[test]
fn malformed_headers_and_missing_v1_are_distinguished() {
    let s = [secret(SECRET)];
    let sig = reference_signature(SECRET, T, BODY.as_bytes());
    for header in [
        "",
        "garbage",
        &format!("v1={sig}"),
        &format!("t=abc,v1={sig}"),
        &format!("t={T},t={T},v1={sig}"),
    ] {
        let e = verify(BODY.as_bytes(), header, &s, DEFAULT_TOLERANCE, at(T)).unwrap_err();
        assert!(
            matches!(reason(e), SignatureFailure::MalformedHeader(_)),
            "{header:?}"
        );
    }
    let e = verify(
        BODY.as_bytes(),
        &format!("t={T},v0={sig}"),
        &s,
        DEFAULT_TOLERANCE,
        at(T),
    )
    .unwrap_err();
    assert_eq!(reason(e), SignatureFailure::NoSupportedSignature);
}

#[test]
fn a_reserialised_body_does_not_verify() {
    let header = sign_for_test(BODY.as_bytes(), &secret(SECRET), T);
    let parsed: serde_json::Value = serde_json::from_str(BODY).unwrap();
    let compact = serde_json::to_vec(&parsed).unwrap();
    let e = verify(
        &compact,
        &header,
        &[secret(SECRET)],
        DEFAULT_TOLERANCE,
        at(T),
    )
    .unwrap_err();
    assert_eq!(reason(e), SignatureFailure::NoMatch);
}

#[test]
fn other_event_types_stay_raw_json() {
    let body = br#"{"id":"evt_2","object":"event","type":"invoice.paid","created":1700000000,"livemode":true,
        "api_version":null,"data":{"object":{"id":"in_1","object":"invoice","total":100}}}"#;
    let header = sign_for_test(body, &secret(SECRET), T);
    let e = verify(body, &header, &[secret(SECRET)], DEFAULT_TOLERANCE, at(T)).unwrap();
    assert!(e.livemode);
    match e.object().unwrap() {
        EventObject::Other(v) => assert_eq!(v["total"], 100),
        other => panic!("{other:?}"),
    }
    // Signed but not an event: a provider error, not a signature failure.
    let header = sign_for_test(b"[1,2]", &secret(SECRET), T);
    let e = verify(
        b"[1,2]",
        &header,
        &[secret(SECRET)],
        DEFAULT_TOLERANCE,
        at(T),
    )
    .unwrap_err();
    assert_eq!(e.kind(), integrations_core::ErrorKind::Provider);
}

#[tokio::test]
async fn verifier_dedups_redeliveries_and_uses_its_clock() {
    let clock = FixedClock::from_unix(T);
    let verifier = StripeWebhookVerifier::new(secret(SECRET)).with_clock(clock.clone());
    let header = sign_for_test(BODY.as_bytes(), &secret(SECRET), T);
    let store = InMemoryDedupStore::new();
    let first = verifier
        .verify_and_dedup(BODY.as_bytes(), &header, &store)
        .await
        .unwrap();
    assert!(!first.duplicate);
    assert_eq!(first.event.id, "evt_1OKxyz");
    let second = verifier
        .verify_and_dedup(BODY.as_bytes(), &header, &store)
        .await
        .unwrap();
    assert!(second.duplicate);
    clock.advance(Duration::from_secs(301));
    let e = verifier.verify(BODY.as_bytes(), &header).unwrap_err();
    assert!(matches!(
        reason(e),
        SignatureFailure::TimestampOutsideTolerance { .. }
    ));
    // A tampered delivery is refused before it can be recorded.
    let e = verifier
        .verify_and_dedup(b"{}", &header, &store)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), integrations_core::ErrorKind::InvalidSignature);
}

#[tokio::test]
async fn sandbox_deliveries_verify_and_carry_typed_objects() {
    let sandbox = Sandbox::start().await.unwrap();
    let seen: Arc<Mutex<Vec<WebhookDelivery>>> = Arc::default();
    let sink = seen.clone();
    sandbox.on_webhook(move |d| sink.lock().unwrap().push(d));
    let hook_server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/hooks/stripe"))
        .and(header_exists("stripe-signature"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&hook_server)
        .await;
    sandbox.add_webhook_endpoint(format!("{}/hooks/stripe", hook_server.uri()));

    let payments = StripePayments::new(sandbox.client().unwrap());
    let key = |op: &str| IdempotencyKey::derive("order-42", op).unwrap();
    let usd = |m| Money::from_minor(m, Currency::USD);
    let declined = payments
        .create_payment(&CreatePayment::new(usd(500)), &key("payment-1"))
        .await
        .unwrap();
    payments
        .confirm_payment(
            &declined.id,
            Some("pm_card_chargeDeclinedInsufficientFunds"),
            &key("confirm-1"),
        )
        .await
        .unwrap_err();
    let req = CreatePayment::new(usd(5998))
        .payment_method("pm_card_visa")
        .confirm(true);
    let paid = payments
        .create_payment(&req, &key("payment-2"))
        .await
        .unwrap();
    payments
        .refund(
            &RefundRequest::partial(&paid.id, usd(1000)),
            &key("refund-1"),
        )
        .await
        .unwrap();
    sandbox.flush_webhooks().await;

    let verifier = StripeWebhookVerifier::new(sandbox.webhook_secret());
    let deliveries = seen.lock().unwrap().clone();
    let store = InMemoryDedupStore::new();
    let mut types = Vec::new();
    for d in &deliveries {
        let v = verifier
            .verify_and_dedup(&d.payload, &d.signature, &store)
            .await
            .unwrap();
        assert!(!v.duplicate);
        assert_eq!(v.event.id, d.event_id);
        types.push(v.event.type_.clone());
        match v.event.type_.as_str() {
            "payment_intent.payment_failed" => {
                let pi = v.event.payment_intent().unwrap();
                assert_eq!(pi.id, declined.id);
                let err = pi.last_payment_error.as_ref().unwrap();
                assert_eq!(err.decline_code.as_deref(), Some("insufficient_funds"));
            }
            "payment_intent.succeeded" => {
                assert_eq!(v.event.payment_intent().unwrap().amount_received, usd(5998))
            }
            "charge.refunded" => assert_eq!(v.event.charge().unwrap().amount_refunded, usd(1000)),
            "refund.created" => assert_eq!(v.event.refund().unwrap().amount, usd(1000)),
            _ => {}
        }
        // Re-fetching the event gives Stripe's copy, equal to the delivered one.
        let fetched = payments.client().retrieve_event(&d.event_id).await.unwrap();
        assert_eq!(fetched, v.event);
    }
    for t in [
        "payment_intent.created",
        "payment_intent.payment_failed",
        "charge.failed",
        "payment_intent.succeeded",
        "charge.succeeded",
        "charge.refunded",
        "refund.created",
    ] {
        assert!(types.iter().any(|x| x == t), "{t} missing from {types:?}");
    }

    // The same events reached the URL, signed, and verify there too.
    let received = hook_server.received_requests().await.unwrap();
    assert_eq!(received.len(), deliveries.len());
    for r in &received {
        let sig = r.headers["stripe-signature"].to_str().unwrap();
        verifier.verify(&r.body, sig).unwrap();
        assert_eq!(r.headers["content-type"], "application/json; charset=utf-8");
    }
    assert!(sandbox.deliveries().iter().all(|d| d.delivered));

    // A redelivery is a duplicate.
    let refunded = deliveries
        .iter()
        .find(|d| d.event_type == "charge.refunded")
        .unwrap();
    assert!(sandbox.resend_event(&refunded.event_id));
    sandbox.flush_webhooks().await;
    let last = seen.lock().unwrap().last().cloned().unwrap();
    assert_eq!(last.event_id, refunded.event_id);
    let again = verifier
        .verify_and_dedup(&last.payload, &last.signature, &store)
        .await
        .unwrap();
    assert!(again.duplicate);
    assert!(!sandbox.resend_event("evt_missing"));
}

/// A delivery whose object is newer than our types (a currency missing from core's table, a
/// status the pinned API version does not know) still verifies: the event is returned and only
/// its typed object is unavailable (an error) or falls back to `Unknown`.
#[tokio::test]
async fn objects_newer_than_our_types_still_deliver() {
    use integrations_core::webhook::WebhookVerifier;
    use integrations_stripe::types::ChargeStatus;

    let verifier = StripeWebhookVerifier::new(secret(SECRET)).with_clock(FixedClock::from_unix(T));
    let deliver = |body: String| {
        let mut headers = http::HeaderMap::new();
        headers.insert(
            "Stripe-Signature",
            sign_for_test(body.as_bytes(), &secret(SECRET), T)
                .parse()
                .unwrap(),
        );
        (headers, body)
    };

    let (h, body) = deliver(BODY.replace(r#""currency": "usd""#, r#""currency": "xyz""#));
    assert!(body.contains("xyz"));
    let event = verifier.verify_request(&h, body.as_bytes()).await.unwrap();
    assert_eq!(event.id, "evt_1OKxyz");
    assert_eq!(event.event_type(), "payment_intent.succeeded");
    assert!(event.object().is_err());
    assert!(event.payment_intent().is_none());
    assert!(event.data.raw_object().contains("xyz"));

    let (h, body) = deliver(BODY.replace(
        r#""status": "succeeded""#,
        r#""status": "some_future_status""#,
    ));
    assert!(body.contains("some_future_status"));
    let event = verifier.verify_request(&h, body.as_bytes()).await.unwrap();
    assert_eq!(event.id, "evt_1OKxyz");
    assert!(
        event.object().is_err(),
        "core's PaymentStatus has no unknown value"
    );

    // A charge with a status newer than ours is typed, with the status kept as sent.
    let charge = BODY
        .replace(r#""id": "pi_1OKxyz""#, r#""id": "ch_1OKxyz""#)
        .replace(r#""object": "payment_intent""#, r#""object": "charge""#)
        .replace(
            r#""status": "succeeded""#,
            r#""status": "some_future_status", "amount_captured": 5998, "amount_refunded": 0, "captured": true, "created": 1700000000, "paid": true, "refunded": false"#,
        )
        .replace("payment_intent.succeeded", "charge.succeeded");
    let (h, body) = deliver(charge);
    let event = verifier.verify_request(&h, body.as_bytes()).await.unwrap();
    match event.object().unwrap() {
        EventObject::Charge(c) => {
            assert_eq!(c.status, ChargeStatus::Unknown("some_future_status".into()));
        }
        other => panic!("expected a charge, got {other:?}"),
    }
}
