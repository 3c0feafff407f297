//! An [axum](https://docs.rs/axum) extractor for messages SNS POSTs to an HTTP(S) subscriber
//! (feature `axum`).
//!
//! [`VerifiedSnsMessage`] reads the raw request body (SNS sends JSON as `text/plain`), verifies
//! it with the [`SnsMessageVerifier`] it finds in the router's state through [`FromRef`] (an
//! `Arc`, so the verifier's certificate cache is shared by every request), and hands the handler
//! the verified [`SnsMessage`]. A message that does not verify never reaches the handler: the
//! extractor answers with a [`WebhookRejection`] — 400 for a bad signature or untrusted
//! certificate URL, 413 for a body over the limit, 503 when the signing certificate cannot be
//! fetched (SNS then redelivers).
//!
//! The extractor only verifies. Deduplicate notifications on `MessageId` (SNS delivers at least
//! once) and confirm subscriptions only for topics you expect
//! ([`SnsInboundHandler`](crate::sns::SnsInboundHandler) does both checks for you).
//!
//! ```
//! use std::sync::Arc;
//! use axum::extract::FromRef;
//! use axum::routing::post;
//! use axum::Router;
//! use integrations_aws::axum::VerifiedSnsMessage;
//! use integrations_aws::sns::{SnsMessageType, SnsMessageVerifier};
//!
//! #[derive(Clone)]
//! struct AppState {
//!     sns: Arc<SnsMessageVerifier>,
//! }
//!
//! impl FromRef<AppState> for Arc<SnsMessageVerifier> {
//!     fn from_ref(state: &AppState) -> Self {
//!         Arc::clone(&state.sns)
//!     }
//! }
//!
//! async fn sns(VerifiedSnsMessage(msg): VerifiedSnsMessage) -> &'static str {
//!     if msg.kind == SnsMessageType::Notification {
//!         tracing::info!(id = %msg.message_id, topic = %msg.topic_arn, "notification");
//!     }
//!     "ok"
//! }
//!
//! let app: Router = Router::new()
//!     .route("/webhooks/sns", post(sns))
//!     .with_state(AppState { sns: Arc::new(SnsMessageVerifier::new()) });
//! # let _ = app;
//! ```

use std::sync::Arc;

use axum::extract::{FromRef, FromRequest, Request};
use integrations_core::webhook::Verified;
pub use integrations_core::webhook::WebhookRejection;

use crate::sns::{SnsMessage, SnsMessageVerifier};

/// A verified SNS message: `VerifiedSnsMessage(message)` in a handler's arguments. Core's
/// [`Verified<SnsMessageVerifier>`](Verified) does the work; this names it.
#[derive(Debug, Clone)]
pub struct VerifiedSnsMessage(pub SnsMessage);

impl<S> FromRequest<S> for VerifiedSnsMessage
where
    S: Send + Sync,
    Arc<SnsMessageVerifier>: FromRef<S>,
{
    type Rejection = WebhookRejection;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let Verified(message) = Verified::<SnsMessageVerifier>::from_request(req, state).await?;
        Ok(VerifiedSnsMessage(message))
    }
}
