//! Core's [`Notifier`] on an SNS topic.

use async_trait::async_trait;
use integrations_core::provider::Published;
use integrations_core::{Notification, Notifier, Result};

use super::SnsClient;
use crate::config::AwsConfig;

/// Publishes notifications to one SNS topic.
///
/// Subject and string attributes are sent as given; on a FIFO topic (ARN ending `.fifo`) the
/// notification's `group_id` is required and its `dedup_id` becomes the
/// `MessageDeduplicationId`, so a redelivered outbox job publishes once. Standard topics do not
/// deduplicate: the ids are not sent to them.
#[derive(Debug, Clone)]
pub struct SnsNotifier {
    sns: SnsClient,
    topic_arn: String,
}

impl SnsNotifier {
    /// A notifier publishing to `topic_arn`.
    pub fn new(config: &AwsConfig, topic_arn: impl Into<String>) -> Self {
        SnsNotifier {
            sns: SnsClient::new(config),
            topic_arn: topic_arn.into(),
        }
    }
    /// The topic.
    pub fn topic_arn(&self) -> &str {
        &self.topic_arn
    }
    /// The underlying client.
    pub fn client(&self) -> &SnsClient {
        &self.sns
    }
}

#[async_trait]
impl Notifier for SnsNotifier {
    fn name(&self) -> &str {
        "sns"
    }

    async fn publish(&self, notification: &Notification) -> Result<Published> {
        let id = self.sns.publish(&self.topic_arn, notification).await?;
        Ok(Published::new(self.name(), id))
    }
}
