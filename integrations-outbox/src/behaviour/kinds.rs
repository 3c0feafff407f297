//! The claim-by-kind rules of the behaviour suite.

use super::*;

/// A claim by kind takes only jobs of the kinds named, oldest first across them, however many
/// older jobs of other kinds wait; it leases, fences and dead-letters those as `claim` does and
/// leaves every other kind as it was. A store that does not claim by kind says so with
/// [`ErrorKind::Configuration`] naming `kinds`. Settles every job it records.
pub async fn claims_by_kind_take_only_those_kinds(store: &dyn OutboxStore, clock: &FixedClock) {
    if !store.claims_by_kind() {
        let err = store
            .claim_kinds("w1", &["email"], 10, LEASE)
            .await
            .expect_err("a store that does not claim by kind must refuse claim_kinds");
        assert_eq!(
            (err.kind(), err.field()),
            (ErrorKind::Configuration, Some("kinds")),
            "{err}"
        );
        return;
    }
    for bad in [&[][..], &[""][..]] {
        let err = store
            .claim_kinds("w1", bad, 10, LEASE)
            .await
            .expect_err("an empty kind list or kind must be refused");
        assert_eq!(
            (err.kind(), err.field()),
            (ErrorKind::InvalidInput, Some("kinds")),
            "{bad:?}: {err}"
        );
    }
    let err = store
        .claim_kinds("w1", &["email"], 10, Duration::ZERO)
        .await
        .expect_err("a zero lease");
    assert_eq!(err.field(), Some("lease"), "{err}");

    // A backlog of one kind, recorded first, and one job of each of three other kinds.
    let backlog = (0..30)
        .map(|i| job("sheets").with_key_suffix(i.to_string()))
        .collect();
    let sheets = recorded(store.record_event("evt_k1", backlog).await.unwrap());
    clock.advance(Duration::from_secs(1));
    let others = recorded(
        store
            .record_event("evt_k2", vec![job("email"), job("sns"), job("metrics")])
            .await
            .unwrap(),
    );
    assert!(
        store
            .claim_kinds("w1", &["email"], 0, LEASE)
            .await
            .unwrap()
            .is_empty(),
        "max 0 claims nothing"
    );
    let first = store
        .claim_kinds("w1", &["sns", "email", "sns"], 10, LEASE)
        .await
        .unwrap();
    let got: Vec<(&JobId, &str)> = first
        .iter()
        .map(|c| (&c.job.id, c.job.kind.as_str()))
        .collect();
    assert_eq!(
        got,
        [(&others[0], "email"), (&others[1], "sns")],
        "only the kinds named, oldest first, each once, past 30 older jobs of another kind"
    );
    for id in sheets.iter().chain([&others[2]]) {
        let rec = store.job(id).await.unwrap().expect("recorded job");
        assert_eq!(
            (rec.state, rec.job.attempt),
            (JobState::Pending, 0),
            "a claim by kind must leave a {} job alone",
            rec.job.kind
        );
    }
    store
        .complete(&first[0].job.id, &first[0].lease)
        .await
        .unwrap();

    let some_sheets = store
        .claim_kinds("w2", &["sheets"], 10, LEASE)
        .await
        .unwrap();
    let ids: Vec<&JobId> = some_sheets.iter().map(|c| &c.job.id).collect();
    assert_eq!(
        ids,
        sheets[..10].iter().collect::<Vec<_>>(),
        "max, oldest first"
    );

    // Every lease taken so far expires: a claim of another kind takes none of them.
    clock.advance(LEASE + Duration::from_secs(1));
    let metrics = store
        .claim_kinds("w3", &["metrics"], 100, LEASE)
        .await
        .unwrap();
    assert_eq!(
        metrics.len(),
        1,
        "the one metrics job, no expired lease of another kind"
    );
    assert_eq!(metrics[0].job.id, others[2]);
    let held = store.job(&sheets[0]).await.unwrap().unwrap();
    assert_eq!(
        (held.state, held.leased_by.as_deref()),
        (JobState::Leased, Some("w2")),
        "an expired lease of another kind is left to a claim of its kind"
    );
    // The expired sns lease goes to a claim of its kind, and the old holder is fenced off.
    let sns = store.claim_kinds("w3", &["sns"], 10, LEASE).await.unwrap();
    assert_eq!(sns.len(), 1);
    assert_eq!((&sns[0].job.id, sns[0].job.attempt), (&others[1], 2));
    assert_lease_lost(
        store.complete(&first[1].job.id, &first[1].lease).await,
        "complete with a lease a claim by kind took over",
    );
    for c in sns.iter().chain(&metrics) {
        store.complete(&c.job.id, &c.lease).await.unwrap();
    }

    // An expired lease with no attempts left is dead-lettered by a claim of its kind only.
    let once = recorded(
        store
            .record_event("evt_k3", vec![job("once").with_max_attempts(1)])
            .await
            .unwrap(),
    )
    .remove(0);
    assert_eq!(
        store
            .claim_kinds("w1", &["once"], 10, LEASE)
            .await
            .unwrap()
            .len(),
        1
    );
    clock.advance(LEASE + Duration::from_secs(1));
    assert!(
        store
            .claim_kinds("w1", &["no-such-kind"], 10, LEASE)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store.job(&once).await.unwrap().unwrap().state,
        JobState::Leased,
        "a claim of another kind must not dead-letter it"
    );
    assert!(
        store
            .claim_kinds("w1", &["once"], 10, LEASE)
            .await
            .unwrap()
            .is_empty()
    );
    let dead = store
        .dead_letter(&once)
        .await
        .unwrap()
        .expect("dead-lettered");
    assert_eq!(dead.error.code.as_deref(), Some("lease_expired"));
    store.replay(&once).await.unwrap();
    let c = store
        .claim_kinds("w1", &["once"], 10, LEASE)
        .await
        .unwrap()
        .remove(0);
    store.complete(&once, &c.lease).await.unwrap();

    // The backlog drains by kind, each job once (the expired leases taken again).
    let mut seen = Vec::new();
    loop {
        let batch = store
            .claim_kinds("w4", &["sheets"], 7, LEASE)
            .await
            .unwrap();
        if batch.is_empty() {
            break;
        }
        for c in batch {
            store.complete(&c.job.id, &c.lease).await.unwrap();
            seen.push(c.job.id);
        }
    }
    seen.sort();
    let mut want = sheets.clone();
    want.sort();
    assert_eq!(seen, want, "every backlog job claimed by kind exactly once");
    let counts = store.counts().await.unwrap();
    assert_eq!(
        (counts.pending, counts.leased),
        (0, 0),
        "everything settled: {counts:?}"
    );
}
