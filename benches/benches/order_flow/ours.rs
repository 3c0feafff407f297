//! Ours: the crates, as the example's order flow uses them.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use integrations_core::metrics::MetricsRegistry;
use integrations_core::provider::{CreatePayment, PaymentProvider, PaymentStatus};
use integrations_core::resilience::{Backoff, CircuitBreakerConfig, RateLimiter, RetryPolicy};
use integrations_core::{Currency, Error, IdempotencyKey, Money, Policy, Result};
use integrations_outbox::postgres::testing::TestDatabase;
use integrations_outbox::{
    Dispatcher, DispatcherWaker, InMemoryOutbox, JobHandler, NewJob, OutboxStore, PostgresOutbox,
    RunStats, ShutdownTrigger, SqliteOptions, SqliteOutbox, Synchronous, shutdown_channel,
};
use integrations_sheets::{BatchConfig, GoogleSheetsSink};
use integrations_shop::jobs::{OrderEvent, OrderEventKind};
use integrations_stripe::{StripePayments, StripeWebhookVerifier};
use tokio::task::JoinHandle;

use crate::durable::pg_options;
use crate::jobs::{EmailJob, MemoryNotifier, MetricsJob, NotifyJob, SheetsJob, Tracked, Tracker};
use crate::model::{
    CARD, Deliveries, EMAIL, METRICS, NOTIFY, ORDER_DEADLINE, Order, Phases, SHEETS_APPEND,
    SUCCEEDED, Sandboxes,
};

/// Which outbox ours records into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Store {
    /// `InMemoryOutbox`: no durability, like raw.
    Memory,
    /// `SqliteOutbox` with `synchronous = NORMAL` (survives a process kill, not a power cut).
    SqliteNormal,
    /// `SqliteOutbox` with the default `synchronous = FULL` (an fsync per commit).
    SqliteFull,
    /// `PostgresOutbox` on a fresh database of the test server (each commit fsynced).
    Postgres,
    /// The same with asynchronous marks: claims and completions do not wait for the WAL flush
    /// (events are still recorded synchronously), the trade `SqliteNormal`'s marks make.
    PostgresAsync,
}

/// How recorded jobs reach the dispatcher.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dispatch {
    /// `Dispatcher::run`, woken by its `DispatcherWaker` right after each `record_event` (as a
    /// service runs it); an idle dispatcher also looks again every `POLL_INTERVAL`.
    Poll,
    /// As `Poll`, and the order also spawns `Dispatcher::run_once` right after recording, so
    /// its jobs are claimed at once (the background loop still handles retries).
    Eager,
    /// `Dispatcher::record_event`: the jobs are recorded already leased to the running
    /// dispatcher and handed to its handlers in memory, no claim (those without a free slot are
    /// recorded pending and claimed by `Dispatcher::run`, which polls only as a fallback).
    Handover,
}

/// How often an idle dispatcher looks for jobs (the default is 1 s, the example uses 20 ms).
/// Tokio's timer has millisecond resolution: a sleep of 1 ms lasts 1 to 2 ms.
pub(crate) const POLL_INTERVAL: Duration = Duration::from_millis(1);

/// The idle poll on Postgres: a fallback only, as with `LISTEN/NOTIFY` in a service.
pub(crate) const PG_POLL_INTERVAL: Duration = Duration::from_millis(200);

/// Every mechanism of the policy on, as for a real provider, with limits that never bind here.
fn quick_policy(name: &'static str, registry: &MetricsRegistry, timeout: u64) -> Policy {
    Policy::builder(name)
        // On, so its cost is counted; far above what the loopback reaches, so it never waits.
        .rate_limiter(RateLimiter::per_second(
            NonZeroU32::new(1_000_000).unwrap_or(NonZeroU32::MIN),
        ))
        .circuit_breaker(CircuitBreakerConfig::DEFAULT)
        .retry(RetryPolicy::new(
            2,
            Backoff::new(Duration::from_millis(20), Duration::from_millis(200), 2.0),
        ))
        .attempt_timeout(Duration::from_secs(timeout))
        .metrics(registry)
        .build()
}

/// Ours: checkout through `StripePayments`, the verified webhook recorded once in the outbox
/// with its four jobs, and a dispatcher delivering them.
pub(crate) struct Ours {
    payments: StripePayments,
    verifier: StripeWebhookVerifier,
    outbox: Arc<dyn OutboxStore>,
    tracker: Arc<Tracker>,
    deliveries: Arc<Deliveries>,
    sink: GoogleSheetsSink,
    shutdown: ShutdownTrigger,
    dispatching: JoinHandle<RunStats>,
    /// With [`Dispatch::Eager`]: a handle for `run_once`, and what those runs did.
    eager: Option<(Dispatcher, Arc<Mutex<RunStats>>)>,
    /// With [`Dispatch::Handover`]: the dispatcher that records the events.
    recorder: Option<Dispatcher>,
    waker: DispatcherWaker,
    _dir: tempfile::TempDir,
    /// The Postgres store's database, dropped at `stop`.
    pg_db: Option<Box<TestDatabase>>,
}

