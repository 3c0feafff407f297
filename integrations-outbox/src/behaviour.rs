//! The behaviour suite every [`OutboxStore`] must pass (feature `testing`).
//!
//! Run it against a fresh, empty store whose clock is the [`FixedClock`] you pass; it panics with
//! a message naming the broken rule.
//!
//! ```
//! use integrations_outbox::{InMemoryOutbox, behaviour::outbox_store_suite};
//! use integrations_core::clock::FixedClock;
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let clock = FixedClock::from_unix(1_700_000_000);
//! outbox_store_suite(&InMemoryOutbox::new().with_clock(clock.clone()), &clock).await;
//! # });
//! ```

use std::time::Duration;

use serde_json::json;

use super::{FailOutcome, JobId, JobState, LEASE_LOST, NewJob, OutboxStore, RecordOutcome};
use integrations_core::{Clock, FixedClock};
use integrations_core::{Error, ErrorKind};

mod kinds;
mod leased;
pub use kinds::claims_by_kind_take_only_those_kinds;
pub use leased::record_leased_runs_without_a_claim;

const LEASE: Duration = Duration::from_secs(30);

/// Runs every check below, in order, on one store.
///
/// # Panics
/// On the first broken rule, naming it.
pub async fn outbox_store_suite(store: &dyn OutboxStore, clock: &FixedClock) {
    let empty = store.counts().await.expect("counts");
    assert_eq!(empty, Default::default(), "the suite needs an empty store");
    record_is_atomic_and_deduplicated(store).await;
    traceparents_are_kept_with_their_jobs(store).await;
    claims_are_leased_and_fenced(store, clock).await;
    retries_then_dead_letters(store, clock).await;
    replays_dead_letters(store).await;
    exhausted_expired_lease_is_dead_lettered(store, clock).await;
    claims_respect_max_and_never_repeat(store).await;
    batch_completions_are_fenced_per_job(store).await;
    claims_by_kind_take_only_those_kinds(store, clock).await;
    purges_only_finished_work(store, clock).await;
    counts_report_the_oldest_due_pending_job(store, clock).await;
    record_leased_runs_without_a_claim(store, clock).await;
}

fn job(kind: &str) -> NewJob {
    NewJob::new(kind, json!({ "kind": kind }))
}

fn recorded(outcome: RecordOutcome) -> Vec<JobId> {
    match outcome {
        RecordOutcome::Recorded { job_ids } => job_ids,
        RecordOutcome::Duplicate => panic!("a first delivery must be recorded, not a duplicate"),
    }
}

fn assert_lease_lost(r: crate::Result<impl std::fmt::Debug>, what: &str) {
    match r {
        Err(e) => {
            assert_eq!(
                e.kind(),
                ErrorKind::Conflict,
                "{what}: want Conflict, got {e}"
            );
            assert_eq!(
                e.code(),
                Some(LEASE_LOST),
                "{what}: want code {LEASE_LOST}, got {e}"
            );
        }
        Ok(v) => panic!("{what}: a stale lease must be refused, got {v:?}"),
    }
}

fn failure(msg: &str) -> Error {
    Error::unavailable(msg)
        .with_provider("test")
        .with_code("E1")
}

/// An event and its jobs are written together, once; an invalid batch writes nothing.
pub async fn record_is_atomic_and_deduplicated(store: &dyn OutboxStore) {
    let bad = vec![job("email"), job("email")];
    let err = store
        .record_event("evt_a", bad)
        .await
        .expect_err("duplicate keys");
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    assert_eq!(
        store.counts().await.unwrap().events,
        0,
        "a refused batch must not record the event"
    );

    let ids = recorded(
        store
            .record_event("evt_a", vec![job("email"), job("sheets")])
            .await
            .unwrap(),
    );
    assert_eq!(ids.len(), 2);
    let again = store
        .record_event("evt_a", vec![job("email"), job("sns")])
        .await
        .unwrap();
    assert_eq!(
        again,
        RecordOutcome::Duplicate,
        "a redelivered event must be a duplicate"
    );
    let counts = store.counts().await.unwrap();
    assert_eq!(
        (counts.events, counts.pending),
        (1, 2),
        "a duplicate must record no jobs: {counts:?}"
    );
    let rec = store.job(&ids[0]).await.unwrap().expect("recorded job");
    assert_eq!(rec.state, JobState::Pending);
    assert_eq!(rec.job.idempotency_key.as_str(), "evt_a/email");
    assert_eq!(rec.job.payload, json!({ "kind": "email" }));
    assert_eq!((rec.job.attempt, rec.job.event_id.as_str()), (0, "evt_a"));

    let claimed = store.claim("w1", 10, LEASE).await.unwrap();
    assert_eq!(claimed.len(), 2);
    for c in &claimed {
        store.complete(&c.job.id, &c.lease).await.expect("complete");
    }
    assert_eq!(store.counts().await.unwrap().done, 2);
}

