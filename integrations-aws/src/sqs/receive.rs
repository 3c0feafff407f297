//! SQS receive options and received messages.

use std::collections::BTreeMap;
use std::time::Duration;

use integrations_core::{Error, Result};
use serde_json::{Value, json};

use super::{MAX_WAIT, string_map};
use crate::config::Service;

/// Options of a receive.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReceiveOptions {
    /// 1–10 (default 10).
    pub max_messages: u8,
    /// Long-poll wait, at most 20 s (default 20 s).
    pub wait: Duration,
    /// Visibility timeout of the received messages (default: the queue's).
    pub visibility_timeout: Option<Duration>,
}

impl Default for ReceiveOptions {
    fn default() -> Self {
        ReceiveOptions {
            max_messages: 10,
            wait: MAX_WAIT,
            visibility_timeout: None,
        }
    }
}

impl ReceiveOptions {
    /// Up to 10 messages, waiting up to 20 s.
    pub fn new() -> Self {
        Self::default()
    }
    /// Sets the maximum number of messages.
    #[must_use]
    pub fn max_messages(mut self, n: u8) -> Self {
        self.max_messages = n;
        self
    }
    /// Sets the long-poll wait.
    #[must_use]
    pub fn wait(mut self, d: Duration) -> Self {
        self.wait = d;
        self
    }
    /// Sets the visibility timeout.
    #[must_use]
    pub fn visibility_timeout(mut self, d: Duration) -> Self {
        self.visibility_timeout = Some(d);
        self
    }

    pub(crate) fn to_json(&self, queue_url: &str) -> Result<Value> {
        if !(1..=10).contains(&self.max_messages) {
            return Err(Error::invalid_input(
                "max_messages",
                "must be between 1 and 10",
            ));
        }
        if self.wait > MAX_WAIT {
            return Err(Error::invalid_input("wait", "at most 20 seconds"));
        }
        let mut v = json!({
            "QueueUrl": queue_url,
            "MaxNumberOfMessages": self.max_messages,
            "WaitTimeSeconds": self.wait.as_secs(),
            "MessageAttributeNames": ["All"],
            "MessageSystemAttributeNames": ["All"],
            "AttributeNames": ["All"],
        });
        if let Some(t) = self.visibility_timeout {
            v["VisibilityTimeout"] = json!(t.as_secs());
        }
        Ok(v)
    }
}

/// A received message.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReceivedMessage {
    /// SQS's id.
    pub message_id: String,
    /// Handle for delete / change visibility (valid for this receive only).
    pub receipt_handle: String,
    /// Body.
    pub body: String,
    /// String message attributes.
    pub attributes: BTreeMap<String, String>,
    /// System attributes (`SentTimestamp`, `MessageGroupId`, …).
    pub system_attributes: BTreeMap<String, String>,
    /// How many times it was received (1 on the first receive).
    pub receive_count: u32,
}

impl ReceivedMessage {
    /// The sender's trace context: the `traceparent` message attribute, when present and
    /// well-formed (a malformed one is dropped with a warning). Link the span that processes the
    /// message to it (`integrations_core::telemetry::link_to`, feature `opentelemetry`), or pass
    /// it on with `NewJob::with_traceparent`.
    pub fn traceparent(&self) -> Option<integrations_core::telemetry::TraceParent> {
        let raw = self
            .attributes
            .get(integrations_core::telemetry::TRACEPARENT)?;
        integrations_core::telemetry::TraceParent::parse_or_warn(raw, "SQS message")
    }

    pub(crate) fn from_json(v: &Value) -> Result<Self> {
        let s = |k: &str| {
            v.get(k)
                .and_then(Value::as_str)
                .map(str::to_owned)
                .ok_or_else(|| {
                    Error::provider(format!("ReceiveMessage: a message has no {k}"))
                        .with_provider(Service::Sqs.provider_name())
                })
        };
        let system_attributes = string_map(v.get("Attributes"));
        let attributes = v
            .get("MessageAttributes")
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .filter_map(|(k, a)| {
                        a.get("StringValue")
                            .and_then(Value::as_str)
                            .map(|s| (k.clone(), s.to_owned()))
                    })
                    .collect()
            })
            .unwrap_or_default();
        Ok(ReceivedMessage {
            message_id: s("MessageId")?,
            receipt_handle: s("ReceiptHandle")?,
            body: s("Body")?,
            receive_count: system_attributes
                .get("ApproximateReceiveCount")
                .and_then(|c| c.parse().ok())
                .unwrap_or(1),
            attributes,
            system_attributes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn receive_options_checks_and_message_parsing() {
        assert!(ReceiveOptions::new().max_messages(0).to_json("q").is_err());
        assert!(
            ReceiveOptions::new()
                .wait(Duration::from_secs(21))
                .to_json("q")
                .is_err()
        );
        let m = ReceivedMessage::from_json(&json!({
            "MessageId": "m", "ReceiptHandle": "r", "Body": "b",
            "Attributes": {"ApproximateReceiveCount": "3"},
            "MessageAttributes": {"k": {"DataType": "String", "StringValue": "v"}},
        }))
        .unwrap();
        assert_eq!(m.receive_count, 3);
        assert_eq!(m.attributes["k"], "v");
        assert!(ReceivedMessage::from_json(&json!({"MessageId": "m"})).is_err());
    }
}
