use std::time::Duration;

use integrations_aws::sqs::{ReceiveOptions, SendEntry, SendOptions, SqsClient};
use integrations_core::ErrorKind;

use crate::support::{moto_or_skip, unique};

fn quick() -> ReceiveOptions {
    ReceiveOptions::new().wait(Duration::from_secs(1))
}

#[tokio::test]
async fn send_receive_delete() {
    let m = moto_or_skip!();
    let sqs = SqsClient::new(&m.config());
    let q = sqs
        .create_queue(&unique("jobs"), &[("VisibilityTimeout", "30")])
        .await
        .unwrap();
    let id = sqs
        .send(
            &q,
            "{\"order\":42}",
            &SendOptions::new().attribute("kind", "order.paid"),
        )
        .await
        .unwrap();
    let got = sqs.receive(&q, &quick()).await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].message_id, id);
    assert_eq!(got[0].body, "{\"order\":42}");
    assert_eq!(got[0].attributes["kind"], "order.paid");
    assert_eq!(got[0].receive_count, 1);
    // Invisible while held.
    assert!(sqs.receive(&q, &quick()).await.unwrap().is_empty());
    sqs.delete(&q, &got[0].receipt_handle).await.unwrap();
    assert!(sqs.receive(&q, &quick()).await.unwrap().is_empty());
}

#[tokio::test]
async fn change_visibility_releases_and_redrive_moves_to_dlq() {
    let m = moto_or_skip!();
    let sqs = SqsClient::new(&m.config());
    let pair = sqs
        .create_queue_with_dlq(&unique("work"), 2, &[])
        .await
        .unwrap();
    assert!(pair.dlq_arn.ends_with("-dlq"));
    let redrive = &sqs.queue_attributes(&pair.queue_url).await.unwrap()["RedrivePolicy"];
    assert!(redrive.contains(&pair.dlq_arn), "{redrive}");

    sqs.send(&pair.queue_url, "poison", &SendOptions::new())
        .await
        .unwrap();
    for n in 1..=2 {
        let got = sqs.receive(&pair.queue_url, &quick()).await.unwrap();
        assert_eq!(got.len(), 1, "receive {n}");
        assert_eq!(got[0].receive_count, n);
        sqs.change_visibility(&pair.queue_url, &got[0].receipt_handle, Duration::ZERO)
            .await
            .unwrap();
    }
    // Received maxReceiveCount times without being deleted: redriven to the DLQ.
    assert!(
        sqs.receive(&pair.queue_url, &quick())
            .await
            .unwrap()
            .is_empty()
    );
    let dead = sqs.receive(&pair.dlq_url, &quick()).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].body, "poison");
    let e = sqs.create_queue_with_dlq("x", 0, &[]).await.unwrap_err();
    assert_eq!(e.field(), Some("max_receive_count"));
}

#[tokio::test]
async fn batches_stay_within_limits() {
    let m = moto_or_skip!();
    let sqs = SqsClient::new(&m.config());
    let q = sqs.create_queue(&unique("batch"), &[]).await.unwrap();
    let entries: Vec<SendEntry> = (0..23)
        .map(|i| SendEntry::new(format!("e{i}"), format!("m{i}")))
        .collect();
    let out = sqs.send_batch(&q, &entries).await.unwrap();
    assert_eq!(out.calls, 3, "10 + 10 + 3");
    assert_eq!(out.sent.len(), 23);
    assert!(out.failed.is_empty());

    let mut bodies = Vec::new();
    for _ in 0..10 {
        let got = sqs.receive(&q, &quick().max_messages(10)).await.unwrap();
        if got.is_empty() {
            break;
        }
        bodies.extend(got.into_iter().map(|g| g.body));
    }
    bodies.sort();
    let mut want: Vec<String> = (0..23).map(|i| format!("m{i}")).collect();
    want.sort();
    assert_eq!(bodies, want);

    let dup = [SendEntry::new("a", "x"), SendEntry::new("a", "y")];
    assert_eq!(
        sqs.send_batch(&q, &dup).await.unwrap_err().field(),
        Some("entries.id")
    );
}

#[tokio::test]
async fn fifo_queue_deduplicates() {
    let m = moto_or_skip!();
    let sqs = SqsClient::new(&m.config());
    let q = sqs
        .create_queue(
            &format!("{}.fifo", unique("fifo")),
            &[("FifoQueue", "true")],
        )
        .await
        .unwrap();
    let opts = SendOptions::new()
        .group_id("order-42")
        .dedup_id("order-42/paid");
    sqs.send(&q, "paid", &opts).await.unwrap();
    sqs.send(&q, "paid", &opts).await.unwrap();
    let got = sqs.receive(&q, &quick()).await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(
        sqs.send(&q, "x", &SendOptions::new())
            .await
            .unwrap_err()
            .field(),
        Some("group_id")
    );
}

#[tokio::test]
async fn missing_queue_is_not_found() {
    let m = moto_or_skip!();
    let sqs = SqsClient::new(&m.config());
    let url = format!("{}/123456789012/{}", m.endpoint, unique("absent"));
    let e = sqs.send(&url, "x", &SendOptions::new()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
}