/// One holder per job; an expired lease is claimed again; stale tokens are refused.
pub async fn claims_are_leased_and_fenced(store: &dyn OutboxStore, clock: &FixedClock) {
    assert!(
        store.claim("w1", 10, Duration::ZERO).await.is_err(),
        "a zero lease is invalid"
    );
    assert!(
        store.claim("w1", 0, LEASE).await.unwrap().is_empty(),
        "max 0 claims nothing"
    );
    let id = recorded(
        store
            .record_event("evt_b", vec![job("notify")])
            .await
            .unwrap(),
    )
    .remove(0);
    let first = store.claim("w1", 10, LEASE).await.unwrap();
    assert_eq!(first.len(), 1);
    assert_eq!(
        (first[0].job.id.clone(), first[0].job.attempt),
        (id.clone(), 1)
    );
    let expected = clock.now() + LEASE;
    let skew = first[0]
        .lease_expires_at
        .duration_since(expected)
        .unwrap_or_else(|e| e.duration());
    assert!(
        skew < Duration::from_millis(2),
        "lease ends at now + lease (off by {skew:?})"
    );
    assert!(
        store.claim("w2", 10, LEASE).await.unwrap().is_empty(),
        "a leased job must not be claimed"
    );
    let rec = store.job(&id).await.unwrap().unwrap();
    assert_eq!(
        (rec.state, rec.leased_by.as_deref()),
        (JobState::Leased, Some("w1"))
    );

    clock.advance(LEASE + Duration::from_secs(1));
    let second = store.claim("w2", 10, LEASE).await.unwrap();
    assert_eq!(second.len(), 1, "an expired lease must be claimable");
    assert_eq!(second[0].job.attempt, 2, "a re-claim counts an attempt");
    assert_ne!(
        first[0].lease, second[0].lease,
        "each claim issues a fresh token"
    );
    assert_lease_lost(
        store.complete(&id, &first[0].lease).await,
        "complete with a stale lease",
    );
    let stale_fail = store
        .fail(&id, &first[0].lease, (&failure("x")).into(), None)
        .await;
    assert_lease_lost(stale_fail, "fail with a stale lease");
    store
        .complete(&id, &second[0].lease)
        .await
        .expect("current lease completes");
    assert_eq!(store.job(&id).await.unwrap().unwrap().state, JobState::Done);
    assert_lease_lost(
        store.complete(&id, &second[0].lease).await,
        "complete twice",
    );

    // An expired lease nobody re-claimed still completes: nobody else acted.
    let id = recorded(
        store
            .record_event("evt_c", vec![job("notify")])
            .await
            .unwrap(),
    )
    .remove(0);
    let c = store.claim("w1", 10, LEASE).await.unwrap().remove(0);
    clock.advance(LEASE * 2);
    store
        .complete(&id, &c.lease)
        .await
        .expect("expired but unclaimed lease completes");

    let unknown = JobId::new("999999999");
    let err = store
        .complete(&unknown, &c.lease)
        .await
        .expect_err("unknown job");
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    assert!(store.job(&unknown).await.unwrap().is_none());
    assert!(store.job(&JobId::new("not-an-id")).await.unwrap().is_none());
}

/// `complete_many` judges each job as `complete` would: the current lease completes, a stale
/// lease and an unknown job are refused, each with its own error, in the order given.
pub async fn batch_completions_are_fenced_per_job(store: &dyn OutboxStore) {
    assert!(
        store.complete_many(&[]).await.is_empty(),
        "nothing to complete"
    );
    let ids = recorded(
        store
            .record_event("evt_batch", vec![job("a"), job("b"), job("c")])
            .await
            .unwrap(),
    );
    let claimed = store.claim("w1", 10, LEASE).await.unwrap();
    assert_eq!(claimed.len(), 3);
    let lease_of = |id: &JobId| {
        claimed
            .iter()
            .find(|c| &c.job.id == id)
            .map(|c| c.lease.clone())
            .unwrap()
    };
    let stale = lease_of(&ids[2]);
    let results = store
        .complete_many(&[
            (ids[0].clone(), lease_of(&ids[0])),
            (JobId::new("999999998"), lease_of(&ids[1])),
            (ids[2].clone(), lease_of(&ids[1])),
            (ids[1].clone(), lease_of(&ids[1])),
        ])
        .await;
    assert_eq!(results.len(), 4, "one result per job");
    let mut results = results.into_iter();
    results.next().unwrap().expect("current lease completes");
    let unknown = results.next().unwrap().expect_err("unknown job");
    assert_eq!(unknown.kind(), ErrorKind::NotFound, "{unknown}");
    assert_lease_lost(results.next().unwrap(), "another job's lease");
    results.next().unwrap().expect("current lease completes");
    for (id, want) in [
        (&ids[0], JobState::Done),
        (&ids[1], JobState::Done),
        (&ids[2], JobState::Leased),
    ] {
        assert_eq!(store.job(id).await.unwrap().unwrap().state, want, "{id}");
    }
    assert_lease_lost(
        store
            .complete_many(&[(ids[0].clone(), lease_of(&ids[0]))])
            .await
            .remove(0),
        "complete twice",
    );
    store
        .complete(&ids[2], &stale)
        .await
        .expect("the refused job still completes under its own lease");
}

