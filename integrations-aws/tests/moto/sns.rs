use integrations_aws::sns::{SnsClient, SnsNotifier};
use integrations_aws::sqs::{ReceiveOptions, SqsClient};
use integrations_core::{Notification, Notifier};
use integrations_testkit::{NotifierSuiteConfig, notifier_suite, unique_run_id};
use serde_json::Value;
use std::time::Duration;

use crate::support::{moto_or_skip, unique};

#[tokio::test]
async fn sns_passes_the_notifier_suite() {
    let m = moto_or_skip!();
    let sns = SnsClient::new(&m.config());
    let topic = sns.create_topic(&unique("orders"), false).await.unwrap();
    let notifier = SnsNotifier::new(&m.config(), topic);
    notifier_suite(&notifier, &NotifierSuiteConfig::new(unique_run_id())).await;
}

#[tokio::test]
async fn publish_delivers_subject_and_attributes_to_a_subscribed_queue() {
    let m = moto_or_skip!();
    let cfg = m.config();
    let (sns, sqs) = (SnsClient::new(&cfg), SqsClient::new(&cfg));
    let topic = sns.create_topic(&unique("orders"), false).await.unwrap();
    let queue = sqs.create_queue(&unique("orders-q"), &[]).await.unwrap();
    let arn = sqs.queue_attributes(&queue).await.unwrap()["QueueArn"].clone();
    sns.subscribe(&topic, "sqs", &arn, false).await.unwrap();

    let n = Notification::new("order 42 paid: 19.99 USD & more")
        .subject("Order paid")
        .attribute("event", "order.paid");
    let published = SnsNotifier::new(&cfg, &topic).publish(&n).await.unwrap();

    let got = sqs
        .receive(&queue, &ReceiveOptions::new().wait(Duration::from_secs(2)))
        .await
        .unwrap();
    assert_eq!(got.len(), 1);
    let envelope: Value = serde_json::from_str(&got[0].body).unwrap();
    assert_eq!(envelope["Type"], "Notification");
    assert_eq!(envelope["MessageId"], published.message_id.as_str());
    assert_eq!(envelope["Subject"], "Order paid");
    assert_eq!(envelope["Message"], "order 42 paid: 19.99 USD & more");
    assert_eq!(
        envelope["MessageAttributes"]["event"]["Value"],
        "order.paid"
    );
    assert_eq!(envelope["MessageAttributes"]["event"]["Type"], "String");
}

#[tokio::test]
async fn fifo_topic_takes_group_and_dedup_ids() {
    let m = moto_or_skip!();
    let cfg = m.config();
    let sns = SnsClient::new(&cfg);
    let topic = sns
        .create_topic(&format!("{}.fifo", unique("orders")), true)
        .await
        .unwrap();
    assert!(topic.ends_with(".fifo"));
    let notifier = SnsNotifier::new(&cfg, &topic);
    let n = Notification::new("paid")
        .group_id("order-42")
        .dedup_id("order-42/paid");
    let first = notifier.publish(&n).await.unwrap();
    assert!(!first.message_id.is_empty());
    let e = notifier
        .publish(&Notification::new("no group"))
        .await
        .unwrap_err();
    assert_eq!(e.field(), Some("group_id"));
}

#[tokio::test]
async fn publish_to_a_missing_topic_is_not_found() {
    let m = moto_or_skip!();
    let arn = format!("arn:aws:sns:{}:123456789012:{}", m.region, unique("absent"));
    let e = SnsNotifier::new(&m.config(), arn)
        .publish(&Notification::new("x"))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), integrations_core::ErrorKind::NotFound, "{e}");
    assert!(e.request_id().is_some() || e.code().is_some(), "{e}");
}
