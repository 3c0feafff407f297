//! The behaviour suite every [`PaymentProvider`] must pass.

use super::suite_support::Checker;
use integrations_core::provider::{
    CaptureMethod, CreatePayment, PaymentProvider, PaymentStatus, RefundRequest, RefundStatus,
};
use integrations_core::{Currency, Error, ErrorKind, IdempotencyKey, Money};

/// What [`payment_provider_suite`] needs to know about the provider under test.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentSuiteConfig {
    /// Currency of every payment the suite makes.
    pub currency: Currency,
    /// A payment method that succeeds (`pm_card_visa` at Stripe, `pm_ok` for the stub).
    pub succeeding_method: String,
    /// A payment method that is declined (`pm_card_chargeDeclined` at Stripe, `pm_decline`).
    pub declining_method: String,
    /// Distinguishes this run's idempotency keys from earlier runs against the same account
    /// (see [`unique_run_id`](super::unique_run_id)).
    pub run_id: String,
}

impl PaymentSuiteConfig {
    /// A configuration.
    pub fn new(
        currency: Currency,
        succeeding_method: impl Into<String>,
        declining_method: impl Into<String>,
        run_id: impl Into<String>,
    ) -> Self {
        PaymentSuiteConfig {
            currency,
            succeeding_method: succeeding_method.into(),
            declining_method: declining_method.into(),
            run_id: run_id.into(),
        }
    }

    /// USD with the [`StubPaymentProvider`](super::StubPaymentProvider)'s default methods.
    pub fn for_stub(run_id: impl Into<String>) -> Self {
        PaymentSuiteConfig::new(
            Currency::USD,
            super::stub_payment::SUCCEEDING_METHOD,
            super::stub_payment::DECLINING_METHOD,
            run_id,
        )
    }
}

/// Runs the payment contract against `p`, panicking with the broken contract's name.
///
/// In order: a zero amount is invalid input naming `amount`; a created payment is not terminal;
/// the same idempotency key and parameters replay the same payment, different parameters are a
/// conflict; retrieve finds it (and a missing id is not found); confirming with the succeeding
/// method reaches `Succeeded` with `amount_received == amount`, and the confirm replays under its
/// key; refunds (partial ones if `partial_refunds`): a refund replays under its key, an over-refund
/// is invalid input naming `amount`, the rest can be refunded, then nothing more; `list_refunds`
/// (if `list_refunds`) lists each refund once with its idempotency key, a missing payment is not
/// found (else it is a configuration error); the declining
/// method is [`Error::Declined`] with a code, leaves the payment payable, and a later good method
/// succeeds; manual capture (if `manual_capture`) waits in `RequiresCapture`, then captures part
/// (if `partial_capture`) or all; cancel reaches `Canceled`, after which confirm fails.
///
/// Amounts are 5000 minor units and less. Run it with a fresh `run_id` against real test accounts.
pub async fn payment_provider_suite(p: &dyn PaymentProvider, cfg: &PaymentSuiteConfig) {
    let c = Checker::new("payment", p.name());
    let caps = p.capabilities();
    let m = |minor: i64| Money::from_minor(minor, cfg.currency);
    let base = IdempotencyKey::derive(&format!("suite-{}", cfg.run_id), "payment")
        .unwrap_or_else(|e| panic!("payment suite: run id unusable in idempotency keys: {e}"));
    let key = |part: &str| c.key(&base, part);

    let zero = CreatePayment::new(m(0));
    c.invalid_input(
        "a zero amount is refused as invalid input naming `amount`",
        |f| f == "amount",
        p.create_payment(&zero, &key("zero")).await,
    );

    let req = CreatePayment::new(m(5000))
        .description("integrations behaviour suite")
        .metadata("suite_run", cfg.run_id.clone());
    let created = c.ok(
        "create_payment accepts a valid request",
        p.create_payment(&req, &key("main")).await,
    );
    c.check(
        !created.id.is_empty(),
        "a created payment has an id",
        "empty id",
    );
    c.eq(
        created.amount,
        m(5000),
        "a created payment has the requested amount",
    );
    c.check(
        !created.status.is_terminal(),
        "a payment created without confirmation is not terminal",
        format!("status {:?}", created.status),
    );
    c.eq(
        created.amount_received,
        m(0),
        "nothing is received before confirmation",
    );

    let replay = c.ok(
        "the same key and parameters replay the first answer",
        p.create_payment(&req, &key("main")).await,
    );
    c.eq(
        &replay.id,
        &created.id,
        "the same key and parameters replay the same payment",
    );
    c.err_kind(
        "the same key with different parameters is a conflict",
        ErrorKind::Conflict,
        p.create_payment(&CreatePayment::new(m(5001)), &key("main"))
            .await,
    );

    let got = c.ok(
        "retrieve_payment finds a created payment",
        p.retrieve_payment(&created.id).await,
    );
    c.eq(
        &got.id,
        &created.id,
        "retrieve_payment returns the payment asked for",
    );
    c.err_kind(
        "retrieving an unknown payment is not found",
        ErrorKind::NotFound,
        p.retrieve_payment("pi_integrations_suite_missing").await,
    );

    let confirm = |id: String, method: String, k: &'static str| {
        let key = key(k);
        async move { p.confirm_payment(&id, Some(&method), &key).await }
    };
    let paid = c.ok(
        "confirming with the succeeding method succeeds",
        confirm(
            created.id.clone(),
            cfg.succeeding_method.clone(),
            "main-confirm",
        )
        .await,
    );
    c.eq(
        paid.status,
        PaymentStatus::Succeeded,
        "confirming with the succeeding method reaches Succeeded",
    );
    c.eq(
        paid.amount_received,
        paid.amount,
        "a succeeded automatic-capture payment received its whole amount",
    );
    let paid_again = c.ok(
        "a confirm retried with its key replays instead of failing",
        confirm(
            created.id.clone(),
            cfg.succeeding_method.clone(),
            "main-confirm",
        )
        .await,
    );
    c.eq(
        paid_again.status,
        PaymentStatus::Succeeded,
        "a replayed confirm reports the same outcome",
    );

    refunds(&c, p, &created.id, m, &key).await;
    listed_refunds(&c, p, &created.id, m, &key).await;
    decline(&c, p, cfg, m, &key).await;
    if caps.manual_capture {
        manual_capture(&c, p, cfg, caps.partial_capture, m, &key).await;
    }

    let to_cancel = c.ok(
        "create_payment accepts a valid request",
        p.create_payment(&CreatePayment::new(m(1500)), &key("cancel"))
            .await,
    );
    let canceled = c.ok(
        "an unconfirmed payment can be canceled",
        p.cancel_payment(&to_cancel.id, None, &key("cancel-cancel"))
            .await,
    );
    c.eq(
        canceled.status,
        PaymentStatus::Canceled,
        "cancel reaches Canceled",
    );
    let e = c.err(
        "a canceled payment cannot be confirmed",
        confirm(
            to_cancel.id.clone(),
            cfg.succeeding_method.clone(),
            "cancel-confirm",
        )
        .await,
    );
    c.check(
        !e.is_retryable(),
        "confirming a canceled payment is a permanent error",
        &e,
    );
}

