//! [`PaymentProvider`]: create, confirm, capture, cancel and refund payments.

use std::collections::BTreeMap;
use std::fmt;

use async_trait::async_trait;

use crate::{Error, IdempotencyKey, Money, Result};

/// What a payment provider can do, so callers and the behaviour suite skip what it cannot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct PaymentCapabilities {
    /// Authorise now, capture later.
    pub manual_capture: bool,
    /// Capture less than authorised.
    pub partial_capture: bool,
    /// Refund part of a payment, possibly several times.
    pub partial_refunds: bool,
    /// List a payment's refunds, each with the idempotency key it was made with
    /// ([`PaymentProvider::list_refunds`]).
    pub list_refunds: bool,
}

impl PaymentCapabilities {
    /// Everything supported.
    pub const fn all() -> Self {
        PaymentCapabilities {
            manual_capture: true,
            partial_capture: true,
            partial_refunds: true,
            list_refunds: true,
        }
    }
}

/// When the funds are captured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CaptureMethod {
    /// Captured as soon as the payment is confirmed.
    #[default]
    Automatic,
    /// Authorised on confirmation; captured by [`PaymentProvider::capture_payment`].
    Manual,
}

/// Lifecycle state of a payment (Stripe's payment intent statuses, which most providers map to).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum PaymentStatus {
    /// Needs a payment method (new, or after a decline).
    RequiresPaymentMethod,
    /// Has a payment method, needs confirmation.
    RequiresConfirmation,
    /// Needs customer action (3-D Secure).
    RequiresAction,
    /// Being processed.
    Processing,
    /// Authorised, waiting for capture.
    RequiresCapture,
    /// Funds captured.
    Succeeded,
    /// Cancelled.
    Canceled,
}

impl PaymentStatus {
    /// Whether no further transition is possible.
    pub const fn is_terminal(self) -> bool {
        matches!(self, PaymentStatus::Succeeded | PaymentStatus::Canceled)
    }
}

/// Request to create a payment. Build with [`CreatePayment::new`].
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct CreatePayment {
    /// Amount to charge.
    pub amount: Money,
    /// Provider's customer id.
    pub customer: Option<String>,
    /// Payment method to attach (e.g. `pm_card_visa`).
    pub payment_method: Option<String>,
    /// Confirm in the same call.
    pub confirm: bool,
    /// Capture method.
    pub capture_method: CaptureMethod,
    /// Statement/description.
    pub description: Option<String>,
    /// Receipt email.
    pub receipt_email: Option<String>,
    /// Free-form metadata (carry your order id here).
    pub metadata: BTreeMap<String, String>,
}

impl CreatePayment {
    /// A payment of `amount`, automatic capture, not confirmed.
    pub fn new(amount: Money) -> Self {
        CreatePayment {
            amount,
            customer: None,
            payment_method: None,
            confirm: false,
            capture_method: CaptureMethod::Automatic,
            description: None,
            receipt_email: None,
            metadata: BTreeMap::new(),
        }
    }
    /// Sets the customer.
    #[must_use]
    pub fn customer(mut self, id: impl Into<String>) -> Self {
        self.customer = Some(id.into());
        self
    }
    /// Sets the payment method.
    #[must_use]
    pub fn payment_method(mut self, id: impl Into<String>) -> Self {
        self.payment_method = Some(id.into());
        self
    }
    /// Confirms in the same call.
    #[must_use]
    pub fn confirm(mut self, confirm: bool) -> Self {
        self.confirm = confirm;
        self
    }
    /// Sets the capture method.
    #[must_use]
    pub fn capture_method(mut self, m: CaptureMethod) -> Self {
        self.capture_method = m;
        self
    }
    /// Sets the description.
    #[must_use]
    pub fn description(mut self, d: impl Into<String>) -> Self {
        self.description = Some(d.into());
        self
    }
    /// Sets the receipt email.
    #[must_use]
    pub fn receipt_email(mut self, e: impl Into<String>) -> Self {
        self.receipt_email = Some(e.into());
        self
    }
    /// Adds a metadata entry.
    #[must_use]
    pub fn metadata(mut self, k: impl Into<String>, v: impl Into<String>) -> Self {
        self.metadata.insert(k.into(), v.into());
        self
    }

