//! Stored metrics time series behind `GET /api/monitoring/metrics?timeRange=1h|24h|7d`.
//!
//! Core's [`MetricsRegistry`](integrations_core::metrics::MetricsRegistry) counts since the
//! process started; a restart empties it. The dashboard's sampler
//! ([`integrations_dashboard::Sampler`]) turns it into per-interval samples (calls, successes,
//! failures, latency count and sum, the registry's percentiles at that moment, the outbox's
//! counts); [`persist`] writes each sample the [`Dashboard`](integrations_dashboard::Dashboard)
//! takes into two tables of the service's database ([`MetricsHistory`]): its SQLite file, or its
//! Postgres database when it runs on one (so the service needs no second database). The queries
//! are written once, in the dialect both accept (`CAST … AS BIGINT`, integer division), with
//! Postgres's `$n` placeholders turned into SQLite's `?n`. Rows older than
//! [`RETENTION`] are deleted at every sample. A window's answer sums the rows inside it, so it is
//! the same after a restart; the dashboard's own charts cover the last hour, in memory.
//!
//! Latency in a window: `avgMs` is exact (sum over count). `p50Ms` and `p99Ms` come from core's
//! histogram at each sample: the window's `p50Ms` is the samples' p50 weighted by their calls,
//! its `p99Ms` the largest sampled p99 — an approximation that never hides a slow spell inside
//! the window. An interval whose percentile is unknown (`NaN`) stores 0 for it.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use integrations_core::{Error, Result};
use integrations_dashboard::Sample;
use integrations_outbox::postgres::sqlx::{self, PgPool, Row as _};
use integrations_outbox::rusqlite::{self, Connection, params_from_iter};
use serde_json::{Value, json};

use crate::orders::rfc3339;
use crate::schema;

/// How often the service samples its metrics by default.
pub const SAMPLE_INTERVAL: Duration = Duration::from_secs(10);
/// How long points are kept.
pub const RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);

const STORE: &str = "metrics-history";

/// Key of the advisory lock held while migrating the history tables on Postgres ("metricsh").
const MIGRATION_LOCK: i64 = 0x6d65_7472_6963_7368;

