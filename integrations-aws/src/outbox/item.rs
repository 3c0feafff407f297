//! The table layout: keys, job ids, the status index's sort keys, and items ↔ records.
//!
//! | item | `pk` | `sk` | `status` | `due` (index sort key) |
//! |---|---|---|---|---|
//! | event | `EVT#{event_id}` | `EVENT` | `event` | `{recorded_at}#{event_id}` |
//! | job | `EVT#{event_id}` | `JOB#{nn}` | `pending` / `leased` / `done` / `dead` | see [`due_key`] |
//!
//! Times are milliseconds since 1970 on the store's clock, zero-padded to 16 digits in `due`, so
//! that string order is time order.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use integrations_core::{Error, IdempotencyKey, Result};
use integrations_outbox::{ErrorRecord, Job, JobId, JobRecord, JobState, LeaseToken, NewJob};
use serde_json::{Map, Value, json};

use crate::config::Service;
use crate::dynamodb::Item;

/// Sort key of the event record.
pub(super) const EVENT_SK: &str = "EVENT";
/// `status` of event records (they share the index with jobs).
pub(super) const EVENT_STATUS: &str = "event";
/// Most jobs one event may cause: DynamoDB's 100 items per transaction, less the event record.
pub(super) const MAX_JOBS: usize = 99;
/// Longest event id accepted, in bytes (keeps `due` under the index's 1024-byte sort key limit).
pub(super) const MAX_EVENT_ID_BYTES: usize = 512;

/// Placeholder → attribute name, for `ExpressionAttributeNames`.
const NAMES: &[(&str, &str)] = &[
    ("#pk", "pk"),
    ("#sk", "sk"),
    ("#st", "status"),
    ("#due", "due"),
    ("#att", "attempts"),
    ("#max", "max_attempts"),
    ("#av", "available_at"),
    ("#tok", "lease_token"),
    ("#by", "leased_by"),
    ("#exp", "lease_expires_at"),
    ("#upd", "updated_at"),
    ("#err", "last_error"),
    ("#rh", "receipt_handle"),
    ("#set", "settle_id"),
];

/// The `ExpressionAttributeNames` of the placeholders `expressions` use (DynamoDB refuses unused
/// ones).
pub(super) fn names(expressions: &[&str]) -> Value {
    let used: Map<String, Value> = NAMES
        .iter()
        .filter(|(ph, _)| expressions.iter().any(|e| uses(e, ph)))
        .map(|(ph, name)| ((*ph).to_owned(), json!(name)))
        .collect();
    Value::Object(used)
}

fn uses(expression: &str, placeholder: &str) -> bool {
    expression.match_indices(placeholder).any(|(i, _)| {
        !expression[i + placeholder.len()..]
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
    })
}

/// A job's place: its event and its index within the event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct JobKey {
    pub(super) event_id: String,
    pub(super) index: u8,
}

impl JobKey {
    pub(super) fn new(event_id: &str, index: usize) -> Self {
        JobKey {
            event_id: event_id.to_owned(),
            index: u8::try_from(index).unwrap_or(u8::MAX),
        }
    }

    /// `{event_id}#{index}`.
    pub(super) fn id(&self) -> JobId {
        JobId::new(format!("{}#{}", self.event_id, self.index))
    }

    /// The key of a job id this store issued, or `None` for any other string.
    pub(super) fn parse(id: &JobId) -> Option<Self> {
        let (event_id, index) = id.as_str().rsplit_once('#')?;
        let n: u8 = index.parse().ok()?;
        let canonical = n.to_string() == index;
        let valid_event = !event_id.is_empty()
            && event_id.len() <= MAX_EVENT_ID_BYTES
            && event_id.chars().all(|c| c.is_ascii_graphic() || c == ' ');
        (canonical && valid_event && usize::from(n) < MAX_JOBS).then(|| JobKey {
            event_id: event_id.to_owned(),
            index: n,
        })
    }

