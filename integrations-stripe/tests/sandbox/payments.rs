//! Payments through the sandbox: the core suite, the lifecycle, test cards, capture, refunds, cancel, idempotent replay.

use super::*;

#[tokio::test]
async fn passes_the_core_payment_provider_suite() {
    let sandbox = Sandbox::start().await.unwrap();
    let payments = StripePayments::new(client(&sandbox, 2));
    let cfg = PaymentSuiteConfig::new(
        Currency::USD,
        "pm_card_visa",
        "pm_card_chargeDeclined",
        "sandbox-suite",
    );
    payment_provider_suite(&payments, &cfg).await;
    // The suite's money never moved twice.
    for pi in sandbox.payment_intents() {
        let id = pi["id"].as_str().unwrap();
        let c = sandbox.intent_counters(id).unwrap();
        assert!(c.successful_charges <= 1, "{id}: {c:?}");
        assert!(c.captures <= 1, "{id}: {c:?}");
    }
    // for_each_intent sees the same intents, in the same order, with the same counters.
    let mut seen = Vec::new();
    sandbox.for_each_intent(|id, metadata, counters| {
        seen.push((id.to_owned(), metadata.clone(), counters));
    });
    let rendered = sandbox.payment_intents();
    assert_eq!(seen.len(), rendered.len());
    for ((id, metadata, counters), pi) in seen.iter().zip(&rendered) {
        assert_eq!(pi["id"].as_str(), Some(id.as_str()));
        assert_eq!(sandbox.intent_counters(id), Some(*counters));
        for (k, v) in metadata {
            assert_eq!(pi["metadata"][k].as_str(), Some(v.as_str()));
        }
    }
}

#[tokio::test]
async fn passes_the_suite_in_isk_and_jpy() {
    for (currency, run) in [(Currency::ISK, "isk"), (Currency::JPY, "jpy")] {
        let sandbox = Sandbox::start().await.unwrap();
        let payments = StripePayments::new(client(&sandbox, 0));
        let cfg = PaymentSuiteConfig::new(
            currency,
            "pm_card_visa",
            "pm_card_chargeDeclinedInsufficientFunds",
            run,
        );
        payment_provider_suite(&payments, &cfg).await;
        // 5000 ISK travels as 500000 on Stripe's wire; JPY as is.
        let wire = sandbox.payment_intents()[0]["amount"].as_i64().unwrap();
        let expected = if currency == Currency::ISK {
            500_000
        } else {
            5000
        };
        assert_eq!(wire, expected, "{currency}");
    }
}

#[tokio::test]
async fn lifecycle_from_creation_to_success() {
    let sandbox = Sandbox::start().await.unwrap();
    let payments = StripePayments::new(client(&sandbox, 0));
    let req = CreatePayment::new(usd(5998)).metadata("order_id", "42");
    let p = payments
        .create_payment(&req, &key("order-42", "payment"))
        .await
        .unwrap();
    assert_eq!(p.status, PaymentStatus::RequiresPaymentMethod);
    assert!(p.client_secret.is_some());
    assert_eq!(p.metadata["order_id"], "42");
    let p = payments
        .confirm_payment(&p.id, Some("pm_card_visa"), &key("order-42", "confirm"))
        .await
        .unwrap();
    assert_eq!(p.status, PaymentStatus::Succeeded);
    assert_eq!(p.amount_received, usd(5998));
    assert_eq!(p.payment_method.as_deref(), Some("pm_card_visa"));
    let c = sandbox.intent_counters(&p.id).unwrap();
    assert_eq!((c.charges, c.successful_charges, c.captures), (1, 1, 1));

    // With a payment method but not confirmed: requires_confirmation.
    let req = CreatePayment::new(usd(100)).payment_method("pm_card_visa");
    let p = payments
        .create_payment(&req, &key("order-43", "payment"))
        .await
        .unwrap();
    assert_eq!(p.status, PaymentStatus::RequiresConfirmation);
    let p = payments
        .confirm_payment(&p.id, None, &key("order-43", "confirm"))
        .await
        .unwrap();
    assert_eq!(p.status, PaymentStatus::Succeeded);
}

