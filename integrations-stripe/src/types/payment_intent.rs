//! The PaymentIntent object.

use std::collections::BTreeMap;
use std::fmt;

use integrations_core::provider::{CaptureMethod, PaymentStatus};
use integrations_core::{Currency, Money};
use serde::Deserialize;

use super::{ApiError, Charge, Expandable, IdOf, StripeObject, id_of};
use crate::currency::{from_wire, parse_currency};

/// A Stripe PaymentIntent: one payment attempt from creation to capture, cancel or refund.
///
/// `Debug` redacts [`PaymentIntent::client_secret`].
#[derive(Clone, PartialEq, Deserialize)]
#[serde(try_from = "RawPaymentIntent")]
#[non_exhaustive]
pub struct PaymentIntent {
    /// `pi_…`.
    pub id: String,
    /// Amount intended to be collected.
    pub amount: Money,
    /// Amount that can still be captured (manual capture).
    pub amount_capturable: Money,
    /// Amount captured.
    pub amount_received: Money,
    /// Currency.
    pub currency: Currency,
    /// Status.
    pub status: PaymentStatus,
    /// Capture method (`automatic_async` reads as automatic).
    pub capture_method: CaptureMethod,
    /// Secret for client-side confirmation. Never printed by `Debug`.
    pub client_secret: Option<String>,
    /// Creation time, unix seconds.
    pub created: i64,
    /// Customer id.
    pub customer: Option<String>,
    /// Description.
    pub description: Option<String>,
    /// The error of the last failed attempt (a decline), cleared by a new one.
    pub last_payment_error: Option<ApiError>,
    /// The latest charge: an id, or the charge with `expand[]=latest_charge`.
    pub latest_charge: Option<Expandable<Charge>>,
    /// Live or test mode.
    pub livemode: bool,
    /// Metadata.
    pub metadata: BTreeMap<String, String>,
    /// Payment method id.
    pub payment_method: Option<String>,
    /// Allowed payment method types.
    pub payment_method_types: Vec<String>,
    /// Receipt email.
    pub receipt_email: Option<String>,
    /// When it was canceled, unix seconds.
    pub canceled_at: Option<i64>,
    /// Why it was canceled (`requested_by_customer`, `abandoned`, …).
    pub cancellation_reason: Option<String>,
}

impl StripeObject for PaymentIntent {
    fn id(&self) -> &str {
        &self.id
    }
}

impl fmt::Debug for PaymentIntent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PaymentIntent")
            .field("id", &self.id)
            .field("amount", &self.amount)
            .field("amount_capturable", &self.amount_capturable)
            .field("amount_received", &self.amount_received)
            .field("status", &self.status)
            .field("capture_method", &self.capture_method)
            .field(
                "client_secret",
                &self.client_secret.as_ref().map(|_| "[redacted]"),
            )
            .field("customer", &self.customer)
            .field("last_payment_error", &self.last_payment_error)
            .field("latest_charge", &self.latest_charge)
            .field("livemode", &self.livemode)
            .field("metadata", &self.metadata)
            .field("payment_method", &self.payment_method)
            .field("cancellation_reason", &self.cancellation_reason)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct RawPaymentIntent {
    id: String,
    amount: i64,
    #[serde(default)]
    amount_capturable: i64,
    #[serde(default)]
    amount_received: i64,
    currency: String,
    status: PaymentStatus,
    #[serde(default)]
    capture_method: Option<String>,
    #[serde(default)]
    client_secret: Option<String>,
    #[serde(default)]
    created: i64,
    #[serde(default)]
    customer: Option<IdOf>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    last_payment_error: Option<ApiError>,
    #[serde(default)]
    latest_charge: Option<Expandable<Charge>>,
    #[serde(default)]
    livemode: bool,
    #[serde(default, deserialize_with = "super::metadata")]
    metadata: BTreeMap<String, String>,
    #[serde(default)]
    payment_method: Option<IdOf>,
    #[serde(default)]
    payment_method_types: Vec<String>,
    #[serde(default)]
    receipt_email: Option<String>,
    #[serde(default)]
    canceled_at: Option<i64>,
    #[serde(default)]
    cancellation_reason: Option<String>,
}

