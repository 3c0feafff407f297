//! The order table against moto (a local AWS emulator with SigV4 checking on): start it with
//! `.ci/moto.sh start`. Under `CI=true` a missing emulator fails these tests; elsewhere they are
//! skipped with a loud message.

use std::sync::Arc;

use integrations_core::{Currency, ErrorKind, Money};
use integrations_shop::{DynamoOrderStore, LineItem, Order, OrderStatus};

// The AWS crate's moto harness, shared rather than copied.
#[path = "../../../integrations-aws/tests/moto/support.rs"]
mod support;

use support::{moto_or_skip, unique};

fn usd(minor: i64) -> Money {
    Money::from_minor(minor, Currency::USD)
}

#[tokio::test]
async fn order_store_put_get_query_and_transitions() {
    let m = moto_or_skip!();
    let store = DynamoOrderStore::new(&m.config(), unique("orders"));
    store.create_table().await.unwrap();
    store
        .create_table()
        .await
        .expect("creating an existing table is fine");

    let customer = unique("cust");
    for (i, id) in ["o-1", "o-2", "o-3"].iter().enumerate() {
        let o = Order::new(*id, &customer, usd(1999 + i as i64))
            .with_item(LineItem::new("sku-1", "Item 1", 1, usd(1999 + i as i64)))
            .with_metadata("channel", "web")
            .with_created_at_ms(1_700_000_000_000 + i as i64);
        store.put(&o).await.unwrap();
    }
    store
        .put(&Order::new("o-other", unique("cust"), usd(5)))
        .await
        .unwrap();

    let got = store.get("o-2").await.unwrap().expect("stored");
    assert_eq!(got.total, usd(2000));
    assert_eq!(got.status, OrderStatus::Pending);
    assert_eq!(got.items[0].unit_price, usd(2000));
    assert_eq!(got.metadata["channel"], "web");
    assert!(store.get("nope").await.unwrap().is_none());

    // Newest first, two per page.
    let p1 = store.list_for_customer(&customer, 2, None).await.unwrap();
    let ids: Vec<_> = p1.orders.iter().map(|o| o.order_id.as_str()).collect();
    assert_eq!(ids, ["o-3", "o-2"]);
    let cursor = p1.next_cursor.expect("a second page");
    let p2 = store
        .list_for_customer(&customer, 2, Some(&cursor))
        .await
        .unwrap();
    let ids: Vec<_> = p2.orders.iter().map(|o| o.order_id.as_str()).collect();
    assert_eq!(ids, ["o-1"]);

    let paid = store
        .update_status("o-1", OrderStatus::Pending, OrderStatus::Paid)
        .await
        .unwrap();
    assert_eq!(paid.status, OrderStatus::Paid);
    assert!(paid.updated_at_ms >= paid.created_at_ms);
    assert_eq!(
        store.get("o-1").await.unwrap().unwrap().status,
        OrderStatus::Paid
    );
}

#[tokio::test]
async fn order_store_conditional_writes_conflict() {
    let m = moto_or_skip!();
    let store = DynamoOrderStore::new(&m.config(), unique("orders"));
    store.create_table().await.unwrap();
    let o = Order::new("o-1", "c-1", usd(100));
    store.put(&o).await.unwrap();

    let dup = store
        .put(&Order::new("o-1", "c-2", usd(1)))
        .await
        .unwrap_err();
    assert_eq!(dup.kind(), ErrorKind::Conflict, "{dup}");
    assert_eq!(
        store.get("o-1").await.unwrap().unwrap().customer_id,
        "c-1",
        "not overwritten"
    );

    // Stale expected status: someone else moved it first.
    store
        .update_status("o-1", OrderStatus::Pending, OrderStatus::Paid)
        .await
        .unwrap();
    let stale = store
        .update_status("o-1", OrderStatus::Pending, OrderStatus::Cancelled)
        .await
        .unwrap_err();
    assert_eq!(stale.kind(), ErrorKind::Conflict, "{stale}");
    assert!(stale.message().contains("`paid`"), "{stale}");
    assert_eq!(stale.code(), Some("ConditionalCheckFailedException"));

    let not_allowed = store
        .update_status("o-1", OrderStatus::Paid, OrderStatus::Pending)
        .await
        .unwrap_err();
    assert_eq!(not_allowed.field(), Some("status"));

    let missing = store
        .update_status("o-404", OrderStatus::Pending, OrderStatus::Paid)
        .await
        .unwrap_err();
    assert_eq!(missing.kind(), ErrorKind::NotFound, "{missing}");
}

#[tokio::test]
async fn concurrent_status_updates_have_one_winner() {
    let m = moto_or_skip!();
    let store = Arc::new(DynamoOrderStore::new(&m.config(), unique("orders")));
    store.create_table().await.unwrap();
    store.put(&Order::new("race", "c", usd(1))).await.unwrap();
    let tasks: Vec<_> = [
        OrderStatus::Paid,
        OrderStatus::Cancelled,
        OrderStatus::PaymentFailed,
        OrderStatus::Paid,
    ]
    .into_iter()
    .map(|to| {
        let s = store.clone();
        tokio::spawn(async move { s.update_status("race", OrderStatus::Pending, to).await })
    })
    .collect();
    let mut wins = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => wins += 1,
            Err(e) => assert_eq!(e.kind(), ErrorKind::Conflict, "{e}"),
        }
    }
    assert_eq!(wins, 1);
}
