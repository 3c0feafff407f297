//! [`DynamoSqsOutbox`]: construction, resources, and the [`OutboxStore`] implementation.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use integrations_core::clock::{Clock, SystemClock};
use integrations_core::{Error, Result};
use integrations_outbox::{
    ClaimedJob, DeadLetter, ErrorRecord, FailOutcome, JobId, JobRecord, JobState, LeaseToken,
    NewJob, OutboxBacklog, OutboxCounts, OutboxStore, PurgeOutcome, RecordOutcome, check_claim,
    job_not_found, lease_lost, prepare_jobs,
};
use serde_json::{Value, json};

use super::INDEX;
use super::claim::Claim;
use super::item::{
    EVENT_SK, EVENT_STATUS, JobKey, MAX_EVENT_ID_BYTES, MAX_JOBS, cancellation_reasons, due_before,
    event_item, job_item, key, millis, n, names, s,
};
use super::queue::visibility_until;
use crate::config::{AwsConfig, Service};
use crate::dynamodb::{DynamoDb, Item};
use crate::sqs::{MAX_WAIT, QueueWithDlq, SqsClient};

/// Core's durable outbox across many machines: DynamoDB holds the events and jobs (the record),
/// an SQS standard queue carries one message per job to the workers (the work queue). See the
/// [module docs](super) for the design.
///
/// ```no_run
/// # async fn demo() -> integrations_core::Result<()> {
/// use std::time::Duration;
/// use integrations_aws::AwsBuilder;
/// use integrations_aws::outbox::DynamoSqsOutbox;
/// use integrations_outbox::{NewJob, OutboxStore};
///
/// let config = AwsBuilder::from_env().build()?;
/// // Once, at deploy time:
/// let queue = DynamoSqsOutbox::create_resources(&config, "outbox", "outbox-jobs", 16).await?;
///
/// let outbox = DynamoSqsOutbox::new(&config, "outbox", queue.queue_url);
/// let jobs = vec![NewJob::new("email.confirmation", serde_json::json!({ "order_id": "42" }))];
/// outbox.record_event("evt_3MtwBwLkdIwHu7ix28a3tqPa", jobs).await?;
/// for c in outbox.claim("worker-1", 10, Duration::from_secs(60)).await? {
///     // … deliver c.job …
///     outbox.complete(&c.job.id, &c.lease).await?;
/// }
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct DynamoSqsOutbox {
    pub(super) db: DynamoDb,
    pub(super) sqs: SqsClient,
    pub(super) table: String,
    pub(super) queue_url: String,
    pub(super) clock: Arc<dyn Clock>,
    pub(super) receive_wait: Duration,
}

impl fmt::Debug for DynamoSqsOutbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DynamoSqsOutbox")
            .field("table", &self.table)
            .field("queue_url", &self.queue_url)
            .field("clock", &self.clock)
            .field("receive_wait", &self.receive_wait)
            .finish_non_exhaustive()
    }
}

impl DynamoSqsOutbox {
    /// Most jobs one event may cause (DynamoDB's 100 items per transaction, less the event
    /// record).
    pub const MAX_JOBS_PER_EVENT: usize = MAX_JOBS;
    /// Longest event id accepted, in bytes.
    pub const MAX_EVENT_ID_BYTES: usize = MAX_EVENT_ID_BYTES;
    /// Name of the global secondary index on `status` / `due`.
    pub const INDEX: &'static str = INDEX;
    /// A `max_receive_count` for [`DynamoSqsOutbox::create_resources`]: twice core's default
    /// attempts, so SQS's redrive only catches messages that no worker can settle.
    pub const DEFAULT_MAX_RECEIVE_COUNT: u32 = 16;

    /// The outbox on `table` and the standard queue at `queue_url`, with clients for `config`,
    /// on the system clock.
    pub fn new(config: &AwsConfig, table: impl Into<String>, queue_url: impl Into<String>) -> Self {
        DynamoSqsOutbox::from_clients(
            DynamoDb::new(config),
            SqsClient::new(config),
            table,
            queue_url,
        )
    }

    /// The outbox over existing clients.
    pub fn from_clients(
        db: DynamoDb,
        sqs: SqsClient,
        table: impl Into<String>,
        queue_url: impl Into<String>,
    ) -> Self {
        DynamoSqsOutbox {
            db,
            sqs,
            table: table.into(),
            queue_url: queue_url.into(),
            clock: Arc::new(SystemClock),
            receive_wait: Duration::ZERO,
        }
    }