/// Retryable failures come back at their retry time; the last attempt and permanent failures
/// go to the dead-letter queue with their error.
pub async fn retries_then_dead_letters(store: &dyn OutboxStore, clock: &FixedClock) {
    let new = job("email").with_max_attempts(3);
    let id = recorded(store.record_event("evt_d", vec![new]).await.unwrap()).remove(0);
    for attempt in 1..=3u32 {
        let c = store.claim("w1", 10, LEASE).await.unwrap();
        assert_eq!(
            c.len(),
            1,
            "attempt {attempt} must be claimable at its retry time"
        );
        assert_eq!(c[0].job.attempt, attempt);
        let retry_at = clock.now() + Duration::from_secs(60);
        let err = (&failure(&format!("attempt {attempt}"))).into();
        let out = store
            .fail(&id, &c[0].lease, err, Some(retry_at))
            .await
            .unwrap();
        if attempt < 3 {
            assert_eq!(
                out,
                FailOutcome::Retrying {
                    attempts: attempt,
                    retry_at
                }
            );
            assert!(
                store.claim("w1", 10, LEASE).await.unwrap().is_empty(),
                "claimed before its retry time"
            );
            clock.advance(Duration::from_secs(60));
        } else {
            assert_eq!(
                out,
                FailOutcome::DeadLettered { attempts: 3 },
                "the last attempt dead-letters"
            );
        }
    }
    clock.advance(Duration::from_secs(3600));
    assert!(
        store.claim("w1", 10, LEASE).await.unwrap().is_empty(),
        "dead letters are never claimed"
    );
    let dead = store.dead_letter(&id).await.unwrap().expect("dead letter");
    assert_eq!(dead.job.attempt, 3);
    assert_eq!(dead.error.kind, ErrorKind::Unavailable);
    assert_eq!(dead.error.message, "attempt 3");
    assert_eq!(dead.error.provider.as_deref(), Some("test"));
    assert_eq!(dead.error.code.as_deref(), Some("E1"));
    assert!(
        dead.may_have_acted,
        "an unavailable error (sent, no answer) may have acted"
    );

    let id = recorded(
        store
            .record_event("evt_e", vec![job("charge")])
            .await
            .unwrap(),
    )
    .remove(0);
    let c = store.claim("w1", 10, LEASE).await.unwrap().remove(0);
    let declined =
        Error::declined(Some("card_declined".into()), None, "declined").with_provider("stripe");
    let out = store
        .fail(&id, &c.lease, (&declined).into(), None)
        .await
        .unwrap();
    assert_eq!(
        out,
        FailOutcome::DeadLettered { attempts: 1 },
        "a permanent failure dead-letters at once"
    );
    let dead = store.dead_letter(&id).await.unwrap().expect("dead letter");
    assert!(!dead.may_have_acted, "a decline certainly did not act");
    let listed: Vec<JobId> = store
        .dead_letters(10)
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.job.id)
        .collect();
    assert!(
        listed.len() == 2 && listed.contains(&id),
        "dead letters listed: {listed:?}"
    );
    assert_eq!(
        store.dead_letters(1).await.unwrap().len(),
        1,
        "limit honoured"
    );
    assert_eq!(counted(store).await.dead, 2);
}

