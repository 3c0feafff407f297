//! The Charge object.

use std::collections::BTreeMap;

use integrations_core::{Currency, Money};
use serde::Deserialize;

use super::{IdOf, StripeObject, id_of};
use crate::currency::{from_wire, parse_currency};

/// Outcome of a charge attempt.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ChargeStatus {
    /// Money moved (authorised, and captured unless `captured` is false).
    Succeeded,
    /// Not final yet.
    Pending,
    /// Declined or failed.
    Failed,
    /// A status newer than the pinned API version, as sent: the charge still parses.
    Unknown(String),
}

impl<'de> Deserialize<'de> for ChargeStatus {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Ok(match s.as_str() {
            "succeeded" => ChargeStatus::Succeeded,
            "pending" => ChargeStatus::Pending,
            "failed" => ChargeStatus::Failed,
            _ => ChargeStatus::Unknown(s),
        })
    }
}

/// What the network and Stripe's risk checks said.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct ChargeOutcome {
    /// `approved_by_network`, `declined_by_network`, …
    #[serde(default)]
    pub network_status: Option<String>,
    /// Decline reason (`insufficient_funds`), if declined.
    #[serde(default)]
    pub reason: Option<String>,
    /// `normal`, `elevated`, `highest`.
    #[serde(default)]
    pub risk_level: Option<String>,
    /// Message for the merchant.
    #[serde(default)]
    pub seller_message: Option<String>,
    /// `authorized`, `issuer_declined`, …
    #[serde(default, rename = "type")]
    pub type_: Option<String>,
}

/// A Stripe Charge: one attempt to move money for a payment intent.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(try_from = "RawCharge")]
#[non_exhaustive]
pub struct Charge {
    /// `ch_…`.
    pub id: String,
    /// Amount authorised.
    pub amount: Money,
    /// Amount captured.
    pub amount_captured: Money,
    /// Amount refunded so far.
    pub amount_refunded: Money,
    /// Whether captured.
    pub captured: bool,
    /// Creation time, unix seconds.
    pub created: i64,
    /// Currency.
    pub currency: Currency,
    /// Customer id.
    pub customer: Option<String>,
    /// Description.
    pub description: Option<String>,
    /// Failure code (`card_declined`).
    pub failure_code: Option<String>,
    /// Failure message.
    pub failure_message: Option<String>,
    /// Live or test mode.
    pub livemode: bool,
    /// Metadata.
    pub metadata: BTreeMap<String, String>,
    /// Network and risk outcome.
    pub outcome: Option<ChargeOutcome>,
    /// Whether it succeeded or was authorised.
    pub paid: bool,
    /// Payment intent id.
    pub payment_intent: Option<String>,
    /// Payment method id.
    pub payment_method: Option<String>,
    /// Whether fully refunded.
    pub refunded: bool,
    /// Status.
    pub status: ChargeStatus,
}

impl StripeObject for Charge {
    fn id(&self) -> &str {
        &self.id
    }
}

impl Charge {
    /// What was refunded of the captured amount.
    ///
    /// After a partial capture Stripe releases the uncaptured remainder and counts it in
    /// `amount_refunded` (`amount` 5000, `amount_captured` 3000 → `amount_refunded` 2000 with no
    /// refund made); this leaves the released part out.
    pub fn captured_refunded(&self) -> Money {
        let released = if self.captured {
            self.amount
                .minor()
                .saturating_sub(self.amount_captured.minor())
                .max(0)
        } else {
            0
        };
        let refunded = self.amount_refunded.minor().saturating_sub(released).max(0);
        Money::from_minor(refunded, self.currency)
    }

    /// Captured minus refunded: what a refund may still return.
    pub fn refundable(&self) -> Money {
        Money::from_minor(
            self.amount_captured
                .minor()
                .saturating_sub(self.captured_refunded().minor())
                .max(0),
            self.currency,
        )
    }
}

