//! The order flow end to end on the sandboxes: the example's own invariants, and the outage
//! absorbed by the breaker and the backup email provider.

use integrations_examples::order_flow::invariants::{
    NO_DOUBLE_PAYMENT, NO_LOST_JOB, PAID_FULFILLED,
};
use integrations_examples::order_flow::providers::BACKUP_LABEL;
use integrations_examples::order_flow::{FlowConfig, Outage, run};

fn count(report: &integrations_examples::order_flow::Report, prefix: &str) -> usize {
    report
        .states
        .iter()
        .filter(|(s, _)| s.starts_with(prefix))
        .map(|(_, n)| n)
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_orders_keep_every_invariant_through_an_outage() {
    let mut config = FlowConfig::sandbox(20);
    // 90 failed requests: with the emails no longer queued behind the Sheets rows, up to 32
    // send at once, and 30 failures spread over their first attempts were each absorbed by a
    // retry, so no call failed and the breaker had nothing to open on (seen once in CI).
    config.outage = Some(Outage {
        after_orders: 4,
        failed_requests: 90,
    });
    let report = run(config).await.expect("the run completes");
    assert!(report.ok(), "{report}");
    for name in [NO_DOUBLE_PAYMENT, NO_LOST_JOB, PAID_FULFILLED] {
        let inv = report.invariant(name).expect("checked");
        assert!(inv.ok, "{name}: {}", inv.detail);
    }

    // Orders 7 and 19 pay with declining cards; order 0 is refunded in part.
    assert_eq!(count(&report, "declined"), 2, "{report}");
    assert_eq!(
        count(&report, "paid") + count(&report, "partially refunded"),
        18
    );
    assert_eq!(count(&report, "partially refunded"), 1);

    // The sandbox's own counters: one intent per order, at most one charge per intent, and the
    // dropped answer replayed rather than processed again.
    let p = &report.payments;
    assert_eq!(p.intents, 20);
    assert_eq!(p.max_charges_per_intent, Some(1));
    assert!(p.idempotent_replays.unwrap_or(0) >= 1, "{report}");
    assert_eq!(p.refunds, Some(1));

    // The outage: SendGrid's breaker opened and the backup served while it was open; nothing
    // was lost or dead-lettered.
    let outage = report.outage.as_ref().expect("an outage was injected");
    assert!(
        outage.short_circuits > 0,
        "the breaker never opened:\n{report}"
    );
    assert!(
        report.served_by(BACKUP_LABEL) > 0,
        "the backup served nothing:\n{report}"
    );
    assert_eq!(
        report.served_by("sendgrid") + report.served_by(BACKUP_LABEL),
        18 + 2 + 1
    );
    assert!(report.dead_letters.is_empty(), "{report}");
    assert_eq!(report.outbox.done, report.intake.jobs_recorded);

    // The redelivered webhook was acknowledged and ignored.
    assert!(report.redelivered.is_some());
    assert_eq!(report.intake.duplicates, 1);
    assert_eq!(report.intake.rejected, 0);
    assert_eq!(report.business.orders_paid, 18);

    let text = report.to_string();
    assert!(text.contains("invariants hold"), "{text}");
    assert!(text.contains("sendgrid-backup"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_faults_the_primary_serves_every_email() {
    let mut config = FlowConfig::sandbox(8);
    config.outage = None;
    config.stripe_faults = false;
    let report = run(config).await.expect("the run completes");
    assert!(report.ok(), "{report}");
    assert_eq!(report.served_by(BACKUP_LABEL), 0, "{report}");
    assert_eq!(report.served_by("sendgrid"), 7 + 1 + 1);
    assert_eq!(report.payments.idempotent_replays, Some(0));
    assert!(report.outage.is_none() && report.stripe_faults.is_empty());
    let sendgrid = report.integration("sendgrid").expect("metrics recorded");
    assert_eq!(sendgrid.retries, 0);
    assert_eq!(sendgrid.breaker_state.as_str(), "closed");
}

/// The same flow with the outbox in Postgres (`DATABASE_URL`): every invariant holds, and a
/// second run on the same database is refused rather than mixed with the first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_flow_keeps_every_invariant_with_the_outbox_in_postgres() {
    use integrations_outbox::postgres::testing::TestDatabase;

    let Some(db) = TestDatabase::create("order_flow").await else {
        return;
    };
    let mut config = FlowConfig::sandbox(12);
    config.outage = Some(Outage {
        after_orders: 3,
        failed_requests: 20,
    });
    config.database = Some(db.options().clone());
    let report = run(config.clone()).await.expect("the run completes");
    assert!(report.ok(), "{report}");
    for name in [NO_DOUBLE_PAYMENT, NO_LOST_JOB, PAID_FULFILLED] {
        let inv = report.invariant(name).expect("checked");
        assert!(inv.ok, "{name}: {}", inv.detail);
    }
    assert!(report.dead_letters.is_empty(), "{report}");
    assert_eq!(report.outbox.done, report.intake.jobs_recorded);
    assert!(report.outbox.done > 0);
    let text = report.to_string();
    assert!(text.contains("PostgresOutbox"), "{text}");

    let err = run(config)
        .await
        .expect_err("a second run on the same database");
    assert_eq!(
        err.kind(),
        integrations_core::ErrorKind::Configuration,
        "{err}"
    );
    db.drop_database().await.unwrap();
}
