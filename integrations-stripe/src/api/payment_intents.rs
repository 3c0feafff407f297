//! `/v1/payment_intents`: create, retrieve, update metadata, confirm, capture, cancel, list.

use std::collections::BTreeMap;

use futures_util::stream::BoxStream;
use integrations_core::provider::{CancelReason, CaptureMethod};
use integrations_core::{Error, IdempotencyKey, Money, Result};
use serde::Serialize;

use super::ListParams;
use crate::PROVIDER;
use crate::client::{StripeClient, path_id};
use crate::currency::to_wire;
use crate::form::{self, is_false};
use crate::types::{List, PaymentIntent};

/// Parameters of `POST /v1/payment_intents`.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct CreatePaymentIntent {
    /// Amount (sent in Stripe's wire units, see [`crate::currency`]).
    pub amount: Money,
    /// Customer id.
    pub customer: Option<String>,
    /// Payment method id (`pm_card_visa` in test mode).
    pub payment_method: Option<String>,
    /// Allowed payment method types (`card`); empty leaves Stripe's automatic payment methods.
    pub payment_method_types: Vec<String>,
    /// Confirm in the same call.
    pub confirm: bool,
    /// `automatic` or `manual` capture; `None` is Stripe's default (automatic).
    pub capture_method: Option<CaptureMethod>,
    /// Description.
    pub description: Option<String>,
    /// Receipt email.
    pub receipt_email: Option<String>,
    /// Metadata.
    pub metadata: BTreeMap<String, String>,
    /// Fields to expand in the response (`latest_charge`).
    pub expand: Vec<String>,
}

impl CreatePaymentIntent {
    /// A payment intent for `amount`.
    pub fn new(amount: Money) -> Self {
        CreatePaymentIntent {
            amount,
            customer: None,
            payment_method: None,
            payment_method_types: Vec::new(),
            confirm: false,
            capture_method: None,
            description: None,
            receipt_email: None,
            metadata: BTreeMap::new(),
            expand: Vec::new(),
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
    /// Adds an allowed payment method type.
    #[must_use]
    pub fn payment_method_type(mut self, t: impl Into<String>) -> Self {
        self.payment_method_types.push(t.into());
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
        self.capture_method = Some(m);
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
    /// Expands a field of the response.
    #[must_use]
    pub fn expand(mut self, field: impl Into<String>) -> Self {
        self.expand.push(field.into());
        self
    }
}

/// Parameters of `POST /v1/payment_intents/{id}/confirm`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConfirmPaymentIntent {
    /// Payment method to use.
    pub payment_method: Option<String>,
    /// Where to send the customer after a redirect-based method.
    pub return_url: Option<String>,
    /// Fields to expand.
    pub expand: Vec<String>,
}

impl ConfirmPaymentIntent {
    /// Confirms with `payment_method`.
    pub fn with_payment_method(id: impl Into<String>) -> Self {
        ConfirmPaymentIntent {
            payment_method: Some(id.into()),
            ..Self::default()
        }
    }
    /// Expands a field of the response.
    #[must_use]
    pub fn expand(mut self, field: impl Into<String>) -> Self {
        self.expand.push(field.into());
        self
    }
}

/// Parameters of `POST /v1/payment_intents/{id}/capture`.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct CapturePaymentIntent {
    /// Amount to capture; `None` captures everything capturable.
    pub amount_to_capture: Option<Money>,
    /// Fields to expand.
    pub expand: Vec<String>,
}

impl CapturePaymentIntent {
    /// Captures everything.
    pub fn full() -> Self {
        Self::default()
    }
    /// Captures `amount` and releases the rest.
    pub fn partial(amount: Money) -> Self {
        CapturePaymentIntent {
            amount_to_capture: Some(amount),
            expand: Vec::new(),
        }
    }
    /// Expands a field of the response.
    #[must_use]
    pub fn expand(mut self, field: impl Into<String>) -> Self {
        self.expand.push(field.into());
        self
    }
}

/// Parameters of `POST /v1/payment_intents/{id}/cancel`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CancelPaymentIntent {
    /// Why.
    pub cancellation_reason: Option<CancelReason>,
    /// Fields to expand.
    pub expand: Vec<String>,
}