async fn refunds(
    c: &Checker<'_>,
    p: &dyn PaymentProvider,
    id: &str,
    m: impl Fn(i64) -> Money,
    key: &impl Fn(&str) -> IdempotencyKey,
) {
    let refund_ok =
        |status: RefundStatus| matches!(status, RefundStatus::Succeeded | RefundStatus::Pending);
    if p.capabilities().partial_refunds {
        let partial = RefundRequest::partial(id, m(1000));
        let r1 = c.ok(
            "a partial refund is accepted",
            p.refund(&partial, &key("refund-1")).await,
        );
        c.eq(
            r1.amount,
            m(1000),
            "a partial refund refunds the amount asked",
        );
        c.eq(r1.payment_id.as_str(), id, "a refund names its payment");
        c.check(
            refund_ok(r1.status),
            "a fresh refund is succeeded or pending",
            format!("{:?}", r1.status),
        );
        let again = c.ok(
            "a refund retried with its key replays",
            p.refund(&partial, &key("refund-1")).await,
        );
        c.eq(
            &again.id,
            &r1.id,
            "a refund retried with its key is the same refund",
        );
        c.invalid_input(
            "a refund above what is refundable is invalid input naming `amount`",
            |f| f == "amount",
            p.refund(&RefundRequest::partial(id, m(4001)), &key("refund-over"))
                .await,
        );
        let rest = c.ok(
            "the rest of a partially refunded payment can be refunded",
            p.refund(&RefundRequest::full(id), &key("refund-rest"))
                .await,
        );
        c.eq(rest.amount, m(4000), "a full refund refunds what is left");
    } else {
        let all = c.ok(
            "a full refund is accepted",
            p.refund(&RefundRequest::full(id), &key("refund-all")).await,
        );
        c.eq(all.amount, m(5000), "a full refund refunds everything");
    }
    let after = c.ok(
        "retrieve_payment finds a refunded payment",
        p.retrieve_payment(id).await,
    );
    c.eq(
        after.amount_refunded,
        m(5000),
        "amount_refunded adds up the refunds",
    );
    c.err_kind(
        "a refund of a fully refunded payment is invalid input",
        ErrorKind::InvalidInput,
        p.refund(&RefundRequest::full(id), &key("refund-none"))
            .await,
    );
}

