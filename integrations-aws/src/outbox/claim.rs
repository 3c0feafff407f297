//! `claim`: messages from SQS first, then a sweep of the status index, each job taken with one
//! conditional `UpdateItem` so that no two workers ever hold it at once.

use std::time::{Duration, SystemTime};

use integrations_core::{Error, Result};
use integrations_outbox::{ClaimedJob, JobState, LeaseToken, lease_expired_error};
use serde_json::json;

use super::DynamoSqsOutbox;
use super::item::{JobKey, Stored, due_at_or_before, millis, n, names, parse_job, s};
use super::queue::{parse_body, visibility, visibility_until};
use crate::sqs::{MAX_BATCH_ENTRIES, ReceiveOptions, ReceivedMessage};

/// Sweep rounds per claim at most (a round that claims nothing ends the sweep earlier).
const MAX_SWEEP_ROUNDS: usize = 4;

const CLAIMABLE: &str = "(#st = :pending AND #av <= :now) \
    OR (#st = :leased AND #exp <= :now AND #att < #max)";

/// What one claim attempt on one job found.
#[derive(Debug)]
pub(super) enum Attempt {
    /// Claimed: the job is ours under a fresh lease.
    Claimed(Box<ClaimedJob>),
    /// Unknown, done or dead: its messages are garbage.
    Gone,
    /// Its lease had expired with no attempts left: dead-lettered now.
    DeadLettered,
    /// Not claimable before this time (a later retry, or another worker's live lease).
    Later(SystemTime),
    /// It changed between the write and the read; leave it to the next claim.
    Raced,
}

/// The parameters of one claim call.
pub(super) struct Claim<'a> {
    pub(super) worker: &'a str,
    pub(super) lease: Duration,
    pub(super) now: SystemTime,
    pub(super) expires: SystemTime,
}

impl DynamoSqsOutbox {
    pub(super) async fn claim_jobs(&self, c: &Claim<'_>, max: usize) -> Result<Vec<ClaimedJob>> {
        let mut claimed: Vec<ClaimedJob> = Vec::new();
        let mut first_error: Option<Error> = None;

        // 1. The queue: each message names a job that may be claimable.
        let want = u8::try_from(max.min(MAX_BATCH_ENTRIES)).unwrap_or(10);
        let options = ReceiveOptions::new()
            .max_messages(want)
            .wait(self.receive_wait)
            .visibility_timeout(visibility(c.lease));
        match self.sqs.receive(&self.queue_url, &options).await {
            Ok(messages) => {
                for m in messages {
                    match self.on_message(c, &m).await {
                        Ok(Some(job)) => claimed.push(job),
                        Ok(None) => {}
                        Err(e) => {
                            tracing::warn!(error = %e, "outbox: claiming a queued job failed");
                            first_error.get_or_insert(e);
                        }
                    }
                }
            }
            Err(e) => tracing::warn!(
                error = %e,
                "outbox: SQS receive failed; claiming from DynamoDB only"
            ),
        }

        // 2. The sweep: due jobs the queue did not hand out (lost or early-redriven messages,
        //    retry times and lease expiries measured on the store's clock).
        if claimed.len() < max && first_error.is_none() {
            if let Err(e) = self.sweep(c, max, &mut claimed).await {
                first_error = Some(e);
            }
        }

        if let Some(e) = first_error {
            if claimed.is_empty() {
                return Err(e);
            }
            // The jobs already leased must reach their worker; the error recurs next claim.
            tracing::warn!(error = %e, claimed = claimed.len(), "outbox: claim partly failed");
        }
        claimed.sort_by(|a, b| {
            (a.job.created_at, &a.job.event_id, job_index(a)).cmp(&(
                b.job.created_at,
                &b.job.event_id,
                job_index(b),
            ))
        });
        Ok(claimed)
    }

    async fn on_message(&self, c: &Claim<'_>, m: &ReceivedMessage) -> Result<Option<ClaimedJob>> {
        let Some(key) = parse_body(&m.body) else {
            // Not ours: left alone, SQS's redrive moves it to the queue's DLQ in the end.
            tracing::warn!(
                message_id = %m.message_id, receive_count = m.receive_count,
                "outbox: a message in the job queue names no job; leaving it for the dead-letter queue"
            );
            return Ok(None);
        };
        match self.try_claim(c, &key, Some(&m.receipt_handle)).await? {
            Attempt::Claimed(job) => return Ok(Some(*job)),
            Attempt::Gone | Attempt::DeadLettered => self.delete_message(&m.receipt_handle).await,
            Attempt::Later(at) => {
                self.hide_message(&m.receipt_handle, visibility_until(c.now, at))
                    .await;
            }
            Attempt::Raced => {}
        }
        Ok(None)
    }

