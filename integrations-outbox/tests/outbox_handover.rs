//! `Dispatcher::record_event`: the jobs a dispatcher records for itself are written leased to it
//! and run without a claim; the slots, the shutdown drain, a store that cannot lease on record,
//! and a worker that dies holding handed-over jobs.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use integrations_core::clock::FixedClock;
use integrations_core::{ErrorRecord, Result};
use integrations_outbox::{
    ClaimedJob, DeadLetter, Dispatcher, FailOutcome, InMemoryOutbox, JobId, JobRecord, JobState,
    LeaseToken, NewJob, OutboxCounts, OutboxStore, PurgeOutcome, RecordOutcome, handler_fn,
    shutdown_channel,
};
use serde_json::json;
use tokio::sync::Semaphore;

/// An in-memory outbox that counts the jobs its claims hand out, and that can refuse to lease on
/// record (then the trait's default records them pending).
#[derive(Debug)]
struct Counting {
    inner: InMemoryOutbox,
    leases: bool,
    claimed: AtomicUsize,
}

impl Counting {
    fn new(leases: bool) -> Arc<Counting> {
        Arc::new(Counting {
            inner: InMemoryOutbox::new(),
            leases,
            claimed: AtomicUsize::new(0),
        })
    }
    fn claimed(&self) -> usize {
        self.claimed.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl OutboxStore for Counting {
    async fn record_event(&self, event_id: &str, jobs: Vec<NewJob>) -> Result<RecordOutcome> {
        self.inner.record_event(event_id, jobs).await
    }
    async fn record_event_leased(
        &self,
        event_id: &str,
        jobs: Vec<NewJob>,
        to: integrations_outbox::LeaseOnRecord<'_>,
    ) -> Result<(RecordOutcome, Vec<ClaimedJob>)> {
        if self.leases {
            self.inner.record_event_leased(event_id, jobs, to).await
        } else {
            Ok((self.inner.record_event(event_id, jobs).await?, Vec::new()))
        }
    }
    fn leases_on_record(&self) -> bool {
        self.leases
    }
    async fn claim(&self, worker_id: &str, max: usize, lease: Duration) -> Result<Vec<ClaimedJob>> {
        let c = self.inner.claim(worker_id, max, lease).await?;
        self.claimed.fetch_add(c.len(), Ordering::SeqCst);
        Ok(c)
    }
    fn claims_by_kind(&self) -> bool {
        true
    }
    async fn claim_kinds(
        &self,
        worker_id: &str,
        kinds: &[&str],
        max: usize,
        lease: Duration,
    ) -> Result<Vec<ClaimedJob>> {
        let c = self.inner.claim_kinds(worker_id, kinds, max, lease).await?;
        self.claimed.fetch_add(c.len(), Ordering::SeqCst);
        Ok(c)
    }
    async fn complete(&self, job_id: &JobId, lease: &LeaseToken) -> Result<()> {
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

fn jobs(kind: &str, n: usize) -> Vec<NewJob> {
    (0..n)
        .map(|i| NewJob::new(kind, json!({ "i": i })).with_key_suffix(i.to_string()))
        .collect()
}

/// A handler that waits for `gate` and records the attempts it saw and the most it ran at once.
#[derive(Clone)]
struct Gated {
    gate: Arc<Semaphore>,
    running: Arc<AtomicUsize>,
    most: Arc<AtomicUsize>,
    attempts: Arc<Mutex<Vec<u32>>>,
}

impl Default for Gated {
    fn default() -> Self {
        Gated {
            gate: Arc::new(Semaphore::new(0)),
            running: Arc::default(),
            most: Arc::default(),
            attempts: Arc::default(),
        }
    }
}

impl Gated {
    fn dispatcher(&self, store: Arc<dyn OutboxStore>, concurrency: usize) -> Dispatcher {
        let me = self.clone();
        Dispatcher::builder(store)
            .handler(
                "work",
                handler_fn(move |job| {
                    let me = me.clone();
                    let attempt = job.attempt;
                    async move {
                        let now = me.running.fetch_add(1, Ordering::SeqCst) + 1;
                        me.most.fetch_max(now, Ordering::SeqCst);
                        me.attempts.lock().unwrap().push(attempt);
                        let permit = me.gate.acquire().await;
                        drop(permit);
                        me.running.fetch_sub(1, Ordering::SeqCst);
                        Ok(())
                    }
                }),
            )
            .concurrency(concurrency)
            .worker_id("w1")
            .poll_interval(Duration::from_millis(50))
            .build()
            .unwrap()
    }
}

async fn settle(store: &dyn OutboxStore) -> OutboxCounts {
    for _ in 0..500 {
        let c = store.counts().await.unwrap();
        if c.pending == 0 && c.leased == 0 {
            return c;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the outbox did not settle: {:?}", store.counts().await);
}

#[tokio::test]
async fn jobs_recorded_by_the_dispatcher_run_without_a_claim_within_its_slots() {
    let store = Counting::new(true);
    let h = Gated::default();
    let d = h.dispatcher(store.clone(), 2);
    let (trigger, signal) = shutdown_channel();
    let run = tokio::spawn({
        let d = d.clone();
        async move { d.run(signal).await }
    });
    tokio::time::sleep(Duration::from_millis(10)).await; // the run loop is idle
    let mut all = jobs("work", 3);
    all.push(NewJob::new("other", json!({})));
    let RecordOutcome::Recorded { job_ids } = d.record_event("evt_1", all).await.unwrap() else {
        panic!("a first delivery is recorded");
    };
    // Two slots: the first two jobs were recorded leased to w1; the third waits for a slot and
    // is claimed by the run loop; `other` has no handler here and stays pending.
    for id in &job_ids[..2] {
        let rec = store.inner.job(id).await.unwrap().unwrap();
        assert_eq!(
            (rec.state, rec.leased_by.as_deref(), rec.job.attempt),
            (JobState::Leased, Some("w1"), 1)
        );
    }
    assert_eq!(
        store.claimed(),
        0,
        "no claim handed out the jobs recorded leased"
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        h.most.load(Ordering::SeqCst),
        2,
        "the run loop's claims share the two slots with the handed-over jobs"
    );
    h.gate.add_permits(100);
    while store.inner.job(&job_ids[2]).await.unwrap().unwrap().state != JobState::Done {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        store.claimed(),
        1,
        "only the job without a slot was claimed"
    );
    assert_eq!(*h.attempts.lock().unwrap(), [1, 1, 1]);
    let other = store.inner.job(&job_ids[3]).await.unwrap().unwrap();
    assert_eq!(
        other.state,
        JobState::Pending,
        "a kind without handler stays"
    );
    trigger.trigger();
    let stats = run.await.unwrap();
    assert_eq!(
        (stats.claimed, stats.succeeded),
        (3, 3),
        "run counts the handed-over deliveries: {stats:?}"
    );
    // A redelivered event hands over nothing.
    assert!(
        d.record_event("evt_1", jobs("work", 1))
            .await
            .unwrap()
            .is_duplicate()
    );
}

#[tokio::test]
async fn from_a_store_that_cannot_lease_on_record_the_jobs_are_claimed() {
    let store = Counting::new(false);
    let h = Gated::default();
    h.gate.add_permits(100);
    let d = h.dispatcher(store.clone(), 4);
    let (trigger, signal) = shutdown_channel();
    let run = tokio::spawn({
        let d = d.clone();
        async move { d.run(signal).await }
    });
    d.record_event("evt_1", jobs("work", 3)).await.unwrap();
    let c = settle(&*store).await;
    assert_eq!(c.done, 3);
    assert_eq!(store.claimed(), 3, "recorded pending, then claimed");
    trigger.trigger();
    assert_eq!(run.await.unwrap().succeeded, 3);
}

#[tokio::test]
async fn shutdown_waits_for_handed_over_deliveries_and_then_takes_no_more() {
    let store = Counting::new(true);
    let h = Gated::default();
    let d = h.dispatcher(store.clone(), 4);
    let (trigger, signal) = shutdown_channel();
    let run = tokio::spawn({
        let d = d.clone();
        async move { d.run(signal).await }
    });
    d.record_event("evt_1", jobs("work", 2)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    trigger.trigger();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        !run.is_finished(),
        "run waits for the handed-over deliveries"
    );
    // Draining: a new event is recorded pending for whichever dispatcher runs next.
    let RecordOutcome::Recorded { job_ids } =
        d.record_event("evt_2", jobs("work", 1)).await.unwrap()
    else {
        panic!("recorded");
    };
    h.gate.add_permits(100);
    let stats = run.await.unwrap();
    assert_eq!((stats.claimed, stats.succeeded), (2, 2), "{stats:?}");
    let late = store.inner.job(&job_ids[0]).await.unwrap().unwrap();
    assert_eq!((late.state, late.job.attempt), (JobState::Pending, 0));
}

#[tokio::test]
async fn a_dead_workers_handed_over_jobs_are_claimed_by_another_when_the_lease_ends() {
    let clock = FixedClock::from_unix(1_700_000_000);
    let store: Arc<InMemoryOutbox> = Arc::new(InMemoryOutbox::new().with_clock(clock.clone()));
    let stuck = Gated::default(); // never opened: the worker "died" mid-delivery
    let a = Dispatcher::builder(store.clone())
        .handler("work", {
            let stuck = stuck.clone();
            handler_fn(move |_job| {
                let stuck = stuck.clone();
                async move {
                    let permit = stuck.gate.acquire().await;
                    drop(permit);
                    Ok(())
                }
            })
        })
        .worker_id("a")
        .clock(clock.clone())
        .lease(Duration::from_secs(60))
        .build()
        .unwrap();
    let RecordOutcome::Recorded { job_ids } =
        a.record_event("evt_1", jobs("work", 1)).await.unwrap()
    else {
        panic!("recorded");
    };
    let rec = store.job(&job_ids[0]).await.unwrap().unwrap();
    assert_eq!(
        (rec.state, rec.leased_by.as_deref()),
        (JobState::Leased, Some("a"))
    );
    let delivered = Arc::new(Mutex::new(Vec::new()));
    let b = Dispatcher::builder(store.clone())
        .handler("work", {
            let delivered = delivered.clone();
            handler_fn(move |job| {
                let delivered = delivered.clone();
                let attempt = job.attempt;
                async move {
                    delivered.lock().unwrap().push(attempt);
                    Ok(())
                }
            })
        })
        .worker_id("b")
        .clock(clock.clone())
        .build()
        .unwrap();
    assert_eq!(
        b.run_until_idle().await.unwrap().claimed,
        0,
        "held by a's lease"
    );
    clock.advance(Duration::from_secs(61));
    let stats = b.run_until_idle().await.unwrap();
    assert_eq!((stats.claimed, stats.succeeded), (1, 1));
    assert_eq!(*delivered.lock().unwrap(), [2], "the second attempt, by b");
    // a comes back: its completion is fenced off.
    stuck.gate.add_permits(1);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let rec = store.job(&job_ids[0]).await.unwrap().unwrap();
    assert_eq!((rec.state, rec.job.attempt), (JobState::Done, 2));
}
