//! Recording an event and its jobs in SQLite, some of them already leased
//! ([`OutboxStore::record_event_leased`](crate::OutboxStore::record_event_leased)).

use rusqlite::{Connection, params};

use super::exec;
use crate::store::prepare_jobs;
use crate::trace::resolve_traceparent;
use crate::types::{
    ClaimedJob, Job, JobId, LeaseOnRecord, LeaseToken, NewJob, RecordOutcome, from_millis,
};
use integrations_core::{Error, IdempotencyKey, Result};

/// The jobs to insert already leased: which ones, to whom, until when (ms).
struct Leasing {
    picked: Vec<bool>,
    worker: String,
    expires: i64,
}

/// An event and its jobs, validated and serialised before any SQL runs.
pub(super) struct Prepared {
    event_id: String,
    jobs: Vec<NewJob>,
    keys: Vec<IdempotencyKey>,
    payloads: Vec<String>,
    traceparents: Vec<Option<String>>,
    now: i64,
    leasing: Option<Leasing>,
}

impl Prepared {
    pub(super) fn new(event_id: &str, jobs: Vec<NewJob>, now: i64) -> Result<Prepared> {
        let keys = prepare_jobs(event_id, &jobs)?;
        let payloads = jobs
            .iter()
            .map(|j| serde_json::to_string(&j.payload))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| Error::invalid_input("payload", e.to_string()))?;
        let traceparents = jobs.iter().map(resolve_traceparent).collect();
        Ok(Prepared {
            event_id: event_id.to_owned(),
            jobs,
            keys,
            payloads,
            traceparents,
            now,
            leasing: None,
        })
    }

    /// Inserts the jobs `to` picks already leased (its arguments checked by the caller).
    pub(super) fn leased(mut self, to: LeaseOnRecord<'_>) -> Prepared {
        let lease_ms = i64::try_from(to.lease.as_millis()).unwrap_or(i64::MAX);
        self.leasing = Some(Leasing {
            picked: to.pick(&self.jobs),
            worker: to.worker_id.to_owned(),
            expires: self.now.saturating_add(lease_ms),
        });
        self
    }

    /// The event row and, if it is new, its jobs, on `tx` (inside a transaction).
    pub(super) fn insert(&self, tx: &Connection) -> Result<RecordOutcome> {
        self.insert_leased(tx).map(|(outcome, _)| outcome)
    }

    /// As [`insert`](Prepared::insert), and the jobs inserted leased, as claimed.
    ///
    /// A leased job is written once, in its leased state (attempt 1, token, worker, expiry):
    /// no pending row for a claim to rewrite a moment later.
    pub(super) fn insert_leased(
        &self,
        tx: &Connection,
    ) -> Result<(RecordOutcome, Vec<ClaimedJob>)> {
        let inserted = exec(
            tx,
            "INSERT INTO outbox_events (event_id, recorded_at) VALUES (?1, ?2)
             ON CONFLICT (event_id) DO NOTHING",
            params![self.event_id, self.now],
        )?;
        if inserted == 0 {
            return Ok((RecordOutcome::Duplicate, Vec::new()));
        }
        let mut job_ids = Vec::with_capacity(self.jobs.len());
        let mut claimed = Vec::new();
        for (i, (((job, key), payload), traceparent)) in self
            .jobs
            .iter()
            .zip(&self.keys)
            .zip(&self.payloads)
            .zip(&self.traceparents)
            .enumerate()
        {
            let lease = self
                .leasing
                .as_ref()
                .filter(|l| l.picked.get(i).copied().unwrap_or(false))
                .map(|l| (LeaseToken::random(), l));
            match &lease {
                None => exec(
                    tx,
                    "INSERT INTO outbox_jobs (event_id, kind, idempotency_key, payload, state,
                        attempts, max_attempts, available_at, created_at, updated_at, traceparent)
                     VALUES (?1, ?2, ?3, ?4, 'pending', 0, ?5, ?6, ?6, ?6, ?7)",
                    params![
                        self.event_id,
                        job.kind,
                        key.as_str(),
                        payload,
                        job.max_attempts,
                        self.now,
                        traceparent
                    ],
                )?,
                Some((token, l)) => exec(
                    tx,
                    "INSERT INTO outbox_jobs (event_id, kind, idempotency_key, payload, state,
                        attempts, max_attempts, available_at, created_at, updated_at, traceparent,
                        lease_token, leased_by, lease_expires_at)
                     VALUES (?1, ?2, ?3, ?4, 'leased', 1, ?5, ?6, ?6, ?6, ?7, ?8, ?9, ?10)",
                    params![
                        self.event_id,
                        job.kind,
                        key.as_str(),
                        payload,
                        job.max_attempts,
                        self.now,
                        traceparent,
                        token.as_str(),
                        l.worker,
                        l.expires
                    ],
                )?,
            };
            let id = JobId::new(tx.last_insert_rowid().to_string());
            if let Some((token, l)) = lease {
                claimed.push(ClaimedJob {
                    job: Job {
                        id: id.clone(),
                        event_id: self.event_id.clone(),
                        kind: job.kind.clone(),
                        payload: job.payload.clone(),
                        idempotency_key: key.clone(),
                        attempt: 1,
                        max_attempts: job.max_attempts,
                        created_at: from_millis(self.now),
                        traceparent: traceparent.clone(),
                    },
                    lease: token,
                    lease_expires_at: from_millis(l.expires),
                });
            }
            job_ids.push(id);
        }
        Ok((RecordOutcome::Recorded { job_ids }, claimed))
    }
}