#[tokio::test]
async fn test_cards_decline_with_stripes_codes() {
    let sandbox = Sandbox::start().await.unwrap();
    let payments = StripePayments::new(client(&sandbox, 2));
    for (pm, code, decline) in [
        ("pm_card_chargeDeclined", "card_declined", "generic_decline"),
        (
            "pm_card_chargeDeclinedInsufficientFunds",
            "card_declined",
            "insufficient_funds",
        ),
        (
            "pm_card_chargeDeclinedExpiredCard",
            "expired_card",
            "expired_card",
        ),
    ] {
        let p = payments
            .create_payment(&CreatePayment::new(usd(2000)), &key(pm, "payment"))
            .await
            .unwrap();
        let e = payments
            .confirm_payment(&p.id, Some(pm), &key(pm, "confirm"))
            .await
            .unwrap_err();
        match &e {
            Error::Declined {
                code: c,
                decline_code: d,
                ..
            } => {
                assert_eq!(c.as_deref(), Some(code), "{pm}");
                assert_eq!(d.as_deref(), Some(decline), "{pm}");
            }
            other => panic!("{pm}: expected a decline, got {other}"),
        }
        assert!(
            e.request_id().is_some_and(|r| r.starts_with("req_")),
            "{e:?}"
        );
        assert!(!e.is_retryable());
        let after = payments.retrieve_payment(&p.id).await.unwrap();
        assert_eq!(after.status, PaymentStatus::RequiresPaymentMethod);
        let failure = after.last_failure.unwrap();
        assert_eq!(failure.decline_code.as_deref(), Some(decline));
        // The same confirm retried with its key replays the decline; no second charge attempt.
        let again = payments
            .confirm_payment(&p.id, Some(pm), &key(pm, "confirm"))
            .await
            .unwrap_err();
        assert_eq!(again.kind(), ErrorKind::Declined);
        assert_eq!(sandbox.intent_counters(&p.id).unwrap().charges, 1);
        let ok = payments
            .confirm_payment(&p.id, Some("pm_card_visa"), &key(pm, "confirm-2"))
            .await
            .unwrap();
        assert_eq!(ok.status, PaymentStatus::Succeeded);
        assert!(ok.last_failure.is_none());
    }
    // A decline while creating with confirm=true is a decline too.
    let req = CreatePayment::new(usd(100))
        .payment_method("pm_card_chargeDeclined")
        .confirm(true);
    let e = payments
        .create_payment(&req, &key("create-decline", "payment"))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Declined);
}

#[tokio::test]
async fn manual_capture_partial_then_refunds_of_the_captured_part() {
    let sandbox = Sandbox::start().await.unwrap();
    let payments = StripePayments::new(client(&sandbox, 0));
    let req = CreatePayment::new(usd(5000))
        .capture_method(CaptureMethod::Manual)
        .payment_method("pm_card_visa")
        .confirm(true);
    let p = payments
        .create_payment(&req, &key("order-9", "payment"))
        .await
        .unwrap();
    assert_eq!(p.status, PaymentStatus::RequiresCapture);
    let e = payments
        .capture_payment(
            &p.id,
            Some(Money::from_minor(3000, Currency::EUR)),
            &key("order-9", "capture"),
        )
        .await
        .unwrap_err();
    assert_eq!(e.field(), Some("amount"));
    let p = payments
        .capture_payment(&p.id, Some(usd(3000)), &key("order-9", "capture"))
        .await
        .unwrap();
    assert_eq!(p.status, PaymentStatus::Succeeded);
    assert_eq!(p.amount_received, usd(3000));
    // The released 2000 is not a refund: everything captured is still refundable.
    assert_eq!(p.amount_refunded, usd(0));
    assert_eq!(p.refundable(), usd(3000));
    let r = payments
        .refund(
            &RefundRequest::partial(&p.id, usd(1000)).reason(RefundReason::RequestedByCustomer),
            &key("order-9", "refund-1"),
        )
        .await
        .unwrap();
    assert_eq!(r.amount, usd(1000));
    assert_eq!(r.reason, Some(RefundReason::RequestedByCustomer));
    let e = payments
        .refund(
            &RefundRequest::partial(&p.id, usd(2001)),
            &key("order-9", "refund-2"),
        )
        .await
        .unwrap_err();
    assert_eq!(e.field(), Some("amount"));
    let rest = payments
        .refund(&RefundRequest::full(&p.id), &key("order-9", "refund-3"))
        .await
        .unwrap();
    assert_eq!(rest.amount, usd(2000));
    assert_eq!(sandbox.counters().refunds, 2);
    // The pre-check refused the over-refund: it never reached the sandbox as a POST.
    let posts = sandbox
        .requests()
        .into_iter()
        .filter(|r| r.method == "POST" && r.path == "/v1/refunds")
        .count();
    assert_eq!(posts, 2);
}

