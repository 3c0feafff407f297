use super::*;
use integrations_core::clock::FixedClock;
use integrations_core::provider::{CaptureMethod, PaymentStatus};
use integrations_core::{Currency, ErrorKind};

fn usd(m: i64) -> Money {
    Money::from_minor(m, Currency::USD)
}

fn key(s: &str) -> IdempotencyKey {
    IdempotencyKey::new(s).unwrap()
}

async fn paid(stub: &StubPaymentProvider, amount: i64, k: &str) -> Payment {
    let req = CreatePayment::new(usd(amount))
        .payment_method(SUCCEEDING_METHOD)
        .confirm(true);
    stub.create_payment(&req, &key(k)).await.unwrap()
}

#[tokio::test]
async fn create_then_confirm_succeeds_and_records_time() {
    let stub = StubPaymentProvider::new_ok().with_clock(FixedClock::from_unix(1_700_000_000));
    let p = stub
        .create_payment(
            &CreatePayment::new(usd(5000)).metadata("order", "42"),
            &key("c1"),
        )
        .await
        .unwrap();
    assert_eq!(p.status, PaymentStatus::RequiresPaymentMethod);
    assert_eq!(p.created, 1_700_000_000);
    assert_eq!(p.metadata.get("order").map(String::as_str), Some("42"));
    assert!(p.client_secret.is_some());
    let p = stub
        .confirm_payment(&p.id, Some(SUCCEEDING_METHOD), &key("c1/confirm"))
        .await
        .unwrap();
    assert_eq!(p.status, PaymentStatus::Succeeded);
    assert_eq!(p.amount_received, usd(5000));
    assert_eq!(stub.retrieve_payment(&p.id).await.unwrap(), p);
}

#[tokio::test]
async fn idempotent_replay_and_key_reuse() {
    let stub = StubPaymentProvider::new_ok();
    let req = CreatePayment::new(usd(100));
    let a = stub.create_payment(&req, &key("k")).await.unwrap();
    let b = stub.create_payment(&req, &key("k")).await.unwrap();
    assert_eq!(a.id, b.id);
    assert_eq!(stub.payments().len(), 1);
    let e = stub
        .create_payment(&CreatePayment::new(usd(101)), &key("k"))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Conflict);
    assert_eq!(e.code(), Some("idempotency_error"));
    assert_eq!(e.provider_name(), Some("stub-payments"));
    // The same key for another operation is a reuse too.
    let e = stub
        .cancel_payment(&a.id, None, &key("k"))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Conflict);
    // A confirm retried with its key replays instead of failing on the new state.
    let c1 = stub
        .confirm_payment(&a.id, Some(SUCCEEDING_METHOD), &key("k/confirm"))
        .await
        .unwrap();
    let c2 = stub
        .confirm_payment(&a.id, Some(SUCCEEDING_METHOD), &key("k/confirm"))
        .await
        .unwrap();
    assert_eq!(c1, c2);
    // A new key on a succeeded payment is a state conflict.
    let e = stub
        .confirm_payment(&a.id, Some(SUCCEEDING_METHOD), &key("k/confirm2"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("payment_intent_unexpected_state"));
}

#[tokio::test]
async fn decline_is_recorded_replayed_and_recoverable() {
    let stub = StubPaymentProvider::new_ok();
    let p = stub
        .create_payment(&CreatePayment::new(usd(700)), &key("d"))
        .await
        .unwrap();
    let e = stub
        .confirm_payment(&p.id, Some(DECLINING_METHOD), &key("d/1"))
        .await
        .unwrap_err();
    match &e {
        Error::Declined {
            code, decline_code, ..
        } => {
            assert_eq!(code.as_deref(), Some("card_declined"));
            assert_eq!(decline_code.as_deref(), Some("generic_decline"));
        }
        other => panic!("{other:?}"),
    }
    assert!(!e.is_retryable());
    let after = stub.payment(&p.id).unwrap();
    assert_eq!(after.status, PaymentStatus::RequiresPaymentMethod);
    assert_eq!(
        after.last_failure.unwrap().code.as_deref(),
        Some("card_declined")
    );
    let replay = stub
        .confirm_payment(&p.id, Some(DECLINING_METHOD), &key("d/1"))
        .await
        .unwrap_err();
    assert_eq!(replay.kind(), ErrorKind::Declined);
    let ok = stub
        .confirm_payment(&p.id, Some(SUCCEEDING_METHOD), &key("d/2"))
        .await
        .unwrap();
    assert_eq!(ok.status, PaymentStatus::Succeeded);
    assert!(ok.last_failure.is_none());
}

