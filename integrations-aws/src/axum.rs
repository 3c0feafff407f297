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

use std::fmt;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{FromRef, FromRequest, Request};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use integrations_core::{Error, ErrorKind, SignatureFailure};

use crate::config::Service;
use crate::sns::{SnsMessage, SnsMessageVerifier};

/// A verified inbound SNS message.
#[derive(Debug, Clone)]
pub struct VerifiedSnsMessage(pub SnsMessage);

impl<S> FromRequest<S> for VerifiedSnsMessage
where
    S: Send + Sync,
    Arc<SnsMessageVerifier>: FromRef<S>,
{
    type Rejection = WebhookRejection;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let verifier = <Arc<SnsMessageVerifier>>::from_ref(state);
        let body = Bytes::from_request(req, state).await.map_err(|e| {
            let status = e.status();
            WebhookRejection {
                status,
                error: Error::invalid_input("body", e.body_text())
                    .with_provider(Service::Sns.provider_name()),
            }
        })?;
        verifier
            .verify(&body)
            .await
            .map(VerifiedSnsMessage)
            .map_err(WebhookRejection::from)
    }
}

/// Why [`VerifiedSnsMessage`] refused a request: the core [`Error`] and the HTTP status answered.
///
/// | error | status |
/// |---|---|
/// | body over the verifier's limit, or axum's | 413 |
/// | not an SNS message, unsupported `SignatureVersion`, untrusted `SigningCertURL`, no match, too old | 400 |
/// | the signing certificate could not be fetched | 503 (SNS retries) |
/// | anything else | 500 |
pub struct WebhookRejection {
    status: StatusCode,
    error: Error,
}

impl WebhookRejection {
    /// The status the rejection answers with.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// Why the request was refused.
    pub fn error(&self) -> &Error {
        &self.error
    }

    /// The error, for handlers that answer in their own format.
    pub fn into_error(self) -> Error {
        self.error
    }
}

impl From<Error> for WebhookRejection {
    fn from(error: Error) -> Self {
        let status = match &error {
            Error::InvalidSignature {
                reason: SignatureFailure::BodyTooLarge { .. },
                ..
            } => StatusCode::PAYLOAD_TOO_LARGE,
            e => match e.kind() {
                ErrorKind::InvalidSignature | ErrorKind::InvalidInput => StatusCode::BAD_REQUEST,
                ErrorKind::Unavailable | ErrorKind::Timeout | ErrorKind::RateLimited => {
                    StatusCode::SERVICE_UNAVAILABLE
                }
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            },
        };
        WebhookRejection { status, error }
    }
}

impl fmt::Debug for WebhookRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookRejection")
            .field("status", &self.status)
            .field("error", &self.error)
            .finish()
    }
}

impl fmt::Display for WebhookRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.status, self.error)
    }
}

impl std::error::Error for WebhookRejection {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}

impl IntoResponse for WebhookRejection {
    fn into_response(self) -> Response {
        tracing::warn!(status = %self.status, error = %self.error, "SNS message refused");
        (self.status, self.error.to_string()).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_by_error() {
        let too_large =
            Error::invalid_signature(SignatureFailure::BodyTooLarge { size: 2, limit: 1 });
        assert_eq!(
            WebhookRejection::from(too_large).status(),
            StatusCode::PAYLOAD_TOO_LARGE
        );
        let no_match = WebhookRejection::from(Error::invalid_signature(SignatureFailure::NoMatch));
        assert_eq!(no_match.status(), StatusCode::BAD_REQUEST);
        assert!(no_match.to_string().starts_with("400"), "{no_match}");
        assert_eq!(
            WebhookRejection::from(Error::unavailable("cert fetch")).status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        let other = WebhookRejection::from(Error::provider("x"));
        assert_eq!(other.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(other.into_error().kind(), ErrorKind::Provider);
    }
}