    async fn sweep(&self, c: &Claim<'_>, max: usize, claimed: &mut Vec<ClaimedJob>) -> Result<()> {
        let bound = due_at_or_before(millis(c.now));
        for _ in 0..MAX_SWEEP_ROUNDS {
            let want = max - claimed.len();
            let mut due = self
                .query_index(JobState::Pending.as_str(), Some(&bound), want)
                .await?;
            due.extend(
                self.query_index(JobState::Leased.as_str(), Some(&bound), want)
                    .await?,
            );
            if due.is_empty() {
                return Ok(());
            }
            due.sort_by(|a, b| a.due.cmp(&b.due));
            let mut progress = false;
            for entry in due {
                if claimed.len() >= max {
                    return Ok(());
                }
                let key = entry.job_key()?;
                let id = key.id();
                if claimed.iter().any(|j| j.job.id == id) {
                    continue; // taken from the queue a moment ago; the index lags
                }
                match self.try_claim(c, &key, None).await? {
                    Attempt::Claimed(job) => {
                        claimed.push(*job);
                        progress = true;
                    }
                    Attempt::DeadLettered => progress = true,
                    Attempt::Gone | Attempt::Later(_) | Attempt::Raced => {}
                }
            }
            if !progress || claimed.len() >= max {
                return Ok(());
            }
        }
        Ok(())
    }

    /// Claims `key` if it is claimable on the store's clock; `receipt` is the handle of the
    /// message that named it, kept on the item so that `complete`/`fail` can settle the message.
    pub(super) async fn try_claim(
        &self,
        c: &Claim<'_>,
        key: &JobKey,
        receipt: Option<&str>,
    ) -> Result<Attempt> {
        let now_ms = millis(c.now);
        let expires_ms = millis(c.expires);
        let token = LeaseToken::random();
        let mut update = String::from(
            "SET #st = :leased, #due = :due, #att = #att + :one, #tok = :tok, #by = :by, \
             #exp = :exp, #upd = :now",
        );
        let mut values = json!({
            ":pending": s(JobState::Pending.as_str()),
            ":leased": s(JobState::Leased.as_str()),
            ":now": n(now_ms),
            ":due": s(&key.due(expires_ms)),
            ":one": n(1),
            ":tok": s(token.as_str()),
            ":by": s(c.worker),
            ":exp": n(expires_ms),
        });
        if let Some(rh) = receipt {
            update.push_str(", #rh = :rh");
            values[":rh"] = s(rh);
        }
        let body = json!({
            "TableName": self.table,
            "Key": key.key(),
            "UpdateExpression": update,
            "ConditionExpression": CLAIMABLE,
            "ExpressionAttributeNames": names(&[&update, CLAIMABLE]),
            "ExpressionAttributeValues": values,
            "ReturnValues": "ALL_NEW",
        });
        if let Some(item) = self.conditional("UpdateItem", &body).await? {
            let stored = parse_job(&item)?;
            return Ok(Attempt::Claimed(Box::new(ClaimedJob {
                job: stored.record.job,
                lease: token,
                lease_expires_at: c.expires,
            })));
        }
        // Not claimable: find out why (the rare path, one consistent read).
        let Some(stored) = self.get_job(key).await? else {
            return Ok(Attempt::Gone);
        };
        if stored.token.as_ref() == Some(&token) {
            // Our own write: applied by an attempt whose answer was lost, then retried.
            return Ok(Attempt::Claimed(Box::new(ClaimedJob {
                job: stored.record.job,
                lease: token,
                lease_expires_at: c.expires,
            })));
        }
        let r = &stored.record;
        Ok(match r.state {
            JobState::Done | JobState::Dead => Attempt::Gone,
            JobState::Pending if r.available_at > c.now => Attempt::Later(r.available_at),
            JobState::Leased => match r.lease_expires_at {
                Some(at) if at > c.now => Attempt::Later(at),
                Some(_) if stored.attempts() >= r.job.max_attempts => {
                    self.dead_letter_expired(c.now, &stored).await?
                }
                _ => Attempt::Raced,
            },
            JobState::Pending => Attempt::Raced,
        })
    }

    /// Dead-letters a job whose last allowed attempt's lease expired (the worker died or hung).
    async fn dead_letter_expired(&self, now: SystemTime, stored: &Stored) -> Result<Attempt> {
        let Some(token) = &stored.token else {
            return Ok(Attempt::Raced);
        };
        let attempts = stored.attempts();
        let error = serde_json::to_string(&lease_expired_error(attempts))
            .map_err(|e| Error::provider("could not encode an error record").with_source(e))?;
        let now_ms = millis(now);
        let update = "SET #st = :dead, #due = :due, #err = :err, #upd = :now \
                      REMOVE #tok, #by, #exp, #rh";
        let condition = "#st = :leased AND #tok = :tok AND #exp <= :now";
        let created = millis(stored.record.job.created_at);
        let body = json!({
            "TableName": self.table,
            "Key": stored.key.key(),
            "UpdateExpression": update,
            "ConditionExpression": condition,
            "ExpressionAttributeNames": names(&[update, condition]),
            "ExpressionAttributeValues": {
                ":dead": s(JobState::Dead.as_str()),
                ":leased": s(JobState::Leased.as_str()),
                ":due": s(&stored.key.due(created)),
                ":err": s(&error),
                ":now": n(now_ms),
                ":tok": s(token.as_str()),
            },
        });
        if self.conditional("UpdateItem", &body).await?.is_none() {
            return Ok(Attempt::Raced);
        }
        tracing::warn!(
            job_id = %stored.record.job.id, attempts,
            "outbox job dead-lettered: lease expired with no attempts left"
        );
        if let Some(rh) = &stored.receipt {
            self.delete_message(rh).await;
        }
        Ok(Attempt::DeadLettered)
    }
}

fn job_index(c: &ClaimedJob) -> u8 {
    c.job
        .id
        .as_str()
        .rsplit_once('#')
        .and_then(|(_, i)| i.parse().ok())
        .unwrap_or(0)
}
