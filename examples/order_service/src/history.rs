//! Stored metrics time series behind `GET /api/monitoring/metrics?timeRange=1h|24h|7d`.
//!
//! Core's [`MetricsRegistry`] counts since the process started; a restart empties it. A
//! [`Recorder`] therefore samples it every [`SAMPLE_INTERVAL`] and writes, per integration, what
//! happened **since the previous sample** (calls, successes, failures, latency count and sum) with
//! the latency percentiles of the registry at that moment, plus the outbox's counts, into two
//! SQLite tables of the service's database ([`MetricsHistory`]). Rows older than [`RETENTION`]
//! are deleted at every sample. A window's answer sums the rows inside it, so it is the same
//! after a restart.
//!
//! Latency in a window: `avgMs` is exact (sum over count). `p50Ms` and `p99Ms` come from core's
//! histogram, which covers the process lifetime at each sample: the window's `p50Ms` is the
//! samples' p50 weighted by their calls, its `p99Ms` the largest sampled p99 — an approximation
//! that never hides a slow spell inside the window.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use integrations_core::metrics::MetricsRegistry;
use integrations_core::{Error, Result};
use integrations_outbox::OutboxStore;
use rusqlite::{Connection, params};
use serde_json::{Value, json};

use crate::orders::rfc3339;

/// How often the [`Recorder`] samples.
pub const SAMPLE_INTERVAL: Duration = Duration::from_secs(10);
/// How long points are kept.
pub const RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);

const STORE: &str = "metrics-history";

const SCHEMA: &str = "
    CREATE TABLE IF NOT EXISTS metric_points (
        ts_ms INTEGER NOT NULL,
        integration TEXT NOT NULL,
        calls INTEGER NOT NULL,
        successes INTEGER NOT NULL,
        failures INTEGER NOT NULL,
        latency_count INTEGER NOT NULL,
        latency_sum_ms REAL NOT NULL,
        p50_ms REAL NOT NULL,
        p99_ms REAL NOT NULL
    );
    CREATE INDEX IF NOT EXISTS metric_points_ts ON metric_points (ts_ms);
    CREATE TABLE IF NOT EXISTS outbox_points (
        ts_ms INTEGER NOT NULL,
        pending INTEGER NOT NULL,
        leased INTEGER NOT NULL,
        done INTEGER NOT NULL,
        dead INTEGER NOT NULL,
        events INTEGER NOT NULL
    );
    CREATE INDEX IF NOT EXISTS outbox_points_ts ON outbox_points (ts_ms);
";

/// A window of `GET /api/monitoring/metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeRange {
    /// The last hour, in 1-minute buckets.
    Hour,
    /// The last 24 hours, in 15-minute buckets.
    Day,
    /// The last 7 days, in 2-hour buckets.
    Week,
}

impl TimeRange {
    /// `1h`, `24h` or `7d`.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] naming `timeRange`.
    pub fn parse(raw: &str) -> Result<Self> {
        match raw {
            "1h" => Ok(TimeRange::Hour),
            "24h" => Ok(TimeRange::Day),
            "7d" => Ok(TimeRange::Week),
            _ => Err(Error::invalid_input("timeRange", "must be 1h, 24h or 7d")),
        }
    }

    /// As written in the query.
    pub const fn as_str(self) -> &'static str {
        match self {
            TimeRange::Hour => "1h",
            TimeRange::Day => "24h",
            TimeRange::Week => "7d",
        }
    }

    /// The window's length in milliseconds.
    pub const fn millis(self) -> i64 {
        match self {
            TimeRange::Hour => 3_600_000,
            TimeRange::Day => 86_400_000,
            TimeRange::Week => 7 * 86_400_000,
        }
    }

    /// The length of one point of the answer's series, in milliseconds.
    pub const fn bucket_millis(self) -> i64 {
        match self {
            TimeRange::Hour => 60_000,
            TimeRange::Day => 900_000,
            TimeRange::Week => 7_200_000,
        }
    }
}

/// The stored series (cheap to clone; one connection behind a mutex, used on the blocking pool).
#[derive(Clone)]
pub struct MetricsHistory {
    conn: Arc<Mutex<Connection>>,
}

impl fmt::Debug for MetricsHistory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MetricsHistory").finish_non_exhaustive()
    }
}

