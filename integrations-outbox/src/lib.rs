//! Durable side effects: an outbox with leases, a dead-letter queue and replay.
//!
//! When a verified webhook event arrives (Stripe's `payment_intent.succeeded`), the side effects
//! it causes — confirmation email, analytics row, notification, metrics — are written as jobs
//! **in the same transaction** as the event's dedup record ([`OutboxStore::record_event`]). Only
//! after that commit does the webhook handler answer `200`. From then on nothing is lost: a
//! [`Dispatcher`] claims the jobs under a lease, delivers each through its [`JobHandler`], and
//! marks it done; a worker that dies mid-delivery simply lets its lease expire and another worker
//! claims the job again. A redelivered event id records nothing, so the provider's retries of the
//! webhook have no second effect.
//!
//! | item | role |
//! |---|---|
//! | [`OutboxStore`] | the contract: record, claim, complete, fail, dead letters, replay |
//! | `SqliteOutbox` | the embedded default: one SQLite file, WAL, migrated on open (feature `sqlite`) |
//! | `PostgresOutbox` | in the service's own Postgres, inside its transaction; many dispatchers on many machines (`SKIP LOCKED`, `LISTEN/NOTIFY`); with `PostgresDedupStore` and `saga::PostgresSagaLog` (feature `postgres`) |
//! | [`InMemoryOutbox`] | the same semantics in memory, for tests and examples |
//! | [`Dispatcher`] | the worker loop: concurrency bound, graceful shutdown, per-run [`RunStats`] |
//! | [`JobHandler`] | delivers one kind of job; [`handler_fn`] makes one from a closure |
//! | [`OutboxMetrics`] | deliveries, failures, delivery latency, backlog gauges: Prometheus text, and the `metrics` facade (feature `metrics`) |
//! | [`OutboxStore::backlog`], [`OutboxCounter`] | what is left to do, at a cost that follows it: for gauges and dashboards ([`OutboxStore::counts`] also counts every done job and event record) |
//! | `behaviour` | the shared behaviour suite every store must pass (feature `testing`) |
//! | [`resolve_traceparent`] | the W3C `traceparent` stored with each job; the handler's span links to it (feature `opentelemetry`) |
//!
//! # Delivery guarantee: at least once, at most once *visibly* where the provider allows
//! A job is delivered at least once. Every job carries a deterministic
//! [`IdempotencyKey`](integrations_core::IdempotencyKey), `"{event_id}/{kind}"` (see [`NewJob`]), the same
//! on every attempt and in every process. Handlers pass it to the provider wherever one is
//! accepted:
//!
//! | provider | where the key goes | effect of a second delivery |
//! |---|---|---|
//! | Stripe | `Idempotency-Key` header | the first response is replayed (for ~24 h), no second charge or refund |
//! | Amazon SNS FIFO | `MessageDeduplicationId` | dropped within SNS's 5-minute dedup window |
//! | Google Sheets | first cell of the row (the row key) | a row whose key is already present is not appended again |
//! | SendGrid / SES email | — (no idempotency key exists) | **a second email** (see below) |
//!
//! For providers without a key the duplicate window is exactly this: the provider **accepted**
//! the request, and our [`complete`](OutboxStore::complete) did not commit — because the process
//! died, the answer was lost or timed out (an attempt that ran past `handler_timeout` is retried
//! even if the provider acted), or the store failed to write the mark. The next claim after the
//! lease expires sends the email again. Outside that window (a failure before the provider
//! accepted, or after our mark) there is no duplicate. The window is one request round trip plus
//! one local commit long; it cannot be closed without the provider's help. SendGrid's help is
//! its Email Activity feed: a handler can tag each email with its job's idempotency key (a
//! custom arg) and, on a retried attempt ([`Job::attempt`] > 1: the claim recorded the earlier
//! attempt before it sent), look the key up with
//! `SendGridClient::messages_with_custom_arg` before sending again — the order flow example
//! does. The feed lags behind acceptance by seconds to minutes, so that narrows the window
//! rather than closing it. SES has no such lookup (its message tags cannot be searched, and
//! its events go only to configured destinations), so an email sent through SES keeps the
//! whole window. With
//! `SqliteOutbox`, a power cut (not a process kill) also undoes the marks committed since the
//! last fsync, usually milliseconds' worth: those jobs run again, which is the same kind of
//! duplicate (see `SqliteOptions`).
//!
//! A handler returns `Ok` only once the effect is durable at the provider: a buffering sink
//! ([`SheetsSink::flush`](integrations_core::SheetsSink::flush)) must be flushed first, or a crash after the
//! mark would lose the row.
//!
//! # Failures, retries and the dead-letter queue
//! Each claim counts an attempt. A handler error that is retryable
//! ([`Error::is_retryable`](integrations_core::Error::is_retryable)) puts the job back until a retry time
//! drawn with full jitter from the dispatcher's [`Backoff`](integrations_core::resilience::Backoff) (at
//! least the provider's `Retry-After`); a permanent error, or a failure on the job's last allowed
//! attempt ([`NewJob::with_max_attempts`], default [`DEFAULT_MAX_ATTEMPTS`]), moves it to the
//! dead-letter queue with an [`ErrorRecord`] (kind, message, provider, code, request id).
//! [`OutboxStore::dead_letters`] lists them, [`OutboxStore::dead_letter`] inspects one, and
//! [`OutboxStore::replay`] puts one back to pending with its attempts reset.
//!
//! # Leases and fencing
//! A claim issues a fresh [`LeaseToken`]; only the current token completes or fails the job, so
//! a worker that stalled past its lease, while another worker re-claimed the job, cannot
//! overwrite the newer attempt's result ([`LEASE_LOST`]). The dispatcher keeps each handler
//! below its lease with `handler_timeout`. Leases are measured on the store's injectable
//! [`Clock`](integrations_core::Clock).
//!
//! # Example
//! ```
//! use std::sync::Arc;
//! use integrations_outbox::{Dispatcher, InMemoryOutbox, NewJob, OutboxStore, handler_fn};
//! use serde_json::json;
//!
//! # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
//! let outbox = Arc::new(InMemoryOutbox::new());
//!
//! // In the webhook handler, after verifying the signature:
//! let jobs = vec![
//!     NewJob::new("email.confirmation", json!({ "order_id": "42" })),
//!     NewJob::new("sheets.row", json!({ "order_id": "42", "amount_minor": 5998 })),
//!     NewJob::new("sns.notify", json!({ "order_id": "42" })),
//! ];
//! outbox.record_event("evt_3MtwBwLkdIwHu7ix28a3tqPa", jobs).await?;
//!
//! // In the worker:
//! let ok = || handler_fn(|_job| async { Ok(()) });
//! let dispatcher = Dispatcher::builder(outbox.clone())
//!     .handler("email.confirmation", ok())
//!     .handler("sheets.row", ok())
//!     .handler("sns.notify", ok())
//!     .build()?;
//! assert_eq!(dispatcher.run_until_idle().await?.succeeded, 3);
//! # Ok::<(), integrations_core::Error>(())
//! # }).unwrap();
//! ```
#![cfg_attr(docsrs, feature(doc_cfg))]

