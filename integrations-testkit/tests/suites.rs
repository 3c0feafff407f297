//! The behaviour suites against the stubs (so the suites themselves are tested), and against
//! deliberately broken providers (so a broken contract is seen to fail the suite).

use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use integrations_core::provider::{
    AppendOutcome, CancelReason, CreatePayment, EmailCapabilities, EmailMessage, EmailProvider,
    Notification, Notifier, Payment, PaymentCapabilities, PaymentProvider, Published, Refund,
    RefundRequest, RefundStatus, Row, SentEmail, SheetsSink, UpdateOutcome,
};
use integrations_core::{Currency, ErrorKind, IdempotencyKey, Money, Result};
use integrations_testkit::{
    EmailSuiteConfig, NotifierSuiteConfig, PaymentSuiteConfig, SheetsSuiteConfig,
    StubEmailProvider, StubNotifier, StubPaymentProvider, StubSheetsSink, email_provider_suite,
    notifier_suite, payment_provider_suite, sheets_sink_suite, unique_run_id,
};

// ---------------------------------------------------------------------------------------------
// Stubs pass their suites.

#[tokio::test]
async fn payment_suite_passes_on_the_stub_twice() {
    let stub = StubPaymentProvider::new_ok();
    payment_provider_suite(&stub, &PaymentSuiteConfig::for_stub("run-1")).await;
    // A second run with another id against the same, now busy, provider.
    payment_provider_suite(&stub, &PaymentSuiteConfig::for_stub(unique_run_id())).await;
    // Per run: main, declined, manual-capture and canceled payments; a partial refund and the rest.
    assert_eq!(stub.payments().len(), 8);
    assert_eq!(stub.refunds().len(), 4);
}

#[tokio::test]
async fn payment_suite_gates_on_capabilities() {
    let mut manual_only = PaymentCapabilities::default();
    manual_only.manual_capture = true;
    let mut refunds_only = PaymentCapabilities::default();
    refunds_only.partial_refunds = true;
    for caps in [PaymentCapabilities::default(), manual_only, refunds_only] {
        let stub = StubPaymentProvider::new_ok().with_capabilities(caps);
        payment_provider_suite(&stub, &PaymentSuiteConfig::for_stub("caps")).await;
    }
}

#[tokio::test]
async fn payment_suite_with_stripe_like_methods_and_other_currencies() {
    let stub = StubPaymentProvider::new_ok()
        .with_succeeding_method("pm_card_visa")
        .with_declining_method(
            "pm_card_chargeDeclined",
            "card_declined",
            Some("generic_decline".into()),
        );
    for currency in [Currency::JPY, Currency::KWD, Currency::EUR] {
        let cfg = PaymentSuiteConfig::new(
            currency,
            "pm_card_visa",
            "pm_card_chargeDeclined",
            format!("cur-{currency}"),
        );
        payment_provider_suite(&stub, &cfg).await;
    }
}

#[tokio::test]
async fn email_suite_passes_on_the_stub() {
    let cfg = EmailSuiteConfig::new("shop@example.com", "jane@example.com").with_template("d-123");
    let stub = StubEmailProvider::new_ok();
    email_provider_suite(&stub, &cfg).await;
    assert_eq!(
        stub.sent().len(),
        2,
        "one text message, one template message"
    );
    // Without templates, the template check turns into "must refuse".
    let plain = StubEmailProvider::new_ok().with_capabilities(EmailCapabilities::default());
    email_provider_suite(&plain, &cfg).await;
    assert_eq!(plain.sent().len(), 1);
}

#[tokio::test]
async fn sheets_suite_passes_on_the_stub() {
    let stub = StubSheetsSink::new_ok();
    sheets_sink_suite(&stub, &SheetsSuiteConfig::new("orders", "run-a")).await;
    sheets_sink_suite(&stub, &SheetsSuiteConfig::new("orders", "run-b")).await;
    assert_eq!(stub.rows("orders").len(), 10);
}

