//! Stripe's error object, as in error responses and in `last_payment_error`.

use serde::Deserialize;

use super::{IdOf, id_of};

/// The body of every Stripe error response: `{"error": {…}}`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct ErrorBody {
    /// The error.
    pub error: ApiError,
}

/// A Stripe error object (`type`, `code`, `decline_code`, `message`, `param`, …).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(from = "RawApiError")]
#[non_exhaustive]
pub struct ApiError {
    /// `api_error`, `card_error`, `idempotency_error`, `invalid_request_error`, …
    pub type_: String,
    /// Stripe's error code (`card_declined`, `resource_missing`, `amount_too_large`).
    pub code: Option<String>,
    /// The issuer's decline code for card errors (`insufficient_funds`, `generic_decline`).
    pub decline_code: Option<String>,
    /// Human-readable message.
    pub message: Option<String>,
    /// The parameter the error is about (`amount`, `payment_method`).
    pub param: Option<String>,
    /// Link to the error code's documentation.
    pub doc_url: Option<String>,
    /// Link to the request in the Dashboard logs.
    pub request_log_url: Option<String>,
    /// The charge of a card error.
    pub charge: Option<String>,
    /// The payment intent the error is about, when Stripe includes it.
    pub payment_intent: Option<String>,
    /// The payment method that failed, when Stripe includes it.
    pub payment_method: Option<String>,
}

#[derive(Deserialize)]
struct RawApiError {
    #[serde(rename = "type", default)]
    type_: String,
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    decline_code: Option<String>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    param: Option<String>,
    #[serde(default)]
    doc_url: Option<String>,
    #[serde(default)]
    request_log_url: Option<String>,
    #[serde(default)]
    charge: Option<String>,
    #[serde(default)]
    payment_intent: Option<IdOf>,
    #[serde(default)]
    payment_method: Option<IdOf>,
}

impl From<RawApiError> for ApiError {
    fn from(r: RawApiError) -> Self {
        ApiError {
            type_: r.type_,
            code: r.code,
            decline_code: r.decline_code,
            message: r.message,
            param: r.param,
            doc_url: r.doc_url,
            request_log_url: r.request_log_url,
            charge: r.charge,
            payment_intent: id_of(r.payment_intent),
            payment_method: id_of(r.payment_method),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_card_error_with_embedded_objects() {
        let body: ErrorBody = serde_json::from_str(
            r#"{"error":{"type":"card_error","code":"card_declined","decline_code":"insufficient_funds",
                "message":"Your card has insufficient funds.","charge":"ch_1",
                "payment_intent":{"id":"pi_1","object":"payment_intent"},
                "payment_method":{"id":"pm_1","object":"payment_method"},"extra":{"x":1}}}"#,
        )
        .unwrap();
        let e = body.error;
        assert_eq!(e.type_, "card_error");
        assert_eq!(e.decline_code.as_deref(), Some("insufficient_funds"));
        assert_eq!(e.payment_intent.as_deref(), Some("pi_1"));
        assert_eq!(e.payment_method.as_deref(), Some("pm_1"));
        assert_eq!(e.charge.as_deref(), Some("ch_1"));
    }

    #[test]
    fn everything_but_the_wrapper_is_optional() {
        let body: ErrorBody = serde_json::from_str(r#"{"error":{}}"#).unwrap();
        assert_eq!(body.error, ApiError::default());
        assert!(serde_json::from_str::<ErrorBody>(r#"{"message":"x"}"#).is_err());
    }
}