fn db_error(e: rusqlite::Error) -> Error {
    Error::provider(format!("metrics history: {e}"))
        .with_provider(STORE)
        .with_source(e)
}

/// One integration's activity between two samples.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Delta {
    /// Calls started.
    pub calls: u64,
    /// Calls that succeeded.
    pub successes: u64,
    /// Calls that failed.
    pub failures: u64,
    /// Latencies recorded.
    pub latency_count: u64,
    /// Their sum, in milliseconds.
    pub latency_sum_ms: f64,
    /// Core's p50 over its sliding window at the sample, in milliseconds.
    pub p50_ms: f64,
    /// Core's p99 over its sliding window at the sample, in milliseconds.
    pub p99_ms: f64,
}

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn to_u64(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

impl MetricsHistory {
    /// Opens (creating if needed) the tables in the SQLite file at `path`.
    ///
    /// # Errors
    /// [`Error::Provider`] if the file cannot be opened or migrated.
    pub async fn open(path: impl AsRef<Path>) -> Result<Self> {
        let p = path.as_ref().to_path_buf();
        let conn = tokio::task::spawn_blocking(move || -> Result<Connection> {
            let conn = Connection::open(&p).map_err(db_error)?;
            conn.busy_timeout(Duration::from_secs(5))
                .map_err(db_error)?;
            conn.pragma_update(None, "journal_mode", "WAL")
                .map_err(db_error)?;
            conn.execute_batch(SCHEMA).map_err(db_error)?;
            Ok(conn)
        })
        .await
        .map_err(|e| Error::provider(format!("metrics history open did not finish: {e}")))??;
        Ok(MetricsHistory {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    async fn call<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    {
        let conn = Arc::clone(&self.conn);
        tokio::task::spawn_blocking(move || {
            let mut guard = conn.lock().unwrap_or_else(PoisonError::into_inner);
            f(&mut guard)
        })
        .await
        .map_err(|e| Error::provider(format!("metrics history call did not finish: {e}")))?
    }

    /// Stores one sample taken at `ts_ms` (unix milliseconds) and deletes points older than
    /// [`RETENTION`] before it.
    ///
    /// # Errors
    /// [`Error::Provider`] from SQLite.
    pub async fn record(
        &self,
        ts_ms: i64,
        integrations: Vec<(String, Delta)>,
        outbox: Option<integrations_outbox::OutboxCounts>,
    ) -> Result<()> {
        self.call(move |conn| {
            let tx = conn.transaction().map_err(db_error)?;
            for (name, d) in &integrations {
                tx.execute(
                    "INSERT INTO metric_points (ts_ms, integration, calls, successes, failures,
                        latency_count, latency_sum_ms, p50_ms, p99_ms)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                    params![
                        ts_ms,
                        name,
                        to_i64(d.calls),
                        to_i64(d.successes),
                        to_i64(d.failures),
                        to_i64(d.latency_count),
                        d.latency_sum_ms,
                        d.p50_ms,
                        d.p99_ms
                    ],
                )
                .map_err(db_error)?;
            }
            if let Some(c) = outbox {
                tx.execute(
                    "INSERT INTO outbox_points (ts_ms, pending, leased, done, dead, events)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    params![
                        ts_ms,
                        to_i64(c.pending),
                        to_i64(c.leased),
                        to_i64(c.done),
                        to_i64(c.dead),
                        to_i64(c.events)
                    ],
                )
                .map_err(db_error)?;
            }
            let horizon = ts_ms.saturating_sub(i64::try_from(RETENTION.as_millis()).unwrap_or(0));
            tx.execute("DELETE FROM metric_points WHERE ts_ms < ?1", [horizon])
                .map_err(db_error)?;
            tx.execute("DELETE FROM outbox_points WHERE ts_ms < ?1", [horizon])
                .map_err(db_error)?;
            tx.commit().map_err(db_error)
        })
        .await
    }

    /// The answer of `GET /api/monitoring/metrics` for `range` ending at `now_ms`: every
    /// integration in `names` (zeros when it did nothing) and any other with points in the
    /// window, and the outbox. Points at or before `now_ms - range` are outside the window.
    ///
    /// # Errors
    /// [`Error::Provider`] from SQLite.
    pub async fn window(&self, range: TimeRange, now_ms: i64, names: Vec<String>) -> Result<Value> {
        let from = now_ms.saturating_sub(range.millis());
        let bucket = range.bucket_millis();
        self.call(move |conn| {
            let mut per: BTreeMap<String, (Totals, Vec<Value>)> = names
                .into_iter()
                .map(|n| (n, (Totals::default(), Vec::new())))
                .collect();
            let mut stmt = conn
                .prepare(
                    "SELECT integration, (ts_ms / ?3) * ?3 AS b, SUM(calls), SUM(successes),
                        SUM(failures), SUM(latency_count), SUM(latency_sum_ms),
                        SUM(p50_ms * latency_count), MAX(p99_ms)
                     FROM metric_points WHERE ts_ms > ?1 AND ts_ms <= ?2
                     GROUP BY integration, b ORDER BY integration, b",
                )
                .map_err(db_error)?;
            let rows = stmt
                .query_map(params![from, now_ms, bucket], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, i64>(1)?,
                        Totals {
                            calls: to_u64(r.get(2)?),
                            successes: to_u64(r.get(3)?),
                            failures: to_u64(r.get(4)?),
                            latency_count: to_u64(r.get(5)?),
                            latency_sum_ms: r.get(6)?,
                            p50_weighted: r.get(7)?,
                            p99_ms: r.get(8)?,
                        },
                    ))
                })
                .map_err(db_error)?;
            for row in rows {
                let (name, at, t) = row.map_err(db_error)?;
                let entry = per.entry(name).or_default();
                entry.0.add(&t);
                let mut point = t.json();
                point["at"] = Value::from(rfc3339(at));
                entry.1.push(point);
            }
            let integrations: Vec<Value> = per
                .into_iter()
                .map(|(name, (t, points))| {
                    let mut v = t.json();
                    v["name"] = Value::from(name);
                    v["points"] = Value::from(points);
                    v
                })
                .collect();

            let mut stmt = conn
                .prepare(
                    "SELECT (ts_ms / ?3) * ?3 AS b, MAX(pending), MAX(leased), MAX(done),
                        MAX(dead), MAX(events)
                     FROM outbox_points WHERE ts_ms > ?1 AND ts_ms <= ?2
                     GROUP BY b ORDER BY b",
                )
                .map_err(db_error)?;
            let points: Vec<Value> = stmt
                .query_map(params![from, now_ms, bucket], |r| {
                    Ok(json!({
                        "at": rfc3339(r.get(0)?),
                        "pending": r.get::<_, i64>(1)?,
                        "leased": r.get::<_, i64>(2)?,
                        "done": r.get::<_, i64>(3)?,
                        "dead": r.get::<_, i64>(4)?,
                        "events": r.get::<_, i64>(5)?,
                    }))
                })
                .map_err(db_error)?
                .collect::<rusqlite::Result<_>>()
                .map_err(db_error)?;
            let latest = conn
                .query_row(
                    "SELECT pending, leased, done, dead, events FROM outbox_points
                     WHERE ts_ms > ?1 AND ts_ms <= ?2 ORDER BY ts_ms DESC LIMIT 1",
                    params![from, now_ms],
                    |r| {
                        Ok(json!({
                            "pending": r.get::<_, i64>(0)?,
                            "leased": r.get::<_, i64>(1)?,
                            "done": r.get::<_, i64>(2)?,
                            "dead": r.get::<_, i64>(3)?,
                            "events": r.get::<_, i64>(4)?,
                        }))
                    },
                )
                .ok();
            Ok(json!({
                "timeRange": range.as_str(),
                "from": rfc3339(from),
                "to": rfc3339(now_ms),
                "bucketSeconds": bucket / 1000,
                "sampleIntervalSeconds": SAMPLE_INTERVAL.as_secs(),
                "integrations": integrations,
                "outbox": { "latest": latest, "points": points },
            }))
        })
        .await
    }
}

