//! The real client and `StripePayments` against the in-process sandbox: lifecycle, declines,
//! refunds, idempotent replay, fault injection (the retry that must not charge twice), and the
//! core `PaymentProvider` behaviour suite.

use std::time::Duration;

use futures_util::StreamExt;
use integrations_core::provider::{
    CancelReason, CaptureMethod, CreatePayment, PaymentProvider, PaymentStatus, RefundReason,
    RefundRequest,
};
use integrations_core::resilience::{Backoff, RetryPolicy};
use integrations_core::{Currency, Error, ErrorKind, IdempotencyKey, Money, Policy};
use integrations_stripe::api::{
    CreateCustomer, CreatePaymentIntent, CreateRefund, ListPaymentIntents,
};
use integrations_stripe::sandbox::{Fault, FaultRule, Sandbox};
use integrations_stripe::{PROVIDER, StripeBuilder, StripeClient, StripePayments};
use integrations_testkit::{PaymentSuiteConfig, payment_provider_suite};

fn policy(retries: u32, attempt_timeout: Duration) -> Policy {
    Policy::builder(PROVIDER)
        .retry(
            RetryPolicy::new(
                retries,
                Backoff::new(Duration::from_millis(1), Duration::from_millis(5), 2.0),
            )
            .with_max_retry_after(Duration::from_secs(2)),
        )
        .no_circuit_breaker()
        .attempt_timeout(attempt_timeout)
        .build()
}

fn client(sandbox: &Sandbox, retries: u32) -> StripeClient {
    sandbox
        .client_builder()
        .with_policy(policy(retries, Duration::from_secs(10)))
        .build()
        .unwrap()
        .client()
        .clone()
}

fn usd(m: i64) -> Money {
    Money::from_minor(m, Currency::USD)
}

fn key(entity: &str, op: &str) -> IdempotencyKey {
    IdempotencyKey::derive(entity, op).unwrap()
}

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

#[tokio::test]
async fn lost_response_is_retried_with_the_same_key_and_charges_once() {
    let sandbox = Sandbox::start().await.unwrap();
    let payments = StripePayments::new(client(&sandbox, 2));
    // The server creates and charges the intent, then the connection drops before the answer.
    sandbox.fail_next(1, Fault::DropAfterAccept);
    let k = key("order-77", "payment");
    let req = CreatePayment::new(usd(5998))
        .payment_method("pm_card_visa")
        .confirm(true);
    let p = payments.create_payment(&req, &k).await.unwrap();
    assert_eq!(p.status, PaymentStatus::Succeeded);
    assert_eq!(
        sandbox.payment_intents().len(),
        1,
        "exactly one payment intent exists"
    );
    assert_eq!(sandbox.counters().payment_intents_created, 1);
    let c = sandbox.intent_counters(&p.id).unwrap();
    assert_eq!((c.charges, c.successful_charges, c.captures), (1, 1, 1));
    let posts: Vec<_> = sandbox
        .requests()
        .into_iter()
        .filter(|r| r.method == "POST")
        .collect();
    assert_eq!(posts.len(), 2, "{posts:?}");
    assert_eq!(posts[0].fault, Some(Fault::DropAfterAccept));
    assert!(
        posts
            .iter()
            .all(|r| r.idempotency_key.as_deref() == Some(k.as_str()))
    );
    assert!(posts[1].replayed);
}

#[tokio::test]
async fn lost_response_without_retries_surfaces_as_unavailable() {
    let sandbox = Sandbox::start().await.unwrap();
    let payments = StripePayments::new(client(&sandbox, 0));
    sandbox.fail_next(1, Fault::DropAfterAccept);
    let k = key("order-78", "payment");
    let req = CreatePayment::new(usd(100))
        .payment_method("pm_card_visa")
        .confirm(true);
    let e = payments.create_payment(&req, &k).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unavailable);
    assert!(e.is_retryable());
    assert!(!e.is_failover_safe(), "the provider may have acted");
    // The caller (or a restarted process) retries the business operation: same key, one charge.
    let p = payments.create_payment(&req, &k).await.unwrap();
    assert_eq!(sandbox.counters().payment_intents_created, 1);
    assert_eq!(
        sandbox.intent_counters(&p.id).unwrap().successful_charges,
        1
    );
}