impl CancelPaymentIntent {
    /// Cancels for `reason`.
    pub fn reason(reason: CancelReason) -> Self {
        CancelPaymentIntent {
            cancellation_reason: Some(reason),
            expand: Vec::new(),
        }
    }
}

/// Parameters of `GET /v1/payment_intents`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct ListPaymentIntents {
    /// Only this customer's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub customer: Option<String>,
    /// Page size, 1–100 (Stripe's default 10).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<u8>,
    /// Cursor: start after this id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub starting_after: Option<String>,
}

impl ListParams for ListPaymentIntents {
    fn set_starting_after(&mut self, cursor: Option<String>) {
        self.starting_after = cursor;
    }
}

#[derive(Serialize)]
struct CreateForm<'a> {
    amount: i64,
    currency: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    customer: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    payment_method: Option<&'a str>,
    #[serde(skip_serializing_if = "form::empty_slice")]
    payment_method_types: &'a [String],
    #[serde(skip_serializing_if = "is_false")]
    confirm: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    capture_method: Option<CaptureMethod>,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    receipt_email: Option<&'a str>,
    #[serde(skip_serializing_if = "form::empty_map")]
    metadata: &'a BTreeMap<String, String>,
    #[serde(skip_serializing_if = "form::empty_slice")]
    expand: &'a [String],
}

#[derive(Serialize)]
struct MetadataForm<'a> {
    metadata: &'a BTreeMap<String, String>,
}

#[derive(Serialize)]
struct ConfirmForm<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    payment_method: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    return_url: Option<&'a str>,
    #[serde(skip_serializing_if = "form::empty_slice")]
    expand: &'a [String],
}

#[derive(Serialize)]
struct CaptureForm<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    amount_to_capture: Option<i64>,
    #[serde(skip_serializing_if = "form::empty_slice")]
    expand: &'a [String],
}

#[derive(Serialize)]
struct CancelForm<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    cancellation_reason: Option<CancelReason>,
    #[serde(skip_serializing_if = "form::empty_slice")]
    expand: &'a [String],
}

#[derive(Serialize)]
struct ExpandQuery<'a> {
    #[serde(skip_serializing_if = "form::empty_slice")]
    expand: &'a [&'a str],
}

pub(crate) fn positive(field: &'static str, m: Money) -> Result<Money> {
    if m.is_positive() {
        Ok(m)
    } else {
        Err(
            Error::invalid_input(field, format!("must be positive, got {m}"))
                .with_provider(PROVIDER),
        )
    }
}

impl StripeClient {
    /// `POST /v1/payment_intents`.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] naming `amount` before any call when it is not positive or not
    /// representable on Stripe's wire; a decline when confirming ([`Error::Declined`]); otherwise
    /// as [`crate::client::parse_error`].
    pub async fn create_payment_intent(
        &self,
        params: &CreatePaymentIntent,
        key: &IdempotencyKey,
    ) -> Result<PaymentIntent> {
        let amount = to_wire("amount", positive("amount", params.amount)?)?;
        let body = form::encode(&CreateForm {
            amount,
            currency: params.amount.currency().lowercase(),
            customer: params.customer.as_deref(),
            payment_method: params.payment_method.as_deref(),
            payment_method_types: &params.payment_method_types,
            confirm: params.confirm,
            capture_method: params.capture_method,
            description: params.description.as_deref(),
            receipt_email: params.receipt_email.as_deref(),
            metadata: &params.metadata,
            expand: &params.expand,
        })?;
        self.post("create_payment_intent", "/v1/payment_intents", body, key)
            .await
    }

