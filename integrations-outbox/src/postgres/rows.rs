//! Job rows of the Postgres outbox: the SQL that reads them and their conversion to [`JobRecord`].

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sqlx::Row;
use sqlx::postgres::PgRow;

use super::corrupt;
use crate::types::{Job, JobId, JobRecord, JobState, LeaseToken};
use integrations_core::{ErrorRecord, IdempotencyKey, Result};

/// The columns every job read selects, of the table aliased `t` (`""` for none): `payload` and
/// `last_error` as text, parsed here.
pub(crate) fn cols(t: &str) -> String {
    format!(
        "{t}id, {t}event_id, {t}kind, {t}idempotency_key, {t}payload::text AS payload, {t}state, \
         {t}attempts, {t}max_attempts, {t}available_at, {t}lease_token, {t}leased_by, \
         {t}lease_expires_at, {t}last_error::text AS last_error, {t}may_have_acted, \
         {t}created_at, {t}updated_at, {t}traceparent"
    )
}

/// Jobs per state and the number of events: the one place the counts are read (a later field
/// of `OutboxCounts`, such as the oldest pending job's age, goes here).
pub(crate) const COUNTS: &str = "SELECT
    (SELECT count(*) FROM integrations_outbox_jobs WHERE state = 'pending') AS pending,
    (SELECT count(*) FROM integrations_outbox_jobs WHERE state = 'leased') AS leased,
    (SELECT count(*) FROM integrations_outbox_jobs WHERE state = 'done') AS done,
    (SELECT count(*) FROM integrations_outbox_jobs WHERE state = 'dead') AS dead,
    (SELECT count(*) FROM integrations_outbox_events) AS events,
    (SELECT min(available_at) FROM integrations_outbox_jobs WHERE state = 'pending')
        AS oldest_pending";

/// [`OutboxStore::backlog`](crate::OutboxStore::backlog): each count on the partial index of its
/// state, the oldest due time the first entry of the pending index; no done job and no event
/// record is read (`plan_tests::the_backlog_reads_only_unfinished_jobs`).
pub(crate) const BACKLOG: &str = "SELECT
    (SELECT count(*) FROM integrations_outbox_jobs WHERE state = 'pending') AS pending,
    (SELECT count(*) FROM integrations_outbox_jobs WHERE state = 'leased') AS leased,
    (SELECT count(*) FROM integrations_outbox_jobs WHERE state = 'dead') AS dead,
    (SELECT min(available_at) FROM integrations_outbox_jobs WHERE state = 'pending')
        AS oldest_pending";

/// A job with its current lease token.
pub(crate) struct Loaded {
    pub(crate) record: JobRecord,
    pub(crate) token: Option<LeaseToken>,
}

/// Milliseconds since 1970 (saturating; negative before).
pub(crate) fn to_millis(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        Err(e) => i64::try_from(e.duration().as_millis())
            .map(|m| -m)
            .unwrap_or(i64::MIN),
    }
}

/// The instant `ms` milliseconds after (or before) 1970.
pub(crate) fn from_millis(ms: i64) -> SystemTime {
    let d = Duration::from_millis(ms.unsigned_abs());
    if ms >= 0 {
        UNIX_EPOCH.checked_add(d).unwrap_or(UNIX_EPOCH)
    } else {
        UNIX_EPOCH.checked_sub(d).unwrap_or(UNIX_EPOCH)
    }
}

/// A stored count or attempt number as `u32`.
pub(crate) fn small(what: &str, v: i64) -> Result<u32> {
    u32::try_from(v).map_err(|_| corrupt(what, format!("{v} is out of range")))
}

fn col<'r, T>(row: &'r PgRow, name: &str) -> Result<T>
where
    T: sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres>,
{
    row.try_get(name).map_err(|e| corrupt(name, e))
}

/// Parses a row selected with [`cols`].
pub(crate) fn parse(row: &PgRow) -> Result<Loaded> {
    let key: String = col(row, "idempotency_key")?;
    let key = IdempotencyKey::new(key).map_err(|e| corrupt("idempotency key", e))?;
    let payload: String = col(row, "payload")?;
    let payload = serde_json::from_str(&payload).map_err(|e| corrupt("payload", e))?;
    let state: String = col(row, "state")?;
    let state = JobState::parse(&state)
        .ok_or_else(|| corrupt("job state", format!("unknown state `{state}`")))?;
    let may_have_acted: Option<bool> = col(row, "may_have_acted")?;
    let last_error = col::<Option<String>>(row, "last_error")?
        .map(|s| serde_json::from_str::<ErrorRecord>(&s))
        .transpose()
        .map_err(|e| corrupt("last error", e))?
        .map(|mut e| {
            e.may_have_acted = e.may_have_acted.or(may_have_acted);
            e
        });
    let id: i64 = col(row, "id")?;
    Ok(Loaded {
        record: JobRecord {
            job: Job {
                id: JobId::new(id.to_string()),
                event_id: col(row, "event_id")?,
                kind: col(row, "kind")?,
                payload,
                idempotency_key: key,
                attempt: small("attempts", col(row, "attempts")?)?,
                max_attempts: small("max_attempts", col(row, "max_attempts")?)?,
                created_at: from_millis(col(row, "created_at")?),
                traceparent: col(row, "traceparent")?,
            },
            state,
            available_at: from_millis(col(row, "available_at")?),
            leased_by: col(row, "leased_by")?,
            lease_expires_at: col::<Option<i64>>(row, "lease_expires_at")?.map(from_millis),
            last_error,
            updated_at: from_millis(col(row, "updated_at")?),
        },
        token: col::<Option<String>>(row, "lease_token")?.map(LeaseToken::new),
    })
}

/// A job id as the table's key, or `None` for an id this store never issued.
pub(crate) fn db_id(id: &JobId) -> Option<i64> {
    id.as_str().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn millis_round_trip() {
        for ms in [-5_000, 0, 1, 1_700_000_000_123] {
            assert_eq!(to_millis(from_millis(ms)), ms);
        }
        assert!(small("attempts", -1).is_err());
        assert_eq!(small("attempts", 3).unwrap(), 3);
        assert_eq!(db_id(&JobId::new("12")), Some(12));
        assert_eq!(db_id(&JobId::new("x")), None);
    }
}
