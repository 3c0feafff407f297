//! An order's change and the jobs it owes are one transaction, on both stores: a fault injected
//! between the order write and the outbox insert leaves neither, the commit leaves both; two
//! service instances on one database, each handed the same webhook at the same moment, record
//! one set of jobs. The Postgres half needs the test server (`.ci/postgres.sh start`): skipped
//! loudly without one, failed under `CI=true`.

mod common;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::{Db, Harness};
use integrations_core::IdempotencyKey;
use integrations_core::provider::PaymentProvider;
use integrations_order_service::orders::OrderStore;
use integrations_outbox::postgres::testing::TestDatabase;
use integrations_outbox::{OutboxStore, PostgresOutbox};
use integrations_stripe::StripePayments;
use integrations_stripe::sandbox::WebhookDelivery;
use serde_json::Value;
use tower::ServiceExt;

/// A SQLite harness, or a Postgres one (`None`: no test server, outside CI).
async fn harness(postgres: bool, test: &str) -> Option<Harness> {
    let db = if postgres {
        Db::Postgres(Box::new(TestDatabase::create(test).await?))
    } else {
        Db::Sqlite(tempfile::tempdir().unwrap())
    };
    Some(Harness::on(db, |b| b).await)
}

/// Creates an order, pays it directly at Stripe (as a browser would) and returns the order id
/// and the `payment_intent.succeeded` delivery the service has not seen yet.
async fn paid_at_stripe(h: &Harness) -> (String, WebhookDelivery) {
    let order = h.create_order().await["order"].clone();
    let payments = StripePayments::new(h.stripe.client().unwrap());
    let pi = order["paymentIntentId"].as_str().unwrap();
    let key = IdempotencyKey::derive(pi, "browser-confirm").unwrap();
    payments
        .confirm_payment(pi, Some("pm_card_visa"), &key)
        .await
        .unwrap();
    let d = h
        .take_deliveries()
        .into_iter()
        .find(|d| d.event_type == "payment_intent.succeeded")
        .unwrap();
    (order["id"].as_str().unwrap().to_owned(), d)
}

async fn status_of(h: &Harness, id: &str) -> String {
    h.orders.get(id).await.unwrap().unwrap().status.to_string()
}

/// POSTs `d` to `/webhooks/stripe` on `router`: the status and `data.duplicate`.
async fn deliver_to(router: Router, d: WebhookDelivery) -> (StatusCode, Value) {
    let req = Request::builder()
        .method("POST")
        .uri("/webhooks/stripe")
        .header("content-type", "application/json; charset=utf-8")
        .header("stripe-signature", &d.signature)
        .body(Body::from(d.payload.clone()))
        .unwrap();
    let resp = router.oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap();
    let json: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, json["data"]["duplicate"].clone())
}

/// Faults raised by a trigger, in each dialect: on the order's status write (after the outbox
/// rows are inserted in the same transaction) and on the outbox's job insert.
const FAULTS: [(&str, &str, &str); 2] = [
    (
        "CREATE TRIGGER fault BEFORE UPDATE OF status ON orders
            BEGIN SELECT RAISE(ABORT, 'injected: the order write fails'); END;",
        "CREATE FUNCTION fault() RETURNS trigger LANGUAGE plpgsql AS
            $$ BEGIN RAISE EXCEPTION 'injected: the order write fails'; END $$;
         CREATE TRIGGER fault BEFORE UPDATE OF status ON orders
            FOR EACH ROW EXECUTE FUNCTION fault();",
        "orders",
    ),
    (
        "CREATE TRIGGER fault BEFORE INSERT ON outbox_jobs
            BEGIN SELECT RAISE(ABORT, 'injected: the outbox insert fails'); END;",
        "CREATE FUNCTION fault() RETURNS trigger LANGUAGE plpgsql AS
            $$ BEGIN RAISE EXCEPTION 'injected: the outbox insert fails'; END $$;
         CREATE TRIGGER fault BEFORE INSERT ON integrations_outbox_jobs
            FOR EACH ROW EXECUTE FUNCTION fault();",
        "integrations_outbox_jobs",
    ),
];

