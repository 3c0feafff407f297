//! An axum extractor for Stripe webhooks, on `integrations_stripe`'s public verifier.
//!
//! `integrations-stripe` does not offer an axum extractor (yet), so the service carries this
//! one. [`StripeEvent`] reads the raw body — what Stripe signed; a body parsed and re-serialised
//! no longer verifies — and the `Stripe-Signature` header, verifies both with the
//! [`WebhookVerifier`] found in the router's state through [`FromRef`] (secret rotation,
//! timestamp tolerance, constant-time comparison and body limit are the verifier's), and only
//! then parses the event.

use axum::body::Bytes;
use axum::extract::{FromRef, FromRequest, Request};
use integrations_core::{Error, SignatureFailure};
use integrations_stripe::PROVIDER;
use integrations_stripe::types::Event;
use integrations_stripe::webhook::{SIGNATURE_HEADER, WebhookVerifier};

use crate::api::ApiError;

/// A verified Stripe event.
#[derive(Debug, Clone)]
pub struct StripeEvent(pub Event);

impl<S> FromRequest<S> for StripeEvent
where
    S: Send + Sync,
    WebhookVerifier: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let verifier = WebhookVerifier::from_ref(state);
        let header = req
            .headers()
            .get(SIGNATURE_HEADER)
            .map(|v| v.to_str().map(str::to_owned));
        let body = Bytes::from_request(req, state).await.map_err(|e| {
            ApiError::new(
                e.status(),
                Error::invalid_input("body", e.body_text()).with_provider(PROVIDER),
            )
        })?;
        let header = match header {
            Some(Ok(h)) => h,
            Some(Err(_)) => return Err(malformed("Stripe-Signature is not text")),
            None => return Err(malformed("Stripe-Signature is missing")),
        };
        match verifier.verify(&body, &header) {
            Ok(event) => Ok(StripeEvent(event)),
            Err(e) => {
                tracing::warn!(error = %e, "Stripe webhook refused");
                // The signature verified but the body is not an event: still the sender's fault.
                let e = if e.kind() == integrations_core::ErrorKind::Provider {
                    Error::invalid_input("body", e.message().to_owned()).with_provider(PROVIDER)
                } else {
                    e
                };
                Err(ApiError::from(e))
            }
        }
    }
}

fn malformed(why: &str) -> ApiError {
    ApiError::from(
        Error::invalid_signature(SignatureFailure::MalformedHeader(why.to_owned()))
            .with_provider(PROVIDER),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::StatusCode;
    use integrations_core::clock::FixedClock;
    use integrations_core::webhook::WebhookSecret;
    use integrations_stripe::webhook::sign_for_test;

    const T: i64 = 1_700_000_000;
    const BODY: &[u8] = br#"{"id":"evt_1","object":"event","type":"customer.created","created":1700000000,"livemode":false,"data":{"object":{"id":"cus_1","object":"customer"}}}"#;

    fn verifier() -> WebhookVerifier {
        WebhookVerifier::new(WebhookSecret::new("whsec_test")).with_clock(FixedClock::from_unix(T))
    }

    fn request(header: Option<&str>, body: &'static [u8]) -> Request {
        let mut b = Request::builder().method("POST").uri("/webhooks/stripe");
        if let Some(h) = header {
            b = b.header(SIGNATURE_HEADER, h);
        }
        b.body(Body::from(body)).unwrap()
    }

    #[tokio::test]
    async fn verifies_then_parses() {
        let header = sign_for_test(BODY, &WebhookSecret::new("whsec_test"), T);
        let Ok(StripeEvent(event)) =
            StripeEvent::from_request(request(Some(&header), BODY), &verifier()).await
        else {
            panic!("a signed event was refused")
        };
        assert_eq!(event.id, "evt_1");

        let forged = sign_for_test(BODY, &WebhookSecret::new("whsec_other"), T);
        let e = StripeEvent::from_request(request(Some(&forged), BODY), &verifier())
            .await
            .unwrap_err();
        assert_eq!(e.status(), StatusCode::BAD_REQUEST);
        let e = StripeEvent::from_request(request(None, BODY), &verifier())
            .await
            .unwrap_err();
        assert_eq!(e.status(), StatusCode::BAD_REQUEST);
        assert!(e.error().to_string().contains("missing"), "{:?}", e.error());

        let not_event: &[u8] = br#"{"hello":"world"}"#;
        let header = sign_for_test(not_event, &WebhookSecret::new("whsec_test"), T);
        let e = StripeEvent::from_request(request(Some(&header), not_event), &verifier())
            .await
            .unwrap_err();
        assert_eq!(e.status(), StatusCode::BAD_REQUEST);
        assert_eq!(e.error().field(), Some("body"));
    }
}
