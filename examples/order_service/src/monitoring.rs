//! Monitoring: `GET /api/monitoring/health`, `GET /api/monitoring/metrics` (stored series),
//! `GET /metrics` (Prometheus text), `GET /integrations`
//! (JSON), `POST /api/monitoring/dead-letters/{id}/replay`. The page is the
//! [`integrations_dashboard`] router, mounted by [`crate::app`].
//!
//! The views never scan a table per request: the outbox's counts, its dead letters and the
//! orders per status come from a [`StoreSnapshot`] that a background task ([`refresh_every`])
//! reads every [`SNAPSHOT_INTERVAL`] and swaps into the state (the outbox's backlog at every
//! refresh; its done jobs and event records, which a full count reads one by one, once a minute
//! through an [`OutboxCounter`](integrations_outbox::OutboxCounter)); the per-integration metrics come
//! from the in-memory registry the providers' policies record into. However many clients poll
//! `/metrics`, the stores see one set of counting queries per interval.

use std::fmt::Write as _;

use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use integrations_core::Result;
use integrations_core::metrics::{Health, IntegrationSnapshot};
use integrations_outbox::{DeadLetter, JobId, OutboxCounts};
use serde_json::{Value, json};

use crate::api::{ApiError, ok};
use crate::orders::{OrderStatus, rfc3339};
use crate::state::{AppState, IntegrationInfo};

/// Dead letters listed on the page and in `/integrations`.
pub const DEAD_LETTERS_SHOWN: usize = 50;

/// Content type of `/metrics`: Prometheus text exposition format 0.0.4.
pub const PROMETHEUS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// How often [`refresh_every`] re-reads the stores' figures by default.
pub const SNAPSHOT_INTERVAL: std::time::Duration = std::time::Duration::from_secs(2);

/// The stores' figures the monitoring views show, read together by [`refresh`].
#[derive(Debug, Clone, Default)]
pub struct StoreSnapshot {
    /// Outbox jobs per state.
    pub outbox: OutboxCounts,
    /// The oldest dead letters, up to [`DEAD_LETTERS_SHOWN`].
    pub dead_letters: Vec<DeadLetter>,
    /// Orders per status.
    pub orders: Vec<(OrderStatus, u64)>,
    /// When these figures were read, unix milliseconds (0: never yet).
    pub taken_at: i64,
    /// The error of the last refresh, if it failed (the figures are then the previous ones).
    pub error: Option<String>,
}

/// Reads the stores' figures and swaps them into `app`'s snapshot. On failure the previous
/// figures stay, marked with the error (health answers 503 until a refresh succeeds).
///
/// # Errors
/// The outbox's or the order store's failures.
pub async fn refresh(app: &AppState) -> Result<()> {
    let read = async {
        let outbox = app.inner.outbox_counter.read().await?;
        let dead_letters = app.outbox().dead_letters(DEAD_LETTERS_SHOWN).await?;
        let orders = app.orders().status_counts().await?;
        Ok::<_, integrations_core::Error>(StoreSnapshot {
            outbox,
            dead_letters,
            orders,
            taken_at: now_ms(),
            error: None,
        })
    };
    match read.await {
        Ok(s) => {
            app.set_store_snapshot(s);
            Ok(())
        }
        Err(e) => {
            let mut stale = (*app.store_snapshot()).clone();
            stale.error = Some(e.to_string());
            app.set_store_snapshot(stale);
            Err(e)
        }
    }
}

/// Refreshes `app`'s snapshot every `interval` until `stop` fires (or its sender is dropped).
pub async fn refresh_every(
    app: AppState,
    interval: std::time::Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        if let Err(e) = refresh(&app).await {
            tracing::warn!(error = %e, "monitoring snapshot refresh failed");
        }
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            _ = stop.changed() => return,
        }
        if *stop.borrow() {
            return;
        }
    }
}

/// One configured integration with its live metrics.
#[derive(Debug, Clone)]
pub struct IntegrationView {
    /// What it is.
    pub info: IntegrationInfo,
    /// Its metrics now.
    pub metrics: Option<IntegrationSnapshot>,
}

impl IntegrationView {
    /// Health from the breaker and availability (healthy before any call).
    pub fn health(&self) -> Health {
        self.metrics.as_ref().map_or(Health::Healthy, |m| m.health)
    }
}

/// Everything the monitoring views show: the registry now, the stores as of the last snapshot.
#[derive(Debug, Clone)]
pub struct Overview {
    /// Configured integrations, in configuration order; then any other integration with
    /// metrics in the registry.
    pub integrations: Vec<IntegrationView>,
    /// Outbox jobs per state.
    pub outbox: OutboxCounts,
    /// The oldest dead letters, up to [`DEAD_LETTERS_SHOWN`].
    pub dead_letters: Vec<DeadLetter>,
    /// Orders per status.
    pub orders: Vec<(OrderStatus, u64)>,
    /// Seconds since the service started.
    pub uptime_secs: u64,
    /// When this was read, unix milliseconds.
    pub generated_at: i64,
    /// When the stores' figures were read, unix milliseconds (0: not yet).
    pub stores_read_at: i64,
}

