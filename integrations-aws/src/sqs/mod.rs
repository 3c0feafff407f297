//! Amazon SQS (feature `sqs`, JSON protocol): send (single and batched), long-poll receive,
//! delete, change visibility, and queues with a dead-letter queue.

mod receive;
mod types;

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::time::Duration;

use integrations_core::{Error, Result};
use serde_json::{Value, json};

use crate::client::AwsClient;
use crate::config::{AwsConfig, Service};

pub use receive::{ReceiveOptions, ReceivedMessage};
use types::batches;
pub use types::{BatchFailure, BatchOutcome, QueueWithDlq, SendEntry, SendOptions};

const CONTENT_TYPE: &str = "application/x-amz-json-1.0";
/// Largest message (and batch) SQS accepts everywhere, in bytes.
pub const MAX_MESSAGE_BYTES: usize = 256 * 1024;
/// Most entries in one `SendMessageBatch`.
pub const MAX_BATCH_ENTRIES: usize = 10;
/// Longest long-poll wait.
pub const MAX_WAIT: Duration = Duration::from_secs(20);

/// A signed SQS client (`X-Amz-Target: AmazonSQS.<Op>`).
#[derive(Debug, Clone)]
pub struct SqsClient {
    client: AwsClient,
}

impl SqsClient {
    /// A client for `config`'s region, credentials and SQS endpoint.
    pub fn new(config: &AwsConfig) -> Self {
        SqsClient {
            client: AwsClient::new(config, Service::Sqs),
        }
    }

    async fn call(&self, operation: &'static str, body: &Value) -> Result<Value> {
        self.client
            .json(
                operation,
                CONTENT_TYPE,
                format!("AmazonSQS.{operation}"),
                body,
            )
            .await
    }

    /// Creates a queue (idempotent for identical attributes) and returns its URL. A FIFO queue's
    /// name must end in `.fifo` and include `("FifoQueue", "true")`.
    ///
    /// # Errors
    /// [`Error::Conflict`] when it exists with other attributes; see [`SqsClient::send`].
    pub async fn create_queue(&self, name: &str, attributes: &[(&str, &str)]) -> Result<String> {
        let attrs: BTreeMap<&str, &str> = attributes.iter().copied().collect();
        let mut body = json!({ "QueueName": name });
        if !attrs.is_empty() {
            body["Attributes"] = json!(attrs);
        }
        let r = self.call("CreateQueue", &body).await?;
        string_field(&r, "QueueUrl", "CreateQueue")
    }

    /// The queue's attributes (`All`).
    ///
    /// # Errors
    /// [`Error::NotFound`] for an unknown queue; see [`SqsClient::send`].
    pub async fn queue_attributes(&self, queue_url: &str) -> Result<BTreeMap<String, String>> {
        let r = self
            .call(
                "GetQueueAttributes",
                &json!({ "QueueUrl": queue_url, "AttributeNames": ["All"] }),
            )
            .await?;
        Ok(string_map(r.get("Attributes")))
    }

    /// Creates `name` and its dead-letter queue `<name>-dlq` (`<base>-dlq.fifo` for FIFO), with
    /// a redrive policy moving a message to the DLQ after `max_receive_count` receives. The DLQ
    /// keeps messages for 14 days, the most SQS allows.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for `max_receive_count` outside 1–1000; see
    /// [`SqsClient::create_queue`].
    pub async fn create_queue_with_dlq(
        &self,
        name: &str,
        max_receive_count: u32,
        attributes: &[(&str, &str)],
    ) -> Result<QueueWithDlq> {
        if !(1..=1000).contains(&max_receive_count) {
            return Err(Error::invalid_input(
                "max_receive_count",
                "must be between 1 and 1000",
            ));
        }
        let fifo = name.ends_with(".fifo");
        let dlq_name = match name.strip_suffix(".fifo") {
            Some(base) => format!("{base}-dlq.fifo"),
            None => format!("{name}-dlq"),
        };
        let mut dlq_attrs = vec![("MessageRetentionPeriod", "1209600")];
        if fifo {
            dlq_attrs.push(("FifoQueue", "true"));
        }
        let dlq_url = self.create_queue(&dlq_name, &dlq_attrs).await?;
        let dlq_arn = self.arn(&dlq_url).await?;
        let redrive = json!({ "deadLetterTargetArn": dlq_arn, "maxReceiveCount": max_receive_count.to_string() }).to_string();
        let mut attrs: Vec<(&str, &str)> = attributes
            .iter()
            .copied()
            .filter(|(k, _)| *k != "RedrivePolicy")
            .collect();
        attrs.push(("RedrivePolicy", &redrive));
        let queue_url = self.create_queue(name, &attrs).await?;
        let queue_arn = self.arn(&queue_url).await?;
        Ok(QueueWithDlq {
            queue_url,
            queue_arn,
            dlq_url,
            dlq_arn,
        })
    }

