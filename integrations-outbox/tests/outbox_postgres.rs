//! The Postgres stores against a real server (`.ci/postgres.sh start`; each test makes its own
//! database). Outside CI a missing server skips these loudly; under `CI=true` it fails them.
#![cfg(all(feature = "postgres", feature = "testing"))]

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use integrations_core::ErrorKind;
use integrations_core::clock::FixedClock;
use integrations_core::webhook::{DedupOutcome, DedupStore};
use integrations_outbox::behaviour::outbox_store_suite;
use integrations_outbox::postgres::testing::TestDatabase;
use integrations_outbox::postgres::{SCHEMA_VERSION, migrate, sqlx};
use integrations_outbox::{
    Dispatcher, NewJob, OutboxStore, PostgresDedupStore, PostgresOptions, PostgresOutbox,
    RecordOutcome, handler_fn, shutdown_channel,
};
use serde_json::json;

macro_rules! database {
    ($name:expr) => {
        match TestDatabase::create($name).await {
            Some(db) => db,
            None => return,
        }
    };
}

fn clock() -> FixedClock {
    FixedClock::from_unix(1_700_000_000)
}

#[tokio::test]
async fn postgres_outbox_passes_the_suite() {
    let db = database!("suite");
    let clock = clock();
    let store = PostgresOutbox::connect_with(db.options())
        .await
        .unwrap()
        .with_clock(clock.clone());
    outbox_store_suite(&store, &clock).await;
    store.pool().close().await;
    db.drop_database().await.unwrap();
}

#[tokio::test]
async fn postgres_outbox_passes_the_suite_with_asynchronous_marks() {
    let db = database!("suite_async");
    let clock = clock();
    let store = PostgresOutbox::connect_with(db.options())
        .await
        .unwrap()
        .with_asynchronous_marks(true)
        .with_clock(clock.clone());
    outbox_store_suite(&store, &clock).await;
    // Local to each mark's transaction: the pool's sessions keep the server's default.
    let setting: String = sqlx::query_scalar("SHOW synchronous_commit")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(setting, "on");
    store.pool().close().await;
    db.drop_database().await.unwrap();
}

/// Records 3,000 `sheets` jobs: worked through ten at a time with a pause, they keep the
/// claims full for over 6 s.
async fn record_backlog(store: &PostgresOutbox) {
    let jobs = (0..3000)
        .map(|i| NewJob::new("sheets", json!({ "n": i })).with_key_suffix(i.to_string()))
        .collect();
    store.record_event("evt_backlog", jobs).await.unwrap();
}

