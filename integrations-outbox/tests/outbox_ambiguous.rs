//! The ambiguous cases of delivery: a store that fails to record a result, a job claimed again
//! while still running, a huge `Retry-After`, handler timeouts shorter than the provider's
//! policy, and dead letters that may already have acted.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use integrations_core::clock::{Clock, FixedClock};
use integrations_core::resilience::{Backoff, RetryPolicy};
use integrations_core::{Error, Policy, Result};
use integrations_outbox::{
    ClaimedJob, DEFAULT_MAX_RETRY_AFTER, DeadLetter, Dispatcher, ErrorRecord, FailOutcome,
    InMemoryOutbox, JobId, JobRecord, JobState, LeaseToken, NewJob, OutboxCounts, OutboxStore,
    PurgeOutcome, RecordOutcome, handler_fn,
};
use serde_json::json;

/// An in-memory outbox whose `complete` fails the first `fail_completes` times with a busy
/// error, first moving the clock by `advance` and sleeping `stall` (a slow, failing commit).
#[derive(Debug)]
struct FlakyStore {
    inner: Arc<InMemoryOutbox>,
    clock: FixedClock,
    fail_completes: AtomicU32,
    advance: Duration,
    stall: Duration,
}

impl FlakyStore {
    fn new(fail_completes: u32, advance: Duration, stall: Duration) -> (Arc<Self>, FixedClock) {
        let clock = FixedClock::from_unix(1_700_000_000);
        let store = FlakyStore {
            inner: Arc::new(InMemoryOutbox::new().with_clock(clock.clone())),
            clock: clock.clone(),
            fail_completes: AtomicU32::new(fail_completes),
            advance,
            stall,
        };
        (Arc::new(store), clock)
    }
}

#[async_trait]
impl OutboxStore for FlakyStore {
    async fn record_event(&self, event_id: &str, jobs: Vec<NewJob>) -> Result<RecordOutcome> {
        self.inner.record_event(event_id, jobs).await
    }
    async fn claim(&self, worker_id: &str, max: usize, lease: Duration) -> Result<Vec<ClaimedJob>> {
        self.inner.claim(worker_id, max, lease).await
    }
    fn claims_by_kind(&self) -> bool {
        self.inner.claims_by_kind()
    }
    async fn claim_kinds(
        &self,
        worker_id: &str,
        kinds: &[&str],
        max: usize,
        lease: Duration,
    ) -> Result<Vec<ClaimedJob>> {
        self.inner.claim_kinds(worker_id, kinds, max, lease).await
    }
    async fn complete(&self, job_id: &JobId, lease: &LeaseToken) -> Result<()> {
        let left = self.fail_completes.load(Ordering::SeqCst);
        if left > 0 {
            self.fail_completes.store(left - 1, Ordering::SeqCst);
            self.clock.advance(self.advance);
            tokio::time::sleep(self.stall).await;
            return Err(Error::unavailable("database busy: database is locked"));
        }
        self.inner.complete(job_id, lease).await
    }
    async fn fail(
        &self,
        job_id: &JobId,
        lease: &LeaseToken,
        error: ErrorRecord,
        retry_at: Option<SystemTime>,
    ) -> Result<FailOutcome> {
        self.inner.fail(job_id, lease, error, retry_at).await
    }
    async fn job(&self, job_id: &JobId) -> Result<Option<JobRecord>> {
        self.inner.job(job_id).await
    }
    async fn dead_letters(&self, limit: usize) -> Result<Vec<DeadLetter>> {
        self.inner.dead_letters(limit).await
    }
    async fn replay(&self, job_id: &JobId) -> Result<()> {
        self.inner.replay(job_id).await
    }
    async fn counts(&self) -> Result<OutboxCounts> {
        self.inner.counts().await
    }
    async fn purge(&self, older_than: SystemTime) -> Result<PurgeOutcome> {
        self.inner.purge(older_than).await
    }
}

async fn record_one(store: &dyn OutboxStore, kind: &str) -> JobId {
    match store
        .record_event("evt_1", vec![NewJob::new(kind, json!({}))])
        .await
        .unwrap()
    {
        RecordOutcome::Recorded { job_ids } => job_ids[0].clone(),
        RecordOutcome::Duplicate => panic!("duplicate"),
    }
}

fn counting() -> (
    Arc<AtomicUsize>,
    impl integrations_outbox::JobHandler + Clone,
) {
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let h = handler_fn(move |_job| {
        let c = c.clone();
        async move {
            c.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }
    });
    (calls, h)
}

