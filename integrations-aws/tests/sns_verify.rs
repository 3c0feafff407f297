//! Inbound SNS message verification with a self-signed certificate made in the test.

use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine as _;
use integrations_aws::sns::SnsSigningKey;
use integrations_aws::sns::{
    CertificateFetcher, SignatureVersion, SnsClient, SnsInbound, SnsInboundHandler, SnsMessage,
    SnsMessageType, SnsMessageVerifier,
};
use integrations_aws::{AwsBuilder, Credentials};
use integrations_core::clock::FixedClock;
use integrations_core::{Error, ErrorKind, Result, SignatureFailure};
use rand_core::OsRng;
use rsa::RsaPrivateKey;
use rsa::pkcs8::EncodePrivateKey;
use rsa::signature::{SignatureEncoding, Signer};
use url::Url;
use wiremock::matchers::{body_string_contains, method};
use wiremock::{Mock, MockServer, ResponseTemplate};
use x509_cert::builder::{Builder, CertificateBuilder, Profile};
use x509_cert::der::EncodePem;
use x509_cert::der::pem::LineEnding;
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;
use x509_cert::spki::SubjectPublicKeyInfoOwned;
use x509_cert::time::Validity;

const CERT_URL: &str = "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-test.pem";
const TOPIC: &str = "arn:aws:sns:us-east-1:123456789012:orders";

struct Keys {
    key: RsaPrivateKey,
    signer: SnsSigningKey,
    pem: Vec<u8>,
    other_pem: Vec<u8>,
}

fn self_signed(key: &RsaPrivateKey) -> Vec<u8> {
    self_signed_as(key, "CN=sns.amazonaws.com")
}

fn self_signed_as(key: &RsaPrivateKey, subject: &str) -> Vec<u8> {
    let signer = rsa::pkcs1v15::SigningKey::<rsa::sha2::Sha256>::new(key.clone());
    let spki = SubjectPublicKeyInfoOwned::from_key(key.to_public_key()).unwrap();
    let cert = CertificateBuilder::new(
        Profile::Root,
        SerialNumber::from(1u32),
        Validity::from_now(Duration::from_secs(3600)).unwrap(),
        Name::from_str(subject).unwrap(),
        spki,
        &signer,
    )
    .unwrap()
    .build::<rsa::pkcs1v15::Signature>()
    .unwrap();
    cert.to_pem(LineEnding::LF).unwrap().into_bytes()
}

fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| {
        let key = RsaPrivateKey::new(&mut OsRng, 2048).unwrap();
        let other = RsaPrivateKey::new(&mut OsRng, 2048).unwrap();
        Keys {
            pem: self_signed(&key),
            other_pem: self_signed(&other),
            signer: SnsSigningKey::from_pkcs8_der(key.to_pkcs8_der().unwrap().as_bytes()).unwrap(),
            key,
        }
    })
}

/// Serves one PEM for any URL and counts fetches.
#[derive(Debug, Clone)]
struct Fetcher {
    pem: Vec<u8>,
    fetches: Arc<AtomicUsize>,
}

impl Fetcher {
    fn new(pem: &[u8]) -> Self {
        Fetcher {
            pem: pem.to_vec(),
            fetches: Arc::new(AtomicUsize::new(0)),
        }
    }
}

#[async_trait]
impl CertificateFetcher for Fetcher {
    async fn fetch(&self, url: &Url) -> Result<Vec<u8>> {
        assert_eq!(url.as_str(), CERT_URL);
        self.fetches.fetch_add(1, Ordering::SeqCst);
        Ok(self.pem.clone())
    }
}

fn notification() -> SnsMessage {
    let body = serde_json::json!({
        "Type": "Notification",
        "MessageId": "22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324",
        "TopicArn": TOPIC,
        "Subject": "Order paid",
        "Message": "{\"order_id\":42}",
        "Timestamp": "2026-11-21T10:00:00.000Z",
        "SignatureVersion": "1",
        "Signature": "",
        "SigningCertURL": CERT_URL,
        "UnsubscribeURL": "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe&SubscriptionArn=x",
        "MessageAttributes": {"event": {"Type": "String", "Value": "order.paid"}},
    });
    serde_json::from_value(body).unwrap()
}

