//! [`run`]: one batch of orders through the whole flow — or, with a state directory, the rest
//! of one after a crash.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use integrations_core::clock::unix_seconds;
use integrations_core::metrics::{MetricsRegistry, MetricsSnapshot};
use integrations_core::{Error, Result};
use integrations_outbox::{OutboxCounts, OutboxStore, RunStats};
use tokio::sync::Semaphore;
use tokio::task::{JoinHandle, JoinSet};

use super::audit;
use super::chaos;
use super::checkout::{RefundMade, checkout, partial_refund};
use super::config::FlowConfig;
use super::intake::Intake;
use super::invariants::{Facts, Redelivery, judge};
use super::ledger::{BusinessMetrics, Ledger, OrderMetrics, StandIns};
use super::measure::Meter;
use super::orders::{Order, OrderBook};
use super::outbox::FlowOutbox;
use super::pipeline::{Pipeline, Shared};
use super::progress::Progress;
use super::providers::{Backend, Services};
use super::report::{DeadLetterLine, OutageReport, Report};
use super::state::{self, LEDGER_FILE, RunState, SHOP_FILE, WorkDir};

fn io(what: &'static str) -> impl Fn(std::io::Error) -> Error {
    move |e| Error::unavailable(format!("{what}: {e}")).with_source(e)
}