#[derive(Debug, Clone, Default)]
struct Totals {
    calls: u64,
    successes: u64,
    failures: u64,
    latency_count: u64,
    latency_sum_ms: f64,
    p50_weighted: f64,
    p99_ms: f64,
}

impl Totals {
    fn add(&mut self, o: &Totals) {
        self.calls += o.calls;
        self.successes += o.successes;
        self.failures += o.failures;
        self.latency_count += o.latency_count;
        self.latency_sum_ms += o.latency_sum_ms;
        self.p50_weighted += o.p50_weighted;
        self.p99_ms = self.p99_ms.max(o.p99_ms);
    }

    fn json(&self) -> Value {
        let per_call = |x: f64| {
            if self.latency_count == 0 {
                0.0
            } else {
                x / self.latency_count as f64
            }
        };
        let completed = self.successes + self.failures;
        json!({
            "calls": self.calls,
            "successes": self.successes,
            "errors": self.failures,
            "errorRate": if completed == 0 { 0.0 } else { self.failures as f64 / completed as f64 },
            "latency": {
                "count": self.latency_count,
                "avgMs": per_call(self.latency_sum_ms),
                "p50Ms": per_call(self.p50_weighted),
                "p99Ms": self.p99_ms,
            },
        })
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct Seen {
    calls: u64,
    successes: u64,
    failures: u64,
    latency_count: u64,
    latency_sum_ms: f64,
}

/// Samples a [`MetricsRegistry`] and an outbox into a [`MetricsHistory`].
pub struct Recorder {
    registry: MetricsRegistry,
    outbox: Option<Arc<dyn OutboxStore>>,
    history: MetricsHistory,
    seen: HashMap<String, Seen>,
}

impl fmt::Debug for Recorder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Recorder")
            .field("registry", &self.registry)
            .finish_non_exhaustive()
    }
}