fn confirmation() -> SnsMessage {
    let mut m = notification();
    m.kind = SnsMessageType::SubscriptionConfirmation;
    m.subject = None;
    m.unverified.unsubscribe_url = None;
    m.unverified.message_attributes.clear();
    m.message = format!("You have chosen to subscribe to the topic {TOPIC}.");
    m.token = Some("2336412f37fb687f5d51e6e241d09c805a5a57b30d712f794cc5f6a988666d92768dd60a747ba6f3beb71854e285d6ad02428b09ceece29417f1f02d609c582afbacc99c583a916b9981dd2728f4ae6fdb82efd087cc3b7849e05798d2d2785c03b0879594eeac82c01f235d0e717736".into());
    m.subscribe_url = Some(format!(
        "https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription&TopicArn={TOPIC}&Token=2336412f"
    ));
    m
}

fn signed(mut m: SnsMessage, v: SignatureVersion) -> Vec<u8> {
    match v {
        SignatureVersion::V2 => m.sign(&keys().signer, v).unwrap(),
        _ => {
            // `SnsMessage::sign` makes version 2 only (ring verifies SHA1withRSA, never signs it):
            // version 1 is signed here with `rsa`, as SNS would.
            let text = m.string_to_sign().unwrap();
            let sig = rsa::pkcs1v15::SigningKey::<sha1::Sha1>::new(keys().key.clone())
                .sign(text.as_bytes());
            m.signature_version = v.as_str().to_owned();
            m.signature = base64::engine::general_purpose::STANDARD.encode(sig.to_vec());
        }
    }
    serde_json::to_vec(&m).unwrap()
}

#[test]
fn signing_makes_version_2_only_and_the_key_stays_out_of_debug() {
    let mut m = notification();
    let e = m.sign(&keys().signer, SignatureVersion::V1).unwrap_err();
    assert!(e.to_string().contains("version 2"), "{e}");
    let d = format!("{:?}", keys().signer);
    assert_eq!(d, "SnsSigningKey { bits: 2048, .. }");
    let e = SnsSigningKey::from_pkcs8_der(b"not a key").unwrap_err();
    assert!(e.to_string().contains("rejected"), "{e}");
}

#[tokio::test]
async fn a_certificate_with_a_short_rsa_key_is_refused_naming_its_size() {
    let short = RsaPrivateKey::new(&mut OsRng, 1024).unwrap();
    let v = SnsMessageVerifier::with_fetcher(Fetcher::new(&self_signed(&short)));
    let e = v
        .verify(&signed(notification(), SignatureVersion::V2))
        .await
        .unwrap_err();
    assert!(
        matches!(reason(&e), SignatureFailure::InvalidKey(m) if m.contains("1024 bits")),
        "{e}"
    );
}

fn reason(e: &Error) -> SignatureFailure {
    match e {
        Error::InvalidSignature { reason, .. } => reason.clone(),
        other => panic!("expected an invalid signature, got {other}"),
    }
}

#[tokio::test]
async fn both_signature_versions_verify_and_the_certificate_is_fetched_once() {
    let fetcher = Fetcher::new(&keys().pem);
    let v = SnsMessageVerifier::with_fetcher(fetcher.clone());
    for version in [
        SignatureVersion::V1,
        SignatureVersion::V2,
        SignatureVersion::V1,
    ] {
        let m = v.verify(&signed(notification(), version)).await.unwrap();
        assert_eq!(m.kind, SnsMessageType::Notification);
        assert_eq!(m.unverified.message_attributes["event"].value, "order.paid");
    }
    let m = v
        .verify(&signed(confirmation(), SignatureVersion::V2))
        .await
        .unwrap();
    assert_eq!(m.kind, SnsMessageType::SubscriptionConfirmation);
    assert_eq!(fetcher.fetches.load(Ordering::SeqCst), 1, "cached");
}

