//! Seed 004's checkout as a saga: reserve inventory → tax → create payment → confirm → create
//! order, with compensations, retries, crashes and restarts.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use integrations_core::resilience::{Backoff, Policy, RetryPolicy};
use integrations_core::{Error, ErrorKind, Result};
use integrations_outbox::saga::{
    InMemorySagaLog, Saga, SagaLog, SagaOutcome, SagaStatus, SagaStep, StepContext, StepState,
};
use serde_json::{Value, json};

type Journal = Arc<Mutex<Vec<String>>>;

/// A checkout step whose failures are scripted and whose calls are journaled.
#[derive(Clone)]
struct Step {
    name: &'static str,
    journal: Journal,
    exec_errors: Arc<Mutex<VecDeque<Error>>>,
    comp_errors: Arc<Mutex<VecDeque<Error>>>,
}

impl Step {
    fn new(name: &'static str, journal: &Journal) -> Self {
        Step {
            name,
            journal: journal.clone(),
            exec_errors: Arc::default(),
            comp_errors: Arc::default(),
        }
    }
    fn failing(self, errors: impl IntoIterator<Item = Error>) -> Self {
        self.exec_errors.lock().unwrap().extend(errors);
        self
    }
    fn failing_compensation(self, errors: impl IntoIterator<Item = Error>) -> Self {
        self.comp_errors.lock().unwrap().extend(errors);
        self
    }
    fn note(&self, s: String) {
        self.journal.lock().unwrap().push(s);
    }
}