impl Overview {
    /// The worst health among the integrations.
    pub fn overall(&self) -> Health {
        let hs = self.integrations.iter().map(IntegrationView::health);
        hs.fold(Health::Healthy, |worst, h| match (worst, h) {
            (Health::Down, _) | (_, Health::Down) => Health::Down,
            (Health::Degraded, _) | (_, Health::Degraded) => Health::Degraded,
            _ => Health::Healthy,
        })
    }
}

/// The [`Overview`]: the registry now, the stores from the last snapshot (no store is read).
///
/// # Errors
/// The last snapshot refresh's failure.
pub fn overview(app: &AppState) -> Result<Overview> {
    let snapshot = app.metrics().snapshot();
    let mut integrations: Vec<IntegrationView> = app
        .integrations()
        .iter()
        .map(|info| IntegrationView {
            info: info.clone(),
            metrics: snapshot.get(&info.name).cloned(),
        })
        .collect();
    for s in &snapshot.integrations {
        if !app.integrations().iter().any(|i| i.name == s.name) {
            integrations.push(IntegrationView {
                info: IntegrationInfo::new(
                    s.name.clone(),
                    "other",
                    crate::state::IntegrationMode::Live,
                ),
                metrics: Some(s.clone()),
            });
        }
    }
    let stores = app.store_snapshot();
    if let Some(e) = &stores.error {
        return Err(integrations_core::Error::unavailable(format!(
            "the stores could not be read: {e}"
        )));
    }
    Ok(Overview {
        integrations,
        outbox: stores.outbox,
        dead_letters: stores.dead_letters.clone(),
        orders: stores.orders.clone(),
        uptime_secs: app.inner.started.elapsed().as_secs(),
        generated_at: now_ms(),
        stores_read_at: stores.taken_at,
    })
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn millis(t: std::time::SystemTime) -> i64 {
    t.duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// A dead letter as JSON (the error's kind, provider, code, status; not its free text, which may
/// quote personal data).
pub fn dead_letter_json(d: &DeadLetter) -> Value {
    json!({
        "jobId": d.job.id.as_str(),
        "kind": d.job.kind,
        "eventId": d.job.event_id,
        "attempts": d.job.attempt,
        "error": {
            "kind": d.error.kind.as_str(),
            "provider": d.error.provider,
            "code": d.error.code,
            "status": d.error.status,
        },
        "deadAt": rfc3339(millis(d.dead_at)),
    })
}

/// `GET /api/monitoring/health`: 200 with `ok` or `degraded` (an integration degraded or down),
/// 503 when the service's own stores fail.
pub(crate) async fn health(State(app): State<AppState>) -> Response {
    match overview(&app) {
        Ok(o) => {
            let status = match o.overall() {
                Health::Healthy => "ok",
                _ => "degraded",
            };
            let integrations: Vec<Value> = o
                .integrations
                .iter()
                .map(|i| {
                    json!({
                        "name": i.info.name,
                        "health": i.health().as_str(),
                        "breaker": i.metrics.as_ref().map(|m| m.breaker_state.as_str()),
                    })
                })
                .collect();
            ok(
                StatusCode::OK,
                json!({
                    "status": status,
                    "uptimeSeconds": o.uptime_secs,
                    "checks": { "orderStore": "ok", "outbox": "ok" },
                    "integrations": integrations,
                }),
            )
        }
        Err(e) => {
            tracing::error!(error = %e, "health check failed");
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e).into_response()
        }
    }
}

/// `GET /metrics`: core's per-integration metrics plus the outbox and orders, as Prometheus
/// text.
pub(crate) async fn metrics(
    State(app): State<AppState>,
) -> std::result::Result<Response, ApiError> {
    let o = overview(&app)?;
    let mut text = app.metrics().render_prometheus();
    // The dispatcher's counters and delivery latency, and the outbox gauges from the snapshot
    // (re-read every 2 s, never per scrape).
    app.outbox_metrics().observe_counts(&o.outbox);
    text.push_str(&app.outbox_metrics().render_prometheus());
    let mut gauge = |name: &str, help: &str, samples: &[(String, u64)]| {
        let _ = writeln!(text, "# HELP {name} {help}\n# TYPE {name} gauge");
        for (labels, v) in samples {
            let _ = writeln!(text, "{name}{labels} {v}");
        }
    };
    let c = o.outbox;
    gauge(
        "order_service_outbox_jobs",
        "Outbox jobs by state.",
        &[
            ("pending", c.pending),
            ("leased", c.leased),
            ("done", c.done),
            ("dead", c.dead),
        ]
        .map(|(s, v)| (format!("{{state=\"{s}\"}}"), v)),
    );
    gauge(
        "order_service_outbox_events",
        "Webhook event ids recorded (deduplication records).",
        &[(String::new(), c.events)],
    );
    let orders: Vec<(String, u64)> = OrderStatus::ALL
        .iter()
        .map(|s| {
            let n = o
                .orders
                .iter()
                .find(|(st, _)| st == s)
                .map_or(0, |(_, n)| *n);
            (format!("{{status=\"{}\"}}", s.as_str()), n)
        })
        .collect();
    gauge("order_service_orders", "Orders by status.", &orders);
    gauge(
        "order_service_uptime_seconds",
        "Seconds since the service started.",
        &[(String::new(), o.uptime_secs)],
    );
    // Live counters, not the snapshot: a load test waits on them for the webhooks to be taken.
    let mut counter = |name: &str, help: &str, v: u64| {
        let _ = writeln!(
            text,
            "# HELP {name} {help}\n# TYPE {name} counter\n{name}{{provider=\"stripe\"}} {v}"
        );
    };
    let relaxed = std::sync::atomic::Ordering::Relaxed;
    counter(
        "order_service_webhook_events_total",
        "Webhook events taken (answered 2xx: recorded, or known already).",
        app.inner.stripe_events_taken.load(relaxed),
    );
    if let Some(made) = &app.inner.stripe_sandbox_events {
        counter(
            "order_service_sandbox_events_total",
            "Events the provider's sandbox made (the service runs on it).",
            made.load(relaxed),
        );
    }
    let mut resp = text.into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(PROMETHEUS_CONTENT_TYPE),
    );
    Ok(resp)
}

