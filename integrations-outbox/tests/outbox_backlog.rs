//! Claim latency with a large backlog in the SQLite outbox: a claim reads only the due jobs it
//! takes, in index order, so it costs the same with 1,000 jobs waiting or 1,000,000.
//!
//! The small case runs with the other tests. The large one is ignored by default (it writes
//! hundreds of MB); run it in release, with the backlog in `OUTBOX_BACKLOG_JOBS` (default
//! 1,000,000):
//!
//! ```text
//! OUTBOX_BACKLOG_JOBS=1000000 cargo test -p integrations-outbox --features sqlite --release \
//!     --test outbox_backlog -- --ignored --nocapture
//! ```
#![cfg(feature = "sqlite")]
#![allow(clippy::print_stdout)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use integrations_outbox::{NewJob, OutboxStore, SqliteOutbox};

const LEASE: Duration = Duration::from_secs(600);

/// Median and worst of `samples`.
fn median_max(mut samples: Vec<Duration>) -> (Duration, Duration) {
    samples.sort_unstable();
    (
        samples[samples.len() / 2],
        samples.last().copied().unwrap_or_default(),
    )
}

/// Claims (10 jobs a claim) and completes `claims` times, timing each claim.
async fn claim_latency(outbox: &SqliteOutbox, claims: usize) -> (Duration, Duration) {
    let mut samples = Vec::with_capacity(claims);
    for _ in 0..claims {
        let t = Instant::now();
        let jobs = outbox.claim("probe", 10, LEASE).await.unwrap();
        samples.push(t.elapsed());
        assert!(!jobs.is_empty(), "the backlog ran out early");
        for j in jobs {
            outbox.complete(&j.job.id, &j.lease).await.unwrap();
        }
    }
    median_max(samples)
}

/// Records `total` jobs, `per_event` to an event (one transaction each).
async fn fill(outbox: &SqliteOutbox, total: usize, per_event: usize) -> Duration {
    let t = Instant::now();
    let mut n = 0;
    while n < total {
        let batch = per_event.min(total - n);
        let jobs = (0..batch)
            .map(|i| {
                NewJob::new("bench.job", serde_json::json!({ "n": n + i }))
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
async fn drain_to(outbox: &Arc<SqliteOutbox>, leave: u64, workers: usize) -> Duration {
    let t = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for w in 0..workers {
        let outbox = outbox.clone();
        tasks.spawn(async move {
            let worker = format!("drain-{w}");
            loop {
                if outbox.unfinished().await.unwrap().0 <= leave {
                    return;
                }
                let jobs = outbox.claim(&worker, 200, LEASE).await.unwrap();
                for j in jobs {
                    outbox.complete(&j.job.id, &j.lease).await.unwrap();
                }
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    t.elapsed()
}

/// Fills a backlog of `total`, times claims at its start, drains all but the last few
/// thousand, and times claims again at its end: the two must be of a kind.
async fn backlog(total: usize) -> ((Duration, Duration), (Duration, Duration)) {
    let dir = tempfile::tempdir().unwrap();
    let outbox = Arc::new(
        SqliteOutbox::open(dir.path().join("outbox.db"))
            .await
            .unwrap(),
    );
    let filled = fill(&outbox, total, 10_000).await;
    let start = claim_latency(&outbox, 200).await;
    // The end probe takes 200 × 10 jobs, and the 8 drain workers can each overshoot `leave` by
    // one claim of 200 after their last check: leave room for both.
    let leave = (total as u64 / 100).clamp(2_000 + 8 * 200 + 400, 10_000);
    let drained = drain_to(&outbox, leave, 8).await;
    let end = claim_latency(&outbox, 200).await;
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
    assert_eq!(outbox.unfinished().await.unwrap(), (c.pending, c.leased));
    println!(
        "backlog of {total} jobs: recorded in {:.1} s ({:.0} jobs/s, 10,000 a transaction); \
         drained to {} pending in {:.1} s; claim of 10 (median / worst): at the start {:?} / {:?}, \
         at the end {:?} / {:?}; {} done; counts() {counts_took:?}, backlog() {backlog_took:?}",
        filled.as_secs_f64(),
        total as f64 / filled.as_secs_f64(),
        c.pending,
        drained.as_secs_f64(),
        start.0,
        start.1,
        end.0,
        end.1,
        c.done
    );
    (start, end)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claim_latency_does_not_grow_with_a_small_backlog() {
    let (start, end) = backlog(30_000).await;
    // Loose: this runs unoptimised on a shared machine; the large run below is the measurement.
    assert!(
        end.0 < start.0 * 10 + Duration::from_millis(20),
        "{start:?} then {end:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "writes a large database; run in release with --ignored (see the file's docs)"]
async fn claim_latency_with_a_large_backlog() {
    let total = std::env::var("OUTBOX_BACKLOG_JOBS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let (start, end) = backlog(total).await;
    assert!(
        end.0 < start.0 * 3 + Duration::from_millis(2),
        "{start:?} then {end:?}"
    );
}