    pub(super) fn key(&self) -> Item {
        key(&self.event_id, &format!("JOB#{:02}", self.index))
    }

    /// The index sort key at `ms`: `{ms}#{event_id}#{nn}`.
    pub(super) fn due(&self, ms: i64) -> String {
        format!("{}#{}#{:02}", padded(ms), self.event_id, self.index)
    }
}

pub(super) fn pk(event_id: &str) -> String {
    format!("EVT#{event_id}")
}

pub(super) fn key(event_id: &str, sk: &str) -> Item {
    [
        ("pk".to_owned(), json!({ "S": pk(event_id) })),
        ("sk".to_owned(), json!({ "S": sk })),
    ]
    .into_iter()
    .collect()
}

fn padded(ms: i64) -> String {
    format!("{:016}", ms.max(0))
}

/// An index sort key bound: every `due` strictly below it is at or before `ms`.
pub(super) fn due_at_or_before(ms: i64) -> String {
    padded(ms.saturating_add(1))
}

/// An index sort key bound: every `due` strictly below it is before `ms`.
pub(super) fn due_before(ms: i64) -> String {
    padded(ms)
}

/// Milliseconds since 1970 (saturating; 0 and below before).
pub(super) fn millis(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        Err(e) => i64::try_from(e.duration().as_millis()).map_or(i64::MIN, |m| -m),
    }
}

/// The instant `ms` milliseconds after (or before) 1970.
pub(super) fn from_millis(ms: i64) -> SystemTime {
    let d = Duration::from_millis(ms.unsigned_abs());
    if ms >= 0 {
        UNIX_EPOCH.checked_add(d).unwrap_or(UNIX_EPOCH)
    } else {
        UNIX_EPOCH.checked_sub(d).unwrap_or(UNIX_EPOCH)
    }
}

pub(super) fn s(v: &str) -> Value {
    json!({ "S": v })
}

pub(super) fn n(v: i64) -> Value {
    json!({ "N": v.to_string() })
}

/// The event record.
pub(super) fn event_item(event_id: &str, now_ms: i64) -> Item {
    let mut item = key(event_id, EVENT_SK);
    item.insert("status".into(), s(EVENT_STATUS));
    item.insert("due".into(), s(&format!("{}#{event_id}", padded(now_ms))));
    item.insert("event_id".into(), s(event_id));
    item.insert("recorded_at".into(), n(now_ms));
    item
}

/// A new job's item: pending, no attempts, claimable from `now_ms`.
pub(super) fn job_item(
    k: &JobKey,
    job: &NewJob,
    idempotency_key: &IdempotencyKey,
    now_ms: i64,
) -> Result<Item> {
    let traceparent = integrations_outbox::resolve_traceparent(job);
    let payload = serde_json::to_string(&job.payload).map_err(|e| {
        Error::invalid_input("payload", "could not encode it as JSON").with_source(e)
    })?;
    let mut item = k.key();
    for (name, value) in [
        ("status", s(JobState::Pending.as_str())),
        ("due", s(&k.due(now_ms))),
        ("event_id", s(&k.event_id)),
        ("kind", s(&job.kind)),
        ("idempotency_key", s(idempotency_key.as_str())),
        ("payload", s(&payload)),
        ("attempts", n(0)),
        ("max_attempts", n(i64::from(job.max_attempts))),
        ("available_at", n(now_ms)),
        ("created_at", n(now_ms)),
        ("updated_at", n(now_ms)),
    ] {
        item.insert(name.to_owned(), value);
    }
    if let Some(tp) = traceparent {
        item.insert("traceparent".to_owned(), s(&tp));
    }
    Ok(item)
}

/// A job item as read back.
#[derive(Debug, Clone)]
pub(super) struct Stored {
    pub(super) key: JobKey,
    pub(super) record: JobRecord,
    pub(super) token: Option<LeaseToken>,
    pub(super) receipt: Option<String>,
    /// Random id of the `complete`/`fail` call that last settled the job: lets a call whose
    /// write was applied but whose answer was lost (and so was retried) recognise its own write.
    pub(super) settle_id: Option<String>,
}

