//! [`SagaBuilder`]: assembles and validates a [`Saga`] definition.

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use super::log::SagaLog;
use super::runner::{Entry, Saga};
use super::step::SagaStep;
use integrations_core::resilience::{Backoff, Policy};
use integrations_core::{Clock, SystemClock};
use integrations_core::{Error, IdempotencyKey, Result};

/// Builds a [`Saga`]; see [`Saga::builder`].
///
/// Defaults: 5 compensation attempts with backoff 200 ms doubling to 30 s (full jitter), 3 starts
/// of one step before an interrupted step counts as failed, the system clock.
pub struct SagaBuilder {
    definition: String,
    steps: Vec<Entry>,
    log: Arc<dyn SagaLog>,
    clock: Arc<dyn Clock>,
    compensation_attempts: u32,
    compensation_backoff: Backoff,
    max_step_starts: u32,
}

impl fmt::Debug for SagaBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.steps.iter().map(|e| e.step.name()).collect();
        f.debug_struct("SagaBuilder")
            .field("definition", &self.definition)
            .field("steps", &names)
            .finish_non_exhaustive()
    }
}

impl SagaBuilder {
    pub(super) fn new(definition: String, log: Arc<dyn SagaLog>) -> Self {
        SagaBuilder {
            definition,
            steps: Vec::new(),
            log,
            clock: Arc::new(SystemClock),
            compensation_attempts: 5,
            compensation_backoff: Backoff::new(
                Duration::from_millis(200),
                Duration::from_secs(30),
                2.0,
            ),
            max_step_starts: 3,
        }
    }

    /// Appends a step run without a policy.
    #[must_use]
    pub fn step(mut self, step: impl SagaStep + 'static) -> Self {
        self.steps.push(Entry {
            step: Arc::new(step),
            policy: None,
        });
        self
    }
    /// Appends a step whose execution and compensation each run under `policy` (its retries,
    /// timeouts, breaker and rate limit).
    #[must_use]
    pub fn step_with_policy(mut self, step: impl SagaStep + 'static, policy: Policy) -> Self {
        self.steps.push(Entry {
            step: Arc::new(step),
            policy: Some(policy),
        });
        self
    }
    /// Sets how many times a compensation is attempted (across restarts) and the backoff
    /// between attempts.
    #[must_use]
    pub fn compensation_retry(mut self, attempts: u32, backoff: Backoff) -> Self {
        self.compensation_attempts = attempts;
        self.compensation_backoff = backoff;
        self
    }
    /// Sets how many times one step may be started (the first run plus restarts after crashes
    /// mid-step) before it counts as failed, so a step that kills its process cannot loop.
    #[must_use]
    pub fn max_step_starts(mut self, n: u32) -> Self {
        self.max_step_starts = n;
        self
    }
    /// Sets the clock of the recorded timestamps.
    #[must_use]
    pub fn clock(mut self, clock: impl Clock + 'static) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Builds the saga.
    ///
    /// # Errors
    /// [`Error::Configuration`] naming `definition` (empty), `steps` (none, a duplicate name, or
    /// a name unusable in an idempotency key), `compensation_attempts` or `max_step_starts` (0).
    pub fn build(self) -> Result<Saga> {
        if self.definition.is_empty() {
            return Err(Error::configuration("definition", "must not be empty"));
        }
        if self.steps.is_empty() {
            return Err(Error::configuration(
                "steps",
                "a saga needs at least one step",
            ));
        }
        let mut names = HashSet::new();
        for e in &self.steps {
            let name = e.step.name();
            if IdempotencyKey::derive("saga", name).is_err() {
                return Err(Error::configuration(
                    "steps",
                    format!("step name `{name}` must be non-empty printable ASCII"),
                ));
            }
            if !names.insert(name) {
                return Err(Error::configuration(
                    "steps",
                    format!("two steps are named `{name}`"),
                ));
            }
        }
        if self.compensation_attempts == 0 {
            return Err(Error::configuration(
                "compensation_attempts",
                "must be at least 1",
            ));
        }
        if self.max_step_starts == 0 {
            return Err(Error::configuration(
                "max_step_starts",
                "must be at least 1",
            ));
        }
        Ok(Saga {
            definition: self.definition,
            steps: self.steps,
            log: self.log,
            clock: self.clock,
            compensation_attempts: self.compensation_attempts,
            compensation_backoff: self.compensation_backoff,
            max_step_starts: self.max_step_starts,
        })
    }
}
