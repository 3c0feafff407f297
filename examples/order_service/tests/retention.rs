//! The scheduled purge: done jobs and recorded events older than the retention go, pending jobs
//! and dead letters stay; a server purges at start and then on its interval.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use integrations_order_service::auth::ApiKeys;
use integrations_order_service::retention::purge_once;
use integrations_order_service::server::{Server, ServerConfig};
use integrations_outbox::{NewJob, OutboxStore, RecordOutcome, SqliteOutbox};
use serde_json::json;

const HOUR: Duration = Duration::from_secs(3600);

/// Records `event` with two jobs, claims both and completes the first.
async fn one_done_one_pending(outbox: &dyn OutboxStore, event: &str) {
    let RecordOutcome::Recorded { job_ids } = outbox
        .record_event(
            event,
            vec![NewJob::new("a", json!({})), NewJob::new("b", json!({}))],
        )
        .await
        .unwrap()
    else {
        panic!("duplicate");
    };
    let claimed = outbox.claim("w", 10, HOUR).await.unwrap();
    let first = claimed.iter().find(|c| c.job.id == job_ids[0]).unwrap();
    outbox.complete(&first.job.id, &first.lease).await.unwrap();
    // The second stays leased for an hour: unfinished work.
}

#[tokio::test]
async fn done_jobs_past_the_retention_are_purged_and_pending_ones_stay() {
    let dir = tempfile::tempdir().unwrap();
    let outbox = SqliteOutbox::open(dir.path().join("o.db")).await.unwrap();
    let outbox: &dyn OutboxStore = &outbox;
    let RecordOutcome::Recorded { job_ids } = outbox
        .record_event("evt_1", vec![NewJob::new("a", json!({}))])
        .await
        .unwrap()
    else {
        panic!("duplicate");
    };
    let c = outbox.claim("w", 10, HOUR).await.unwrap().remove(0);
    outbox.complete(&c.job.id, &c.lease).await.unwrap();
    outbox
        .record_event("evt_2", vec![NewJob::new("b", json!({}))])
        .await
        .unwrap();
    let before = outbox.counts().await.unwrap();
    assert_eq!(
        (before.done, before.pending, before.events),
        (1, 1, 2),
        "{before:?}"
    );

    // Within the retention: nothing goes.
    let now = SystemTime::now();
    let p = purge_once(outbox, 7 * 24 * HOUR, now).await.unwrap();
    assert_eq!((p.jobs, p.events), (0, 0));

    // Eight days later: the done job and its event go; the pending job and its event stay.
    let later = now + 8 * 24 * HOUR;
    let p = purge_once(outbox, 7 * 24 * HOUR, later).await.unwrap();
    assert_eq!((p.jobs, p.events), (1, 1));
    let after = outbox.counts().await.unwrap();
    assert_eq!(
        (after.done, after.pending, after.events),
        (0, 1, 1),
        "{after:?}"
    );
    assert!(outbox.job(&job_ids[0]).await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_purges_on_its_schedule() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join(integrations_order_service::server::DB_FILE);
    {
        let outbox = SqliteOutbox::open(&db).await.unwrap();
        one_done_one_pending(&outbox, "evt_old").await;
    }
    let (keys, _key) = ApiKeys::generate();
    let mut config = ServerConfig::local(keys);
    config.data_dir = Some(dir.path().to_path_buf());
    // A retention of zero: every done job is past it.
    config.retention = Duration::ZERO;
    config.purge_interval = Duration::from_millis(50);
    // No dispatcher activity on the test's jobs (unknown kinds would be dead-lettered).
    config.poll_interval = Duration::from_secs(3600);
    let server = Server::start(config).await.unwrap();
    let outbox: Arc<dyn OutboxStore> = Arc::clone(server.state().outbox());
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let c = outbox.counts().await.unwrap();
        if c.done == 0 {
            assert_eq!(
                c.leased + c.pending + c.dead,
                1,
                "the unfinished job stays: {c:?}"
            );
            break;
        }
        assert!(std::time::Instant::now() < deadline, "not purged: {c:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.shutdown().await.unwrap();
}

/// With `DATABASE_URL` everything the server keeps is in Postgres (outbox, orders, metrics
/// history; no SQLite file is made): it purges there on its schedule, and a job another instance
/// records wakes its dispatcher at once (NOTIFY), its poll being an hour.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_database_url_the_outbox_is_postgres_and_wakes_on_notify() {
    use integrations_outbox::PostgresOutbox;
    use integrations_outbox::postgres::testing::{TestDatabase, test_url};

    let Some(db) = TestDatabase::create("order_service").await else {
        return;
    };
    let other = PostgresOutbox::connect_with(db.options()).await.unwrap();
    one_done_one_pending(&other, "evt_old").await;
    let base = test_url().unwrap();
    let url = format!("{}/{}", base.rsplit_once('/').unwrap().0, db.name());
    let password = base
        .split_once("://")
        .and_then(|(_, rest)| rest.split_once('@'))
        .and_then(|(creds, _)| creds.split_once(':'))
        .map(|(_, p)| p.to_owned())
        .unwrap();
    let (keys, _key) = ApiKeys::generate();
    let mut config = ServerConfig::local(keys);
    config.lookup = Box::new(move |n| (n == "DATABASE_URL").then(|| url.clone()));
    config.retention = Duration::ZERO;
    config.purge_interval = Duration::from_millis(50);
    config.poll_interval = Duration::from_secs(3600);
    let data = tempfile::tempdir().unwrap();
    config.data_dir = Some(data.path().to_path_buf());
    let server = Server::start(config).await.unwrap();
    assert_eq!(server.state().orders().backend(), "postgres");
    // The state's Debug shows the order store's database, never the password.
    let state = format!("{:?}", server.state());
    assert!(state.contains("PgOrders"), "{state}");
    assert!(!state.contains(&password), "{state}");
    let history = format!("{:?}", server.state().metrics_history().unwrap());
    assert!(history.contains("postgres"), "{history}");
    assert!(
        !data
            .path()
            .join(integrations_order_service::server::DB_FILE)
            .exists(),
        "a SQLite file was made"
    );
    let outbox: Arc<dyn OutboxStore> = Arc::clone(server.state().outbox());
    let shown = format!("{outbox:?}");
    assert!(shown.contains("PostgresOutbox"), "{shown}");
    assert!(!shown.contains(&password), "{shown}");

    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while outbox.counts().await.unwrap().done > 0 {
        assert!(std::time::Instant::now() < deadline, "not purged");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // A job recorded by another instance, of a kind this service handles (for an order it does
    // not know, so the attempt fails and is put back to retry): claimed at once, not after the
    // hour's poll. (A kind no dispatcher here handles would stay pending, unclaimed.)
    let RecordOutcome::Recorded { job_ids } = other
        .record_event(
            "evt_other_instance",
            vec![NewJob::new(
                integrations_order_service::effects::NOTIFY_PAID,
                json!({ "order_id": "ord_elsewhere" }),
            )],
        )
        .await
        .unwrap()
    else {
        panic!("duplicate");
    };
    while outbox.job(&job_ids[0]).await.unwrap().unwrap().job.attempt == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the dispatcher was not woken: {:?}",
            outbox.counts().await
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.shutdown().await.unwrap();
    other.pool().close().await;
    db.drop_database().await.unwrap();
}
