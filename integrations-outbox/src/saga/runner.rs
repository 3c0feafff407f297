//! [`Saga`]: runs steps forward, compensates in reverse on failure, records every transition.

use std::fmt;
use std::sync::Arc;

use serde_json::Value;

use super::builder::SagaBuilder;
use super::log::SagaLog;
use super::step::{SagaStep, StepContext};
use super::types::{
    SagaOutcome, SagaState, SagaStatus, StepFailure, StepOutputs, StepRecord, StepState,
};
use crate::ErrorRecord;
use integrations_core::Clock;
use integrations_core::resilience::{Backoff, Policy};
use integrations_core::{Error, ErrorKind, IdempotencyKey, Result};

pub(super) struct Entry {
    pub(super) step: Arc<dyn SagaStep>,
    pub(super) policy: Option<Policy>,
}

/// A saga definition bound to a [`SagaLog`]: run new instances, resume crashed ones.
///
/// Every transition is saved before and after each action, so after a crash
/// [`Saga::resume`] (or [`Saga::recover`] at startup) picks up where the log says: a step that
/// had begun runs again under the same idempotency key, a saga that was compensating goes on
/// compensating. A failed step triggers the compensation of every step that succeeded before
/// it, last first, and the failed step itself when it may have acted (an ambiguous error such as a
/// timeout, or `max_step_starts` interrupted starts): such steps are listed in the outcome's
/// `uncertain_steps`. A compensation is retried (retryable errors, with backoff, up to
/// `compensation_attempts` across restarts); one that still fails is recorded and the saga ends
/// as [`SagaStatus::NeedsAttention`], after the remaining compensations have run.
///
/// ```
/// use std::sync::Arc;
/// use async_trait::async_trait;
/// use integrations_outbox::saga::{InMemorySagaLog, Saga, SagaOutcome, SagaStep, StepContext};
/// use integrations_core::Result;
/// use serde_json::{json, Value};
///
/// #[derive(Debug)]
/// struct Tax;
/// #[async_trait]
/// impl SagaStep for Tax {
///     fn name(&self) -> &'static str { "tax" }
///     async fn execute(&self, ctx: &StepContext<'_>) -> Result<Value> {
///         let subtotal = ctx.input["subtotal_minor"].as_i64().unwrap_or(0);
///         Ok(json!({ "tax_minor": subtotal * 8 / 100 }))
///     }
/// }
///
/// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
/// let saga = Saga::builder("checkout", Arc::new(InMemorySagaLog::new())).step(Tax).build()?;
/// let outcome = saga.run("checkout-order-42", json!({ "subtotal_minor": 5000 })).await?;
/// let SagaOutcome::Completed { outputs } = outcome else { panic!() };
/// assert_eq!(outputs.get("tax"), Some(&json!({ "tax_minor": 400 })));
/// # Ok::<(), integrations_core::Error>(())
/// # }).unwrap();
/// ```
pub struct Saga {
    pub(super) definition: String,
    pub(super) steps: Vec<Entry>,
    pub(super) log: Arc<dyn SagaLog>,
    pub(super) clock: Arc<dyn Clock>,
    pub(super) compensation_attempts: u32,
    pub(super) compensation_backoff: Backoff,
    pub(super) max_step_starts: u32,
}

impl fmt::Debug for Saga {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.steps.iter().map(|e| e.step.name()).collect();
        f.debug_struct("Saga")
            .field("definition", &self.definition)
            .field("steps", &names)
            .field("log", &self.log)
            .field("compensation_attempts", &self.compensation_attempts)
            .finish_non_exhaustive()
    }
}

impl Saga {
    /// A builder for the definition `definition` recording into `log`.
    pub fn builder(definition: impl Into<String>, log: Arc<dyn SagaLog>) -> SagaBuilder {
        SagaBuilder::new(definition.into(), log)
    }

