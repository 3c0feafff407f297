//! The `axum` extractor for inbound SNS messages, driven through a router with a self-signed
//! certificate made in the test.

use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::routing::post;
use integrations_aws::axum::VerifiedSnsMessage;
use integrations_aws::sns::SnsSigningKey;
use integrations_aws::sns::{CertificateFetcher, SignatureVersion, SnsMessage, SnsMessageVerifier};
use integrations_core::{Error, Result};
use rand_core::OsRng;
use rsa::RsaPrivateKey;
use rsa::pkcs8::EncodePrivateKey;
use tower::ServiceExt;
use url::Url;
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
    key: SnsSigningKey,
    pem: Vec<u8>,
}

fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| {
        let key = RsaPrivateKey::new(&mut OsRng, 2048).unwrap();
        let signer = rsa::pkcs1v15::SigningKey::<rsa::sha2::Sha256>::new(key.clone());
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
        Keys { key, pem }
    })
}

#[derive(Debug, Clone)]
enum Fetcher {
    Pem(Arc<AtomicUsize>),
    Down,
}

#[async_trait]
impl CertificateFetcher for Fetcher {
    async fn fetch(&self, url: &Url) -> Result<Vec<u8>> {
        assert_eq!(url.as_str(), CERT_URL);
        match self {
            Fetcher::Pem(n) => {
                n.fetch_add(1, Ordering::SeqCst);
                Ok(keys().pem.clone())
            }
            Fetcher::Down => Err(Error::unavailable("certificate host down")),
        }
    }
}

fn signed_notification(message: &str) -> Vec<u8> {
    let mut m: SnsMessage = serde_json::from_value(serde_json::json!({
        "Type": "Notification",
        "MessageId": "22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324",
        "TopicArn": TOPIC,
        "Subject": "Order paid",
        "Message": message,
        "Timestamp": "2026-11-21T10:00:00.000Z",
        "SignatureVersion": "2",
        "Signature": "",
        "SigningCertURL": CERT_URL,
    }))
    .unwrap();
    m.sign(&keys().key, SignatureVersion::V2).unwrap();
    serde_json::to_vec(&m).unwrap()
}

async fn handler(VerifiedSnsMessage(msg): VerifiedSnsMessage) -> String {
    format!("{}|{}", msg.message_id, msg.message)
}

fn app(fetcher: Fetcher) -> Router {
    Router::new()
        .route("/webhooks/sns", post(handler))
        .with_state(Arc::new(SnsMessageVerifier::with_fetcher(fetcher)))
}

async fn post_body(app: &Router, body: Vec<u8>) -> (StatusCode, String) {
    let req = Request::builder()
        .method("POST")
        .uri("/webhooks/sns")
        .header("content-type", "text/plain; charset=UTF-8")
        .header("x-amz-sns-message-type", "Notification")
        .body(Body::from(body))
        .unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

#[tokio::test]
async fn verified_messages_reach_the_handler_and_forgeries_do_not() {
    let fetches = Arc::new(AtomicUsize::new(0));
    let app = app(Fetcher::Pem(fetches.clone()));

    let (status, text) = post_body(&app, signed_notification("{\"order_id\":42}")).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    assert_eq!(
        text,
        "22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324|{\"order_id\":42}"
    );

    let mut tampered: serde_json::Value =
        serde_json::from_slice(&signed_notification("{\"order_id\":42}")).unwrap();
    tampered["Message"] = "{\"order_id\":43}".into();
    let (status, text) = post_body(&app, serde_json::to_vec(&tampered).unwrap()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(text.contains("no signature matches"), "{text}");

    let mut elsewhere = tampered.clone();
    elsewhere["SigningCertURL"] = "https://attacker.example/cert.pem".into();
    let (status, text) = post_body(&app, serde_json::to_vec(&elsewhere).unwrap()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(text.contains("SigningCertURL"), "{text}");

    let (status, _) = post_body(&app, b"not json".to_vec()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        fetches.load(Ordering::SeqCst),
        1,
        "certificate cached across requests"
    );
}

#[tokio::test]
async fn an_unreachable_certificate_is_503_so_sns_retries() {
    let app = app(Fetcher::Down);
    let (status, text) = post_body(&app, signed_notification("hello")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{text}");
}

#[tokio::test]
async fn bodies_over_the_limit_are_413() {
    let verifier =
        SnsMessageVerifier::with_fetcher(Fetcher::Pem(Arc::default())).with_body_limit(64);
    let app = Router::new()
        .route("/webhooks/sns", post(handler))
        .with_state(Arc::new(verifier));
    let (status, _) = post_body(&app, signed_notification("hello")).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
}
