//! The dispatcher: delivery, retries with backoff, dead letters, replay, timeouts, panics,
//! concurrency bound, graceful shutdown, and several workers on one store.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use integrations_core::clock::{Clock, FixedClock};
use integrations_core::resilience::Backoff;
use integrations_core::{Error, ErrorKind, Result};
use integrations_outbox::{
    ClaimedJob, DeadLetter, Dispatcher, DispatcherWaker, ErrorRecord, FailOutcome, InMemoryOutbox,
    Job, JobHandler, JobId, JobRecord, JobState, LeaseToken, NewJob, OutboxCounts, OutboxStore,
    PurgeOutcome, RecordOutcome, RunStats, handler_fn, shutdown_channel,
};
use serde_json::json;

type Respond = dyn Fn(&Job) -> Result<()> + Send + Sync;

/// Records every call (job id, idempotency key, attempt) and answers with `respond`.
#[derive(Clone)]
struct Recorder {
    calls: Arc<Mutex<Vec<(JobId, String, u32)>>>,
    respond: Arc<Mutex<Arc<Respond>>>,
}

impl Recorder {
    fn new(respond: impl Fn(&Job) -> Result<()> + Send + Sync + 'static) -> Self {
        Recorder {
            calls: Arc::default(),
            respond: Arc::new(Mutex::new(Arc::new(respond))),
        }
    }
    fn set(&self, respond: impl Fn(&Job) -> Result<()> + Send + Sync + 'static) {
        *self.respond.lock().unwrap() = Arc::new(respond);
    }
    fn calls(&self) -> Vec<(JobId, String, u32)> {
        self.calls.lock().unwrap().clone()
    }
}

#[async_trait]
impl JobHandler for Recorder {
    async fn handle(&self, job: &Job) -> Result<()> {
        let key = job.idempotency_key.as_str().to_owned();
        self.calls
            .lock()
            .unwrap()
            .push((job.id.clone(), key, job.attempt));
        let respond = self.respond.lock().unwrap().clone();
        respond(job)
    }
}

fn setup() -> (FixedClock, Arc<InMemoryOutbox>) {
    let clock = FixedClock::from_unix(1_700_000_000);
    (
        clock.clone(),
        Arc::new(InMemoryOutbox::new().with_clock(clock)),
    )
}

async fn record(store: &dyn OutboxStore, event: &str, jobs: Vec<NewJob>) -> Vec<JobId> {
    match store.record_event(event, jobs).await.unwrap() {
        RecordOutcome::Recorded { job_ids } => job_ids,
        RecordOutcome::Duplicate => panic!("duplicate"),
    }
}

fn dispatcher(
    store: Arc<InMemoryOutbox>,
    clock: &FixedClock,
    kind: &str,
    h: Recorder,
) -> Dispatcher {
    Dispatcher::builder(store)
        .handler(kind, h)
        .clock(clock.clone())
        .backoff(Backoff::new(
            Duration::from_secs(10),
            Duration::from_secs(10),
            1.0,
        ))
        .build()
        .unwrap()
}

#[tokio::test]
async fn delivers_every_job_once_with_its_idempotency_key() {
    let (clock, store) = setup();
    for i in 0..3 {
        let jobs = vec![
            NewJob::new("email", json!({ "i": i })),
            NewJob::new("sheets", json!({ "i": i })),
        ];
        record(&*store, &format!("evt_{i}"), jobs).await;
    }
    let email = Recorder::new(|_| Ok(()));
    let sheets = Recorder::new(|_| Ok(()));
    let d = Dispatcher::builder(store.clone())
        .handler("email", email.clone())
        .handler("sheets", sheets.clone())
        .clock(clock)
        .build()
        .unwrap();
    let stats = d.run_until_idle().await.unwrap();
    assert_eq!(
        stats,
        RunStats {
            claimed: 6,
            succeeded: 6,
            ..RunStats::default()
        }
    );
    let mut keys: Vec<String> = email.calls().into_iter().map(|c| c.1).collect();
    keys.sort();
    assert_eq!(keys, ["evt_0/email", "evt_1/email", "evt_2/email"]);
    assert_eq!(sheets.calls().len(), 3);
    assert_eq!(store.counts().await.unwrap().done, 6);
    assert_eq!(
        d.run_until_idle().await.unwrap(),
        RunStats::default(),
        "nothing delivered twice"
    );
}

