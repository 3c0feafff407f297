//! SQS send options, batch entries and batch results, and the queue pair.

use std::collections::BTreeMap;
use std::time::Duration;

use integrations_core::{Error, Result};
use serde_json::{Value, json};

use super::{MAX_BATCH_ENTRIES, MAX_MESSAGE_BYTES};

/// Most message attributes SQS accepts on one message.
const MAX_ATTRIBUTES: usize = 10;

/// Options of one sent message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SendOptions {
    /// Delivery delay (at most 15 minutes; standard queues only per message).
    pub delay: Option<Duration>,
    /// FIFO message group (required on FIFO queues).
    pub group_id: Option<String>,
    /// FIFO deduplication id (unless the queue deduplicates by content).
    pub dedup_id: Option<String>,
    /// String message attributes.
    pub attributes: BTreeMap<String, String>,
}

impl SendOptions {
    /// No options.
    pub fn new() -> Self {
        Self::default()
    }
    /// Delays delivery.
    #[must_use]
    pub fn delay(mut self, d: Duration) -> Self {
        self.delay = Some(d);
        self
    }
    /// Sets the FIFO group.
    #[must_use]
    pub fn group_id(mut self, g: impl Into<String>) -> Self {
        self.group_id = Some(g.into());
        self
    }
    /// Sets the FIFO deduplication id.
    #[must_use]
    pub fn dedup_id(mut self, d: impl Into<String>) -> Self {
        self.dedup_id = Some(d.into());
        self
    }
    /// Adds a string attribute.
    #[must_use]
    pub fn attribute(mut self, k: impl Into<String>, v: impl Into<String>) -> Self {
        self.attributes.insert(k.into(), v.into());
        self
    }

    /// These options with the current span's `traceparent` attribute added when there is one,
    /// the caller set none and it fits (see `crate::trace`).
    pub(crate) fn traced(&self, body: &str) -> std::borrow::Cow<'_, SendOptions> {
        match crate::trace::traceparent_attribute(
            &self.attributes,
            body.len(),
            MAX_ATTRIBUTES,
            MAX_MESSAGE_BYTES,
        ) {
            Some((k, v)) => {
                let mut with = self.clone();
                with.attributes.insert(k, v);
                std::borrow::Cow::Owned(with)
            }
            None => std::borrow::Cow::Borrowed(self),
        }
    }

    /// Bytes SQS counts for `body` with these attributes.
    pub(crate) fn size(&self, body: &str) -> usize {
        body.len()
            + self
                .attributes
                .iter()
                .map(|(k, v)| k.len() + "String".len() + v.len())
                .sum::<usize>()
    }

    pub(crate) fn to_json(&self, queue_url: &str, body: &str, id: Option<&str>) -> Result<Value> {
        let valid_char = |c: char| matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..);
        if body.is_empty() || !body.chars().all(valid_char) {
            return Err(Error::invalid_input(
                "body",
                "must be non-empty and use only characters SQS allows",
            ));
        }
        let size = self.size(body);
        if size > MAX_MESSAGE_BYTES {
            return Err(Error::invalid_input(
                "body",
                format!("{size} bytes with attributes; SQS accepts {MAX_MESSAGE_BYTES}"),
            ));
        }
        if self.attributes.len() > MAX_ATTRIBUTES {
            return Err(Error::invalid_input(
                "attributes",
                "SQS accepts at most 10 message attributes",
            ));
        }
        let fifo = queue_url.ends_with(".fifo");
        if fifo && self.group_id.is_none() {
            return Err(Error::invalid_input(
                "group_id",
                "a FIFO queue needs a message group id",
            ));
        }
        let mut v = json!({ "MessageBody": body });
        if let Some(id) = id {
            v["Id"] = json!(id);
        }
        if let Some(d) = self.delay {
            if d > Duration::from_secs(900) {
                return Err(Error::invalid_input("delay", "at most 15 minutes"));
            }
            v["DelaySeconds"] = json!(d.as_secs());
        }
        if !self.attributes.is_empty() {
            let attrs: serde_json::Map<String, Value> = self
                .attributes
                .iter()
                .map(|(k, val)| {
                    (
                        k.clone(),
                        json!({ "DataType": "String", "StringValue": val }),
                    )
                })
                .collect();
            v["MessageAttributes"] = Value::Object(attrs);
        }
        if fifo {
            if let Some(g) = &self.group_id {
                v["MessageGroupId"] = json!(g);
            }
            if let Some(d) = &self.dedup_id {
                v["MessageDeduplicationId"] = json!(d);
            }
        }
        Ok(v)
    }
}

/// One entry of [`SqsClient::send_batch`](super::SqsClient::send_batch).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendEntry {
    /// Caller's id, unique within the call (1–80 of `[A-Za-z0-9_-]`).
    pub id: String,
    /// Body.
    pub body: String,
    /// Options.
    pub options: SendOptions,
}