#[tokio::test(start_paused = true)]
async fn a_transient_failure_to_complete_is_retried_locally_not_redelivered() {
    let (store, clock) = FlakyStore::new(2, Duration::ZERO, Duration::ZERO);
    let id = record_one(&*store, "email").await;
    let (calls, h) = counting();
    let d = Dispatcher::builder(store.clone())
        .handler("email", h)
        .clock(clock)
        .build()
        .unwrap();
    let stats = d.run_until_idle().await.unwrap();
    assert_eq!((stats.succeeded, stats.store_errors), (1, 0), "{stats:?}");
    assert_eq!(store.job(&id).await.unwrap().unwrap().state, JobState::Done);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn a_job_reclaimed_while_still_running_here_is_not_run_twice() {
    // The first `complete` is slow and fails; meanwhile the lease expires and a second run of
    // the same dispatcher claims the job again.
    let lease = Duration::from_secs(10);
    let (store, clock) = FlakyStore::new(1, lease * 2, Duration::from_millis(40));
    let id = record_one(&*store, "email").await;
    let (calls, h) = counting();
    let d = Dispatcher::builder(store.clone())
        .handler("email", h)
        .clock(clock)
        .lease(lease)
        .build()
        .unwrap();
    let (first, second) = tokio::join!(d.run_once(), async {
        tokio::time::sleep(Duration::from_millis(10)).await;
        d.run_once().await
    });
    let (first, second) = (first.unwrap(), second.unwrap());
    assert_eq!(second.claimed, 1, "the expired lease was claimed again");
    assert_eq!(second.already_in_flight, 1, "{second:?}");
    assert_eq!(calls.load(Ordering::SeqCst), 1, "delivered once");
    assert_eq!(first.succeeded, 1, "{first:?}");
    assert_eq!(store.job(&id).await.unwrap().unwrap().state, JobState::Done);
}

#[tokio::test]
async fn a_huge_retry_after_is_capped_and_an_overflowing_one_does_not_retry_at_once() {
    for (retry_after, cap) in [
        (Duration::from_secs(10 * 365 * 86_400), None),
        (Duration::MAX, None),
        (Duration::MAX, Some(Duration::from_secs(600))),
    ] {
        let clock = FixedClock::from_unix(1_700_000_000);
        let store = Arc::new(InMemoryOutbox::new().with_clock(clock.clone()));
        let id = record_one(&*store, "sheets").await;
        let h = handler_fn(move |_job| async move {
            Err::<(), _>(Error::rate_limited(Some(retry_after), "quota"))
        });
        let mut b = Dispatcher::builder(store.clone())
            .handler("sheets", h)
            .clock(clock.clone())
            .backoff(Backoff::new(
                Duration::from_secs(1),
                Duration::from_secs(1),
                1.0,
            ));
        if let Some(cap) = cap {
            b = b.max_retry_after(cap);
        }
        let d = b.build().unwrap();
        assert_eq!(d.run_until_idle().await.unwrap().retried, 1);
        let at = store.job(&id).await.unwrap().unwrap().available_at;
        let wait = at.duration_since(clock.now()).unwrap_or_default();
        assert_eq!(
            wait,
            cap.unwrap_or(DEFAULT_MAX_RETRY_AFTER),
            "Retry-After {retry_after:?}"
        );
    }
}

fn sendgrid_like_policy() -> Policy {
    // SendGrid's default: 2 retries, 30 s attempts, Retry-After honoured up to 60 s.
    Policy::builder("sendgrid")
        .retry(
            RetryPolicy::new(
                2,
                Backoff::new(Duration::from_millis(500), Duration::from_secs(10), 2.0),
            )
            .with_max_retry_after(Duration::from_secs(60)),
        )
        .attempt_timeout(Duration::from_secs(30))
        .build()
}

#[test]
fn a_handler_whose_policy_outlasts_the_handler_timeout_is_refused_at_build() {
    let store = Arc::new(InMemoryOutbox::new());
    let (_, h) = counting();
    let policy = sendgrid_like_policy();
    assert_eq!(policy.worst_case(), Some(Duration::from_secs(210)));
    // The default handler timeout (45 s) would cut a send off mid-request and retry it.
    let err = Dispatcher::builder(store.clone())
        .handler_with_policy("email", h.clone(), &policy)
        .build()
        .unwrap_err();
    assert_eq!(err.field(), Some("handler_timeout"));
    assert!(err.to_string().contains("`email`"), "{err}");
    // Either the handler timeout covers the worst case…
    Dispatcher::builder(store.clone())
        .handler_with_policy("email", h.clone(), &policy)
        .lease(Duration::from_secs(300))
        .handler_timeout(Duration::from_secs(240))
        .build()
        .unwrap();
    // …or the policy's deadline is set from the handler timeout.
    let bounded = Policy::builder("sendgrid")
        .attempt_timeout(Duration::from_secs(30))
        .deadline(Duration::from_secs(40))
        .build();
    Dispatcher::builder(store.clone())
        .handler_with_policy("email", h.clone(), &bounded)
        .build()
        .unwrap();
    // An unbounded policy never fits.
    let unbounded = Policy::builder("x").no_attempt_timeout().build();
    assert!(
        Dispatcher::builder(store)
            .handler_with_policy("x", h, &unbounded)
            .build()
            .is_err()
    );
}

/// Runs one job of one attempt through a dispatcher whose handler fails with `err()` (or, for
/// `None`, hangs past the handler timeout), and returns its dead letter.
async fn dead_letter_after(
    store: Arc<dyn OutboxStore>,
    clock: &FixedClock,
    err: Failure,
) -> DeadLetter {
    let new = NewJob::new("charge", json!({})).with_max_attempts(1);
    store.record_event("evt_9", vec![new]).await.unwrap();
    let h = handler_fn(move |_job| async move {
        match err {
            Some(err) => Err::<(), _>(err()),
            None => {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                Ok(())
            }
        }
    });
    let d = Dispatcher::builder(store.clone())
        .handler("charge", h)
        .clock(clock.clone())
        .build()
        .unwrap();
    assert_eq!(d.run_until_idle().await.unwrap().dead_lettered, 1);
    store.dead_letters(1).await.unwrap().remove(0)
}

/// How the handler fails (`None`: it hangs past its timeout).
type Failure = Option<fn() -> Error>;

fn ambiguous_cases() -> [(Failure, bool); 4] {
    [
        (None, true), // the handler timed out mid-call
        (
            Some(|| Error::unavailable("502 after the request was sent")),
            true,
        ),
        (
            Some(|| Error::unavailable("connection refused").not_processed()),
            false,
        ),
        (Some(|| Error::declined(None, None, "card declined")), false),
    ]
}

#[tokio::test(start_paused = true)]
async fn a_dead_letter_says_whether_the_job_may_already_have_acted() {
    for (err, acted) in ambiguous_cases() {
        let clock = FixedClock::from_unix(1_700_000_000);
        let store = Arc::new(InMemoryOutbox::new().with_clock(clock.clone()));
        let dead = dead_letter_after(store, &clock, err).await;
        assert_eq!(dead.may_have_acted, acted, "{:?}", dead.error);
    }
}

#[cfg(feature = "sqlite")]
mod sqlite {
    use super::*;
    use integrations_outbox::SqliteOutbox;

    #[tokio::test(start_paused = true)]
    async fn the_sqlite_store_keeps_may_have_acted_across_a_reopen() {
        for (i, (err, acted)) in ambiguous_cases().into_iter().enumerate() {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("outbox.db");
            let clock = FixedClock::from_unix(1_700_000_000);
            let store = Arc::new(
                SqliteOutbox::open(&path)
                    .await
                    .unwrap()
                    .with_clock(clock.clone()),
            );
            let dead = dead_letter_after(store.clone(), &clock, err).await;
            assert_eq!(dead.may_have_acted, acted, "case {i}");
            drop(store);
            let store = SqliteOutbox::open(&path).await.unwrap();
            let dead = store.dead_letters(1).await.unwrap().remove(0);
            assert_eq!(dead.may_have_acted, acted, "case {i} after reopening");
            let conn = rusqlite::Connection::open(&path).unwrap();
            let column: Option<bool> = conn
                .query_row("SELECT may_have_acted FROM outbox_jobs", [], |r| r.get(0))
                .unwrap();
            assert_eq!(column, Some(acted), "case {i}: the column is queryable");
        }
    }

    #[tokio::test]
    async fn a_database_from_before_the_column_opens_and_guesses_from_the_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("outbox.db");
        let clock = FixedClock::from_unix(1_700_000_000);
        {
            let store = Arc::new(
                SqliteOutbox::open(&path)
                    .await
                    .unwrap()
                    .with_clock(clock.clone()),
            );
            dead_letter_after(store, &clock, Some(|| Error::timeout("t"))).await;
        }
        // Turn the file back into a version-1 database with a version-1 error record.
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(
            r#"DROP INDEX outbox_jobs_pending_kind;
               DROP INDEX outbox_jobs_leased_kind;
               CREATE INDEX outbox_jobs_leased ON outbox_jobs (lease_expires_at, id)
                   WHERE state = 'leased';
               ALTER TABLE outbox_jobs DROP COLUMN traceparent;
               ALTER TABLE outbox_jobs DROP COLUMN may_have_acted;
               UPDATE integrations_schema SET version = 1 WHERE component = 'outbox';
               UPDATE outbox_jobs SET last_error = '{"kind":"timeout","message":"t","provider":null,"code":null,"request_id":null,"status":null,"retryable":true}';"#,
        )
        .unwrap();
        drop(conn);

        let store = SqliteOutbox::open(&path).await.unwrap();
        let dead = store.dead_letters(1).await.unwrap().remove(0);
        assert_eq!(dead.error.may_have_acted, None, "recorded before the field");
        assert!(dead.may_have_acted, "a timeout may have acted");
        let conn = rusqlite::Connection::open(&path).unwrap();
        let version: i64 = conn
            .query_row(
                "SELECT version FROM integrations_schema WHERE component = 'outbox'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(version, 5, "migrated to the latest version");
    }
}
