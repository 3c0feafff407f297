//! Orders per second through the whole order flow against the loopback sandboxes, against the
//! same HTTP calls made in sequence with a bare `reqwest::Client`, in one run (issue 7).
//!
//! One paid order, either way, makes the same four HTTP requests to the same in-process
//! sandboxes (Stripe, SendGrid, Google Sheets), with the same bodies:
//!
//! | step | **ours** | **raw** |
//! |---|---|---|
//! | create + confirm the payment intent | `StripePayments` under a policy, keys `ord_…/payment`, `ord_…/payment/confirm` | two form POSTs, same keys |
//! | `payment_intent.succeeded` | `WebhookVerifier::verify` of the signed delivery (typed `Event`) | hand-written `t=`/`v1=` parse, HMAC-SHA256, constant-time compare, small serde struct |
//! | record once | `OutboxStore::record_event` with 4 jobs | a `HashSet` of event ids |
//! | confirmation email | dispatcher → `SendGridEmail` (seed template, policy) | JSON POST to `/v3/mail/send` |
//! | analytics row | dispatcher → `GoogleSheetsSink` (batched `values.append`) | one `values.append` per order |
//! | notification | dispatcher → an in-memory FIFO-topic notifier under a policy | a `HashMap` insert |
//! | business metrics | dispatcher → counter deduplicated by job key | a counter |
//!
//! An order is done, either way, when all four side effects have been delivered. Both sides keep
//! `C` orders in flight (each of `C` tasks runs orders one after another); raw makes its calls in
//! sequence, ours runs each order's four jobs through the dispatcher (`4 × C` deliveries at once).
//!
//! Settings that keep the comparison about the code rather than the quotas: the Sheets sandbox's
//! per-minute quota is raised to 10⁶ (Google's 60 writes a minute would measure the quota), and
//! ours' policies keep every mechanism (rate limiter, breaker, retries, per-attempt timeout,
//! metrics) with limits far above what the loopback reaches. Ours' Sheets sink sends a batch as
//! soon as the previous one is back (`max_delay` 0), so concurrent orders share appends. Access
//! tokens are fetched before timing, by both sides.
//!
//! Sides (ids as in criterion's group):
//!
//! | id | what |
//! |---|---|
//! | `raw` | the same calls by hand |
//! | `ours-memory` | ours as a service runs it: `Dispatcher::run`, polling every 1 ms when idle; `InMemoryOutbox` (no durability, like raw) |
//! | `ours-memory-eager` | the same, and each order spawns `Dispatcher::run_once` right after recording: what the idle poll costs |
//! | `ours-sqlite-normal-eager` | eager, on `SqliteOutbox` with `synchronous = NORMAL`: what a durable store costs |
//! | `ours-sqlite-full-eager` | eager, on `SqliteOutbox` with the default `synchronous = FULL` (fsync per commit) |
//! | `raw-durable-sqlite` | raw plus the minimum durable bookkeeping by hand in SQLite (WAL): the event and its 4 job rows in one fsync'd commit, one update per delivered job (`NORMAL`, as `SqliteOutbox`): the fair baseline of the SQLite sides |
//! | `raw-durable-postgres` | the same bookkeeping in Postgres, each statement its own (fsync'd) commit: the fair baseline of the Postgres sides |
//! | `ours-postgres` | ours as a service runs it, on `PostgresOutbox` (a fresh database on the test server, `.ci/postgres.sh start`) |
//! | `ours-postgres-eager` | eager, on `PostgresOutbox` |
//! | `ours-postgres-async-eager` | eager, on `PostgresOutbox::with_asynchronous_marks` (claims and completions not fsynced, events are) |
//! | `ours-sqlite-normal-handover`, `ours-sqlite-full-handover`, `ours-postgres-handover` | `Dispatcher::record_event`: the jobs are recorded already leased to the running dispatcher and handed to it in memory (no claim, no wake-up; its idle poll a 200 ms fallback) |
//!
//! Output: a criterion group `order_flow` (time per order, i.e. 1/throughput, for `raw`,
//! `ours-memory` and `ours-memory-eager` at `C` = 1 and 8), then, per `C`, a table of orders/s,
//! the ratio to raw and to the durable baseline of the same database, p50/p90/p99/max per order, Stripe requests and Sheets appends per order,
//! and where the time goes (checkout, record, fan-out), over interleaved rounds in which only
//! one side runs at a time and each side starts from an empty outbox and an empty sheet.
//! Before any timing, a check runs an order each way and compares what the sandboxes received
//! (payment intents, mail bodies, rows), so the two sides are known to make the same calls.
//! Without `--bench` (as under `cargo test --benches`) only the check and a short smoke run
//! happen. After the tables, claim + complete pairs per second with 1, 4 and 16 dispatchers on
//! SQLite and Postgres (`claims.rs`; `ORDER_FLOW_SKIP_CLAIMS=1` to skip). No timing is asserted
//! anywhere.

