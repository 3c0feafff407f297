//! moto checks every request's SigV4 signature: a wrong secret or an unknown key is refused, and
//! we map that to `Unauthenticated` for each protocol.

use integrations_aws::Credentials;
use integrations_aws::dynamodb::DynamoDb;
use integrations_aws::ses::SesEmail;
use integrations_aws::sns::SnsClient;
use integrations_aws::sqs::SqsClient;
use integrations_core::{EmailMessage, EmailProvider, ErrorKind};
use serde_json::json;

use crate::support::{moto_or_skip, unique};

#[tokio::test]
async fn wrong_secret_is_unauthenticated_on_every_protocol() {
    let m = moto_or_skip!();
    let bad = m.config_with(Credentials::new(&m.access_key_id, "not-the-secret"));

    let e = SqsClient::new(&bad)
        .create_queue(&unique("q"), &[])
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unauthenticated, "sqs (JSON): {e}");
    assert_eq!(e.code(), Some("SignatureDoesNotMatch"));
    assert_eq!(e.provider_name(), Some("aws-sqs"));
    assert!(!e.is_retryable());

    let e = SnsClient::new(&bad)
        .create_topic(&unique("t"), false)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unauthenticated, "sns (query): {e}");

    let e = DynamoDb::new(&bad)
        .call("ListTables", &json!({}))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unauthenticated, "dynamodb: {e}");

    let msg = EmailMessage::builder("shop@example.com")
        .to("a@example.com")
        .subject("s")
        .text("t")
        .build();
    let e = SesEmail::new(&bad).send(&msg).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unauthenticated, "ses (REST-JSON): {e}");

    // The right key works: the refusals above were about the signature.
    SqsClient::new(&m.config())
        .create_queue(&unique("q"), &[])
        .await
        .unwrap();
}

#[tokio::test]
async fn unknown_access_key_is_unauthenticated() {
    let m = moto_or_skip!();
    let cfg = m.config_with(Credentials::new("AKIAUNKNOWNKEY000000", "whatever"));
    let e = SnsClient::new(&cfg)
        .create_topic(&unique("t"), false)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unauthenticated, "{e}");
}