#[tokio::test]
async fn tampering_or_another_key_does_not_verify() {
    let v = SnsMessageVerifier::with_fetcher(Fetcher::new(&keys().pem));
    let body = signed(notification(), SignatureVersion::V2);
    let mut m: serde_json::Value = serde_json::from_slice(&body).unwrap();
    m["Message"] = "{\"order_id\":43}".into();
    let e = v
        .verify(&serde_json::to_vec(&m).unwrap())
        .await
        .unwrap_err();
    assert_eq!(reason(&e), SignatureFailure::NoMatch);

    // A signature made for version 2 does not pass as version 1.
    m["Message"] = "{\"order_id\":42}".into();
    m["SignatureVersion"] = "1".into();
    assert_eq!(
        reason(
            &v.verify(&serde_json::to_vec(&m).unwrap())
                .await
                .unwrap_err()
        ),
        SignatureFailure::NoMatch
    );

    let other = SnsMessageVerifier::with_fetcher(Fetcher::new(&keys().other_pem));
    assert_eq!(
        reason(&other.verify(&body).await.unwrap_err()),
        SignatureFailure::NoMatch
    );

    // The subject is signed when present.
    let mut m: serde_json::Value = serde_json::from_slice(&body).unwrap();
    m.as_object_mut().unwrap().remove("Subject");
    assert_eq!(
        reason(
            &v.verify(&serde_json::to_vec(&m).unwrap())
                .await
                .unwrap_err()
        ),
        SignatureFailure::NoMatch
    );
}