#[tokio::test]
async fn stripes_own_over_refund_refusal_maps_to_the_same_error() {
    let sandbox = Sandbox::start().await.unwrap();
    let client = client(&sandbox, 0);
    let payments = StripePayments::new(client.clone());
    let req = CreatePayment::new(usd(5000))
        .payment_method("pm_card_visa")
        .confirm(true);
    let p = payments
        .create_payment(&req, &key("order-5", "payment"))
        .await
        .unwrap();
    // The raw call has no pre-check: the sandbox refuses with Stripe's wording.
    let e = client
        .create_refund(
            &CreateRefund::for_payment_intent(&p.id).amount(usd(6000)),
            &key("order-5", "raw-refund"),
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    assert_eq!(e.field(), Some("amount"));
    assert!(
        e.message().contains("is greater than unrefunded amount"),
        "{e}"
    );
    let local = payments
        .refund(
            &RefundRequest::partial(&p.id, usd(6000)),
            &key("order-5", "refund"),
        )
        .await
        .unwrap_err();
    assert_eq!(
        (local.kind(), local.field(), local.code()),
        (e.kind(), e.field(), e.code())
    );
}

#[tokio::test]
async fn refunds_retried_after_a_crash_return_the_first_refund() {
    let sandbox = Sandbox::start().await.unwrap();
    let payments = StripePayments::new(client(&sandbox, 0));
    let req = CreatePayment::new(usd(5000))
        .payment_method("pm_card_visa")
        .confirm(true);
    let p = payments
        .create_payment(&req, &key("order-8", "payment"))
        .await
        .unwrap();
    let k = key("order-8", "refund");
    let first = payments
        .refund(&RefundRequest::full(&p.id), &k)
        .await
        .unwrap();
    // A new process retries the same business operation: nothing is left to refund, yet the
    // answer is the refund already made, not an error and not a second refund.
    let again = payments
        .refund(&RefundRequest::full(&p.id), &k)
        .await
        .unwrap();
    assert_eq!(again.id, first.id);
    assert_eq!(again.amount, usd(5000));
    assert!(
        !again
            .metadata
            .contains_key(integrations_stripe::payments::REFUND_KEY_METADATA)
    );
    assert_eq!(sandbox.counters().refunds, 1);
}

#[tokio::test]
async fn listed_refunds_carry_the_key_they_were_made_with() {
    let sandbox = Sandbox::start().await.unwrap();
    let payments = StripePayments::new(client(&sandbox, 0));
    let req = CreatePayment::new(usd(5000))
        .payment_method("pm_card_visa")
        .confirm(true);
    let p = payments
        .create_payment(&req, &key("order-9", "payment"))
        .await
        .unwrap();
    let k1 = key("order-9", "refund-1");
    let mine = payments
        .refund(&RefundRequest::partial(&p.id, usd(1000)), &k1)
        .await
        .unwrap();
    assert_eq!(mine.idempotency_key.as_deref(), Some(k1.as_str()));
    // A refund made outside `StripePayments` (the dashboard, the raw client): no key recorded.
    let outside = payments
        .client()
        .create_refund(
            &CreateRefund::for_payment_intent(p.id.clone()).amount(usd(500)),
            &key("dashboard", "refund"),
        )
        .await
        .unwrap();
    let listed = payments.list_refunds(&p.id).await.unwrap();
    let ids: Vec<_> = listed.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, [mine.id.as_str(), outside.id.as_str()], "oldest first");
    assert!(listed[0].made_with(&k1));
    assert_eq!(listed[1].idempotency_key, None);
    assert!(!listed[1].made_with(&key("order-9", "refund-2")));
    assert!(listed.iter().all(|r| {
        !r.metadata
            .contains_key(integrations_stripe::payments::REFUND_KEY_METADATA)
    }));
    let e = payments.list_refunds("pi_missing").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
}

#[tokio::test]
async fn cancel_with_reason() {
    let sandbox = Sandbox::start().await.unwrap();
    let payments = StripePayments::new(client(&sandbox, 0));
    let p = payments
        .create_payment(&CreatePayment::new(usd(700)), &key("order-3", "payment"))
        .await
        .unwrap();
    let c = payments
        .cancel_payment(
            &p.id,
            Some(CancelReason::RequestedByCustomer),
            &key("order-3", "cancel"),
        )
        .await
        .unwrap();
    assert_eq!(c.status, PaymentStatus::Canceled);
    let raw = payments
        .client()
        .retrieve_payment_intent(&p.id, &[])
        .await
        .unwrap();
    assert_eq!(
        raw.cancellation_reason.as_deref(),
        Some("requested_by_customer")
    );
    let e = payments
        .cancel_payment(&p.id, None, &key("order-3", "cancel-2"))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    assert_eq!(e.code(), Some("payment_intent_unexpected_state"));
}

#[tokio::test]
async fn idempotent_replay_and_conflict() {
    let sandbox = Sandbox::start().await.unwrap();
    let payments = StripePayments::new(client(&sandbox, 2));
    let k = key("order-11", "payment");
    let req = CreatePayment::new(usd(1234))
        .payment_method("pm_card_visa")
        .confirm(true);
    let a = payments.create_payment(&req, &k).await.unwrap();
    let b = payments.create_payment(&req, &k).await.unwrap();
    assert_eq!(a.id, b.id);
    assert_eq!(sandbox.counters().payment_intents_created, 1);
    assert_eq!(sandbox.counters().idempotent_replays, 1);
    assert!(
        sandbox
            .requests()
            .iter()
            .any(|r| r.replayed && r.idempotency_key.as_deref() == Some(k.as_str()))
    );
    let e = payments
        .create_payment(&CreatePayment::new(usd(1235)), &k)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Conflict);
    assert!(!e.is_retryable());
    assert_eq!(sandbox.counters().payment_intents_created, 1);
}