#[derive(Deserialize)]
struct RawCharge {
    id: String,
    amount: i64,
    #[serde(default)]
    amount_captured: i64,
    #[serde(default)]
    amount_refunded: i64,
    #[serde(default)]
    captured: bool,
    #[serde(default)]
    created: i64,
    currency: String,
    #[serde(default)]
    customer: Option<IdOf>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    failure_code: Option<String>,
    #[serde(default)]
    failure_message: Option<String>,
    #[serde(default)]
    livemode: bool,
    #[serde(default, deserialize_with = "super::metadata")]
    metadata: BTreeMap<String, String>,
    #[serde(default)]
    outcome: Option<ChargeOutcome>,
    #[serde(default)]
    paid: bool,
    #[serde(default)]
    payment_intent: Option<IdOf>,
    #[serde(default)]
    payment_method: Option<IdOf>,
    #[serde(default)]
    refunded: bool,
    status: ChargeStatus,
}

impl TryFrom<RawCharge> for Charge {
    type Error = integrations_core::Error;

    fn try_from(r: RawCharge) -> Result<Self, Self::Error> {
        let currency = parse_currency(&r.currency)?;
        Ok(Charge {
            amount: from_wire(r.amount, currency)?,
            amount_captured: from_wire(r.amount_captured, currency)?,
            amount_refunded: from_wire(r.amount_refunded, currency)?,
            captured: r.captured,
            created: r.created,
            currency,
            customer: id_of(r.customer),
            description: r.description,
            failure_code: r.failure_code,
            failure_message: r.failure_message,
            livemode: r.livemode,
            metadata: r.metadata,
            outcome: r.outcome,
            paid: r.paid,
            payment_intent: id_of(r.payment_intent),
            payment_method: id_of(r.payment_method),
            refunded: r.refunded,
            status: r.status,
            id: r.id,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_partially_refunded_charge() {
        let c: Charge = serde_json::from_str(
            r#"{"id":"ch_1","object":"charge","amount":5000,"amount_captured":5000,
                "amount_refunded":2000,"captured":true,"currency":"usd","paid":true,
                "payment_intent":"pi_1","payment_method":"pm_1","refunded":false,
                "status":"succeeded","outcome":{"type":"authorized","network_status":"approved_by_network",
                "reason":null,"risk_level":"normal","seller_message":"Payment complete."},
                "billing_details":{"name":"Jenny Rosen"},"metadata":{}}"#,
        )
        .unwrap();
        assert_eq!(c.refundable(), Money::from_minor(3000, Currency::USD));
        assert_eq!(
            c.captured_refunded(),
            Money::from_minor(2000, Currency::USD)
        );
        assert_eq!(c.status, ChargeStatus::Succeeded);
        assert_eq!(c.outcome.unwrap().type_.as_deref(), Some("authorized"));
    }

    #[test]
    fn partial_capture_release_is_not_a_refund() {
        // Authorised 5000, captured 3000: Stripe reports the released 2000 as refunded.
        let c: Charge = serde_json::from_str(
            r#"{"id":"ch_2","amount":5000,"amount_captured":3000,"amount_refunded":2000,
                "captured":true,"currency":"usd","status":"succeeded"}"#,
        )
        .unwrap();
        assert_eq!(c.captured_refunded().minor(), 0);
        assert_eq!(c.refundable().minor(), 3000);
        // Then 500 refunded for real.
        let c: Charge = serde_json::from_str(
            r#"{"id":"ch_2","amount":5000,"amount_captured":3000,"amount_refunded":2500,
                "captured":true,"currency":"usd","status":"succeeded"}"#,
        )
        .unwrap();
        assert_eq!(c.captured_refunded().minor(), 500);
        assert_eq!(c.refundable().minor(), 2500);
        // Authorised, not captured: nothing refundable.
        let c: Charge = serde_json::from_str(
            r#"{"id":"ch_3","amount":5000,"amount_captured":0,"amount_refunded":0,
                "captured":false,"currency":"usd","status":"succeeded"}"#,
        )
        .unwrap();
        assert_eq!(c.refundable().minor(), 0);
    }
}
