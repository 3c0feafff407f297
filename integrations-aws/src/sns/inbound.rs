//! Handling what SNS POSTs to an HTTP(S) subscriber: verify, then confirm subscriptions to the
//! topics you expect.

use std::collections::BTreeSet;

use integrations_core::Result;

use super::{SnsClient, SnsMessage, SnsMessageType, SnsMessageVerifier};

/// What a verified inbound message was.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SnsInbound {
    /// A notification: process it (deduplicate on `message_id`: SNS delivers at least once).
    Notification(SnsMessage),
    /// A subscription confirmation that was confirmed through `ConfirmSubscription`.
    SubscriptionConfirmed {
        /// The topic.
        topic_arn: String,
        /// The confirmed subscription.
        subscription_arn: String,
    },
    /// The endpoint was unsubscribed.
    Unsubscribed(SnsMessage),
}

/// Verifies inbound SNS messages and confirms subscriptions, but only to the allowed topics
/// (anyone can subscribe your endpoint to *their* topic; confirming it would let them feed you
/// messages). `client` must be configured for the topics' region.
#[derive(Debug)]
pub struct SnsInboundHandler {
    verifier: SnsMessageVerifier,
    client: SnsClient,
    topics: BTreeSet<String>,
}

impl SnsInboundHandler {
    /// Accepts messages of `topics` only.
    pub fn new(
        verifier: SnsMessageVerifier,
        client: SnsClient,
        topics: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        SnsInboundHandler {
            verifier,
            client,
            topics: topics.into_iter().map(Into::into).collect(),
        }
    }

    /// Verifies `body`; confirms a subscription confirmation; returns what it was.
    ///
    /// # Errors
    /// [`Error::InvalidSignature`](integrations_core::Error::InvalidSignature) for a message that
    /// does not verify; [`Error::Forbidden`](integrations_core::Error::Forbidden) for a topic that
    /// is not allowed (checked before any certificate is fetched); the errors of
    /// [`SnsClient::confirm_subscription`].
    pub async fn handle(&self, body: &[u8]) -> Result<SnsInbound> {
        // The topic first, before a certificate is fetched: a message of a topic we do not
        // accept costs no request, whatever its signature.
        let unverified = self.verifier.parse(body)?;
        super::verify::check_topic(&self.topics, &unverified.topic_arn)?;
        let msg = self.verifier.verify(body).await?;
        super::verify::check_topic(&self.topics, &msg.topic_arn)?;
        match msg.kind {
            SnsMessageType::Notification => Ok(SnsInbound::Notification(msg)),
            SnsMessageType::UnsubscribeConfirmation => Ok(SnsInbound::Unsubscribed(msg)),
            SnsMessageType::SubscriptionConfirmation => {
                let token = msg.token.as_deref().unwrap_or_default();
                let subscription_arn = self
                    .client
                    .confirm_subscription(&msg.topic_arn, token)
                    .await?;
                Ok(SnsInbound::SubscriptionConfirmed {
                    topic_arn: msg.topic_arn,
                    subscription_arn,
                })
            }
        }
    }
}
