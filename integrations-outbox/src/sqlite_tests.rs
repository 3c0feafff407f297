//! Unit tests of the SQLite store: migrations from older files and the query plans.

use super::*;

/// The plan SQLite chooses for `sql` on the current schema, one line per step.
fn plan(sql: &str) -> String {
    let conn = Connection::open_in_memory().unwrap();
    for m in MIGRATIONS {
        conn.execute_batch(m).unwrap();
    }
    let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
    let values: Vec<rusqlite::types::Value> =
        [0_i64.into(), 1_i64.into(), "email".to_owned().into()]
            .into_iter()
            .take(stmt.parameter_count())
            .collect();
    let rows = stmt
        .query_map(rusqlite::params_from_iter(values), |r| {
            r.get::<_, String>(3)
        })
        .unwrap();
    rows.map(Result::unwrap).collect::<Vec<_>>().join("\n")
}

/// A file written before the `traceparent` column existed opens, its jobs load and claim
/// (with no traceparent), and new jobs record one.
#[tokio::test]
async fn a_file_from_before_the_traceparent_column_keeps_working() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    {
        let db = Db::open(&path, &SqliteOptions::new(), "outbox", &MIGRATIONS[..2])
            .await
            .unwrap();
        db.call(Access::Write, |c| {
            c.execute_batch(
                "INSERT INTO outbox_events (event_id, recorded_at) VALUES ('evt_old', 0);
                 INSERT INTO outbox_jobs (event_id, kind, idempotency_key, payload, state,
                    attempts, max_attempts, available_at, created_at, updated_at)
                 VALUES ('evt_old', 'notify', 'evt_old/notify', '{}', 'pending', 0, 3, 0, 0, 0);",
            )
            .map_err(sql_error)
        })
        .await
        .unwrap();
    }
    let outbox = SqliteOutbox::open(&path).await.unwrap();
    let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    outbox
        .record_event(
            "evt_new",
            vec![NewJob::new("notify", serde_json::json!({})).with_traceparent(tp)],
        )
        .await
        .unwrap();
    let claimed = outbox
        .claim("w", 10, Duration::from_secs(30))
        .await
        .unwrap();
    let by_event: Vec<_> = claimed
        .iter()
        .map(|c| (c.job.event_id.as_str(), c.job.traceparent.as_deref()))
        .collect();
    assert_eq!(by_event, [("evt_old", None), ("evt_new", Some(tp))]);
}

#[test]
fn the_backlog_counts_on_the_partial_indexes() {
    let backlog = plan(BACKLOG);
    for index in [
        "outbox_jobs_pending",
        "outbox_jobs_leased",
        "outbox_jobs_dead",
    ] {
        assert!(backlog.contains(index), "{backlog}");
    }
    // Every step on the jobs reads one of those partial indexes: never the table, nor the done
    // jobs' index, nor the events.
    for step in backlog.lines().filter(|l| l.contains("outbox_")) {
        let on_unfinished = ["pending", "leased", "dead"]
            .iter()
            .any(|s| step.contains(&format!("INDEX outbox_jobs_{s}")));
        assert!(on_unfinished, "{step} in\n{backlog}");
    }
    // The full counts read the done jobs' partial index too, never the rows with their payloads.
    let plan = plan(COUNTS);
    assert!(plan.contains("INDEX outbox_jobs_done"), "{plan}");
    for step in plan.lines().filter(|l| l.contains("outbox_jobs")) {
        assert!(step.contains("INDEX outbox_jobs_"), "{step} in\n{plan}");
    }
}

#[test]
fn claims_read_due_jobs_in_index_order_without_sorting_the_backlog() {
    for (sql, index) in [
        (PENDING_DUE, "outbox_jobs_pending "),
        (PENDING_DUE_KIND, "outbox_jobs_pending_kind "),
        (LEASE_EXPIRED_KIND, "outbox_jobs_leased_kind "),
    ] {
        let plan = plan(sql);
        assert!(plan.contains(index), "{plan}");
        assert!(!plan.contains("TEMP B-TREE"), "sorts every due job: {plan}");
    }
    // Expired leases of any kind: read on the per-kind partial index, so only leased rows (the
    // jobs in flight, few) are read and sorted, never the table or the pending backlog.
    let plan = plan(LEASE_EXPIRED);
    assert!(plan.contains("outbox_jobs_leased_kind"), "{plan}");
    assert!(!plan.contains("SCAN outbox_jobs\n"), "{plan}");
    assert!(!plan.ends_with("SCAN outbox_jobs"), "{plan}");
}

/// A file from before the kind indexes (schema 3) is migrated on open: its jobs are claimed by
/// kind, each kind's own, and the other kinds are left pending.
#[tokio::test]
async fn a_file_from_before_the_kind_indexes_claims_by_kind() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v3.db");
    {
        let db = Db::open(&path, &SqliteOptions::new(), "outbox", &MIGRATIONS[..3])
            .await
            .unwrap();
        db.call(Access::Write, |c| {
            c.execute_batch(
                "INSERT INTO outbox_events (event_id, recorded_at) VALUES ('evt_old', 0);
                 INSERT INTO outbox_jobs (event_id, kind, idempotency_key, payload, state,
                    attempts, max_attempts, available_at, created_at, updated_at)
                 VALUES ('evt_old', 'sheets', 'evt_old/sheets', '{}', 'pending', 0, 3, 0, 0, 0),
                    ('evt_old', 'email', 'evt_old/email', '{}', 'pending', 0, 3, 0, 0, 0);",
            )
            .map_err(sql_error)
        })
        .await
        .unwrap();
    }
    let outbox = SqliteOutbox::open(&path).await.unwrap();
    let lease = Duration::from_secs(30);
    let claimed = outbox
        .claim_kinds("w", &["email"], 10, lease)
        .await
        .unwrap();
    let kinds: Vec<_> = claimed.iter().map(|c| c.job.kind.as_str()).collect();
    assert_eq!(kinds, ["email"]);
    assert_eq!(outbox.unfinished().await.unwrap(), (1, 1));
    let version: i64 = outbox
        .db
        .call(Access::Read, |c| {
            c.query_row(
                "SELECT version FROM integrations_schema WHERE component = 'outbox'",
                [],
                |r| r.get(0),
            )
            .map_err(sql_error)
        })
        .await
        .unwrap();
    assert_eq!(version, MIGRATIONS.len() as i64);
}