/// Replay puts a dead letter back to pending with its attempts reset.
pub async fn replays_dead_letters(store: &dyn OutboxStore) {
    let dead = store.dead_letters(10).await.unwrap();
    let id = dead
        .first()
        .expect("a dead letter from the previous check")
        .job
        .id
        .clone();
    store.replay(&id).await.expect("replay");
    let rec = store.job(&id).await.unwrap().unwrap();
    assert_eq!(
        (rec.state, rec.job.attempt),
        (JobState::Pending, 0),
        "replay resets attempts"
    );
    let c = store.claim("w1", 10, LEASE).await.unwrap();
    assert_eq!(c.len(), 1, "a replayed job is claimable now");
    assert_eq!((c[0].job.id.clone(), c[0].job.attempt), (id.clone(), 1));
    store.complete(&id, &c[0].lease).await.unwrap();
    let err = store.replay(&id).await.expect_err("replaying a done job");
    assert_eq!(err.kind(), ErrorKind::Conflict, "{err}");
    let err = store
        .replay(&JobId::new("999999999"))
        .await
        .expect_err("unknown");
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    for d in store.dead_letters(10).await.unwrap() {
        store.replay(&d.job.id).await.unwrap();
        let c = store.claim("w1", 10, LEASE).await.unwrap().remove(0);
        store.complete(&c.job.id, &c.lease).await.unwrap();
    }
    assert_eq!(store.counts().await.unwrap().dead, 0);
}

/// A job whose last allowed attempt's lease expires is dead-lettered, not claimed forever.
pub async fn exhausted_expired_lease_is_dead_lettered(store: &dyn OutboxStore, clock: &FixedClock) {
    let new = job("crashy").with_max_attempts(1);
    let id = recorded(store.record_event("evt_f", vec![new]).await.unwrap()).remove(0);
    assert_eq!(store.claim("w1", 10, LEASE).await.unwrap().len(), 1);
    clock.advance(LEASE + Duration::from_secs(1));
    assert!(
        store.claim("w2", 10, LEASE).await.unwrap().is_empty(),
        "no attempts left to claim"
    );
    let dead = store
        .dead_letter(&id)
        .await
        .unwrap()
        .expect("dead-lettered on expiry");
    assert_eq!(dead.error.code.as_deref(), Some("lease_expired"));
    assert!(
        dead.may_have_acted,
        "a worker that overran its lease may have acted"
    );
    store.replay(&id).await.unwrap();
    let c = store.claim("w1", 10, LEASE).await.unwrap().remove(0);
    store.complete(&id, &c.lease).await.unwrap();
}

/// `max` bounds a claim, and no job is handed out twice.
pub async fn claims_respect_max_and_never_repeat(store: &dyn OutboxStore) {
    let jobs = (0..5)
        .map(|i| job("bulk").with_key_suffix(i.to_string()))
        .collect();
    let ids = recorded(store.record_event("evt_g", jobs).await.unwrap());
    let a = store.claim("w1", 2, LEASE).await.unwrap();
    let b = store.claim("w2", 10, LEASE).await.unwrap();
    assert_eq!((a.len(), b.len()), (2, 3));
    assert_eq!(a[0].job.id, ids[0], "oldest first");
    let mut seen: Vec<JobId> = a.iter().chain(&b).map(|c| c.job.id.clone()).collect();
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 5, "each job claimed once");
    for c in a.iter().chain(&b) {
        store.complete(&c.job.id, &c.lease).await.unwrap();
    }
}

/// Purge removes done jobs and job-less events older than the cut-off, nothing else.
pub async fn purges_only_finished_work(store: &dyn OutboxStore, clock: &FixedClock) {
    let id = recorded(
        store
            .record_event("evt_h", vec![job("dead")])
            .await
            .unwrap(),
    )
    .remove(0);
    let c = store.claim("w1", 10, LEASE).await.unwrap().remove(0);
    store
        .fail(&id, &c.lease, (&failure("x")).into(), None)
        .await
        .unwrap();
    clock.advance(Duration::from_secs(1));
    let before = store.counts().await.unwrap();
    let purged = store.purge(clock.now()).await.unwrap();
    assert_eq!(purged.jobs, before.done, "every done job is older than now");
    let after = store.counts().await.unwrap();
    assert_eq!(
        (after.done, after.dead, after.events),
        (0, 1, 1),
        "dead letters and their event stay: {after:?}"
    );
    assert_eq!(purged.events, before.events - 1);
    let again = store
        .record_event("evt_a", vec![job("email")])
        .await
        .unwrap();
    assert!(
        !again.is_duplicate(),
        "a purged event id is no longer deduplicated"
    );
}

