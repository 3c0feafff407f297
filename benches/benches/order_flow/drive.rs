//! Driving orders through either side.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use integrations_core::{Error, Result};

use crate::durable::Db;
use crate::model::{Order, Phases, Sandboxes};
use crate::ours::{Dispatch, Ours, Store};
use crate::raw::{Raw, RawResult};

/// Which side a run measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    /// The same calls by hand.
    Raw,
    /// The same calls by hand, plus the minimum durable bookkeeping in this database: the fair
    /// baseline of a durable outbox.
    RawDurable(Db),
    /// The crates, with this outbox and dispatch.
    Ours(Store, Dispatch),
}

/// Every side, in the table's order: raw; ours as a service runs it (polling dispatcher); then
/// eager dispatch (what the poll costs) and the SQLite outbox (what durability costs); the
/// durable stores also with the jobs handed to the dispatcher as they are recorded.
pub(crate) const SIDES: [Side; 13] = [
    Side::Raw,
    Side::Ours(Store::Memory, Dispatch::Poll),
    Side::Ours(Store::Memory, Dispatch::Eager),
    Side::RawDurable(Db::Sqlite),
    Side::Ours(Store::SqliteNormal, Dispatch::Eager),
    Side::Ours(Store::SqliteFull, Dispatch::Eager),
    Side::Ours(Store::SqliteNormal, Dispatch::Handover),
    Side::Ours(Store::SqliteFull, Dispatch::Handover),
    Side::RawDurable(Db::Postgres),
    Side::Ours(Store::Postgres, Dispatch::Poll),
    Side::Ours(Store::Postgres, Dispatch::Eager),
    Side::Ours(Store::PostgresAsync, Dispatch::Eager),
    Side::Ours(Store::Postgres, Dispatch::Handover),
];

impl Side {
    pub(crate) fn label(self) -> &'static str {
        match self {
            Side::Raw => "raw (reqwest, in sequence)",
            Side::RawDurable(Db::Sqlite) => "raw + durable bookkeeping, sqlite",
            Side::RawDurable(Db::Postgres) => "raw + durable bookkeeping, postgres",
            Side::Ours(Store::Postgres, Dispatch::Poll) => "ours: postgres, run + waker",
            Side::Ours(Store::Postgres, Dispatch::Eager) => "ours: postgres, eager",
            Side::Ours(Store::PostgresAsync, Dispatch::Poll) => "ours: postgres async marks",
            Side::Ours(Store::PostgresAsync, Dispatch::Eager) => "ours: postgres async, eager",
            Side::Ours(Store::Memory, Dispatch::Poll) => "ours: memory outbox, run + waker",
            Side::Ours(Store::Memory, Dispatch::Eager) => "ours: memory outbox, eager",
            Side::Ours(Store::SqliteNormal, Dispatch::Poll) => "ours: sqlite NORMAL, run + waker",
            Side::Ours(Store::SqliteNormal, Dispatch::Eager) => "ours: sqlite NORMAL, eager",
            Side::Ours(Store::SqliteFull, Dispatch::Poll) => "ours: sqlite FULL, run + waker",
            Side::Ours(Store::SqliteFull, Dispatch::Eager) => "ours: sqlite FULL, eager",
            Side::Ours(Store::Memory, Dispatch::Handover) => "ours: memory, handed over",
            Side::Ours(Store::SqliteNormal, Dispatch::Handover) => {
                "ours: sqlite NORMAL, handed over"
            }
            Side::Ours(Store::SqliteFull, Dispatch::Handover) => "ours: sqlite FULL, handed over",
            Side::Ours(Store::Postgres, Dispatch::Handover) => "ours: postgres, handed over",
            Side::Ours(Store::PostgresAsync, Dispatch::Handover) => {
                "ours: postgres async, handed over"
            }
        }
    }

    pub(crate) fn id(self) -> &'static str {
        match self {
            Side::Raw => "raw",
            Side::RawDurable(Db::Sqlite) => "raw-durable-sqlite",
            Side::RawDurable(Db::Postgres) => "raw-durable-postgres",
            Side::Ours(Store::Postgres, Dispatch::Poll) => "ours-postgres",
            Side::Ours(Store::Postgres, Dispatch::Eager) => "ours-postgres-eager",
            Side::Ours(Store::PostgresAsync, Dispatch::Poll) => "ours-postgres-async",
            Side::Ours(Store::PostgresAsync, Dispatch::Eager) => "ours-postgres-async-eager",
            Side::Ours(Store::Memory, Dispatch::Poll) => "ours-memory",
            Side::Ours(Store::Memory, Dispatch::Eager) => "ours-memory-eager",
            Side::Ours(Store::SqliteNormal, Dispatch::Poll) => "ours-sqlite-normal",
            Side::Ours(Store::SqliteNormal, Dispatch::Eager) => "ours-sqlite-normal-eager",
            Side::Ours(Store::SqliteFull, Dispatch::Poll) => "ours-sqlite-full",
            Side::Ours(Store::SqliteFull, Dispatch::Eager) => "ours-sqlite-full-eager",
            Side::Ours(Store::Memory, Dispatch::Handover) => "ours-memory-handover",
            Side::Ours(Store::SqliteNormal, Dispatch::Handover) => "ours-sqlite-normal-handover",
            Side::Ours(Store::SqliteFull, Dispatch::Handover) => "ours-sqlite-full-handover",
            Side::Ours(Store::Postgres, Dispatch::Handover) => "ours-postgres-handover",
            Side::Ours(Store::PostgresAsync, Dispatch::Handover) => "ours-postgres-async-handover",
        }
    }
}

