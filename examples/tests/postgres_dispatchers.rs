//! Many dispatchers on one Postgres database, killed at random: four `outbox_worker` processes
//! share the outbox; every few hundred milliseconds one of them is killed with `SIGKILL` and
//! replaced by a fresh process. At the end every job must be done (none lost), and no two runs
//! of one job may overlap in time (leases and fencing: a job comes back only after its lease ran
//! out, and the killed worker is gone by then).
//!
//! Each run writes its start and end to `deliveries` (a run the dispatcher timed out writes the
//! moment it was dropped); a killed run has no end, and ends at its process's kill (known here). `ORDER_FLOW_CRASH_SEED=<seed>` replays the same kill schedule.
//! Needs the test server (`.ci/postgres.sh start`): skipped loudly without it, failed under
//! `CI=true`.

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use integrations_outbox::postgres::sqlx::{self, Row};
use integrations_outbox::postgres::testing::{TEST_URL_VAR, TestDatabase, test_url};
use integrations_outbox::{NewJob, OutboxStore, PostgresOutbox};
use serde_json::json;

const WORKERS: usize = 4;
const JOBS: usize = 600;
const LEASE_MS: i64 = 2000;
/// Between kills, a random wait up to this.
const MAX_KILL_GAP_MS: u64 = 400;
const KILLS: usize = 10;
const DEADLINE: Duration = Duration::from_secs(120);

fn now_ms() -> i64 {
    i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap()
}

/// A worker process, killed (and reaped) when dropped: a failing test leaves none behind.
struct Worker {
    id: String,
    child: Child,
}

impl Worker {
    fn spawn(url: &str, id: String) -> Worker {
        let child = Command::new(env!("CARGO_BIN_EXE_outbox_worker"))
            .env("DATABASE_URL", url)
            .env("WORKER_ID", &id)
            .env("LEASE_MS", LEASE_MS.to_string())
            .env("CONCURRENCY", "4")
            .env("WORK_MS", "120")
            .env("RUST_LOG", "error")
            .env_remove(TEST_URL_VAR)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the outbox_worker binary starts");
        Worker { id, child }
    }

    /// `SIGKILL`, then waits for the process to be gone; returns when it was gone.
    fn kill(mut self) -> (String, i64) {
        self.child.kill().expect("kill");
        self.child.wait().expect("reap");
        (std::mem::take(&mut self.id), now_ms())
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Run {
    job: String,
    worker: String,
    started: i64,
    finished: Option<i64>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_dispatcher_processes_killed_at_random_lose_nothing_and_never_overlap() {
    let Some(db) = TestDatabase::create("dispatchers").await else {
        return;
    };
    let url = test_url().expect("test server URL");
    // The database of this test, with the server's credentials.
    let url = match url.rsplit_once('/') {
        Some((server, _)) => format!("{server}/{}", db.name()),
        None => panic!("test URL without a database path"),
    };
    let seed = std::env::var("ORDER_FLOW_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| fastrand::u64(..));
    eprintln!("kill schedule seed {seed} (ORDER_FLOW_CRASH_SEED={seed} replays it)");
    let mut rng = fastrand::Rng::with_seed(seed);

    let outbox = PostgresOutbox::connect_with(db.options()).await.unwrap();
    for i in 0..JOBS {
        let jobs = vec![NewJob::new("work", json!({ "i": i })).with_max_attempts(100)];
        outbox
            .record_event(&format!("evt_{i}"), jobs)
            .await
            .unwrap();
    }

    let mut generation = 0;
    let mut next_id = |slot: usize| {
        generation += 1;
        format!("w{slot}-{generation}")
    };
    let mut workers: Vec<Worker> = (0..WORKERS)
        .map(|slot| Worker::spawn(&url, next_id(slot)))
        .collect();
    let mut killed: BTreeMap<String, i64> = BTreeMap::new();
    let started = Instant::now();
    let mut kills = 0;
    loop {
        let (pending, leased) = outbox.unfinished().await.unwrap();
        if pending + leased == 0 {
            break;
        }
        assert!(
            started.elapsed() < DEADLINE,
            "not drained within {DEADLINE:?}: {pending} pending, {leased} leased (seed {seed})"
        );
        if kills < KILLS {
            tokio::time::sleep(Duration::from_millis(rng.u64(100..=MAX_KILL_GAP_MS))).await;
            let slot = rng.usize(..WORKERS);
            let replacement = Worker::spawn(&url, next_id(slot));
            let (id, at) = std::mem::replace(&mut workers[slot], replacement).kill();
            killed.insert(id, at);
            kills += 1;
        } else {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let drained = started.elapsed();
    // Stop the survivors; they had nothing left to run.
    for w in workers.drain(..) {
        let (id, at) = w.kill();
        killed.insert(id, at);
    }

    let counts = outbox.counts().await.unwrap();
    assert_eq!(
        (counts.done, counts.dead, counts.pending, counts.leased),
        (JOBS as u64, 0, 0, 0),
        "every job delivered exactly to done (seed {seed}): {counts:?}"
    );
    let rows = sqlx::query(
        "SELECT job_id, worker, started_at, finished_at FROM deliveries ORDER BY job_id, started_at",
    )
    .fetch_all(outbox.pool())
    .await
    .unwrap();
    let runs: Vec<Run> = rows
        .iter()
        .map(|r| Run {
            job: r.get("job_id"),
            worker: r.get("worker"),
            started: r.get("started_at"),
            finished: r.get("finished_at"),
        })
        .collect();
    let mut by_job: BTreeMap<&str, Vec<&Run>> = BTreeMap::new();
    for run in &runs {
        by_job.entry(&run.job).or_default().push(run);
    }
    assert_eq!(by_job.len(), JOBS, "every job ran (seed {seed})");
    let mut reruns = 0;
    for (job, runs) in &by_job {
        assert!(
            runs.iter().any(|r| r.finished.is_some()),
            "job {job} never finished a run (seed {seed})"
        );
        for pair in runs.windows(2) {
            let (a, b) = (pair[0], pair[1]);
            // A run ends when it finished, or when its process was killed.
            let end = a.finished.unwrap_or_else(|| {
                *killed
                    .get(&a.worker)
                    .unwrap_or_else(|| panic!("job {job}: unfinished run by live {}", a.worker))
            });
            assert!(
                b.started >= end,
                "job {job}: run by {} started at {} while the run by {} (from {}) lasted until {end} (seed {seed})",
                b.worker,
                b.started,
                a.worker,
                a.started
            );
            reruns += 1;
        }
    }
    let killed_mid_run = runs.iter().filter(|r| r.finished.is_none()).count();
    eprintln!(
        "{JOBS} jobs, {kills} kills, {killed_mid_run} runs killed mid-job, {reruns} re-runs, \
         drained in {drained:?}"
    );
    assert!(kills >= KILLS.min(3), "too few kills landed: {kills}");
    outbox.pool().close().await;
    db.drop_database().await.unwrap();
}
