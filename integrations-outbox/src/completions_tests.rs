//! Group completion: batching, per-job results, and a leader that goes away mid-commit.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use integrations_core::{ErrorRecord, Result};
use serde_json::json;

use super::Completions;
use crate::InMemoryOutbox;
use crate::store::{LEASE_LOST, OutboxStore};
use crate::types::{
    ClaimedJob, DeadLetter, FailOutcome, JobId, JobRecord, JobState, LeaseToken, NewJob,
    OutboxCounts, PurgeOutcome, RecordOutcome,
};

/// The in-memory store, counting `complete_many` calls; each waits for a permit when gated.
#[derive(Debug)]
struct Gated {
    inner: InMemoryOutbox,
    batches: AtomicUsize,
    gate: tokio::sync::Semaphore,
}

#[async_trait]
impl OutboxStore for Gated {
    async fn record_event(&self, event_id: &str, jobs: Vec<NewJob>) -> Result<RecordOutcome> {
        self.inner.record_event(event_id, jobs).await
    }
    async fn claim(&self, worker_id: &str, max: usize, lease: Duration) -> Result<Vec<ClaimedJob>> {
        self.inner.claim(worker_id, max, lease).await
    }
    async fn complete(&self, job_id: &JobId, lease: &LeaseToken) -> Result<()> {
        self.inner.complete(job_id, lease).await
    }
    async fn complete_many(&self, done: &[(JobId, LeaseToken)]) -> Vec<Result<()>> {
        self.batches.fetch_add(1, Ordering::SeqCst);
        let permit = self.gate.acquire().await;
        drop(permit);
        self.inner.complete_many(done).await
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

/// A gated store (no permits: the first batch waits) with `n` claimed jobs.
async fn claimed(n: usize) -> (Arc<Gated>, Vec<ClaimedJob>) {
    let store = Arc::new(Gated {
        inner: InMemoryOutbox::new(),
        batches: AtomicUsize::new(0),
        gate: tokio::sync::Semaphore::new(0),
    });
    let jobs = (0..n)
        .map(|i| NewJob::new(format!("k{i}"), json!({})))
        .collect();
    store.record_event("evt", jobs).await.unwrap();
    let claimed = store.claim("w", n, Duration::from_secs(60)).await.unwrap();
    assert_eq!(claimed.len(), n);
    (store, claimed)
}

/// Waits until `n` completions are queued behind the leader.
async fn queued(completions: &Completions, n: usize) {
    for _ in 0..500 {
        if completions.lock().waiting.len() >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    panic!("{n} completions never queued");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completions_that_arrive_during_a_commit_share_the_next() {
    let (store, jobs) = claimed(8).await;
    let completions = Arc::new(Completions::default());
    let mut tasks = tokio::task::JoinSet::new();
    let spawn = |tasks: &mut tokio::task::JoinSet<_>, c: &ClaimedJob, lease: LeaseToken| {
        let (store, completions, id) = (store.clone(), completions.clone(), c.job.id.clone());
        tasks.spawn(async move { completions.complete(&*store, id, lease).await });
    };
    // The first leads and waits at the gate; seven queue behind it, one with a stale lease.
    spawn(&mut tasks, &jobs[0], jobs[0].lease.clone());
    while store.batches.load(Ordering::SeqCst) == 0 {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    for (i, c) in jobs.iter().enumerate().skip(1) {
        let lease = if i == 7 {
            jobs[6].lease.clone()
        } else {
            c.lease.clone()
        };
        spawn(&mut tasks, c, lease);
    }
    queued(&completions, 7).await;
    store.gate.add_permits(100);
    let mut ok = 0;
    let mut lost = 0;
    while let Some(r) = tasks.join_next().await {
        match r.unwrap() {
            Ok(()) => ok += 1,
            Err(e) if e.code() == Some(LEASE_LOST) => lost += 1,
            Err(e) => panic!("unexpected {e}"),
        }
    }
    assert_eq!((ok, lost), (7, 1), "each job its own result");
    assert_eq!(
        store.batches.load(Ordering::SeqCst),
        2,
        "8 completions, 2 commits"
    );
    assert_eq!(
        store
            .inner
            .job(&jobs[7].job.id)
            .await
            .unwrap()
            .unwrap()
            .state,
        JobState::Leased
    );
    assert!(!completions.lock().committing, "the run of commits ended");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_dropped_mid_commit_hands_the_lead_on() {
    let (store, jobs) = claimed(3).await;
    let completions = Arc::new(Completions::default());
    let leader = {
        let (store, completions, c) = (store.clone(), completions.clone(), jobs[0].clone());
        tokio::spawn(async move { completions.complete(&*store, c.job.id, c.lease).await })
    };
    while store.batches.load(Ordering::SeqCst) == 0 {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let mut followers = Vec::new();
    for c in &jobs[1..] {
        let (store, completions, c) = (store.clone(), completions.clone(), c.clone());
        followers.push(tokio::spawn(async move {
            completions.complete(&*store, c.job.id, c.lease).await
        }));
    }
    queued(&completions, 2).await;
    leader.abort();
    assert!(leader.await.unwrap_err().is_cancelled());
    store.gate.add_permits(100);
    for f in followers {
        tokio::time::timeout(Duration::from_secs(5), f)
            .await
            .expect("a follower waited for a leader that is gone")
            .unwrap()
            .expect("completed by the next leader");
    }
    let first = store.inner.job(&jobs[0].job.id).await.unwrap().unwrap();
    assert_eq!(
        first.state,
        JobState::Leased,
        "the dropped leader's job was not completed"
    );
    assert!(!completions.lock().committing);
}