    /// `GET /v1/payment_intents/{id}`, expanding `expand` (e.g. `["latest_charge"]`).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] naming `id` if it is not a Stripe id; [`Error::NotFound`]; as
    /// [`crate::client::parse_error`].
    pub async fn retrieve_payment_intent(
        &self,
        id: &str,
        expand: &[&str],
    ) -> Result<PaymentIntent> {
        let path = format!("/v1/payment_intents/{}", path_id("id", id)?);
        let query = form::encode(&ExpandQuery { expand })?;
        self.get("retrieve_payment_intent", &path, &query).await
    }

    /// `POST /v1/payment_intents/{id}` with `metadata[k]=v` for each entry. Stripe merges: keys
    /// not listed are kept, and an empty value removes a key.
    ///
    /// # Errors
    /// As [`retrieve_payment_intent`](Self::retrieve_payment_intent).
    pub async fn update_payment_intent_metadata(
        &self,
        id: &str,
        metadata: &BTreeMap<String, String>,
        key: &IdempotencyKey,
    ) -> Result<PaymentIntent> {
        let path = format!("/v1/payment_intents/{}", path_id("id", id)?);
        let body = form::encode(&MetadataForm { metadata })?;
        self.post("update_payment_intent", &path, body, key).await
    }

    /// `POST /v1/payment_intents/{id}/confirm`.
    ///
    /// # Errors
    /// [`Error::Declined`] with Stripe's `code` and `decline_code` when the card is declined;
    /// as [`crate::client::parse_error`].
    pub async fn confirm_payment_intent(
        &self,
        id: &str,
        params: &ConfirmPaymentIntent,
        key: &IdempotencyKey,
    ) -> Result<PaymentIntent> {
        let path = format!("/v1/payment_intents/{}/confirm", path_id("id", id)?);
        let body = form::encode(&ConfirmForm {
            payment_method: params.payment_method.as_deref(),
            return_url: params.return_url.as_deref(),
            expand: &params.expand,
        })?;
        self.post("confirm_payment_intent", &path, body, key).await
    }

    /// `POST /v1/payment_intents/{id}/capture`, fully or for `amount_to_capture`.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] naming `amount_to_capture` before any call when it is not
    /// positive or not representable; as [`crate::client::parse_error`].
    pub async fn capture_payment_intent(
        &self,
        id: &str,
        params: &CapturePaymentIntent,
        key: &IdempotencyKey,
    ) -> Result<PaymentIntent> {
        let path = format!("/v1/payment_intents/{}/capture", path_id("id", id)?);
        let amount_to_capture = params
            .amount_to_capture
            .map(|m| to_wire("amount_to_capture", positive("amount_to_capture", m)?))
            .transpose()?;
        let body = form::encode(&CaptureForm {
            amount_to_capture,
            expand: &params.expand,
        })?;
        self.post("capture_payment_intent", &path, body, key).await
    }

    /// `POST /v1/payment_intents/{id}/cancel`.
    ///
    /// # Errors
    /// As [`crate::client::parse_error`] (e.g. [`Error::InvalidInput`] for an intent that already
    /// succeeded).
    pub async fn cancel_payment_intent(
        &self,
        id: &str,
        params: &CancelPaymentIntent,
        key: &IdempotencyKey,
    ) -> Result<PaymentIntent> {
        let path = format!("/v1/payment_intents/{}/cancel", path_id("id", id)?);
        let body = form::encode(&CancelForm {
            cancellation_reason: params.cancellation_reason,
            expand: &params.expand,
        })?;
        self.post("cancel_payment_intent", &path, body, key).await
    }

    /// `GET /v1/payment_intents`: one page.
    ///
    /// # Errors
    /// As [`crate::client::parse_error`].
    pub async fn list_payment_intents(
        &self,
        params: &ListPaymentIntents,
    ) -> Result<List<PaymentIntent>> {
        let query = form::encode(params)?;
        self.get("list_payment_intents", "/v1/payment_intents", &query)
            .await
    }

    /// Every payment intent matching `params`, across pages.
    pub fn payment_intents_stream(
        &self,
        params: ListPaymentIntents,
    ) -> BoxStream<'static, Result<PaymentIntent>> {
        self.paginate("list_payment_intents", "/v1/payment_intents", params)
    }
}
