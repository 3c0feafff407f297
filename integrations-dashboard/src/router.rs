//! The routes: the page, its live part, the figures behind it as JSON, and the replay of a dead
//! letter.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use integrations_core::{Error, ErrorKind};
use integrations_outbox::JobId;
use serde_json::{Value, json};

use crate::dashboard::{Dashboard, Shared};
use crate::history::{num, sample_json};
use crate::page::{self, View};
use crate::sampler::now_ms;

/// The header the replay route requires, with the value [`REPLAY_HEADER_VALUE`]. A cross-site
/// form cannot send a custom header, and a cross-site script that tries needs a CORS preflight
/// this router never grants: requiring it makes the POST safe against cross-site request
/// forgery even when the mounting service authenticates with cookies.
pub const REPLAY_HEADER: &str = "x-dashboard-action";
/// The value of [`REPLAY_HEADER`].
pub const REPLAY_HEADER_VALUE: &str = "replay";

#[derive(Clone)]
struct Routes {
    shared: Arc<Shared>,
    replay: bool,
}

impl Routes {
    fn view(&self) -> View {
        let s = &self.shared;
        View {
            title: s.title.clone(),
            metrics: s.registry.snapshot(),
            samples: s.samples(),
            stores: s.stores(),
            now_ms: now_ms(),
            window_ms: i64::try_from(s.window.as_millis()).unwrap_or(i64::MAX),
            step_ms: i64::try_from(s.step.as_millis()).unwrap_or(i64::MAX),
            replay: self.replay && s.outbox.is_some(),
        }
    }
}

impl Dashboard {
    /// The dashboard's routes, replay included: `GET /` (the page), `GET /live` (its live
    /// part, which the page fetches), `GET /api/metrics` (the figures as JSON),
    /// `POST /dead-letters/{id}/replay`.
    ///
    /// The router has **no authentication of its own**: mount it behind the service's, e.g.
    /// `Router::new().nest("/ops", dashboard.router().layer(auth))`. The page uses paths
    /// relative to its own, so it works under any prefix (open it as `/ops`).
    ///
    /// Generic over the router's state so that it nests into a `Router<YourState>` as well.
    pub fn router<S: Clone + Send + Sync + 'static>(&self) -> Router<S> {
        self.routes(true)
    }

    /// [`router`](Self::router) without the replay route, for a listener where looking is
    /// allowed and acting is not (replay answers 405 there and the page shows no button).
    pub fn read_only_router<S: Clone + Send + Sync + 'static>(&self) -> Router<S> {
        self.routes(false)
    }

    fn routes<S: Clone + Send + Sync + 'static>(&self, replay: bool) -> Router<S> {
        let state = Routes {
            shared: Arc::clone(&self.shared),
            replay,
        };
        let mut r = Router::new()
            .route("/", get(page_route))
            .route("/live", get(live_route))
            .route("/api/metrics", get(metrics_route));
        if replay {
            r = r.route("/dead-letters/{id}/replay", post(replay_route));
        }
        r.with_state(state)
    }
}

fn html(body: String) -> Response {
    let mut resp = body.into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if let Ok(csp) = HeaderValue::from_str(&page::CSP) {
        h.insert(header::CONTENT_SECURITY_POLICY, csp);
    }
    resp
}

async fn page_route(State(r): State<Routes>) -> Response {
    html(page::page(&r.view()))
}

async fn live_route(State(r): State<Routes>) -> Response {
    html(page::live(&r.view()))
}

