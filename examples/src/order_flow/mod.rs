//! The seed's order workflow, end to end, on the `integrations` crates.
//!
//! ```text
//! checkout ──► order stored ──► payment intent (key ord_…/payment) ──► card confirmed (ord_…/payment/confirm)
//!                                                                            │
//!   Stripe signs the event ──► POST /webhooks/stripe ──► verified (raw bytes, v1 HMAC, tolerance)
//!                                                                            │
//!   dispatcher.record_event(evt_id, jobs) — one SQLite transaction; a redelivery records nothing;
//!   the email, notification and metrics jobs are written leased to their lane and run at once
//!                                                                            │
//!   dispatchers, concurrently with checkout: email (SendGrid ─failover─► backup) · analytics row
//!                                            (Sheets, batched under quota) · notification · metrics
//! ```
//!
//! [`run`] does it for a batch of orders — a few with declining test cards, one partial refund,
//! one webhook delivered twice, one SendGrid outage injected mid-run — and returns a [`Report`]
//! whose invariants (no double payment, no lost job, every paid order fully served, nothing
//! delivered twice, …) are checked against what the providers themselves received.
//!
//! With [`FlowConfig::state_dir`] (`--state-dir`) the run survives its process: killed at any
//! point and started again on the same directory, it resumes — orders, outbox, counters and
//! notifications are on disk, Stripe replays what it did under the same idempotency keys, and
//! its events are read again and found recorded. [`FlowConfig::chaos`] (`--chaos`) injects a
//! provider's faults while orders flow.
//!
//! | module | what |
//! |---|---|
//! | [`config`] | [`FlowConfig`], command line, which services are real |
//! | [`state`], [`journal`] | the state directory of a run that can be killed and resumed |
//! | [`chaos`] | faults planned into a run, and how many requests they hit |
//! | [`providers`], [`policies`] | sandboxes or real clients, the email failover; their resilience policies |
//! | [`orders`] | the orders and the order store |
//! | [`checkout`] | payment intent, confirmation, refund |
//! | [`intake`] | the webhook endpoint: verify, route, record once |
//! | [`jobs`] | the fan-out and its handlers |
//! | [`notifier`] | [`JsonlNotifier`](notifier::JsonlNotifier), the local SNS |
//! | [`ledger`] | what handlers delivered; the shop's business counters |
//! | [`audit`], [`invariants`] | evidence from the providers, and the checks |
//! | [`by_order`] | per-order tallies kept by the order's number, a few bytes an order |
//! | [`report`] | the [`Report`] and its text form |
//! | [`progress`] | progress bars |
//! | [`measure`] | time per order and memory per slice of a run; the scale bench |
//!
//! ```
//! use integrations_examples::order_flow::{FlowConfig, run};
//!
//! # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
//! let mut config = FlowConfig::sandbox(5); // sandboxes only, whatever the environment says
//! config.outage = None;
//! let report = run(config).await?;
//! assert!(report.ok(), "{report}");
//! assert_eq!(report.payments.max_charges_per_intent, Some(1));
//! # Ok::<(), integrations_core::Error>(())
//! # }).unwrap();
//! ```

pub mod audit;
pub mod by_order;
pub mod chaos;
pub mod checkout;
pub mod config;
pub mod intake;
pub mod invariants;
pub mod jobs;
pub mod journal;
pub mod ledger;
pub mod measure;
pub mod notifier;
pub mod orders;
pub mod outbox;
pub mod paged;
pub mod payment_tally;
mod pipeline;
pub mod policies;
pub mod progress;
pub mod providers;
pub mod report;
mod run;
pub mod state;

pub use config::{Command, Environment, FlowConfig, Outage, USAGE, parse_args};
pub use report::Report;
pub use run::{Flow, run};