    /// Checks what can be checked without the provider.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] naming `amount` when it is not positive.
    pub fn validate(&self) -> Result<()> {
        if !self.amount.is_positive() {
            return Err(Error::invalid_input(
                "amount",
                format!("must be positive, got {}", self.amount),
            ));
        }
        Ok(())
    }
}

/// Why a payment was cancelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum CancelReason {
    /// Duplicate.
    Duplicate,
    /// Fraudulent.
    Fraudulent,
    /// Customer asked.
    RequestedByCustomer,
    /// Abandoned.
    Abandoned,
}

/// Why a refund was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum RefundReason {
    /// Duplicate charge.
    Duplicate,
    /// Fraudulent charge.
    Fraudulent,
    /// Customer asked.
    RequestedByCustomer,
}

/// The last decline of a payment, if any.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PaymentFailure {
    /// Provider code (`card_declined`).
    pub code: Option<String>,
    /// Issuer decline code (`insufficient_funds`).
    pub decline_code: Option<String>,
    /// Message.
    pub message: Option<String>,
}

/// A payment as the provider reports it.
#[derive(Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct Payment {
    /// Provider id (`pi_…`).
    pub id: String,
    /// Authorised amount.
    pub amount: Money,
    /// Amount captured so far.
    pub amount_received: Money,
    /// Amount refunded so far.
    pub amount_refunded: Money,
    /// Status.
    pub status: PaymentStatus,
    /// Client secret for front-end confirmation. Never shown by `Debug`.
    pub client_secret: Option<String>,
    /// Customer id.
    pub customer: Option<String>,
    /// Payment method id.
    pub payment_method: Option<String>,
    /// Last decline.
    pub last_failure: Option<PaymentFailure>,
    /// Metadata.
    pub metadata: BTreeMap<String, String>,
    /// Creation time (unix seconds).
    pub created: i64,
}

impl Payment {
    /// A payment with the given id, amount and status; everything else empty.
    pub fn new(id: impl Into<String>, amount: Money, status: PaymentStatus) -> Self {
        let zero = Money::zero(amount.currency());
        Payment {
            id: id.into(),
            amount,
            amount_received: zero,
            amount_refunded: zero,
            status,
            client_secret: None,
            customer: None,
            payment_method: None,
            last_failure: None,
            metadata: BTreeMap::new(),
            created: 0,
        }
    }

    /// What can still be refunded: captured minus refunded.
    pub fn refundable(&self) -> Money {
        self.amount_received
            .checked_sub(self.amount_refunded)
            .unwrap_or(Money::zero(self.amount.currency()))
    }
}

impl fmt::Debug for Payment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Payment")
            .field("id", &self.id)
            .field("amount", &self.amount)
            .field("amount_received", &self.amount_received)
            .field("amount_refunded", &self.amount_refunded)
            .field("status", &self.status)
            .field(
                "client_secret",
                &self.client_secret.as_ref().map(|_| "[redacted]"),
            )
            .field("customer", &self.customer)
            .field("payment_method", &self.payment_method)
            .field("last_failure", &self.last_failure)
            .field("metadata", &self.metadata)
            .field("created", &self.created)
            .finish()
    }
}

/// Request to refund a payment fully (`amount: None`) or partially.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct RefundRequest {
    /// Payment to refund.
    pub payment_id: String,
    /// Amount; `None` refunds everything still refundable.
    pub amount: Option<Money>,
    /// Reason.
    pub reason: Option<RefundReason>,
    /// Metadata.
    pub metadata: BTreeMap<String, String>,
}

impl RefundRequest {
    /// A full refund of `payment_id`.
    pub fn full(payment_id: impl Into<String>) -> Self {
        RefundRequest {
            payment_id: payment_id.into(),
            amount: None,
            reason: None,
            metadata: BTreeMap::new(),
        }
    }
    /// A partial refund of `amount`.
    pub fn partial(payment_id: impl Into<String>, amount: Money) -> Self {
        RefundRequest {
            amount: Some(amount),
            ..RefundRequest::full(payment_id)
        }
    }
    /// Sets the reason.
    #[must_use]
    pub fn reason(mut self, r: RefundReason) -> Self {
        self.reason = Some(r);
        self
    }
    /// Adds metadata.
    #[must_use]
    pub fn metadata(mut self, k: impl Into<String>, v: impl Into<String>) -> Self {
        self.metadata.insert(k.into(), v.into());
        self
    }
}

