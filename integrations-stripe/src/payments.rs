//! [`PaymentProvider`] for Stripe: [`StripePayments`].

use std::collections::BTreeMap;

use async_trait::async_trait;
use futures_util::StreamExt;
use integrations_core::provider::payment::check_refund;
use integrations_core::provider::{
    CancelReason, CreatePayment, Payment, PaymentCapabilities, PaymentFailure, PaymentProvider,
    Refund, RefundReason, RefundRequest,
};
use integrations_core::{Error, ErrorKind, IdempotencyKey, Money, Result};

use crate::PROVIDER;
use crate::api::{
    CancelPaymentIntent, CapturePaymentIntent, ConfirmPaymentIntent, CreatePaymentIntent,
    CreateRefund, ListRefunds, MAX_PAGE_SIZE,
};
use crate::client::StripeClient;
use crate::types::{self, Expandable, PaymentIntent};

/// Metadata key under which [`StripePayments::refund`] records the refund's idempotency key, so a
/// retry after a crash finds the refund its first attempt made.
pub const REFUND_KEY_METADATA: &str = "integrations_idempotency_key";

const EXPAND_CHARGE: &str = "latest_charge";

/// Stripe as a [`PaymentProvider`], on payment intents.
///
/// * Every mutating call sends the caller's [`IdempotencyKey`] (derive it from the business
///   operation: `order-42/payment`), the same on every retry and after a restart, so Stripe
///   replays instead of charging twice.
/// * Refunds are checked against what is still refundable (captured − refunded, read from the
///   intent's latest charge) before any call; Stripe's own over-refund refusal maps to the same
///   [`Error::InvalidInput`] naming `amount`.
/// * Refunds carry their idempotency key in their metadata ([`REFUND_KEY_METADATA`]), so
///   [`list_refunds`](PaymentProvider::list_refunds) tells which refund a key made.
/// * Payment methods are confirmed server-side, so intents are created with
///   `payment_method_types[0]=card` unless told otherwise
///   ([`with_payment_method_types`](Self::with_payment_method_types)).
///
/// ```
/// use integrations_core::provider::PaymentProvider;
/// use integrations_stripe::StripeBuilder;
///
/// let payments = StripeBuilder::new().with_secret_key("sk_test_4eC39HqLyjWDarjtT1zdp7dc").build()?;
/// assert_eq!(payments.name(), "stripe");
/// assert!(payments.capabilities().partial_refunds);
/// # Ok::<(), integrations_core::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct StripePayments {
    client: StripeClient,
    payment_method_types: Vec<String>,
}

impl StripePayments {
    /// Payments through `client`, card payments only.
    pub fn new(client: StripeClient) -> Self {
        StripePayments {
            client,
            payment_method_types: vec!["card".to_owned()],
        }
    }

    /// The payment method types new intents allow (empty: Stripe's automatic payment methods,
    /// which need a `return_url` to confirm server-side).
    #[must_use]
    pub fn with_payment_method_types<I, S>(mut self, types: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.payment_method_types = types.into_iter().map(Into::into).collect();
        self
    }

    /// The underlying client, for Stripe-specific calls.
    pub fn client(&self) -> &StripeClient {
        &self.client
    }

    /// The core [`Payment`] of an intent: amounts from the intent, the refunded amount from its
    /// latest charge (fetched when not expanded), counting only refunds of the captured part
    /// ([`Charge::captured_refunded`](crate::types::Charge::captured_refunded)).
    ///
    /// # Errors
    /// As [`StripeClient::retrieve_charge`] when the charge has to be fetched.
    pub async fn payment_of(&self, pi: &PaymentIntent) -> Result<Payment> {
        let amount_refunded = match &pi.latest_charge {
            None => Money::zero(pi.currency),
            Some(Expandable::Object(charge)) => charge.captured_refunded(),
            Some(Expandable::Id(id)) => self.client.retrieve_charge(id).await?.captured_refunded(),
        };
        let mut p = Payment::new(pi.id.clone(), pi.amount, pi.status);
        p.amount_received = pi.amount_received;
        p.amount_refunded = amount_refunded;
        p.client_secret = pi.client_secret.clone();
        p.customer = pi.customer.clone();
        p.payment_method = pi.payment_method.clone();
        p.last_failure = pi.last_payment_error.as_ref().map(|e| PaymentFailure {
            code: e.code.clone(),
            decline_code: e.decline_code.clone(),
            message: e.message.clone(),
        });
        p.metadata = pi.metadata.clone();
        p.created = pi.created;
        Ok(p)
    }

    async fn retrieve(&self, id: &str) -> Result<PaymentIntent> {
        self.client
            .retrieve_payment_intent(id, &[EXPAND_CHARGE])
            .await
    }

    /// The refund an earlier attempt with `key` made on `payment_id`, if any.
    async fn refund_made_with(
        &self,
        payment_id: &str,
        key: &IdempotencyKey,
    ) -> Result<Option<types::Refund>> {
        let mut refunds = self
            .client
            .refunds_stream(ListRefunds::for_payment_intent(payment_id).limit(MAX_PAGE_SIZE));
        while let Some(refund) = refunds.next().await {
            let refund = refund?;
            if refund.metadata.get(REFUND_KEY_METADATA).map(String::as_str) == Some(key.as_str()) {
                return Ok(Some(refund));
            }
        }
        Ok(None)
    }
}