#[tokio::test]
async fn untrusted_certificate_urls_are_refused_before_fetching() {
    let fetcher = Fetcher::new(&keys().pem);
    let v = SnsMessageVerifier::with_fetcher(fetcher.clone());
    for url in [
        "https://sns.us-east-1.amazonaws.com.evil.example/x.pem",
        "http://sns.us-east-1.amazonaws.com/x.pem",
        "https://example.com/x.pem",
    ] {
        let mut m = notification();
        m.signing_cert_url = url.into();
        let e = v
            .verify(&signed(m, SignatureVersion::V1))
            .await
            .unwrap_err();
        assert!(
            matches!(reason(&e), SignatureFailure::InvalidKey(_)),
            "{url}: {e}"
        );
    }
    assert_eq!(fetcher.fetches.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn malformed_unsupported_oversized_and_stale_messages_are_refused() {
    let v = SnsMessageVerifier::with_fetcher(Fetcher::new(&keys().pem)).with_body_limit(4096);
    assert!(matches!(
        reason(&v.verify(b"not json").await.unwrap_err()),
        SignatureFailure::MalformedHeader(_)
    ));
    let mut m: serde_json::Value =
        serde_json::from_slice(&signed(notification(), SignatureVersion::V1)).unwrap();
    m["SignatureVersion"] = "3".into();
    assert_eq!(
        reason(
            &v.verify(&serde_json::to_vec(&m).unwrap())
                .await
                .unwrap_err()
        ),
        SignatureFailure::NoSupportedSignature
    );
    let mut big = notification();
    big.message = "x".repeat(5000);
    assert!(matches!(
        reason(
            &v.verify(&signed(big, SignatureVersion::V1))
                .await
                .unwrap_err()
        ),
        SignatureFailure::BodyTooLarge { .. }
    ));

    let clock = FixedClock::from_unix(1_795_255_200); // 2026-11-21T10:00:00Z
    let aged = SnsMessageVerifier::with_fetcher(Fetcher::new(&keys().pem))
        .with_max_age(Duration::from_secs(3600))
        .with_clock(clock.clone());
    let body = signed(notification(), SignatureVersion::V2);
    aged.verify(&body).await.unwrap();
    clock.advance(Duration::from_secs(3601));
    assert!(matches!(
        reason(&aged.verify(&body).await.unwrap_err()),
        SignatureFailure::TimestampOutsideTolerance { .. }
    ));
}

#[tokio::test]
async fn handler_confirms_subscriptions_to_allowed_topics_only() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(body_string_contains("Action=ConfirmSubscription"))
        .and(body_string_contains("Token=2336412f37fb"))
        .and(body_string_contains("AuthenticateOnUnsubscribe=true"))
        .respond_with(ResponseTemplate::new(200).set_body_string(
            "<ConfirmSubscriptionResponse><ConfirmSubscriptionResult><SubscriptionArn>arn:aws:sns:us-east-1:123456789012:orders:sub-1</SubscriptionArn></ConfirmSubscriptionResult></ConfirmSubscriptionResponse>",
        ))
        .expect(1)
        .mount(&server)
        .await;
    let cfg = AwsBuilder::new()
        .with_region("us-east-1")
        .with_credentials(Credentials::new("AKIDEXAMPLE", "secret"))
        .with_base_url(server.uri())
        .build()
        .unwrap();
    let handler = SnsInboundHandler::new(
        SnsMessageVerifier::with_fetcher(Fetcher::new(&keys().pem)),
        SnsClient::new(&cfg),
        [TOPIC],
    );
    let got = handler
        .handle(&signed(confirmation(), SignatureVersion::V1))
        .await
        .unwrap();
    assert_eq!(
        got,
        SnsInbound::SubscriptionConfirmed {
            topic_arn: TOPIC.into(),
            subscription_arn: "arn:aws:sns:us-east-1:123456789012:orders:sub-1".into(),
        }
    );
    let got = handler
        .handle(&signed(notification(), SignatureVersion::V2))
        .await
        .unwrap();
    assert!(matches!(got, SnsInbound::Notification(m) if m.message == "{\"order_id\":42}"));

    let mut foreign = confirmation();
    foreign.topic_arn = "arn:aws:sns:us-east-1:999999999999:attacker".into();
    let e = handler
        .handle(&signed(foreign, SignatureVersion::V1))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Forbidden);
}

/// Fails every fetch (or serves slowly) and counts them.
#[derive(Debug, Clone)]
struct SlowOrDown {
    pem: Option<Vec<u8>>,
    delay: Duration,
    fetches: Arc<AtomicUsize>,
}

#[async_trait]
impl CertificateFetcher for SlowOrDown {
    async fn fetch(&self, _url: &Url) -> Result<Vec<u8>> {
        self.fetches.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(self.delay).await;
        self.pem
            .clone()
            .ok_or_else(|| Error::unavailable("certificate host down"))
    }
}

