//! SQLite outbox durability: reopen, several connections on one file, and `kill -9`.
#![cfg(feature = "sqlite")]

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use integrations_core::clock::FixedClock;
use integrations_core::{Error, ErrorKind};
use integrations_outbox::{JobId, JobState, NewJob, OutboxStore, RecordOutcome, SqliteOutbox};
use serde_json::json;

const LEASE: Duration = Duration::from_secs(30);

fn fan_out(order: &str) -> Vec<NewJob> {
    vec![
        NewJob::new("email.confirmation", json!({ "order": order })),
        NewJob::new("sheets.row", json!({ "order": order })),
    ]
}

#[tokio::test]
async fn state_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("outbox.db");
    let clock = FixedClock::from_unix(1_700_000_000);
    let store = SqliteOutbox::open(&path)
        .await
        .unwrap()
        .with_clock(clock.clone());
    store.record_event("evt_1", fan_out("1")).await.unwrap();
    let RecordOutcome::Recorded { job_ids } =
        store.record_event("evt_2", fan_out("2")).await.unwrap()
    else {
        panic!("new event")
    };
    let claimed = store.claim("w1", 2, LEASE).await.unwrap();
    let dead = &claimed[1];
    let err = Error::invalid_input("to", "bad address").with_provider("sendgrid");
    store
        .fail(&dead.job.id, &dead.lease, (&err).into(), None)
        .await
        .unwrap();
    let leased_id = claimed[0].job.id.clone();
    drop(store);

    let store = SqliteOutbox::open(&path)
        .await
        .unwrap()
        .with_clock(clock.clone());
    let counts = store.counts().await.unwrap();
    assert_eq!(
        (counts.events, counts.pending, counts.leased, counts.dead),
        (2, 2, 1, 1)
    );
    assert_eq!(
        store.record_event("evt_1", fan_out("1")).await.unwrap(),
        RecordOutcome::Duplicate
    );
    let letter = store
        .dead_letter(&dead.job.id)
        .await
        .unwrap()
        .expect("dead letter kept");
    assert_eq!(letter.error.kind, ErrorKind::InvalidInput);
    assert_eq!(letter.error.provider.as_deref(), Some("sendgrid"));
    assert_eq!(letter.job.payload, dead.job.payload);
    let rec = store.job(&job_ids[1]).await.unwrap().unwrap();
    assert_eq!(rec.job.idempotency_key.as_str(), "evt_2/sheets.row");

    // The lease taken before the "restart" still holds until it expires, then the job comes back.
    clock.advance(Duration::from_secs(20));
    let claimed = store.claim("w2", 10, LEASE).await.unwrap();
    assert_eq!(claimed.len(), 2);
    assert!(claimed.iter().all(|c| c.job.id != leased_id));
    clock.advance(Duration::from_secs(10));
    let again = store.claim("w2", 10, LEASE).await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(
        (again[0].job.id.clone(), again[0].job.attempt),
        (leased_id, 2)
    );
    assert_eq!(
        store.job(&again[0].job.id).await.unwrap().unwrap().state,
        JobState::Leased
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn connections_on_one_file_never_claim_the_same_job() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("outbox.db");
    let a = SqliteOutbox::open(&path).await.unwrap();
    let b = SqliteOutbox::open(&path).await.unwrap();
    for i in 0..150 {
        a.record_event(&format!("evt_{i}"), fan_out(&i.to_string()))
            .await
            .unwrap();
    }
    let drain = |store: SqliteOutbox, worker: &'static str| async move {
        let mut ids = Vec::new();
        loop {
            let batch = store.claim(worker, 7, LEASE).await.unwrap();
            if batch.is_empty() {
                return ids;
            }
            for c in batch {
                store.complete(&c.job.id, &c.lease).await.unwrap();
                ids.push(c.job.id);
            }
        }
    };
    let (x, y) = tokio::join!(
        tokio::spawn(drain(a.clone(), "a")),
        tokio::spawn(drain(b.clone(), "b"))
    );
    let (x, y) = (x.unwrap(), y.unwrap());
    let all: HashSet<&JobId> = x.iter().chain(&y).collect();
    assert_eq!(x.len() + y.len(), 300, "every job claimed exactly once");
    assert_eq!(all.len(), 300, "no job claimed by both connections");
    assert_eq!(a.counts().await.unwrap().done, 300);
}

