//! Order store tests, each run on a temporary SQLite file and on a fresh Postgres database (the
//! test server of `.ci/postgres.sh`; skipped loudly without one, failed under `CI=true`).

use integrations_core::{Currency, ErrorKind, Money};

use integrations_outbox::postgres::testing::TestDatabase;
use integrations_outbox::{NewJob, OutboxStore, PostgresOutbox, SqliteOutbox};
use serde_json::json;

use super::*;

fn usd(minor: i64) -> Money {
    Money::from_minor(minor, Currency::USD)
}

fn new_order(total: i64) -> NewOrder {
    NewOrder {
        customer_id: Some("cust_1".into()),
        customer_email: "jane@example.com".into(),
        customer_name: "Jane".into(),
        items: vec![LineItem::new("sku", "Thing", 1, usd(total))],
        total: usd(total),
        shipping: None,
    }
}

/// Runs `check` on a SQLite store and, as `$pg`, on a Postgres one.
macro_rules! both {
    ($sqlite:ident, $pg:ident, $check:ident) => {
        #[tokio::test]
        async fn $sqlite() {
            let dir = tempfile::tempdir().unwrap();
            let outbox = SqliteOutbox::open(dir.path().join("db.sqlite"))
                .await
                .unwrap();
            $check(&OrderStore::sqlite(&outbox).await.unwrap(), &outbox).await;
        }

        #[tokio::test]
        async fn $pg() {
            let Some(db) = TestDatabase::create(stringify!($pg)).await else {
                return;
            };
            let outbox = PostgresOutbox::connect_with(db.options()).await.unwrap();
            $check(&OrderStore::postgres(&outbox).await.unwrap(), &outbox).await;
            outbox.pool().close().await;
            db.drop_database().await.unwrap();
        }
    };
}

/// A refund through an intent, as the route makes it.
async fn refund(s: &OrderStore, id: &str, amount: Money) -> integrations_core::Result<Order> {
    match s.begin_refund(id, Some(amount), None).await? {
        RefundStart::New(intent) => s.finish_refund(&intent, Some("re_1")).await,
        RefundStart::Pending(p) => panic!("pending {p:?}"),
    }
}

both!(
    insert_get_and_client_keys_sqlite,
    insert_get_and_client_keys_postgres,
    insert_get_and_client_keys
);
async fn insert_get_and_client_keys(s: &OrderStore, _: &dyn OutboxStore) {
    let key = |fp: &str| ClientKey {
        key: "k1".into(),
        fingerprint: fp.into(),
    };
    let Inserted::Created(a) = s.insert(new_order(500), Some(key("f"))).await.unwrap() else {
        panic!("not created")
    };
    assert!(a.id.starts_with("ord_") && a.id.len() == 36, "{}", a.id);
    assert_eq!(a.status, OrderStatus::Pending);
    assert_eq!(s.get(&a.id).await.unwrap().unwrap(), a);
    let again = s.insert(new_order(500), Some(key("f"))).await.unwrap();
    assert_eq!(again, Inserted::Existing(a.clone()));
    let e = s.insert(new_order(600), Some(key("g"))).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Conflict);
    assert_eq!(e.code(), Some("idempotency_key_reused"));
    assert!(s.get("ord_missing").await.unwrap().is_none());
}

both!(
    pages_are_newest_first_and_complete_sqlite,
    pages_are_newest_first_and_complete_postgres,
    pages_are_newest_first_and_complete
);
async fn pages_are_newest_first_and_complete(s: &OrderStore, _: &dyn OutboxStore) {
    let mut ids = Vec::new();
    for i in 0..7 {
        ids.push(
            s.insert(new_order(100 + i), None)
                .await
                .unwrap()
                .into_order()
                .id,
        );
    }
    ids.reverse();
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let page = s.list(3, cursor).await.unwrap();
        seen.extend(page.orders.into_iter().map(|o| o.id));
        match page.next {
            Some(n) => cursor = Some(n),
            None => break,
        }
    }
    assert_eq!(seen, ids);
    assert!(s.list(10, None).await.unwrap().next.is_none());
}

both!(
    statuses_and_refunds_sqlite,
    statuses_and_refunds_postgres,
    statuses_only_move_while_unsettled_and_refunds_are_bounded
);
async fn statuses_only_move_while_unsettled_and_refunds_are_bounded(
    s: &OrderStore,
    _: &dyn OutboxStore,
) {
    let o = s.insert(new_order(1000), None).await.unwrap().into_order();
    let o = s
        .attach_payment(&o.id, "pi_1", OrderStatus::Pending)
        .await
        .unwrap();
    assert_eq!(
        s.attach_payment(&o.id, "pi_2", OrderStatus::Pending)
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::Conflict
    );
    let e = refund(s, &o.id, usd(100)).await.unwrap_err();
    assert_eq!(e.code(), Some("order_not_refundable"));
    let o = s
        .update_payment_status(&o.id, OrderStatus::Paid)
        .await
        .unwrap();
    assert_eq!(o.status, OrderStatus::Paid);
    // A late failure event cannot undo the payment.
    let o = s
        .update_payment_status(&o.id, OrderStatus::PaymentFailed)
        .await
        .unwrap();
    assert_eq!(o.status, OrderStatus::Paid);
    let o = refund(s, &o.id, usd(400)).await.unwrap();
    assert_eq!(
        (o.status, o.refunded, o.refund_count),
        (OrderStatus::PartiallyRefunded, usd(400), 1)
    );
    let e = refund(s, &o.id, usd(601)).await.unwrap_err();
    assert_eq!(
        (e.field(), e.code()),
        (Some("amount"), Some("amount_too_large"))
    );
    let o = refund(s, &o.id, usd(600)).await.unwrap();
    assert_eq!(o.status, OrderStatus::Refunded);
    assert_eq!(
        s.status_counts().await.unwrap(),
        vec![(OrderStatus::Refunded, 1)]
    );
}