/// Refund state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum RefundStatus {
    /// Waiting.
    Pending,
    /// Done.
    Succeeded,
    /// Failed.
    Failed,
    /// Cancelled.
    Canceled,
    /// Needs customer action.
    RequiresAction,
}

/// A refund as the provider reports it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct Refund {
    /// Provider id (`re_…`).
    pub id: String,
    /// Payment refunded.
    pub payment_id: String,
    /// Amount.
    pub amount: Money,
    /// Status.
    pub status: RefundStatus,
    /// Reason.
    pub reason: Option<RefundReason>,
    /// Metadata.
    pub metadata: BTreeMap<String, String>,
    /// The idempotency key the refund was made with, when the provider reports it (a refund
    /// made outside this library, e.g. in a dashboard, has none).
    #[serde(default)]
    pub idempotency_key: Option<String>,
}

impl Refund {
    /// A refund with the given fields and no metadata.
    pub fn new(
        id: impl Into<String>,
        payment_id: impl Into<String>,
        amount: Money,
        status: RefundStatus,
    ) -> Self {
        Refund {
            id: id.into(),
            payment_id: payment_id.into(),
            amount,
            status,
            reason: None,
            metadata: BTreeMap::new(),
            idempotency_key: None,
        }
    }

    /// Whether this refund was made with `key`.
    pub fn made_with(&self, key: &IdempotencyKey) -> bool {
        self.idempotency_key.as_deref() == Some(key.as_str())
    }
}

/// Checks a refund request against the payment before any call: the amount must be positive, in
/// the payment's currency, and within what is still refundable.
///
/// # Errors
/// [`Error::InvalidInput`] naming `amount`.
pub fn check_refund(payment: &Payment, amount: Option<Money>) -> Result<Money> {
    let refundable = payment.refundable();
    let amount = amount.unwrap_or(refundable);
    if amount.currency() != payment.amount.currency() {
        return Err(Error::invalid_input(
            "amount",
            format!(
                "refund in {} for a payment in {}",
                amount.currency(),
                payment.amount.currency()
            ),
        ));
    }
    if !amount.is_positive() {
        return Err(Error::invalid_input(
            "amount",
            format!("nothing to refund: refundable {refundable}, asked {amount}"),
        ));
    }
    if amount.minor() > refundable.minor() {
        return Err(Error::invalid_input(
            "amount",
            format!(
                "refund of {amount} exceeds the {refundable} still refundable on {}",
                payment.id
            ),
        )
        .with_code("amount_too_large"));
    }
    Ok(amount)
}

/// A payment provider (Stripe, a test double, your own).
///
/// Every mutating operation takes an [`IdempotencyKey`] derived from the business operation, so a
/// retry — in the same process or after a crash — can never charge twice.
#[async_trait]
pub trait PaymentProvider: Send + Sync + fmt::Debug {
    /// Provider name (`"stripe"`).
    fn name(&self) -> &str;

    /// What this provider supports.
    fn capabilities(&self) -> PaymentCapabilities;

    /// Creates a payment.
    async fn create_payment(&self, req: &CreatePayment, key: &IdempotencyKey) -> Result<Payment>;

    /// Retrieves a payment.
    async fn retrieve_payment(&self, id: &str) -> Result<Payment>;

    /// Confirms a payment, optionally with a payment method. A decline is [`Error::Declined`].
    async fn confirm_payment(
        &self,
        id: &str,
        payment_method: Option<&str>,
        key: &IdempotencyKey,
    ) -> Result<Payment>;

    /// Captures an authorised payment, fully (`None`) or partially.
    async fn capture_payment(
        &self,
        id: &str,
        amount: Option<Money>,
        key: &IdempotencyKey,
    ) -> Result<Payment>;

    /// Cancels a payment that is not yet captured.
    async fn cancel_payment(
        &self,
        id: &str,
        reason: Option<CancelReason>,
        key: &IdempotencyKey,
    ) -> Result<Payment>;

    /// Refunds a payment fully or partially. A refund above what is still refundable is refused
    /// with [`Error::InvalidInput`] naming `amount`.
    async fn refund(&self, req: &RefundRequest, key: &IdempotencyKey) -> Result<Refund>;