impl TryFrom<RawPaymentIntent> for PaymentIntent {
    type Error = integrations_core::Error;

    fn try_from(r: RawPaymentIntent) -> Result<Self, Self::Error> {
        let currency = parse_currency(&r.currency)?;
        let capture_method = match r.capture_method.as_deref() {
            None | Some("automatic") | Some("automatic_async") => CaptureMethod::Automatic,
            Some("manual") => CaptureMethod::Manual,
            Some(other) => {
                return Err(integrations_core::Error::provider(format!(
                    "unknown capture_method `{other}` on {}",
                    r.id
                )));
            }
        };
        Ok(PaymentIntent {
            amount: from_wire(r.amount, currency)?,
            amount_capturable: from_wire(r.amount_capturable, currency)?,
            amount_received: from_wire(r.amount_received, currency)?,
            currency,
            status: r.status,
            capture_method,
            client_secret: r.client_secret,
            created: r.created,
            customer: id_of(r.customer),
            description: r.description,
            last_payment_error: r.last_payment_error,
            latest_charge: r.latest_charge,
            livemode: r.livemode,
            metadata: r.metadata,
            payment_method: id_of(r.payment_method),
            payment_method_types: r.payment_method_types,
            receipt_email: r.receipt_email,
            canceled_at: r.canceled_at,
            cancellation_reason: r.cancellation_reason,
            id: r.id,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_stripes_fixture_shape() {
        let json = r#"{
          "id": "pi_1", "object": "payment_intent", "amount": 1099, "amount_capturable": 0,
          "amount_details": {"tip": {}}, "amount_received": 0, "application": null,
          "automatic_payment_methods": {"enabled": true}, "canceled_at": null,
          "cancellation_reason": null, "capture_method": "automatic_async",
          "client_secret": "pi_1_secret_abc", "confirmation_method": "automatic",
          "created": 1234567890, "currency": "usd", "customer": {"id": "cus_1", "object": "customer"},
          "description": null, "last_payment_error": null, "latest_charge": "ch_1",
          "livemode": false, "metadata": {"order_id": "42"}, "next_action": null,
          "payment_method": "pm_1", "payment_method_types": ["card"],
          "status": "requires_payment_method"
        }"#;
        let pi: PaymentIntent = serde_json::from_str(json).unwrap();
        assert_eq!(pi.amount, Money::from_minor(1099, Currency::USD));
        assert_eq!(pi.capture_method, CaptureMethod::Automatic);
        assert_eq!(pi.customer.as_deref(), Some("cus_1"));
        assert_eq!(pi.latest_charge.as_ref().map(|c| c.id()), Some("ch_1"));
        assert_eq!(pi.metadata["order_id"], "42");
        let dbg = format!("{pi:?}");
        assert!(!dbg.contains("secret_abc"), "{dbg}");
    }

    #[test]
    fn converts_isk_and_refuses_unknowns() {
        let isk = r#"{"id":"pi_2","amount":50000,"amount_received":50000,"currency":"isk","status":"succeeded"}"#;
        let pi: PaymentIntent = serde_json::from_str(isk).unwrap();
        assert_eq!(pi.amount, Money::from_minor(500, Currency::ISK));
        let bad_status = r#"{"id":"pi_3","amount":1,"currency":"usd","status":"exploded"}"#;
        assert!(serde_json::from_str::<PaymentIntent>(bad_status).is_err());
        let bad_capture = r#"{"id":"pi_4","amount":1,"currency":"usd","status":"succeeded","capture_method":"later"}"#;
        let e = serde_json::from_str::<PaymentIntent>(bad_capture).unwrap_err();
        assert!(e.to_string().contains("capture_method"), "{e}");
    }
}