/// SQLite's tables. The first migration creates them only if missing: files from before the
/// version table have them already.
const SQLITE_MIGRATIONS: &[&str] = &["
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
"];

/// Postgres's tables (the same columns).
const PG_MIGRATIONS: &[&str] = &["
    CREATE TABLE metric_points (
        ts_ms bigint NOT NULL,
        integration text NOT NULL,
        calls bigint NOT NULL,
        successes bigint NOT NULL,
        failures bigint NOT NULL,
        latency_count bigint NOT NULL,
        latency_sum_ms double precision NOT NULL,
        p50_ms double precision NOT NULL,
        p99_ms double precision NOT NULL
    );
    CREATE INDEX metric_points_ts ON metric_points (ts_ms);
    CREATE TABLE outbox_points (
        ts_ms bigint NOT NULL,
        pending bigint NOT NULL,
        leased bigint NOT NULL,
        done bigint NOT NULL,
        dead bigint NOT NULL,
        events bigint NOT NULL
    );
    CREATE INDEX outbox_points_ts ON outbox_points (ts_ms);
"];

const INSERT_METRIC: &str = "INSERT INTO metric_points (ts_ms, integration, calls, successes,
    failures, latency_count, latency_sum_ms, p50_ms, p99_ms)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";
const INSERT_OUTBOX: &str = "INSERT INTO outbox_points (ts_ms, pending, leased, done, dead, events)
    VALUES ($1, $2, $3, $4, $5, $6)";
const DELETE_METRICS: &str = "DELETE FROM metric_points WHERE ts_ms < $1";
const DELETE_OUTBOX: &str = "DELETE FROM outbox_points WHERE ts_ms < $1";
/// Per integration and bucket: calls, successes, failures, latency count (summed), latency sum,
/// p50 weighted by calls, largest p99. `$1` < ts ≤ `$2`, buckets of `$3` ms.
const WINDOW_METRICS: &str = "SELECT integration, (ts_ms / $3) * $3 AS b,
        CAST(SUM(calls) AS BIGINT), CAST(SUM(successes) AS BIGINT),
        CAST(SUM(failures) AS BIGINT), CAST(SUM(latency_count) AS BIGINT),
        CAST(SUM(latency_sum_ms) AS DOUBLE PRECISION),
        CAST(SUM(p50_ms * latency_count) AS DOUBLE PRECISION),
        CAST(MAX(p99_ms) AS DOUBLE PRECISION)
    FROM metric_points WHERE ts_ms > $1 AND ts_ms <= $2
    GROUP BY integration, b ORDER BY integration, b";
/// The outbox's largest counts per bucket.
const WINDOW_OUTBOX: &str = "SELECT (ts_ms / $3) * $3 AS b, MAX(pending), MAX(leased), MAX(done),
        MAX(dead), MAX(events)
    FROM outbox_points WHERE ts_ms > $1 AND ts_ms <= $2
    GROUP BY b ORDER BY b";
/// The outbox's latest counts in the window.
const LATEST_OUTBOX: &str = "SELECT pending, leased, done, dead, events FROM outbox_points
    WHERE ts_ms > $1 AND ts_ms <= $2 ORDER BY ts_ms DESC LIMIT 1";

/// A query in SQLite's placeholders.
fn sqlite_sql(sql: &str) -> String {
    sql.replace('$', "?")
}

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

/// The stored series (cheap to clone): in SQLite (one connection behind a mutex, used on the
/// blocking pool) or in Postgres (a pool).
#[derive(Clone)]
pub struct MetricsHistory {
    backend: Backend,
}

#[derive(Clone)]
enum Backend {
    Sqlite(Arc<Mutex<Connection>>),
    Postgres(PgPool),
}

impl fmt::Debug for MetricsHistory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let backend = match self.backend {
            Backend::Sqlite(_) => "sqlite",
            Backend::Postgres(_) => "postgres",
        };
        f.debug_struct("MetricsHistory")
            .field("backend", &backend)
            .finish_non_exhaustive()
    }
}

fn db_error(e: rusqlite::Error) -> Error {
    Error::provider(format!("metrics history: {e}"))
        .with_provider(STORE)
        .with_source(e)
}

