//! The plain data of the outbox: jobs, leases, outcomes and error records.

use std::fmt;
use std::time::{Duration, SystemTime};

use crate::Redacted;
use integrations_core::ErrorRecord;
use integrations_core::{Error, ErrorKind, IdempotencyKey};

/// Attempts a job gets unless [`NewJob::with_max_attempts`] says otherwise.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 8;

/// A job's id, unique within its store. Opaque: stores choose the format (the SQLite and
/// in-memory stores use a decimal sequence number).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct JobId(String);

impl JobId {
    /// Wraps an id issued by a store.
    pub fn new(id: impl Into<String>) -> Self {
        JobId(id.into())
    }
    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "JobId({})", self.0)
    }
}

/// Proof of holding a job's lease, issued by [`OutboxStore::claim`](super::OutboxStore::claim).
///
/// Every claim issues a fresh token and the store keeps only the latest, so a worker whose lease
/// expired and whose job was claimed again (a fencing token) can no longer complete or fail it.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct LeaseToken(String);

impl LeaseToken {
    /// Wraps a token issued by a store.
    pub fn new(token: impl Into<String>) -> Self {
        LeaseToken(token.into())
    }
    /// A fresh random 128-bit token (hex), for store implementations.
    pub fn random() -> Self {
        LeaseToken(format!(
            "{:016x}{:016x}",
            fastrand::u64(..),
            fastrand::u64(..)
        ))
    }
    /// The token.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for LeaseToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LeaseToken({})", self.0)
    }
}

/// A side effect to record with an event: a kind (which handler delivers it) and a JSON payload.
///
/// The job's [`IdempotencyKey`] is derived when it is recorded: `"{event_id}/{kind}"`, plus
/// `"/{suffix}"` when [`NewJob::with_key_suffix`] is set (needed only when one event causes two
/// jobs of the same kind).
///
/// ```
/// use integrations_outbox::NewJob;
///
/// let job = NewJob::new("email.confirmation", serde_json::json!({ "order_id": "42" }))
///     .with_max_attempts(5);
/// assert_eq!(job.idempotency_key("evt_1")?.as_str(), "evt_1/email.confirmation");
/// # Ok::<(), integrations_core::Error>(())
/// ```
#[derive(Clone, PartialEq)]
#[non_exhaustive]
pub struct NewJob {
    /// Job kind, the handler it is dispatched to (`"email.confirmation"`).
    pub kind: String,
    /// What the handler needs to deliver it.
    pub payload: serde_json::Value,
    /// Distinguishes jobs of one kind caused by the same event.
    pub key_suffix: Option<String>,
    /// Deliveries attempted before the job moves to the dead-letter queue (at least 1).
    pub max_attempts: u32,
    /// The W3C `traceparent` of the span that recorded the job, so that its handler's span can
    /// link to it. `None` lets the store take the current span's (feature `opentelemetry`);
    /// a malformed value is dropped with a warning when recorded (see [`resolve_traceparent`]).
    ///
    /// [`resolve_traceparent`]: crate::resolve_traceparent
    pub traceparent: Option<String>,
}

impl NewJob {
    /// A job of `kind` carrying `payload`, with [`DEFAULT_MAX_ATTEMPTS`].
    pub fn new(kind: impl Into<String>, payload: serde_json::Value) -> Self {
        NewJob {
            kind: kind.into(),
            payload,
            key_suffix: None,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            traceparent: None,
        }
    }

    /// Records `traceparent` (a W3C `traceparent` value, as received in a header or a message
    /// attribute) with the job instead of the current span's.
    #[must_use]
    pub fn with_traceparent(mut self, traceparent: impl Into<String>) -> Self {
        self.traceparent = Some(traceparent.into());
        self
    }

    /// Adds a suffix to the derived idempotency key.
    #[must_use]
    pub fn with_key_suffix(mut self, suffix: impl Into<String>) -> Self {
        self.key_suffix = Some(suffix.into());
        self
    }

    /// Sets the number of attempts before dead-lettering.
    #[must_use]
    pub fn with_max_attempts(mut self, max_attempts: u32) -> Self {
        self.max_attempts = max_attempts;
        self
    }

