//! The event side of a run: the outbox (SQLite, or Postgres with `DATABASE_URL`), webhook endpoint (or the real Stripe's event poller)
//! and the dispatchers delivering the jobs, started before checkout and stopped after the drain.
//!
//! Two dispatchers (lanes) over the one outbox, each claiming only its own kinds: the Sheets
//! rows, whose deliveries wait for the sink's append under the write quota (one a second), with
//! enough in flight that one append carries up to the sink's batch limit; and every other kind
//! (email, notification, metrics), which so never waits behind the rows. The intake records
//! each event through the second lane ([`Dispatcher::record_event`]): its jobs of that lane are
//! written already leased and handed to the handlers without a claim; the rows are claimed.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use integrations_core::resilience::Backoff;
use integrations_core::{Error, Result};
use integrations_outbox::{
    Dispatcher, DispatcherBuilder, RunStats, ShutdownTrigger, shutdown_channel,
};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::config::FlowConfig;
use super::intake::{Intake, WebhookServer, poll_stripe_events};
use super::jobs::{
    EMAIL, EmailJob, METRICS, MetricsJob, NOTIFY, NotifyJob, SHEETS_APPEND, SHEETS_UPDATE,
    SheetsJob,
};
use super::ledger::{Ledger, OrderMetrics};
use super::orders::OrderBook;
use super::outbox::FlowOutbox;
use super::providers::Services;

/// What the pipeline's parts share with the rest of the run.
#[derive(Debug, Clone)]
pub(super) struct Shared {
    pub(super) book: Arc<OrderBook>,
    pub(super) ledger: Arc<Ledger>,
    pub(super) metrics: Arc<OrderMetrics>,
}

/// The running pipeline.
#[derive(Debug)]
pub(super) struct Pipeline {
    pub(super) outbox: Arc<FlowOutbox>,
    pub(super) intake: Arc<Intake>,
    endpoint: WebhookServer,
    poller: Option<JoinHandle<()>>,
    stop_poll: watch::Sender<bool>,
    shutdown: ShutdownTrigger,
    /// One task per lane.
    dispatching: Vec<JoinHandle<RunStats>>,
}

impl Pipeline {
    /// Opens the outbox in `dir`, serves the webhook endpoint (registered with the Stripe
    /// sandbox, or a poller of the real Stripe's events from `since`), and starts dispatching.
    pub(super) async fn start(
        config: &FlowConfig,
        services: &Services,
        dir: &Path,
        since: i64,
        worker_id: String,
        shared: &Shared,
        first_start: bool,
    ) -> Result<Self> {
        let outbox = Arc::new(FlowOutbox::open(config.database.as_ref(), dir, first_start).await?);
        let intake = Arc::new(Intake::new(
            outbox.clone(),
            shared.book.clone(),
            services.verifier.clone(),
            config.max_attempts,
        ));
        let endpoint = WebhookServer::start(intake.clone()).await?;
        let (stop_poll, stop_rx) = watch::channel(false);
        let poller = match &services.stripe_sandbox {
            Some(sandbox) => {
                sandbox.add_webhook_endpoint(endpoint.url());
                None
            }
            None => Some(tokio::spawn(poll_stripe_events(
                services.stripe_client.clone(),
                intake.clone(),
                since,
                config.event_poll,
                stop_rx,
            ))),
        };

        let sheets = SheetsJob {
            sink: services.sheets_sink(),
            ledger: shared.ledger.clone(),
        };
        let email = EmailJob {
            email: services.email.clone(),
            templates: Arc::new(integrations_shop::order_templates()),
            from: services.from.clone(),
            ledger: shared.ledger.clone(),
            lookups: services.email_lookups.clone(),
        };
        let notify = NotifyJob {
            notifier: services.notifier.clone(),
            ledger: shared.ledger.clone(),
        };
        let metrics = MetricsJob {
            metrics: shared.metrics.clone(),
        };
        // Short backoffs: a job failed by the outage comes back within seconds, by when the
        // breaker has sent the email to the backup (or SendGrid is back).
        // Each provider-calling handler is declared with the policy its calls run under: the
        // build refuses a handler timeout that cannot cover its worst case (the email failover:
        // both providers' worst cases, one after the other).
        let policies = &services.job_policies;
        let lane = |worker: String, concurrency: usize| {
            Dispatcher::builder(outbox.clone())
                .worker_id(worker)
                .concurrency(concurrency)
                .lease(config.lease)
                .handler_timeout(config.handler_timeout())
                .poll_interval(Duration::from_millis(20))
                .backoff(Backoff::new(
                    Duration::from_millis(50),
                    Duration::from_secs(2),
                    2.0,
                ))
        };
        let rows: DispatcherBuilder =
            lane(format!("{worker_id}-sheets"), config.sheets_concurrency)
                .handler_with_policy(SHEETS_APPEND, sheets.clone(), &policies.sheets)
                .handler_with_policy(SHEETS_UPDATE, sheets, &policies.sheets);
        let rest = lane(worker_id, config.dispatch_concurrency)
            .handler_with_policy(EMAIL, email, &policies.email)
            .handler_with_policy(NOTIFY, notify, &policies.notify)
            .handler(METRICS, metrics);
        let lanes = [rows.build()?, rest.build()?];
        // The email, notification and metrics jobs of each event are handed to their lane as
        // the event is recorded (no claim); the rows, which wait for the sheet's quota and are
        // appended in batches, are claimed by theirs, woken on every record.
        let [rows, rest] = &lanes;
        intake.set_recorder(rest.clone());
        intake.set_waker(rows.waker());
        let (shutdown, signal) = shutdown_channel();
        let dispatching = lanes
            .into_iter()
            .map(|d| {
                let signal = signal.clone();
                tokio::spawn(async move { d.run(signal).await })
            })
            .collect();
        Ok(Pipeline {
            outbox,
            intake,
            endpoint,
            poller,
            stop_poll,
            shutdown,
            dispatching,
        })
    }

    /// Stops polling, lets the dispatchers finish the deliveries in flight, closes the endpoint,
    /// and returns the dispatchers' totals.
    pub(super) async fn stop(self) -> Result<RunStats> {
        let _ = self.stop_poll.send(true);
        if let Some(p) = self.poller {
            let _ = p.await;
        }
        self.shutdown.trigger();
        let mut stats = RunStats::default();
        for lane in self.dispatching {
            stats += lane
                .await
                .map_err(|e| Error::provider(format!("a dispatcher task failed: {e}")))?;
        }
        drop(self.endpoint);
        Ok(stats)
    }
}