    /// Every refund of a payment, oldest first, each with the idempotency key it was made with
    /// when the provider reports it ([`Refund::idempotency_key`]) — so a caller that recorded a
    /// refund before asking for it can tell whether that very refund was made, whatever else
    /// was refunded meanwhile (in a dashboard, by another system).
    ///
    /// Providers that support it say so with [`PaymentCapabilities::list_refunds`].
    ///
    /// # Errors
    /// By default [`Error::Configuration`] naming `list_refunds`: the provider cannot list
    /// refunds. Otherwise [`Error::NotFound`] for an unknown payment, or the provider's errors.
    async fn list_refunds(&self, payment_id: &str) -> Result<Vec<Refund>> {
        let _ = payment_id;
        Err(Error::configuration(
            "list_refunds",
            format!("payment provider `{}` cannot list refunds", self.name()),
        )
        .with_provider(self.name().to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Currency;

    fn usd(m: i64) -> Money {
        Money::from_minor(m, Currency::USD)
    }

    #[test]
    fn refund_checks() {
        let mut p = Payment::new("pi_1", usd(5000), PaymentStatus::Succeeded);
        p.amount_received = usd(5000);
        p.amount_refunded = usd(2000);
        assert_eq!(check_refund(&p, None).unwrap(), usd(3000));
        assert_eq!(check_refund(&p, Some(usd(3000))).unwrap(), usd(3000));
        let e = check_refund(&p, Some(usd(3001))).unwrap_err();
        assert_eq!(e.field(), Some("amount"));
        assert!(e.to_string().contains("exceeds"), "{e}");
        assert!(check_refund(&p, Some(usd(0))).is_err());
        assert!(check_refund(&p, Some(Money::from_minor(1, Currency::EUR))).is_err());
        p.amount_refunded = usd(5000);
        assert!(check_refund(&p, None).is_err());
    }

    #[test]
    fn debug_hides_client_secret() {
        let mut p = Payment::new("pi_1", usd(1), PaymentStatus::RequiresPaymentMethod);
        p.client_secret = Some("pi_1_secret_abc".into());
        let s = format!("{p:?}");
        assert!(!s.contains("secret_abc"), "{s}");
    }

    #[test]
    fn create_validates_amount() {
        assert_eq!(
            CreatePayment::new(usd(0)).validate().unwrap_err().field(),
            Some("amount")
        );
        assert!(CreatePayment::new(usd(1)).validate().is_ok());
    }

    /// A provider that implements only what it must.
    #[derive(Debug)]
    struct Minimal;

    #[async_trait]
    impl PaymentProvider for Minimal {
        fn name(&self) -> &str {
            "minimal"
        }
        fn capabilities(&self) -> PaymentCapabilities {
            PaymentCapabilities::default()
        }
        async fn create_payment(&self, _: &CreatePayment, _: &IdempotencyKey) -> Result<Payment> {
            Err(Error::provider("not called by this test"))
        }
        async fn retrieve_payment(&self, _: &str) -> Result<Payment> {
            Err(Error::provider("not called by this test"))
        }
        async fn confirm_payment(
            &self,
            _: &str,
            _: Option<&str>,
            _: &IdempotencyKey,
        ) -> Result<Payment> {
            Err(Error::provider("not called by this test"))
        }
        async fn capture_payment(
            &self,
            _: &str,
            _: Option<Money>,
            _: &IdempotencyKey,
        ) -> Result<Payment> {
            Err(Error::provider("not called by this test"))
        }
        async fn cancel_payment(
            &self,
            _: &str,
            _: Option<CancelReason>,
            _: &IdempotencyKey,
        ) -> Result<Payment> {
            Err(Error::provider("not called by this test"))
        }
        async fn refund(&self, _: &RefundRequest, _: &IdempotencyKey) -> Result<Refund> {
            Err(Error::provider("not called by this test"))
        }
    }

    #[tokio::test]
    async fn list_refunds_is_unsupported_by_default() {
        assert!(!Minimal.capabilities().list_refunds);
        assert!(PaymentCapabilities::all().list_refunds);
        let e = Minimal.list_refunds("pi_1").await.unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::Configuration);
        assert!(e.to_string().contains("list_refunds"), "{e}");
        assert!(!e.is_retryable());
    }

    #[test]
    fn refunds_tell_the_key_they_were_made_with() {
        let key = IdempotencyKey::derive("order-1", "refund").unwrap();
        let mut r = Refund::new("re_1", "pi_1", usd(100), RefundStatus::Succeeded);
        assert!(!r.made_with(&key));
        r.idempotency_key = Some(key.as_str().to_owned());
        assert!(r.made_with(&key));
        assert!(!r.made_with(&key.child("2").unwrap()));
    }
}