fn pg_error(e: sqlx::Error) -> Error {
    let err = match &e {
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed => {
            Error::unavailable(format!("metrics history: {e}"))
        }
        _ => Error::provider(format!("metrics history: {e}")),
    };
    err.with_provider(STORE).with_source(e)
}

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn to_u64(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

/// One sample as rows: per integration `(name, [calls, successes, failures, latency count],
/// [latency sum, p50, p99])`, and the outbox's counts.
type SampleRows = (Vec<(String, [i64; 4], [f64; 3])>, Option<[i64; 5]>);

fn sample_rows(sample: &Sample) -> SampleRows {
    let rows = sample
        .integrations
        .iter()
        .map(|p| {
            (
                p.name.clone(),
                [p.calls, p.successes, p.failures, p.latency_count].map(to_i64),
                [
                    p.latency_sum_ms,
                    p.p50().unwrap_or(0.0),
                    p.p99().unwrap_or(0.0),
                ],
            )
        })
        .collect();
    let outbox = sample
        .outbox
        .map(|c| [c.pending, c.leased, c.done, c.dead, c.events].map(to_i64));
    (rows, outbox)
}

/// What a window's queries read, before it is shaped into the answer.
#[derive(Debug, Default)]
struct WindowRows {
    /// `(integration, bucket start, totals)`.
    metrics: Vec<(String, i64, Totals)>,
    /// `(bucket start, [pending, leased, done, dead, events])`.
    outbox: Vec<(i64, [i64; 5])>,
    latest: Option<[i64; 5]>,
}

fn outbox_json(c: [i64; 5]) -> Value {
    json!({ "pending": c[0], "leased": c[1], "done": c[2], "dead": c[3], "events": c[4] })
}

impl MetricsHistory {
    /// Opens (creating or migrating if needed) the tables in the SQLite file at `path`.
    ///
    /// # Errors
    /// [`Error::Provider`] if the file cannot be opened or migrated; [`Error::Configuration`]
    /// naming `schema` for a file migrated by a newer build.
    pub async fn open(path: impl AsRef<Path>) -> Result<Self> {
        let p = path.as_ref().to_path_buf();
        let conn = tokio::task::spawn_blocking(move || -> Result<Connection> {
            let mut conn = Connection::open(&p).map_err(db_error)?;
            conn.busy_timeout(Duration::from_secs(5))
                .map_err(db_error)?;
            conn.pragma_update(None, "journal_mode", "WAL")
                .map_err(db_error)?;
            schema::migrate_sqlite(&mut conn, schema::HISTORY, SQLITE_MIGRATIONS, db_error)?;
            Ok(conn)
        })
        .await
        .map_err(|e| Error::provider(format!("metrics history open did not finish: {e}")))??;
        Ok(MetricsHistory {
            backend: Backend::Sqlite(Arc::new(Mutex::new(conn))),
        })
    }

    /// The tables in the Postgres database behind `pool` (the service's own), created or
    /// migrated if needed.
    ///
    /// # Errors
    /// [`Error::Configuration`] naming `schema` for a database migrated by a newer build;
    /// [`Error::Unavailable`] when the server cannot be reached; other store failures.
    pub async fn postgres(pool: PgPool) -> Result<Self> {
        schema::migrate_pg(
            &pool,
            schema::HISTORY,
            MIGRATION_LOCK,
            PG_MIGRATIONS,
            pg_error,
        )
        .await?;
        Ok(MetricsHistory {
            backend: Backend::Postgres(pool),
        })
    }

    async fn call<T, F>(conn: &Arc<Mutex<Connection>>, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    {
        let conn = Arc::clone(conn);
        tokio::task::spawn_blocking(move || {
            let mut guard = conn.lock().unwrap_or_else(PoisonError::into_inner);
            f(&mut guard)
        })
        .await
        .map_err(|e| Error::provider(format!("metrics history call did not finish: {e}")))?
    }

    /// Stores `sample` and deletes points older than [`RETENTION`] before it, in one
    /// transaction. Integrations idle in the interval get no row.
    ///
    /// # Errors
    /// [`Error::Provider`] from the store; [`Error::Unavailable`] when Postgres is unreachable.
    pub async fn record(&self, sample: &Sample) -> Result<()> {
        let ts_ms = sample.at_ms;
        let (rows, outbox) = sample_rows(sample);
        let horizon = ts_ms.saturating_sub(i64::try_from(RETENTION.as_millis()).unwrap_or(0));
        match &self.backend {
            Backend::Sqlite(conn) => {
                Self::call(conn, move |conn| {
                    let tx = conn.transaction().map_err(db_error)?;
                    for (name, [calls, successes, failures, count], [sum, p50, p99]) in &rows {
                        tx.execute(
                            &sqlite_sql(INSERT_METRIC),
                            rusqlite::params![
                                ts_ms, name, calls, successes, failures, count, sum, p50, p99
                            ],
                        )
                        .map_err(db_error)?;
                    }
                    if let Some(c) = outbox {
                        let values = std::iter::once(ts_ms).chain(c);
                        tx.execute(&sqlite_sql(INSERT_OUTBOX), params_from_iter(values))
                            .map_err(db_error)?;
                    }
                    tx.execute(&sqlite_sql(DELETE_METRICS), [horizon])
                        .map_err(db_error)?;
                    tx.execute(&sqlite_sql(DELETE_OUTBOX), [horizon])
                        .map_err(db_error)?;
                    tx.commit().map_err(db_error)
                })
                .await
            }
            Backend::Postgres(pool) => {
                let mut tx = pool.begin().await.map_err(pg_error)?;
                for (name, [calls, successes, failures, count], [sum, p50, p99]) in &rows {
                    sqlx::query(INSERT_METRIC)
                        .bind(ts_ms)
                        .bind(name)
                        .bind(calls)
                        .bind(successes)
                        .bind(failures)
                        .bind(count)
                        .bind(sum)
                        .bind(p50)
                        .bind(p99)
                        .execute(&mut *tx)
                        .await
                        .map_err(pg_error)?;
                }
                if let Some(c) = outbox {
                    let mut q = sqlx::query(INSERT_OUTBOX).bind(ts_ms);
                    for v in c {
                        q = q.bind(v);
                    }
                    q.execute(&mut *tx).await.map_err(pg_error)?;
                }
                for sql in [DELETE_METRICS, DELETE_OUTBOX] {
                    sqlx::query(sql)
                        .bind(horizon)
                        .execute(&mut *tx)
                        .await
                        .map_err(pg_error)?;
                }
                tx.commit().await.map_err(pg_error)
            }
        }
    }

    /// The answer of `GET /api/monitoring/metrics` for `range` ending at `now_ms`: every
    /// integration in `names` (zeros when it did nothing) and any other with points in the
    /// window, and the outbox. Points at or before `now_ms - range` are outside the window.
    ///
    /// # Errors
    /// [`Error::Provider`] from the store; [`Error::Unavailable`] when Postgres is unreachable.
    pub async fn window(&self, range: TimeRange, now_ms: i64, names: Vec<String>) -> Result<Value> {
        let from = now_ms.saturating_sub(range.millis());
        let bucket = range.bucket_millis();
        let rows = match &self.backend {
            Backend::Sqlite(conn) => {
                Self::call(conn, move |conn| window_sqlite(conn, from, now_ms, bucket)).await?
            }
            Backend::Postgres(pool) => window_pg(pool, from, now_ms, bucket).await?,
        };
        let mut per: BTreeMap<String, (Totals, Vec<Value>)> = names
            .into_iter()
            .map(|n| (n, (Totals::default(), Vec::new())))
            .collect();
        for (name, at, t) in rows.metrics {
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
        let points: Vec<Value> = rows
            .outbox
            .into_iter()
            .map(|(at, c)| {
                let mut v = outbox_json(c);
                v["at"] = Value::from(rfc3339(at));
                v
            })
            .collect();
        Ok(json!({
            "timeRange": range.as_str(),
            "from": rfc3339(from),
            "to": rfc3339(now_ms),
            "bucketSeconds": bucket / 1000,
            "sampleIntervalSeconds": SAMPLE_INTERVAL.as_secs(),
            "integrations": integrations,
            "outbox": { "latest": rows.latest.map(outbox_json), "points": points },
        }))
    }
}

fn window_sqlite(conn: &Connection, from: i64, to: i64, bucket: i64) -> Result<WindowRows> {
    let mut out = WindowRows::default();
    let mut stmt = conn
        .prepare(&sqlite_sql(WINDOW_METRICS))
        .map_err(db_error)?;
    let rows = stmt
        .query_map(rusqlite::params![from, to, bucket], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?,
                Totals::from_sums(
                    [r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?],
                    [r.get(6)?, r.get(7)?, r.get(8)?],
                ),
            ))
        })
        .map_err(db_error)?;
    out.metrics = rows.collect::<rusqlite::Result<_>>().map_err(db_error)?;
    let five = |r: &rusqlite::Row<'_>, at: usize| -> rusqlite::Result<[i64; 5]> {
        Ok([
            r.get(at)?,
            r.get(at + 1)?,
            r.get(at + 2)?,
            r.get(at + 3)?,
            r.get(at + 4)?,
        ])
    };
    let mut stmt = conn.prepare(&sqlite_sql(WINDOW_OUTBOX)).map_err(db_error)?;
    out.outbox = stmt
        .query_map(rusqlite::params![from, to, bucket], |r| {
            Ok((r.get(0)?, five(r, 1)?))
        })
        .map_err(db_error)?
        .collect::<rusqlite::Result<_>>()
        .map_err(db_error)?;
    out.latest = conn
        .query_row(
            &sqlite_sql(LATEST_OUTBOX),
            rusqlite::params![from, to],
            |r| five(r, 0),
        )
        .ok();
    Ok(out)
}