    /// Starts saga `saga_id` with `input` and drives it to an end. If the id is already in the
    /// log with the same input, this resumes it instead (so a retried request is harmless).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for an unusable id; [`Error::Conflict`] if the id exists with
    /// another input or definition, or another runner saved it meanwhile; the log's failures.
    /// A failing *step* is not an error: see [`SagaOutcome`].
    pub async fn run(&self, saga_id: &str, input: Value) -> Result<SagaOutcome> {
        IdempotencyKey::derive(saga_id, "saga")
            .map_err(|_| Error::invalid_input("saga_id", "must be non-empty printable ASCII"))?;
        let now = self.clock.now();
        let state = SagaState {
            saga_id: saga_id.to_owned(),
            definition: self.definition.clone(),
            input,
            status: SagaStatus::Running,
            steps: Vec::new(),
            failure: None,
            version: 1,
            created_at: now,
            updated_at: now,
        };
        if self.log.create(&state).await? {
            tracing::info!(saga = %self.definition, saga_id, "saga started");
            return self.drive(state).await;
        }
        let existing = self.load(saga_id).await?;
        if existing.input != state.input {
            return Err(Error::conflict(format!(
                "saga {saga_id} already exists with a different input"
            )));
        }
        self.drive(existing).await
    }

    /// Continues saga `saga_id` from its log: forward if it was running, compensating if it was
    /// compensating; a finished saga just reports its outcome.
    ///
    /// # Errors
    /// [`Error::NotFound`] for an unknown id; [`Error::Conflict`] if it belongs to another
    /// definition, its recorded steps no longer match this definition, or another runner saved
    /// it meanwhile; the log's failures.
    pub async fn resume(&self, saga_id: &str) -> Result<SagaOutcome> {
        let state = self.load(saga_id).await?;
        tracing::info!(saga = %self.definition, saga_id, status = state.status.as_str(), "saga resumed");
        self.drive(state).await
    }