impl Stored {
    pub(super) fn attempts(&self) -> u32 {
        self.record.job.attempt
    }
}

pub(super) fn corrupt(what: &str, detail: impl std::fmt::Display) -> Error {
    Error::provider(format!(
        "the outbox table holds a malformed {what}: {detail}"
    ))
    .with_provider(Service::DynamoDb.provider_name())
}

fn get_s<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    item.get(name)?.get("S")?.as_str()
}

fn get_n(item: &Item, name: &str) -> Result<Option<i64>> {
    match item
        .get(name)
        .and_then(|v| v.get("N"))
        .and_then(Value::as_str)
    {
        None => Ok(None),
        Some(t) => t.parse().map(Some).map_err(|_| corrupt(name, t)),
    }
}

fn req_s<'a>(item: &'a Item, name: &str) -> Result<&'a str> {
    get_s(item, name).ok_or_else(|| corrupt("job item", format!("no string `{name}`")))
}

fn req_n(item: &Item, name: &str) -> Result<i64> {
    get_n(item, name)?.ok_or_else(|| corrupt("job item", format!("no number `{name}`")))
}

fn req_u32(item: &Item, name: &str) -> Result<u32> {
    let v = req_n(item, name)?;
    u32::try_from(v).map_err(|_| corrupt(name, v))
}

/// Parses a job item.
pub(super) fn parse_job(item: &Item) -> Result<Stored> {
    let event_id = req_s(item, "event_id")?;
    let sk = req_s(item, "sk")?;
    let index = sk
        .strip_prefix("JOB#")
        .and_then(|i| i.parse::<u8>().ok())
        .ok_or_else(|| corrupt("job sort key", sk))?;
    let key = JobKey {
        event_id: event_id.to_owned(),
        index,
    };
    let state_name = req_s(item, "status")?;
    let state = JobState::parse(state_name).ok_or_else(|| corrupt("job status", state_name))?;
    let idempotency_key = IdempotencyKey::new(req_s(item, "idempotency_key")?)
        .map_err(|e| corrupt("idempotency key", e))?;
    let payload =
        serde_json::from_str(req_s(item, "payload")?).map_err(|e| corrupt("payload", e))?;
    let last_error = get_s(item, "last_error")
        .map(serde_json::from_str::<ErrorRecord>)
        .transpose()
        .map_err(|e| corrupt("error record", e))?;
    let leased = state == JobState::Leased;
    let record = JobRecord {
        job: Job {
            id: key.id(),
            event_id: event_id.to_owned(),
            kind: req_s(item, "kind")?.to_owned(),
            payload,
            idempotency_key,
            attempt: req_u32(item, "attempts")?,
            max_attempts: req_u32(item, "max_attempts")?,
            created_at: from_millis(req_n(item, "created_at")?),
            traceparent: get_s(item, "traceparent").map(str::to_owned),
        },
        state,
        available_at: from_millis(req_n(item, "available_at")?),
        leased_by: get_s(item, "leased_by")
            .filter(|_| leased)
            .map(str::to_owned),
        lease_expires_at: get_n(item, "lease_expires_at")?
            .filter(|_| leased)
            .map(from_millis),
        last_error,
        updated_at: from_millis(req_n(item, "updated_at")?),
    };
    Ok(Stored {
        key,
        record,
        token: get_s(item, "lease_token")
            .filter(|_| leased)
            .map(LeaseToken::new),
        receipt: get_s(item, "receipt_handle").map(str::to_owned),
        settle_id: get_s(item, "settle_id").map(str::to_owned),
    })
}