/// Claims ten at a time (of `kinds`, or of any kind), completing each, with a short pause
/// between, until a claim takes the job whose payload's `n` is `wanted`; every claim before
/// it must come back full. `between` runs after each claim that did not take it, with the
/// number of claims so far. Returns that number.
async fn claim_until_taken(
    store: &PostgresOutbox,
    kinds: Option<&[&str]>,
    wanted: &str,
    mut between: impl AsyncFnMut(usize),
) -> usize {
    let mut claims = 0;
    loop {
        let lease = Duration::from_secs(600);
        let batch = match kinds {
            Some(kinds) => store.claim_kinds("w", kinds, 10, lease).await,
            None => store.claim("w", 10, lease).await,
        }
        .unwrap();
        claims += 1;
        let found = batch.iter().any(|c| c.job.payload["n"] == wanted);
        assert!(
            found || batch.len() == 10,
            "a claim came back short ({}) without the job {wanted}",
            batch.len()
        );
        for c in batch {
            store.complete(&c.job.id, &c.lease).await.unwrap();
        }
        if found {
            return claims;
        }
        between(claims).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// While a backlog keeps every claim full, claims skip the expired leases (whose index scan
/// steps over the entry of every lease completed since the last vacuum) for at most a second:
/// an expired lease older than the backlog is still taken within that second, and no claim
/// comes back short without it.
#[tokio::test]
async fn an_expired_lease_is_taken_within_a_second_while_a_backlog_keeps_claims_full() {
    let db = database!("shortcut_leases");
    let clock = clock();
    let store = PostgresOutbox::connect_with(db.options())
        .await
        .unwrap()
        .with_clock(clock.clone());
    store
        .record_event(
            "evt_lost",
            vec![NewJob::new("sheets", json!({ "n": "lost" }))],
        )
        .await
        .unwrap();
    // A worker takes the job and dies (its claim was full and read the leases just now).
    let started = std::time::Instant::now();
    let lost = store
        .claim("dead-worker", 1, Duration::from_secs(30))
        .await
        .unwrap()
        .remove(0);
    assert_eq!(lost.job.payload["n"], "lost");
    clock.advance(Duration::from_secs(31));
    // A backlog recorded after the lease expired: the expired lease is the oldest claimable.
    record_backlog(&store).await;
    let claims = claim_until_taken(&store, None, "lost", async |_| {}).await;
    let waited = started.elapsed();
    assert!(
        waited < Duration::from_secs(3),
        "taken after {waited:?} and {claims} claims"
    );
    store.pool().close().await;
    db.drop_database().await.unwrap();
}

/// A job committed late by the caller's transaction, with a due time older than the jobs
/// claimed meanwhile, is behind the point full claims read from: it is still taken within a
/// second, and no claim comes back short without it.
#[tokio::test]
async fn a_job_committed_late_is_taken_within_a_second_while_a_backlog_keeps_claims_full() {
    let db = database!("shortcut_floor");
    let clock = clock();
    let store = PostgresOutbox::connect_with(db.options())
        .await
        .unwrap()
        .with_clock(clock.clone());
    // The caller's transaction records its job now, and commits after the claims have moved on.
    let mut tx = store.pool().begin().await.unwrap();
    store
        .record_event_in(
            &mut tx,
            "evt_late",
            vec![NewJob::new("sheets", json!({ "n": "late" }))],
        )
        .await
        .unwrap();
    clock.advance(Duration::from_secs(1));
    record_backlog(&store).await;
    let mut tx = Some(tx);
    let mut committed_at = None;
    let claims = claim_until_taken(&store, Some(&["sheets"]), "late", async |claims| {
        if claims == 5 {
            tx.take().unwrap().commit().await.unwrap();
            committed_at = Some(std::time::Instant::now());
        }
    })
    .await;
    assert!(claims > 5, "taken before its transaction committed");
    let waited = committed_at.unwrap().elapsed();
    assert!(
        waited < Duration::from_secs(3),
        "taken {waited:?} after its commit, after {claims} claims"
    );
    store.pool().close().await;
    db.drop_database().await.unwrap();
}

#[tokio::test]
async fn jobs_commit_and_roll_back_with_the_callers_transaction() {
    let db = database!("in_tx");
    let outbox = PostgresOutbox::connect_with(db.options()).await.unwrap();
    let pool = outbox.pool().clone();
    sqlx::raw_sql("CREATE TABLE orders (id text PRIMARY KEY, total_minor bigint NOT NULL)")
        .execute(&pool)
        .await
        .unwrap();
    let jobs = || {
        vec![
            NewJob::new("email.confirmation", json!({ "order_id": "42" })),
            NewJob::new(
                "sheets.row",
                json!({ "order_id": "42", "amount_minor": 5998 }),
            ),
        ]
    };

    // Rolled back: neither the order nor its jobs exist.
    let mut tx = pool.begin().await.unwrap();
    sqlx::query("INSERT INTO orders (id, total_minor) VALUES ('42', 5998)")
        .execute(&mut *tx)
        .await
        .unwrap();
    let outcome = outbox
        .record_event_in(&mut tx, "order-42/paid", jobs())
        .await
        .unwrap();
    assert!(matches!(outcome, RecordOutcome::Recorded { ref job_ids } if job_ids.len() == 2));
    tx.rollback().await.unwrap();
    let c = outbox.counts().await.unwrap();
    assert_eq!((c.events, c.pending), (0, 0), "rolled back: {c:?}");
    let orders: i64 = sqlx::query_scalar("SELECT count(*) FROM orders")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(orders, 0);
    assert!(
        outbox
            .claim("w", 10, Duration::from_secs(30))
            .await
            .unwrap()
            .is_empty()
    );

    // Committed: both, and the jobs are claimable.
    let mut tx = pool.begin().await.unwrap();
    sqlx::query("INSERT INTO orders (id, total_minor) VALUES ('42', 5998)")
        .execute(&mut *tx)
        .await
        .unwrap();
    let RecordOutcome::Recorded { job_ids } = outbox
        .record_event_in(&mut tx, "order-42/paid", jobs())
        .await
        .unwrap()
    else {
        panic!("first recording is not a duplicate");
    };
    // Not visible to others before the commit.
    assert_eq!(outbox.counts().await.unwrap().pending, 0);
    tx.commit().await.unwrap();
    let c = outbox.counts().await.unwrap();
    assert_eq!((c.events, c.pending), (1, 2), "committed: {c:?}");
    let claimed = outbox
        .claim("w", 10, Duration::from_secs(30))
        .await
        .unwrap();
    let ids: HashSet<_> = claimed.iter().map(|c| c.job.id.clone()).collect();
    assert_eq!(ids, job_ids.into_iter().collect());

    // A duplicate inside a transaction writes nothing and leaves the transaction usable.
    let mut tx = pool.begin().await.unwrap();
    let again = outbox
        .record_event_in(&mut tx, "order-42/paid", jobs())
        .await
        .unwrap();
    assert!(again.is_duplicate());
    // Bad input is refused before anything is sent: the transaction is still usable.
    let err = outbox
        .record_event_in(&mut tx, "", jobs())
        .await
        .unwrap_err();
    assert_eq!(err.field(), Some("event_id"));
    sqlx::query("INSERT INTO orders (id, total_minor) VALUES ('43', 100)")
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(outbox.counts().await.unwrap().events, 1);

    pool.close().await;
    db.drop_database().await.unwrap();
}

#[tokio::test]
async fn a_payload_postgres_cannot_store_is_named() {
    let db = database!("bad_payload");
    let outbox = PostgresOutbox::connect_with(db.options()).await.unwrap();
    let err = outbox
        .record_event(
            "evt_nul",
            vec![NewJob::new("email", json!({ "to": "a\u{0}b" }))],
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    assert_eq!(err.field(), Some("payload"), "{err}");
    assert_eq!(outbox.counts().await.unwrap().events, 0);
    outbox.pool().close().await;
    db.drop_database().await.unwrap();
}

#[tokio::test]
async fn debug_never_prints_the_password() {
    let db = database!("debug");
    let url = integrations_outbox::postgres::testing::test_url().unwrap();
    let password = url
        .split_once("://")
        .and_then(|(_, rest)| rest.split_once('@'))
        .and_then(|(creds, _)| creds.split_once(':'))
        .map(|(_, p)| p.to_owned())
        .expect("the test URL carries a password");
    assert!(password.len() >= 8, "the check needs a real password");
    let outbox = PostgresOutbox::connect_with(db.options()).await.unwrap();
    let dedup = PostgresDedupStore::from_pool(outbox.pool().clone())
        .await
        .unwrap();
    let log = integrations_outbox::saga::PostgresSagaLog::from_pool(outbox.pool().clone())
        .await
        .unwrap();
    let options = PostgresOptions::new(&url).unwrap();
    for shown in [
        format!("{outbox:?}"),
        format!("{dedup:?}"),
        format!("{log:?}"),
        format!("{options:?}"),
        format!("{:?}", db.options()),
        format!("{db:?}"),
    ] {
        assert!(!shown.contains(&password), "password in {shown}");
        assert!(
            shown.contains("127.0.0.1") || shown.contains('@'),
            "{shown}"
        );
    }
    // A connection failure names the target, not the password.
    let refused = PostgresOptions::new(&url.replace(&password, "wrong-password"))
        .unwrap()
        .acquire_timeout(Duration::from_secs(5))
        .connect()
        .await
        .unwrap_err();
    assert!(!refused.to_string().contains(&password), "{refused}");
    outbox.pool().close().await;
    db.drop_database().await.unwrap();
}

#[tokio::test]
async fn a_newer_schema_is_refused_and_migration_runs_once() {
    let db = database!("schema");
    let pool = db.options().connect().await.unwrap();
    // Several processes starting together: one migrates, the others wait and find it done.
    let runs: Vec<_> = (0..4)
        .map(|_| {
            let pool = pool.clone();
            tokio::spawn(async move { migrate(&pool).await })
        })
        .collect();
    for r in runs {
        r.await.unwrap().unwrap();
    }
    let version: i64 =
        sqlx::query_scalar("SELECT version FROM integrations_schema WHERE component = 'postgres'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(version, SCHEMA_VERSION);
    sqlx::query("UPDATE integrations_schema SET version = $1 WHERE component = 'postgres'")
        .bind(SCHEMA_VERSION + 1)
        .execute(&pool)
        .await
        .unwrap();
    let err = PostgresOutbox::from_pool(pool.clone()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Configuration, "{err}");
    assert!(err.to_string().contains("newer"), "{err}");
    pool.close().await;
    db.drop_database().await.unwrap();
}

#[tokio::test]
async fn dedup_inserts_once_until_expiry_and_releases() {
    let db = database!("dedup");
    let clock = clock();
    let outbox = PostgresOutbox::connect_with(db.options()).await.unwrap();
    let store = PostgresDedupStore::from_pool(outbox.pool().clone())
        .await
        .unwrap()
        .with_clock(clock.clone());
    let ttl = Duration::from_secs(3600);
    assert_eq!(
        store.insert_if_absent("evt_1", ttl).await.unwrap(),
        DedupOutcome::New
    );
    assert_eq!(
        store.insert_if_absent("evt_1", ttl).await.unwrap(),
        DedupOutcome::Duplicate
    );
    clock.advance(ttl - Duration::from_millis(1));
    assert_eq!(
        store.insert_if_absent("evt_1", ttl).await.unwrap(),
        DedupOutcome::Duplicate,
        "still live 1 ms before expiry"
    );
    clock.advance(Duration::from_millis(1));
    assert_eq!(
        store.insert_if_absent("evt_1", ttl).await.unwrap(),
        DedupOutcome::New,
        "expired records are taken over"
    );
    store.release("evt_1").await.unwrap();
    store.release("never-seen").await.unwrap();
    assert_eq!(
        store.insert_if_absent("evt_1", ttl).await.unwrap(),
        DedupOutcome::New
    );
    let err = store.insert_if_absent("", ttl).await.unwrap_err();
    assert_eq!(err.field(), Some("key"));

    // Expired keys are purged, live ones kept.
    store
        .insert_if_absent("short", Duration::from_secs(1))
        .await
        .unwrap();
    clock.advance(Duration::from_secs(2));
    assert_eq!(store.purge_expired(100).await.unwrap(), 1);
    assert_eq!(
        store.insert_if_absent("evt_1", ttl).await.unwrap(),
        DedupOutcome::Duplicate
    );

    // Concurrent inserts of one key from several pools: exactly one winner.
    let stores: Vec<Arc<PostgresDedupStore>> = {
        let mut v = Vec::new();
        for _ in 0..4 {
            v.push(Arc::new(
                PostgresDedupStore::connect_with(db.options())
                    .await
                    .unwrap(),
            ));
        }
        v
    };
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let s = Arc::clone(&stores[i % stores.len()]);
            tokio::spawn(async move { s.insert_if_absent("evt_race", ttl).await.unwrap() })
        })
        .collect();
    let mut new = 0;
    for t in tasks {
        new += usize::from(t.await.unwrap().is_new());
    }
    assert_eq!(new, 1, "exactly one concurrent insert may win");
    db.drop_database().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_claimers_never_share_a_job() {
    let db = database!("claimers");
    let seed = PostgresOutbox::connect_with(db.options()).await.unwrap();
    // Two kinds, interleaved; half the workers claim any kind, the others one kind each.
    let kinds = ["a", "b"];
    for i in 0..200 {
        seed.record_event(
            &format!("evt_{i}"),
            vec![NewJob::new(kinds[i % 2], json!({ "i": i }))],
        )
        .await
        .unwrap();
    }
    let mut tasks = Vec::new();
    for w in 0..8 {
        let store = PostgresOutbox::connect_with(&db.options().clone().max_connections(2))
            .await
            .unwrap();
        let only = (w % 2 == 1).then(|| kinds[w / 2 % 2]);
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let worker = format!("w{w}");
                let lease = Duration::from_secs(60);
                let got = match only {
                    Some(kind) => store.claim_kinds(&worker, &[kind], 7, lease).await,
                    None => store.claim(&worker, 7, lease).await,
                }
                .unwrap();
                if got.is_empty() {
                    return mine;
                }
                for c in got {
                    if let Some(kind) = only {
                        assert_eq!(c.job.kind, kind, "a claim by kind took another kind");
                    }
                    store.complete(&c.job.id, &c.lease).await.unwrap();
                    mine.push(c.job.id);
                }
            }
        }));
    }
    let mut seen = HashSet::new();
    for t in tasks {
        for id in t.await.unwrap() {
            assert!(seen.insert(id.clone()), "job {id} claimed twice");
        }
    }
    assert_eq!(seen.len(), 200);
    assert_eq!(seed.counts().await.unwrap().done, 200);
    seed.pool().close().await;
    db.drop_database().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notify_and_announce_wake_an_idle_dispatcher_long_before_its_poll() {
    let db = database!("notify");
    let outbox = Arc::new(PostgresOutbox::connect_with(db.options()).await.unwrap());
    let delivered = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&delivered);
    let dispatcher = Dispatcher::builder(outbox.clone())
        .handler(
            "notify",
            handler_fn(move |_job| {
                let seen = Arc::clone(&seen);
                async move {
                    seen.fetch_add(1, Ordering::SeqCst);
                    Ok(())
                }
            }),
        )
        .poll_interval(Duration::from_secs(3600))
        .build()
        .unwrap();
    let wake = outbox.wake_on_notify(dispatcher.waker());
    let (stop, signal) = shutdown_channel();
    let run = tokio::spawn(async move { dispatcher.run(signal).await });
    // Wait until the listener listens (so its wake-up after connecting is spent), then record
    // from another pool: from then on only the NOTIFY can wake the dispatcher within the hour.
    let other = PostgresOutbox::connect_with(db.options()).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let listening: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()
                AND query LIKE 'LISTEN %integrations_outbox%'",
        )
        .fetch_one(other.pool())
        .await
        .unwrap();
        if listening > 0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the listener never listened"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut tx = other.pool().begin().await.unwrap();
    other
        .record_event_in(
            &mut tx,
            "evt_rolled_back",
            vec![NewJob::new("notify", json!({}))],
        )
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    other
        .record_event("evt_1", vec![NewJob::new("notify", json!({}))])
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while delivered.load(Ordering::SeqCst) < 1 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "not woken by NOTIFY within 10 s (poll is 1 h)"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(format!("{wake:?}").contains("running: true"));

    // Recorded without the NOTIFY inside the transaction: committed, the job waits (the poll
    // is an hour away) until `announce` is called after the commit.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut tx = other.pool().begin().await.unwrap();
    let outcome = other
        .record_event_in_unannounced(&mut tx, "evt_2", vec![NewJob::new("notify", json!({}))])
        .await
        .unwrap();
    assert!(!outcome.is_duplicate());
    tx.commit().await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        delivered.load(Ordering::SeqCst),
        1,
        "a job recorded unannounced woke the dispatcher: a NOTIFY was sent in its transaction"
    );
    other.announce();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while delivered.load(Ordering::SeqCst) < 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "not woken by `announce` within 10 s (poll is 1 h)"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.trigger();
    let stats = run.await.unwrap();
    assert_eq!(stats.succeeded, 2, "{stats:?}");
    drop(wake);
    outbox.pool().close().await;
    other.pool().close().await;
    db.drop_database().await.unwrap();
}