/// `GET /api/metrics`: the registry now and the samples the charts are drawn from.
async fn metrics_route(State(r): State<Routes>) -> Response {
    let v = r.view();
    let integrations: Vec<Value> = v
        .metrics
        .integrations
        .iter()
        .map(|m| {
            json!({
                "name": m.name,
                "health": m.health.as_str(),
                "breaker": m.breaker_state.as_str(),
                "calls": m.calls,
                "successes": m.successes,
                "errors": m.failures.values().sum::<u64>(),
                "retries": m.retries,
                "latencyCount": m.latency_count,
                "p50Ms": num(m.p50_ms),
                "p95Ms": num(m.p95_ms),
                "p99Ms": num(m.p99_ms),
            })
        })
        .collect();
    let outbox = v.stores.counts.map(|c| {
        json!({
            "pending": c.pending, "leased": c.leased, "done": c.done,
            "dead": c.dead, "events": c.events,
        })
    });
    let dead: Vec<Value> = v
        .stores
        .dead_letters
        .iter()
        .map(|d| {
            json!({
                "jobId": d.job.id.as_str(),
                "kind": d.job.kind,
                "eventId": d.job.event_id,
                "attempts": d.job.attempt,
                "error": { "kind": d.error.kind.as_str(), "provider": d.error.provider,
                           "code": d.error.code, "status": d.error.status },
            })
        })
        .collect();
    let body = json!({
        "generatedAt": v.now_ms,
        "status": v.overall().as_str(),
        "sampleEveryMs": v.step_ms,
        "historySeconds": v.window_ms / 1000,
        "integrations": integrations,
        "outbox": outbox,
        "storesError": v.stores.error,
        "deadLetters": dead,
        "samples": v.samples.iter().map(|s| sample_json(s)).collect::<Vec<_>>(),
    });
    let mut resp = axum::Json(body).into_response();
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// An error as `{"error": {"kind", "field", "message"}}` with the status its kind means.
fn error_response(e: &Error) -> Response {
    let status = match e.kind() {
        ErrorKind::InvalidInput => StatusCode::BAD_REQUEST,
        ErrorKind::Forbidden => StatusCode::FORBIDDEN,
        ErrorKind::NotFound => StatusCode::NOT_FOUND,
        ErrorKind::Conflict => StatusCode::CONFLICT,
        _ => StatusCode::SERVICE_UNAVAILABLE,
    };
    let body = json!({
        "error": { "kind": e.kind().as_str(), "field": e.field(), "message": e.message() }
    });
    (status, axum::Json(body)).into_response()
}

/// Refuses a request that a browser may have sent on another site's behalf: the custom header
/// must be present, and a browser's own `Sec-Fetch-Site`, when sent, must say same-origin.
fn check_same_origin(headers: &HeaderMap) -> Result<(), Error> {
    let action = headers.get(REPLAY_HEADER).and_then(|v| v.to_str().ok());
    if action != Some(REPLAY_HEADER_VALUE) {
        return Err(Error::forbidden(format!(
            "replay needs the header {REPLAY_HEADER}: {REPLAY_HEADER_VALUE} (cross-site request protection)"
        )));
    }
    if let Some(site) = headers.get("sec-fetch-site") {
        if !matches!(site.to_str(), Ok("same-origin" | "none")) {
            return Err(Error::forbidden(format!(
                "replay from a {:?} context is refused (cross-site request protection)",
                site.to_str().unwrap_or("non-ASCII")
            )));
        }
    }
    Ok(())
}

/// `POST /dead-letters/{id}/replay`: puts the dead letter back to pending.
async fn replay_route(
    State(r): State<Routes>,
    headers: HeaderMap,
    id: Result<Path<String>, axum::extract::rejection::PathRejection>,
) -> Response {
    if let Err(e) = check_same_origin(&headers) {
        return error_response(&e);
    }
    let Ok(Path(id)) = id else {
        return error_response(&Error::invalid_input("id", "not a job id"));
    };
    if id.is_empty() || id.len() > 200 {
        return error_response(&Error::invalid_input(
            "id",
            "a job id is 1 to 200 characters",
        ));
    }
    let Some(outbox) = &r.shared.outbox else {
        return error_response(&Error::not_found("this dashboard has no outbox"));
    };
    match outbox.replay(&JobId::new(id.clone())).await {
        Ok(()) => {
            tracing::info!(job = %id, "dashboard: dead letter replayed");
            r.shared.wake.notify_one();
            (StatusCode::OK, axum::Json(json!({ "replayed": id }))).into_response()
        }
        Err(e) => {
            tracing::warn!(job = %id, error = %e, "dashboard: replay refused");
            error_response(&e)
        }
    }
}
