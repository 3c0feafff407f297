//! Claims per second with 1, 4 and 16 dispatchers sharing one outbox, each with its own handle
//! (its own SQLite connection, its own Postgres pool), as separate processes would: a backlog
//! of jobs recorded first, then every dispatcher claims (up to 4 at a time) and completes them
//! (in one `complete_many`, as the dispatcher completes deliveries that finish together) until
//! none is left. Counts jobs claimed and completed per second; no provider call in between.
//! `ORDER_FLOW_CLAIMS_ONE_BY_ONE=1` completes each job on its own (the count before batching).

use std::sync::Arc;
use std::time::{Duration, Instant};

use integrations_outbox::postgres::testing::TestDatabase;
use integrations_outbox::{NewJob, OutboxStore, PostgresOutbox, SqliteOutbox};

/// The store measured.
#[derive(Debug, Clone, Copy)]
pub(crate) enum ClaimStore {
    Sqlite,
    Postgres,
    /// Postgres with asynchronous marks.
    PostgresAsync,
}

/// Jobs delivered per second by `dispatchers` claimers over a backlog of `jobs`.
pub(crate) async fn claims_per_second(store: ClaimStore, dispatchers: usize, jobs: usize) -> f64 {
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("claims.db");
    let db = match store {
        ClaimStore::Postgres | ClaimStore::PostgresAsync => {
            Some(TestDatabase::create("bench_claims").await.expect("server"))
        }
        ClaimStore::Sqlite => None,
    };
    let open = || async {
        let s: Arc<dyn OutboxStore> = match &db {
            Some(db) => Arc::new(
                PostgresOutbox::connect_with(&db.options().clone().max_connections(2))
                    .await
                    .expect("postgres")
                    .with_asynchronous_marks(matches!(store, ClaimStore::PostgresAsync)),
            ),
            None => Arc::new(SqliteOutbox::open(&path).await.expect("sqlite")),
        };
        s
    };
    let seed = open().await;
    for i in 0..jobs {
        let job = NewJob::new("work", serde_json::json!({ "i": i }));
        seed.record_event(&format!("evt_{i}"), vec![job])
            .await
            .expect("record");
    }
    let mut handles = Vec::new();
    for _ in 0..dispatchers {
        handles.push(open().await);
    }
    let one_by_one = std::env::var_os("ORDER_FLOW_CLAIMS_ONE_BY_ONE").is_some_and(|v| v == "1");
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for (w, store) in handles.into_iter().enumerate() {
        tasks.spawn(async move {
            let mut done = 0_usize;
            loop {
                let claimed = store
                    .claim(&format!("w{w}"), 4, Duration::from_secs(60))
                    .await
                    .expect("claim");
                if claimed.is_empty() {
                    return done;
                }
                if one_by_one {
                    for c in claimed {
                        store.complete(&c.job.id, &c.lease).await.expect("complete");
                        done += 1;
                    }
                    continue;
                }
                // As the dispatcher completes deliveries that finish together: in one call.
                let batch: Vec<_> = claimed.into_iter().map(|c| (c.job.id, c.lease)).collect();
                for r in store.complete_many(&batch).await {
                    r.expect("complete");
                    done += 1;
                }
            }
        });
    }
    let mut total = 0;
    while let Some(n) = tasks.join_next().await {
        total += n.expect("claimer");
    }
    let elapsed = started.elapsed();
    assert_eq!(total, jobs, "every job claimed and completed once");
    if let Some(db) = db {
        let _ = db.drop_database().await;
    }
    jobs as f64 / elapsed.as_secs_f64()
}