    /// The key this job gets when recorded for `event_id`.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] if the event id, kind or suffix is empty or not printable ASCII.
    pub fn idempotency_key(&self, event_id: &str) -> Result<IdempotencyKey, Error> {
        if event_id.is_empty() {
            return Err(Error::invalid_input("event_id", "must not be empty"));
        }
        if self.kind.is_empty() {
            return Err(Error::invalid_input("kind", "must not be empty"));
        }
        let key = IdempotencyKey::derive(event_id, &self.kind)?;
        match &self.key_suffix {
            Some(suffix) => key.child(suffix),
            None => Ok(key),
        }
    }
}

impl fmt::Debug for NewJob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewJob")
            .field("kind", &self.kind)
            .field("payload", &Redacted(&self.payload))
            .field("key_suffix", &self.key_suffix)
            .field("max_attempts", &self.max_attempts)
            .field("traceparent", &self.traceparent)
            .finish()
    }
}

/// A recorded job, as handlers see it.
#[derive(Clone, PartialEq)]
pub struct Job {
    /// The store's id.
    pub id: JobId,
    /// The event that caused it.
    pub event_id: String,
    /// Kind (selects the handler).
    pub kind: String,
    /// Payload.
    pub payload: serde_json::Value,
    /// Deterministic key: pass it to providers that deduplicate (Stripe `Idempotency-Key`, SNS
    /// FIFO `MessageDeduplicationId`, the first cell of a Sheets row).
    pub idempotency_key: IdempotencyKey,
    /// For a claimed job, the number of this delivery attempt (1-based); in a [`JobRecord`], the
    /// attempts made so far.
    pub attempt: u32,
    /// Attempts allowed before dead-lettering.
    pub max_attempts: u32,
    /// When the event was recorded.
    pub created_at: SystemTime,
    /// The W3C `traceparent` of the span that recorded the job, if any: the dispatcher links
    /// the handler's span to it.
    pub traceparent: Option<String>,
}

impl fmt::Debug for Job {
    // The payload may hold personal data (addresses, names): it is not printed.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Job")
            .field("id", &self.id)
            .field("event_id", &self.event_id)
            .field("kind", &self.kind)
            .field("payload", &Redacted(&self.payload))
            .field("idempotency_key", &self.idempotency_key)
            .field("attempt", &self.attempt)
            .field("max_attempts", &self.max_attempts)
            .field("traceparent", &self.traceparent)
            .finish_non_exhaustive()
    }
}

/// A job held under a lease by one worker.
#[derive(Debug, Clone)]
pub struct ClaimedJob {
    /// The job; `job.attempt` is this attempt's number.
    pub job: Job,
    /// Pass it back to [`complete`](super::OutboxStore::complete) or
    /// [`fail`](super::OutboxStore::fail).
    pub lease: LeaseToken,
    /// When the lease runs out and another worker may claim the job.
    pub lease_expires_at: SystemTime,
}

/// Which of an event's new jobs
/// [`OutboxStore::record_event_leased`](super::OutboxStore::record_event_leased) leases as it
/// records them: up to `max` of those whose kind is in `kinds`, in the order given, to
/// `worker_id` for `lease` (the arguments of the [`claim_kinds`](super::OutboxStore::claim_kinds)
/// the worker would otherwise make right after recording).
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct LeaseOnRecord<'a> {
    /// The worker the jobs are leased to (recorded on the lease, as by a claim).
    pub worker_id: &'a str,
    /// The kinds it handles.
    pub kinds: &'a [&'a str],
    /// How many jobs it has room for; `0` leases none.
    pub max: usize,
    /// How long each lease lasts.
    pub lease: Duration,
}