#[tokio::test]
async fn s3_hosts_and_a_region_other_than_the_topics_are_refused_before_fetching() {
    let fetcher = Fetcher::new(&keys().pem);
    let v = SnsMessageVerifier::with_fetcher(fetcher.clone());
    for url in [
        "https://sns.s3-external-1.amazonaws.com/SimpleNotificationService-test.pem",
        "https://sns.s3.amazonaws.com/SimpleNotificationService-test.pem",
        // A real region, but not the topic's.
        "https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-test.pem",
    ] {
        let mut m = notification();
        m.signing_cert_url = url.into();
        let e = v
            .verify(&signed(m, SignatureVersion::V1))
            .await
            .unwrap_err();
        assert!(
            matches!(reason(&e), SignatureFailure::InvalidKey(m) if m.contains("SigningCertURL")),
            "{url}: {e}"
        );
    }
    let mut m = notification();
    m.topic_arn = "arn:aws:sns:eu-west-1:123456789012:orders".into();
    let e = v
        .verify(&signed(m, SignatureVersion::V1))
        .await
        .unwrap_err();
    assert!(
        matches!(reason(&e), SignatureFailure::InvalidKey(m) if m.contains("TopicArn")),
        "{e}"
    );
    assert_eq!(fetcher.fetches.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_certificate_not_issued_to_sns_is_refused() {
    let v = SnsMessageVerifier::with_fetcher(Fetcher::new(&self_signed_as(
        &keys().key,
        "CN=attacker.example",
    )));
    let e = v
        .verify(&signed(notification(), SignatureVersion::V2))
        .await
        .unwrap_err();
    assert!(
        matches!(reason(&e), SignatureFailure::InvalidKey(m) if m.contains("subject")),
        "{e}"
    );
    // The same key with SNS's subject verifies.
    let v = SnsMessageVerifier::with_fetcher(Fetcher::new(&keys().pem));
    v.verify(&signed(notification(), SignatureVersion::V2))
        .await
        .unwrap();
}

fn self_signed_with_san(key: &RsaPrivateKey, subject: &str, dns: &str) -> Vec<u8> {
    use x509_cert::der::asn1::Ia5String;
    use x509_cert::ext::pkix::SubjectAltName;
    use x509_cert::ext::pkix::name::GeneralName;
    let signer = rsa::pkcs1v15::SigningKey::<rsa::sha2::Sha256>::new(key.clone());
    let spki = SubjectPublicKeyInfoOwned::from_key(key.to_public_key()).unwrap();
    let mut builder = CertificateBuilder::new(
        Profile::Root,
        SerialNumber::from(2u32),
        Validity::from_now(Duration::from_secs(3600)).unwrap(),
        Name::from_str(subject).unwrap(),
        spki,
        &signer,
    )
    .unwrap();
    builder
        .add_extension(&SubjectAltName(vec![GeneralName::DnsName(
            Ia5String::new(dns).unwrap(),
        )]))
        .unwrap();
    let cert = builder.build::<rsa::pkcs1v15::Signature>().unwrap();
    cert.to_pem(LineEnding::LF).unwrap().into_bytes()
}

#[tokio::test]
async fn a_subject_alternative_name_of_amazonaws_com_is_accepted() {
    let ok = self_signed_with_san(&keys().key, "CN=Amazon", "sns.us-east-1.amazonaws.com");
    SnsMessageVerifier::with_fetcher(Fetcher::new(&ok))
        .verify(&signed(notification(), SignatureVersion::V2))
        .await
        .unwrap();
    let bad = self_signed_with_san(&keys().key, "CN=Amazon", "amazonaws.com.attacker.example");
    let e = SnsMessageVerifier::with_fetcher(Fetcher::new(&bad))
        .verify(&signed(notification(), SignatureVersion::V2))
        .await
        .unwrap_err();
    assert!(matches!(reason(&e), SignatureFailure::InvalidKey(_)), "{e}");
}

#[tokio::test]
async fn a_failed_fetch_is_not_retried_for_a_while() {
    let fetches = Arc::new(AtomicUsize::new(0));
    let clock = FixedClock::from_unix(1_795_255_200);
    let v = SnsMessageVerifier::with_fetcher(SlowOrDown {
        pem: None,
        delay: Duration::ZERO,
        fetches: fetches.clone(),
    })
    .with_clock(clock.clone());
    let body = signed(notification(), SignatureVersion::V2);
    for _ in 0..5 {
        let e = v.verify(&body).await.unwrap_err();
        assert_eq!(
            e.kind(),
            ErrorKind::Unavailable,
            "SNS should redeliver: {e}"
        );
    }
    assert_eq!(fetches.load(Ordering::SeqCst), 1, "failure cached");
    clock.advance(integrations_aws::sns::DEFAULT_FAILURE_TTL + Duration::from_secs(1));
    assert!(v.verify(&body).await.is_err());
    assert_eq!(
        fetches.load(Ordering::SeqCst),
        2,
        "tried again after the TTL"
    );
}

#[tokio::test]
async fn concurrent_verifications_share_one_fetch() {
    let fetches = Arc::new(AtomicUsize::new(0));
    let v = Arc::new(SnsMessageVerifier::with_fetcher(SlowOrDown {
        pem: Some(keys().pem.clone()),
        delay: Duration::from_millis(100),
        fetches: fetches.clone(),
    }));
    let body = signed(notification(), SignatureVersion::V2);
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let (v, body) = (v.clone(), body.clone());
            tokio::spawn(async move { v.verify(&body).await })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert_eq!(fetches.load(Ordering::SeqCst), 1, "single flight");
}

#[tokio::test]
async fn topics_not_allowed_are_refused_before_any_fetch() {
    let fetcher = Fetcher::new(&keys().pem);
    let v = SnsMessageVerifier::with_fetcher(fetcher.clone()).with_allowed_topics([TOPIC]);
    let mut foreign = notification();
    foreign.topic_arn = "arn:aws:sns:us-east-1:999999999999:attacker".into();
    let e = v
        .verify(&signed(foreign.clone(), SignatureVersion::V1))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Forbidden);
    assert_eq!(fetcher.fetches.load(Ordering::SeqCst), 0);

    // The handler too: a foreign confirmation costs no fetch and no ConfirmSubscription.
    let handler_fetcher = Fetcher::new(&keys().pem);
    let cfg = AwsBuilder::new()
        .with_region("us-east-1")
        .with_credentials(Credentials::new("AKIDEXAMPLE", "secret"))
        .with_base_url("http://127.0.0.1:9")
        .build()
        .unwrap();
    let handler = SnsInboundHandler::new(
        SnsMessageVerifier::with_fetcher(handler_fetcher.clone()),
        SnsClient::new(&cfg),
        [TOPIC],
    );
    let mut foreign_confirmation = confirmation();
    foreign_confirmation.topic_arn = foreign.topic_arn.clone();
    for m in [foreign, foreign_confirmation] {
        let e = handler
            .handle(&signed(m, SignatureVersion::V1))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Forbidden);
    }
    assert_eq!(handler_fetcher.fetches.load(Ordering::SeqCst), 0);
}

