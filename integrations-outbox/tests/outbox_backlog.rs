//! Claim latency with a large backlog, in the SQLite and the Postgres outbox: a claim reads only
//! the due jobs it takes, in index order, so it costs the same with 1,000 jobs waiting or
//! 1,000,000, and with a million done jobs behind them.
//!
//! The small cases run with the other tests (Postgres: `.ci/postgres.sh start`, as for
//! `outbox_postgres`). The large ones are ignored by default (they write hundreds of MB); run
//! them in release, with the backlog in `OUTBOX_BACKLOG_JOBS` (default 1,000,000):
//!
//! ```text
//! OUTBOX_BACKLOG_JOBS=1000000 cargo test -p integrations-outbox --features sqlite,postgres,testing \
//!     --release --test outbox_backlog -- --ignored --nocapture
//! ```
//!
//! With `OUTBOX_BACKLOG_KEEP_DATABASE` set, the Postgres runs keep their database (its name is
//! printed), to `EXPLAIN` a claim against what the drain left.
#![allow(clippy::print_stdout)]
#![cfg(any(feature = "sqlite", all(feature = "postgres", feature = "testing")))]

use std::sync::Arc;
use std::time::{Duration, Instant};

use integrations_outbox::{NewJob, OutboxStore};

const LEASE: Duration = Duration::from_secs(600);
const KIND: &str = "bench.job";

/// Median and worst of `samples`.
fn median_max(mut samples: Vec<Duration>) -> (Duration, Duration) {
    samples.sort_unstable();
    (
        samples[samples.len() / 2],
        samples.last().copied().unwrap_or_default(),
    )
}

/// Median and worst claim of 10 jobs, over `claims` claims, each completed: with `claim` and
/// with `claim_kinds` (the dispatchers' lanes), one of each in turn.
struct Probe {
    any: (Duration, Duration),
    by_kind: (Duration, Duration),
}

async fn claim_latency<S: OutboxStore>(outbox: &S, claims: usize) -> Probe {
    let mut any = Vec::with_capacity(claims);
    let mut by_kind = Vec::with_capacity(claims);
    for i in 0..claims * 2 {
        let t = Instant::now();
        let jobs = if i % 2 == 0 {
            outbox.claim("probe", 10, LEASE).await.unwrap()
        } else {
            outbox
                .claim_kinds("probe", &[KIND], 10, LEASE)
                .await
                .unwrap()
        };
        let took = t.elapsed();
        if i % 2 == 0 { &mut any } else { &mut by_kind }.push(took);
        assert!(!jobs.is_empty(), "the backlog ran out early");
        for j in jobs {
            outbox.complete(&j.job.id, &j.lease).await.unwrap();
        }
    }
    Probe {
        any: median_max(any),
        by_kind: median_max(by_kind),
    }
}

/// Records `total` jobs, `per_event` to an event (one transaction each).
async fn fill<S: OutboxStore>(outbox: &S, total: usize, per_event: usize) -> Duration {
    let t = Instant::now();
    let mut n = 0;
    while n < total {
        let batch = per_event.min(total - n);
        let jobs = (0..batch)
            .map(|i| {
                NewJob::new(KIND, serde_json::json!({ "n": n + i }))
                    .with_key_suffix((n + i).to_string())
            })
            .collect();
        outbox
            .record_event(&format!("evt_backlog_{n}"), jobs)
            .await
            .unwrap();
        n += batch;
    }
    t.elapsed()
}