#[tokio::test]
async fn server_errors_and_rate_limits_are_retried() {
    let sandbox = Sandbox::start().await.unwrap();
    let client = client(&sandbox, 2);
    sandbox.fail_next(2, Fault::ServerError);
    let c = client
        .create_customer(
            &CreateCustomer::new().email("a@example.com"),
            &key("cust", "create"),
        )
        .await
        .unwrap();
    assert!(c.id.starts_with("cus_"));
    assert_eq!(sandbox.pending_faults(), 0);
    sandbox.fail_next(1, Fault::rate_limited(Duration::ZERO));
    client.retrieve_customer(&c.id).await.unwrap();

    let no_retry = StripeBuilder::new()
        .with_secret_key(sandbox.secret_key())
        .with_base_url(sandbox.base_url())
        .with_policy(policy(0, Duration::from_secs(5)))
        .build()
        .unwrap();
    sandbox.fail_next(1, Fault::rate_limited(Duration::from_secs(3)));
    let e = no_retry
        .client()
        .retrieve_customer(&c.id)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::RateLimited);
    assert_eq!(e.retry_after(), Some(Duration::from_secs(3)));
    sandbox.fail_next(1, Fault::ServerError);
    let e = no_retry
        .client()
        .retrieve_customer(&c.id)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unavailable);
}

#[tokio::test]
async fn a_hung_request_times_out_and_the_retry_is_processed_once() {
    let sandbox = Sandbox::builder()
        .hang_duration(Duration::from_secs(30))
        .start()
        .await
        .unwrap();
    let fast = |retries| {
        sandbox
            .client_builder()
            .with_policy(policy(retries, Duration::from_millis(300)))
            .build()
            .unwrap()
    };
    sandbox.fail_next(1, Fault::Hang);
    let e = fast(0)
        .create_payment(&CreatePayment::new(usd(100)), &key("order-h", "payment"))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Timeout);
    assert_eq!(sandbox.counters().payment_intents_created, 0);
    sandbox.fail_next(1, Fault::Hang);
    let p = fast(1)
        .create_payment(&CreatePayment::new(usd(100)), &key("order-h", "payment"))
        .await
        .unwrap();
    assert_eq!(sandbox.counters().payment_intents_created, 1);
    assert_eq!(sandbox.payment_intents()[0]["id"], p.id.as_str());
}

#[tokio::test]
async fn authentication_is_required() {
    let sandbox = Sandbox::start().await.unwrap();
    let live = StripeBuilder::new()
        .with_secret_key("sk_live_abcdefgh1234")
        .with_base_url(sandbox.base_url())
        .with_policy(policy(0, Duration::from_secs(5)))
        .build()
        .unwrap();
    let e = live.client().retrieve_customer("cus_1").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unauthenticated);
    assert!(
        e.message().contains("Invalid API Key provided: sk_live_"),
        "{e}"
    );
    assert!(!e.message().contains("abcdefgh"), "{e}");
    let resp = reqwest::Client::new()
        .get(format!("{}/v1/customers/cus_1", sandbox.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    let body: serde_json::Value = serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap();
    assert_eq!(body["error"]["type"], "invalid_request_error");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("You did not provide an API key")
    );
}

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

