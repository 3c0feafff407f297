//! Chaos: each provider in turn answers 500s, 429s with `Retry-After`, hangs past the policy's
//! attempt timeout, or acts and then drops the connection, while orders flow. The invariants
//! hold through every one of them: one payment per order, one row per paid order, one
//! notification per event, every job done; emails are sent twice only where SendGrid accepted a
//! request whose answer was lost (the documented window), exactly once per such answer. A fault
//! that outlasts the retry budget dead-letters precisely the jobs it hit, and nothing else.

use std::time::{Duration, Instant};

use integrations_examples::order_flow::chaos::{ALL_FAULTS, ChaosFault, FaultKind, Target};
use integrations_examples::order_flow::invariants::{
    NO_DOUBLE_PAYMENT, NO_DUPLICATE, NO_LOST_JOB, PAID_FULFILLED, REFUND_DELIVERED,
};
use integrations_examples::order_flow::jobs::NOTIFY;
use integrations_examples::order_flow::notifier::NAME as NOTIFIER;
use integrations_examples::order_flow::{FlowConfig, Report, run};

/// Orders per run: 7 pays with a declining card.
const ORDERS: usize = 8;
/// Requests each transient fault hits.
const FAULTS: usize = 3;

fn config(faults: Vec<ChaosFault>) -> FlowConfig {
    let mut config = FlowConfig::sandbox(ORDERS);
    config.outage = None;
    config.stripe_faults = false;
    config.chaos = faults;
    config
}

async fn transient(target: Target, kind: FaultKind) -> Report {
    let mut config = config(vec![ChaosFault {
        target,
        kind,
        requests: FAULTS,
        after_orders: 1,
    }]);
    if kind == FaultKind::Hang {
        // Held requests are cut off after this and tried again.
        config.attempt_timeout = Some(Duration::from_secs(2));
    }
    let began = Instant::now();
    let report = run(config).await.expect("the run completes");
    eprintln!(
        "{}:{kind}: {:.1} s",
        target.as_str(),
        began.elapsed().as_secs_f64()
    );
    report
}

/// The fault hit all its requests and changed nothing the invariants guard.
fn assert_absorbed(report: &Report, target: Target, kind: FaultKind) {
    let what = format!("{}:{kind}", target.as_str());
    assert!(report.ok(), "{what}\n{report}");
    for name in [NO_DOUBLE_PAYMENT, NO_LOST_JOB, PAID_FULFILLED, NO_DUPLICATE] {
        let inv = report.invariant(name).expect("judged");
        assert!(inv.ok, "{what}: {name}: {}", inv.detail);
    }
    assert_eq!(report.chaos.len(), 1);
    let c = &report.chaos[0];
    assert!(c.injected, "{what}\n{report}");
    assert_eq!(
        c.hit, FAULTS as u64,
        "{what}: the fault hit {} requests\n{report}",
        c.hit
    );
    assert!(report.dead_letters.is_empty(), "{what}\n{report}");
    assert_eq!(report.outbox.done, report.intake.jobs_known, "{what}");
    assert_eq!(report.payments.intents, ORDERS as u64, "{what}");
    assert_eq!(report.payments.max_charges_per_intent, Some(1), "{what}");
    assert_eq!(report.payments.refunds, Some(1), "{what}");
    assert_eq!(report.business.orders_paid, ORDERS as u64 - 1, "{what}");
    // Only an answer lost after SendGrid accepted may send an email twice, once per answer.
    let lost =
        u64::from(target == Target::SendGrid && kind == FaultKind::DropAfterAccept) * FAULTS as u64;
    assert_eq!(report.duplicate_emails, lost, "{what}\n{report}");
    if target == Target::Stripe && kind == FaultKind::DropAfterAccept {
        let replays = report.payments.idempotent_replays.unwrap_or(0);
        assert!(replays >= FAULTS as u64, "{what}: {replays} replays");
    }
}

async fn each_fault_of(target: Target) {
    for kind in ALL_FAULTS {
        let report = transient(target, kind).await;
        assert_absorbed(&report, target, kind);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stripe_faults_charge_nobody_twice() {
    each_fault_of(Target::Stripe).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sendgrid_faults_lose_no_email_and_duplicate_only_lost_answers() {
    each_fault_of(Target::SendGrid).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sheets_faults_leave_one_row_per_order() {
    each_fault_of(Target::Sheets).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notifier_faults_leave_one_notification_per_event() {
    each_fault_of(Target::Notifier).await;
}

/// The notifier down for good: every notify job uses all its attempts (each a policy call of up
/// to 3 tries, or refused by the notifier's open breaker, which the outbox also retries) and is
/// dead-lettered; every other job is delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fault_outlasting_the_retry_budget_dead_letters_exactly_its_jobs() {
    let config = config(vec![ChaosFault {
        target: Target::Notifier,
        kind: FaultKind::ServerError,
        requests: 10_000,
        after_orders: 0,
    }]);
    let attempts = config.max_attempts;
    let report = run(config).await.expect("the run completes");

    let events = ORDERS as u64 + 1; // a payment event per order, and the refund
    assert_eq!(report.intake.events_known(), events, "{report}");
    let dead = &report.dead_letters;
    assert_eq!(dead.len() as u64, events, "{report}");
    for d in dead {
        assert_eq!(d.kind, NOTIFY, "{report}");
        assert_eq!(d.attempts, attempts, "all attempts used:\n{report}");
        assert!(
            d.error.starts_with("unavailable") || d.error.starts_with("circuit_open"),
            "{}",
            d.error
        );
    }
    let hit = report.chaos[0].hit;
    let budget = events * u64::from(attempts) * 3;
    assert!(
        hit >= events && hit <= budget,
        "{hit} of {budget}\n{report}"
    );
    let notifier = report.integration(NOTIFIER).expect("metrics");
    assert_eq!(notifier.successes, 0, "{report}");
    assert_eq!(report.outbox.dead, events);
    assert_eq!(report.outbox.done + events, report.intake.jobs_known);

    // Nothing lost, nothing doubled; only the notifications are missing, and said to be.
    let failed: Vec<&str> = report
        .invariants
        .iter()
        .filter(|i| !i.ok)
        .map(|i| i.name)
        .collect();
    assert_eq!(failed, [PAID_FULFILLED, REFUND_DELIVERED], "{report}");
    let missing = &report.invariant(PAID_FULFILLED).expect("judged").detail;
    assert!(missing.contains("no notification"), "{missing}");
    assert!(!missing.contains("no confirmation email"), "{missing}");
    assert_eq!(report.duplicate_emails, 0);
}