impl<'a> LeaseOnRecord<'a> {
    /// Up to `max` jobs of `kinds` for `worker_id`, each under a lease of `lease`.
    pub const fn new(
        worker_id: &'a str,
        kinds: &'a [&'a str],
        max: usize,
        lease: Duration,
    ) -> Self {
        LeaseOnRecord {
            worker_id,
            kinds,
            max,
            lease,
        }
    }

    /// Which of `jobs` to lease (by position): the first `max` whose kind is in `kinds`.
    pub fn pick(&self, jobs: &[NewJob]) -> Vec<bool> {
        let mut left = self.max;
        jobs.iter()
            .map(|j| {
                let take = left > 0 && self.kinds.contains(&j.kind.as_str());
                if take {
                    left -= 1;
                }
                take
            })
            .collect()
    }
}

/// What [`OutboxStore::record_event`](super::OutboxStore::record_event) did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordOutcome {
    /// First delivery of the event: it and its jobs were written, in one transaction.
    Recorded {
        /// Ids of the new jobs, in the order given.
        job_ids: Vec<JobId>,
    },
    /// The event id was recorded before: nothing was written.
    Duplicate,
}

impl RecordOutcome {
    /// `true` for [`RecordOutcome::Duplicate`].
    pub fn is_duplicate(&self) -> bool {
        matches!(self, RecordOutcome::Duplicate)
    }
}

/// What [`OutboxStore::fail`](super::OutboxStore::fail) did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailOutcome {
    /// The job is pending again and may be claimed from `retry_at`.
    Retrying {
        /// Attempts made so far.
        attempts: u32,
        /// Earliest next claim.
        retry_at: SystemTime,
    },
    /// The failure was permanent or the attempts are used up: the job is in the dead-letter queue.
    DeadLettered {
        /// Attempts made.
        attempts: u32,
    },
}

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JobState {
    /// Waiting to be claimed (possibly not before a retry time).
    Pending,
    /// Held by a worker under a lease.
    Leased,
    /// Delivered.
    Done,
    /// In the dead-letter queue.
    Dead,
}

impl JobState {
    /// Stable lowercase name, as stored.
    pub const fn as_str(self) -> &'static str {
        match self {
            JobState::Pending => "pending",
            JobState::Leased => "leased",
            JobState::Done => "done",
            JobState::Dead => "dead",
        }
    }

    /// The state named `s` (see [`JobState::as_str`]).
    pub fn parse(s: &str) -> Option<Self> {
        [
            JobState::Pending,
            JobState::Leased,
            JobState::Done,
            JobState::Dead,
        ]
        .into_iter()
        .find(|st| st.as_str() == s)
    }
}

/// A job with its state, for inspection.
#[derive(Debug, Clone)]
pub struct JobRecord {
    /// The job; `job.attempt` counts the attempts made so far.
    pub job: Job,
    /// State.
    pub state: JobState,
    /// Earliest claim while pending.
    pub available_at: SystemTime,
    /// Worker holding the lease, while leased.
    pub leased_by: Option<String>,
    /// End of the lease, while leased.
    pub lease_expires_at: Option<SystemTime>,
    /// The last failure, if any (kept after a replay until the next one).
    pub last_error: Option<ErrorRecord>,
    /// Last state change.
    pub updated_at: SystemTime,
}

/// A job in the dead-letter queue.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    /// The job; `job.attempt` counts the attempts made.
    pub job: Job,
    /// Why it was given up.
    pub error: ErrorRecord,
    /// When it was given up.
    pub dead_at: SystemTime,
    /// Whether the job may already have acted (its last attempt ended ambiguously: a timeout, a
    /// `5xx` after the request was sent, a lease that expired mid-attempt), so a replay may
    /// repeat its effect — check the provider (or rely on its idempotency key) before replaying.
    /// `false` when the last error certainly left no effect (a rejection, a not-processed
    /// error). From [`ErrorRecord::may_have_acted`].
    pub may_have_acted: bool,
}

impl DeadLetter {
    /// The dead letter of `record`, if it is in the dead-letter queue.
    pub fn from_record(record: JobRecord) -> Option<Self> {
        if record.state != JobState::Dead {
            return None;
        }
        let error = record.last_error.unwrap_or_else(|| ErrorRecord {
            kind: ErrorKind::Provider,
            message: "dead-lettered without a recorded error".to_owned(),
            provider: None,
            code: None,
            decline_code: None,
            request_id: None,
            status: None,
            retryable: false,
            may_have_acted: None,
        });
        Some(DeadLetter {
            job: record.job,
            may_have_acted: error.may_have_acted(),
            error,
            dead_at: record.updated_at,
        })
    }
}