/// The `[A, B, …]` list of a `TransactionCanceledException` message: one reason per item of the
/// transaction, in order (`ConditionalCheckFailed`, `TransactionConflict`, `None`, …).
pub(super) fn cancellation_reasons(message: &str) -> Vec<&str> {
    let Some(open) = message.rfind('[') else {
        return Vec::new();
    };
    let Some(close) = message[open..].find(']') else {
        return Vec::new();
    };
    message[open + 1..open + close]
        .split(',')
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_ids_round_trip_and_reject_foreign_strings() {
        let k = JobKey::new("evt_#1", 7);
        assert_eq!(k.id().as_str(), "evt_#1#7");
        assert_eq!(JobKey::parse(&k.id()), Some(k));
        for bad in [
            "999999999",
            "not-an-id",
            "e#07",
            "e#99",
            "#1",
            "e#",
            "e\n#1",
            "e#-1",
        ] {
            assert_eq!(JobKey::parse(&JobId::new(bad)), None, "{bad}");
        }
        let long = format!("{}#1", "e".repeat(MAX_EVENT_ID_BYTES + 1));
        assert_eq!(JobKey::parse(&JobId::new(long)), None);
    }

    #[test]
    fn due_keys_sort_by_time_then_event_then_index() {
        let a = JobKey::new("evt_a", 2);
        let b = JobKey::new("evt_a", 10);
        assert!(a.due(5) < b.due(5));
        assert!(b.due(5) < a.due(6));
        assert!(a.due(999) < a.due(1000));
        // Bounds: `due < bound`.
        assert!(a.due(5) < due_at_or_before(5));
        assert!(a.due(6) > due_at_or_before(5));
        assert!(a.due(5) > due_before(5));
        assert!(a.due(4) < due_before(5));
        assert_eq!(a.due(-5), a.due(0), "times before 1970 saturate");
    }

    #[test]
    fn names_include_only_used_placeholders() {
        let v = names(&["#st = :p AND #exp <= :now", "SET #err = :e"]);
        assert_eq!(
            v,
            json!({ "#st": "status", "#exp": "lease_expires_at", "#err": "last_error" })
        );
        assert!(!uses("#exp", "#e"));
        assert!(uses("(#due)", "#due"));
    }

    #[test]
    fn millis_round_trip() {
        for ms in [-5_000, 0, 1, 1_700_000_000_123] {
            assert_eq!(millis(from_millis(ms)), ms);
        }
    }

    #[test]
    fn cancellation_reasons_parse() {
        let m = "Transaction cancelled, please refer cancellation reasons for specific reasons [ConditionalCheckFailed, None, None]";
        assert_eq!(
            cancellation_reasons(m),
            ["ConditionalCheckFailed", "None", "None"]
        );
        assert!(cancellation_reasons("no list").is_empty());
    }

    #[test]
    fn job_items_round_trip() {
        let k = JobKey::new("evt_1", 0);
        let new = NewJob::new(
            "email",
            json!({ "to": "a@example.com", "n": 18446744073709551615u64 }),
        )
        .with_max_attempts(3);
        let key = new.idempotency_key("evt_1").unwrap();
        let mut item = job_item(&k, &new, &key, 1_700_000_000_000).unwrap();
        let stored = parse_job(&item).unwrap();
        assert_eq!(stored.key, k);
        let r = &stored.record;
        assert_eq!(r.state, JobState::Pending);
        assert_eq!((r.job.attempt, r.job.max_attempts), (0, 3));
        assert_eq!(r.job.payload, new.payload);
        assert_eq!(r.job.id.as_str(), "evt_1#0");
        assert_eq!(r.job.idempotency_key.as_str(), "evt_1/email");
        assert_eq!(millis(r.available_at), 1_700_000_000_000);
        assert!(r.leased_by.is_none() && stored.token.is_none());
        assert_eq!(r.job.traceparent, None);
        let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let traced = job_item(&k, &new.clone().with_traceparent(tp), &key, 0).unwrap();
        assert_eq!(
            parse_job(&traced)
                .unwrap()
                .record
                .job
                .traceparent
                .as_deref(),
            Some(tp)
        );
        item.insert("status".into(), s("sleeping"));
        assert!(parse_job(&item).is_err());
    }
}
