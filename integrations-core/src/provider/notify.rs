//! [`Notifier`]: publish a notification (Amazon SNS, a test double, your own).

use std::collections::BTreeMap;
use std::fmt;

use async_trait::async_trait;

use crate::{Error, Result};

/// A notification. Build with [`Notification::new`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct Notification {
    /// Subject (SNS limits it to 100 printable ASCII characters).
    pub subject: Option<String>,
    /// Body.
    pub body: String,
    /// String attributes for subscription filtering.
    pub attributes: BTreeMap<String, String>,
    /// Deduplication id: a provider that supports it (SNS FIFO) drops a second publish with it.
    pub dedup_id: Option<String>,
    /// Ordering group (SNS FIFO `MessageGroupId`).
    pub group_id: Option<String>,
}

impl Notification {
    /// A notification with `body`.
    pub fn new(body: impl Into<String>) -> Self {
        Notification {
            subject: None,
            body: body.into(),
            attributes: BTreeMap::new(),
            dedup_id: None,
            group_id: None,
        }
    }
    /// Sets the subject.
    #[must_use]
    pub fn subject(mut self, s: impl Into<String>) -> Self {
        self.subject = Some(s.into());
        self
    }
    /// Adds an attribute.
    #[must_use]
    pub fn attribute(mut self, k: impl Into<String>, v: impl Into<String>) -> Self {
        self.attributes.insert(k.into(), v.into());
        self
    }
    /// Sets the dedup id (use the outbox job's idempotency key).
    #[must_use]
    pub fn dedup_id(mut self, id: impl Into<String>) -> Self {
        self.dedup_id = Some(id.into());
        self
    }
    /// Sets the ordering group.
    #[must_use]
    pub fn group_id(mut self, id: impl Into<String>) -> Self {
        self.group_id = Some(id.into());
        self
    }
    /// Provider-independent checks.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] naming `body` when empty or `subject` when empty.
    pub fn validate(&self) -> Result<()> {
        if self.body.is_empty() {
            return Err(Error::invalid_input("body", "must not be empty"));
        }
        if self.subject.as_deref().is_some_and(str::is_empty) {
            return Err(Error::invalid_input(
                "subject",
                "must not be empty when set",
            ));
        }
        Ok(())
    }
}

/// What a notifier returns.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct Published {
    /// Which provider published it.
    pub provider: String,
    /// The provider's message id.
    pub message_id: String,
}

impl Published {
    /// A receipt.
    pub fn new(provider: impl Into<String>, message_id: impl Into<String>) -> Self {
        Published {
            provider: provider.into(),
            message_id: message_id.into(),
        }
    }
}

/// A notification publisher.
#[async_trait]
pub trait Notifier: Send + Sync + fmt::Debug {
    /// Provider name (`"sns"`).
    fn name(&self) -> &str;

    /// Publishes one notification.
    async fn publish(&self, notification: &Notification) -> Result<Published>;
}
