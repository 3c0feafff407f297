//! `POST /webhooks/sns`: verified through `integrations-aws`'s axum extractor, accepted topics
//! only, deduplicated by `MessageId`. The signing certificate is made in the test.

mod common;

use std::str::FromStr;
use std::sync::OnceLock;
use std::time::Duration;

use async_trait::async_trait;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::Harness;
use integrations_aws::sns::{
    CertificateFetcher, SignatureVersion, SnsMessage, SnsMessageVerifier, SnsSigningKey,
};
use integrations_core::Result;
use integrations_order_service::SnsWebhook;
use rand_core::OsRng;
use rsa::RsaPrivateKey;
use rsa::pkcs8::EncodePrivateKey;
use url::Url;
use x509_cert::builder::{Builder, CertificateBuilder, Profile};
use x509_cert::der::EncodePem;
use x509_cert::der::pem::LineEnding;
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;
use x509_cert::spki::SubjectPublicKeyInfoOwned;
use x509_cert::time::Validity;

const CERT_URL: &str = "https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-test.pem";
const TOPIC: &str = "arn:aws:sns:eu-west-1:123456789012:ses-feedback";
const OTHER_TOPIC: &str = "arn:aws:sns:eu-west-1:999999999999:not-ours";

fn key_and_pem() -> &'static (SnsSigningKey, Vec<u8>) {
    static KEYS: OnceLock<(SnsSigningKey, Vec<u8>)> = OnceLock::new();
    KEYS.get_or_init(|| {
        let key = RsaPrivateKey::new(&mut OsRng, 2048).unwrap();
        let signer = rsa::pkcs1v15::SigningKey::<sha2::Sha256>::new(key.clone());
        let spki = SubjectPublicKeyInfoOwned::from_key(key.to_public_key()).unwrap();
        let cert = CertificateBuilder::new(
            Profile::Root,
            SerialNumber::from(1u32),
            Validity::from_now(Duration::from_secs(3600)).unwrap(),
            Name::from_str("CN=sns.amazonaws.com").unwrap(),
            spki,
            &signer,
        )
        .unwrap()
        .build::<rsa::pkcs1v15::Signature>()
        .unwrap();
        let pem = cert.to_pem(LineEnding::LF).unwrap().into_bytes();
        let key = SnsSigningKey::from_pkcs8_der(key.to_pkcs8_der().unwrap().as_bytes()).unwrap();
        (key, pem)
    })
}

#[derive(Debug)]
struct TestCertificate;

#[async_trait]
impl CertificateFetcher for TestCertificate {
    async fn fetch(&self, url: &Url) -> Result<Vec<u8>> {
        assert_eq!(url.as_str(), CERT_URL);
        Ok(key_and_pem().1.clone())
    }
}

fn signed(id: &str, topic: &str) -> Vec<u8> {
    let mut m: SnsMessage = serde_json::from_value(serde_json::json!({
        "Type": "Notification",
        "MessageId": id,
        "TopicArn": topic,
        "Message": "{\"notificationType\":\"Delivery\"}",
        "Timestamp": "2026-11-21T10:00:00.000Z",
        "SignatureVersion": "2",
        "Signature": "",
        "SigningCertURL": CERT_URL,
    }))
    .unwrap();
    m.sign(&key_and_pem().0, SignatureVersion::V2).unwrap();
    serde_json::to_vec(&m).unwrap()
}

async fn post(h: &Harness, body: Vec<u8>) -> common::Resp {
    let req = Request::builder()
        .method("POST")
        .uri("/webhooks/sns")
        .header("content-type", "text/plain; charset=UTF-8")
        .header("x-amz-sns-message-type", "Notification")
        .body(Body::from(body))
        .unwrap();
    h.send(req).await
}

#[tokio::test]
async fn accepted_topics_verified_and_deduplicated() {
    let h = Harness::with(|b| {
        b.sns_webhook(SnsWebhook::new(
            SnsMessageVerifier::with_fetcher(TestCertificate),
            [TOPIC.to_owned()],
        ))
    })
    .await;
    let r = post(&h, signed("msg-1", TOPIC)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json["data"]["duplicate"], false);
    let r = post(&h, signed("msg-1", TOPIC)).await;
    assert_eq!(r.json["data"]["duplicate"], true, "{}", r.text);

    let mut tampered: serde_json::Value = serde_json::from_slice(&signed("msg-2", TOPIC)).unwrap();
    tampered["Message"] = "{\"notificationType\":\"Bounce\"}".into();
    let r = post(&h, serde_json::to_vec(&tampered).unwrap()).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert_eq!(r.json["error"]["type"], "invalid_signature");

    let r = post(&h, signed("msg-3", OTHER_TOPIC)).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
}

#[tokio::test]
async fn without_configuration_the_route_says_so() {
    let h = Harness::new().await;
    let r = post(&h, signed("msg-1", TOPIC)).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
    assert!(r.text.contains("not configured"), "{}", r.text);
}
