//! A `tracing` layer that ships events to CloudWatch Logs without blocking the caller.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value};
use tokio::sync::{mpsc, oneshot};
use tracing::field::{Field, Visit};
use tracing::{Event, Instrument, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer};

use super::logs::{CloudWatchLogs, LogEvent};

tokio::task_local! {
    /// Set while the shipper runs, so its own HTTP events are not shipped (no feedback loop).
    static SHIPPING: ();
}

/// Settings of [`CloudWatchLogsLayer`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct LogShipperConfig {
    /// Events buffered between the layer and the shipper; when full, new events are dropped and
    /// counted (default 10,000).
    pub capacity: usize,
    /// Ship at least this often (default 5 s).
    pub flush_interval: Duration,
    /// Ship as soon as this many events are buffered (default 10,000).
    pub max_batch: usize,
    /// Least severe level shipped (default `INFO`).
    pub min_level: Level,
}

impl Default for LogShipperConfig {
    fn default() -> Self {
        LogShipperConfig {
            capacity: 10_000,
            flush_interval: Duration::from_secs(5),
            max_batch: 10_000,
            min_level: Level::INFO,
        }
    }
}

impl LogShipperConfig {
    /// Sets the buffer capacity.
    #[must_use]
    pub fn capacity(mut self, n: usize) -> Self {
        self.capacity = n.max(1);
        self
    }
    /// Sets the flush interval.
    #[must_use]
    pub fn flush_interval(mut self, d: Duration) -> Self {
        self.flush_interval = d;
        self
    }
    /// Sets the batch size that triggers a flush.
    #[must_use]
    pub fn max_batch(mut self, n: usize) -> Self {
        self.max_batch = n.max(1);
        self
    }
    /// Sets the least severe level shipped.
    #[must_use]
    pub fn min_level(mut self, l: Level) -> Self {
        self.min_level = l;
        self
    }
}

/// Counters shared by the layer and its shipper.
#[derive(Debug, Default)]
pub struct LogShipperStats {
    dropped: AtomicU64,
    shipped: AtomicU64,
    failed: AtomicU64,
}

impl LogShipperStats {
    /// Events dropped because the buffer was full (or the shipper gone).
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
    /// Events CloudWatch accepted.
    pub fn shipped(&self) -> u64 {
        self.shipped.load(Ordering::Relaxed)
    }
    /// Events lost because shipping failed or CloudWatch rejected them.
    pub fn failed(&self) -> u64 {
        self.failed.load(Ordering::Relaxed)
    }
}

enum Msg {
    Event(LogEvent),
    Flush(oneshot::Sender<()>),
}

/// A [`Layer`] that formats each event as one JSON line (`level`, `target`, `message` and the
/// event's fields; the event's time is the CloudWatch event timestamp) and hands it to a bounded
/// channel with `try_send`: logging never waits on the network. When the channel is full the
/// event is dropped and counted ([`LogShipperStats::dropped`]). The [`LogShipper`] task batches and ships the lines.
///
/// ```no_run
/// # async fn demo(config: integrations_aws::AwsConfig) {
/// use integrations_aws::cloudwatch::{CloudWatchLogs, CloudWatchLogsLayer, LogShipperConfig};
/// use tracing_subscriber::layer::SubscriberExt;
///
/// let logs = CloudWatchLogs::new(&config);
/// let (layer, shipper) = CloudWatchLogsLayer::new(logs, "shop", "api-1", LogShipperConfig::default());
/// let handle = tokio::spawn(shipper.run());
/// let subscriber = tracing_subscriber::registry().with(layer);
/// tracing::subscriber::set_global_default(subscriber).unwrap();
/// # drop(handle); }
/// ```
pub struct CloudWatchLogsLayer {
    tx: mpsc::Sender<Msg>,
    stats: Arc<LogShipperStats>,
    min_level: Level,
}