/// Claims and completes everything but `leave` jobs, `workers` at a time.
async fn drain_to<S: OutboxStore + 'static>(
    outbox: &Arc<S>,
    leave: u64,
    workers: usize,
) -> Duration {
    let t = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for w in 0..workers {
        let outbox = outbox.clone();
        tasks.spawn(async move {
            let worker = format!("drain-{w}");
            loop {
                if outbox.backlog().await.unwrap().unfinished() <= leave {
                    return;
                }
                let jobs = outbox.claim(&worker, 200, LEASE).await.unwrap();
                let done: Vec<_> = jobs.into_iter().map(|j| (j.job.id, j.lease)).collect();
                for r in outbox.complete_many(&done).await {
                    r.unwrap();
                }
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    t.elapsed()
}

/// What one backlog run measured.
struct Run {
    start: Probe,
    end: Probe,
}

/// Fills a backlog of `total`, times claims at its start, drains all but the last few
/// thousand, and times claims again at its end: the two must be of a kind. `store` names the
/// store in the printed line; `after_drain` runs between the drain and the end probe (and
/// returns what to print of it: Postgres's dead row versions).
async fn backlog<S: OutboxStore + 'static>(
    store: &str,
    outbox: Arc<S>,
    total: usize,
    after_drain: impl AsyncFnOnce() -> String,
) -> Run {
    let filled = fill(&*outbox, total, 10_000).await;
    let start = claim_latency(&*outbox, 100).await;
    // The end probe takes 200 × 10 jobs, and the 8 drain workers can each overshoot `leave` by
    // one claim of 200 after their last check: leave room for both.
    let leave = (total as u64 / 100).clamp(2_000 + 8 * 200 + 400, 10_000);
    let drained = drain_to(&outbox, leave, 8).await;
    let left = outbox.backlog().await.unwrap().unfinished();
    let state = after_drain().await;
    let end = claim_latency(&*outbox, 100).await;
    // What a gauge or dashboard pays to ask, with most of the backlog done: the full counts
    // read every done job and event record, the backlog only what is unfinished.
    let t = Instant::now();
    let c = outbox.counts().await.unwrap();
    let counts_took = t.elapsed();
    let t = Instant::now();
    let b = outbox.backlog().await.unwrap();
    let backlog_took = t.elapsed();
    assert_eq!(
        (b.pending, b.leased, b.dead, b.oldest_pending_at),
        (c.pending, c.leased, c.dead, c.oldest_pending_at)
    );
    println!(
        "{store}: backlog of {total} jobs: recorded in {:.1} s ({:.0} jobs/s, 10,000 a \
         transaction); drained to {} pending in {:.1} s ({:.0} jobs/s){state}; claim of 10 \
         (median / worst): at the start {:?} / {:?}, by kind {:?} / {:?}; at the end {:?} / \
         {:?}, by kind {:?} / {:?}; {} done; counts() {counts_took:?}, backlog() \
         {backlog_took:?}",
        filled.as_secs_f64(),
        total as f64 / filled.as_secs_f64(),
        left,
        drained.as_secs_f64(),
        (total as u64 - left) as f64 / drained.as_secs_f64(),
        start.any.0,
        start.any.1,
        start.by_kind.0,
        start.by_kind.1,
        end.any.0,
        end.any.1,
        end.by_kind.0,
        end.by_kind.1,
        c.done
    );
    Run { start, end }
}

/// The median claim at the end within `factor` times the start's, plus `slack` for a shared
/// machine (the large runs: 2× and 1 ms; the small ones, unoptimised beside other tests,
/// 10× and 20 ms).
fn assert_flat(run: &Run, factor: u32, slack: Duration) {
    for (what, start, end) in [
        ("claim", run.start.any, run.end.any),
        ("claim_kinds", run.start.by_kind, run.end.by_kind),
    ] {
        assert!(
            end.0 < start.0 * factor + slack,
            "{what}: {start:?} at the start, {end:?} at the end"
        );
    }
}

fn large_backlog() -> usize {
    std::env::var("OUTBOX_BACKLOG_JOBS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000)
}

#[cfg(feature = "sqlite")]
mod sqlite {
    use super::*;
    use integrations_outbox::SqliteOutbox;

    async fn run(total: usize) -> Run {
        let dir = tempfile::tempdir().unwrap();
        let outbox = Arc::new(
            SqliteOutbox::open(dir.path().join("outbox.db"))
                .await
                .unwrap(),
        );
        let run = backlog("SQLite", outbox.clone(), total, async || String::new()).await;
        let b = outbox.backlog().await.unwrap();
        assert_eq!(outbox.unfinished().await.unwrap(), (b.pending, b.leased));
        run
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn claim_latency_does_not_grow_with_a_small_backlog() {
        // Loose: this runs unoptimised on a shared machine; the large run is the measurement.
        assert_flat(&run(30_000).await, 10, Duration::from_millis(20));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "writes a large database; run in release with --ignored (see the file's docs)"]
    async fn claim_latency_with_a_large_backlog() {
        assert_flat(&run(large_backlog()).await, 2, Duration::from_millis(1));
    }
}

#[cfg(all(feature = "postgres", feature = "testing"))]
mod postgres {
    use super::*;
    use integrations_outbox::PostgresOutbox;
    use integrations_outbox::postgres::sqlx;
    use integrations_outbox::postgres::testing::TestDatabase;

    async fn run(test: &str, total: usize) -> Option<Run> {
        let db = TestDatabase::create(test).await?;
        let pool = db.options().connect().await.unwrap();
        let outbox = Arc::new(PostgresOutbox::from_pool(pool.clone()).await.unwrap());
        // The dead row versions the drain left in the jobs table, as the end probe meets them
        // (autovacuum may have visited the table meanwhile, or not: both must be flat).
        let dead = async || {
            let (live, dead): (i64, i64) = sqlx::query_as(
                "SELECT n_live_tup, n_dead_tup FROM pg_stat_user_tables
                 WHERE relname = 'integrations_outbox_jobs'",
            )
            .fetch_one(&pool)
            .await
            .unwrap();
            format!(" (then {live} live and {dead} dead row versions in the jobs table)")
        };
        let run = backlog("Postgres", outbox, total, dead).await;
        pool.close().await;
        if std::env::var_os("OUTBOX_BACKLOG_KEEP_DATABASE").is_some() {
            println!("kept the database {} to look into", db.name());
        } else {
            db.drop_database().await.unwrap();
        }
        Some(run)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn claim_latency_does_not_grow_with_a_small_backlog() {
        if let Some(run) = run("backlog_small", 30_000).await {
            assert_flat(&run, 10, Duration::from_millis(20));
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "writes a large database; run in release with --ignored (see the file's docs)"]
    async fn claim_latency_with_a_large_backlog() {
        if let Some(run) = run("backlog_large", large_backlog()).await {
            assert_flat(&run, 2, Duration::from_millis(1));
        }
    }
}
