//! CloudWatch Logs (`Logs_20140328`, JSON 1.1): log groups and streams, and `PutLogEvents`
//! batched within the service's limits.

use std::time::Duration;

use integrations_core::{Error, ErrorKind, Result};
use serde_json::{Value, json};

use crate::client::AwsClient;
use crate::config::{AwsConfig, Service};

const CONTENT_TYPE: &str = "application/x-amz-json-1.1";
/// Most events in one `PutLogEvents` call.
pub const MAX_EVENTS_PER_CALL: usize = 10_000;
/// Largest `PutLogEvents` batch: the sum of each message's UTF-8 bytes plus 26.
pub const MAX_BATCH_BYTES: usize = 1_048_576;
/// Bytes CloudWatch adds to each event when counting a batch.
pub const EVENT_OVERHEAD_BYTES: usize = 26;
/// Longest message kept; longer ones are cut (on a character boundary) to this many bytes.
pub const MAX_MESSAGE_BYTES: usize = 256 * 1024 - EVENT_OVERHEAD_BYTES;
/// Longest time span of one batch.
pub const MAX_BATCH_SPAN: Duration = Duration::from_secs(24 * 3600);

/// One log event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEvent {
    /// Unix milliseconds.
    pub timestamp_ms: i64,
    /// The message.
    pub message: String,
}

impl LogEvent {
    /// An event.
    pub fn new(timestamp_ms: i64, message: impl Into<String>) -> Self {
        LogEvent {
            timestamp_ms,
            message: message.into(),
        }
    }
}

/// What [`CloudWatchLogs::put_log_events`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PutLogOutcome {
    /// `PutLogEvents` calls made.
    pub calls: usize,
    /// Events sent.
    pub sent: usize,
    /// Events CloudWatch refused as too old, too new or expired.
    pub rejected: usize,
}

/// A signed CloudWatch Logs client.
#[derive(Debug, Clone)]
pub struct CloudWatchLogs {
    client: AwsClient,
}

impl CloudWatchLogs {
    /// A client for `config`'s region, credentials and CloudWatch Logs endpoint.
    pub fn new(config: &AwsConfig) -> Self {
        CloudWatchLogs {
            client: AwsClient::new(config, Service::CloudWatchLogs),
        }
    }

    /// Runs any Logs operation (`"GetLogEvents"`, …) with `body`.
    ///
    /// # Errors
    /// The mapped AWS error; transport and policy errors.
    pub async fn call(&self, operation: &'static str, body: &Value) -> Result<Value> {
        self.client
            .json(
                operation,
                CONTENT_TYPE,
                format!("Logs_20140328.{operation}"),
                body,
            )
            .await
    }

    /// Creates the group and the stream unless they exist.
    ///
    /// # Errors
    /// See [`CloudWatchLogs::call`].
    pub async fn ensure_stream(&self, group: &str, stream: &str) -> Result<()> {
        let exists = |r: Result<Value>| match r {
            Err(e) if e.kind() != ErrorKind::Conflict => Err(e),
            _ => Ok(()),
        };
        exists(
            self.call("CreateLogGroup", &json!({ "logGroupName": group }))
                .await,
        )?;
        exists(
            self.call(
                "CreateLogStream",
                &json!({ "logGroupName": group, "logStreamName": stream }),
            )
            .await,
        )
    }

    /// Sends `events` to the stream: sorted chronologically, cut into batches of at most 10,000
    /// events, 1 MiB and 24 hours, oversized messages truncated.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for an empty group or stream; the first failing call's error
    /// (earlier batches stay sent).
    pub async fn put_log_events(
        &self,
        group: &str,
        stream: &str,
        mut events: Vec<LogEvent>,
    ) -> Result<PutLogOutcome> {
        if group.is_empty() || stream.is_empty() {
            return Err(Error::invalid_input(
                "log_stream",
                "group and stream names must not be empty",
            ));
        }
        events.sort_by_key(|e| e.timestamp_ms);
        for e in &mut events {
            truncate(&mut e.message, MAX_MESSAGE_BYTES);
        }
        let mut outcome = PutLogOutcome::default();
        for batch in split(&events) {
            let list: Vec<Value> = batch
                .iter()
                .map(|e| json!({ "timestamp": e.timestamp_ms, "message": e.message }))
                .collect();
            let body = json!({ "logGroupName": group, "logStreamName": stream, "logEvents": list });
            let r = self.call("PutLogEvents", &body).await?;
            outcome.calls += 1;
            outcome.sent += batch.len();
            outcome.rejected += rejected(r.get("rejectedLogEventsInfo"), batch.len());
        }
        Ok(outcome)
    }
}