impl fmt::Debug for CloudWatchLogsLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CloudWatchLogsLayer")
            .field("stats", &self.stats)
            .field("min_level", &self.min_level)
            .finish_non_exhaustive()
    }
}

/// The background task of a [`CloudWatchLogsLayer`]: spawn [`LogShipper::run`].
pub struct LogShipper {
    rx: mpsc::Receiver<Msg>,
    logs: CloudWatchLogs,
    group: String,
    stream: String,
    config: LogShipperConfig,
    stats: Arc<LogShipperStats>,
}

impl fmt::Debug for LogShipper {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LogShipper")
            .field("group", &self.group)
            .field("stream", &self.stream)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// Flushes a running shipper on demand.
#[derive(Clone)]
pub struct LogShipperHandle {
    tx: mpsc::Sender<Msg>,
    stats: Arc<LogShipperStats>,
}

impl fmt::Debug for LogShipperHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LogShipperHandle")
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl LogShipperHandle {
    /// Ships everything buffered so far and waits for it. Returns `false` when the shipper is
    /// not running.
    pub async fn flush(&self) -> bool {
        let (ack, done) = oneshot::channel();
        self.tx.send(Msg::Flush(ack)).await.is_ok() && done.await.is_ok()
    }
    /// The counters.
    pub fn stats(&self) -> &LogShipperStats {
        &self.stats
    }
}

impl CloudWatchLogsLayer {
    /// A layer shipping to `group`/`stream` (created if missing) and its shipper task.
    pub fn new(
        logs: CloudWatchLogs,
        group: impl Into<String>,
        stream: impl Into<String>,
        config: LogShipperConfig,
    ) -> (Self, LogShipper) {
        let (tx, rx) = mpsc::channel(config.capacity.max(1));
        let stats = Arc::new(LogShipperStats::default());
        let layer = CloudWatchLogsLayer {
            tx,
            stats: stats.clone(),
            min_level: config.min_level,
        };
        let shipper = LogShipper {
            rx,
            logs,
            group: group.into(),
            stream: stream.into(),
            config,
            stats,
        };
        (layer, shipper)
    }