    /// Uses `clock` for record times, retry times and leases (every worker should run on a
    /// synchronised clock: leases are compared across machines).
    #[must_use]
    pub fn with_clock(mut self, clock: impl Clock + 'static) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Long-polls the queue for up to `wait` (at most 20 s) in each claim before sweeping
    /// DynamoDB. The default, zero, is a short poll: a claim answers at once.
    #[must_use]
    pub fn with_receive_wait(mut self, wait: Duration) -> Self {
        self.receive_wait = Duration::from_secs(wait.min(MAX_WAIT).as_secs());
        self
    }

    /// The table.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// The job queue's URL.
    pub fn queue_url(&self) -> &str {
        &self.queue_url
    }

    /// Creates the table (on-demand capacity; `pk`/`sk` keys and the [`INDEX`](Self::INDEX)
    /// index on `status`/`due`, keys only) unless it exists and waits until it is active, then
    /// the standard queue `queue_name` with its dead-letter queue `<queue_name>-dlq` (SQS moves a
    /// message there after `max_receive_count` receives; both keep messages 14 days).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a FIFO queue name or a `max_receive_count` outside 1–1000;
    /// [`Error::Timeout`] if the table does not become active within 2 minutes; the mapped AWS
    /// errors.
    pub async fn create_resources(
        config: &AwsConfig,
        table: &str,
        queue_name: &str,
        max_receive_count: u32,
    ) -> Result<QueueWithDlq> {
        if queue_name.ends_with(".fifo") {
            return Err(Error::invalid_input(
                "queue_name",
                "the job queue must be a standard queue (a FIFO group would hold back every later job)",
            ));
        }
        DynamoDb::new(config)
            .ensure_table(&table_definition(table), Duration::from_secs(120))
            .await?;
        SqsClient::new(config)
            .create_queue_with_dlq(
                queue_name,
                max_receive_count,
                &[("MessageRetentionPeriod", "1209600")],
            )
            .await
    }

    fn now(&self) -> SystemTime {
        self.clock.now()
    }

    async fn transaction_cancelled(&self, event_id: &str, e: Error) -> Result<RecordOutcome> {
        let reasons = cancellation_reasons(e.message());
        let provider = Service::DynamoDb.provider_name();
        match reasons.first() {
            Some(&"ConditionalCheckFailed") => return Ok(RecordOutcome::Duplicate),
            Some(_) if reasons.contains(&"ConditionalCheckFailed") => {
                return Err(Error::conflict(format!(
                    "event `{event_id}` is not recorded but one of its job items exists: \
                     the outbox table was changed outside this store"
                ))
                .with_provider(provider)
                .with_source(e));
            }
            Some(_) => {
                let transient = [
                    "TransactionConflict",
                    "ThrottlingError",
                    "ProvisionedThroughputExceeded",
                ];
                if reasons.iter().any(|r| transient.contains(r)) {
                    return Err(Error::unavailable(format!(
                        "recording event `{event_id}` collided with another write ({}); retry",
                        reasons.join(", ")
                    ))
                    .with_provider(provider)
                    .with_code("TransactionCanceledException")
                    .with_source(e));
                }
                return Err(e);
            }
            None => {}
        }
        // No readable reasons: the event record tells whether it was there before.
        let event = self
            .db
            .get_item(&self.table, key(event_id, EVENT_SK))
            .await?;
        match event {
            Some(_) => Ok(RecordOutcome::Duplicate),
            None => Err(e),
        }
    }

    /// After a lease-checked write's condition failed: `Ok` if the write was this very call's
    /// (`settle_id`; an attempt applied it, its answer was lost and the policy retried), else
    /// the right error.
    async fn settled_by(&self, k: &JobKey, job_id: &JobId, settle_id: &str) -> Result<()> {
        match self.get_job(k).await? {
            None => Err(job_not_found(job_id)),
            Some(s) if s.settle_id.as_deref() == Some(settle_id) => Ok(()),
            Some(_) => Err(lease_lost(job_id)),
        }
    }
}

/// The `CreateTable` body.
pub(super) fn table_definition(table: &str) -> Value {
    json!({
        "TableName": table,
        "BillingMode": "PAY_PER_REQUEST",
        "AttributeDefinitions": [
            { "AttributeName": "pk", "AttributeType": "S" },
            { "AttributeName": "sk", "AttributeType": "S" },
            { "AttributeName": "status", "AttributeType": "S" },
            { "AttributeName": "due", "AttributeType": "S" },
        ],
        "KeySchema": [
            { "AttributeName": "pk", "KeyType": "HASH" },
            { "AttributeName": "sk", "KeyType": "RANGE" },
        ],
        "GlobalSecondaryIndexes": [{
            "IndexName": INDEX,
            "KeySchema": [
                { "AttributeName": "status", "KeyType": "HASH" },
                { "AttributeName": "due", "KeyType": "RANGE" },
            ],
            "Projection": { "ProjectionType": "KEYS_ONLY" },
        }],
    })
}

fn put(table: &str, item: Item) -> Value {
    json!({ "Put": {
        "TableName": table,
        "Item": item,
        "ConditionExpression": "attribute_not_exists(#pk)",
        "ExpressionAttributeNames": { "#pk": "pk" },
    }})
}

fn error_json(e: &ErrorRecord) -> Result<String> {
    serde_json::to_string(e).map_err(|e| {
        Error::invalid_input("error", "could not encode the error record").with_source(e)
    })
}

#[async_trait]
impl OutboxStore for DynamoSqsOutbox {
    async fn record_event(&self, event_id: &str, jobs: Vec<NewJob>) -> Result<RecordOutcome> {
        let idempotency_keys = prepare_jobs(event_id, &jobs)?;
        if event_id.len() > MAX_EVENT_ID_BYTES {
            return Err(Error::invalid_input(
                "event_id",
                format!(
                    "{} bytes; this store accepts {MAX_EVENT_ID_BYTES}",
                    event_id.len()
                ),
            ));
        }
        if jobs.len() > MAX_JOBS {
            return Err(Error::invalid_input(
                "jobs",
                format!(
                    "{} jobs; one event may cause at most {MAX_JOBS}",
                    jobs.len()
                ),
            ));
        }
        let now_ms = millis(self.now());
        let keys: Vec<JobKey> = (0..jobs.len()).map(|i| JobKey::new(event_id, i)).collect();
        let mut items = vec![put(&self.table, event_item(event_id, now_ms))];
        for ((k, job), idem) in keys.iter().zip(&jobs).zip(&idempotency_keys) {
            items.push(put(&self.table, job_item(k, job, idem, now_ms)?));
        }
        // The token makes a retried attempt (answer lost in transit) a no-op success for
        // 10 minutes instead of a false duplicate.
        let body = json!({
            "TransactItems": items,
            "ClientRequestToken": LeaseToken::random().as_str(),
        });
        match self.db.call("TransactWriteItems", &body).await {
            Ok(_) => {}
            Err(e) if e.code() == Some("TransactionCanceledException") => {
                return self.transaction_cancelled(event_id, e).await;
            }
            Err(e) => return Err(e),
        }
        self.enqueue(&keys).await;
        Ok(RecordOutcome::Recorded {
            job_ids: keys.iter().map(JobKey::id).collect(),
        })
    }

