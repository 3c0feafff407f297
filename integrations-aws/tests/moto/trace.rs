//! SNS and SQS messages sent inside a traced span carry its W3C `traceparent` as a message
//! attribute (feature `opentelemetry`), through `tracing-opentelemetry`.

use std::time::{Duration, Instant};

use integrations_aws::sns::SnsClient;
use integrations_aws::sqs::{ReceiveOptions, ReceivedMessage, SendOptions, SqsClient};
use integrations_core::Notification;
use integrations_core::telemetry::current_traceparent;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::SdkTracerProvider;
use serde_json::Value;
use tracing::Instrument;
use tracing_subscriber::layer::SubscriberExt;

use crate::support::{moto_or_skip, unique};

#[tokio::test]
async fn sns_and_sqs_messages_carry_the_senders_traceparent() {
    let m = moto_or_skip!();
    let provider = SdkTracerProvider::builder().build();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("moto-test")));
    // Scoped to this test's thread (a current-thread runtime): other tests see nothing of it.
    let _guard = tracing::subscriber::set_default(subscriber);

    let cfg = m.config();
    let (sns, sqs) = (SnsClient::new(&cfg), SqsClient::new(&cfg));
    let topic = sns.create_topic(&unique("traced"), false).await.unwrap();
    let queue = sqs.create_queue(&unique("traced-q"), &[]).await.unwrap();
    let arn = sqs.queue_attributes(&queue).await.unwrap()["QueueArn"].clone();
    sns.subscribe(&topic, "sqs", &arn, false).await.unwrap();

    let sent = async {
        sqs.send(
            &queue,
            "direct",
            &SendOptions::new().attribute("kind", "order"),
        )
        .await
        .unwrap();
        sns.publish(&topic, &Notification::new("via sns"))
            .await
            .unwrap();
        current_traceparent().expect("the sender's span has a context")
    }
    .instrument(tracing::info_span!("sender"))
    .await;

    let mut got: Vec<ReceivedMessage> = Vec::new();
    let until = Instant::now() + Duration::from_secs(10);
    while got.len() < 2 && Instant::now() < until {
        got.extend(
            sqs.receive(&queue, &ReceiveOptions::new().wait(Duration::from_secs(1)))
                .await
                .unwrap(),
        );
    }
    assert_eq!(got.len(), 2, "both messages arrive");
    let direct = got
        .iter()
        .find(|m| m.body == "direct")
        .expect("the SQS message");
    assert_eq!(direct.traceparent(), Some(sent), "SQS message attribute");
    assert_eq!(
        direct.attributes["kind"], "order",
        "the caller's attributes stay"
    );
    let envelope = got
        .iter()
        .find(|m| m.body != "direct")
        .expect("the SNS message");
    let envelope: Value = serde_json::from_str(&envelope.body).unwrap();
    assert_eq!(envelope["Message"], "via sns");
    assert_eq!(
        envelope["MessageAttributes"]["traceparent"]["Value"],
        sent.to_string().as_str(),
        "SNS message attribute, as delivered to a subscriber"
    );
}
