//! Recording an event and its jobs in one statement: [`record`], shared by the outbox's own
//! commits and the caller's transactions.

use std::collections::HashMap;

use sqlx::Row;
use sqlx::postgres::PgConnection;

use super::rows::from_millis;
use super::{corrupt, sql_error};
use crate::store::prepare_jobs;
use crate::trace::resolve_traceparent;
use crate::types::{ClaimedJob, Job, JobId, LeaseOnRecord, LeaseToken, NewJob, RecordOutcome};
use integrations_core::{Error, ErrorKind, Result};

/// The event's dedup row and all its jobs in one statement (so one round trip, and one commit
/// when run outside a transaction). The jobs are inserted only if the event row was; those
/// flagged in `$9` already leased to `$10` until `$11` (attempt 1, a fresh token), as a claim
/// would leave them. With a
/// channel in `$7` (inside a caller's transaction) the notification wakes listening dispatchers
/// when (and only if) that transaction commits; with `$7` NULL nothing is notified here (the
/// store's own commits announce afterwards, see [`Announcer`](super::listen::Announcer)).
const RECORD: &str = "WITH ev AS (
        INSERT INTO integrations_outbox_events (event_id, recorded_at) VALUES ($1, $2)
        ON CONFLICT (event_id) DO NOTHING RETURNING event_id
    ), ins AS (
        INSERT INTO integrations_outbox_jobs (event_id, kind, idempotency_key, payload, state,
            attempts, max_attempts, available_at, created_at, updated_at, traceparent,
            lease_token, leased_by, lease_expires_at)
        SELECT ev.event_id, t.kind, t.key, t.payload::jsonb,
            CASE WHEN t.leased THEN 'leased' ELSE 'pending' END,
            CASE WHEN t.leased THEN 1 ELSE 0 END, t.max_attempts, $2, $2, $2, t.traceparent,
            CASE WHEN t.leased THEN replace(gen_random_uuid()::text, '-', '') END,
            CASE WHEN t.leased THEN $10::text END,
            CASE WHEN t.leased THEN $11::bigint END
        FROM ev CROSS JOIN unnest($3::text[], $4::text[], $5::text[], $6::bigint[], $8::text[],
            $9::bool[]) AS t(kind, key, payload, max_attempts, traceparent, leased)
        RETURNING id, idempotency_key, lease_token
    )
    SELECT (SELECT count(*) FROM ev) AS recorded,
        (SELECT array_agg(id) FROM ins) AS ids,
        (SELECT array_agg(idempotency_key) FROM ins) AS keys,
        (SELECT array_agg(coalesce(lease_token, '')) FROM ins) AS tokens,
        (SELECT count(*) FROM (SELECT pg_notify($7, '') FROM ins WHERE $7::text IS NOT NULL
            LIMIT 1) n) AS notified";

/// [`RECORD`] on `conn`, after validating the jobs (nothing is sent for invalid input); the jobs
/// `to` picks are inserted leased and returned as claimed.
pub(super) async fn record(
    conn: &mut PgConnection,
    now: i64,
    event_id: &str,
    jobs: &[NewJob],
    notify: Option<&str>,
    to: Option<LeaseOnRecord<'_>>,
) -> Result<(RecordOutcome, Vec<ClaimedJob>)> {
    let keys = prepare_jobs(event_id, jobs)?;
    let mut kinds = Vec::with_capacity(jobs.len());
    let mut payloads = Vec::with_capacity(jobs.len());
    let mut max_attempts = Vec::with_capacity(jobs.len());
    for job in jobs {
        kinds.push(job.kind.as_str());
        payloads.push(
            serde_json::to_string(&job.payload)
                .map_err(|e| Error::invalid_input("payload", e.to_string()))?,
        );
        max_attempts.push(i64::from(job.max_attempts));
    }
    let key_strs: Vec<&str> = keys.iter().map(|k| k.as_str()).collect();
    let traceparents: Vec<Option<String>> = jobs.iter().map(resolve_traceparent).collect();
    let picked = to.map_or_else(|| vec![false; jobs.len()], |to| to.pick(jobs));
    let expires =
        to.map(|to| now.saturating_add(i64::try_from(to.lease.as_millis()).unwrap_or(i64::MAX)));
    let row = sqlx::query(RECORD)
        .bind(event_id)
        .bind(now)
        .bind(&kinds)
        .bind(&key_strs)
        .bind(&payloads)
        .bind(&max_attempts)
        .bind(notify)
        .bind(&traceparents)
        .bind(&picked)
        .bind(to.map(|to| to.worker_id))
        .bind(expires)
        .fetch_one(conn)
        .await
        .map_err(|e| {
            let e = sql_error(e);
            if e.kind() == ErrorKind::InvalidInput {
                // A data exception here is a payload jsonb refuses (a `\u0000` in a string).
                Error::invalid_input("payload", e.message().to_owned())
            } else {
                e
            }
        })?;
    let recorded: i64 = row.try_get("recorded").map_err(|e| corrupt("record", e))?;
    if recorded == 0 {
        return Ok((RecordOutcome::Duplicate, Vec::new()));
    }
    let ids: Option<Vec<i64>> = row.try_get("ids").map_err(|e| corrupt("job ids", e))?;
    let stored_keys: Option<Vec<String>> =
        row.try_get("keys").map_err(|e| corrupt("job keys", e))?;
    let tokens: Option<Vec<String>> = row.try_get("tokens").map_err(|e| corrupt("tokens", e))?;
    let by_key: HashMap<String, (i64, String)> = stored_keys
        .unwrap_or_default()
        .into_iter()
        .zip(
            ids.unwrap_or_default()
                .into_iter()
                .zip(tokens.unwrap_or_default()),
        )
        .collect();
    let mut job_ids = Vec::with_capacity(jobs.len());
    let mut claimed = Vec::new();
    for (i, key) in keys.into_iter().enumerate() {
        let (id, token) = by_key
            .get(key.as_str())
            .ok_or_else(|| corrupt("job ids", format!("no id returned for `{key}`")))?;
        let id = JobId::new(id.to_string());
        if let (Some(job), true, Some(expires)) = (jobs.get(i), picked[i], expires) {
            if token.is_empty() {
                return Err(corrupt("lease token", "missing on a job recorded leased"));
            }
            claimed.push(ClaimedJob {
                job: Job {
                    id: id.clone(),
                    event_id: event_id.to_owned(),
                    kind: job.kind.clone(),
                    payload: job.payload.clone(),
                    idempotency_key: key,
                    attempt: 1,
                    max_attempts: job.max_attempts,
                    created_at: from_millis(now),
                    traceparent: traceparents[i].clone(),
                },
                lease: LeaseToken::new(token.clone()),
                lease_expires_at: from_millis(expires),
            });
        }
        job_ids.push(id);
    }
    Ok((RecordOutcome::Recorded { job_ids }, claimed))
}