const CHILD_ENV: &str = "INTEGRATIONS_OUTBOX_KILL_CHILD";

/// The child: records events as fast as it can, printing each id once its commit returned.
fn child_writer(path: &str) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async {
        let store = SqliteOutbox::open(path).await.unwrap();
        let mut out = std::io::stdout().lock();
        // Bounded, so an orphaned child ends by itself.
        for i in 0..20_000 {
            let id = format!("evt_{i}");
            store
                .record_event(&id, fan_out(&i.to_string()))
                .await
                .unwrap();
            writeln!(out, "acked {id}").unwrap();
            out.flush().unwrap();
        }
    });
}

#[test]
fn acknowledged_events_survive_kill_9() {
    if let Ok(path) = std::env::var(CHILD_ENV) {
        child_writer(&path);
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("outbox.db");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "acknowledged_events_survive_kill_9",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, &path)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut acked = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        if let Some(id) = line.unwrap().strip_prefix("acked ") {
            acked.push(id.to_owned());
        }
        if acked.len() >= 200 || Instant::now() > deadline {
            break;
        }
    }
    child.kill().unwrap(); // SIGKILL: no destructors, no flush, mid-transaction
    child.wait().unwrap();
    assert!(
        acked.len() >= 200,
        "the child acknowledged only {} events",
        acked.len()
    );

    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async {
        let store = SqliteOutbox::open(&path).await.unwrap();
        let counts = store.counts().await.unwrap();
        assert!(
            counts.events >= acked.len() as u64,
            "{counts:?} < {} acked",
            acked.len()
        );
        assert_eq!(
            counts.pending,
            counts.events * 2,
            "an event and its jobs commit together: {counts:?}"
        );
        for id in &acked {
            let again = store.record_event(id, fan_out("x")).await.unwrap();
            assert_eq!(
                again,
                RecordOutcome::Duplicate,
                "acknowledged {id} was lost"
            );
        }
    });
}

/// `record_event_in` writes on the caller's own connection and transaction: the caller's row
/// and the jobs commit together, or neither exists after a rollback; a duplicate writes nothing.
#[tokio::test]
async fn jobs_commit_and_roll_back_with_the_callers_sqlite_transaction() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("service.db");
    let store = SqliteOutbox::open(&path).await.unwrap();
    let mut conn = rusqlite::Connection::open(&path).unwrap();
    conn.busy_timeout(Duration::from_secs(5)).unwrap();
    conn.execute_batch("CREATE TABLE orders (id TEXT PRIMARY KEY, status TEXT NOT NULL)")
        .unwrap();

    let tx = conn.transaction().unwrap();
    tx.execute("INSERT INTO orders VALUES ('42', 'paid')", [])
        .unwrap();
    let outcome = store
        .record_event_in(&tx, "order-42/paid", fan_out("42"))
        .unwrap();
    assert!(matches!(outcome, RecordOutcome::Recorded { ref job_ids } if job_ids.len() == 2));
    tx.rollback().unwrap();
    let c = store.counts().await.unwrap();
    assert_eq!((c.events, c.pending), (0, 0), "rolled back: {c:?}");
    let orders: i64 = conn
        .query_row("SELECT count(*) FROM orders", [], |r| r.get(0))
        .unwrap();
    assert_eq!(orders, 0);

    let tx = conn.transaction().unwrap();
    tx.execute("INSERT INTO orders VALUES ('42', 'paid')", [])
        .unwrap();
    store
        .record_event_in(&tx, "order-42/paid", fan_out("42"))
        .unwrap();
    tx.commit().unwrap();
    let c = store.counts().await.unwrap();
    assert_eq!((c.events, c.pending), (1, 2), "committed: {c:?}");
    let claimed = store.claim("w1", 10, LEASE).await.unwrap();
    assert_eq!(claimed.len(), 2);

    let tx = conn.transaction().unwrap();
    let again = store
        .record_event_in(&tx, "order-42/paid", fan_out("42"))
        .unwrap();
    tx.commit().unwrap();
    assert!(again.is_duplicate());
    // Invalid input is refused before anything is written.
    let tx = conn.transaction().unwrap();
    let e = store.record_event_in(&tx, "", fan_out("42")).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
}