    async fn claim(&self, worker_id: &str, max: usize, lease: Duration) -> Result<Vec<ClaimedJob>> {
        check_claim(worker_id, lease)?;
        if max == 0 {
            return Ok(Vec::new());
        }
        let now = self.now();
        let expires = now
            .checked_add(lease)
            .ok_or_else(|| Error::invalid_input("lease", "too long"))?;
        let c = Claim {
            worker: worker_id,
            lease,
            now,
            expires,
        };
        self.claim_jobs(&c, max).await
    }

    async fn complete(&self, job_id: &JobId, lease: &LeaseToken) -> Result<()> {
        let k = JobKey::parse(job_id).ok_or_else(|| job_not_found(job_id))?;
        let now_ms = millis(self.now());
        let settle_id = LeaseToken::random();
        let update =
            "SET #st = :done, #due = :due, #upd = :now, #set = :set REMOVE #tok, #by, #exp, #rh";
        let condition = "#st = :leased AND #tok = :tok";
        let body = json!({
            "TableName": self.table,
            "Key": k.key(),
            "UpdateExpression": update,
            "ConditionExpression": condition,
            "ExpressionAttributeNames": names(&[update, condition]),
            "ExpressionAttributeValues": {
                ":done": s(JobState::Done.as_str()),
                ":leased": s(JobState::Leased.as_str()),
                ":due": s(&k.due(now_ms)),
                ":now": n(now_ms),
                ":tok": s(lease.as_str()),
                ":set": s(settle_id.as_str()),
            },
            "ReturnValues": "ALL_OLD",
        });
        let Some(old) = self.conditional("UpdateItem", &body).await? else {
            // Settled by this call's earlier attempt: done; its message goes at its next receive.
            return self.settled_by(&k, job_id, settle_id.as_str()).await;
        };
        if let Some(rh) = old
            .get("receipt_handle")
            .and_then(|v| v.get("S"))
            .and_then(Value::as_str)
        {
            self.delete_message(rh).await;
        }
        Ok(())
    }