    /// A handle to flush the shipper and read the counters.
    pub fn handle(&self) -> LogShipperHandle {
        LogShipperHandle {
            tx: self.tx.clone(),
            stats: self.stats.clone(),
        }
    }
}

impl<S: Subscriber> Layer<S> for CloudWatchLogsLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        if event.metadata().level() > &self.min_level || SHIPPING.try_with(|()| ()).is_ok() {
            return;
        }
        let line = format_event(event, SystemTime::now());
        if self.tx.try_send(Msg::Event(line)).is_err() {
            self.stats.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl LogShipper {
    /// Ships until every layer and handle is dropped, then flushes what is left.
    pub async fn run(self) {
        SHIPPING
            .scope((), self.run_inner())
            .instrument(tracing::debug_span!("cloudwatch_logs_shipper"))
            .await;
    }

    async fn run_inner(mut self) {
        let mut ready = false;
        let mut buf: Vec<LogEvent> = Vec::new();
        let mut tick = tokio::time::interval(self.config.flush_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                msg = self.rx.recv() => match msg {
                    Some(Msg::Event(e)) => {
                        buf.push(e);
                        if buf.len() >= self.config.max_batch {
                            self.ship(&mut buf, &mut ready).await;
                        }
                    }
                    Some(Msg::Flush(ack)) => {
                        self.ship(&mut buf, &mut ready).await;
                        let _ = ack.send(());
                    }
                    None => {
                        self.ship(&mut buf, &mut ready).await;
                        return;
                    }
                },
                _ = tick.tick() => self.ship(&mut buf, &mut ready).await,
            }
        }
    }

    async fn ship(&self, buf: &mut Vec<LogEvent>, ready: &mut bool) {
        if buf.is_empty() {
            return;
        }
        let events = std::mem::take(buf);
        let n = events.len() as u64;
        if !*ready {
            match self.logs.ensure_stream(&self.group, &self.stream).await {
                Ok(()) => *ready = true,
                Err(e) => {
                    tracing::warn!(error = %e, "could not create the CloudWatch log stream; events dropped");
                    self.stats.failed.fetch_add(n, Ordering::Relaxed);
                    return;
                }
            }
        }
        match self
            .logs
            .put_log_events(&self.group, &self.stream, events)
            .await
        {
            Ok(o) => {
                self.stats
                    .shipped
                    .fetch_add((o.sent - o.rejected) as u64, Ordering::Relaxed);
                self.stats
                    .failed
                    .fetch_add(o.rejected as u64, Ordering::Relaxed);
            }
            Err(e) => {
                tracing::warn!(error = %e, events = n, "shipping logs to CloudWatch failed; events dropped");
                self.stats.failed.fetch_add(n, Ordering::Relaxed);
            }
        }
    }
}

/// One JSON line for `event`.
pub(crate) fn format_event(event: &Event<'_>, at: SystemTime) -> LogEvent {
    let meta = event.metadata();
    let mut fields = JsonVisitor(Map::new());
    event.record(&mut fields);
    let mut line = Map::new();
    line.insert("level".into(), Value::String(meta.level().to_string()));
    line.insert("target".into(), Value::String(meta.target().to_owned()));
    if let Some(m) = fields.0.remove("message") {
        line.insert("message".into(), m);
    }
    line.extend(fields.0);
    let ms = at
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    LogEvent::new(ms, Value::Object(line).to_string())
}

struct JsonVisitor(Map<String, Value>);

impl Visit for JsonVisitor {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0
            .insert(field.name().to_owned(), Value::String(format!("{value:?}")));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0
            .insert(field.name().to_owned(), Value::String(value.to_owned()));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().to_owned(), Value::from(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().to_owned(), Value::from(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().to_owned(), Value::Bool(value));
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(
            field.name().to_owned(),
            serde_json::Number::from_f64(value).map_or(Value::Null, Value::Number),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{AwsBuilder, Credentials};
    use tracing_subscriber::layer::SubscriberExt;

    fn layer(capacity: usize) -> (CloudWatchLogsLayer, LogShipper) {
        let cfg = AwsBuilder::new()
            .with_region("us-east-1")
            .with_credentials(Credentials::new("a", "b"))
            .with_base_url("http://127.0.0.1:9")
            .build()
            .unwrap();
        CloudWatchLogsLayer::new(
            CloudWatchLogs::new(&cfg),
            "g",
            "s",
            LogShipperConfig::default().capacity(capacity),
        )
    }

    #[test]
    fn a_full_buffer_drops_and_counts_without_blocking() {
        let (layer, mut shipper) = layer(2);
        let handle = layer.handle();
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(subscriber, || {
            for i in 0..5 {
                tracing::info!(i, "event");
            }
            tracing::debug!("below INFO: neither queued nor dropped");
        });
        assert_eq!(handle.stats().dropped(), 3);
        let Ok(Msg::Event(first)) = shipper.rx.try_recv() else {
            panic!("queued event expected")
        };
        let v: Value = serde_json::from_str(&first.message).unwrap();
        assert_eq!(v["message"], "event");
        assert_eq!(v["i"], 0);
        assert_eq!(v["level"], "INFO");
        assert_eq!(v["target"], module_path!());
    }

    #[tokio::test]
    async fn the_shippers_own_events_are_not_shipped() {
        let (layer, mut shipper) = layer(8);
        let subscriber = tracing_subscriber::registry().with(layer);
        let _g = tracing::subscriber::set_default(subscriber);
        SHIPPING
            .scope((), async { tracing::warn!("from inside the shipper") })
            .await;
        assert!(shipper.rx.try_recv().is_err());
        tracing::warn!("from the app");
        assert!(matches!(shipper.rx.try_recv(), Ok(Msg::Event(_))));
    }
}