#[tokio::test]
async fn retryable_failures_back_off_then_dead_letter_with_the_error() {
    let (clock, store) = setup();
    let ids = record(
        &*store,
        "evt_1",
        vec![NewJob::new("email", json!({})).with_max_attempts(3)],
    )
    .await;
    let h = Recorder::new(|_| {
        Err(Error::unavailable("upstream 503")
            .with_provider("sendgrid")
            .with_code("503"))
    });
    let d = dispatcher(store.clone(), &clock, "email", h.clone());
    let mut total = RunStats::default();
    let first = d.run_until_idle().await.unwrap();
    let rec = store.job(&ids[0]).await.unwrap().unwrap();
    if rec.state == JobState::Pending {
        let wait = rec
            .available_at
            .duration_since(clock.now())
            .unwrap_or_default();
        assert!(
            wait <= Duration::from_secs(10),
            "backoff ceiling respected: {wait:?}"
        );
    }
    total += first;
    for _ in 0..5 {
        clock.advance(Duration::from_secs(10));
        total += d.run_until_idle().await.unwrap();
    }
    let attempts: Vec<u32> = h.calls().into_iter().map(|c| c.2).collect();
    assert_eq!(attempts, [1, 2, 3], "exactly max_attempts deliveries");
    assert_eq!(
        (total.retried, total.dead_lettered, total.succeeded),
        (2, 1, 0)
    );
    let dead = store
        .dead_letter(&ids[0])
        .await
        .unwrap()
        .expect("dead-lettered");
    assert_eq!(dead.error.kind, ErrorKind::Unavailable);
    assert_eq!(dead.error.message, "upstream 503");
    assert_eq!(dead.error.provider.as_deref(), Some("sendgrid"));
    assert_eq!(dead.error.code.as_deref(), Some("503"));
    assert_eq!(dead.job.attempt, 3);

    // Replay after the provider recovered: delivered, attempts counted afresh.
    h.set(|_| Ok(()));
    store.replay(&ids[0]).await.unwrap();
    let stats = d.run_until_idle().await.unwrap();
    assert_eq!(stats.succeeded, 1);
    assert_eq!(h.calls().last().unwrap().2, 1);
    assert_eq!(
        store.job(&ids[0]).await.unwrap().unwrap().state,
        JobState::Done
    );
}

#[tokio::test]
async fn retry_after_is_honoured_over_a_shorter_backoff() {
    let (clock, store) = setup();
    let ids = record(&*store, "evt_1", vec![NewJob::new("sheets", json!({}))]).await;
    let h = Recorder::new(|_| Err(Error::rate_limited(Some(Duration::from_secs(120)), "quota")));
    let d = Dispatcher::builder(store.clone())
        .handler("sheets", h.clone())
        .clock(clock.clone())
        .backoff(Backoff::new(
            Duration::from_millis(1),
            Duration::from_millis(1),
            1.0,
        ))
        .build()
        .unwrap();
    assert_eq!(d.run_until_idle().await.unwrap().retried, 1);
    let rec = store.job(&ids[0]).await.unwrap().unwrap();
    assert!(
        rec.available_at >= clock.now() + Duration::from_secs(120),
        "Retry-After ignored"
    );
    clock.advance(Duration::from_secs(119));
    assert_eq!(d.run_until_idle().await.unwrap().claimed, 0);
    clock.advance(Duration::from_secs(1));
    assert_eq!(d.run_until_idle().await.unwrap().claimed, 1);
}

#[tokio::test]
async fn permanent_failure_dead_letters_at_once() {
    let (clock, store) = setup();
    let ids = record(&*store, "evt_1", vec![NewJob::new("refund", json!({}))]).await;
    let h = Recorder::new(|_| {
        Err(Error::declined(
            Some("card_declined".into()),
            Some("insufficient_funds".into()),
            "no",
        )
        .with_provider("stripe"))
    });
    let d = dispatcher(store.clone(), &clock, "refund", h.clone());
    let stats = d.run_until_idle().await.unwrap();
    assert_eq!(
        (stats.claimed, stats.dead_lettered, stats.retried),
        (1, 1, 0)
    );
    assert_eq!(h.calls().len(), 1);
    let dead = store.dead_letters(10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].job.id, ids[0]);
    assert_eq!(dead[0].error.kind, ErrorKind::Declined);
    assert_eq!(dead[0].error.code.as_deref(), Some("card_declined"));
    assert_eq!(
        dead[0].error.decline_code.as_deref(),
        Some("insufficient_funds")
    );
    assert!(!dead[0].error.retryable);
}

