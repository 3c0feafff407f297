//! The SQS side: message bodies and the best-effort queue operations.
//!
//! Every queue operation here is a hint, never the record: a failure is logged and the store
//! carries on, because DynamoDB alone decides what is claimable (see the module docs).

use std::time::{Duration, SystemTime};

use serde_json::{Value, json};

use super::DynamoSqsOutbox;
use super::item::JobKey;
use crate::sqs::SendEntry;

/// SQS's longest visibility timeout.
pub(super) const MAX_VISIBILITY: Duration = Duration::from_secs(12 * 3600);

/// The body of a job's message: `{"job_id":"…"}`.
pub(super) fn body(key: &JobKey) -> String {
    json!({ "job_id": key.id().as_str() }).to_string()
}

/// The job a message points at, or `None` for a message this store did not send.
pub(super) fn parse_body(body: &str) -> Option<JobKey> {
    let v: Value = serde_json::from_str(body).ok()?;
    let id = v.get("job_id")?.as_str()?;
    JobKey::parse(&integrations_outbox::JobId::new(id))
}

/// Whole seconds from `now` until `until`, rounded up, within SQS's visibility limits.
pub(super) fn visibility_until(now: SystemTime, until: SystemTime) -> Duration {
    visibility(until.duration_since(now).unwrap_or_default())
}

/// `d` rounded up to whole seconds, at most 12 hours.
pub(super) fn visibility(d: Duration) -> Duration {
    let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    Duration::from_secs(secs).min(MAX_VISIBILITY)
}

impl DynamoSqsOutbox {
    /// Sends one message per job. The jobs are already committed: a failure only means they are
    /// claimed by the DynamoDB sweep instead of through the queue.
    pub(super) async fn enqueue(&self, keys: &[JobKey]) {
        if keys.is_empty() {
            return;
        }
        let entries: Vec<SendEntry> = keys
            .iter()
            .map(|k| SendEntry::new(format!("j{}", k.index), body(k)))
            .collect();
        match self.sqs.send_batch(&self.queue_url, &entries).await {
            Ok(out) => {
                for f in &out.failed {
                    tracing::warn!(
                        entry = %f.id, code = %f.code, message = %f.message,
                        "outbox: SQS refused a job message; the DynamoDB sweep will claim the job"
                    );
                }
            }
            Err(e) => tracing::warn!(
                error = %e, jobs = keys.len(),
                "outbox: could not enqueue job messages; the DynamoDB sweep will claim the jobs"
            ),
        }
    }

    /// Deletes a message (the job is finished or gone).
    pub(super) async fn delete_message(&self, receipt_handle: &str) {
        if let Err(e) = self.sqs.delete(&self.queue_url, receipt_handle).await {
            tracing::debug!(
                error = %e,
                "outbox: could not delete a job message; it is dropped when next received"
            );
        }
    }

    /// Hides a message for `timeout` (it comes back when its job may be claimable again).
    pub(super) async fn hide_message(&self, receipt_handle: &str, timeout: Duration) {
        if let Err(e) = self
            .sqs
            .change_visibility(&self.queue_url, receipt_handle, timeout)
            .await
        {
            tracing::debug!(
                error = %e, timeout_secs = timeout.as_secs(),
                "outbox: could not change a job message's visibility"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    #[test]
    fn bodies_round_trip_and_foreign_messages_are_ignored() {
        let k = JobKey::new("evt_\"quoted\"#x", 3);
        assert_eq!(parse_body(&body(&k)), Some(k));
        for foreign in [
            "",
            "poison",
            "{}",
            r#"{"job_id":7}"#,
            r#"{"job_id":"no-index"}"#,
        ] {
            assert_eq!(parse_body(foreign), None, "{foreign}");
        }
    }

    #[test]
    fn visibility_rounds_up_and_caps() {
        assert_eq!(visibility(Duration::from_millis(1)), Duration::from_secs(1));
        assert_eq!(visibility(Duration::from_secs(30)), Duration::from_secs(30));
        assert_eq!(visibility(Duration::from_secs(86_400)), MAX_VISIBILITY);
        let t = UNIX_EPOCH + Duration::from_secs(100);
        assert_eq!(visibility_until(t, UNIX_EPOCH), Duration::ZERO);
        assert_eq!(
            visibility_until(t, t + Duration::from_millis(1500)),
            Duration::from_secs(2)
        );
    }
}