/// A job's `traceparent` is stored and comes back with it, normalised; a malformed one is
/// dropped without failing the record. Run outside any OpenTelemetry span (else a job recorded
/// without one takes the current span's).
pub async fn traceparents_are_kept_with_their_jobs(store: &dyn OutboxStore) {
    const TP: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let jobs = vec![
        job("traced").with_traceparent(TP.replacen("00", "01", 1)),
        job("garbled").with_traceparent("00-not-a-trace-context"),
        job("untraced"),
    ];
    let ids = recorded(
        store
            .record_event("evt_tp", jobs)
            .await
            .expect("a malformed traceparent must not fail the record"),
    );
    let want = [Some(TP), None, None];
    for (id, want) in ids.iter().zip(want) {
        let rec = store.job(id).await.unwrap().expect("recorded job");
        assert_eq!(
            rec.job.traceparent.as_deref(),
            want,
            "stored traceparent of the {} job",
            rec.job.kind
        );
    }
    // Only this step's jobs are pending now: claim and settle them all.
    let claimed = store.claim("w1", 100, LEASE).await.unwrap();
    let mut seen = 0;
    for c in &claimed {
        if let Some(i) = ids.iter().position(|id| *id == c.job.id) {
            assert_eq!(
                c.job.traceparent.as_deref(),
                want[i],
                "claimed traceparent of the {} job",
                c.job.kind
            );
            seen += 1;
        }
        store.complete(&c.job.id, &c.lease).await.unwrap();
    }
    assert_eq!(seen, 3, "every job claimed");
}

/// [`OutboxStore::counts`], after checking that [`OutboxStore::backlog`] agrees with it on
/// the unfinished jobs.
async fn counted(store: &dyn OutboxStore) -> super::OutboxCounts {
    let backlog = store.backlog().await.expect("backlog");
    let counts = store.counts().await.expect("counts");
    assert_eq!(
        backlog,
        counts.into(),
        "the backlog is the counts' pending, leased and dead jobs and oldest pending"
    );
    counts
}

/// `counts()` and `backlog()` report the earliest due time of a pending job and its age; a job waiting for its
/// retry time is not overdue. Delivers whatever is pending first (run it last in the suite).
pub async fn counts_report_the_oldest_due_pending_job(store: &dyn OutboxStore, clock: &FixedClock) {
    clock.advance(Duration::from_secs(3600));
    for c in store.claim("w0", 1000, LEASE).await.unwrap() {
        store.complete(&c.job.id, &c.lease).await.unwrap();
    }
    let c = counted(store).await;
    assert_eq!(c.pending, 0, "the check needs no pending job");
    assert_eq!(
        (c.oldest_pending_at, c.oldest_pending_age),
        (None, None),
        "no pending job: no oldest"
    );
    let t0 = clock.now();
    let first = recorded(
        store
            .record_event("evt_o1", vec![job("age")])
            .await
            .unwrap(),
    )
    .remove(0);
    clock.advance(Duration::from_secs(10));
    store
        .record_event("evt_o2", vec![job("age")])
        .await
        .unwrap();
    let c = counted(store).await;
    assert_eq!(c.pending, 2);
    assert_eq!(
        c.oldest_pending_at,
        Some(t0),
        "the first job recorded is the oldest"
    );
    assert_eq!(c.oldest_pending_age, Some(Duration::from_secs(10)));

    // The oldest fails and waits a minute for its retry: the other one is now the oldest due.
    let claimed = store.claim("w1", 1, LEASE).await.unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].job.id, first, "claims go oldest first");
    let retry_at = clock.now() + Duration::from_secs(60);
    store
        .fail(
            &first,
            &claimed[0].lease,
            (&failure("later")).into(),
            Some(retry_at),
        )
        .await
        .unwrap();
    clock.advance(Duration::from_secs(5));
    let c = counted(store).await;
    assert_eq!(c.pending, 2, "a job waiting for its retry is pending");
    assert_eq!(c.oldest_pending_at, Some(t0 + Duration::from_secs(10)));
    assert_eq!(c.oldest_pending_age, Some(Duration::from_secs(5)));

    // Only the retrying job left, not due yet: pending, but not overdue.
    let claimed = store.claim("w1", 10, LEASE).await.unwrap();
    assert_eq!(claimed.len(), 1);
    store
        .complete(&claimed[0].job.id, &claimed[0].lease)
        .await
        .unwrap();
    let c = counted(store).await;
    assert_eq!(c.pending, 1);
    assert_eq!(c.oldest_pending_at, Some(retry_at));
    assert_eq!(c.oldest_pending_age, Some(Duration::ZERO));

    clock.advance(Duration::from_secs(60));
    let claimed = store.claim("w1", 10, LEASE).await.unwrap();
    assert_eq!(claimed.len(), 1);
    store
        .complete(&claimed[0].job.id, &claimed[0].lease)
        .await
        .unwrap();
    let c = counted(store).await;
    assert_eq!(
        (c.pending, c.oldest_pending_at, c.oldest_pending_age),
        (0, None, None)
    );
}