#[tokio::test]
async fn custom_methods() {
    let stub = StubPaymentProvider::new_ok()
        .with_succeeding_method("pm_card_visa")
        .with_declining_method(
            "pm_card_chargeDeclinedInsufficientFunds",
            "card_declined",
            Some("insufficient_funds".into()),
        );
    let ok = CreatePayment::new(usd(1))
        .payment_method("pm_card_visa")
        .confirm(true);
    assert!(stub.create_payment(&ok, &key("m1")).await.is_ok());
    let bad = CreatePayment::new(usd(1))
        .payment_method("pm_card_chargeDeclinedInsufficientFunds")
        .confirm(true);
    let e = stub.create_payment(&bad, &key("m2")).await.unwrap_err();
    assert!(
        matches!(e, Error::Declined { ref decline_code, .. } if decline_code.as_deref() == Some("insufficient_funds"))
    );
    let unknown = CreatePayment::new(usd(1)).payment_method("pm_nope");
    let e = stub.create_payment(&unknown, &key("m3")).await.unwrap_err();
    assert_eq!(e.field(), Some("payment_method"));
    let no_pm = CreatePayment::new(usd(1)).confirm(true);
    let e = stub.create_payment(&no_pm, &key("m4")).await.unwrap_err();
    assert_eq!(e.field(), Some("payment_method"));
}

#[tokio::test]
async fn manual_and_partial_capture() {
    let stub = StubPaymentProvider::new_ok();
    let req = CreatePayment::new(usd(1000))
        .payment_method(SUCCEEDING_METHOD)
        .capture_method(CaptureMethod::Manual)
        .confirm(true);
    let p = stub.create_payment(&req, &key("cap")).await.unwrap();
    assert_eq!(p.status, PaymentStatus::RequiresCapture);
    assert_eq!(p.amount_received, usd(0));
    let e = stub
        .refund(&RefundRequest::full(&p.id), &key("cap/r"))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Conflict, "nothing captured yet");
    let e = stub
        .capture_payment(&p.id, Some(usd(1001)), &key("cap/c0"))
        .await
        .unwrap_err();
    assert_eq!(e.field(), Some("amount"));
    let e = stub
        .capture_payment(
            &p.id,
            Some(Money::from_minor(5, Currency::EUR)),
            &key("cap/c0b"),
        )
        .await
        .unwrap_err();
    assert_eq!(e.field(), Some("amount"));
    let c = stub
        .capture_payment(&p.id, Some(usd(600)), &key("cap/c1"))
        .await
        .unwrap();
    assert_eq!(c.status, PaymentStatus::Succeeded);
    assert_eq!(c.amount_received, usd(600));
    assert_eq!(c.amount, usd(1000));
    let e = stub
        .capture_payment(&p.id, None, &key("cap/c2"))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Conflict);
    let r = stub
        .refund(&RefundRequest::full(&p.id), &key("cap/r2"))
        .await
        .unwrap();
    assert_eq!(r.amount, usd(600), "only what was captured is refundable");
}