both!(
    email_status_sqlite,
    email_status_postgres,
    email_status_keeps_the_latest_event
);
async fn email_status_keeps_the_latest_event(s: &OrderStore, _: &dyn OutboxStore) {
    let o = s.insert(new_order(100), None).await.unwrap().into_order();
    assert!(s.set_email_status(&o.id, "delivered", 20).await.unwrap());
    assert!(!s.set_email_status(&o.id, "processed", 10).await.unwrap());
    let o = s.get(&o.id).await.unwrap().unwrap();
    assert_eq!(o.email_status.as_deref(), Some("delivered"));
}

both!(
    payment_event_sqlite,
    payment_event_postgres,
    a_payment_event_and_its_jobs_commit_together_once
);
/// The order's move and the event's jobs are one commit; the same event again changes nothing
/// (not even a status a later event would be allowed to set).
async fn a_payment_event_and_its_jobs_commit_together_once(
    s: &OrderStore,
    outbox: &dyn OutboxStore,
) {
    let o = s.insert(new_order(1000), None).await.unwrap().into_order();
    s.attach_payment(&o.id, "pi_1", OrderStatus::Pending)
        .await
        .unwrap();
    let jobs = || {
        vec![NewJob::new(
            "email.confirmation",
            json!({ "order_id": o.id }),
        )]
    };
    let a = s
        .apply_payment_event(&o.id, OrderStatus::Processing, "evt_1", jobs())
        .await
        .unwrap();
    assert_eq!(a.order.status, OrderStatus::Processing);
    assert!(!a.outcome.is_duplicate());
    let c = outbox.counts().await.unwrap();
    assert_eq!((c.events, c.pending), (1, 1));
    s.update_payment_status(&o.id, OrderStatus::RequiresAction)
        .await
        .unwrap();
    let again = s
        .apply_payment_event(&o.id, OrderStatus::Processing, "evt_1", jobs())
        .await
        .unwrap();
    assert!(again.outcome.is_duplicate());
    assert_eq!(
        again.order.status,
        OrderStatus::RequiresAction,
        "a repeat moved the order"
    );
    assert_eq!(outbox.counts().await.unwrap().pending, 1);
    // An unknown order: nothing recorded.
    let e = s
        .apply_payment_event("ord_missing", OrderStatus::Paid, "evt_2", jobs())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    let c = outbox.counts().await.unwrap();
    assert_eq!((c.events, c.pending), (1, 1), "{c:?}");
}

both!(
    webhook_writes_together_sqlite,
    webhook_writes_together_postgres,
    webhook_writes_commit_together_and_fail_alone
);
async fn webhook_writes_commit_together_and_fail_alone(s: &OrderStore, outbox: &dyn OutboxStore) {
    let a = s.insert(new_order(500), None).await.unwrap().into_order();
    let b = s.insert(new_order(700), None).await.unwrap().into_order();
    let jobs = || vec![NewJob::new("email", json!({}))];
    let groups = s.webhook_write_groups();
    // Five writes started at once (one poll of `join!`): on SQLite they wait for one commit.
    let (paid_a, missing, b_once, b_twice, other) = tokio::join!(
        s.apply_payment_event(&a.id, OrderStatus::Processing, "evt_a", jobs()),
        s.apply_payment_event("ord_missing", OrderStatus::Paid, "evt_m", jobs()),
        s.apply_payment_event(&b.id, OrderStatus::Processing, "evt_b", jobs()),
        s.apply_payment_event(&b.id, OrderStatus::Processing, "evt_b", jobs()),
        s.record_event("evt_other"),
    );
    if let (Some(before), Some(after)) = (groups, s.webhook_write_groups()) {
        assert_eq!(
            after - before,
            1,
            "the five writes were not committed together"
        );
    }
    let paid_a = paid_a.unwrap();
    assert_eq!(paid_a.order.status, OrderStatus::Processing);
    assert!(!paid_a.outcome.is_duplicate());
    // The bad write failed alone, and nothing of it was kept: its event records afresh.
    assert_eq!(missing.unwrap_err().kind(), ErrorKind::NotFound);
    // The same event twice in one group: recorded once, the other answered as a duplicate.
    let (b_once, b_twice) = (b_once.unwrap(), b_twice.unwrap());
    assert!(b_once.outcome.is_duplicate() != b_twice.outcome.is_duplicate());
    assert_eq!(b_twice.order.status, OrderStatus::Processing);
    assert!(!other.unwrap().is_duplicate());
    let c = outbox.counts().await.unwrap();
    assert_eq!((c.events, c.pending), (3, 2), "{c:?}");
    assert!(!s.record_event("evt_m").await.unwrap().is_duplicate());
    assert!(s.record_event("evt_other").await.unwrap().is_duplicate());
}
