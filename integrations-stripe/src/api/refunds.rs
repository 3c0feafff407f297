//! `/v1/refunds`: create (full or partial), retrieve, list by payment intent or charge.

use std::collections::BTreeMap;

use futures_util::stream::BoxStream;
use integrations_core::provider::RefundReason;
use integrations_core::{Error, IdempotencyKey, Money, Result};
use serde::Serialize;

use super::ListParams;
use super::payment_intents::positive;
use crate::PROVIDER;
use crate::client::{StripeClient, path_id};
use crate::currency::to_wire;
use crate::form;
use crate::types::{List, Refund};

/// Parameters of `POST /v1/refunds`. Exactly one of `payment_intent` and `charge` is set.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct CreateRefund {
    /// Payment intent to refund.
    pub payment_intent: Option<String>,
    /// Charge to refund.
    pub charge: Option<String>,
    /// Amount; `None` refunds whatever is left.
    pub amount: Option<Money>,
    /// Reason.
    pub reason: Option<RefundReason>,
    /// Metadata.
    pub metadata: BTreeMap<String, String>,
    /// Fields to expand.
    pub expand: Vec<String>,
}

impl CreateRefund {
    /// A full refund of a payment intent.
    pub fn for_payment_intent(id: impl Into<String>) -> Self {
        CreateRefund {
            payment_intent: Some(id.into()),
            charge: None,
            amount: None,
            reason: None,
            metadata: BTreeMap::new(),
            expand: Vec::new(),
        }
    }
    /// A full refund of a charge.
    pub fn for_charge(id: impl Into<String>) -> Self {
        CreateRefund {
            payment_intent: None,
            charge: Some(id.into()),
            ..Self::for_payment_intent(String::new())
        }
    }
    /// Refunds only `amount`.
    #[must_use]
    pub fn amount(mut self, amount: Money) -> Self {
        self.amount = Some(amount);
        self
    }
    /// Sets the reason.
    #[must_use]
    pub fn reason(mut self, reason: RefundReason) -> Self {
        self.reason = Some(reason);
        self
    }
    /// Adds a metadata entry.
    #[must_use]
    pub fn metadata(mut self, k: impl Into<String>, v: impl Into<String>) -> Self {
        self.metadata.insert(k.into(), v.into());
        self
    }
}

/// Parameters of `GET /v1/refunds`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct ListRefunds {
    /// Only refunds of this payment intent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payment_intent: Option<String>,
    /// Only refunds of this charge.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub charge: Option<String>,
    /// Page size, 1–100.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<u8>,
    /// Cursor: start after this id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub starting_after: Option<String>,
}

impl ListRefunds {
    /// The refunds of one payment intent.
    pub fn for_payment_intent(id: impl Into<String>) -> Self {
        ListRefunds {
            payment_intent: Some(id.into()),
            ..Self::default()
        }
    }
    /// Sets the page size.
    #[must_use]
    pub fn limit(mut self, limit: u8) -> Self {
        self.limit = Some(limit);
        self
    }
}

impl ListParams for ListRefunds {
    fn set_starting_after(&mut self, cursor: Option<String>) {
        self.starting_after = cursor;
    }
}

#[derive(Serialize)]
struct CreateForm<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    payment_intent: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    charge: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    amount: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<RefundReason>,
    #[serde(skip_serializing_if = "form::empty_map")]
    metadata: &'a BTreeMap<String, String>,
    #[serde(skip_serializing_if = "form::empty_slice")]
    expand: &'a [String],
}

impl StripeClient {
    /// `POST /v1/refunds`.
    ///
    /// This is the raw call: it does not compare the amount with what is still refundable.
    /// [`StripePayments::refund`](crate::StripePayments) does, before any call.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] before any call naming `payment_intent` unless exactly one of
    /// `payment_intent`/`charge` is set, or `amount` when not positive or not representable;
    /// Stripe's over-refund refusal as [`Error::InvalidInput`] naming `amount`; as
    /// [`crate::client::parse_error`].
    pub async fn create_refund(
        &self,
        params: &CreateRefund,
        key: &IdempotencyKey,
    ) -> Result<Refund> {
        let payment_intent = params.payment_intent.as_deref().filter(|s| !s.is_empty());
        let charge = params.charge.as_deref().filter(|s| !s.is_empty());
        match (payment_intent, charge) {
            (Some(pi), None) => {
                path_id("payment_intent", pi)?;
            }
            (None, Some(ch)) => {
                path_id("charge", ch)?;
            }
            _ => {
                return Err(Error::invalid_input(
                    "payment_intent",
                    "set exactly one of payment_intent and charge",
                )
                .with_provider(PROVIDER));
            }
        }
        let amount = params
            .amount
            .map(|m| to_wire("amount", positive("amount", m)?))
            .transpose()?;
        let body = form::encode(&CreateForm {
            payment_intent,
            charge,
            amount,
            reason: params.reason,
            metadata: &params.metadata,
            expand: &params.expand,
        })?;
        self.post("create_refund", "/v1/refunds", body, key).await
    }

    /// `GET /v1/refunds/{id}`.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] naming `id` if it is not a Stripe id; [`Error::NotFound`]; as
    /// [`crate::client::parse_error`].
    pub async fn retrieve_refund(&self, id: &str) -> Result<Refund> {
        let path = format!("/v1/refunds/{}", path_id("id", id)?);
        self.get("retrieve_refund", &path, "").await
    }

    /// `GET /v1/refunds`: one page.
    ///
    /// # Errors
    /// As [`crate::client::parse_error`].
    pub async fn list_refunds(&self, params: &ListRefunds) -> Result<List<Refund>> {
        let query = form::encode(params)?;
        self.get("list_refunds", "/v1/refunds", &query).await
    }

    /// Every refund matching `params` (e.g. [`ListRefunds::for_payment_intent`]), across pages.
    pub fn refunds_stream(&self, params: ListRefunds) -> BoxStream<'static, Result<Refund>> {
        self.paginate("list_refunds", "/v1/refunds", params)
    }
}