    async fn fail(
        &self,
        job_id: &JobId,
        lease: &LeaseToken,
        error: ErrorRecord,
        retry_at: Option<SystemTime>,
    ) -> Result<FailOutcome> {
        let k = JobKey::parse(job_id).ok_or_else(|| job_not_found(job_id))?;
        let stored = self
            .get_job(&k)
            .await?
            .ok_or_else(|| job_not_found(job_id))?;
        if stored.record.state != JobState::Leased || stored.token.as_ref() != Some(lease) {
            return Err(lease_lost(job_id));
        }
        let attempts = stored.attempts();
        let outcome = match retry_at {
            Some(at) if attempts < stored.record.job.max_attempts => FailOutcome::Retrying {
                attempts,
                retry_at: at,
            },
            _ => FailOutcome::DeadLettered { attempts },
        };
        let now = self.now();
        let now_ms = millis(now);
        let condition = "#st = :leased AND #tok = :tok";
        let settle_id = LeaseToken::random();
        let mut values = json!({
            ":leased": s(JobState::Leased.as_str()),
            ":tok": s(lease.as_str()),
            ":set": s(settle_id.as_str()),
            ":err": s(&error_json(&error)?),
            ":now": n(now_ms),
        });
        let update = match outcome {
            FailOutcome::Retrying { retry_at, .. } => {
                values[":st"] = s(JobState::Pending.as_str());
                values[":av"] = n(millis(retry_at));
                values[":due"] = s(&k.due(millis(retry_at)));
                "SET #st = :st, #av = :av, #due = :due, #err = :err, #upd = :now, #set = :set \
                 REMOVE #tok, #by, #exp"
            }
            FailOutcome::DeadLettered { .. } => {
                values[":st"] = s(JobState::Dead.as_str());
                values[":due"] = s(&k.due(millis(stored.record.job.created_at)));
                "SET #st = :st, #due = :due, #err = :err, #upd = :now, #set = :set \
                 REMOVE #tok, #by, #exp, #rh"
            }
        };
        let body = json!({
            "TableName": self.table,
            "Key": k.key(),
            "UpdateExpression": update,
            "ConditionExpression": condition,
            "ExpressionAttributeNames": names(&[update, condition]),
            "ExpressionAttributeValues": values,
        });
        if self.conditional("UpdateItem", &body).await?.is_none() {
            self.settled_by(&k, job_id, settle_id.as_str()).await?;
        }
        if let Some(rh) = &stored.receipt {
            match outcome {
                // The message comes back at the retry time (SQS caps visibility at 12 hours;
                // a later retry is picked up by the sweep or the message's next receive).
                FailOutcome::Retrying { retry_at, .. } => {
                    self.hide_message(rh, visibility_until(now, retry_at)).await;
                }
                FailOutcome::DeadLettered { .. } => self.delete_message(rh).await,
            }
        }
        if let FailOutcome::DeadLettered { attempts } = outcome {
            tracing::warn!(job_id = %job_id, attempts, error = %error, "outbox job dead-lettered");
        }
        Ok(outcome)
    }

    async fn job(&self, job_id: &JobId) -> Result<Option<JobRecord>> {
        let Some(k) = JobKey::parse(job_id) else {
            return Ok(None);
        };
        Ok(self.get_job(&k).await?.map(|s| s.record))
    }

    async fn dead_letters(&self, limit: usize) -> Result<Vec<DeadLetter>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let entries = self
            .query_index(JobState::Dead.as_str(), None, limit)
            .await?;
        let mut out = Vec::with_capacity(entries.len());
        for e in entries {
            // The index lags the table: read each one back and keep it only if still dead.
            if let Some(stored) = self.get_job(&e.job_key()?).await? {
                out.extend(DeadLetter::from_record(stored.record));
            }
        }
        Ok(out)
    }