#[tokio::test]
async fn refunds_partial_over_rest_and_replay() {
    let stub = StubPaymentProvider::new_ok();
    let p = paid(&stub, 5000, "r").await;
    let r1 = stub
        .refund(&RefundRequest::partial(&p.id, usd(1000)), &key("r/1"))
        .await
        .unwrap();
    let again = stub
        .refund(&RefundRequest::partial(&p.id, usd(1000)), &key("r/1"))
        .await
        .unwrap();
    assert_eq!(r1, again);
    assert_eq!(stub.refunds().len(), 1, "a replay refunds nothing more");
    let e = stub
        .refund(&RefundRequest::partial(&p.id, usd(4001)), &key("r/2"))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    assert_eq!(e.field(), Some("amount"));
    let rest = stub
        .refund(&RefundRequest::full(&p.id), &key("r/3"))
        .await
        .unwrap();
    assert_eq!(rest.amount, usd(4000));
    assert_eq!(stub.payment(&p.id).unwrap().amount_refunded, usd(5000));
    let e = stub
        .refund(&RefundRequest::full(&p.id), &key("r/4"))
        .await
        .unwrap_err();
    assert_eq!(e.field(), Some("amount"));
}

#[tokio::test]
async fn narrowed_capabilities_are_enforced() {
    let stub = StubPaymentProvider::new_ok().with_capabilities(PaymentCapabilities::default());
    let manual = CreatePayment::new(usd(10)).capture_method(CaptureMethod::Manual);
    let e = stub.create_payment(&manual, &key("n1")).await.unwrap_err();
    assert_eq!(e.field(), Some("capture_method"));
    let p = paid(&stub, 10, "n2").await;
    let e = stub
        .refund(&RefundRequest::partial(&p.id, usd(5)), &key("n2/r"))
        .await
        .unwrap_err();
    assert_eq!(e.field(), Some("amount"));
    assert!(
        stub.refund(&RefundRequest::full(&p.id), &key("n2/r2"))
            .await
            .is_ok()
    );
    let only_manual = StubPaymentProvider::new_ok().with_capabilities({
        let mut c = PaymentCapabilities::default();
        c.manual_capture = true;
        c
    });
    let req = CreatePayment::new(usd(10))
        .payment_method(SUCCEEDING_METHOD)
        .capture_method(CaptureMethod::Manual)
        .confirm(true);
    let p = only_manual.create_payment(&req, &key("n3")).await.unwrap();
    let e = only_manual
        .capture_payment(&p.id, Some(usd(5)), &key("n3/c"))
        .await
        .unwrap_err();
    assert_eq!(e.field(), Some("amount"));
}

#[tokio::test]
async fn cancel_states() {
    let stub = StubPaymentProvider::new_ok();
    let p = stub
        .create_payment(&CreatePayment::new(usd(10)), &key("x"))
        .await
        .unwrap();
    let c = stub
        .cancel_payment(&p.id, Some(CancelReason::Abandoned), &key("x/cancel"))
        .await
        .unwrap();
    assert_eq!(c.status, PaymentStatus::Canceled);
    assert_eq!(
        stub.cancellation_reason(&p.id),
        Some(CancelReason::Abandoned)
    );
    let e = stub
        .confirm_payment(&p.id, Some(SUCCEEDING_METHOD), &key("x/confirm"))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Conflict);
    let s = paid(&stub, 10, "y").await;
    let e = stub
        .cancel_payment(&s.id, None, &key("y/cancel"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("payment_intent_unexpected_state"));
    let e = stub.retrieve_payment("pi_missing").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
}

#[tokio::test]
async fn validation_and_scripted_failures_have_no_effect() {
    let stub = StubPaymentProvider::new_ok();
    let e = stub
        .create_payment(&CreatePayment::new(usd(0)), &key("z"))
        .await
        .unwrap_err();
    assert_eq!(e.field(), Some("amount"));
    stub.fail_next(1, || Error::unavailable("connect refused").not_processed());
    let e = stub
        .create_payment(&CreatePayment::new(usd(1)), &key("z"))
        .await
        .unwrap_err();
    assert!(e.is_failover_safe());
    assert!(stub.payments().is_empty());
    // Neither the invalid request nor the failure recorded the key.
    let p = stub
        .create_payment(&CreatePayment::new(usd(1)), &key("z"))
        .await
        .unwrap();
    assert_eq!(p.amount, usd(1));
    assert_eq!(stub.calls(), 3);
    let d = format!("{stub:?}");
    assert!(d.contains("payments: 1") && !d.contains("secret"), "{d}");
}