    /// Resumes up to `limit` unfinished sagas of this definition (oldest first), for startup
    /// after a crash. Each result is reported separately.
    ///
    /// # Errors
    /// The log's failure to list them.
    pub async fn recover(&self, limit: usize) -> Result<Vec<(String, Result<SagaOutcome>)>> {
        let mut ids = self
            .log
            .list(&self.definition, SagaStatus::Compensating, limit)
            .await?;
        let left = limit.saturating_sub(ids.len());
        ids.extend(
            self.log
                .list(&self.definition, SagaStatus::Running, left)
                .await?,
        );
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            let result = self.resume(&id).await;
            out.push((id, result));
        }
        Ok(out)
    }

    async fn load(&self, saga_id: &str) -> Result<SagaState> {
        let state = self
            .log
            .load(saga_id)
            .await?
            .ok_or_else(|| super::log::saga_not_found(saga_id))?;
        if state.definition != self.definition {
            return Err(Error::conflict(format!(
                "saga {saga_id} is a `{}`, not a `{}`",
                state.definition, self.definition
            )));
        }
        Ok(state)
    }

    async fn save(&self, state: &mut SagaState) -> Result<()> {
        state.version += 1;
        state.updated_at = self.clock.now();
        self.log.update(state).await
    }

    async fn drive(&self, mut state: SagaState) -> Result<SagaOutcome> {
        if state.steps.len() > self.steps.len() {
            return Err(Error::conflict(format!(
                "saga {} recorded {} steps; this definition of `{}` has only {}",
                state.saga_id,
                state.steps.len(),
                self.definition,
                self.steps.len()
            )));
        }
        if state.status == SagaStatus::Running {
            self.forward(&mut state).await?;
        }
        if state.status == SagaStatus::Compensating {
            self.backward(&mut state).await?;
        }
        outcome(&state)
    }

    fn entry(&self, state: &SagaState, i: usize) -> Result<&Entry> {
        let recorded = &state.steps[i].name;
        match self.steps.get(i) {
            Some(e) if e.step.name() == recorded => Ok(e),
            _ => Err(Error::conflict(format!(
                "saga {}: recorded step {i} is `{recorded}`, which this definition of `{}` does not have there",
                state.saga_id, self.definition
            ))),
        }
    }

    async fn forward(&self, state: &mut SagaState) -> Result<()> {
        for (i, entry) in self.steps.iter().enumerate() {
            let name = entry.step.name();
            match state.steps.get(i).map(|r| r.state) {
                None => state.steps.push(StepRecord::started(name)),
                Some(StepState::Succeeded) => {
                    self.entry(state, i)?;
                    continue;
                }
                Some(StepState::Started) => {
                    self.entry(state, i)?;
                }
                Some(_) => {
                    // Only a failed step ends the forward pass; its save also set Compensating.
                    return self.fail_step(state, i, None).await;
                }
            }
            if state.steps[i].attempts >= self.max_step_starts {
                let error = interrupted(name, state.steps[i].attempts, "step_interrupted");
                // Each interrupted start may have reached the provider.
                state.steps[i].uncertain = true;
                return self.fail_step(state, i, Some(error)).await;
            }
            state.steps[i].attempts += 1;
            state.steps[i].state = StepState::Started;
            self.save(state).await?;
            let outputs = state.outputs();
            let result = self
                .execute(entry, &state.saga_id, &state.input, &outputs)
                .await;
            match result {
                Ok(output) => {
                    let rec = &mut state.steps[i];
                    rec.state = StepState::Succeeded;
                    rec.output = Some(output);
                    rec.error = None;
                    self.save(state).await?;
                    tracing::debug!(saga_id = %state.saga_id, step = name, "saga step succeeded");
                }
                Err(e) => {
                    tracing::warn!(saga_id = %state.saga_id, step = name, error = %e, may_have_acted = e.may_have_acted(), "saga step failed; compensating");
                    state.steps[i].uncertain = e.may_have_acted();
                    return self.fail_step(state, i, Some(ErrorRecord::from(&e))).await;
                }
            }
        }
        state.status = SagaStatus::Completed;
        self.save(state).await?;
        tracing::info!(saga_id = %state.saga_id, "saga completed");
        Ok(())
    }

    async fn fail_step(
        &self,
        state: &mut SagaState,
        i: usize,
        error: Option<ErrorRecord>,
    ) -> Result<()> {
        let rec = &mut state.steps[i];
        if let Some(error) = error {
            rec.state = StepState::Failed;
            rec.error = Some(error);
        }
        if state.failure.is_none() {
            let error = rec
                .error
                .clone()
                .unwrap_or_else(|| interrupted(&rec.name, rec.attempts, "step_failed"));
            state.failure = Some(StepFailure {
                step: rec.name.clone(),
                error,
            });
        }
        state.status = SagaStatus::Compensating;
        self.save(state).await
    }

    async fn backward(&self, state: &mut SagaState) -> Result<()> {
        for i in (0..state.steps.len()).rev() {
            match state.steps[i].state {
                StepState::Succeeded | StepState::Compensating => {
                    let entry = self.entry(state, i)?;
                    self.compensate(state, i, entry).await?;
                }
                StepState::Failed if state.steps[i].uncertain => {
                    tracing::warn!(
                        saga_id = %state.saga_id,
                        step = %state.steps[i].name,
                        "step failed but may have acted; compensating it too"
                    );
                    let entry = self.entry(state, i)?;
                    self.compensate(state, i, entry).await?;
                }
                StepState::Started => {
                    // Begun, never recorded as finished: it may have acted.
                    tracing::warn!(
                        saga_id = %state.saga_id,
                        step = %state.steps[i].name,
                        "step never finished; compensating it in case it acted"
                    );
                    state.steps[i].uncertain = true;
                    let entry = self.entry(state, i)?;
                    self.compensate(state, i, entry).await?;
                }
                StepState::Failed | StepState::Compensated | StepState::CompensationFailed => {}
            }
        }
        let failures = state.compensation_failures();
        state.status = if failures.is_empty() {
            SagaStatus::Compensated
        } else {
            SagaStatus::NeedsAttention
        };
        self.save(state).await?;
        if failures.is_empty() {
            tracing::info!(saga_id = %state.saga_id, "saga compensated");
        } else {
            tracing::error!(saga_id = %state.saga_id, failed = failures.len(), "saga needs attention: compensations failed");
        }
        Ok(())
    }

    async fn compensate(&self, state: &mut SagaState, i: usize, entry: &Entry) -> Result<()> {
        let name = entry.step.name();
        loop {
            let made = state.steps[i].compensation_attempts;
            if made >= self.compensation_attempts {
                let rec = &mut state.steps[i];
                rec.state = StepState::CompensationFailed;
                if rec.error.is_none() {
                    rec.error = Some(interrupted(name, made, "compensation_interrupted"));
                }
                return self.save(state).await;
            }
            state.steps[i].compensation_attempts += 1;
            state.steps[i].state = StepState::Compensating;
            self.save(state).await?;
            let outputs = state.outputs();
            let output = state.steps[i].output.clone().unwrap_or(Value::Null);
            let result = self
                .compensate_once(entry, &state.saga_id, &state.input, &outputs, &output)
                .await;
            let rec = &mut state.steps[i];
            match result {
                Ok(()) => {
                    rec.state = StepState::Compensated;
                    tracing::info!(saga_id = %state.saga_id, step = name, "saga step compensated");
                    return self.save(state).await;
                }
                Err(e) => {
                    rec.error = Some(ErrorRecord::from(&e));
                    let last = rec.compensation_attempts >= self.compensation_attempts;
                    if !e.is_retryable() || last {
                        rec.state = StepState::CompensationFailed;
                        tracing::error!(saga_id = %state.saga_id, step = name, error = %e, "compensation failed for good");
                        return self.save(state).await;
                    }
                    self.save(state).await?;
                    let delay = self.compensation_backoff.delay(made);
                    let delay = delay.max(e.retry_after().unwrap_or_default());
                    tracing::warn!(saga_id = %state.saga_id, step = name, error = %e, ?delay, "compensation failed; retrying");
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }

    async fn execute(
        &self,
        entry: &Entry,
        saga_id: &str,
        input: &Value,
        outputs: &StepOutputs,
    ) -> Result<Value> {
        let step = &*entry.step;
        let ctx = StepContext {
            saga_id,
            step: step.name(),
            idempotency_key: IdempotencyKey::derive(saga_id, step.name())?,
            execution_key: IdempotencyKey::derive(saga_id, step.name())?,
            input,
            outputs,
            attempt: 1,
        };
        match &entry.policy {
            None => step.execute(&ctx).await,
            Some(policy) => {
                let ctx = &ctx;
                policy
                    .call(step.name(), move |attempt| {
                        let mut c = ctx.clone();
                        c.attempt = attempt.number;
                        async move { step.execute(&c).await }
                    })
                    .await
            }
        }
    }

    async fn compensate_once(
        &self,
        entry: &Entry,
        saga_id: &str,
        input: &Value,
        outputs: &StepOutputs,
        output: &Value,
    ) -> Result<()> {
        let step = &*entry.step;
        let ctx = StepContext {
            saga_id,
            step: step.name(),
            idempotency_key: IdempotencyKey::derive(saga_id, step.name())?.child("compensate")?,
            execution_key: IdempotencyKey::derive(saga_id, step.name())?,
            input,
            outputs,
            attempt: 1,
        };
        match &entry.policy {
            None => step.compensate(&ctx, output).await,
            Some(policy) => {
                let ctx = &ctx;
                policy
                    .call("compensate", move |attempt| {
                        let mut c = ctx.clone();
                        c.attempt = attempt.number;
                        async move { step.compensate(&c, output).await }
                    })
                    .await
            }
        }
    }
}

fn interrupted(step: &str, times: u32, code: &str) -> ErrorRecord {
    ErrorRecord {
        kind: ErrorKind::Timeout,
        message: format!(
            "`{step}` was interrupted {times} times without its outcome being recorded"
        ),
        provider: None,
        code: Some(code.to_owned()),
        decline_code: None,
        request_id: None,
        status: None,
        retryable: false,
        may_have_acted: Some(true),
    }
}

fn outcome(state: &SagaState) -> Result<SagaOutcome> {
    let failure = || {
        state.failure.clone().ok_or_else(|| {
            Error::provider(format!(
                "saga {} is {} but has no recorded failure",
                state.saga_id,
                state.status.as_str()
            ))
        })
    };
    Ok(match state.status {
        SagaStatus::Completed => SagaOutcome::Completed {
            outputs: state.outputs(),
        },
        SagaStatus::Compensated => SagaOutcome::Compensated {
            failure: failure()?,
            uncertain_steps: state.uncertain_steps(),
        },
        SagaStatus::NeedsAttention => SagaOutcome::NeedsAttention {
            failure: failure()?,
            compensation_failures: state.compensation_failures(),
            uncertain_steps: state.uncertain_steps(),
        },
        SagaStatus::Running | SagaStatus::Compensating => {
            return Err(Error::provider(format!(
                "saga {} stopped while {}",
                state.saga_id,
                state.status.as_str()
            )));
        }
    })
}
