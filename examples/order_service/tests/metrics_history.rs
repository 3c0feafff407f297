//! `GET /api/monitoring/metrics?timeRange=…`: stored series that survive a restart, windows,
//! retention.

mod common;

use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use common::Harness;
use integrations_core::ErrorKind;
use integrations_core::metrics::MetricsRegistry;
use integrations_dashboard::Sampler;
use integrations_order_service::auth::ApiKeys;
use integrations_order_service::history::{MetricsHistory, TimeRange, now_ms};
use integrations_order_service::server::{DB_FILE, Server, ServerConfig};
use integrations_outbox::postgres::testing::TestDatabase;
use integrations_outbox::{OutboxStore, PostgresOutbox, SqliteOutbox};
use serde_json::Value;

const MINUTE: i64 = 60_000;
const HOUR: i64 = 60 * MINUTE;

/// Samples `sampler` at `at` into `history`, as the service's persisting task does.
async fn record(sampler: &mut Sampler, history: &MetricsHistory, at: i64) {
    let sample = sampler.sample_at(at).await.unwrap();
    history.record(&sample).await.unwrap();
}

fn stripe(v: &Value) -> &Value {
    v["integrations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["name"] == "stripe")
        .unwrap_or_else(|| panic!("no stripe in {v}"))
}

/// The history's database: a SQLite file or a Postgres database (each open is a new connection,
/// as a restarted process would make).
enum Store {
    Sqlite(tempfile::TempDir),
    Postgres(Box<TestDatabase>),
}

impl Store {
    async fn open(&self) -> (MetricsHistory, Arc<dyn OutboxStore>) {
        match self {
            Store::Sqlite(dir) => {
                let db = dir.path().join(DB_FILE);
                let history = MetricsHistory::open(&db).await.unwrap();
                (history, Arc::new(SqliteOutbox::open(&db).await.unwrap()))
            }
            Store::Postgres(db) => {
                let outbox = PostgresOutbox::connect_with(db.options()).await.unwrap();
                let history = MetricsHistory::postgres(outbox.pool().clone())
                    .await
                    .unwrap();
                (history, Arc::new(outbox))
            }
        }
    }
}

#[tokio::test]
async fn points_survive_reopening_and_windows_exclude_older_points() {
    survive_reopening(Store::Sqlite(tempfile::tempdir().unwrap())).await;
}

#[tokio::test]
async fn on_postgres_points_survive_reopening_and_windows_exclude_older_points() {
    let Some(db) = TestDatabase::create("history").await else {
        return;
    };
    survive_reopening(Store::Postgres(Box::new(db))).await;
}

async fn survive_reopening(store: Store) {
    let now = now_ms();
    {
        let (history, outbox) = store.open().await;
        let registry = MetricsRegistry::new();
        let mut rec = Sampler::new(registry.clone(), Some(outbox));
        let m = registry.integration("stripe");
        // Three hours ago: 2 calls, one failed.
        m.record_call();
        m.record_success(Duration::from_millis(100));
        m.record_call();
        m.record_failure(ErrorKind::Timeout, Duration::from_millis(300));
        record(&mut rec, &history, now - 3 * HOUR).await;
        // Ten minutes ago: 3 more successful calls.
        for _ in 0..3 {
            m.record_call();
            m.record_success(Duration::from_millis(50));
        }
        record(&mut rec, &history, now - 10 * MINUTE).await;
        // Nothing new: no integration row, only the outbox point.
        record(&mut rec, &history, now - 5 * MINUTE).await;
    }
    // "Restart": a fresh process opens the same database.
    let (history, _) = store.open().await;
    let hour = history
        .window(
            TimeRange::Hour,
            now,
            vec!["stripe".into(), "sendgrid".into()],
        )
        .await
        .unwrap();
    let s = stripe(&hour);
    assert_eq!(s["calls"], 3, "{hour}");
    assert_eq!(s["errors"], 0);
    assert_eq!(s["latency"]["count"], 3);
    assert!((s["latency"]["avgMs"].as_f64().unwrap() - 50.0).abs() < 1.0);
    assert_eq!(s["points"].as_array().unwrap().len(), 1);
    assert_eq!(hour["timeRange"], "1h");
    assert_eq!(hour["bucketSeconds"], 60);
    // A configured integration without activity is listed with zeros.
    let sendgrid = hour["integrations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["name"] == "sendgrid")
        .unwrap();
    assert_eq!(sendgrid["calls"], 0);
    assert_eq!(hour["outbox"]["points"].as_array().unwrap().len(), 2);
    assert_eq!(hour["outbox"]["latest"]["pending"], 0);

    let day = history.window(TimeRange::Day, now, vec![]).await.unwrap();
    let s = stripe(&day);
    assert_eq!(s["calls"], 5, "{day}");
    assert_eq!(s["errors"], 1);
    assert_eq!(s["successes"], 4);
    assert!((s["errorRate"].as_f64().unwrap() - 0.2).abs() < 1e-9);
    assert!(s["latency"]["p99Ms"].as_f64().unwrap() >= 250.0, "{s}");
    assert_eq!(s["points"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn points_older_than_seven_days_are_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join(DB_FILE);
    let history = MetricsHistory::open(&db).await.unwrap();
    let registry = MetricsRegistry::new();
    let mut rec = Sampler::new(registry.clone(), None);
    let now = now_ms();
    registry.integration("stripe").record_call();
    record(&mut rec, &history, now - 8 * 24 * HOUR).await;
    registry.integration("stripe").record_call();
    record(&mut rec, &history, now).await;
    let conn = rusqlite::Connection::open(&db).unwrap();
    let rows: i64 = conn
        .query_row("SELECT COUNT(*) FROM metric_points", [], |r| r.get(0))
        .unwrap();
    assert_eq!(rows, 1, "the 8-day-old point was not deleted");
    let week = history
        .window(TimeRange::Week, now + 1, vec![])
        .await
        .unwrap();
    assert_eq!(stripe(&week)["calls"], 1);
}

#[tokio::test]
async fn the_route_validates_the_window_and_uses_the_envelope() {
    let dir = tempfile::tempdir().unwrap();
    let history = MetricsHistory::open(dir.path().join(DB_FILE))
        .await
        .unwrap();
    let h = Harness::with(|b| b.metrics_history(history)).await;
    for range in ["1h", "24h", "7d"] {
        let r = h
            .request(
                "GET",
                &format!("/api/monitoring/metrics?timeRange={range}"),
                Some(common::KEY),
                None,
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(r.json["success"], true);
        assert_eq!(r.json["data"]["timeRange"], range);
        assert_eq!(stripe(&r.json["data"])["calls"], 0);
    }
    let r = h
        .request("GET", "/api/monitoring/metrics", Some(common::KEY), None)
        .await;
    assert_eq!(r.json["data"]["timeRange"], "24h");
    for bad in ["2h", "", "24H", "1d"] {
        let r = h
            .request(
                "GET",
                &format!("/api/monitoring/metrics?timeRange={bad}"),
                Some(common::KEY),
                None,
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}: {}", r.text);
        assert_eq!(r.json["success"], false);
        assert_eq!(r.field(), Some("timeRange"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_answer_survives_a_server_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (keys, key) = ApiKeys::generate();
    let config = |keys: ApiKeys, registry: MetricsRegistry| {
        let mut c = ServerConfig::local(keys);
        c.data_dir = Some(dir.path().to_path_buf());
        c.metrics = registry;
        c.metrics_interval = Duration::from_millis(50);
        c
    };
    let registry = MetricsRegistry::new();
    let server = Server::start(config(keys.clone(), registry.clone()))
        .await
        .unwrap();
    let m = registry.integration("stripe");
    for _ in 0..4 {
        m.record_call();
        m.record_success(Duration::from_millis(20));
    }
    // The last sample is taken on shutdown at the latest.
    server.shutdown().await.unwrap();

    let server = Server::start(config(keys, MetricsRegistry::new()))
        .await
        .unwrap();
    let body = reqwest::Client::new()
        .get(format!(
            "{}/api/monitoring/metrics?timeRange=1h",
            server.base_url()
        ))
        .header("x-api-key", &key)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["success"], true);
    assert_eq!(stripe(&v["data"])["calls"], 4, "{v}");
    assert!(!v["data"]["outbox"]["points"].as_array().unwrap().is_empty());
    server.shutdown().await.unwrap();
}
