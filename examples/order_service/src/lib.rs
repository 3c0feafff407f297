//! # integrations-order-service
//!
//! The seed's order REST API as an [axum](https://docs.rs/axum) service on the `integrations`
//! crates: orders in SQLite (or Postgres with `DATABASE_URL`, beside the outbox), payments through a [`PaymentProvider`](integrations_core::PaymentProvider)
//! (Stripe), verified webhooks recorded with their side effects in the durable outbox, a
//! dispatcher delivering those effects (email, analytics row, notification), and monitoring
//! from live data.
//!
//! | route | auth | what |
//! |---|---|---|
//! | `POST /api/orders` | API key or JWT | validate (400 naming the field; total = sum of the lines), store, create the payment (`order/payment` idempotency key); `Idempotency-Key` header honoured |
//! | `GET /api/orders/{id}` | API key or JWT | one order |
//! | `GET /api/orders?limit&cursor` | API key or JWT | newest first, cursor pagination (`lastKey` accepted) |
//! | `POST /api/payments/confirm` | API key or JWT | confirm the order's own payment intent (a foreign one is refused) |
//! | `POST /api/payments/refund` | API key or JWT | full or partial refund, never above what is left |
//! | `POST /api/monitoring/dead-letters/{id}/replay` | API key or JWT | put a dead letter back |
//! | `GET /api/monitoring/health` | — | `ok` / `degraded`, 503 when the stores fail |
//! | `GET /api/monitoring/metrics?timeRange=1h\|24h\|7d` | API key or JWT | per-integration calls, errors, latency and the outbox over the window, from the stored series ([`history`]) |
//! | `GET /metrics` | API key or JWT | Prometheus text: per-integration calls, latency, breaker; outbox; orders |
//! | `GET /integrations` (also `/api/monitoring/integrations`) | API key or JWT | integrations with live metrics, outbox counts, dead letters (JSON) |
//! | `GET /dashboard` | API key or JWT | the dashboard ([`integrations_dashboard`]): health, breakers, calls, errors, latency, outbox, dead letters with replay, charts of the last hour; `GET /` redirects there |
//! | `POST /webhooks/stripe` | signature | verify → apply to the order **and** record event + jobs in one transaction of the order store (SQLite or Postgres) → 200 |
//! | `POST /webhooks/sendgrid` | signature | email events onto their orders, deduplicated |
//! | `POST /webhooks/sns` | signature | inbound SNS of accepted topics, deduplicated |
//!
//! The monitoring views read the stores' figures from a snapshot refreshed every 2 s
//! ([`monitoring::refresh_every`]), never per request; the dashboard reads them once per sample.
//! [`monitoring_app`] serves the same views without a key (the dashboard read-only, without
//! replay), for a separate listener on an internal address (`ORDER_SERVICE_MONITORING_ADDR`)
//! where a browser or a Prometheus scraper can reach them.
//!
//! | module | holds |
//! |---|---|
//! | [`state`] | [`AppState`] and its builder |
//! | [`auth`] | API keys, kept as SHA-256 digests, compared in constant time; JWTs through [`jwt`] |
//! | [`jwt`] | JWT bearer tokens: HS256 secret or RS256/ES256 JWKS, `iss`/`aud`/`exp`/`nbf` |
//! | [`validate`] | request validation naming fields; amounts as exact decimals (numbers read from their literal text, or strings) |
//! | [`orders`] | the order model and its store: SQLite (the outbox's file) or Postgres (the outbox's database), an order change and its jobs in one transaction |
//! | [`effects`] | the jobs of a paid order and their handlers |
//! | [`monitoring`] | health, metrics, integrations (JSON and Prometheus) |
//! | [`retention`] | the hourly purge of done outbox jobs and recorded events past the retention |
//! | [`history`] | the dashboard's samples (every 10 s) stored in SQLite or Postgres, kept 7 days |
//! | [`wiring`] | live providers from the environment, sandboxes otherwise |
//! | [`http_server`] | header and request deadlines, a connection bound and a bounded graceful shutdown around the router |
//! | [`server`] | the whole service on a socket, as `main` and end-to-end tests run it |
//! | [`notifier`] | the local notifier |
//! | [`api`] | the response envelope and error → status mapping |
#![warn(
    missing_docs,
    missing_debug_implementations,
    unreachable_pub,
    rust_2018_idioms
)]

pub mod api;
pub mod auth;
pub mod effects;
pub mod history;
mod html;
pub mod http_server;
pub mod jwt;
pub mod monitoring;
pub mod notifier;
pub mod orders;
pub mod retention;
mod routes;
mod schema;
pub mod server;
pub mod state;
pub mod validate;
pub mod wiring;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{Method, StatusCode, Uri};
use axum::middleware;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use integrations_core::Error;

