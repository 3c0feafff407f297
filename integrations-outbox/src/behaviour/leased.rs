//! The rules of recording jobs already leased (`record_event_leased`) in the behaviour suite.

use super::*;
use crate::{ClaimedJob, LeaseOnRecord};

/// [`OutboxStore::record_event_leased`] records like `record_event` and leases, in the same
/// transaction, the first `max` new jobs of the kinds named, exactly as a claim would: attempt
/// 1, a fresh token, `leased_by` and the expiry set; they are not claimable until the lease
/// runs out, then any worker claims them (attempt 2) and the old token is fenced off. A
/// duplicate leases nothing; bad arguments write nothing. A store that does not lease on record
/// ([`OutboxStore::leases_on_record`] is `false`) records every job pending. Settles every job
/// it records, except one left dead-lettered (run it last).
pub async fn record_leased_runs_without_a_claim(store: &dyn OutboxStore, clock: &FixedClock) {
    let before = store.counts().await.expect("counts");
    let kinds = ["email", "notify"];
    for (worker, kinds, lease, field) in [
        ("", &kinds[..], LEASE, "worker_id"),
        ("w1", &[][..], LEASE, "kinds"),
        ("w1", &[""][..], LEASE, "kinds"),
        ("w1", &kinds[..], Duration::ZERO, "lease"),
    ] {
        let err = store
            .record_event_leased(
                "evt_bad",
                vec![job("email")],
                LeaseOnRecord::new(worker, kinds, 1, lease),
            )
            .await
            .expect_err("bad lease arguments must be refused");
        assert_eq!(
            (err.kind(), err.field()),
            (ErrorKind::InvalidInput, Some(field)),
            "{err}"
        );
    }
    assert_eq!(
        store.counts().await.unwrap(),
        before,
        "a refused record_event_leased writes nothing"
    );

    let jobs = vec![
        job("email"),
        job("sheets"),
        job("email").with_key_suffix("2"),
        job("notify"),
    ];
    let to = LeaseOnRecord::new("w1", &kinds, 2, LEASE);
    let (outcome, leased) = store
        .record_event_leased("evt_leased", jobs.clone(), to)
        .await
        .unwrap();
    let ids = recorded(outcome);
    assert_eq!(ids.len(), 4, "every job is recorded");
    if !store.leases_on_record() {
        assert!(
            leased.is_empty(),
            "a store that does not lease on record leases nothing"
        );
        settle_claimable(store, 4).await;
        return;
    }
    let now = clock.now();
    assert_eq!(
        leased.iter().map(|c| c.job.id.clone()).collect::<Vec<_>>(),
        [ids[0].clone(), ids[2].clone()],
        "the first `max` jobs of the kinds named, in the order given"
    );
    for (c, key) in leased
        .iter()
        .zip(["evt_leased/email", "evt_leased/email/2"])
    {
        assert_eq!(
            (c.job.attempt, c.job.event_id.as_str(), c.job.kind.as_str()),
            (1, "evt_leased", "email"),
            "a job leased on record is on its first attempt"
        );
        assert_eq!(c.job.idempotency_key.as_str(), key);
        assert_eq!(c.job.payload, json!({ "kind": "email" }));
        assert_eq!(c.job.created_at, now, "created when recorded");
        assert_eq!(
            c.lease_expires_at,
            now + LEASE,
            "the lease ends at now + lease"
        );
        let rec = store
            .job(&c.job.id)
            .await
            .unwrap()
            .expect("the leased job is stored");
        assert_eq!(
            (
                rec.state,
                rec.leased_by.as_deref(),
                rec.job.attempt,
                rec.lease_expires_at
            ),
            (JobState::Leased, Some("w1"), 1, Some(now + LEASE)),
            "stored as a claim leaves it"
        );
    }
    assert_ne!(
        leased[0].lease, leased[1].lease,
        "each lease has its own token"
    );
    for id in [&ids[1], &ids[3]] {
        let rec = store.job(id).await.unwrap().unwrap();
        assert_eq!(
            (rec.state, rec.job.attempt),
            (JobState::Pending, 0),
            "the rest are pending"
        );
    }
    let c = store.counts().await.unwrap();
    assert_eq!(
        (c.leased - before.leased, c.pending - before.pending),
        (2, 2),
        "{c:?}"
    );

    // Only the pending ones are claimable; the leased ones are fenced as claimed ones are.
    let mut others = store.claim("w2", 10, LEASE).await.unwrap();
    others.sort_by(|a, b| a.job.id.cmp(&b.job.id));
    let mut want = vec![ids[1].clone(), ids[3].clone()];
    want.sort();
    assert_eq!(
        others.iter().map(|c| c.job.id.clone()).collect::<Vec<_>>(),
        want,
        "a job leased on record must not be claimed while its lease holds"
    );
    for o in &others {
        store.complete(&o.job.id, &o.lease).await.unwrap();
    }
    assert_lease_lost(
        store.complete(&leased[1].job.id, &leased[0].lease).await,
        "complete with another job's token",
    );
    store
        .complete(&leased[0].job.id, &leased[0].lease)
        .await
        .unwrap();

    // The worker died: its lease runs out and another worker claims the job.
    clock.advance(LEASE + Duration::from_secs(1));
    let again = store.claim("w2", 10, LEASE).await.unwrap();
    assert_eq!(again.len(), 1, "the expired lease is claimable: {again:?}");
    assert_eq!(
        (again[0].job.id.clone(), again[0].job.attempt),
        (leased[1].job.id.clone(), 2),
        "the claim after the lease counts the second attempt"
    );
    assert_lease_lost(
        store.complete(&leased[1].job.id, &leased[1].lease).await,
        "complete under the expired lease taken on record",
    );
    store
        .complete(&again[0].job.id, &again[0].lease)
        .await
        .unwrap();

    // A redelivered event leases and writes nothing.
    let settled = store.counts().await.unwrap();
    let (outcome, leased) = store
        .record_event_leased("evt_leased", jobs, to)
        .await
        .unwrap();
    assert_eq!((outcome, leased.len()), (RecordOutcome::Duplicate, 0));
    assert_eq!(
        store.counts().await.unwrap(),
        settled,
        "a duplicate writes nothing"
    );

    // `max` 0 leases nothing.
    let (outcome, leased) = store
        .record_event_leased(
            "evt_leased_0",
            vec![job("email")],
            LeaseOnRecord::new("w1", &kinds, 0, LEASE),
        )
        .await
        .unwrap();
    assert_eq!(
        (recorded(outcome).len(), leased.len()),
        (1, 0),
        "max 0 leases nothing"
    );
    settle_claimable(store, 1).await;

    // A job with one attempt, leased on record, whose lease runs out is dead-lettered.
    let (_, leased) = store
        .record_event_leased("evt_leased_1", vec![job("notify").with_max_attempts(1)], to)
        .await
        .unwrap();
    let ClaimedJob { job: once, .. } = leased.into_iter().next().expect("leased on record");
    clock.advance(LEASE + Duration::from_secs(1));
    assert!(
        store.claim("w2", 10, LEASE).await.unwrap().is_empty(),
        "an exhausted expired lease is not claimed"
    );
    let rec = store.job(&once.id).await.unwrap().unwrap();
    assert_eq!(rec.state, JobState::Dead, "it is dead-lettered: {rec:?}");
}

/// Claims and completes `n` jobs (all that are due), over a few claims if the store hands them
/// out in parts (a queue-backed store may).
async fn settle_claimable(store: &dyn OutboxStore, n: usize) {
    let mut settled = 0;
    for _ in 0..20 {
        let claimed = store.claim("w2", n + 1 - settled, LEASE).await.unwrap();
        for c in &claimed {
            store.complete(&c.job.id, &c.lease).await.unwrap();
        }
        settled += claimed.len();
        if settled >= n {
            break;
        }
    }
    assert_eq!(settled, n, "the jobs recorded pending are claimable");
}