impl Recorder {
    /// Samples `registry` (and `outbox`, when given) into `history`. The first sample counts
    /// everything the registry holds, which in a fresh process is what happened since start.
    pub fn new(
        registry: MetricsRegistry,
        outbox: Option<Arc<dyn OutboxStore>>,
        history: MetricsHistory,
    ) -> Self {
        Recorder {
            registry,
            outbox,
            history,
            seen: HashMap::new(),
        }
    }

    /// Takes one sample, stamped `ts_ms`: per integration, what changed since the previous
    /// sample (integrations that did nothing get no row), and the outbox's counts.
    ///
    /// # Errors
    /// The outbox's or SQLite's failures.
    pub async fn sample_at(&mut self, ts_ms: i64) -> Result<()> {
        let snapshot = self.registry.snapshot();
        let mut rows = Vec::new();
        for s in &snapshot.integrations {
            let failures: u64 = s.failures.values().sum();
            let now = Seen {
                calls: s.calls,
                successes: s.successes,
                failures,
                latency_count: s.latency_count,
                latency_sum_ms: s.latency_sum_ms,
            };
            let before = self.seen.insert(s.name.clone(), now).unwrap_or_default();
            // Counters only grow; if one shrank the registry was replaced: count it anew.
            let fresh = now.calls < before.calls || now.latency_count < before.latency_count;
            let before = if fresh { Seen::default() } else { before };
            let d = Delta {
                calls: now.calls.saturating_sub(before.calls),
                successes: now.successes.saturating_sub(before.successes),
                failures: now.failures.saturating_sub(before.failures),
                latency_count: now.latency_count.saturating_sub(before.latency_count),
                latency_sum_ms: (now.latency_sum_ms - before.latency_sum_ms).max(0.0),
                // Window quantiles are NaN when no call finished in the window; such a row has
                // no latency to weigh them by, so 0 stands in (the columns are NOT NULL).
                p50_ms: if s.p50_ms.is_nan() { 0.0 } else { s.p50_ms },
                p99_ms: if s.p99_ms.is_nan() { 0.0 } else { s.p99_ms },
            };
            if d.calls > 0 || d.successes > 0 || d.failures > 0 || d.latency_count > 0 {
                rows.push((s.name.clone(), d));
            }
        }
        let outbox = match &self.outbox {
            Some(o) => Some(o.counts().await?),
            None => None,
        };
        self.history.record(ts_ms, rows, outbox).await
    }

    /// Samples every `interval` until `stop` fires or is dropped, then takes a last sample.
    pub async fn run(mut self, interval: Duration, mut stop: tokio::sync::oneshot::Receiver<()>) {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticker.tick().await;
        loop {
            let last = tokio::select! {
                _ = ticker.tick() => false,
                _ = &mut stop => true,
            };
            if let Err(e) = self.sample_at(now_ms()).await {
                tracing::warn!(error = %e, "metrics sample not stored");
            }
            if last {
                break;
            }
        }
    }
}

/// Now, unix milliseconds.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