#[tokio::test]
async fn an_open_circuit_or_full_bulkhead_is_retried_later_not_dead_lettered() {
    for kind in [ErrorKind::CircuitOpen, ErrorKind::BulkheadFull] {
        let (clock, store) = setup();
        let ids = record(&*store, "evt_1", vec![NewJob::new("email", json!({}))]).await;
        let h = Recorder::new(move |_| {
            Err(match kind {
                ErrorKind::CircuitOpen => Error::circuit_open("sendgrid breaker open"),
                _ => Error::bulkhead_full("sendgrid bulkhead full"),
            }
            .with_provider("sendgrid"))
        });
        let d = dispatcher(store.clone(), &clock, "email", h.clone());
        let stats = d.run_until_idle().await.unwrap();
        assert_eq!(
            (stats.claimed, stats.dead_lettered, stats.retried),
            (1, 0, 1),
            "{kind}"
        );
        assert!(store.dead_letters(10).await.unwrap().is_empty(), "{kind}");
        let job = store.job(&ids[0]).await.unwrap().unwrap();
        assert_eq!(job.last_error.as_ref().map(|e| e.kind), Some(kind));
    }
}

#[tokio::test]
async fn a_kind_without_handler_stays_pending_and_visible_until_a_worker_knows_it() {
    let (clock, store) = setup();
    let ids = record(
        &*store,
        "evt_1",
        vec![
            NewJob::new("new.kind", json!({})),
            NewJob::new("email", json!({})),
        ],
    )
    .await;
    let old = dispatcher(store.clone(), &clock, "email", Recorder::new(|_| Ok(())));
    let stats = old.run_until_idle().await.unwrap();
    assert_eq!(
        (stats.claimed, stats.succeeded),
        (1, 1),
        "only its own kind"
    );
    let rec = store.job(&ids[0]).await.unwrap().unwrap();
    assert_eq!(
        (rec.state, rec.job.attempt, rec.last_error),
        (JobState::Pending, 0, None),
        "not claimed, no attempt spent"
    );
    clock.advance(Duration::from_secs(600));
    let counts = store.counts().await.unwrap();
    assert_eq!(counts.pending, 1);
    assert_eq!(
        counts.oldest_pending_age,
        Some(Duration::from_secs(600)),
        "the waiting kind shows as the oldest pending job"
    );
    let h = Recorder::new(|_| Ok(()));
    let new = dispatcher(store.clone(), &clock, "new.kind", h.clone());
    assert_eq!(new.run_until_idle().await.unwrap().succeeded, 1);
    assert_eq!(h.calls()[0].2, 1, "its first attempt");
}

/// A store that answers every call by `InMemoryOutbox` but, like a store written before claims
/// by kind, does not declare them.
#[derive(Debug)]
struct AnyKindStore(Arc<InMemoryOutbox>);

#[async_trait]
impl OutboxStore for AnyKindStore {
    async fn record_event(&self, event_id: &str, jobs: Vec<NewJob>) -> Result<RecordOutcome> {
        self.0.record_event(event_id, jobs).await
    }
    async fn claim(&self, worker_id: &str, max: usize, lease: Duration) -> Result<Vec<ClaimedJob>> {
        self.0.claim(worker_id, max, lease).await
    }
    async fn complete(&self, job_id: &JobId, lease: &LeaseToken) -> Result<()> {
        self.0.complete(job_id, lease).await
    }
    async fn fail(
        &self,
        job_id: &JobId,
        lease: &LeaseToken,
        error: ErrorRecord,
        retry_at: Option<SystemTime>,
    ) -> Result<FailOutcome> {
        self.0.fail(job_id, lease, error, retry_at).await
    }
    async fn job(&self, job_id: &JobId) -> Result<Option<JobRecord>> {
        self.0.job(job_id).await
    }
    async fn dead_letters(&self, limit: usize) -> Result<Vec<DeadLetter>> {
        self.0.dead_letters(limit).await
    }
    async fn replay(&self, job_id: &JobId) -> Result<()> {
        self.0.replay(job_id).await
    }
    async fn counts(&self) -> Result<OutboxCounts> {
        self.0.counts().await
    }
    async fn purge(&self, older_than: SystemTime) -> Result<PurgeOutcome> {
        self.0.purge(older_than).await
    }
}

