//! The sandbox's object retention: the latest intents, charges, refunds and customers kept, a
//! forgotten one answered like a missing one, the counters exact.

use super::*;

async fn paid(client: &StripeClient, n: u32) -> String {
    let params = CreatePaymentIntent::new(usd(1000))
        .payment_method("pm_card_visa")
        .confirm(true)
        .metadata("order_id", format!("order-{n}"));
    client
        .create_payment_intent(&params, &key(&format!("order-{n}"), "payment"))
        .await
        .unwrap()
        .id
}

#[tokio::test]
async fn forgotten_objects_answer_resource_missing_and_the_counters_stay_exact() {
    let sandbox = Sandbox::builder()
        .object_retention(2)
        .start()
        .await
        .unwrap();
    let client = client(&sandbox, 0);
    let mut ids = Vec::new();
    for n in 0..5 {
        ids.push(paid(&client, n).await);
    }
    // The oldest three intents are forgotten: 404 `resource_missing`, as a made-up id.
    for old in &ids[..3] {
        let e = client.retrieve_payment_intent(old, &[]).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
        assert_eq!(e.code(), Some("resource_missing"));
        assert!(sandbox.intent_counters(old).is_none());
        let e = client
            .create_refund(
                &CreateRefund::for_payment_intent(old.clone()),
                &key(old, "refund"),
            )
            .await
            .unwrap_err();
        assert_eq!(e.code(), Some("resource_missing"), "{e}");
    }
    // The latest two are kept, with their charges and counters.
    for kept in &ids[3..] {
        let pi = client
            .retrieve_payment_intent(kept, &["latest_charge"])
            .await
            .unwrap();
        assert_eq!(pi.status, PaymentStatus::Succeeded);
        assert_eq!(sandbox.intent_counters(kept).unwrap().successful_charges, 1);
    }
    let listed: Vec<String> = client
        .list_payment_intents(&ListPaymentIntents::default())
        .await
        .unwrap()
        .data
        .into_iter()
        .map(|pi| pi.id)
        .collect();
    assert_eq!(listed, [ids[4].clone(), ids[3].clone()]);
    let mut audited = Vec::new();
    sandbox.for_each_intent(|id, _, _| audited.push(id.to_owned()));
    assert_eq!(audited, ids[3..]);
    assert_eq!(sandbox.payment_intents().len(), 2);
    let c = sandbox.counters();
    assert_eq!(
        (c.payment_intents_created, c.charges, c.successful_charges),
        (5, 5, 5)
    );
    // Every event was still made and delivered, whatever the objects kept.
    assert_eq!(c.events, 5 * 3);
}

#[tokio::test]
async fn refunds_and_customers_are_kept_by_the_same_retention() {
    let sandbox = Sandbox::builder()
        .object_retention(1)
        .start()
        .await
        .unwrap();
    let client = client(&sandbox, 0);
    let pi = paid(&client, 1).await;
    let mut refunds = Vec::new();
    for n in 0..2 {
        refunds.push(
            client
                .create_refund(
                    &CreateRefund::for_payment_intent(pi.clone()).amount(usd(100)),
                    &key("order-1", &format!("refund-{n}")),
                )
                .await
                .unwrap()
                .id,
        );
    }
    let e = client.retrieve_refund(&refunds[0]).await.unwrap_err();
    assert_eq!(e.code(), Some("resource_missing"), "{e}");
    client.retrieve_refund(&refunds[1]).await.unwrap();
    let first = client
        .create_customer(&CreateCustomer::new(), &key("cus", "1"))
        .await
        .unwrap()
        .id;
    let second = client
        .create_customer(&CreateCustomer::new(), &key("cus", "2"))
        .await
        .unwrap()
        .id;
    let e = client.retrieve_customer(&first).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    client.retrieve_customer(&second).await.unwrap();
    let c = sandbox.counters();
    assert_eq!((c.refunds, c.customers), (2, 2));
}

#[tokio::test]
async fn the_default_retention_keeps_every_object_of_a_short_run() {
    let sandbox = Sandbox::start().await.unwrap();
    let client = client(&sandbox, 0);
    let first = paid(&client, 1).await;
    for n in 2..30 {
        paid(&client, n).await;
    }
    client.retrieve_payment_intent(&first, &[]).await.unwrap();
    assert_eq!(sandbox.payment_intents().len(), 29);
}
