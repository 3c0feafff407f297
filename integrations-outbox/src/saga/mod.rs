//! Sagas: steps with compensations, progress recorded so a crashed saga resumes or compensates.
//!
//! A checkout touches services that share no transaction: reserve inventory → quote tax →
//! create the payment → confirm it → create the order. If the fourth step fails, the first three
//! must be undone, last first (cancel the payment, release the reservation). A [`Saga`] runs the
//! [`SagaStep`]s forward, each optionally under a [`Policy`](integrations_core::resilience::Policy), and on a
//! failure runs the compensations of the steps that succeeded in reverse order.
//!
//! | item | role |
//! |---|---|
//! | [`Saga`], [`SagaBuilder`] | the definition: ordered steps, per-step policy, compensation retry |
//! | [`SagaStep`], [`StepContext`] | one action and its compensation; the context carries the idempotency key and earlier outputs |
//! | [`SagaLog`] | where progress is recorded: [`InMemorySagaLog`], `SqliteSagaLog` (feature `sqlite`) |
//! | [`SagaState`], [`SagaOutcome`] | the recorded snapshot and how a run ended |
//!
//! # Durability and restart
//! Every transition is saved to the log before the next action: *step started*, *step succeeded
//! with its output* (a `serde_json::Value`, so a compensation after a restart still has e.g. the
//! payment id to cancel), *step failed*, *compensation started*, *compensated*, *compensation
//! failed*. After a crash, [`Saga::resume`] (or [`Saga::recover`] for every unfinished saga at
//! startup) continues from the last saved transition:
//!
//! * a step recorded as started but not finished runs again — with the **same idempotency key**
//!   (`"{saga_id}/{step}"`), so a provider that deduplicates (Stripe) does not act twice. After
//!   `max_step_starts` starts (default 3) such a step counts as failed, so a step that crashes its
//!   process cannot loop forever;
//! * a compensation recorded as started runs again with `"{saga_id}/{step}/compensate"`.
//!
//! Saves are version-checked ([`SagaState::version`]): if two processes resume the same saga,
//! the second one's save fails with a conflict instead of interleaving.
//!
//! # Compensation failures
//! A compensation that fails with a retryable error is retried with full-jitter backoff, up to
//! `compensation_attempts` (default 5, counted across restarts). One that fails permanently or
//! runs out of attempts is recorded as [`StepState::CompensationFailed`]; the remaining (earlier)
//! compensations still run, and the saga ends as [`SagaStatus::NeedsAttention`] with the failures
//! listed — it never loops forever. Find such sagas with [`SagaLog::list`].
//!
//! # Example
//! ```
//! use std::sync::{Arc, Mutex};
//! use async_trait::async_trait;
//! use integrations_outbox::saga::{InMemorySagaLog, Saga, SagaOutcome, SagaStep, StepContext};
//! use integrations_core::{Error, Result};
//! use serde_json::{json, Value};
//!
//! #[derive(Debug)]
//! struct Step { name: &'static str, fail: bool, undone: Arc<Mutex<Vec<&'static str>>> }
//!
//! #[async_trait]
//! impl SagaStep for Step {
//!     fn name(&self) -> &'static str { self.name }
//!     async fn execute(&self, ctx: &StepContext<'_>) -> Result<Value> {
//!         if self.fail { return Err(Error::declined(Some("card_declined".into()), None, "declined")); }
//!         Ok(json!({ "key": ctx.idempotency_key.as_str() }))
//!     }
//!     async fn compensate(&self, _ctx: &StepContext<'_>, _output: &Value) -> Result<()> {
//!         self.undone.lock().unwrap().push(self.name);
//!         Ok(())
//!     }
//! }
//!
//! # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
//! let undone = Arc::new(Mutex::new(Vec::new()));
//! let step = |name, fail| Step { name, fail, undone: undone.clone() };
//! let saga = Saga::builder("checkout", Arc::new(InMemorySagaLog::new()))
//!     .step(step("reserve_inventory", false))
//!     .step(step("create_payment", false))
//!     .step(step("confirm_payment", true))
//!     .build()?;
//! let outcome = saga.run("checkout-order-42", json!({ "order_id": "42" })).await?;
//! assert!(matches!(outcome, SagaOutcome::Compensated { .. }));
//! assert_eq!(*undone.lock().unwrap(), ["create_payment", "reserve_inventory"]);
//! # Ok::<(), integrations_core::Error>(())
//! # }).unwrap();
//! ```

mod builder;
mod log;
#[cfg(feature = "postgres")]
mod postgres;
mod runner;
#[cfg(feature = "sqlite")]
mod sqlite;
mod step;
mod types;

pub use builder::SagaBuilder;
pub use log::{InMemorySagaLog, SagaLog, saga_not_found, version_conflict};
#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub use postgres::PostgresSagaLog;
pub use runner::Saga;
#[cfg(feature = "sqlite")]
pub use sqlite::SqliteSagaLog;
pub use step::{SagaStep, StepContext};
pub use types::{
    SagaOutcome, SagaState, SagaStatus, StepFailure, StepOutputs, StepRecord, StepState,
};