impl SendEntry {
    /// An entry without options.
    pub fn new(id: impl Into<String>, body: impl Into<String>) -> Self {
        SendEntry {
            id: id.into(),
            body: body.into(),
            options: SendOptions::default(),
        }
    }
    /// With options.
    #[must_use]
    pub fn with_options(mut self, options: SendOptions) -> Self {
        self.options = options;
        self
    }
}

/// Splits entries into batches of at most 10 entries and 256 KiB.
pub(crate) fn batches(entries: &[SendEntry]) -> Result<Vec<&[SendEntry]>> {
    let mut out = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, e) in entries.iter().enumerate() {
        let size = e.options.size(&e.body);
        if size > MAX_MESSAGE_BYTES {
            return Err(Error::invalid_input(
                "body",
                format!(
                    "entry `{}` is {size} bytes; SQS accepts {MAX_MESSAGE_BYTES}",
                    e.id
                ),
            ));
        }
        if i - start == MAX_BATCH_ENTRIES || bytes + size > MAX_MESSAGE_BYTES {
            out.push(&entries[start..i]);
            start = i;
            bytes = 0;
        }
        bytes += size;
    }
    if start < entries.len() {
        out.push(&entries[start..]);
    }
    Ok(out)
}

/// An entry SQS refused.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct BatchFailure {
    /// The entry's id.
    pub id: String,
    /// SQS's code.
    pub code: String,
    /// SQS's message.
    pub message: String,
    /// `true` when the entry itself is wrong (do not retry it unchanged).
    pub sender_fault: bool,
}

/// What a batched send did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct BatchOutcome {
    /// `(entry id, message id)` of each sent entry.
    pub sent: Vec<(String, String)>,
    /// Refused entries.
    pub failed: Vec<BatchFailure>,
    /// `SendMessageBatch` calls made.
    pub calls: usize,
}

impl BatchOutcome {
    pub(crate) fn absorb(&mut self, r: &Value) {
        let s = |v: &Value, k: &str| {
            v.get(k)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        for ok in r
            .get("Successful")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            self.sent.push((s(ok, "Id"), s(ok, "MessageId")));
        }
        for f in r
            .get("Failed")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            self.failed.push(BatchFailure {
                id: s(f, "Id"),
                code: s(f, "Code"),
                message: s(f, "Message"),
                sender_fault: f
                    .get("SenderFault")
                    .and_then(Value::as_bool)
                    .unwrap_or(false),
            });
        }
    }
}

/// A queue and its dead-letter queue.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct QueueWithDlq {
    /// The queue's URL.
    pub queue_url: String,
    /// The queue's ARN.
    pub queue_arn: String,
    /// The dead-letter queue's URL.
    pub dlq_url: String,
    /// The dead-letter queue's ARN.
    pub dlq_arn: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_respect_count_and_bytes() {
        let small: Vec<SendEntry> = (0..25)
            .map(|i| SendEntry::new(format!("e{i}"), "x"))
            .collect();
        let sizes: Vec<usize> = batches(&small).unwrap().iter().map(|b| b.len()).collect();
        assert_eq!(sizes, [10, 10, 5]);
        let big: Vec<SendEntry> = (0..5)
            .map(|i| SendEntry::new(format!("b{i}"), "y".repeat(100 * 1024)))
            .collect();
        let sizes: Vec<usize> = batches(&big).unwrap().iter().map(|b| b.len()).collect();
        assert_eq!(sizes, [2, 2, 1]);
        let too_big = [SendEntry::new("z", "z".repeat(MAX_MESSAGE_BYTES + 1))];
        assert_eq!(batches(&too_big).unwrap_err().field(), Some("body"));
        assert!(batches(&[]).unwrap().is_empty());
    }

    #[test]
    fn send_json_shape_and_checks() {
        let o = SendOptions::new()
            .attribute("kind", "order")
            .group_id("g")
            .dedup_id("d")
            .delay(Duration::from_secs(5));
        let v = o.to_json("https://sqs/1/q.fifo", "hi", Some("e1")).unwrap();
        assert_eq!(
            v,
            json!({
                "MessageBody": "hi", "Id": "e1", "DelaySeconds": 5,
                "MessageAttributes": {"kind": {"DataType": "String", "StringValue": "order"}},
                "MessageGroupId": "g", "MessageDeduplicationId": "d",
            })
        );
        let field = |o: SendOptions, url: &str, body: &str| {
            o.to_json(url, body, None)
                .unwrap_err()
                .field()
                .map(str::to_owned)
        };
        assert_eq!(
            field(SendOptions::new(), "q.fifo", "x").as_deref(),
            Some("group_id")
        );
        assert_eq!(field(SendOptions::new(), "q", "").as_deref(), Some("body"));
        assert_eq!(
            field(SendOptions::new(), "q", "\u{1}").as_deref(),
            Some("body")
        );
        assert_eq!(
            field(SendOptions::new().delay(Duration::from_secs(901)), "q", "x").as_deref(),
            Some("delay")
        );
    }
}