/// Jobs per state, the event records, and how long the oldest due job has waited for a worker.
///
/// Counting done jobs and event records reads all of them: the cost of
/// [`OutboxStore::counts`](super::OutboxStore::counts) grows with the store until
/// [`purge`](super::OutboxStore::purge) removes them. For anything that asks often, read
/// [`OutboxBacklog`] instead.
///
/// `oldest_pending_at` is the earliest time a pending job became due (it was recorded, replayed,
/// or its retry time came); `oldest_pending_age` is how long before the store's `now` that was,
/// zero when every pending job waits for a retry time still ahead. Both are `None` with no
/// pending job. An age that keeps growing means no worker is claiming jobs (or none keeps up);
/// a job backing off before its next attempt does not raise it. JSON writes them as
/// milliseconds since 1970 and as seconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct OutboxCounts {
    /// Pending (including those waiting for a retry time).
    pub pending: u64,
    /// Leased.
    pub leased: u64,
    /// Done.
    pub done: u64,
    /// Dead-lettered.
    pub dead: u64,
    /// Event ids recorded (the dedup records).
    pub events: u64,
    /// The earliest due time of a pending job.
    #[serde(serialize_with = "ser_unix_millis")]
    pub oldest_pending_at: Option<SystemTime>,
    /// How long the oldest due pending job has waited (zero if it is not due yet).
    #[serde(serialize_with = "ser_secs")]
    pub oldest_pending_age: Option<Duration>,
}

/// How long a pending job due at `oldest` has waited at `now` (zero if it is not due yet).
fn pending_age(oldest: Option<SystemTime>, now: SystemTime) -> Option<Duration> {
    oldest.map(|t| now.duration_since(t).unwrap_or(Duration::ZERO))
}

impl OutboxCounts {
    /// Sets [`oldest_pending_at`](Self::oldest_pending_at) and the age it has at `now`, for
    /// store implementations.
    #[must_use]
    pub fn with_oldest_pending(mut self, oldest: Option<SystemTime>, now: SystemTime) -> Self {
        self.oldest_pending_at = oldest;
        self.oldest_pending_age = pending_age(oldest, now);
        self
    }

    /// These counts with the unfinished jobs (pending, leased, dead, oldest pending) taken from
    /// `backlog`, a later reading; `done` and `events` stay as they were.
    #[must_use]
    pub fn with_backlog(mut self, backlog: OutboxBacklog) -> Self {
        self.pending = backlog.pending;
        self.leased = backlog.leased;
        self.dead = backlog.dead;
        self.oldest_pending_at = backlog.oldest_pending_at;
        self.oldest_pending_age = backlog.oldest_pending_age;
        self
    }
}

/// What is left to do in the outbox: the unfinished jobs, without the done ones or the event
/// records.
///
/// Read by [`OutboxStore::backlog`](super::OutboxStore::backlog), whose cost follows these
/// figures, not the size of the store; [`OutboxCounts`] holds them too, with the totals of done
/// jobs and recorded events. `oldest_pending_at` and `oldest_pending_age` mean what they mean
/// there.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct OutboxBacklog {
    /// Pending (including those waiting for a retry time).
    pub pending: u64,
    /// Leased.
    pub leased: u64,
    /// Dead-lettered.
    pub dead: u64,
    /// The earliest due time of a pending job.
    #[serde(serialize_with = "ser_unix_millis")]
    pub oldest_pending_at: Option<SystemTime>,
    /// How long the oldest due pending job has waited (zero if it is not due yet).
    #[serde(serialize_with = "ser_secs")]
    pub oldest_pending_age: Option<Duration>,
}

impl OutboxBacklog {
    /// Sets [`oldest_pending_at`](Self::oldest_pending_at) and the age it has at `now`, for
    /// store implementations.
    #[must_use]
    pub fn with_oldest_pending(mut self, oldest: Option<SystemTime>, now: SystemTime) -> Self {
        self.oldest_pending_at = oldest;
        self.oldest_pending_age = pending_age(oldest, now);
        self
    }