async fn a_fault_leaves_neither_and_the_commit_leaves_both(postgres: bool, test: &str) {
    let Some(h) = harness(postgres, test).await else {
        return;
    };
    let (id, d) = paid_at_stripe(&h).await;
    for (sqlite_fault, pg_fault, table) in FAULTS {
        h.db.execute(sqlite_fault, pg_fault).await;
        let r = h.deliver(&d).await;
        // Any non-2xx makes Stripe redeliver (a trigger's abort reads as a 409 on SQLite).
        assert!(!r.status.is_success(), "{table}: {} {}", r.status, r.text);
        assert_eq!(
            status_of(&h, &id).await,
            "pending",
            "{table}: the order moved"
        );
        let c = h.outbox.counts().await.unwrap();
        assert_eq!(
            (c.events, c.pending),
            (0, 0),
            "{table}: outbox rows left: {c:?}"
        );
        h.db.execute(
            "DROP TRIGGER fault",
            &format!("DROP TRIGGER fault ON {table}; DROP FUNCTION fault();"),
        )
        .await;
    }
    // Stripe redelivers: not a duplicate, applied now, both committed.
    let r = h.deliver(&d).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json["data"]["duplicate"], false);
    assert_eq!(status_of(&h, &id).await, "paid");
    let c = h.outbox.counts().await.unwrap();
    assert_eq!((c.events, c.pending), (1, 3), "{c:?}");
    let stats = h.drain().await;
    assert_eq!((stats.succeeded, stats.dead_lettered), (3, 0));
    assert_eq!(h.email.sent().len(), 1);
}

#[tokio::test]
async fn sqlite_a_fault_leaves_neither_and_the_commit_leaves_both() {
    a_fault_leaves_neither_and_the_commit_leaves_both(false, "").await;
}

#[tokio::test]
async fn postgres_a_fault_leaves_neither_and_the_commit_leaves_both() {
    a_fault_leaves_neither_and_the_commit_leaves_both(true, "tx_fault").await;
}

/// Orders paid in the race below.
const RACED: usize = 12;

async fn one_webhook_at_two_instances_records_one_set_of_jobs(postgres: bool, test: &str) {
    let Some(h) = harness(postgres, test).await else {
        return;
    };
    let second = h.second_instance().await;
    let mut ids = Vec::new();
    for _ in 0..RACED {
        let (id, d) = paid_at_stripe(&h).await;
        // Each instance on its own task (its own store connections), released together.
        let a = tokio::spawn(deliver_to(h.app.clone(), d.clone()));
        let b = tokio::spawn(deliver_to(second.clone(), d));
        let (a, b) = (a.await.unwrap(), b.await.unwrap());
        assert_eq!((a.0, b.0), (StatusCode::OK, StatusCode::OK), "{a:?} {b:?}");
        let fresh = [&a.1, &b.1].iter().filter(|v| ***v == false).count();
        assert_eq!(
            fresh, 1,
            "exactly one instance records the event: {a:?} {b:?}"
        );
        ids.push(id);
    }
    let c = h.outbox.counts().await.unwrap();
    assert_eq!(
        (c.events, c.pending),
        (RACED as u64, 3 * RACED as u64),
        "{c:?}"
    );
    for id in &ids {
        assert_eq!(status_of(&h, id).await, "paid");
    }
    let stats = h.drain().await;
    assert_eq!(
        (stats.succeeded, stats.dead_lettered),
        (3 * RACED as u64, 0)
    );
    assert_eq!(h.email.sent().len(), RACED, "one email per order");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_one_webhook_at_two_instances_records_one_set_of_jobs() {
    one_webhook_at_two_instances_records_one_set_of_jobs(false, "").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_one_webhook_at_two_instances_records_one_set_of_jobs() {
    one_webhook_at_two_instances_records_one_set_of_jobs(true, "tx_race").await;
}

/// A database whose order tables a newer build migrated is refused by name, not written into;
/// a foreign `orders` table is refused too.
#[tokio::test]
async fn postgres_newer_or_foreign_order_tables_are_refused() {
    let Some(db) = TestDatabase::create("tx_schema").await else {
        return;
    };
    let outbox = PostgresOutbox::connect_with(db.options()).await.unwrap();
    OrderStore::postgres(&outbox).await.unwrap();
    OrderStore::postgres(&outbox).await.unwrap(); // migrated once; opening again is a no-op
    integrations_outbox::postgres::sqlx::raw_sql(
        "UPDATE order_service_schema SET version = version + 1 WHERE component = 'orders'",
    )
    .execute(outbox.pool())
    .await
    .unwrap();
    let e = OrderStore::postgres(&outbox).await.unwrap_err();
    assert_eq!(e.field(), Some("schema"), "{e}");
    assert!(e.to_string().contains("newer"), "{e}");
    outbox.pool().close().await;
    db.drop_database().await.unwrap();

    let Some(db) = TestDatabase::create("tx_foreign").await else {
        return;
    };
    let outbox = PostgresOutbox::connect_with(db.options()).await.unwrap();
    integrations_outbox::postgres::sqlx::raw_sql("CREATE TABLE orders (id int PRIMARY KEY)")
        .execute(outbox.pool())
        .await
        .unwrap();
    let e = OrderStore::postgres(&outbox).await.unwrap_err();
    assert!(e.to_string().contains("orders"), "{e}");
    outbox.pool().close().await;
    db.drop_database().await.unwrap();
}
