//! [`StubPaymentProvider`]: an in-memory payment state machine behind [`PaymentProvider`].

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use super::payment_state::{MethodOutcome, Op, State};
use super::script::{Script, lock};
use integrations_core::clock::{Clock, SystemClock};
use integrations_core::provider::{
    CancelReason, CreatePayment, Payment, PaymentCapabilities, PaymentProvider, Refund,
    RefundRequest,
};
use integrations_core::{Error, IdempotencyKey, Money, Result};

/// The payment method the stub accepts by default.
pub const SUCCEEDING_METHOD: &str = "pm_ok";
/// The payment method the stub declines by default (`card_declined` / `generic_decline`).
pub const DECLINING_METHOD: &str = "pm_decline";

/// A [`PaymentProvider`] that keeps payments in memory and follows Stripe's payment intent
/// lifecycle faithfully enough to test against:
///
/// - **idempotency**: every mutating call is recorded under its key; the same key with the same
///   parameters replays the first answer (a decline included), the same key with different
///   parameters is [`Error::Conflict`] (code `idempotency_error`). Validation errors are not
///   recorded, as at Stripe.
/// - **confirm** with [`SUCCEEDING_METHOD`] succeeds (or waits in `RequiresCapture` for manual
///   capture); with [`DECLINING_METHOD`] it is [`Error::Declined`] and the payment goes back to
///   `RequiresPaymentMethod` with `last_failure` set; an unknown method is invalid input.
/// - **capture** (full or partial), **cancel** and **refunds** (over-refunds refused through
///   [`check_refund`](integrations_core::provider::payment::check_refund)); an operation in the wrong state
///   is [`Error::Conflict`] (code `payment_intent_unexpected_state`).
/// - capabilities can be narrowed; what they exclude is refused as invalid input.
///
/// Scripted failures ([`StubPaymentProvider::fail_next`]) come after local validation and before
/// any effect, like a refused connection.
///
/// ```
/// use integrations_core::provider::{CreatePayment, PaymentProvider, PaymentStatus, RefundRequest};
/// use integrations_testkit::StubPaymentProvider;
/// use integrations_core::{Currency, IdempotencyKey, Money};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let stripe = StubPaymentProvider::new_ok();
/// let key = IdempotencyKey::derive("order-42", "payment")?;
/// let req = CreatePayment::new(Money::from_minor(5998, Currency::USD))
///     .payment_method("pm_ok")
///     .confirm(true);
/// let paid = stripe.create_payment(&req, &key).await?;
/// assert_eq!(paid.status, PaymentStatus::Succeeded);
/// // A retry with the same key is the same payment, not a second charge.
/// assert_eq!(stripe.create_payment(&req, &key).await?.id, paid.id);
/// assert_eq!(stripe.payments().len(), 1);
///
/// let refund = RefundRequest::partial(&paid.id, Money::from_minor(1000, Currency::USD));
/// stripe.refund(&refund, &key.child("refund-1")?).await?;
/// assert_eq!(stripe.payment(&paid.id).unwrap().amount_refunded.minor(), 1000);
/// # Ok::<(), integrations_core::Error>(())
/// # }).unwrap();
/// ```
pub struct StubPaymentProvider {
    name: String,
    capabilities: PaymentCapabilities,
    methods: HashMap<String, MethodOutcome>,
    clock: Arc<dyn Clock>,
    script: Script,
    state: Mutex<State>,
}

impl StubPaymentProvider {
    /// A stub named `stub-payments` with every capability, [`SUCCEEDING_METHOD`] and
    /// [`DECLINING_METHOD`].
    pub fn new_ok() -> Self {
        let mut methods = HashMap::new();
        methods.insert(SUCCEEDING_METHOD.to_owned(), MethodOutcome::Succeed);
        methods.insert(
            DECLINING_METHOD.to_owned(),
            MethodOutcome::Decline {
                code: "card_declined".to_owned(),
                decline_code: Some("generic_decline".to_owned()),
            },
        );
        StubPaymentProvider {
            name: "stub-payments".to_owned(),
            capabilities: PaymentCapabilities::all(),
            methods,
            clock: Arc::new(SystemClock),
            script: Script::default(),
            state: Mutex::new(State::default()),
        }
    }

    /// Renames the stub.
    #[must_use]
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Declares these capabilities; requests needing others are refused.
    #[must_use]
    pub fn with_capabilities(mut self, capabilities: PaymentCapabilities) -> Self {
        self.capabilities = capabilities;
        self
    }

    /// Adds a payment method that succeeds (e.g. Stripe's `pm_card_visa`).
    #[must_use]
    pub fn with_succeeding_method(mut self, id: impl Into<String>) -> Self {
        self.methods.insert(id.into(), MethodOutcome::Succeed);
        self
    }

    /// Adds a payment method declined with `code` and the issuer's `decline_code`.
    #[must_use]
    pub fn with_declining_method(
        mut self,
        id: impl Into<String>,
        code: impl Into<String>,
        decline_code: Option<String>,
    ) -> Self {
        self.methods.insert(
            id.into(),
            MethodOutcome::Decline {
                code: code.into(),
                decline_code,
            },
        );
        self
    }

