//! The axum side of the webhook contract (feature `axum`): [`Verified<V>`] extracts a verified
//! event for any [`WebhookVerifier`], and [`WebhookRejection`] is the answer when it cannot.

use std::fmt;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{FromRef, FromRequest, Request};

use super::contract::WebhookVerifier;

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

/// An axum extractor: the request's raw body verified by the `V` found in the router's state
/// (as `Arc<V>`, through [`FromRef`]), then parsed into `V::Event`. Refused requests are
/// answered with a [`WebhookRejection`] (4xx only for what can never succeed, 503 for what
/// might on redelivery).
///
/// Each provider crate names its own: `integrations_stripe::axum::StripeEvent`,
/// `integrations_sendgrid::axum::SendGridEvents`, `integrations_aws::axum::VerifiedSnsMessage`;
/// [`StandardWebhookEvent`] serves Standard Webhooks.
///
/// ```
/// use std::sync::Arc;
/// use axum::{Router, routing::post};
/// use integrations_core::webhook::{StandardEvent, StandardWebhook, Verified};
///
/// async fn handle(Verified(event): Verified<StandardWebhook>) -> &'static str {
///     let _: StandardEvent = event; // signature, timestamp and size already checked
///     "ok"
/// }
///
/// # fn main() -> integrations_core::Result<()> {
/// let verifier = Arc::new(StandardWebhook::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")?);
/// let app: Router = Router::new().route("/webhooks", post(handle)).with_state(verifier);
/// # let _ = app; Ok(()) }
/// ```
pub struct Verified<V: WebhookVerifier>(pub V::Event);

/// [`Verified`] for Standard Webhooks.
pub type StandardWebhookEvent = Verified<super::StandardWebhook>;

impl<V: WebhookVerifier> fmt::Debug for Verified<V>
where
    V::Event: fmt::Debug,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Verified").field(&self.0).finish()
    }
}

impl<S, V> FromRequest<S> for Verified<V>
where
    S: Send + Sync,
    V: WebhookVerifier,
    Arc<V>: FromRef<S>,
{
    type Rejection = WebhookRejection;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let verifier = <Arc<V>>::from_ref(state);
        let headers = req.headers().clone();
        let body = Bytes::from_request(req, state)
            .await
            .map_err(|e| WebhookRejection::body(&e, verifier.provider()))?;
        verifier
            .verify_request(&headers, &body)
            .await
            .map(Verified)
            .map_err(|e| WebhookRejection::from(e.or_provider(verifier.provider())))
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

    #[tokio::test]
    async fn verified_extracts_standard_webhooks_and_refuses_forgeries() {
        use crate::clock::{FixedClock, from_unix_seconds};
        use crate::webhook::{StandardWebhook, WebhookSigner};

        const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let verifier = Arc::new(
            StandardWebhook::new(SECRET)
                .unwrap()
                .with_clock(FixedClock::from_unix(1_700_000_005)),
        );
        let body: &'static [u8] = br#"{"type":"order.paid"}"#;
        let request = |headers: http::HeaderMap| {
            let mut req = Request::builder()
                .method("POST")
                .uri("/webhooks")
                .body(axum::body::Body::from(body))
                .unwrap();
            *req.headers_mut() = headers;
            req
        };
        let signed = verifier.sign_for_test(body, from_unix_seconds(1_700_000_000));
        let Verified(event) =
            Verified::<StandardWebhook>::from_request(request(signed.clone()), &verifier)
                .await
                .unwrap();
        assert_eq!(event.payload(), body);
        assert_eq!(event.timestamp, 1_700_000_000);
        assert!(event.id.starts_with("msg_"));

        let forged = StandardWebhook::new("whsec_dGhpcyBpcyBhbm90aGVyIHNlY3JldA==")
            .unwrap()
            .sign_for_test(body, from_unix_seconds(1_700_000_000));
        let e = Verified::<StandardWebhook>::from_request(request(forged), &verifier)
            .await
            .unwrap_err();
        assert_eq!(e.status(), StatusCode::BAD_REQUEST);
        assert_eq!(e.error().provider_name(), Some("standard-webhooks"));

        let stale = verifier.sign_for_test(body, from_unix_seconds(1_699_990_000));
        let e = Verified::<StandardWebhook>::from_request(request(stale), &verifier)
            .await
            .unwrap_err();
        assert_eq!(e.status(), StatusCode::BAD_REQUEST);
    }
}
