//! The rejection the provider crates' axum webhook extractors answer with (feature `axum`).

use std::fmt;

use axum::extract::rejection::BytesRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::{Error, ErrorKind, SignatureFailure};

/// Why a webhook extractor refused a request: the core [`Error`] and the HTTP status answered.
///
/// | error | status |
/// |---|---|
/// | body over the verifier's limit, or over axum's | 413 |
/// | bad or missing signature headers, no matching signature, stale timestamp, a body that is not what the provider sends | 400 |
/// | something the verifier needed was unavailable (e.g. a signing certificate that could not be fetched) | 503, so the provider redelivers |
/// | anything else | 500 |
///
/// Only a request that can never succeed gets a 4xx: providers such as SNS stop redelivering on
/// a 4xx and keep trying on a 5xx. The response body is the error's `Display`, which never holds a secret; the refusal is logged
/// at `warn` with the provider's name.
pub struct WebhookRejection {
    status: StatusCode,
    error: Error,
}

impl WebhookRejection {
    /// A rejection answering `status`.
    pub fn new(status: StatusCode, error: Error) -> Self {
        WebhookRejection { status, error }
    }

    /// A body axum could not read (too large, not UTF-8, …), for `provider`'s webhook: axum's
    /// status, with the reason as an invalid-input error on `body`.
    pub fn body(rejection: &BytesRejection, provider: &'static str) -> Self {
        WebhookRejection::new(
            rejection.status(),
            Error::invalid_input("body", rejection.body_text()).with_provider(provider),
        )
    }

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
        tracing::warn!(
            provider = self.error.provider_name().unwrap_or("unknown"),
            status = %self.status,
            error = %self.error,
            "webhook refused"
        );
        (self.status, self.error.to_string()).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_by_error() {
        let status = |e: Error| WebhookRejection::from(e).status();
        assert_eq!(
            status(Error::invalid_signature(SignatureFailure::BodyTooLarge {
                size: 11,
                limit: 10
            })),
            StatusCode::PAYLOAD_TOO_LARGE
        );
        assert_eq!(
            status(Error::invalid_signature(SignatureFailure::NoMatch)),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            status(Error::invalid_input("body", "not JSON")),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            status(Error::unavailable("certificate fetch failed")),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(
            status(Error::configuration("secret", "empty")),
            StatusCode::INTERNAL_SERVER_ERROR
        );
    }

    #[tokio::test]
    async fn the_response_says_why_without_more() {
        let r = WebhookRejection::from(
            Error::invalid_signature(SignatureFailure::NoMatch).with_provider("sendgrid"),
        );
        let text = r.to_string();
        let resp = r.into_response();
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
        let body = axum::body::to_bytes(resp.into_body(), 1024).await.unwrap();
        assert!(
            text.ends_with(std::str::from_utf8(&body).unwrap()),
            "{text}"
        );
    }
}