    /// Jobs not finished yet: pending and leased (dead letters wait for a person, not a worker).
    pub fn unfinished(&self) -> u64 {
        self.pending + self.leased
    }
}

impl From<OutboxCounts> for OutboxBacklog {
    fn from(c: OutboxCounts) -> Self {
        OutboxBacklog {
            pending: c.pending,
            leased: c.leased,
            dead: c.dead,
            oldest_pending_at: c.oldest_pending_at,
            oldest_pending_age: c.oldest_pending_age,
        }
    }
}

fn ser_unix_millis<S: serde::Serializer>(
    t: &Option<SystemTime>,
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    match t {
        None => s.serialize_none(),
        Some(t) => s.serialize_some(&to_millis(*t)),
    }
}

fn ser_secs<S: serde::Serializer>(
    d: &Option<Duration>,
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    match d {
        None => s.serialize_none(),
        Some(d) => s.serialize_some(&d.as_secs_f64()),
    }
}

/// What [`OutboxStore::purge`](super::OutboxStore::purge) removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PurgeOutcome {
    /// Done jobs removed.
    pub jobs: u64,
    /// Event records removed (only those with no jobs left).
    pub events: u64,
}

/// Milliseconds since 1970 (saturating; negative before).
pub(crate) fn to_millis(t: SystemTime) -> i64 {
    match t.duration_since(std::time::UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        Err(e) => i64::try_from(e.duration().as_millis())
            .map(|m| -m)
            .unwrap_or(i64::MIN),
    }
}

/// The instant `ms` milliseconds after (or before) 1970.
#[cfg(any(feature = "sqlite", test))]
pub(crate) fn from_millis(ms: i64) -> SystemTime {
    let epoch = std::time::UNIX_EPOCH;
    let d = std::time::Duration::from_millis(ms.unsigned_abs());
    if ms >= 0 {
        epoch.checked_add(d).unwrap_or(epoch)
    } else {
        epoch.checked_sub(d).unwrap_or(epoch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    #[test]
    fn keys_derive_from_event_kind_and_suffix() {
        let j = NewJob::new("notify", serde_json::Value::Null);
        assert_eq!(j.idempotency_key("evt_9").unwrap().as_str(), "evt_9/notify");
        let j = j.with_key_suffix("ops");
        assert_eq!(
            j.idempotency_key("evt_9").unwrap().as_str(),
            "evt_9/notify/ops"
        );
        assert_eq!(
            NewJob::new("", serde_json::Value::Null)
                .idempotency_key("e")
                .unwrap_err()
                .field(),
            Some("kind")
        );
        assert_eq!(j.idempotency_key("").unwrap_err().field(), Some("event_id"));
    }

    #[test]
    fn debug_hides_payloads() {
        let payload = serde_json::json!({ "to": "jane@example.com", "secret": "sk_live_abc" });
        let new = NewJob::new("email", payload.clone());
        let job = Job {
            id: JobId::new("1"),
            event_id: "evt_1".into(),
            kind: "email".into(),
            payload,
            idempotency_key: new.idempotency_key("evt_1").unwrap(),
            attempt: 1,
            max_attempts: 3,
            created_at: UNIX_EPOCH,
            traceparent: None,
        };
        for s in [format!("{new:?}"), format!("{job:?}")] {
            assert!(!s.contains("jane@example.com"), "{s}");
            assert!(!s.contains("sk_live_abc"), "{s}");
            assert!(s.contains("redacted object, 2 keys"), "{s}");
        }
    }

    #[test]
    fn millis_round_trip() {
        for ms in [-5_000, 0, 1, 1_700_000_000_123] {
            assert_eq!(to_millis(from_millis(ms)), ms);
        }
        assert_eq!(JobState::parse("dead"), Some(JobState::Dead));
        assert_eq!(JobState::parse("x"), None);
        assert_ne!(LeaseToken::random(), LeaseToken::random());
    }
}
