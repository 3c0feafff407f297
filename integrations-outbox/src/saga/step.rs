//! [`SagaStep`]: one forward action and its compensation.

use async_trait::async_trait;
use serde_json::Value;

use super::types::StepOutputs;
use integrations_core::{IdempotencyKey, Result};

/// What a step sees when it runs or compensates.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct StepContext<'a> {
    /// The saga's id.
    pub saga_id: &'a str,
    /// This step's name.
    pub step: &'static str,
    /// Deterministic key of this action: `"{saga_id}/{step}"` for execution,
    /// `"{saga_id}/{step}/compensate"` for compensation. The same after a crash and restart, so
    /// a provider that deduplicates (Stripe) never acts twice.
    pub idempotency_key: IdempotencyKey,
    /// The key the step's *execution* ran under (`"{saga_id}/{step}"`), also when compensating:
    /// how a compensation of an uncertain step finds the effect it may have left.
    pub execution_key: IdempotencyKey,
    /// The saga's input.
    pub input: &'a Value,
    /// Outputs of the steps before this one (for a compensation: of every step that produced
    /// one).
    pub outputs: &'a StepOutputs,
    /// The policy's attempt number within this execution (1 without a policy).
    pub attempt: u32,
}

/// One step of a saga: a forward action, its compensation, and a stable name.
///
/// `execute` may run more than once for one saga: after a crash between the provider acting and
/// the log recording it, the step runs again with the same [`StepContext::idempotency_key`], so
/// it must be idempotent under that key (pass it to the provider, or look up the effect before
/// acting).
///
/// **The compensation contract.** `compensate` runs for every step that succeeded *and* for every
/// step that may have acted without succeeding: one whose `execute` failed with an ambiguous
/// error ([`Error::may_have_acted`](integrations_core::Error::may_have_acted): a timeout, a
/// `5xx` after the request was sent) or that was interrupted `max_step_starts` times. A step whose
/// `execute` failed with an error that certainly left no effect (a decline, invalid input, an
/// error marked not processed) is not compensated. So `compensate` must:
///
/// - be idempotent under [`StepContext::idempotency_key`] (it may run more than once);
/// - be a no-op when there is nothing to undo: for an uncertain step it gets `Value::Null` as
///   the output, and must find the effect itself (e.g. by the execution's key,
///   [`StepContext::execution_key`]) and succeed without acting if there is none.
///
/// For a succeeded step `compensate` gets the output `execute` returned (persisted, so it is
/// there after a restart).
///
/// ```
/// use async_trait::async_trait;
/// use integrations_outbox::saga::{SagaStep, StepContext};
/// use integrations_core::Result;
/// use serde_json::{json, Value};
///
/// #[derive(Debug)]
/// struct ReserveInventory;
///
/// #[async_trait]
/// impl SagaStep for ReserveInventory {
///     fn name(&self) -> &'static str {
///         "reserve_inventory"
///     }
///     async fn execute(&self, ctx: &StepContext<'_>) -> Result<Value> {
///         // POST /reservations with ctx.idempotency_key …
///         Ok(json!({ "reservation_id": format!("res-{}", ctx.saga_id) }))
///     }
///     async fn compensate(&self, _ctx: &StepContext<'_>, output: &Value) -> Result<()> {
///         let _id = output["reservation_id"].as_str();
///         // DELETE /reservations/{id} …
///         Ok(())
///     }
/// }
/// ```
#[async_trait]
pub trait SagaStep: Send + Sync {
    /// Unique name within the saga; recorded, and part of the idempotency keys, so never rename
    /// a step while sagas using it may still be unfinished.
    fn name(&self) -> &'static str;

    /// Performs the step and returns what later steps and the compensation need.
    ///
    /// # Errors
    /// Any failure; the saga then compensates the steps before this one.
    async fn execute(&self, ctx: &StepContext<'_>) -> Result<Value>;

    /// Undoes the step, given its output. The default does nothing (for steps with no lasting
    /// effect, such as a tax quote).
    ///
    /// # Errors
    /// Any failure; retryable ones are retried, then the saga needs attention.
    async fn compensate(&self, ctx: &StepContext<'_>, output: &Value) -> Result<()> {
        let _ = (ctx, output);
        Ok(())
    }
}
