//! The recorded state of a saga and what a run returns.

use std::collections::BTreeMap;
use std::fmt;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::Redacted;
use integrations_core::ErrorRecord;

/// Where a saga is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SagaStatus {
    /// Executing steps forward.
    Running,
    /// A step failed; compensating the steps that succeeded, in reverse order.
    Compensating,
    /// Every step succeeded.
    Completed,
    /// A step failed and every earlier step was compensated.
    Compensated,
    /// A step failed and at least one compensation failed for good: a person must look.
    NeedsAttention,
}

impl SagaStatus {
    /// Stable snake_case name, as stored.
    pub const fn as_str(self) -> &'static str {
        match self {
            SagaStatus::Running => "running",
            SagaStatus::Compensating => "compensating",
            SagaStatus::Completed => "completed",
            SagaStatus::Compensated => "compensated",
            SagaStatus::NeedsAttention => "needs_attention",
        }
    }

    /// `true` for the states a restart must pick up (running, compensating).
    pub const fn is_unfinished(self) -> bool {
        matches!(self, SagaStatus::Running | SagaStatus::Compensating)
    }
}

/// Where one step is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepState {
    /// Execution began and has not been recorded as finished (after a crash: outcome unknown,
    /// so it runs again under the same idempotency key).
    Started,
    /// Executed; its output is recorded.
    Succeeded,
    /// Execution failed. If the failure certainly left no effect (a rejection, an error marked
    /// not processed) the step is not compensated; if the call may have acted
    /// ([`StepRecord::uncertain`]: a timeout, a `5xx` after the request was sent, a step
    /// interrupted `max_step_starts` times) it is compensated like a succeeded one.
    Failed,
    /// Compensation began and has not been recorded as finished.
    Compensating,
    /// Compensated.
    Compensated,
    /// Compensation failed for good (permanent error or attempts used up).
    CompensationFailed,
}

/// The record of one step.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    /// The step's name.
    pub name: String,
    /// Its state.
    pub state: StepState,
    /// The step's output, once it succeeded (what its compensation needs, e.g. a payment id).
    pub output: Option<Value>,
    /// Executions begun (more than one after a crash mid-step).
    pub attempts: u32,
    /// Compensation attempts begun.
    pub compensation_attempts: u32,
    /// The last error of its execution or compensation.
    pub error: Option<ErrorRecord>,
    /// The step did not succeed but may have acted (its error was ambiguous, or it was
    /// interrupted too often): it is compensated anyway, and the outcome lists it.
    #[serde(default)]
    pub uncertain: bool,
}

impl StepRecord {
    pub(crate) fn started(name: &str) -> Self {
        StepRecord {
            name: name.to_owned(),
            state: StepState::Started,
            output: None,
            attempts: 0,
            compensation_attempts: 0,
            error: None,
            uncertain: false,
        }
    }
}

impl fmt::Debug for StepRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StepRecord")
            .field("name", &self.name)
            .field("state", &self.state)
            .field("output", &self.output.as_ref().map(Redacted))
            .field("attempts", &self.attempts)
            .field("compensation_attempts", &self.compensation_attempts)
            .field("error", &self.error)
            .field("uncertain", &self.uncertain)
            .finish()
    }
}

/// The step that failed and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepFailure {
    /// Step name.
    pub step: String,
    /// Its error.
    pub error: ErrorRecord,
}

/// Everything recorded about one saga: a snapshot the log stores whole, version-checked.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct SagaState {
    /// The saga's id (e.g. `"checkout-order-42"`); step idempotency keys derive from it.
    pub saga_id: String,
    /// The saga definition's name (e.g. `"checkout"`).
    pub definition: String,
    /// The input it was started with.
    pub input: Value,
    /// Status.
    pub status: SagaStatus,
    /// One record per step begun, in order.
    pub steps: Vec<StepRecord>,
    /// The step failure that triggered compensation, if any.
    pub failure: Option<StepFailure>,
    /// Incremented by every save; a log refuses a save whose version does not follow the stored
    /// one, so two runners cannot drive one saga at once.
    pub version: u64,
    /// When it started.
    pub created_at: SystemTime,
    /// Last save.
    pub updated_at: SystemTime,
}