/// Waits until the outbox has nothing pending or leased, or `timeout` passes without a job
/// finished; `true` if drained.
///
/// The timeout is on progress, not on the whole wait: delivery runs at the providers' pace (the
/// Sheets quota), so a fixed deadline failed every run large enough to outlast it.
///
/// Asks only what is left ([`FlowOutbox::unfinished`], on the pending and leased indexes):
/// [`OutboxStore::counts`] scans every job ever recorded, which made each round of this loop
/// cost more as the run grew.
async fn drain(
    outbox: &FlowOutbox,
    progress: &Progress,
    meter: Option<&Meter>,
    jobs_known: impl Fn() -> u64,
    timeout: Duration,
) -> bool {
    let mut deadline = Instant::now() + timeout;
    let mut left = u64::MAX;
    loop {
        if let Ok((pending, leased)) = outbox.unfinished().await {
            let known = jobs_known();
            progress.jobs(known.saturating_sub(pending + leased), known, "delivering");
            if let Some(m) = meter {
                m.delivering(pending + leased);
            }
            if pending == 0 && leased == 0 {
                return true;
            }
            if pending + leased < left {
                left = pending + leased;
                deadline = Instant::now() + timeout;
            }
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// A run whose services are up: [`Flow::start`], look at [`Flow::backends`], then [`Flow::run`].
#[derive(Debug)]
pub struct Flow {
    config: FlowConfig,
    started: Instant,
    run: RunState,
    dir: WorkDir,
    registry: MetricsRegistry,
    services: Services,
}

/// Runs `config.orders` orders through the flow and reports what happened: [`Flow::start`] then
/// [`Flow::run`].
///
/// # Errors
/// As [`Flow::start`] and [`Flow::run`].
pub async fn run(config: FlowConfig) -> Result<Report> {
    Flow::start(config).await?.run().await
}

impl Flow {
    /// Opens the run's directory — a temporary one, or [`FlowConfig::state_dir`], resuming the
    /// run kept there — and starts the sandboxes (or builds the real clients).
    ///
    /// # Errors
    /// A configuration refused (a live Stripe key, a real email provider without a sender or
    /// inbox, a chaos fault for a real service, a state directory holding another run, …); a
    /// port or directory that cannot be opened.
    pub async fn start(config: FlowConfig) -> Result<Flow> {
        let started = Instant::now();
        let now = unix_seconds(SystemTime::now());
        let (dir, run) = match &config.state_dir {
            Some(path) => {
                let run = state::open_run(path, config.run_id.as_deref(), config.orders, now)?;
                (WorkDir::State(path.clone()), run)
            }
            None => {
                let run_id = match &config.run_id {
                    Some(id) => {
                        super::config::check_run_id(id)
                            .map_err(|m| Error::invalid_input("run_id", m))?;
                        id.clone()
                    }
                    None => state::fresh_run_id(),
                };
                let run = RunState {
                    run_id,
                    since: now - 5,
                    orders: config.orders,
                    starts: 1,
                };
                (WorkDir::temp()?, run)
            }
        };
        let registry = MetricsRegistry::new();
        let services = Services::start(&config, &registry, dir.path()).await?;
        chaos::check(&config.chaos, &services)?;
        if run.starts > 1 {
            let in_process: Vec<&str> = [
                ("Stripe", services.stripe_sandbox.is_some()),
                ("SendGrid", services.sendgrid_sandbox.is_some()),
                ("Google Sheets", services.sheets_sandbox.is_some()),
            ]
            .into_iter()
            .filter_map(|(name, here)| here.then_some(name))
            .collect();
            if !in_process.is_empty() {
                return Err(Error::configuration(
                    "state_dir",
                    format!(
                        "run {} was started before, but {} ran in that process and died with it: \
                         resume only against services that outlive the process (STRIPE_API_BASE, \
                         SENDGRID_API_BASE, GOOGLE_SHEETS_BASE_URL with their credentials)",
                        run.run_id,
                        in_process.join(", ")
                    ),
                ));
            }
        }
        Ok(Flow {
            config,
            started,
            run,
            dir,
            registry,
            services,
        })
    }

    /// Which implementation serves each role.
    pub fn backends(&self) -> &[Backend] {
        &self.services.backends
    }

    /// The run: its id, and how many times it was started (more than once: resumed from its
    /// state directory).
    pub fn run_state(&self) -> &RunState {
        &self.run
    }

    /// Pushes the orders through and reports.
    ///
    /// The temporary directory (outbox database, notifications, metrics) is removed at the end
    /// unless [`FlowConfig::keep_files`] is set. Needs a multi-threaded tokio runtime: the
    /// dispatcher runs concurrently with checkout.
    ///
    /// With a state directory, whatever an earlier start of the run finished is not done again:
    /// orders paid or declined are skipped (the others go through checkout again under the same
    /// idempotency keys), the outbox's jobs carry on (those the dead process held once their
    /// lease expires), Stripe's events are read again and found recorded, the refund is made on
    /// the order chosen before (Stripe replays it), and the report covers the whole run.
    ///
    /// # Errors
    /// Only for a run that could not finish: the outbox store failing, a file that cannot be
    /// written. Broken invariants are not errors: see [`Report::ok`].
    pub async fn run(self) -> Result<Report> {
        let Flow {
            config,
            started,
            run,
            dir,
            registry,
            services,
        } = self;
        let (run_id, since) = (run.run_id.clone(), run.since);
        let shared = open_shared(&dir, services.stand_ins())?;
        let book = &shared.book;
        let pipeline = Pipeline::start(
            &config,
            &services,
            dir.path(),
            since,
            format!("order-flow-{run_id}-{}", std::process::id()),
            &shared,
            run.starts == 1,
        )
        .await?;
        let intake = pipeline.intake.clone();
        let outbox = pipeline.outbox.clone();

        // Checkout, concurrently; the faults go in on the way.
        let progress = Progress::new(config.orders, config.progress.clone());
        let meter = config
            .measure
            .map(|slices| Arc::new(Meter::new(config.orders, slices)));
        let ticker = config
            .progress
            .is_some()
            .then(|| spawn_ticker(outbox.clone(), intake.clone(), progress.clone()));
        let checkouts =
            checkout_all(&config, &services, book, &progress, meter.as_ref(), &run_id).await?;

        // One partial refund, on the last paid order (the one chosen by an earlier start, if any).
        let (refund, refund_error) = refund_first_paid(&services, book).await;
        let refunded_order = refund.as_ref().map(|r| r.order_id.clone());

        // Every event in; then one delivered again.
        wait_for_events(&config, &services, &intake, book, refund.is_some()).await?;
        let redelivered = redeliver(&services, &intake, refunded_order.as_deref()).await;

        let known = || intake.jobs_known();
        let drained = drain(
            &outbox,
            &progress,
            meter.as_deref(),
            known,
            config.drain_timeout,
        )
        .await;
        if let Some(t) = ticker {
            t.abort();
        }
        let dispatch = pipeline.stop().await?;
        if let Err(e) = services.sheets.shutdown().await {
            tracing::warn!(error = %e, "sheets sink did not flush cleanly");
        }
        progress.finish();

        let mut report = report(Ended {
            config,
            started,
            run,
            dir,
            registry,
            services,
            shared,
            outbox,
            intake,
            checkouts,
            refund,
            refund_error,
            redelivered,
            drained,
            dispatch,
        })
        .await?;
        if let Some(meter) = meter {
            meter.finish();
            report.slices = meter.slices();
        }
        Ok(report)
    }
}

/// The stores of the run's orders, deliveries and counters: journaled in the state directory,
/// or in memory. The ledger keeps per order only what stands in for a provider that cannot be
/// asked (`stand_ins`).
fn open_shared(dir: &WorkDir, stand_ins: StandIns) -> Result<Shared> {
    let d = dir.path();
    // The orders and the counted jobs are in the shop's database in either case: kept in
    // memory they grew with the run. The order book opens the file first (WAL mode).
    let book = Arc::new(OrderBook::open(d.join(SHOP_FILE))?);
    let metrics = Arc::new(OrderMetrics::open(d.join(SHOP_FILE))?);
    let ledger = if dir.is_state() {
        Ledger::open(d.join(LEDGER_FILE))?
    } else {
        Ledger::new()
    };
    Ok(Shared {
        book,
        ledger: Arc::new(ledger.standing_in_for(stand_ins)),
        metrics,
    })
}

/// Shows the delivery progress every 100 ms until aborted.
fn spawn_ticker(
    outbox: Arc<FlowOutbox>,
    intake: Arc<Intake>,
    progress: Progress,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            if let Ok((pending, leased)) = outbox.unfinished().await {
                let known = intake.jobs_known();
                progress.jobs(known.saturating_sub(pending + leased), known, "delivering");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
}

/// What checkout did besides the orders: the faults injected on the way, and how many orders an
/// earlier start had finished.
struct Checkouts {
    stripe_faults: Vec<String>,
    injected: Vec<chaos::Injected>,
    resumed_orders: usize,
}

/// Every order of the run through checkout, `config.checkout_concurrency` at a time, injecting
/// the configured faults as it goes; orders an earlier start finished are skipped.
async fn checkout_all(
    config: &FlowConfig,
    services: &Services,
    book: &Arc<OrderBook>,
    progress: &Progress,
    meter: Option<&Arc<Meter>>,
    run_id: &str,
) -> Result<Checkouts> {
    let permits = Arc::new(Semaphore::new(config.checkout_concurrency));
    let mut checkouts = JoinSet::new();
    let mut stripe_faults = Vec::new();
    let mut injected = Vec::new();
    let mut resumed_orders = 0;
    for n in 0..config.orders {
        let permit = permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| Error::unavailable("checkout permits closed"))?;
        inject_faults(n, config, services, &mut stripe_faults);
        for (i, f) in config.chaos.iter().enumerate() {
            if f.after_orders == n {
                injected.push(chaos::inject(services, i, *f));
            }
        }
        let order = Order::sample(run_id, n, services.recipient.as_deref());
        if let Some(done) = book.get(&order.id)?.filter(|r| r.state.is_final()) {
            resumed_orders += 1;
            progress.order_done(&done.state.to_string());
            if let Some(m) = meter {
                m.order_done();
            }
            continue;
        }
        let (payments, book, progress, meter) = (
            services.payment_provider(),
            book.clone(),
            progress.clone(),
            meter.cloned(),
        );
        // Reap the checkouts already finished: a JoinSet keeps each finished task (its
        // future's whole allocation) until it is joined, which grew the run by the order.
        while checkouts.try_join_next().is_some() {}
        checkouts.spawn(async move {
            let state = checkout(payments.as_ref(), &book, order).await;
            progress.order_done(&state.to_string());
            if let Some(m) = meter {
                m.order_done();
            }
            drop(permit);
        });
    }
    while checkouts.join_next().await.is_some() {}
    Ok(Checkouts {
        stripe_faults,
        injected,
        resumed_orders,
    })
}

/// One partial refund, on the last paid order (the one chosen by an earlier start, if any);
/// or why there is none.
async fn refund_first_paid(
    services: &Services,
    book: &OrderBook,
) -> (Option<RefundMade>, Option<String>) {
    // The last paid order, not the first: its payment event is redelivered afterwards, and a
    // sandbox keeps only its latest events (`event_retention`), which the first order's may
    // have left in a long run.
    let last_paid = match book.last(|r| r.state.is_paid()) {
        Ok(last) => last.map(|r| r.order.id),
        Err(e) => return (None, Some(format!("the orders cannot be read: {e}"))),
    };
    match book.refund_target(last_paid) {
        Ok(Some(id)) => match partial_refund(services.payments.as_ref(), book, &id).await {
            Ok(r) => (Some(r), None),
            Err(e) => (None, Some(e.to_string())),
        },
        Ok(None) => (None, Some("no paid order to refund".to_owned())),
        Err(e) => (
            None,
            Some(format!("the refund's order cannot be recorded: {e}")),
        ),
    }
}

/// Waits (flushing the Stripe sandbox's webhooks) until the intake knows every payment event and
/// the refund's, or `config.drain_timeout` passes without a new one.
///
/// # Errors
/// The order store's read error.
async fn wait_for_events(
    config: &FlowConfig,
    services: &Services,
    intake: &Intake,
    book: &OrderBook,
    refunded: bool,
) -> Result<()> {
    // Counted once: checkout and the refund are over, so the orders owed an event no longer
    // change. A store that cannot be read ends the run without a report (`Err`) rather than
    // waiting for nothing and misreporting the missing events.
    let expected_events = book.paying()? + u64::from(refunded);
    // As the drain: the timeout runs from the last event that came in.
    let mut wait_events = Instant::now() + config.drain_timeout;
    let mut known = intake.events_known();
    while known < expected_events && Instant::now() < wait_events {
        if let Some(sandbox) = &services.stripe_sandbox {
            sandbox.flush_webhooks().await;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        let now_known = intake.events_known();
        if now_known > known {
            known = now_known;
            wait_events = Instant::now() + config.drain_timeout;
        }
    }
    Ok(())
}

/// What the run's phases left, for the report.
struct Ended {
    config: FlowConfig,
    started: Instant,
    run: RunState,
    dir: WorkDir,
    registry: MetricsRegistry,
    services: Services,
    shared: Shared,
    outbox: Arc<FlowOutbox>,
    intake: Arc<Intake>,
    checkouts: Checkouts,
    refund: Option<RefundMade>,
    refund_error: Option<String>,
    redelivered: Option<Redelivery>,
    drained: bool,
    dispatch: RunStats,
}

/// The dead letters, as the report lists them (at most 100).
async fn dead_letter_lines(outbox: &FlowOutbox) -> Result<Vec<DeadLetterLine>> {
    Ok(outbox
        .dead_letters(100)
        .await?
        .into_iter()
        .map(|d| DeadLetterLine {
            job_id: d.job.id.to_string(),
            kind: d.job.kind,
            event_id: d.job.event_id,
            attempts: d.job.attempt,
            error: format!("{}: {}", d.error.kind, d.error.message),
        })
        .collect())
}

/// How many orders ended in each state.
///
/// # Errors
/// The order store's read error.
fn state_counts(book: &OrderBook) -> Result<BTreeMap<String, usize>> {
    let mut states = BTreeMap::new();
    book.for_each(&mut |r| *states.entry(r.state.to_string()).or_insert(0) += 1)?;
    Ok(states)
}

/// Writes the run's metrics (the registry's and the shop's counters) to `metrics.prom`.
async fn write_metrics(
    dir: &WorkDir,
    registry: &MetricsRegistry,
    business: &BusinessMetrics,
) -> Result<()> {
    let prometheus = format!(
        "{}{}",
        registry.render_prometheus(),
        business.render_prometheus()
    );
    tokio::fs::write(dir.path().join("metrics.prom"), prometheus)
        .await
        .map_err(io("cannot write metrics.prom"))
}

/// How many emails each provider served, and the SendGrid outage's effect (when one was injected).
fn email_report(
    config: &FlowConfig,
    services: &Services,
    snapshot: &MetricsSnapshot,
) -> (Vec<(String, u64)>, Option<OutageReport>) {
    let email_served: Vec<(String, u64)> = services
        .email
        .providers()
        .iter()
        .map(|p| p.name().to_owned())
        .zip(services.email.served_counts())
        .collect();
    let outage = config
        .outage
        .filter(|_| services.sendgrid_sandbox.is_some())
        .map(|outage| OutageReport {
            outage,
            short_circuits: snapshot
                .get(integrations_sendgrid::PROVIDER)
                .map_or(0, |s| s.short_circuits),
            served_by_backup: email_served.get(1).map_or(0, |(_, n)| *n),
        });
    (email_served, outage)
}

/// Audits the providers, judges the invariants and writes the report.
async fn report(e: Ended) -> Result<Report> {
    let Ended {
        config,
        started,
        run,
        dir,
        registry,
        services,
        shared,
        outbox,
        intake,
        checkouts,
        refund,
        refund_error,
        redelivered,
        drained,
        dispatch,
    } = e;
    let (book, since) = (&shared.book, run.since);
    let chaos = chaos::reports(&config.chaos, &checkouts.injected, &services);
    let outbox_counts: OutboxCounts = outbox.counts().await?;
    let dead_letters = dead_letter_lines(&outbox).await?;
    let snapshot = registry.snapshot();
    let business = shared.metrics.snapshot();
    write_metrics(&dir, &registry, &business).await?;
    let payments = audit::payments(&services, book, since).await?;
    let evidence = audit::evidence(&services, &shared.ledger, book).await?;
    let intake_stats = intake.stats();
    let invariants = judge(&Facts {
        orders: book.as_ref(),
        evidence: &evidence,
        payments: &payments,
        outbox: outbox_counts,
        drained,
        intake: &intake_stats,
        business: &business,
        refund: refund.as_ref(),
        redelivered: redelivered.as_ref(),
        email_duplicates_allowed: chaos::lost_email_answers(&chaos),
    })?;
    let states = state_counts(book)?;
    let duplicate_emails = evidence.duplicate_emails();
    drop(evidence);
    let (email_served, outage) = email_report(&config, &services, &snapshot);
    let state_dir = dir.is_state().then(|| dir.path().to_path_buf());
    let files = dir.kept(config.keep_files);
    Ok(Report {
        run_id: run.run_id,
        start: run.starts,
        state_dir,
        resumed_orders: checkouts.resumed_orders,
        orders: config.orders,
        elapsed: started.elapsed(),
        backends: services.backends.clone(),
        states,
        integrations: snapshot.integrations,
        email_served,
        outbox: outbox_counts,
        dispatch,
        dead_letters,
        intake: intake_stats,
        payments,
        refund,
        refund_error,
        redelivered,
        outage,
        stripe_faults: checkouts.stripe_faults,
        chaos,
        duplicate_emails,
        business,
        files,
        invariants,
        slices: Vec::new(),
    })
}

/// Injects the configured faults as checkout reaches order `n`: the SendGrid outage, and (half
/// and three quarters through) a Stripe request processed but its answer lost, then two 500s.
fn inject_faults(n: usize, config: &FlowConfig, services: &Services, log: &mut Vec<String>) {
    if let (Some(outage), Some(sg)) = (config.outage, &services.sendgrid_sandbox)
        && n == outage.after_orders
    {
        sg.fail_next(
            outage.failed_requests,
            integrations_sendgrid::sandbox::Fault::ServerError,
        );
        tracing::warn!(
            requests = outage.failed_requests,
            "SendGrid outage injected"
        );
    }
    let Some(stripe) = services
        .stripe_sandbox
        .as_ref()
        .filter(|_| config.stripe_faults)
    else {
        return;
    };
    use integrations_stripe::sandbox::Fault;
    if n == config.orders / 2 {
        stripe.fail_next(1, Fault::DropAfterAccept);
        log.push(format!(
            "at order {n}: one request processed, then its connection dropped without an answer"
        ));
    } else if n == config.orders * 3 / 4 {
        stripe.fail_next(2, Fault::ServerError);
        log.push(format!("at order {n}: two requests answered 500"));
    }
}

/// Delivers the `payment_intent.succeeded` event of `order_id` a second time: the sandbox resends
/// it, signed anew; with the real Stripe it is fetched again and handed to the intake.
async fn redeliver(
    services: &Services,
    intake: &Intake,
    order_id: Option<&str>,
) -> Option<Redelivery> {
    let order_id = order_id?;
    let event_type = "payment_intent.succeeded";
    let event_id = intake.first_event_of(order_id, event_type)?;
    let before = intake.duplicates();
    match &services.stripe_sandbox {
        Some(sandbox) => {
            if !sandbox.resend_event(&event_id) {
                return None;
            }
            sandbox.flush_webhooks().await;
        }
        None => {
            let event = services
                .stripe_client
                .retrieve_event(&event_id)
                .await
                .ok()?;
            intake.handle_fetched(&event).await.ok()?;
        }
    }
    if intake.duplicates() == before {
        tracing::warn!(event = %event_id, "the redelivered event was not seen as a duplicate");
    }
    Some(Redelivery {
        event_id,
        event_type: event_type.to_owned(),
        order_id: order_id.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::super::state::OLD_FILES;
    use super::*;

    const ALL: StandIns = StandIns::ALL;

    #[test]
    fn a_state_directory_of_an_earlier_version_is_refused_before_anything_is_written() {
        for old in OLD_FILES {
            let dir = tempfile::tempdir().unwrap();
            let first = state::open_run(dir.path(), Some("r1"), 10, 1_000).unwrap();
            std::fs::write(dir.path().join(old), "{}\n").unwrap();
            let run_json = std::fs::read(dir.path().join(state::RUN_FILE)).unwrap();
            let e = state::open_run(dir.path(), Some("r1"), 10, 2_000).unwrap_err();
            assert!(e.to_string().contains(old), "{e}");
            assert_eq!(
                std::fs::read(dir.path().join(state::RUN_FILE)).unwrap(),
                run_json,
                "the start is not counted"
            );
            assert_eq!(first.starts, 1);
            assert!(
                !dir.path().join(SHOP_FILE).exists(),
                "nothing made beside it"
            );
        }
    }

    #[test]
    fn the_order_book_and_the_counters_write_the_shop_database_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let shared = open_shared(&WorkDir::State(dir.path().to_path_buf()), ALL).unwrap();
        let paid = super::super::ledger::BusinessEvent::Paid;
        std::thread::scope(|s| {
            s.spawn(|| {
                for n in 0..1000 {
                    let order = Order::sample("r", n, None);
                    let id = order.id.clone();
                    shared.book.insert(order).expect("no SQLITE_BUSY");
                    shared
                        .book
                        .payment_created(&id, &format!("pi_{n}"))
                        .unwrap();
                }
            });
            s.spawn(|| {
                for n in 0..1000 {
                    let key = format!("evt_{n}/metrics");
                    assert!(
                        shared
                            .metrics
                            .record(&key, paid, "USD", 1)
                            .expect("no SQLITE_BUSY")
                    );
                }
            });
        });
        assert_eq!(shared.book.paying().unwrap(), 1000);
        assert_eq!(shared.metrics.snapshot().orders_paid, 1000);
    }

    #[test]
    fn orders_and_counted_jobs_share_the_shop_database_across_starts() {
        let dir = tempfile::tempdir().unwrap();
        let state = WorkDir::State(dir.path().to_path_buf());
        let order = Order::sample("r", 1, None);
        {
            let shared = open_shared(&state, ALL).unwrap();
            shared.book.insert(order.clone()).unwrap();
            let paid = super::super::ledger::BusinessEvent::Paid;
            assert!(
                shared
                    .metrics
                    .record("evt_1/metrics", paid, "USD", 10)
                    .unwrap()
            );
        }
        let shared = open_shared(&state, ALL).unwrap();
        assert!(shared.book.contains(&order.id).unwrap());
        assert_eq!(shared.metrics.snapshot().orders_paid, 1);
        assert!(dir.path().join(SHOP_FILE).exists());
    }
}
