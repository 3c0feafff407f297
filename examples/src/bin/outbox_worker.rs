//! One outbox dispatcher process on Postgres, for the multi-process crash test
//! (`tests/postgres_dispatchers.rs`): several of these share one database and are killed with
//! `SIGKILL` at random; the test then checks that every job ran, and never two runs of one job
//! at once.
//!
//! Each delivery of a `work` job writes its start to the `deliveries` table, works for a random
//! while, writes its end, and returns `Ok`. Settings from the environment: `DATABASE_URL`,
//! `WORKER_ID`, `LEASE_MS` (default 2000), `CONCURRENCY` (default 4), `WORK_MS` (longest work,
//! default 100).
//!
//! `DATABASE_URL=postgres://… cargo run -p integrations-examples --bin outbox_worker`
#![allow(clippy::print_stdout)]

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use integrations_core::{Error, Result};
use integrations_outbox::postgres::sqlx;
use integrations_outbox::{
    Dispatcher, PostgresOptions, PostgresOutbox, ShutdownSignal, handler_fn,
};

fn setting(name: &str, default: u64) -> Result<u64> {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .map_err(|_| Error::configuration(name.to_owned(), format!("not a number: {v}"))),
        Err(_) => Ok(default),
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Writes the end of a run that was dropped before it finished (timed out by the dispatcher):
/// the time is taken at the drop, the write follows on a task.
struct Cancelled(Option<(sqlx::PgPool, i64)>);

impl Cancelled {
    fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for Cancelled {
    fn drop(&mut self) {
        if let Some((pool, id)) = self.0.take() {
            let at = now_ms();
            tokio::spawn(async move {
                let _ = sqlx::query(
                    "UPDATE deliveries SET finished_at = $2, cancelled = true WHERE id = $1",
                )
                .bind(id)
                .bind(at)
                .execute(&pool)
                .await;
            });
        }
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let worker = std::env::var("WORKER_ID").unwrap_or_else(|_| format!("w{}", std::process::id()));
    let lease = Duration::from_millis(setting("LEASE_MS", 2000)?);
    let concurrency = usize::try_from(setting("CONCURRENCY", 4)?).unwrap_or(4);
    let work_ms = setting("WORK_MS", 100)?.max(1);
    let options = PostgresOptions::from_env()?.max_connections(8);
    let outbox = Arc::new(PostgresOutbox::connect_with(&options).await?);
    let pool = outbox.pool().clone();
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS deliveries (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            job_id text NOT NULL, attempt bigint NOT NULL, worker text NOT NULL,
            started_at bigint NOT NULL, finished_at bigint, cancelled boolean NOT NULL DEFAULT false)",
    )
    .execute(&pool)
    .await
    .map_err(|e| Error::unavailable(e.to_string()))?;

    let who = worker.clone();
    let handler = handler_fn(move |job| {
        let pool = pool.clone();
        let who = who.clone();
        async move {
            let db = |e: sqlx::Error| Error::unavailable(e.to_string());
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO deliveries (job_id, attempt, worker, started_at)
                 VALUES ($1, $2, $3, $4) RETURNING id",
            )
            .bind(job.id.as_str())
            .bind(i64::from(job.attempt))
            .bind(&who)
            .bind(now_ms())
            .fetch_one(&pool)
            .await
            .map_err(db)?;
            // If the dispatcher drops this run (its handler timeout), the guard records when.
            let guard = Cancelled(Some((pool.clone(), id)));
            tokio::time::sleep(Duration::from_millis(fastrand::u64(1..=work_ms))).await;
            guard.disarm();
            sqlx::query("UPDATE deliveries SET finished_at = $2 WHERE id = $1")
                .bind(id)
                .bind(now_ms())
                .execute(&pool)
                .await
                .map_err(db)?;
            Ok(())
        }
    });
    let dispatcher = Dispatcher::builder(outbox.clone())
        .handler("work", handler)
        .worker_id(worker.clone())
        .concurrency(concurrency)
        .lease(lease)
        .handler_timeout(lease / 2)
        .poll_interval(Duration::from_millis(250))
        .build()?;
    let _wake = outbox.wake_on_notify(dispatcher.waker());
    println!("{worker} ready");
    // Runs until killed: the test's SIGKILL is the only way it ends.
    let stats = dispatcher.run(ShutdownSignal::never()).await;
    println!("{worker} stopped: {stats:?}");
    Ok(())
}