impl Ours {
    /// Clients on the sandboxes, an empty outbox and a running dispatcher sized for
    /// `concurrency` orders in flight (one delivery slot per job).
    pub(crate) async fn start(
        sb: &Sandboxes,
        store: Store,
        dispatch: Dispatch,
        concurrency: usize,
    ) -> Result<Ours> {
        let registry = MetricsRegistry::new();
        let payments = sb
            .stripe
            .client_builder()
            .with_policy(quick_policy("stripe", &registry, 10))
            .build()?;
        let verifier = StripeWebhookVerifier::new(sb.stripe.webhook_secret());
        let email = sb
            .sendgrid
            .email()
            .with_policy(quick_policy("sendgrid", &registry, 5))
            .build()?;
        let sink = sb
            .sheets
            .client_builder()
            .with_write_policy(quick_policy("google-sheets", &registry, 30))
            .with_read_policy(quick_policy("google-sheets", &registry, 30))
            .with_token_policy(quick_policy("google-oauth", &registry, 5))
            // No waiting for company: a batch goes as soon as the previous one is back, so rows
            // that arrive while an append is in flight share the next one.
            .with_batch(BatchConfig::new().with_max_delay(Duration::ZERO))
            .build()?;
        let dir = tempfile::tempdir()
            .map_err(|e| Error::unavailable(format!("no temporary directory: {e}")))?;
        let mut pg_db = None;
        let outbox: Arc<dyn OutboxStore> = match store {
            Store::Memory => Arc::new(InMemoryOutbox::new()),
            Store::Postgres | Store::PostgresAsync => {
                let db = TestDatabase::create("bench_ours").await.ok_or_else(|| {
                    Error::unavailable("no Postgres test server (.ci/postgres.sh start)")
                })?;
                let outbox = PostgresOutbox::connect_with(&pg_options(&db, concurrency))
                    .await?
                    .with_asynchronous_marks(store == Store::PostgresAsync);
                pg_db = Some(Box::new(db));
                Arc::new(outbox)
            }
            Store::SqliteNormal | Store::SqliteFull => {
                let sync = if store == Store::SqliteFull {
                    Synchronous::Full
                } else {
                    Synchronous::Normal
                };
                let options = SqliteOptions::new().synchronous(sync);
                Arc::new(SqliteOutbox::open_with(dir.path().join("outbox.db"), options).await?)
            }
        };
        let tracker = Arc::new(Tracker::default());
        let tracked = |h: Arc<dyn JobHandler>| -> Arc<dyn JobHandler> {
            Arc::new(Tracked {
                inner: h,
                tracker: tracker.clone(),
            })
        };
        let notifier = MemoryNotifier {
            policy: quick_policy("notifier-memory", &registry, 5),
            seen: Mutex::new(HashMap::new()),
        };
        let dispatcher = Dispatcher::builder(outbox.clone())
            .shared_handler(
                EMAIL,
                tracked(Arc::new(EmailJob {
                    email,
                    templates: integrations_shop::order_templates(),
                })),
            )
            .shared_handler(
                SHEETS_APPEND,
                tracked(Arc::new(SheetsJob { sink: sink.clone() })),
            )
            .shared_handler(NOTIFY, tracked(Arc::new(NotifyJob { notifier })))
            .shared_handler(METRICS, tracked(Arc::new(MetricsJob::default())))
            .worker_id("bench")
            // One slot per job of the orders in flight; handed over, twice that: a slot is held
            // until its completion commits, and a task's next order records meanwhile (without
            // a free slot its jobs would be recorded pending and claimed).
            .concurrency(
                OrderEventKind::Paid.job_kinds().len()
                    * concurrency
                    * if dispatch == Dispatch::Handover { 4 } else { 1 },
            )
            .lease(Duration::from_secs(60))
            .handler_timeout(Duration::from_secs(45))
            // A database server is not polled every millisecond: its dispatchers are woken (the
            // waker here; `wake_on_notify` across processes) and poll only as a fallback. Nor
            // is a dispatcher handed its jobs as they are recorded (it is woken for leftovers).
            .poll_interval(if pg_db.is_some() || dispatch == Dispatch::Handover {
                PG_POLL_INTERVAL
            } else {
                POLL_INTERVAL
            })
            .backoff(Backoff::new(
                Duration::from_millis(20),
                Duration::from_millis(500),
                2.0,
            ))
            .build()?;
        let (shutdown, signal) = shutdown_channel();
        let eager = (dispatch == Dispatch::Eager).then(|| {
            (
                dispatcher.clone(),
                Arc::new(Mutex::new(RunStats::default())),
            )
        });
        let recorder = (dispatch == Dispatch::Handover).then(|| dispatcher.clone());
        let waker = dispatcher.waker();
        let dispatching = tokio::spawn(async move { dispatcher.run(signal).await });
        Ok(Ours {
            payments,
            verifier,
            outbox,
            tracker,
            deliveries: sb.deliveries.clone(),
            sink,
            shutdown,
            dispatching,
            eager,
            recorder,
            waker,
            _dir: dir,
            pg_db,
        })
    }