#[tokio::test]
async fn notifier_suite_passes_on_the_stub() {
    let stub = StubNotifier::new_ok();
    notifier_suite(&stub, &NotifierSuiteConfig::new("run-1")).await;
    assert_eq!(stub.published().len(), 2, "the redelivery was deduplicated");
}

// ---------------------------------------------------------------------------------------------
// Broken providers fail their suites, naming the contract.

/// Ignores idempotency keys: every create is a new payment.
#[derive(Debug)]
struct ForgetfulPayments {
    inner: StubPaymentProvider,
    n: AtomicUsize,
}

/// Accepts any refund the real one refuses as invalid.
#[derive(Debug)]
struct LenientRefunds(StubPaymentProvider);

macro_rules! delegate_payments {
    ($t:ty, $inner:tt, create = $create:expr, refund = $refund:expr) => {
        #[async_trait]
        impl PaymentProvider for $t {
            fn name(&self) -> &str {
                "broken-payments"
            }
            fn capabilities(&self) -> PaymentCapabilities {
                PaymentCapabilities::all()
            }
            async fn create_payment(
                &self,
                req: &CreatePayment,
                key: &IdempotencyKey,
            ) -> Result<Payment> {
                let f: fn(&Self, &CreatePayment, &IdempotencyKey) -> IdempotencyKey = $create;
                let key = f(self, req, key);
                self.$inner.create_payment(req, &key).await
            }
            async fn retrieve_payment(&self, id: &str) -> Result<Payment> {
                self.$inner.retrieve_payment(id).await
            }
            async fn confirm_payment(
                &self,
                id: &str,
                pm: Option<&str>,
                key: &IdempotencyKey,
            ) -> Result<Payment> {
                self.$inner.confirm_payment(id, pm, key).await
            }
            async fn capture_payment(
                &self,
                id: &str,
                amount: Option<Money>,
                key: &IdempotencyKey,
            ) -> Result<Payment> {
                self.$inner.capture_payment(id, amount, key).await
            }
            async fn cancel_payment(
                &self,
                id: &str,
                reason: Option<CancelReason>,
                key: &IdempotencyKey,
            ) -> Result<Payment> {
                self.$inner.cancel_payment(id, reason, key).await
            }
            async fn refund(&self, req: &RefundRequest, key: &IdempotencyKey) -> Result<Refund> {
                let r = self.$inner.refund(req, key).await;
                let f: fn(&RefundRequest, Result<Refund>) -> Result<Refund> = $refund;
                f(req, r)
            }
            async fn list_refunds(&self, payment_id: &str) -> Result<Vec<Refund>> {
                self.$inner.list_refunds(payment_id).await
            }
        }
    };
}

delegate_payments!(
    ForgetfulPayments,
    inner,
    create = |s, _, key| {
        let n = s.n.fetch_add(1, Ordering::SeqCst);
        key.child(&n.to_string()).unwrap()
    },
    refund = |_, r| r
);

delegate_payments!(
    LenientRefunds,
    0,
    create = |_, _, key| key.clone(),
    refund = |req, r| match r {
        Err(e) if e.kind() == ErrorKind::InvalidInput => Ok(Refund::new(
            "re_fake",
            req.payment_id.clone(),
            req.amount.unwrap_or(Money::from_minor(1, Currency::USD)),
            RefundStatus::Succeeded,
        )),
        other => other,
    }
);

#[tokio::test]
#[should_panic(
    expected = "payment suite: provider `broken-payments` breaks the contract \
                           \"the same key and parameters replay the same payment\""
)]
async fn payment_suite_catches_ignored_idempotency_keys() {
    let p = ForgetfulPayments {
        inner: StubPaymentProvider::new_ok(),
        n: AtomicUsize::new(0),
    };
    payment_provider_suite(&p, &PaymentSuiteConfig::for_stub("x")).await;
}

#[tokio::test]
#[should_panic(expected = "\"a refund above what is refundable is invalid input naming `amount`\"")]
async fn payment_suite_catches_over_refunds() {
    let p = LenientRefunds(StubPaymentProvider::new_ok());
    payment_provider_suite(&p, &PaymentSuiteConfig::for_stub("x")).await;
}

