use integrations_aws::ses::SesEmail;
use integrations_core::{EmailMessage, EmailProvider, ErrorKind, Mailbox};
use integrations_testkit::{EmailSuiteConfig, email_provider_suite};

use crate::support::{moto_or_skip, unique};

#[tokio::test]
async fn ses_passes_the_email_provider_suite() {
    let m = moto_or_skip!();
    let ses = SesEmail::new(&m.config());
    let from = format!("{}@example.com", unique("shop"));
    ses.create_email_identity(&from).await.unwrap();
    ses.create_email_identity(&from)
        .await
        .expect("verifying twice is fine");
    // moto's SES v2 cannot send stored templates, so the template check runs in tests/aws.rs.
    let cfg = EmailSuiteConfig::new(
        Mailbox::named(from, "Shop"),
        Mailbox::named("jane@example.com", "Jane"),
    );
    email_provider_suite(&ses, &cfg).await;
}

#[tokio::test]
async fn ses_refuses_an_unverified_sender() {
    let m = moto_or_skip!();
    let ses = SesEmail::new(&m.config());
    let msg = EmailMessage::builder(Mailbox::new(format!("{}@example.com", unique("nobody"))))
        .to("jane@example.com")
        .subject("s")
        .text("t")
        .build();
    let e = ses.send(&msg).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    assert_eq!(e.code(), Some("MessageRejected"));
    assert!(!e.is_failover_safe(), "invalid input never fails over");
}
