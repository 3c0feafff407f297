//! # integrations-dashboard
//!
//! A monitoring dashboard for the `integrations` crates as an [axum](https://docs.rs/axum)
//! [`Router`](axum::Router) that any service mounts **behind its own authentication**.
//!
//! | shows | from |
//! |---|---|
//! | per integration: health, circuit-breaker state, calls, errors, error rate, p50/p95/p99, retries | core's [`MetricsRegistry`](integrations_core::metrics::MetricsRegistry), read per request (in memory) |
//! | charts of the last hour: latency p50/p99 and calls/errors per integration per interval, outbox depth (pending, leased, dead) | the [`Sample`]s the background sampler takes every `sample_every` |
//! | outbox counts and the oldest dead letters, each with a replay button | the [`OutboxStore`](integrations_outbox::OutboxStore), read once per sample, never per request |
//!
//! The charts are server-rendered SVG, written by hand (see the private `svg` module for why); a few lines
//! of inline script fetch the live part of the page every sample interval and swap it in, with
//! no JavaScript framework, no CDN and no external asset (the page's `Content-Security-Policy`
//! allows nothing from elsewhere). Each series is a `<g data-series>` whose marks carry
//! `data-t` (unix milliseconds) and `data-v`, the exact figure behind them. A missing value (no
//! call in the interval, a `NaN` quantile, an unread outbox) is a gap, never a 0.
//!
//! ```no_run
//! use std::time::Duration;
//! use integrations_core::metrics::MetricsRegistry;
//! use integrations_dashboard::Dashboard;
//! use integrations_outbox::InMemoryOutbox;
//!
//! # async fn demo() -> integrations_core::Result<()> {
//! let registry = MetricsRegistry::new();
//! let dashboard = Dashboard::builder()
//!     .metrics(&registry)
//!     .outbox(InMemoryOutbox::new())
//!     .sample_every(Duration::from_secs(10))
//!     .history(Duration::from_secs(3600))
//!     .build()?;
//! // Your authentication goes in front: the router has none.
//! let app: axum::Router = axum::Router::new().nest("/ops", dashboard.router() /* .layer(auth) */);
//! # let _ = app; Ok(()) }
//! ```
//!
//! | route (relative to the mount point) | what |
//! |---|---|
//! | `GET /` | the page |
//! | `GET /live` | its live part (HTML), which the page fetches every interval |
//! | `GET /api/metrics` | the registry now, the outbox, the dead letters and the samples, as JSON (`null` for a missing number) |
//! | `POST /dead-letters/{id}/replay` | puts a dead letter back; needs the header `x-dashboard-action: replay` ([`REPLAY_HEADER`]) and refuses cross-site `Sec-Fetch-Site`, so a forged form post cannot trigger it. Not in [`Dashboard::read_only_router`] |
//!
//! **Authentication and authorisation are the mounting service's job.** The replay route acts
//! on the outbox; serve [`Dashboard::read_only_router`] wherever viewers must not act.
//!
//! The history is in memory (a restart empties it). A service that keeps longer or durable
//! series persists the samples it receives from [`Dashboard::subscribe`].
#![warn(
    missing_docs,
    missing_debug_implementations,
    unreachable_pub,
    rust_2018_idioms
)]

mod dashboard;
mod history;
mod page;
mod router;
mod sampler;
mod svg;

pub use dashboard::{
    DEAD_LETTERS_SHOWN, DEFAULT_HISTORY, DEFAULT_SAMPLE_EVERY, Dashboard, DashboardBuilder,
    MIN_SAMPLE_EVERY, SUBSCRIBER_BACKLOG,
};
pub use router::{REPLAY_HEADER, REPLAY_HEADER_VALUE};
pub use sampler::{IntegrationPoint, Sample, Sampler, now_ms};