/// An integration's metrics as JSON with the API's camelCase field names (`successRate`,
/// `p50Ms`); the keys of `failures` are error kinds and stay as they are.
pub fn snapshot_json(s: &IntegrationSnapshot) -> Value {
    fn camel(key: &str) -> String {
        let mut out = String::with_capacity(key.len());
        let mut upper = false;
        for c in key.chars() {
            if c == '_' {
                upper = true;
            } else if upper {
                out.extend(c.to_uppercase());
                upper = false;
            } else {
                out.push(c);
            }
        }
        out
    }
    match serde_json::to_value(s) {
        Ok(Value::Object(map)) => {
            Value::Object(map.into_iter().map(|(k, v)| (camel(&k), v)).collect())
        }
        Ok(other) => other,
        Err(_) => Value::Null,
    }
}

/// `GET /integrations`: the integrations with their live metrics, the outbox and dead letters.
pub(crate) async fn integrations(
    State(app): State<AppState>,
) -> std::result::Result<Response, ApiError> {
    let o = overview(&app)?;
    let integrations: Vec<Value> = o
        .integrations
        .iter()
        .map(|i| {
            json!({
                "name": i.info.name,
                "role": i.info.role,
                "mode": i.info.mode,
                "health": i.health().as_str(),
                "metrics": i.metrics.as_ref().map(snapshot_json),
            })
        })
        .collect();
    let dead: Vec<Value> = o.dead_letters.iter().map(dead_letter_json).collect();
    Ok(ok(
        StatusCode::OK,
        json!({
            "status": o.overall().as_str(),
            "integrations": integrations,
            "outbox": o.outbox,
            "deadLetters": dead,
        }),
    ))
}

/// `GET /api/monitoring/metrics?timeRange=1h|24h|7d` (default `24h`): per-integration calls,
/// errors, latency and the outbox over the window, from the stored series (see
/// [`crate::history`]), so the answer survives a restart.
pub(crate) async fn metrics_window(
    State(app): State<AppState>,
    query: std::result::Result<
        axum::extract::Query<std::collections::HashMap<String, String>>,
        axum::extract::rejection::QueryRejection,
    >,
) -> std::result::Result<Response, ApiError> {
    let axum::extract::Query(q) =
        query.map_err(|e| integrations_core::Error::invalid_input("query", e.body_text()))?;
    let range = crate::history::TimeRange::parse(q.get("timeRange").map_or("24h", String::as_str))?;
    let history = app.metrics_history().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            integrations_core::Error::configuration(
                "metrics_history",
                "this service keeps no metrics history",
            ),
        )
    })?;
    let names = app.integrations().iter().map(|i| i.name.clone()).collect();
    let data = history
        .window(range, crate::history::now_ms(), names)
        .await?;
    Ok(ok(StatusCode::OK, data))
}

/// `POST /api/monitoring/dead-letters/{id}/replay`: puts a dead letter back to pending.
pub(crate) async fn replay(
    State(app): State<AppState>,
    id: std::result::Result<Path<String>, axum::extract::rejection::PathRejection>,
) -> std::result::Result<Response, ApiError> {
    let Path(id) = id.map_err(|e| integrations_core::Error::invalid_input("id", e.body_text()))?;
    app.outbox().replay(&JobId::new(id.clone())).await?;
    tracing::info!(job = %id, "dead letter replayed");
    Ok(ok(StatusCode::OK, json!({ "replayed": id })))
}