async fn window_pg(pool: &PgPool, from: i64, to: i64, bucket: i64) -> Result<WindowRows> {
    let bad = |e: sqlx::Error| pg_error(e).with_operation("read the metrics window");
    let metrics = sqlx::query(WINDOW_METRICS)
        .bind(from)
        .bind(to)
        .bind(bucket)
        .fetch_all(pool)
        .await
        .map_err(bad)?
        .iter()
        .map(|r| {
            Ok((
                r.try_get::<String, _>(0)?,
                r.try_get::<i64, _>(1)?,
                Totals::from_sums(
                    [r.try_get(2)?, r.try_get(3)?, r.try_get(4)?, r.try_get(5)?],
                    [r.try_get(6)?, r.try_get(7)?, r.try_get(8)?],
                ),
            ))
        })
        .collect::<sqlx::Result<_>>()
        .map_err(bad)?;
    let five = |r: &sqlx::postgres::PgRow, at: usize| -> sqlx::Result<[i64; 5]> {
        Ok([
            r.try_get(at)?,
            r.try_get(at + 1)?,
            r.try_get(at + 2)?,
            r.try_get(at + 3)?,
            r.try_get(at + 4)?,
        ])
    };
    let outbox = sqlx::query(WINDOW_OUTBOX)
        .bind(from)
        .bind(to)
        .bind(bucket)
        .fetch_all(pool)
        .await
        .map_err(bad)?
        .iter()
        .map(|r| Ok((r.try_get(0)?, five(r, 1)?)))
        .collect::<sqlx::Result<_>>()
        .map_err(bad)?;
    let latest = sqlx::query(LATEST_OUTBOX)
        .bind(from)
        .bind(to)
        .fetch_optional(pool)
        .await
        .map_err(bad)?
        .map(|r| five(&r, 0))
        .transpose()
        .map_err(bad)?;
    Ok(WindowRows {
        metrics,
        outbox,
        latest,
    })
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
    /// From a bucket's sums: `[calls, successes, failures, latency count]` and `[latency sum,
    /// p50 weighted by calls, largest p99]` (SQL `NULL` sums read as 0).
    fn from_sums(counts: [Option<i64>; 4], floats: [Option<f64>; 3]) -> Totals {
        let [calls, successes, failures, latency_count] = counts.map(|c| to_u64(c.unwrap_or(0)));
        let [latency_sum_ms, p50_weighted, p99_ms] = floats.map(|f| f.unwrap_or(0.0));
        Totals {
            calls,
            successes,
            failures,
            latency_count,
            latency_sum_ms,
            p50_weighted,
            p99_ms,
        }
    }

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

/// Stores every sample from `samples` (a [`Dashboard::subscribe`] receiver) until `stop` fires
/// or is dropped, then the samples already sent (the dashboard's last one included, when it
/// was shut down first).
///
/// [`Dashboard::subscribe`]: integrations_dashboard::Dashboard::subscribe
pub async fn persist(
    history: MetricsHistory,
    mut samples: tokio::sync::broadcast::Receiver<Arc<Sample>>,
    mut stop: tokio::sync::oneshot::Receiver<()>,
) {
    use tokio::sync::broadcast::error::{RecvError, TryRecvError};
    loop {
        let sample = tokio::select! {
            r = samples.recv() => match r {
                Ok(s) => s,
                Err(RecvError::Lagged(n)) => {
                    tracing::warn!(lost = n, "metrics samples lost: the store fell behind");
                    continue;
                }
                Err(RecvError::Closed) => return,
            },
            _ = &mut stop => break,
        };
        if let Err(e) = history.record(&sample).await {
            tracing::warn!(error = %e, "metrics sample not stored");
        }
    }
    loop {
        match samples.try_recv() {
            Ok(sample) => {
                if let Err(e) = history.record(&sample).await {
                    tracing::warn!(error = %e, "metrics sample not stored");
                }
            }
            Err(TryRecvError::Lagged(_)) => {}
            Err(_) => return,
        }
    }
}

pub use integrations_dashboard::now_ms;