    async fn replay(&self, job_id: &JobId) -> Result<()> {
        let k = JobKey::parse(job_id).ok_or_else(|| job_not_found(job_id))?;
        let not_dead = |state: JobState| {
            Error::conflict(format!(
                "job {job_id} is {}, only dead letters can be replayed",
                state.as_str()
            ))
        };
        let stored = self
            .get_job(&k)
            .await?
            .ok_or_else(|| job_not_found(job_id))?;
        if stored.record.state != JobState::Dead {
            return Err(not_dead(stored.record.state));
        }
        let now_ms = millis(self.now());
        let update = "SET #st = :pending, #att = :zero, #av = :now, #due = :due, #upd = :now \
                      REMOVE #rh";
        let condition = "#st = :dead";
        let body = json!({
            "TableName": self.table,
            "Key": k.key(),
            "UpdateExpression": update,
            "ConditionExpression": condition,
            "ExpressionAttributeNames": names(&[update, condition]),
            "ExpressionAttributeValues": {
                ":pending": s(JobState::Pending.as_str()),
                ":dead": s(JobState::Dead.as_str()),
                ":zero": n(0),
                ":now": n(now_ms),
                ":due": s(&k.due(now_ms)),
            },
        });
        if self.conditional("UpdateItem", &body).await?.is_none() {
            // Replayed by someone else in between.
            return Err(match self.get_job(&k).await? {
                None => job_not_found(job_id),
                Some(now) => not_dead(now.record.state),
            });
        }
        self.enqueue(std::slice::from_ref(&k)).await;
        Ok(())
    }

    async fn counts(&self) -> Result<OutboxCounts> {
        // The done jobs and the event records, then the unfinished jobs as `backlog` reads them
        // (separate queries either way: DynamoDB has no snapshot across them).
        let totals = OutboxCounts {
            done: self.count_index(JobState::Done.as_str()).await?,
            events: self.count_index(EVENT_STATUS).await?,
            ..OutboxCounts::default()
        };
        Ok(totals.with_backlog(self.backlog().await?))
    }

    async fn backlog(&self) -> Result<OutboxBacklog> {
        // Three `COUNT` queries of the status index, each reading only its state's entries
        // (the done jobs and the event records, which `counts` pages through, are not read).
        let backlog = OutboxBacklog {
            pending: self.count_index(JobState::Pending.as_str()).await?,
            leased: self.count_index(JobState::Leased.as_str()).await?,
            dead: self.count_index(JobState::Dead.as_str()).await?,
            ..OutboxBacklog::default()
        };
        // The status index is sorted by due time: its first pending entry is the oldest.
        let oldest = match self
            .query_index(JobState::Pending.as_str(), None, 1)
            .await?
            .first()
        {
            None => None,
            Some(e) => Some(e.due_time()?),
        };
        Ok(backlog.with_oldest_pending(oldest, self.clock.now()))
    }

    async fn purge(&self, older_than: SystemTime) -> Result<PurgeOutcome> {
        let cut_ms = millis(older_than);
        let bound = due_before(cut_ms);
        let mut outcome = PurgeOutcome::default();

        let condition = "#st = :done AND #upd < :cut";
        let mut start = None;
        loop {
            let (page, next) = self
                .query_page(JobState::Done.as_str(), Some(&bound), 1000, start)
                .await?;
            for e in page {
                let body = json!({
                    "TableName": self.table,
                    "Key": e.job_key()?.key(),
                    "ConditionExpression": condition,
                    "ExpressionAttributeNames": names(&[condition]),
                    "ExpressionAttributeValues": {
                        ":done": s(JobState::Done.as_str()),
                        ":cut": n(cut_ms),
                    },
                });
                if self.conditional("DeleteItem", &body).await?.is_some() {
                    outcome.jobs += 1;
                }
            }
            match next {
                Some(k) => start = Some(k),
                None => break,
            }
        }

        let condition = "attribute_exists(#pk)";
        let mut start = None;
        loop {
            let (page, next) = self
                .query_page(EVENT_STATUS, Some(&bound), 1000, start)
                .await?;
            for e in page {
                // No new job can join a recorded event, so "no jobs left" stays true.
                if self.event_has_jobs(&e.pk).await? {
                    continue;
                }
                let body = json!({
                    "TableName": self.table,
                    "Key": key(e.event_id()?, EVENT_SK),
                    "ConditionExpression": condition,
                    "ExpressionAttributeNames": names(&[condition]),
                });
                if self.conditional("DeleteItem", &body).await?.is_some() {
                    outcome.events += 1;
                }
            }
            match next {
                Some(k) => start = Some(k),
                None => break,
            }
        }
        Ok(outcome)
    }
}
