//! Order store tests on a temporary SQLite file.

use integrations_core::{Currency, ErrorKind, Money};

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

async fn store() -> (tempfile::TempDir, OrderStore) {
    let dir = tempfile::tempdir().unwrap();
    let s = OrderStore::open(dir.path().join("db.sqlite"))
        .await
        .unwrap();
    (dir, s)
}

#[tokio::test]
async fn insert_get_and_client_keys() {
    let (_d, s) = store().await;
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

#[tokio::test]
async fn pages_are_newest_first_and_complete() {
    let (_d, s) = store().await;
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

#[tokio::test]
async fn statuses_only_move_while_unsettled_and_refunds_are_bounded() {
    let (_d, s) = store().await;
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
    let e = s.record_refund(&o.id, usd(100)).await.unwrap_err();
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
    let o = s.record_refund(&o.id, usd(400)).await.unwrap();
    assert_eq!(
        (o.status, o.refunded, o.refund_count),
        (OrderStatus::PartiallyRefunded, usd(400), 1)
    );
    let e = s.record_refund(&o.id, usd(601)).await.unwrap_err();
    assert_eq!(
        (e.field(), e.code()),
        (Some("amount"), Some("amount_too_large"))
    );
    let o = s.record_refund(&o.id, usd(600)).await.unwrap();
    assert_eq!(o.status, OrderStatus::Refunded);
    assert_eq!(
        s.status_counts().await.unwrap(),
        vec![(OrderStatus::Refunded, 1)]
    );
}

#[tokio::test]
async fn email_status_keeps_the_latest_event() {
    let (_d, s) = store().await;
    let o = s.insert(new_order(100), None).await.unwrap().into_order();
    assert!(s.set_email_status(&o.id, "delivered", 20).await.unwrap());
    assert!(!s.set_email_status(&o.id, "processed", 10).await.unwrap());
    let o = s.get(&o.id).await.unwrap().unwrap();
    assert_eq!(o.email_status.as_deref(), Some("delivered"));
}