pub use state::{AppState, AppStateBuilder, IntegrationInfo, IntegrationMode, SnsWebhook};

/// Metadata key carrying the order id on payments, and custom argument carrying it on
/// confirmation emails (so provider events can be matched back to the order).
pub const ORDER_ID_METADATA: &str = "order_id";

/// Largest API request body (an order of [`validate::MAX_ITEMS`] lines fits easily).
pub const API_BODY_LIMIT: usize = 256 * 1024;

/// `N` bytes from the operating system's CSPRNG, as lowercase hex.
pub(crate) fn random_hex<const N: usize>() -> String {
    use rand_core::RngCore as _;
    let mut bytes = [0u8; N];
    rand_core::OsRng.fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

async fn not_found(uri: Uri) -> Response {
    api::ApiError::from(Error::not_found(format!("no route {}", uri.path()))).into_response()
}

async fn method_not_allowed(method: Method, uri: Uri) -> Response {
    api::ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        Error::invalid_input(
            "method",
            format!("{method} is not allowed on {}", uri.path()),
        )
        .with_code("method_not_allowed"),
    )
    .into_response()
}

async fn not_configured(uri: Uri) -> Response {
    api::ApiError::new(
        StatusCode::NOT_FOUND,
        Error::configuration(
            "webhook",
            format!("{} is not configured on this service", uri.path()),
        ),
    )
    .into_response()
}

/// How much history the dashboard's charts show.
pub const DASHBOARD_HISTORY: std::time::Duration = std::time::Duration::from_secs(3600);

/// Where the dashboard is mounted.
pub const DASHBOARD_PATH: &str = "/dashboard";

/// The read-only monitoring views (everything but health and replay).
fn monitoring_views() -> Router<AppState> {
    Router::new()
        .route("/", get(|| async { Redirect::to(DASHBOARD_PATH) }))
        .route("/api/monitoring/metrics", get(monitoring::metrics_window))
        .route("/metrics", get(monitoring::metrics))
        .route("/integrations", get(monitoring::integrations))
        .route(
            "/api/monitoring/integrations",
            get(monitoring::integrations),
        )
}

/// The monitoring views and health **without a key**, for a separate listener on an internal
/// address (see [`server::ServerConfig::monitoring_addr`]). Replaying dead letters still needs
/// the API on the main listener.
pub fn monitoring_app(state: AppState) -> Router {
    let dashboard = state.inner.dashboard.as_ref().map(|d| d.read_only.clone());
    let mut router = monitoring_views()
        .route("/api/monitoring/health", get(monitoring::health))
        .with_state(state);
    if let Some(d) = dashboard {
        router = router.nest(DASHBOARD_PATH, d);
    }
    router
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
}

/// The service's router (see the crate docs for the routes).
pub fn app(state: AppState) -> Router {
    let api = Router::new()
        .route(
            "/api/orders",
            post(routes::orders::create).get(routes::orders::list),
        )
        .route("/api/orders/{id}", get(routes::orders::get))
        .route("/api/payments/confirm", post(routes::payments::confirm))
        .route("/api/payments/refund", post(routes::payments::refund))
        .route(
            "/api/monitoring/dead-letters/{id}/replay",
            post(monitoring::replay),
        )
        .merge(monitoring_views())
        .route_layer(middleware::from_fn_with_state(
            state.authenticator(),
            auth::require_auth,
        ))
        .layer(DefaultBodyLimit::max(API_BODY_LIMIT));
    let public = Router::new()
        .route("/api/monitoring/health", get(monitoring::health))
        .route("/webhooks/stripe", post(routes::webhooks::stripe));
    let mut router = api.merge(public).with_state(state.clone());
    if let Some(d) = &state.inner.dashboard {
        // The dashboard has no authentication of its own: the service's goes in front.
        let auth = middleware::from_fn_with_state(state.authenticator(), auth::require_auth);
        router = router.nest(DASHBOARD_PATH, d.full.clone().layer(auth));
    }

    router = match state.inner.sendgrid.clone() {
        Some(verifier) => router.merge(
            Router::new()
                .route("/webhooks/sendgrid", post(routes::webhooks::sendgrid))
                .with_state(routes::webhooks::SendGridRoute {
                    app: state.clone(),
                    verifier: std::sync::Arc::new(verifier),
                }),
        ),
        None => router.route("/webhooks/sendgrid", post(not_configured)),
    };
    router = match state.inner.sns.clone() {
        Some(sns) => router.merge(
            Router::new()
                .route("/webhooks/sns", post(routes::webhooks::sns))
                .with_state(routes::webhooks::SnsRoute { app: state, sns }),
        ),
        None => router.route("/webhooks/sns", post(not_configured)),
    };
    router
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
}