/// SNS signs neither `MessageAttributes` nor `UnsubscribeURL`: a verified message keeps them
/// apart, under `unverified`, and drops fields SNS does not sign for its type.
#[tokio::test]
async fn unsigned_fields_are_kept_apart_or_dropped() {
    let v = SnsMessageVerifier::with_fetcher(Fetcher::new(&keys().pem));
    let mut m: serde_json::Value =
        serde_json::from_slice(&signed(notification(), SignatureVersion::V2)).unwrap();
    m["MessageAttributes"]["event"]["Value"] = "order.refunded".into();
    m["UnsubscribeURL"] = "https://attacker.example/".into();
    m["SubscribeURL"] = "https://attacker.example/confirm".into();
    m["Token"] = "forged".into();
    let got = v.verify(&serde_json::to_vec(&m).unwrap()).await.unwrap();
    assert_eq!(
        got.unverified.message_attributes["event"].value, "order.refunded",
        "still verifies: SNS does not sign attributes"
    );
    assert_eq!(
        got.unverified.unsubscribe_url.as_deref(),
        Some("https://attacker.example/")
    );
    assert_eq!(got.subscribe_url, None, "not signed for a notification");
    assert_eq!(got.token, None, "not signed for a notification");
    assert_eq!(got.subject.as_deref(), Some("Order paid"), "signed");

    let mut c: serde_json::Value =
        serde_json::from_slice(&signed(confirmation(), SignatureVersion::V2)).unwrap();
    c["Subject"] = "Click here".into();
    let got = v.verify(&serde_json::to_vec(&c).unwrap()).await.unwrap();
    assert_eq!(got.subject, None, "not signed for a confirmation");
    assert!(got.subscribe_url.is_some() && got.token.is_some(), "signed");
}