impl SagaState {
    /// The outputs recorded so far.
    pub fn outputs(&self) -> StepOutputs {
        StepOutputs(
            self.steps
                .iter()
                .filter_map(|s| s.output.clone().map(|o| (s.name.clone(), o)))
                .collect(),
        )
    }

    /// Names of the steps that did not succeed but may have acted (compensated anyway), in
    /// step order.
    pub fn uncertain_steps(&self) -> Vec<String> {
        self.steps
            .iter()
            .filter(|s| s.uncertain)
            .map(|s| s.name.clone())
            .collect()
    }

    /// Steps whose compensation failed for good.
    pub fn compensation_failures(&self) -> Vec<StepFailure> {
        self.steps
            .iter()
            .filter(|s| s.state == StepState::CompensationFailed)
            .filter_map(|s| {
                s.error.clone().map(|error| StepFailure {
                    step: s.name.clone(),
                    error,
                })
            })
            .collect()
    }
}

impl fmt::Debug for SagaState {
    // Inputs and outputs may carry personal data or secrets (a PaymentIntent's client secret).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SagaState")
            .field("saga_id", &self.saga_id)
            .field("definition", &self.definition)
            .field("input", &Redacted(&self.input))
            .field("status", &self.status)
            .field("steps", &self.steps)
            .field("failure", &self.failure)
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

/// Step outputs by step name, in step order.
#[derive(Clone, Default, PartialEq)]
pub struct StepOutputs(Vec<(String, Value)>);

impl StepOutputs {
    /// The output of `step`, if it produced one.
    pub fn get(&self, step: &str) -> Option<&Value> {
        self.0.iter().find(|(k, _)| k == step).map(|(_, v)| v)
    }
    /// `(step, output)` pairs in step order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v))
    }
    /// Number of outputs.
    pub fn len(&self) -> usize {
        self.0.len()
    }
    /// `true` if none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    /// The outputs as a map by step name.
    pub fn into_map(self) -> BTreeMap<String, Value> {
        self.0.into_iter().collect()
    }
}

impl fmt::Debug for StepOutputs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.0.iter().map(|(k, v)| (k, Redacted(v))))
            .finish()
    }
}

/// How a saga ended (a failed step is an outcome, not an `Err`: `Err` means the log failed).
#[derive(Debug, Clone, PartialEq)]
pub enum SagaOutcome {
    /// Every step succeeded.
    Completed {
        /// Outputs by step.
        outputs: StepOutputs,
    },
    /// A step failed and every earlier step was compensated (and the failed step too, if it
    /// may have acted).
    Compensated {
        /// The failure.
        failure: StepFailure,
        /// Steps that failed ambiguously (they may have acted) and were compensated anyway; an
        /// operator may want to check the provider for them.
        uncertain_steps: Vec<String>,
    },
    /// A step failed and some compensations failed for good.
    NeedsAttention {
        /// The failure that triggered compensation.
        failure: StepFailure,
        /// The compensations that failed.
        compensation_failures: Vec<StepFailure>,
        /// Steps that failed ambiguously (they may have acted); see
        /// [`SagaOutcome::Compensated::uncertain_steps`].
        uncertain_steps: Vec<String>,
    },
}

impl SagaOutcome {
    /// `true` for [`SagaOutcome::Completed`].
    pub fn is_completed(&self) -> bool {
        matches!(self, SagaOutcome::Completed { .. })
    }

    /// The steps that failed but may have acted (empty for a completed saga).
    pub fn uncertain_steps(&self) -> &[String] {
        match self {
            SagaOutcome::Completed { .. } => &[],
            SagaOutcome::Compensated {
                uncertain_steps, ..
            }
            | SagaOutcome::NeedsAttention {
                uncertain_steps, ..
            } => uncertain_steps,
        }
    }
}
