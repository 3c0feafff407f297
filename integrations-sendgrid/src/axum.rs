//! An [axum](https://docs.rs/axum) extractor for the Signed Event Webhook (feature `axum`).
//!
//! [`SendGridEvents`] reads the raw request body — never a parsed-and-reserialised one, which
//! would no longer verify — checks the ECDSA signature and timestamp with the
//! [`EventWebhookVerifier`] it finds in the router's state as `Arc<EventWebhookVerifier>` (through [`FromRef`]), and only then
//! parses the batch. A request that does not verify never reaches the handler: the extractor
//! answers with a [`WebhookRejection`] (400 for a bad signature, 413 for a body over the limit).
//!
//! The body is buffered under axum's `DefaultBodyLimit` (2 MiB unless the router sets another)
//! and then checked against the verifier's own limit (1 MiB by default).
//!
//! ```
//! use std::sync::Arc;
//! use axum::extract::FromRef;
//! use axum::routing::post;
//! use axum::Router;
//! use integrations_sendgrid::axum::SendGridEvents;
//! use integrations_sendgrid::webhook::{EventWebhookSigner, EventWebhookVerifier};
//!
//! #[derive(Clone)]
//! struct AppState {
//!     sendgrid: Arc<EventWebhookVerifier>,
//! }
//!
//! impl FromRef<AppState> for Arc<EventWebhookVerifier> {
//!     fn from_ref(state: &AppState) -> Self {
//!         Arc::clone(&state.sendgrid)
//!     }
//! }
//!
//! async fn events(SendGridEvents(events): SendGridEvents) -> &'static str {
//!     for event in &events {
//!         tracing::info!(id = %event.dedup_key(), kind = ?event.event_type(), "email event");
//!     }
//!     "ok"
//! }
//!
//! // In production: `EventWebhookVerifier::from_env()?` (SENDGRID_WEBHOOK_PUBLIC_KEY).
//! let verifier = EventWebhookSigner::generate().verifier();
//! let app: Router = Router::new()
//!     .route("/webhooks/sendgrid", post(events))
//!     .with_state(AppState { sendgrid: Arc::new(verifier) });
//! # let _ = app;
//! ```

use std::sync::Arc;

use axum::extract::{FromRef, FromRequest, Request};
use integrations_core::webhook::Verified;
pub use integrations_core::webhook::WebhookRejection;

use crate::webhook::{Event, EventWebhookVerifier};

/// A verified batch of SendGrid events: `SendGridEvents(events)` in a handler's arguments.
/// Core's [`Verified<EventWebhookVerifier>`](Verified) does the work; this names it.
#[derive(Debug, Clone)]
pub struct SendGridEvents(pub Vec<Event>);

impl<S> FromRequest<S> for SendGridEvents
where
    S: Send + Sync,
    Arc<EventWebhookVerifier>: FromRef<S>,
{
    type Rejection = WebhookRejection;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let Verified(events) = Verified::<EventWebhookVerifier>::from_request(req, state).await?;
        Ok(SendGridEvents(events))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::webhook::{EventType, EventWebhookSigner};
    use axum::body::Body;
    use axum::http::StatusCode;
    use axum::response::IntoResponse;
    use integrations_core::clock::FixedClock;
    use integrations_core::{Error, ErrorKind, SignatureFailure};

    const T: i64 = 1_700_000_000;
    const BODY: &[u8] = br#"[{"email":"a@example.com","timestamp":1700000000,"event":"delivered","sg_event_id":"ZXZ0","sg_message_id":"MSGID.filter-1.0","order_id":"42"}]"#;

    fn request(headers: &http::HeaderMap, body: &'static [u8]) -> Request {
        let mut req = Request::builder()
            .method("POST")
            .uri("/webhooks/sendgrid")
            .body(Body::from(body))
            .unwrap();
        req.headers_mut().extend(headers.clone());
        req
    }

    fn verifier(signer: &EventWebhookSigner) -> EventWebhookVerifier {
        signer.verifier().with_clock(FixedClock::from_unix(T + 5))
    }

    #[tokio::test]
    async fn verified_batches_are_extracted() {
        let signer = EventWebhookSigner::generate();
        let signed = signer.sign_for_test(T, BODY);
        let state = Arc::new(verifier(&signer));
        let Ok(SendGridEvents(events)) =
            SendGridEvents::from_request(request(&signed.headers(), BODY), &state).await
        else {
            panic!("a signed batch was refused");
        };
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].event_type(), EventType::Delivered);
        assert_eq!(events[0].custom_arg("order_id"), Some("42"));
    }

    #[tokio::test]
    async fn forged_altered_and_stale_requests_are_refused() {
        let signer = EventWebhookSigner::generate();
        let state = Arc::new(verifier(&signer));

        let other = EventWebhookSigner::generate().sign_for_test(T, BODY);
        let e = SendGridEvents::from_request(request(&other.headers(), BODY), &state)
            .await
            .unwrap_err();
        assert_eq!(e.status(), StatusCode::BAD_REQUEST);
        assert_eq!(e.error().kind(), ErrorKind::InvalidSignature);

        let signed = signer.sign_for_test(T, BODY);
        let altered: &[u8] = br#"[{"email":"b@example.com","timestamp":1700000000,"event":"delivered","sg_event_id":"ZXZ0","sg_message_id":"MSGID.filter-1.0","order_id":"42"}]"#;
        let e = SendGridEvents::from_request(request(&signed.headers(), altered), &state)
            .await
            .unwrap_err();
        assert_eq!(e.status(), StatusCode::BAD_REQUEST);

        let stale = signer.sign_for_test(T - 3600, BODY);
        let e = SendGridEvents::from_request(request(&stale.headers(), BODY), &state)
            .await
            .unwrap_err();
        assert!(matches!(
            e.error(),
            Error::InvalidSignature {
                reason: SignatureFailure::TimestampOutsideTolerance { .. },
                ..
            }
        ));

        let e = SendGridEvents::from_request(request(&http::HeaderMap::new(), BODY), &state)
            .await
            .unwrap_err();
        assert_eq!(e.status(), StatusCode::BAD_REQUEST);
        let response = e.into_response();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    }

    #[tokio::test]
    async fn bodies_over_the_limit_are_413() {
        let signer = EventWebhookSigner::generate();
        let signed = signer.sign_for_test(T, BODY);
        let state = Arc::new(verifier(&signer).with_body_limit(16));
        let e = SendGridEvents::from_request(request(&signed.headers(), BODY), &state)
            .await
            .unwrap_err();
        assert_eq!(e.status(), StatusCode::PAYLOAD_TOO_LARGE);
        assert!(format!("{e}").contains("413"), "{e}");
    }
}