/// `list_refunds` (if the provider says it can): every refund of the payment, each with the key
/// it was made with; a provider that cannot list says so with a configuration error.
async fn listed_refunds(
    c: &Checker<'_>,
    p: &dyn PaymentProvider,
    id: &str,
    m: impl Fn(i64) -> Money,
    key: &impl Fn(&str) -> IdempotencyKey,
) {
    if !p.capabilities().list_refunds {
        c.err_kind(
            "a provider that cannot list refunds says so with a configuration error",
            ErrorKind::Configuration,
            p.list_refunds(id).await,
        );
        return;
    }
    let listed = c.ok(
        "list_refunds lists a payment's refunds",
        p.list_refunds(id).await,
    );
    let keys: &[&str] = if p.capabilities().partial_refunds {
        &["refund-1", "refund-rest"]
    } else {
        &["refund-all"]
    };
    c.eq(
        listed.len(),
        keys.len(),
        "list_refunds lists every refund of the payment, once",
    );
    for part in keys {
        let k = key(part);
        let found = listed.iter().find(|r| r.made_with(&k));
        c.check(
            found.is_some(),
            "list_refunds reports the idempotency key each refund was made with",
            format!("no refund with key `{}` in {listed:?}", k.as_str()),
        );
    }
    c.check(
        listed.iter().all(|r| r.payment_id == id),
        "listed refunds name their payment",
        format!("{listed:?}"),
    );
    let total: i64 = listed.iter().map(|r| r.amount.minor()).sum();
    c.eq(
        Money::from_minor(total, m(0).currency()),
        m(5000),
        "listed refunds add up to the refunded amount",
    );
    c.err_kind(
        "list_refunds of a missing payment is not found",
        ErrorKind::NotFound,
        p.list_refunds(&format!("{id}_missing")).await,
    );
}

async fn decline(
    c: &Checker<'_>,
    p: &dyn PaymentProvider,
    cfg: &PaymentSuiteConfig,
    m: impl Fn(i64) -> Money,
    key: &impl Fn(&str) -> IdempotencyKey,
) {
    let d = c.ok(
        "create_payment accepts a valid request",
        p.create_payment(&CreatePayment::new(m(2500)), &key("decline"))
            .await,
    );
    let e = c.err_kind(
        "confirming with the declining method is a decline",
        ErrorKind::Declined,
        p.confirm_payment(&d.id, Some(&cfg.declining_method), &key("decline-confirm"))
            .await,
    );
    let has_code = matches!(&e, Error::Declined { code: Some(code), .. } if !code.is_empty());
    c.check(has_code, "a decline carries the provider's code", &e);
    c.check(!e.is_retryable(), "a decline is not retryable", &e);
    let after = c.ok(
        "retrieve_payment finds a declined payment",
        p.retrieve_payment(&d.id).await,
    );
    c.check(
        !after.status.is_terminal(),
        "a declined payment can still be paid",
        format!("status {:?}", after.status),
    );
    let retried = c.ok(
        "a declined payment can be confirmed with another method",
        p.confirm_payment(&d.id, Some(&cfg.succeeding_method), &key("decline-retry"))
            .await,
    );
    c.eq(
        retried.status,
        PaymentStatus::Succeeded,
        "a declined payment confirmed with a good method succeeds",
    );
}

async fn manual_capture(
    c: &Checker<'_>,
    p: &dyn PaymentProvider,
    cfg: &PaymentSuiteConfig,
    partial: bool,
    m: impl Fn(i64) -> Money,
    key: &impl Fn(&str) -> IdempotencyKey,
) {
    let req = CreatePayment::new(m(3000))
        .capture_method(CaptureMethod::Manual)
        .payment_method(cfg.succeeding_method.clone())
        .confirm(true);
    let auth = c.ok(
        "a manual-capture payment can be created and confirmed",
        p.create_payment(&req, &key("manual")).await,
    );
    c.eq(
        auth.status,
        PaymentStatus::RequiresCapture,
        "a confirmed manual-capture payment waits for capture",
    );
    c.eq(
        auth.amount_received,
        m(0),
        "nothing is received before capture",
    );
    let (amount, expected) = if partial {
        (Some(m(1800)), m(1800))
    } else {
        (None, m(3000))
    };
    let captured = c.ok(
        "an authorised payment can be captured",
        p.capture_payment(&auth.id, amount, &key("manual-capture"))
            .await,
    );
    c.eq(
        captured.status,
        PaymentStatus::Succeeded,
        "a captured payment is Succeeded",
    );
    c.eq(
        captured.amount_received,
        expected,
        "a capture receives the amount captured",
    );
}