#[async_trait]
impl SagaStep for Step {
    fn name(&self) -> &'static str {
        self.name
    }
    async fn execute(&self, ctx: &StepContext<'_>) -> Result<Value> {
        self.note(format!(
            "do {} {} #{}",
            self.name, ctx.idempotency_key, ctx.attempt
        ));
        if let Some(e) = self.exec_errors.lock().unwrap().pop_front() {
            return Err(e);
        }
        let earlier: Vec<&str> = ctx.outputs.iter().map(|(k, _)| k).collect();
        Ok(json!({ "id": format!("{}-{}", self.name, ctx.saga_id), "earlier": earlier }))
    }
    async fn compensate(&self, ctx: &StepContext<'_>, output: &Value) -> Result<()> {
        let id = output["id"].as_str().unwrap_or("<none>");
        self.note(format!("undo {} {id} {}", self.name, ctx.idempotency_key));
        match self.comp_errors.lock().unwrap().pop_front() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

const NAMES: [&str; 5] = [
    "reserve_inventory",
    "calculate_tax",
    "create_payment",
    "confirm_payment",
    "create_order",
];

fn steps(journal: &Journal) -> Vec<Step> {
    NAMES.iter().map(|n| Step::new(n, journal)).collect()
}

fn saga(log: &Arc<InMemorySagaLog>, steps: Vec<Step>) -> Saga {
    let mut b = Saga::builder("checkout", log.clone()).compensation_retry(
        3,
        Backoff::new(Duration::from_secs(1), Duration::from_secs(1), 1.0),
    );
    for s in steps {
        b = b.step(s);
    }
    b.build().unwrap()
}

fn journal() -> Journal {
    Arc::default()
}

fn entries(j: &Journal) -> Vec<String> {
    j.lock().unwrap().clone()
}

fn undos(j: &Journal) -> Vec<String> {
    entries(j)
        .into_iter()
        .filter_map(|e| {
            e.strip_prefix("undo ")
                .map(|s| s.split(' ').next().unwrap().to_owned())
        })
        .collect()
}

fn declined() -> Error {
    Error::declined(
        Some("card_declined".into()),
        None,
        "Your card was declined.",
    )
    .with_provider("stripe")
}

#[tokio::test]
async fn all_steps_succeed_and_see_earlier_outputs() {
    let (j, log) = (journal(), Arc::new(InMemorySagaLog::new()));
    let outcome = saga(&log, steps(&j))
        .run("order-42", json!({ "order": 42 }))
        .await
        .unwrap();
    let SagaOutcome::Completed { outputs } = outcome else {
        panic!("{outcome:?}")
    };
    assert_eq!(outputs.len(), 5);
    assert_eq!(
        outputs.get("create_payment").unwrap()["id"],
        "create_payment-order-42"
    );
    assert_eq!(
        outputs.get("create_order").unwrap()["earlier"],
        json!(&NAMES[..4])
    );
    let expected: Vec<String> = NAMES
        .iter()
        .map(|n| format!("do {n} order-42/{n} #1"))
        .collect();
    assert_eq!(
        entries(&j),
        expected,
        "each step once, in order, keyed by saga id + step"
    );
    let state = log.load("order-42").await.unwrap().unwrap();
    assert_eq!(state.status, SagaStatus::Completed);
    assert!(
        state
            .steps
            .iter()
            .all(|s| s.state == StepState::Succeeded && s.attempts == 1)
    );
}

#[tokio::test]
async fn step_four_failing_compensates_three_two_one_in_reverse() {
    let (j, log) = (journal(), Arc::new(InMemorySagaLog::new()));
    let mut s = steps(&j);
    s[3] = s[3].clone().failing([declined()]);
    let outcome = saga(&log, s).run("order-7", json!({})).await.unwrap();
    let SagaOutcome::Compensated { failure, .. } = outcome else {
        panic!("{outcome:?}")
    };
    assert_eq!(failure.step, "confirm_payment");
    assert_eq!(failure.error.kind, ErrorKind::Declined);
    assert_eq!(failure.error.code.as_deref(), Some("card_declined"));
    assert_eq!(
        undos(&j),
        ["create_payment", "calculate_tax", "reserve_inventory"]
    );
    assert!(
        !entries(&j).iter().any(|e| e.contains("create_order")),
        "no step after the failure"
    );
    assert!(
        entries(&j).contains(
            &"undo create_payment create_payment-order-7 order-7/create_payment/compensate"
                .to_owned()
        ),
        "compensation gets the step's output and its own key: {:?}",
        entries(&j)
    );
    let state = log.load("order-7").await.unwrap().unwrap();
    assert_eq!(state.status, SagaStatus::Compensated);
    let states: Vec<StepState> = state.steps.iter().map(|s| s.state).collect();
    assert_eq!(
        states,
        [
            StepState::Compensated,
            StepState::Compensated,
            StepState::Compensated,
            StepState::Failed
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn a_failing_compensation_is_retried_then_needs_attention_without_looping() {
    let (j, log) = (journal(), Arc::new(InMemorySagaLog::new()));
    let mut s = steps(&j);
    s[3] = s[3].clone().failing([declined()]);
    let outage = (0..10).map(|_| Error::unavailable("stripe down").with_provider("stripe"));
    s[2] = s[2].clone().failing_compensation(outage);
    let started = tokio::time::Instant::now();
    let outcome = saga(&log, s).run("order-8", json!({})).await.unwrap();
    let SagaOutcome::NeedsAttention {
        failure,
        compensation_failures,
        ..
    } = outcome
    else {
        panic!("{outcome:?}")
    };
    assert_eq!(failure.step, "confirm_payment");
    assert_eq!(compensation_failures.len(), 1);
    assert_eq!(compensation_failures[0].step, "create_payment");
    assert_eq!(compensation_failures[0].error.message, "stripe down");
    assert_eq!(
        undos(&j),
        [
            "create_payment",
            "create_payment",
            "create_payment",
            "calculate_tax",
            "reserve_inventory"
        ],
        "3 attempts, then the earlier compensations still run"
    );
    assert!(
        started.elapsed() <= Duration::from_secs(2),
        "backoff between attempts is bounded"
    );
    let state = log.load("order-8").await.unwrap().unwrap();
    assert_eq!(state.status, SagaStatus::NeedsAttention);
    assert_eq!(state.steps[2].state, StepState::CompensationFailed);
    assert_eq!(state.steps[2].compensation_attempts, 3);
    let listed = log
        .list("checkout", SagaStatus::NeedsAttention, 10)
        .await
        .unwrap();
    assert_eq!(listed, ["order-8"]);
    // Resuming a saga that needs attention does not run anything again.
    let again = saga(&log, steps(&j)).resume("order-8").await.unwrap();
    assert!(matches!(again, SagaOutcome::NeedsAttention { .. }));
    assert_eq!(undos(&j).len(), 5);
}

#[tokio::test(start_paused = true)]
async fn transient_compensation_errors_recover_and_permanent_ones_are_not_retried() {
    let (j, log) = (journal(), Arc::new(InMemorySagaLog::new()));
    let mut s = steps(&j);
    s[3] = s[3].clone().failing([declined()]);
    s[2] = s[2].clone().failing_compensation([Error::timeout("slow")]);
    s[0] = s[0]
        .clone()
        .failing_compensation([Error::invalid_input("reservation", "already expired")]);
    let outcome = saga(&log, s).run("order-9", json!({})).await.unwrap();
    let SagaOutcome::NeedsAttention {
        compensation_failures,
        ..
    } = outcome
    else {
        panic!("{outcome:?}")
    };
    assert_eq!(
        undos(&j),
        [
            "create_payment",
            "create_payment",
            "calculate_tax",
            "reserve_inventory"
        ]
    );
    let failed: Vec<&str> = compensation_failures
        .iter()
        .map(|f| f.step.as_str())
        .collect();
    assert_eq!(
        failed,
        ["reserve_inventory"],
        "one permanent failure, not retried"
    );
}

#[tokio::test]
async fn each_step_runs_under_its_policy() {
    let (j, log) = (journal(), Arc::new(InMemorySagaLog::new()));
    let mut s = steps(&j);
    let flaky = s[2]
        .clone()
        .failing([Error::unavailable("blip"), Error::unavailable("blip")]);
    s.remove(2);
    let policy = Policy::builder("stripe")
        .retry(RetryPolicy::new(
            3,
            Backoff::new(Duration::ZERO, Duration::ZERO, 1.0),
        ))
        .build();
    let mut b = Saga::builder("checkout", log.clone());
    for (i, step) in s.into_iter().enumerate() {
        if i == 2 {
            b = b.step_with_policy(flaky.clone(), policy.clone());
        }
        b = b.step(step);
    }
    let outcome = b.build().unwrap().run("order-10", json!({})).await.unwrap();
    assert!(outcome.is_completed(), "{outcome:?}");
    let payment: Vec<String> = entries(&j)
        .into_iter()
        .filter(|e| e.starts_with("do create_payment"))
        .collect();
    let want: Vec<String> = (1..=3)
        .map(|n| format!("do create_payment order-10/create_payment #{n}"))
        .collect();
    assert_eq!(
        payment, want,
        "policy retries reuse the step's idempotency key"
    );
    let state = log.load("order-10").await.unwrap().unwrap();
    assert_eq!(
        state.steps[2].attempts, 1,
        "policy retries are one execution"
    );
}

#[tokio::test]
async fn running_an_existing_id_resumes_it_and_other_inputs_conflict() {
    let (j, log) = (journal(), Arc::new(InMemorySagaLog::new()));
    let saga = saga(&log, steps(&j));
    assert!(
        saga.run("order-11", json!({ "a": 1 }))
            .await
            .unwrap()
            .is_completed()
    );
    assert!(
        saga.run("order-11", json!({ "a": 1 }))
            .await
            .unwrap()
            .is_completed()
    );
    assert_eq!(entries(&j).len(), 5, "a retried request runs nothing again");
    let err = saga.run("order-11", json!({ "a": 2 })).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict);
    assert_eq!(
        saga.resume("nope").await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
    assert_eq!(
        saga.run("", json!({})).await.unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
    let other = Saga::builder("refund", log.clone())
        .step(Step::new("x", &j))
        .build()
        .unwrap();
    assert_eq!(
        other.resume("order-11").await.unwrap_err().kind(),
        ErrorKind::Conflict
    );
}

#[tokio::test]
async fn builder_refuses_bad_definitions() {
    let (j, log) = (journal(), Arc::new(InMemorySagaLog::new()));
    let field = |r: Result<Saga>| r.unwrap_err().field().map(str::to_owned);
    assert_eq!(
        field(Saga::builder("c", log.clone()).build()),
        Some("steps".into())
    );
    let dup = Saga::builder("c", log.clone())
        .step(Step::new("a", &j))
        .step(Step::new("a", &j));
    assert_eq!(field(dup.build()), Some("steps".into()));
    let bad = Saga::builder("c", log.clone()).step(Step::new("a\nb", &j));
    assert_eq!(field(bad.build()), Some("steps".into()));
    let zero = Saga::builder("c", log.clone())
        .step(Step::new("a", &j))
        .max_step_starts(0);
    assert_eq!(field(zero.build()), Some("max_step_starts".into()));
    assert_eq!(
        field(Saga::builder("", log).step(Step::new("a", &j)).build()),
        Some("definition".into())
    );
}

#[tokio::test]
async fn debug_output_hides_inputs_and_outputs() {
    let (j, log) = (journal(), Arc::new(InMemorySagaLog::new()));
    let input = json!({ "email": "jane@example.com", "client_secret": "pi_123_secret_456" });
    let SagaOutcome::Completed { outputs } =
        saga(&log, steps(&j)).run("order-12", input).await.unwrap()
    else {
        panic!()
    };
    let state = log.load("order-12").await.unwrap().unwrap();
    for s in [
        format!("{state:?}"),
        format!("{outputs:?}"),
        format!("{:?}", state.steps[0]),
    ] {
        assert!(
            !s.contains("jane@example.com") && !s.contains("pi_123_secret_456"),
            "{s}"
        );
        assert!(
            !s.contains("create_payment-order-12"),
            "outputs leaked: {s}"
        );
        assert!(s.contains("redacted"), "{s}");
    }
}