/// A running side.
pub(crate) enum Flow {
    Raw(Raw),
    Ours(Ours),
}

impl Flow {
    pub(crate) async fn start(sb: &Sandboxes, side: Side, concurrency: usize) -> Result<Flow> {
        Ok(match side {
            Side::Raw => Flow::Raw(Raw::start(sb, None, concurrency).await?),
            Side::RawDurable(db) => Flow::Raw(Raw::start(sb, Some(db), concurrency).await?),
            Side::Ours(store, dispatch) => {
                Flow::Ours(Ours::start(sb, store, dispatch, concurrency).await?)
            }
        })
    }

    /// The letter in its order ids (`ord_r_…`, `ord_o_…`: both the same length).
    pub(crate) fn letter(&self) -> char {
        match self {
            Flow::Raw(_) => 'r',
            Flow::Ours(_) => 'o',
        }
    }

    pub(crate) async fn order(&self, order: &Order) -> RawResult<Phases> {
        match self {
            Flow::Raw(raw) => raw.order(order).await,
            Flow::Ours(ours) => ours.order(order).await.map_err(|e| e.to_string()),
        }
    }

    /// After the last order of a batch: ours' last `complete`s (timed, part of the work).
    pub(crate) async fn settle(&self) -> RawResult<()> {
        match self {
            Flow::Raw(_) => Ok(()),
            Flow::Ours(ours) => ours.drain().await.map_err(|e| e.to_string()),
        }
    }

    /// Between batches, untimed: an empty outbox for the next one.
    pub(crate) async fn tidy(&self) -> RawResult<()> {
        match self {
            Flow::Raw(_) => Ok(()),
            Flow::Ours(ours) => ours.purge().await.map_err(|e| e.to_string()),
        }
    }

    /// Stops the side; an error if ours' dispatcher had to retry or dead-letter anything (the
    /// run measured more than the flow).
    pub(crate) async fn stop(self) -> Result<()> {
        match self {
            Flow::Raw(raw) => {
                raw.close().await;
                Ok(())
            }
            Flow::Ours(ours) => {
                let stats = ours.stop().await?;
                if stats.retried + stats.dead_lettered + stats.store_errors > 0 {
                    return Err(Error::provider(format!("dispatcher trouble: {stats:?}")));
                }
                Ok(())
            }
        }
    }
}

/// One batch: per-order latencies and the wall time of the whole batch.
#[derive(Debug, Default)]
pub(crate) struct Sample {
    pub(crate) latencies: Vec<Duration>,
    pub(crate) phases: Vec<Phases>,
    pub(crate) elapsed: Duration,
}

/// Runs `orders` orders, `concurrency` at a time (each of `concurrency` tasks runs orders one
/// after another), and waits for the flow to settle. Panics on the first failed order: the
/// numbers of a run that loses orders mean nothing.
pub(crate) async fn drive(flow: &Arc<Flow>, orders: usize, concurrency: usize) -> Sample {
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..concurrency.clamp(1, orders.max(1)) {
        let (flow, next) = (flow.clone(), next.clone());
        tasks.spawn(async move {
            let mut out = Vec::new();
            while next.fetch_add(1, Ordering::Relaxed) < orders {
                let order = Order::next(flow.letter());
                let t = Instant::now();
                match flow.order(&order).await {
                    Ok(phases) => out.push((t.elapsed(), phases)),
                    Err(e) => return Err(format!("order {} failed: {e}", order.id)),
                }
            }
            Ok(out)
        });
    }
    let mut sample = Sample::default();
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(Ok(done)) => {
                for (latency, phases) in done {
                    sample.latencies.push(latency);
                    sample.phases.push(phases);
                }
            }
            Ok(Err(e)) => panic!("{e}"),
            Err(e) => panic!("order task: {e}"),
        }
    }
    if let Err(e) = flow.settle().await {
        panic!("settling: {e}");
    }
    sample.elapsed = started.elapsed();
    sample
}