#[tokio::test]
#[should_panic(expected = "\"confirming with the declining method is a decline\"")]
async fn payment_suite_catches_a_decline_that_is_not_declined() {
    // Misconfigured: the "declining" method succeeds at this provider.
    let p = StubPaymentProvider::new_ok();
    let cfg = PaymentSuiteConfig::new(Currency::USD, "pm_ok", "pm_ok", "x");
    payment_provider_suite(&p, &cfg).await;
}

/// Never validates; sends everything.
#[derive(Debug, Default)]
struct LenientEmail(AtomicUsize);

#[async_trait]
impl EmailProvider for LenientEmail {
    fn name(&self) -> &str {
        "lenient-email"
    }
    fn capabilities(&self) -> EmailCapabilities {
        EmailCapabilities::all()
    }
    async fn send(&self, _: &EmailMessage) -> Result<SentEmail> {
        let n = self.0.fetch_add(1, Ordering::SeqCst);
        Ok(SentEmail::new("lenient-email", format!("m{n}")))
    }
}

/// Validates, but its receipts name someone else.
#[derive(Debug)]
struct Impostor(StubEmailProvider);

#[async_trait]
impl EmailProvider for Impostor {
    fn name(&self) -> &str {
        "impostor"
    }
    fn capabilities(&self) -> EmailCapabilities {
        self.0.capabilities()
    }
    async fn send(&self, m: &EmailMessage) -> Result<SentEmail> {
        self.0.send(m).await
    }
}

#[tokio::test]
#[should_panic(
    expected = "email suite: provider `lenient-email` breaks the contract \"a message without recipients is invalid input naming the recipients\""
)]
async fn email_suite_catches_missing_validation() {
    let cfg = EmailSuiteConfig::new("shop@example.com", "jane@example.com");
    email_provider_suite(&LenientEmail::default(), &cfg).await;
}

#[tokio::test]
#[should_panic(expected = "\"the receipt names the provider that sent it\"")]
async fn email_suite_catches_a_wrong_receipt() {
    let cfg = EmailSuiteConfig::new("shop@example.com", "jane@example.com");
    email_provider_suite(&Impostor(StubEmailProvider::new_ok()), &cfg).await;
}

/// Appends everything, keys or not.
#[derive(Debug, Default)]
struct DuplicatingSheets(AtomicUsize);

#[async_trait]
impl SheetsSink for DuplicatingSheets {
    fn name(&self) -> &str {
        "duplicating-sheets"
    }
    async fn append_rows(&self, _: &str, rows: Vec<Row>) -> Result<AppendOutcome> {
        for r in &rows {
            r.validate()?;
        }
        self.0.fetch_add(rows.len(), Ordering::SeqCst);
        let mut out = AppendOutcome::default();
        out.appended = rows.len();
        Ok(out)
    }
    async fn update_row(&self, _: &str, row: Row) -> Result<UpdateOutcome> {
        row.validate()?;
        Ok(UpdateOutcome::Updated { row: 1 })
    }
}

#[tokio::test]
#[should_panic(
    expected = "\"rows whose keys are present are not appended again (appended, already_present)\": got (3, 0), expected (0, 3)"
)]
async fn sheets_suite_catches_duplicate_appends() {
    sheets_sink_suite(
        &DuplicatingSheets::default(),
        &SheetsSuiteConfig::new("s", "r"),
    )
    .await;
}

/// Publishes with an empty message id.
#[derive(Debug)]
struct NoIdNotifier;

#[async_trait]
impl Notifier for NoIdNotifier {
    fn name(&self) -> &str {
        "no-id"
    }
    async fn publish(&self, n: &Notification) -> Result<Published> {
        n.validate()?;
        Ok(Published::new("no-id", ""))
    }
}

#[tokio::test]
#[should_panic(
    expected = "notifier suite: provider `no-id` breaks the contract \"a published notification has a message id\""
)]
async fn notifier_suite_catches_a_missing_message_id() {
    notifier_suite(&NoIdNotifier, &NotifierSuiteConfig::new("r")).await;
}