#[tokio::test]
async fn a_fault_rule_hits_exactly_the_requests_it_names() {
    let sandbox = Sandbox::start().await.unwrap();
    let client = client(&sandbox, 0);
    // Let the first retrieval through, fail the next two; other operations are never touched.
    sandbox.inject(
        FaultRule::new(Fault::ServerError)
            .after(1)
            .times(2)
            .on("customers.retrieve"),
    );
    assert_eq!(sandbox.pending_faults(), 2);
    let c = client
        .create_customer(&CreateCustomer::new(), &key("rule", "create"))
        .await
        .unwrap();
    let mut outcomes = Vec::new();
    for i in 0..4 {
        outcomes.push(client.retrieve_customer(&c.id).await.is_ok());
        // Another operation between retrievals neither fires nor counts towards `after`.
        client
            .create_customer(&CreateCustomer::new(), &key("rule", &i.to_string()))
            .await
            .unwrap();
    }
    assert_eq!(outcomes, [true, false, false, true]);
    assert_eq!(sandbox.pending_faults(), 0);
    let faulted: Vec<(String, String, u16)> = sandbox
        .requests()
        .into_iter()
        .filter(|r| r.fault.is_some())
        .map(|r| (r.method, r.path, r.status))
        .collect();
    let path = format!("/v1/customers/{}", c.id);
    assert_eq!(
        faulted,
        [
            ("GET".to_owned(), path.clone(), 500),
            ("GET".to_owned(), path, 500)
        ]
    );
    let faulted_at: Vec<usize> = sandbox
        .requests()
        .iter()
        .enumerate()
        .filter_map(|(i, r)| r.fault.map(|_| i))
        .collect();
    // create, get, create, GET, create, GET, create, get, create
    assert_eq!(faulted_at, [3, 5]);
}

#[tokio::test]
async fn the_request_log_is_bounded_and_the_counters_stay_exact() {
    let sandbox = Sandbox::builder()
        .request_retention(3)
        .start()
        .await
        .unwrap();
    sandbox.on_webhook(|_| {});
    let client = client(&sandbox, 0);
    let mut last = String::new();
    for i in 0..5 {
        last = client
            .create_customer(&CreateCustomer::new(), &key("bounded", &i.to_string()))
            .await
            .unwrap()
            .id;
    }
    client.retrieve_customer(&last).await.unwrap();
    let requests = sandbox.requests();
    assert_eq!(requests.len(), 3, "{requests:?}");
    assert_eq!(requests[2].method, "GET");
    assert_eq!(requests[2].path, format!("/v1/customers/{last}"));
    let counters = sandbox.counters();
    assert_eq!(counters.requests, 6);
    // One `customer.created` per customer, each handed to the callback.
    assert_eq!(sandbox.deliveries().len(), 3);
    assert_eq!(counters.webhook_deliveries, 5);
    assert_eq!(counters.webhooks_delivered, 5);
    assert_eq!(sandbox.events().len(), 5);
}

#[tokio::test]
async fn a_create_dropped_after_processing_is_retried_into_the_same_intent() {
    let sandbox = Sandbox::start().await.unwrap();
    let client = client(&sandbox, 2);
    sandbox.inject(FaultRule::new(Fault::DropAfterAccept).on("payment_intents.create"));
    let k = key("order-drop", "payment");
    let pi = client
        .create_payment_intent(&CreatePaymentIntent::new(usd(4200)), &k)
        .await
        .unwrap();
    assert_eq!(sandbox.counters().payment_intents_created, 1);
    let all = sandbox.payment_intents();
    assert_eq!(all.len(), 1, "exactly one intent created");
    assert_eq!(all[0]["id"], pi.id.as_str());
    let posts: Vec<_> = sandbox
        .requests()
        .into_iter()
        .filter(|r| r.method == "POST" && r.path == "/v1/payment_intents")
        .collect();
    assert_eq!(posts.len(), 2, "{posts:?}");
    assert_eq!(posts[0].fault, Some(Fault::DropAfterAccept));
    assert_eq!(posts[0].status, 200, "processed, answer dropped");
    assert!(!posts[0].replayed);
    assert!(posts[1].replayed && posts[1].fault.is_none());
    assert!(
        posts
            .iter()
            .all(|r| r.idempotency_key.as_deref() == Some(k.as_str()))
    );
}