// The core types every module here speaks in.
use integrations_core::{ErrorKind, Result};

#[cfg(feature = "testing")]
#[cfg_attr(docsrs, doc(cfg(feature = "testing")))]
pub mod behaviour;
mod builder;
mod completions;
mod counter;
#[cfg(feature = "sqlite")]
mod db;
mod dispatcher;
mod handler;
mod memory;
mod metrics;
#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub mod postgres;
mod redact;
pub mod saga;
#[cfg(feature = "sqlite")]
mod sqlite;
mod store;
mod trace;
mod types;

pub use builder::{DEFAULT_MAX_RETRY_AFTER, DispatcherBuilder};
pub use counter::{DEFAULT_TOTALS_EVERY, OutboxCounter};
#[cfg(feature = "sqlite")]
pub(crate) use db::{Access, Db, corrupt, sql_error};
#[cfg(feature = "sqlite")]
pub use db::{SQLITE, SqliteOptions, Synchronous};
pub use dispatcher::{Dispatcher, DispatcherWaker, MARK_ATTEMPTS, MARK_BACKOFF, RunStats};
pub use handler::{
    FnHandler, JobHandler, ShutdownSignal, ShutdownTrigger, handler_fn, shutdown_channel,
};
pub use integrations_core::error::{ErrorRecord, parse_error_kind};
pub use memory::InMemoryOutbox;
pub use metrics::{DELIVERY_BUCKETS, OutboxMetrics};
#[cfg(feature = "postgres")]
pub use postgres::{
    NOTIFY_CHANNEL, POSTGRES, PostgresDedupStore, PostgresOptions, PostgresOutbox, WakeOnNotify,
};
pub(crate) use redact::Redacted;
/// The `rusqlite` the SQLite store is built on, for transactions passed to
/// [`SqliteOutbox::record_event_in`] without a version mismatch.
#[cfg(feature = "sqlite")]
pub use rusqlite;
#[cfg(feature = "sqlite")]
pub use sqlite::SqliteOutbox;
pub use store::{
    LEASE_LOST, MIN_LEASE, OutboxStore, check_claim, check_claim_kinds, job_not_found,
    lease_expired_error, lease_lost, prepare_jobs,
};
pub use trace::resolve_traceparent;
#[cfg(feature = "sqlite")]
pub(crate) use types::to_millis;
pub use types::{
    ClaimedJob, DEFAULT_MAX_ATTEMPTS, DeadLetter, FailOutcome, Job, JobId, JobRecord, JobState,
    LeaseOnRecord, LeaseToken, NewJob, OutboxBacklog, OutboxCounts, PurgeOutcome, RecordOutcome,
};