    /// One order, from checkout until its four jobs are delivered.
    pub(crate) async fn order(&self, order: &Order) -> Result<Phases> {
        let started = Instant::now();
        let total = Money::from_minor(order.total_minor(), Currency::USD);
        let request = CreatePayment::new(total)
            .description(format!("Order {}", order.id))
            .metadata("order_id", order.id.clone());
        let key = IdempotencyKey::derive(&order.id, "payment")?;
        let payment = self.payments.create_payment(&request, &key).await?;
        let confirmed = self
            .payments
            .confirm_payment(&payment.id, Some(CARD), &key.child("confirm")?)
            .await?;
        if confirmed.status != PaymentStatus::Succeeded {
            return Err(Error::provider(format!(
                "{} is {:?}",
                payment.id, confirmed.status
            )));
        }
        let checkout = started.elapsed();
        let delivery = self
            .deliveries
            .take(&payment.id)
            .ok_or_else(|| Error::provider(format!("no {SUCCEEDED} for {}", payment.id)))?;
        let event = self
            .verifier
            .verify(&delivery.payload, &delivery.signature)?;
        let pi = event
            .payment_intent()
            .ok_or_else(|| Error::provider("the event holds no payment intent"))?;
        let ev = OrderEvent {
            kind: OrderEventKind::Paid,
            event_id: event.id.clone(),
            order_id: order.id.clone(),
            customer_name: order.customer_name.clone(),
            customer_email: order.customer_email.clone(),
            items: order.items.clone(),
            total: pi.amount_received,
            amount: pi.amount_received,
            payment_id: pi.id.clone(),
            reason: None,
            occurred_at: event.created,
        };
        let payload = serde_json::to_value(&ev)
            .map_err(|e| Error::provider(format!("cannot encode a job payload: {e}")))?;
        let jobs = OrderEventKind::Paid
            .job_kinds()
            .iter()
            .map(|k| NewJob::new(*k, payload.clone()))
            .collect();
        let done = self
            .tracker
            .expect(&order.id, OrderEventKind::Paid.job_kinds().len());
        if let Some(dispatcher) = &self.recorder {
            // Wakes the run loop itself when a job was left pending.
            dispatcher.record_event(&event.id, jobs).await?;
        } else {
            self.outbox.record_event(&event.id, jobs).await?;
            self.waker.wake();
        }
        if let Some((dispatcher, stats)) = &self.eager {
            let (dispatcher, stats) = (dispatcher.clone(), stats.clone());
            tokio::spawn(async move {
                let run = dispatcher.run_once().await;
                let mut total = stats.lock().unwrap_or_else(PoisonError::into_inner);
                match run {
                    Ok(s) => *total += s,
                    Err(_) => total.store_errors += 1,
                }
            });
        }
        let recorded = started.elapsed();
        match tokio::time::timeout(ORDER_DEADLINE, done).await {
            Ok(Ok(())) => Ok(Phases {
                checkout,
                record: recorded - checkout,
                fanout: started.elapsed() - recorded,
            }),
            _ => Err(Error::timeout(format!(
                "the jobs of {} were not all delivered",
                order.id
            ))),
        }
    }

    /// Waits until the outbox has nothing pending or leased (the last `complete`s).
    pub(crate) async fn drain(&self) -> Result<()> {
        loop {
            let c = self.outbox.counts().await?;
            if c.pending == 0 && c.leased == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
        Ok(())
    }

    /// Drops every done job and event record, so the next batch starts from an empty outbox
    /// (`InMemoryOutbox` claims scan all jobs, done ones included).
    pub(crate) async fn purge(&self) -> Result<()> {
        let future = SystemTime::now() + Duration::from_secs(1);
        self.outbox.purge(future).await.map(drop)
    }

    /// Stops the dispatcher (after the deliveries in flight) and the sink; what the dispatcher
    /// did, eager runs included.
    pub(crate) async fn stop(self) -> Result<RunStats> {
        self.shutdown.trigger();
        let stats = self
            .dispatching
            .await
            .map_err(|e| Error::provider(format!("dispatcher task: {e}")))?;
        self.sink.shutdown().await?;
        let mut stats = stats;
        if let Some((_, eager)) = &self.eager {
            stats += *eager.lock().unwrap_or_else(PoisonError::into_inner);
        }
        if let Some(db) = self.pg_db {
            drop(self.outbox);
            let _ = db.drop_database().await;
        }
        Ok(stats)
    }
}
