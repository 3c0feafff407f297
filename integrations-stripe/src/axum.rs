//! The axum extractor for Stripe webhooks (feature `axum`).
//!
//! [`StripeEvent`] reads the raw body — what Stripe signed; a body parsed and re-serialised no
//! longer verifies — and the `Stripe-Signature` header, verifies both with the
//! [`StripeWebhookVerifier`] found in the router's state as `Arc<StripeWebhookVerifier>`
//! (secret rotation, timestamp tolerance, constant-time comparison and body limit are the
//! verifier's), and only then parses the event's envelope. Refusals are
//! [`WebhookRejection`]s: 400 for a forged, stale or malformed request, 413 over the body limit.
//!
//! ```
//! use std::sync::Arc;
//! use axum::{Router, routing::post};
//! use integrations_core::webhook::WebhookSecret;
//! use integrations_stripe::StripeWebhookVerifier;
//! use integrations_stripe::axum::StripeEvent;
//!
//! async fn stripe(StripeEvent(event): StripeEvent) -> &'static str {
//!     if let Some(pi) = event.payment_intent() {
//!         let _ = &pi.amount_received; // verified: act on it (record it in an outbox first)
//!     }
//!     "ok"
//! }
//!
//! let verifier = Arc::new(StripeWebhookVerifier::new(WebhookSecret::new("whsec_…")));
//! let app: Router = Router::new().route("/webhooks/stripe", post(stripe)).with_state(verifier);
//! # let _ = app;
//! ```

use std::sync::Arc;

use axum::extract::{FromRef, FromRequest, Request};
pub use integrations_core::webhook::{Verified, WebhookRejection};

use crate::types::Event;
use crate::webhook::StripeWebhookVerifier;

/// A verified Stripe event: `StripeEvent(event)` in a handler's arguments. Core's
/// [`Verified<StripeWebhookVerifier>`](Verified) does the work; this names it.
#[derive(Debug, Clone)]
pub struct StripeEvent(pub Event);

impl<S> FromRequest<S> for StripeEvent
where
    S: Send + Sync,
    Arc<StripeWebhookVerifier>: FromRef<S>,
{
    type Rejection = WebhookRejection;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let Verified(event) = Verified::<StripeWebhookVerifier>::from_request(req, state).await?;
        Ok(StripeEvent(event))
    }
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::StatusCode;
    use integrations_core::clock::FixedClock;
    use integrations_core::webhook::WebhookSecret;

    use super::*;
    use crate::webhook::{SIGNATURE_HEADER, sign_for_test};

    const T: i64 = 1_700_000_000;
    const BODY: &[u8] = br#"{"id":"evt_1","object":"event","type":"customer.created","created":1700000000,"livemode":false,"data":{"object":{"id":"cus_1","object":"customer"}}}"#;

    fn verifier() -> Arc<StripeWebhookVerifier> {
        Arc::new(
            StripeWebhookVerifier::new(WebhookSecret::new("whsec_test"))
                .with_clock(FixedClock::from_unix(T)),
        )
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

    #[tokio::test]
    async fn over_the_limit_is_413() {
        let header = sign_for_test(BODY, &WebhookSecret::new("whsec_test"), T);
        let small = Arc::new(
            StripeWebhookVerifier::new(WebhookSecret::new("whsec_test"))
                .with_clock(FixedClock::from_unix(T))
                .with_body_limit(16),
        );
        let e = StripeEvent::from_request(request(Some(&header), BODY), &small)
            .await
            .unwrap_err();
        assert_eq!(e.status(), StatusCode::PAYLOAD_TOO_LARGE);
    }
}