/// Cuts `s` to at most `max` bytes on a character boundary.
pub(crate) fn truncate(s: &mut String, max: usize) {
    if s.len() > max {
        let mut cut = max;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
}

/// Splits chronologically sorted events into batches within the limits.
pub(crate) fn split(events: &[LogEvent]) -> Vec<&[LogEvent]> {
    let span = i64::try_from(MAX_BATCH_SPAN.as_millis()).unwrap_or(i64::MAX);
    let mut out = Vec::new();
    let (mut start, mut bytes) = (0usize, 0usize);
    for (i, e) in events.iter().enumerate() {
        let size = e.message.len() + EVENT_OVERHEAD_BYTES;
        let full = i - start == MAX_EVENTS_PER_CALL
            || bytes + size > MAX_BATCH_BYTES
            || e.timestamp_ms - events[start].timestamp_ms >= span;
        if i > start && full {
            out.push(&events[start..i]);
            start = i;
            bytes = 0;
        }
        bytes += size;
    }
    if start < events.len() {
        out.push(&events[start..]);
    }
    out
}

fn rejected(info: Option<&Value>, len: usize) -> usize {
    let Some(info) = info else { return 0 };
    let idx = |k: &str| {
        info.get(k)
            .and_then(Value::as_u64)
            .map(|v| usize::try_from(v).unwrap_or(usize::MAX))
    };
    let too_old = idx("tooOldLogEventEndIndex").map_or(0, |i| i.min(len));
    let expired = idx("expiredLogEventEndIndex").map_or(0, |i| i.min(len));
    let too_new = idx("tooNewLogEventStartIndex").map_or(0, |i| len.saturating_sub(i));
    (too_old.max(expired) + too_new).min(len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_on_count_bytes_and_span() {
        let many: Vec<LogEvent> = (0..25_000).map(|i| LogEvent::new(i, "x")).collect();
        let sizes: Vec<usize> = split(&many).iter().map(|b| b.len()).collect();
        assert_eq!(sizes, [10_000, 10_000, 5_000]);

        let big: Vec<LogEvent> = (0..10)
            .map(|i| LogEvent::new(i, "y".repeat(200_000)))
            .collect();
        let batches = split(&big);
        assert_eq!(batches.iter().map(|b| b.len()).collect::<Vec<_>>(), [5, 5]);
        for b in &batches {
            let bytes: usize = b
                .iter()
                .map(|e| e.message.len() + EVENT_OVERHEAD_BYTES)
                .sum();
            assert!(bytes <= MAX_BATCH_BYTES);
        }

        let day = 24 * 3600 * 1000;
        let spread = vec![
            LogEvent::new(0, "a"),
            LogEvent::new(day - 1, "b"),
            LogEvent::new(day, "c"),
        ];
        assert_eq!(
            split(&spread).iter().map(|b| b.len()).collect::<Vec<_>>(),
            [2, 1]
        );
        assert!(split(&[]).is_empty());
    }

    #[test]
    fn truncates_on_char_boundary() {
        let mut s = "é".repeat(10);
        truncate(&mut s, 5);
        assert_eq!(s, "éé");
        let mut short = "abc".to_owned();
        truncate(&mut short, 5);
        assert_eq!(short, "abc");
    }

    #[test]
    fn counts_rejections() {
        assert_eq!(rejected(None, 10), 0);
        assert_eq!(rejected(Some(&json!({"tooOldLogEventEndIndex": 3})), 10), 3);
        assert_eq!(
            rejected(Some(&json!({"tooNewLogEventStartIndex": 8})), 10),
            2
        );
        assert_eq!(
            rejected(
                Some(
                    &json!({"tooOldLogEventEndIndex": 2, "expiredLogEventEndIndex": 4, "tooNewLogEventStartIndex": 9})
                ),
                10
            ),
            5
        );
    }
}