    /// Uses `clock` for `Payment::created`.
    #[must_use]
    pub fn with_clock(mut self, clock: impl Clock + 'static) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Makes the next `n` valid calls fail with `error()`, before any effect.
    pub fn fail_next(&self, n: usize, error: impl Fn() -> Error + Send + Sync + 'static) {
        self.script.fail_next(n, error);
    }

    /// Drops every scripted failure: the stub answers normally again (an outage ends).
    pub fn clear_failures(&self) {
        self.script.clear();
    }

    /// Every payment, in creation order.
    pub fn payments(&self) -> Vec<Payment> {
        lock(&self.state).payments.values().cloned().collect()
    }

    /// One payment by id.
    pub fn payment(&self, id: &str) -> Option<Payment> {
        lock(&self.state).payments.get(id).cloned()
    }

    /// The reason given when payment `id` was canceled, if any.
    pub fn cancellation_reason(&self, id: &str) -> Option<CancelReason> {
        lock(&self.state).cancellation_reasons.get(id).copied()
    }

    /// Every refund, in order.
    pub fn refunds(&self) -> Vec<Refund> {
        lock(&self.state).refunds.clone()
    }

    /// Calls to any [`PaymentProvider`] method, failed ones included.
    pub fn calls(&self) -> usize {
        self.script.calls()
    }

    fn scripted_failure(&self) -> Result<()> {
        match self.script.scripted_failure() {
            Some(e) => Err(e.or_provider(self.name.clone())),
            None => Ok(()),
        }
    }

    /// Runs a mutating operation under its idempotency key.
    fn run(&self, key: &IdempotencyKey, op: Op<'_>) -> Result<super::payment_state::Outcome> {
        self.scripted_failure()?;
        let now = self.clock.unix_seconds();
        let mut state = lock(&self.state);
        state
            .run(key, op, &self.capabilities, &self.methods, now)
            .map_err(|e| e.or_provider(self.name.clone()))
    }
}

impl fmt::Debug for StubPaymentProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = lock(&self.state);
        f.debug_struct("StubPaymentProvider")
            .field("name", &self.name)
            .field("capabilities", &self.capabilities)
            .field("calls", &self.calls())
            .field("payments", &state.payments.len())
            .field("refunds", &state.refunds.len())
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl PaymentProvider for StubPaymentProvider {
    fn name(&self) -> &str {
        &self.name
    }

    fn capabilities(&self) -> PaymentCapabilities {
        self.capabilities
    }

    async fn create_payment(&self, req: &CreatePayment, key: &IdempotencyKey) -> Result<Payment> {
        self.script.begin_call();
        req.validate()
            .map_err(|e| e.or_provider(self.name.clone()))?;
        self.run(key, Op::Create(req))?.into_payment()
    }

    async fn retrieve_payment(&self, id: &str) -> Result<Payment> {
        self.script.begin_call();
        self.scripted_failure()?;
        lock(&self.state)
            .payment(id)
            .cloned()
            .map_err(|e| e.or_provider(self.name.clone()))
    }

    async fn confirm_payment(
        &self,
        id: &str,
        payment_method: Option<&str>,
        key: &IdempotencyKey,
    ) -> Result<Payment> {
        self.script.begin_call();
        self.run(key, Op::Confirm { id, payment_method })?
            .into_payment()
    }

    async fn capture_payment(
        &self,
        id: &str,
        amount: Option<Money>,
        key: &IdempotencyKey,
    ) -> Result<Payment> {
        self.script.begin_call();
        self.run(key, Op::Capture { id, amount })?.into_payment()
    }

    async fn cancel_payment(
        &self,
        id: &str,
        reason: Option<CancelReason>,
        key: &IdempotencyKey,
    ) -> Result<Payment> {
        self.script.begin_call();
        self.run(key, Op::Cancel { id, reason })?.into_payment()
    }

    async fn refund(&self, req: &RefundRequest, key: &IdempotencyKey) -> Result<Refund> {
        self.script.begin_call();
        self.run(key, Op::Refund(req))?.into_refund()
    }

    async fn list_refunds(&self, payment_id: &str) -> Result<Vec<Refund>> {
        self.script.begin_call();
        if !self.capabilities.list_refunds {
            return Err(Error::configuration(
                "list_refunds",
                format!("payment provider `{}` cannot list refunds", self.name),
            )
            .with_provider(self.name.clone()));
        }
        self.scripted_failure()?;
        let state = lock(&self.state);
        state
            .payment(payment_id)
            .map_err(|e| e.or_provider(self.name.clone()))?;
        Ok(state
            .refunds
            .iter()
            .filter(|r| r.payment_id == payment_id)
            .cloned()
            .collect())
    }
}

#[cfg(test)]
#[path = "stub_payment_tests.rs"]
mod tests;