fn core_refund(r: types::Refund, payment_id: &str) -> Refund {
    let mut out = Refund::new(
        r.id,
        r.payment_intent.unwrap_or_else(|| payment_id.to_owned()),
        r.amount,
        r.status
            .unwrap_or(integrations_core::provider::RefundStatus::Pending),
    );
    out.reason = match r.reason.as_deref() {
        Some("duplicate") => Some(RefundReason::Duplicate),
        Some("fraudulent") => Some(RefundReason::Fraudulent),
        Some("requested_by_customer") => Some(RefundReason::RequestedByCustomer),
        _ => None,
    };
    let mut metadata: BTreeMap<String, String> = r.metadata;
    out.idempotency_key = metadata.remove(REFUND_KEY_METADATA);
    out.metadata = metadata;
    out
}

#[async_trait]
impl PaymentProvider for StripePayments {
    fn name(&self) -> &str {
        PROVIDER
    }

    fn capabilities(&self) -> PaymentCapabilities {
        PaymentCapabilities::all()
    }

    async fn create_payment(&self, req: &CreatePayment, key: &IdempotencyKey) -> Result<Payment> {
        req.validate()?;
        let mut params = CreatePaymentIntent::new(req.amount)
            .confirm(req.confirm)
            .capture_method(req.capture_method)
            .expand(EXPAND_CHARGE);
        params.customer = req.customer.clone();
        params.payment_method = req.payment_method.clone();
        params.payment_method_types = self.payment_method_types.clone();
        params.description = req.description.clone();
        params.receipt_email = req.receipt_email.clone();
        params.metadata = req.metadata.clone();
        let pi = self.client.create_payment_intent(&params, key).await?;
        self.payment_of(&pi).await
    }

    async fn retrieve_payment(&self, id: &str) -> Result<Payment> {
        let pi = self.retrieve(id).await?;
        self.payment_of(&pi).await
    }

    async fn confirm_payment(
        &self,
        id: &str,
        payment_method: Option<&str>,
        key: &IdempotencyKey,
    ) -> Result<Payment> {
        let mut params = ConfirmPaymentIntent::default().expand(EXPAND_CHARGE);
        params.payment_method = payment_method.map(str::to_owned);
        let pi = self.client.confirm_payment_intent(id, &params, key).await?;
        self.payment_of(&pi).await
    }

    async fn capture_payment(
        &self,
        id: &str,
        amount: Option<Money>,
        key: &IdempotencyKey,
    ) -> Result<Payment> {
        let params = match amount {
            None => CapturePaymentIntent::full(),
            Some(amount) => {
                // The wire amount depends on the currency (ISK is ×100): an amount in another
                // currency would capture the wrong sum, so compare before sending. The currency
                // of an intent never changes, so this check holds on a retry too; the amount
                // against `amount_capturable` is left to Stripe, which replays a capture that a
                // lost response already made.
                let pi = self.client.retrieve_payment_intent(id, &[]).await?;
                if amount.currency() != pi.currency {
                    return Err(Error::invalid_input(
                        "amount",
                        format!(
                            "capture in {} of a payment in {}",
                            amount.currency(),
                            pi.currency
                        ),
                    )
                    .with_provider(PROVIDER));
                }
                CapturePaymentIntent::partial(amount)
            }
        }
        .expand(EXPAND_CHARGE);
        let pi = self.client.capture_payment_intent(id, &params, key).await?;
        self.payment_of(&pi).await
    }

    async fn cancel_payment(
        &self,
        id: &str,
        reason: Option<CancelReason>,
        key: &IdempotencyKey,
    ) -> Result<Payment> {
        let params = CancelPaymentIntent {
            cancellation_reason: reason,
            expand: vec![EXPAND_CHARGE.to_owned()],
        };
        let pi = self.client.cancel_payment_intent(id, &params, key).await?;
        self.payment_of(&pi).await
    }

    async fn refund(&self, req: &RefundRequest, key: &IdempotencyKey) -> Result<Refund> {
        let pi = self.retrieve(&req.payment_id).await?;
        let payment = self.payment_of(&pi).await?;
        let amount = match check_refund(&payment, req.amount) {
            Ok(amount) => amount,
            Err(refused) => {
                // A first attempt may have refunded and then lost its response (or its process):
                // that refund is what this call must return, not a refusal.
                return match self.refund_made_with(&payment.id, key).await? {
                    Some(made) => Ok(core_refund(made, &payment.id)),
                    None => Err(refused.or_provider(PROVIDER)),
                };
            }
        };
        let mut params = CreateRefund::for_payment_intent(payment.id.clone()).amount(amount);
        params.reason = req.reason;
        params.metadata = req.metadata.clone();
        params
            .metadata
            .insert(REFUND_KEY_METADATA.to_owned(), key.as_str().to_owned());
        let refund = self.client.create_refund(&params, key).await?;
        Ok(core_refund(refund, &payment.id))
    }

    /// The intent's refunds, oldest first, each with the key [`refund`](Self::refund) recorded
    /// in its metadata ([`REFUND_KEY_METADATA`]); refunds made elsewhere (the dashboard, the raw
    /// client) have none.
    async fn list_refunds(&self, payment_id: &str) -> Result<Vec<Refund>> {
        let mut refunds = self
            .client
            .refunds_stream(ListRefunds::for_payment_intent(payment_id).limit(MAX_PAGE_SIZE));
        let mut out = Vec::new();
        while let Some(refund) = refunds.next().await {
            let refund = refund.map_err(|e| {
                // Stripe refuses a filter naming a missing intent as a bad parameter (400
                // `resource_missing`); to the caller it is a missing payment.
                if e.kind() == ErrorKind::InvalidInput && e.code() == Some("resource_missing") {
                    Error::not_found(e.message().to_owned())
                        .with_code("resource_missing")
                        .with_provider(PROVIDER)
                        .with_source(e)
                } else {
                    e
                }
            })?;
            out.push(core_refund(refund, payment_id));
        }
        // Stripe lists newest first.
        out.reverse();
        Ok(out)
    }
}
