//! Criterion's group (time per order) and the table (throughput, percentiles).

use std::sync::Arc;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput};
use tokio::runtime::Runtime;

use crate::drive::{Flow, Side, drive};
use crate::durable::Db;
use crate::model::{Phases, Sandboxes};
use crate::ours::{Dispatch, Store};

/// `order_flow/<side>/<C>`: time per order (criterion's throughput is orders/s) for raw and
/// ours on the in-memory outbox, woken by the dispatcher waker and eager; each side on its own fresh sandboxes, each
/// sample from an empty outbox and sheet.
pub(crate) fn criterion_part(c: &mut Criterion, rt: &Runtime) {
    let mut group = c.benchmark_group("order_flow");
    group.throughput(Throughput::Elements(1));
    for concurrency in [1, 8] {
        for side in [
            Side::Raw,
            Side::Ours(Store::Memory, Dispatch::Poll),
            Side::Ours(Store::Memory, Dispatch::Eager),
        ] {
            let sb = rt.block_on(Sandboxes::start()).expect("sandboxes");
            let flow = Arc::new(
                rt.block_on(Flow::start(&sb, side, concurrency))
                    .expect("flow"),
            );
            group.bench_function(BenchmarkId::new(side.id(), concurrency), |b| {
                b.iter_custom(|iters| {
                    rt.block_on(async {
                        flow.tidy().await.expect("tidy");
                        sb.reset();
                        let n = usize::try_from(iters).unwrap_or(usize::MAX);
                        drive(&flow, n, concurrency).await.elapsed
                    })
                });
            });
            let flow = Arc::into_inner(flow).expect("one owner");
            rt.block_on(flow.stop()).expect("stop");
        }
    }
    group.finish();
}

/// Everything measured for one side at one concurrency.
#[derive(Debug)]
pub(crate) struct Tally {
    pub(crate) side: Side,
    pub(crate) latencies: Vec<Duration>,
    pub(crate) phases: Vec<Phases>,
    pub(crate) elapsed: Duration,
    pub(crate) sheets_writes: u64,
    pub(crate) stripe_requests: u64,
}

impl Tally {
    pub(crate) fn orders_per_second(&self) -> f64 {
        self.latencies.len() as f64 / self.elapsed.as_secs_f64().max(f64::MIN_POSITIVE)
    }

    pub(crate) fn percentile_ms(&self, p: f64) -> f64 {
        percentile_ms(self.latencies.clone(), p)
    }

    /// The `p`th percentile of one phase, in ms.
    pub(crate) fn phase_ms(&self, phase: fn(&Phases) -> Duration, p: f64) -> f64 {
        percentile_ms(self.phases.iter().map(phase).collect(), p)
    }

    pub(crate) fn per_order(&self, n: u64) -> f64 {
        n as f64 / self.latencies.len().max(1) as f64
    }
}

/// The `p`th percentile (nearest rank) of `values`, in ms.
fn percentile_ms(mut values: Vec<Duration>, p: f64) -> f64 {
    values.sort_unstable();
    let rank = ((p / 100.0) * values.len() as f64).ceil() as usize;
    values
        .get(rank.saturating_sub(1).min(values.len().saturating_sub(1)))
        .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

/// `rounds` rounds; in each, every side in turn starts fresh on the same sandboxes, warms up
/// with `warmup` orders, then runs `per_round` measured orders. Only one side runs at a time.
pub(crate) async fn measure(
    concurrency: usize,
    sides: &[Side],
    rounds: usize,
    per_round: usize,
    warmup: usize,
) -> Vec<Tally> {
    let sb = Sandboxes::start().await.expect("sandboxes");
    let mut tallies: Vec<Tally> = sides
        .iter()
        .map(|&side| Tally {
            side,
            latencies: Vec::new(),
            phases: Vec::new(),
            elapsed: Duration::ZERO,
            sheets_writes: 0,
            stripe_requests: 0,
        })
        .collect();
    for _ in 0..rounds {
        for tally in &mut tallies {
            let flow = Arc::new(
                Flow::start(&sb, tally.side, concurrency)
                    .await
                    .expect("flow"),
            );
            drive(&flow, warmup, concurrency).await;
            flow.tidy().await.expect("tidy");
            sb.reset();
            let (writes, stripe) = (
                sb.sheets.stats().write_requests,
                sb.stripe.counters().requests,
            );
            let sample = drive(&flow, per_round, concurrency).await;
            tally.sheets_writes += sb.sheets.stats().write_requests - writes;
            tally.stripe_requests += sb.stripe.counters().requests - stripe;
            tally.latencies.extend(sample.latencies);
            tally.phases.extend(sample.phases);
            tally.elapsed += sample.elapsed;
            Arc::into_inner(flow)
                .expect("one owner")
                .stop()
                .await
                .expect("stop");
        }
    }
    tallies
}

/// Prints one concurrency's table and its breakdown by phase.
#[allow(clippy::print_stdout, reason = "the table is the bench's report")]
pub(crate) fn print_table(concurrency: usize, rounds: usize, per_round: usize, tallies: &[Tally]) {
    println!();
    println!(
        "order flow, {concurrency} order(s) in flight, {rounds} interleaved rounds x {per_round} orders per side"
    );
    println!(
        "{:<34} {:>9} {:>7} {:>10} {:>8} {:>8} {:>8} {:>8} {:>9} {:>9}",
        "side",
        "orders/s",
        "vs raw",
        "vs durable",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "max ms",
        "stripe/o",
        "appends/o"
    );
    let raw = tallies
        .iter()
        .find(|t| t.side == Side::Raw)
        .map(Tally::orders_per_second);
    // The fair baseline of a durable store: raw plus hand-written bookkeeping in the same database.
    let durable = |side: Side| {
        let db = match side {
            Side::Ours(Store::SqliteNormal | Store::SqliteFull, _) => Db::Sqlite,
            Side::Ours(Store::Postgres | Store::PostgresAsync, _) => Db::Postgres,
            _ => return None,
        };
        tallies
            .iter()
            .find(|t| t.side == Side::RawDurable(db))
            .map(Tally::orders_per_second)
    };
    for t in tallies {
        let ratio = raw.map_or(f64::NAN, |r| t.orders_per_second() / r);
        let vs_durable = durable(t.side).map_or_else(
            || "-".to_owned(),
            |d| format!("{:.2}x", t.orders_per_second() / d),
        );
        println!(
            "{:<34} {:>9.1} {:>6.2}x {:>10} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>9.2} {:>9.3}",
            t.side.label(),
            t.orders_per_second(),
            ratio,
            vs_durable,
            t.percentile_ms(50.0),
            t.percentile_ms(90.0),
            t.percentile_ms(99.0),
            t.percentile_ms(100.0),
            t.per_order(t.stripe_requests),
            t.per_order(t.sheets_writes),
        );
    }
    println!(
        "  where the time goes, p50 (p99) ms: checkout = create + confirm; record = verify + record once; fan-out = record until the 4th side effect is done"
    );
    let cell = |t: &Tally, phase: fn(&Phases) -> Duration| {
        format!(
            "{:.2} ({:.2})",
            t.phase_ms(phase, 50.0),
            t.phase_ms(phase, 99.0)
        )
    };
    for t in tallies {
        println!(
            "  {:<34} checkout {:<15} record {:<15} fan-out {}",
            t.side.label(),
            cell(t, |p| p.checkout),
            cell(t, |p| p.record),
            cell(t, |p| p.fanout),
        );
    }
}
