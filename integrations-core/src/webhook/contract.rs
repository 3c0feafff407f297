//! The one webhook contract every provider's verifier implements.
//!
//! Raw body and headers in, a typed verified event out, nothing parsed before the signature
//! holds. Each verifier also follows the same builder conventions (not part of the trait,
//! because they construct it): several secrets or keys for rotation, `with_clock`,
//! `with_tolerance`, `with_body_limit`; and each provider crate offers a way to sign requests
//! for users' own tests ([`WebhookSigner`] where the verifier holds the signing secret).
//!
//! | provider | verifier | [`WebhookVerifier::Event`] |
//! |---|---|---|
//! | Standard Webhooks | [`StandardWebhook`](super::StandardWebhook) | [`StandardEvent`] |
//! | Stripe | `integrations_stripe::webhook::StripeWebhookVerifier` | one `Event`, its object parsed only when asked for |
//! | SendGrid | `integrations_sendgrid::webhook::EventWebhookVerifier` | the batch of events |
//! | Amazon SNS | `integrations_aws::sns::SnsMessageVerifier` | the verified message |
//!
//! With feature `axum`, [`Verified<V>`](super::Verified) extracts `V::Event` from a request for
//! any verifier `V` found in the router's state as `Arc<V>`.

use std::fmt;
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::Bytes;
use http::HeaderMap;

use crate::Result;

/// Verifies one webhook request from its raw body and headers.
///
/// ```
/// use integrations_core::webhook::{StandardWebhook, WebhookSigner, WebhookVerifier};
/// use integrations_core::clock::{FixedClock, from_unix_seconds};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let wh = StandardWebhook::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")?
///     .with_clock(FixedClock::from_unix(1_700_000_010));
/// let body = br#"{"type":"order.paid"}"#;
/// let headers = wh.sign_for_test(body, from_unix_seconds(1_700_000_000));
/// let event = wh.verify_request(&headers, body).await?;
/// assert_eq!(event.payload(), &body[..]);
/// # Ok::<(), integrations_core::Error>(())
/// # }).unwrap();
/// ```
#[async_trait]
pub trait WebhookVerifier: Send + Sync + fmt::Debug + 'static {
    /// What a verified request yields.
    type Event: Send + 'static;

    /// The provider's name: what errors carry, and the namespace of dedup keys
    /// (`"{provider}:{event id}"`).
    fn provider(&self) -> &'static str;

    /// Verifies `body` against `headers` (size limit, signature, timestamp tolerance), then
    /// parses what the handler needs.
    ///
    /// # Errors
    /// [`Error::InvalidSignature`](crate::Error::InvalidSignature) naming what failed, or
    /// [`Error::InvalidInput`](crate::Error::InvalidInput) for a signed body that is not what
    /// the provider sends; [`Error::Unavailable`](crate::Error::Unavailable) when something the
    /// verifier needed could not be fetched (answer 5xx, the provider redelivers).
    async fn verify_request(&self, headers: &HeaderMap, body: &[u8]) -> Result<Self::Event>;
}

/// Signs a request as the provider would, for users' tests of their own handlers.
pub trait WebhookSigner {
    /// The headers the provider would send with `body` at `timestamp`.
    fn sign_for_test(&self, body: &[u8], timestamp: SystemTime) -> HeaderMap;
}

/// A verified [Standard Webhooks](https://www.standardwebhooks.com/) request.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct StandardEvent {
    /// `webhook-id`: the same across redeliveries; dedup on it.
    pub id: String,
    /// `webhook-timestamp`, unix seconds.
    pub timestamp: i64,
    /// The signed body, unparsed (Standard Webhooks says nothing of its shape).
    pub payload: Bytes,
}

impl StandardEvent {
    /// The body.
    pub fn payload(&self) -> &[u8] {
        &self.payload
    }

    /// The body parsed as JSON into `T`.
    ///
    /// # Errors
    /// [`Error::InvalidInput`](crate::Error::InvalidInput) on `body` when it does not parse.
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T> {
        serde_json::from_slice(&self.payload)
            .map_err(|e| crate::Error::invalid_input("body", e.to_string()))
    }
}