#[tokio::test]
async fn from_a_store_without_kind_claims_a_kind_without_handler_is_retried_not_dropped() {
    let (clock, inner) = setup();
    let store = Arc::new(AnyKindStore(inner));
    assert!(!store.claims_by_kind());
    let err = store
        .claim_kinds("w", &["email"], 1, Duration::from_secs(1))
        .await
        .unwrap_err();
    assert_eq!(
        (err.kind(), err.field()),
        (ErrorKind::Configuration, Some("kinds"))
    );
    let ids = record(&*store, "evt_1", vec![NewJob::new("new.kind", json!({}))]).await;
    let d = Dispatcher::builder(store.clone())
        .handler("email", Recorder::new(|_| Ok(())))
        .clock(clock)
        .build()
        .unwrap();
    assert_eq!(d.run_until_idle().await.unwrap().retried, 1);
    let rec = store.job(&ids[0]).await.unwrap().unwrap();
    assert_eq!(rec.state, JobState::Pending);
    let err = rec.last_error.unwrap();
    assert_eq!(err.kind, ErrorKind::Configuration);
    assert!(err.message.contains("new.kind"), "{}", err.message);
}

/// Two lanes on one store: the `sheets` dispatcher's deliveries are all stuck waiting (as for a
/// write quota), yet the `email` dispatcher delivers every email, although the sheets jobs are
/// older; one joined waker wakes both.
#[tokio::test(start_paused = true)]
async fn a_kind_stuck_on_its_lane_does_not_hold_up_another_lane() {
    let (clock, store) = setup();
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let g = gate.clone();
    let sheets = handler_fn(move |_job| {
        let g = g.clone();
        async move {
            let _permit = g
                .acquire()
                .await
                .map_err(|e| Error::provider(e.to_string()))?;
            Ok(())
        }
    });
    let emails = Recorder::new(|_| Ok(()));
    let lane = |kind: &str, h: Box<dyn JobHandler>| {
        Dispatcher::builder(store.clone())
            .shared_handler(kind, Arc::from(h))
            .concurrency(4)
            .poll_interval(Duration::from_secs(3600))
            .clock(clock.clone())
            .build()
            .unwrap()
    };
    let sheets_lane = lane("sheets", Box::new(sheets));
    let email_lane = lane("email", Box::new(emails.clone()));
    assert_eq!(sheets_lane.kinds().collect::<Vec<_>>(), ["sheets"]);
    let waker = DispatcherWaker::join([sheets_lane.waker(), email_lane.waker()]);
    let (trigger, signal) = shutdown_channel();
    let runs: Vec<_> = [sheets_lane, email_lane]
        .into_iter()
        .map(|d| {
            let signal = signal.clone();
            tokio::spawn(async move { d.run(signal).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(1)).await; // both idle, asleep for an hour
    let jobs = (0..10)
        .map(|i| NewJob::new("sheets", json!({})).with_key_suffix(i.to_string()))
        .collect();
    record(&*store, "evt_rows", jobs).await;
    let jobs = (0..10)
        .map(|i| NewJob::new("email", json!({})).with_key_suffix(i.to_string()))
        .collect();
    record(&*store, "evt_mail", jobs).await;
    waker.wake();
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        emails.calls().len(),
        10,
        "every email, behind no sheets row"
    );
    let c = store.counts().await.unwrap();
    assert_eq!(
        (c.done, c.leased, c.pending),
        (10, 4, 6),
        "the sheets lane holds its concurrency, the rest wait"
    );
    gate.add_permits(10);
    tokio::time::sleep(Duration::from_secs(1)).await;
    trigger.trigger();
    let mut total = RunStats::default();
    for r in runs {
        total += r.await.unwrap();
    }
    assert_eq!((total.claimed, total.succeeded), (20, 20));
}

#[tokio::test(start_paused = true)]
async fn a_handler_past_its_timeout_fails_the_attempt_as_retryable() {
    let (clock, store) = setup();
    let ids = record(&*store, "evt_1", vec![NewJob::new("slow", json!({}))]).await;
    let slow = handler_fn(|_job| async {
        tokio::time::sleep(Duration::from_secs(3600)).await;
        Ok(())
    });
    let d = Dispatcher::builder(store.clone())
        .handler("slow", slow)
        .clock(clock.clone())
        .lease(Duration::from_secs(10))
        .handler_timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let stats = d.run_once().await.unwrap();
    assert_eq!(stats.retried, 1);
    let err = store
        .job(&ids[0])
        .await
        .unwrap()
        .unwrap()
        .last_error
        .unwrap();
    assert_eq!(err.kind, ErrorKind::Timeout);
    assert!(err.retryable);
}

#[tokio::test]
async fn a_panicking_handler_dead_letters_its_job_and_the_worker_lives() {
    let (clock, store) = setup();
    record(
        &*store,
        "evt_1",
        vec![NewJob::new("boom", json!({})), NewJob::new("ok", json!({}))],
    )
    .await;
    let d = Dispatcher::builder(store.clone())
        .handler(
            "boom",
            handler_fn(|_job| async { panic!("bug in handler") }),
        )
        .handler("ok", handler_fn(|_job| async { Ok(()) }))
        .clock(clock)
        .build()
        .unwrap();
    let stats = d.run_until_idle().await.unwrap();
    assert_eq!((stats.succeeded, stats.dead_lettered), (1, 1));
    let dead = store.dead_letters(10).await.unwrap();
    assert!(
        dead[0].error.message.contains("panicked: bug in handler"),
        "{}",
        dead[0].error.message
    );
}

#[tokio::test(start_paused = true)]
async fn concurrency_is_bounded() {
    let (clock, store) = setup();
    let jobs = (0..10)
        .map(|i| NewJob::new("work", json!({})).with_key_suffix(i.to_string()))
        .collect();
    record(&*store, "evt_1", jobs).await;
    let (now, peak) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (n, p) = (now.clone(), peak.clone());
    let h = handler_fn(move |_job| {
        let (n, p) = (n.clone(), p.clone());
        async move {
            let inflight = n.fetch_add(1, Ordering::SeqCst) + 1;
            p.fetch_max(inflight, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_secs(1)).await;
            n.fetch_sub(1, Ordering::SeqCst);
            Ok(())
        }
    });
    let d = Dispatcher::builder(store)
        .handler("work", h)
        .concurrency(3)
        .clock(clock)
        .build()
        .unwrap();
    let stats = d.run_until_idle().await.unwrap();
    assert_eq!(stats.succeeded, 10);
    assert_eq!(
        peak.load(Ordering::SeqCst),
        3,
        "at most `concurrency` in flight, and used fully"
    );
}

#[tokio::test(start_paused = true)]
async fn a_waker_delivers_new_jobs_without_waiting_out_the_poll_interval() {
    let (clock, store) = setup();
    let h = Recorder::new(|_| Ok(()));
    let d = Dispatcher::builder(store.clone())
        .handler("work", h.clone())
        .poll_interval(Duration::from_secs(3600))
        .clock(clock)
        .build()
        .unwrap();
    let waker = d.waker();
    let (trigger, signal) = shutdown_channel();
    let worker = tokio::spawn({
        let d = d.clone();
        async move { d.run(signal).await }
    });
    tokio::time::sleep(Duration::from_secs(1)).await; // idle, asleep for an hour
    record(&*store, "evt_1", vec![NewJob::new("work", json!({}))]).await;
    waker.wake();
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(
        h.calls().len(),
        1,
        "delivered at once, not after the hour's poll"
    );
    trigger.trigger();
    let stats = worker.await.unwrap();
    assert_eq!((stats.claimed, stats.succeeded), (1, 1));
}

#[tokio::test(start_paused = true)]
async fn run_polls_for_new_jobs_and_drains_in_flight_work_on_shutdown() {
    let (clock, store) = setup();
    let done = Arc::new(AtomicUsize::new(0));
    let d2 = done.clone();
    let h = handler_fn(move |_job| {
        let d2 = d2.clone();
        async move {
            tokio::time::sleep(Duration::from_secs(2)).await;
            d2.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }
    });
    let d = Dispatcher::builder(store.clone())
        .handler("work", h)
        .poll_interval(Duration::from_millis(500))
        .clock(clock)
        .build()
        .unwrap();
    let (trigger, signal) = shutdown_channel();
    let worker = tokio::spawn({
        let d = d.clone();
        async move { d.run(signal).await }
    });
    tokio::time::sleep(Duration::from_secs(3)).await; // idle polling
    record(
        &*store,
        "evt_1",
        vec![
            NewJob::new("work", json!({})),
            NewJob::new("work", json!({})).with_key_suffix("b"),
        ],
    )
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await; // picked up, now in flight
    assert_eq!(
        store.counts().await.unwrap().leased,
        2,
        "claimed within a poll interval"
    );
    trigger.trigger();
    let stats = worker.await.unwrap();
    assert_eq!(
        (stats.claimed, stats.succeeded),
        (2, 2),
        "in-flight work finished before returning"
    );
    assert_eq!(done.load(Ordering::SeqCst), 2);
    let counts = store.counts().await.unwrap();
    assert_eq!((counts.leased, counts.done), (0, 2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_dispatchers_on_one_store_handle_each_job_once() {
    let store = Arc::new(InMemoryOutbox::new());
    for i in 0..100 {
        let jobs = vec![NewJob::new("a", json!({})), NewJob::new("b", json!({}))];
        record(&*store, &format!("evt_{i}"), jobs).await;
    }
    let seen: Arc<Mutex<HashMap<JobId, u32>>> = Arc::default();
    let make = |worker: &str| {
        let seen = seen.clone();
        let h = handler_fn(move |job: Job| {
            let seen = seen.clone();
            async move {
                tokio::task::yield_now().await;
                *seen.lock().unwrap().entry(job.id).or_default() += 1;
                Ok(())
            }
        });
        let shared: Arc<dyn JobHandler> = Arc::new(h);
        Dispatcher::builder(store.clone())
            .shared_handler("a", shared.clone())
            .shared_handler("b", shared)
            .worker_id(worker)
            .concurrency(4)
            .build()
            .unwrap()
    };
    let (x, y) = (make("x"), make("y"));
    let (sx, sy) = tokio::join!(x.run_until_idle(), y.run_until_idle());
    let (sx, sy) = (sx.unwrap(), sy.unwrap());
    assert_eq!(sx.succeeded + sy.succeeded, 200);
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 200);
    assert!(seen.values().all(|n| *n == 1), "a job was handled twice");
}

#[cfg(feature = "sqlite")]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_dispatchers_on_one_sqlite_file_handle_each_job_once() {
    use integrations_outbox::SqliteOutbox;

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("outbox.db");
    let first = SqliteOutbox::open(&path).await.unwrap();
    for i in 0..60 {
        let jobs = vec![NewJob::new("a", json!({})), NewJob::new("b", json!({}))];
        record(&first, &format!("evt_{i}"), jobs).await;
    }
    let seen: Arc<Mutex<HashMap<JobId, u32>>> = Arc::default();
    let mut dispatchers = Vec::new();
    for worker in ["x", "y"] {
        let store = Arc::new(SqliteOutbox::open(&path).await.unwrap());
        let seen = seen.clone();
        let h: Arc<dyn JobHandler> = Arc::new(handler_fn(move |job: Job| {
            let seen = seen.clone();
            async move {
                *seen.lock().unwrap().entry(job.id).or_default() += 1;
                Ok(())
            }
        }));
        dispatchers.push(
            Dispatcher::builder(store)
                .shared_handler("a", h.clone())
                .shared_handler("b", h)
                .worker_id(worker)
                .concurrency(5)
                .build()
                .unwrap(),
        );
    }
    let (sx, sy) = tokio::join!(
        dispatchers[0].run_until_idle(),
        dispatchers[1].run_until_idle()
    );
    assert_eq!(sx.unwrap().succeeded + sy.unwrap().succeeded, 120);
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 120);
    assert!(seen.values().all(|n| *n == 1), "a job was handled twice");
    assert_eq!(first.counts().await.unwrap().done, 120);
}

#[test]
fn builder_names_what_is_wrong() {
    let store = Arc::new(InMemoryOutbox::new());
    let ok = || handler_fn(|_job| async { Ok(()) });
    let field = |r: Result<Dispatcher>| r.unwrap_err().field().map(str::to_owned);
    assert_eq!(
        field(Dispatcher::builder(store.clone()).build()),
        Some("handlers".into())
    );
    let b = || Dispatcher::builder(store.clone()).handler("k", ok());
    assert_eq!(
        field(b().concurrency(0).build()),
        Some("concurrency".into())
    );
    assert_eq!(
        field(b().handler("", ok()).build()),
        Some("handlers".into())
    );
    assert_eq!(
        field(b().lease(Duration::ZERO).build()),
        Some("lease".into())
    );
    let late = b()
        .lease(Duration::from_secs(5))
        .handler_timeout(Duration::from_secs(5));
    assert_eq!(field(late.build()), Some("handler_timeout".into()));
    let d = b().worker_id("w-1").build().unwrap();
    assert_eq!(d.worker_id(), "w-1");
    let debug = format!("{d:?}");
    assert!(debug.contains("w-1") && debug.contains("\"k\""), "{debug}");
}