#[path = "order_flow/check.rs"]
mod check;
#[path = "order_flow/claims.rs"]
mod claims;
#[path = "order_flow/drive.rs"]
mod drive;
#[path = "order_flow/durable.rs"]
mod durable;
#[path = "order_flow/jobs.rs"]
mod jobs;
#[path = "order_flow/model.rs"]
mod model;
#[path = "order_flow/ours.rs"]
mod ours;
#[path = "order_flow/raw.rs"]
mod raw;
#[path = "order_flow/report.rs"]
mod report;

use std::time::Duration;

use criterion::Criterion;
use tokio::runtime::Runtime;

use check::check_same_calls;
use claims::{ClaimStore, claims_per_second};
use drive::{SIDES, Side};
use report::{criterion_part, measure, print_table};

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn runtime() -> Runtime {
    // Two workers: the machine's two cores, shared by the sandboxes and the side measured.
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// `cargo bench -p integrations-benches --bench order_flow` runs the check, criterion's group
/// and the table. Environment (all optional): `ORDER_FLOW_ROUNDS` (default 5),
/// `ORDER_FLOW_ORDERS` (measured orders per side and round, default 300),
/// `ORDER_FLOW_CONCURRENCY` (e.g. `1,8`, the default), `ORDER_FLOW_SIDES` (ids as in criterion's
/// group, e.g. `raw,ours-memory`; default all thirteen), `ORDER_FLOW_SKIP_CRITERION=1` for the table
/// alone. Without `--bench` (`cargo test --benches`): the check and a smoke run of a few orders.
fn main() {
    let rt = runtime();
    rt.block_on(check_same_calls());
    let bench = std::env::args().any(|a| a == "--bench");
    let (rounds, per_round, warmup) = if bench {
        (
            env_usize("ORDER_FLOW_ROUNDS", 5),
            env_usize("ORDER_FLOW_ORDERS", 300),
            50,
        )
    } else {
        (1, 10, 2)
    };
    if bench && std::env::var_os("ORDER_FLOW_SKIP_CRITERION").is_none() {
        let mut c = Criterion::default()
            .configure_from_args()
            .sample_size(10)
            .warm_up_time(Duration::from_secs(1))
            .measurement_time(Duration::from_secs(3));
        criterion_part(&mut c, &rt);
        c.final_summary();
    }
    let sides: Vec<Side> = match std::env::var("ORDER_FLOW_SIDES") {
        Ok(ids) => SIDES
            .into_iter()
            .filter(|s| ids.split(',').any(|id| id.trim() == s.id()))
            .collect(),
        Err(_) => SIDES.to_vec(),
    };
    let concurrencies: Vec<usize> = std::env::var("ORDER_FLOW_CONCURRENCY")
        .ok()
        .map(|v| v.split(',').filter_map(|c| c.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![1, 8]);
    for concurrency in concurrencies {
        let tallies = rt.block_on(measure(concurrency, &sides, rounds, per_round, warmup));
        print_table(concurrency, rounds, per_round, &tallies);
    }
    if bench && std::env::var_os("ORDER_FLOW_SKIP_CLAIMS").is_none() {
        print_claims(&rt, env_usize("ORDER_FLOW_CLAIM_JOBS", 2000));
    }
}

/// Claims per second with 1, 4 and 16 dispatchers, on SQLite and on Postgres.
#[allow(clippy::print_stdout, reason = "the table is the bench's report")]
fn print_claims(rt: &Runtime, jobs: usize) {
    println!();
    println!("claim + complete per second, {jobs} jobs, dispatchers each with their own handle");
    println!("{:<10} {:>12} {:>12} {:>12}", "store", "1", "4", "16");
    for (name, store) in [
        ("sqlite", ClaimStore::Sqlite),
        ("postgres", ClaimStore::Postgres),
        ("pg async", ClaimStore::PostgresAsync),
    ] {
        let rates: Vec<f64> = [1, 4, 16]
            .into_iter()
            .map(|d| rt.block_on(claims_per_second(store, d, jobs)))
            .collect();
        println!(
            "{name:<10} {:>12.0} {:>12.0} {:>12.0}",
            rates[0], rates[1], rates[2]
        );
    }
}