    async fn arn(&self, queue_url: &str) -> Result<String> {
        self.queue_attributes(queue_url)
            .await?
            .remove("QueueArn")
            .ok_or_else(|| {
                Error::provider("GetQueueAttributes returned no QueueArn")
                    .with_provider(Service::Sqs.provider_name())
            })
    }

    /// Deletes a queue.
    ///
    /// # Errors
    /// See [`SqsClient::send`].
    pub async fn delete_queue(&self, queue_url: &str) -> Result<()> {
        self.call("DeleteQueue", &json!({ "QueueUrl": queue_url }))
            .await
            .map(drop)
    }

    /// Sends one message and returns its message id.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for an empty or oversized body, a delay over 15 minutes, or a FIFO
    /// queue without a group id; the mapped AWS error; transport and policy errors.
    pub async fn send(&self, queue_url: &str, body: &str, options: &SendOptions) -> Result<String> {
        let mut req = options.traced(body).to_json(queue_url, body, None)?;
        req["QueueUrl"] = json!(queue_url);
        let r = self.call("SendMessage", &req).await?;
        string_field(&r, "MessageId", "SendMessage")
    }

    /// Sends `entries` in as few `SendMessageBatch` calls as the limits allow (10 entries and
    /// 256 KiB per call). Entry ids must be unique; per-entry failures are reported, not raised.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for duplicate or invalid entry ids or an invalid entry; the first
    /// call-level error (earlier batches stay sent: see the outcome's ids for retries).
    pub async fn send_batch(&self, queue_url: &str, entries: &[SendEntry]) -> Result<BatchOutcome> {
        let mut seen = std::collections::HashSet::new();
        for e in entries {
            let valid = !e.id.is_empty()
                && e.id.len() <= 80
                && e.id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
            if !valid || !seen.insert(e.id.as_str()) {
                return Err(Error::invalid_input(
                    "entries.id",
                    format!("`{}` is not a unique id of 1-80 [A-Za-z0-9_-]", e.id),
                ));
            }
        }
        // The trace context is added first, so that the batches' sizes count it (and the
        // entries are copied only when there is one to add).
        let traced: Vec<SendEntry>;
        let entries = if entries
            .iter()
            .any(|e| matches!(e.options.traced(&e.body), Cow::Owned(_)))
        {
            traced = entries
                .iter()
                .map(|e| SendEntry {
                    options: e.options.traced(&e.body).into_owned(),
                    ..e.clone()
                })
                .collect();
            &traced[..]
        } else {
            entries
        };
        let mut outcome = BatchOutcome::default();
        for chunk in batches(entries)? {
            let list = chunk
                .iter()
                .map(|e| e.options.to_json(queue_url, &e.body, Some(&e.id)))
                .collect::<Result<Vec<_>>>()?;
            let r = self
                .call(
                    "SendMessageBatch",
                    &json!({ "QueueUrl": queue_url, "Entries": list }),
                )
                .await?;
            outcome.calls += 1;
            outcome.absorb(&r);
        }
        Ok(outcome)
    }

    /// Receives up to `options.max_messages`, long-polling up to `options.wait`.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for out-of-range options; see [`SqsClient::send`].
    pub async fn receive(
        &self,
        queue_url: &str,
        options: &ReceiveOptions,
    ) -> Result<Vec<ReceivedMessage>> {
        let body = options.to_json(queue_url)?;
        let r = self.call("ReceiveMessage", &body).await?;
        r.get("Messages")
            .and_then(Value::as_array)
            .map(|ms| ms.iter().map(ReceivedMessage::from_json).collect())
            .unwrap_or_else(|| Ok(Vec::new()))
    }

    /// Deletes a received message.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for an invalid receipt handle; see [`SqsClient::send`].
    pub async fn delete(&self, queue_url: &str, receipt_handle: &str) -> Result<()> {
        let body = json!({ "QueueUrl": queue_url, "ReceiptHandle": receipt_handle });
        self.call("DeleteMessage", &body).await.map(drop)
    }

    /// Makes a received message invisible for `timeout` from now (0 releases it at once; at most
    /// 12 hours).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a timeout over 12 hours; see [`SqsClient::delete`].
    pub async fn change_visibility(
        &self,
        queue_url: &str,
        receipt_handle: &str,
        timeout: Duration,
    ) -> Result<()> {
        if timeout > Duration::from_secs(12 * 3600) {
            return Err(Error::invalid_input(
                "visibility_timeout",
                "at most 12 hours",
            ));
        }
        let body = json!({
            "QueueUrl": queue_url,
            "ReceiptHandle": receipt_handle,
            "VisibilityTimeout": timeout.as_secs(),
        });
        self.call("ChangeMessageVisibility", &body).await.map(drop)
    }
}

fn string_field(v: &Value, field: &str, op: &str) -> Result<String> {
    v.get(field)
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| {
            Error::provider(format!("{op} response has no {field}"))
                .with_provider(Service::Sqs.provider_name())
        })
}

pub(crate) fn string_map(v: Option<&Value>) -> BTreeMap<String, String> {
    v.and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_owned())))
                .collect()
        })
        .unwrap_or_default()
}
