//! The Refund object.

use std::collections::BTreeMap;

use integrations_core::provider::RefundStatus;
use integrations_core::{Currency, Money};
use serde::Deserialize;

use super::{IdOf, StripeObject, id_of};
use crate::currency::{from_wire, parse_currency};

/// A Stripe Refund of (part of) a charge.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(try_from = "RawRefund")]
#[non_exhaustive]
pub struct Refund {
    /// `re_…`.
    pub id: String,
    /// Amount refunded.
    pub amount: Money,
    /// Charge refunded.
    pub charge: Option<String>,
    /// Creation time, unix seconds.
    pub created: i64,
    /// Currency.
    pub currency: Currency,
    /// Metadata.
    pub metadata: BTreeMap<String, String>,
    /// Payment intent refunded.
    pub payment_intent: Option<String>,
    /// `duplicate`, `fraudulent`, `requested_by_customer`, `expired_uncaptured_charge`.
    pub reason: Option<String>,
    /// Status (`None` only on very old API versions).
    pub status: Option<RefundStatus>,
    /// Why a refund failed (`expired_or_canceled_card`, …).
    pub failure_reason: Option<String>,
}

impl StripeObject for Refund {
    fn id(&self) -> &str {
        &self.id
    }
}

#[derive(Deserialize)]
struct RawRefund {
    id: String,
    amount: i64,
    #[serde(default)]
    charge: Option<IdOf>,
    #[serde(default)]
    created: i64,
    currency: String,
    #[serde(default, deserialize_with = "super::metadata")]
    metadata: BTreeMap<String, String>,
    #[serde(default)]
    payment_intent: Option<IdOf>,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    status: Option<RefundStatus>,
    #[serde(default)]
    failure_reason: Option<String>,
}

impl TryFrom<RawRefund> for Refund {
    type Error = integrations_core::Error;

    fn try_from(r: RawRefund) -> Result<Self, Self::Error> {
        let currency = parse_currency(&r.currency)?;
        Ok(Refund {
            amount: from_wire(r.amount, currency)?,
            charge: id_of(r.charge),
            created: r.created,
            currency,
            metadata: r.metadata,
            payment_intent: id_of(r.payment_intent),
            reason: r.reason,
            status: r.status,
            failure_reason: r.failure_reason,
            id: r.id,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_stripes_fixture_shape() {
        let r: Refund = serde_json::from_str(
            r#"{"amount":100,"balance_transaction":null,"charge":"ch_1","created":1234567890,
                "currency":"usd","destination_details":{"card":{"type":"reversal"},"type":"card"},
                "id":"re_1","metadata":{},"object":"refund","payment_intent":null,"reason":null,
                "receipt_number":null,"source_transfer_reversal":null,"status":"succeeded",
                "transfer_reversal":null}"#,
        )
        .unwrap();
        assert_eq!(r.amount, Money::from_minor(100, Currency::USD));
        assert_eq!(r.status, Some(RefundStatus::Succeeded));
        assert_eq!(r.charge.as_deref(), Some("ch_1"));
        assert_eq!(r.payment_intent, None);
    }
}
