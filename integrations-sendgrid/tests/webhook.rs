//! The Signed Event Webhook verifier on SendGrid's published test vectors (the ones its Go, Node
//! and Python libraries test with) and on generated keys.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use integrations_core::clock::FixedClock;
use integrations_core::{Error, ErrorKind, SignatureFailure};
use integrations_sendgrid::webhook::{
    EventKind, EventType, EventWebhookSigner, EventWebhookVerifier, SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
};

/// sendgrid-go `helpers/eventwebhook/eventwebhook_test.go` and the first sendgrid-nodejs
/// `eventwebhook.spec.js`: a single object, JSON-encoded with sorted keys.
mod go_vector {
    pub(super) const PUBLIC_KEY: &str = "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEEDr2LjtURuePQzplybdC+u4CwrqDqBaWjcMMsTbhdbcwHBcepxo7yAQGhHPTnlvFYPAZFceEu/1FwCM/QmGUhA==";
    pub(super) const SIGNATURE: &str = "MEUCIQCtIHJeH93Y+qpYeWrySphQgpNGNr/U+UyUlBkU6n7RAwIgJTz2C+8a8xonZGi6BpSzoQsbVRamr2nlxFDWYNH2j/0=";
    pub(super) const TIMESTAMP: &str = "1588788367";
    pub(super) const PAYLOAD: &str =
        r#"{"category":"example_payload","event":"test_event","message_id":"message_id"}"#;
}

/// sendgrid-python `test/unit/test_eventwebhook.py` and the later sendgrid-nodejs spec: one
/// `dropped` event, with the trailing `\r\n` SendGrid sends.
mod python_vector {
    pub(super) const PUBLIC_KEY: &str = "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE83T4O/n84iotIvIW4mdBgQ/7dAfSmpqIM8kF9mN1flpVKS3GRqe62gw+2fNNRaINXvVpiglSI8eNEc6wEA3F+g==";
    pub(super) const SIGNATURE: &str = "MEUCIGHQVtGj+Y3LkG9fLcxf3qfI10QysgDWmMOVmxG0u6ZUAiEAyBiXDWzM+uOe5W0JuG+luQAbPIqHh89M15TluLtEZtM=";
    pub(super) const TIMESTAMP: &str = "1600112502";
    pub(super) const PAYLOAD: &str = concat!(
        r#"[{"email":"hello@world.com","event":"dropped","reason":"Bounced Address","sg_event_id":"ZHJvcC0xMDk5NDkxOS1MUnpYbF9OSFN0T0doUTRrb2ZTbV9BLTA","sg_message_id":"LRzXl_NHStOGhQ4kofSm_A.filterdrecv-p3mdw1-756b745b58-kmzbl-18-5F5FC76C-9.0","smtp-id":"<LRzXl_NHStOGhQ4kofSm_A@ismtpd0039p1iad1.sendgrid.net>","timestamp":1600112492}]"#,
        "\r\n"
    );
}

/// sendgrid-nodejs spec, multiple events: events separated by `,\r\n`, trailing `\r\n`.
mod multi_vector {
    pub(super) const PUBLIC_KEY: &str = "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEQ4LIFtWztlsF7skFqOncjD1lun4H5w8XOhyOArHW9RcIx/FfEzx6cikC/yPfUvwaX/JScE7Fc9CJD2afQ9Ok3Q==";
    pub(super) const SIGNATURE: &str = "MEYCIQC/I4o6vCgqRYrTljjoVWB/GRWNtxeePlLMHr3x9ETeRQIhAIpV+03nREPTTHWSW0wIOA0EoMPdcNgXa70yCaqDJlu5";
    pub(super) const TIMESTAMP: &str = "1619651159";
    pub(super) const PAYLOAD: &str = concat!(
        r#"[{"email":"invalid@gmail.com","event":"processed","send_at":0,"sg_event_id":"cHJvY2Vzc2VkLTE5OTQyMTEyLXFOd0JMZ1BRUWpXNkRKdktRd1NBYnctMA","sg_message_id":"qNwBLgPQQjW6DJvKQwSAbw.filterdrecv-canary-547b64655b-cw6zx-1-6089EA4A-56.0","smtp-id":"<qNwBLgPQQjW6DJvKQwSAbw@ismtpd0178p1mdw1.sendgrid.net>","timestamp":1619651146},"#,
        "\r\n",
        r#"{"email":"invalid@gmail.com","event":"bounce","ip":"167.89.101.76","reason":"552 5.2.2 The email account that you tried to reach is over quota and inactive. Please direct the recipient to https://support.google.com/mail/?p=OverQuotaPerm c17si1130468pgv.34 - gsmtp","sg_event_id":"Ym91bmNlLTAtMTk5NDIxMTItcU53QkxnUFFRalc2REp2S1F3U0Fidy0w","sg_message_id":"qNwBLgPQQjW6DJvKQwSAbw.filterdrecv-canary-547b64655b-cw6zx-1-6089EA4A-56.0","smtp-id":"<qNwBLgPQQjW6DJvKQwSAbw@ismtpd0178p1mdw1.sendgrid.net>","status":"5.2.2","timestamp":1619651147,"tls":1,"type":"blocked"}]"#,
        "\r\n"
    );
}

/// The "invalid key" all three libraries test with.
const OTHER_PUBLIC_KEY: &str = "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEqTxd43gyp8IOEto2LdIfjRQrIbsd4SXZkLW6jDutdhXSJCWHw8REntlo7aNDthvj+y7GjUuFDb/R1NGe1OPzpA==";
/// The "bad signature" they test with (one character changed).
const ALTERED_SIGNATURE: &str = "MEUCIQCtIHJeH93Y+qpYeWrySphQgpNGNr/U+UyUlBkU6n7RAwIgJTz2C+8a8xonZGi6BpSzoQsbVRamr2nlxFDWYNH3j/0=";

fn at(key: &str, ts: &str) -> EventWebhookVerifier {
    EventWebhookVerifier::new(key)
        .unwrap()
        .with_clock(FixedClock::from_unix(ts.parse().unwrap()))
}

fn reason(e: Error) -> SignatureFailure {
    assert_eq!(e.kind(), ErrorKind::InvalidSignature);
    assert_eq!(e.provider_name(), Some("sendgrid"));
    match e {
        Error::InvalidSignature { reason, .. } => reason,
        other => panic!("{other:?}"),
    }
}

#[test]
fn published_vectors_verify() {
    use go_vector as g;
    use multi_vector as m;
    use python_vector as p;
    at(g::PUBLIC_KEY, g::TIMESTAMP)
        .verify(g::SIGNATURE, g::TIMESTAMP, g::PAYLOAD.as_bytes())
        .unwrap();
    at(p::PUBLIC_KEY, p::TIMESTAMP)
        .verify(p::SIGNATURE, p::TIMESTAMP, p::PAYLOAD.as_bytes())
        .unwrap();
    at(m::PUBLIC_KEY, m::TIMESTAMP)
        .verify(m::SIGNATURE, m::TIMESTAMP, m::PAYLOAD.as_bytes())
        .unwrap();
    // SendGrid's libraries have no tolerance; neither does this verifier when told so.
    EventWebhookVerifier::new(g::PUBLIC_KEY)
        .unwrap()
        .without_tolerance()
        .verify(g::SIGNATURE, g::TIMESTAMP, g::PAYLOAD.as_bytes())
        .unwrap();
}

#[test]
fn published_vectors_parse_into_typed_events() {
    use multi_vector as m;
    let mut headers = http::HeaderMap::new();
    headers.insert(SIGNATURE_HEADER, m::SIGNATURE.parse().unwrap());
    headers.insert(TIMESTAMP_HEADER, m::TIMESTAMP.parse().unwrap());
    let events = at(m::PUBLIC_KEY, m::TIMESTAMP)
        .construct_events(&headers, m::PAYLOAD.as_bytes())
        .unwrap();
    assert_eq!(events.len(), 2);
    assert_eq!(events[0].event_type(), EventType::Processed);
    assert_eq!(
        events[0].dedup_key(),
        "sendgrid:cHJvY2Vzc2VkLTE5OTQyMTEyLXFOd0JMZ1BRUWpXNkRKdktRd1NBYnctMA"
    );
    assert_eq!(events[0].message_id(), Some("qNwBLgPQQjW6DJvKQwSAbw"));
    assert_eq!(events[1].message_id(), events[0].message_id());
    match &events[1].kind {
        EventKind::Bounce {
            status,
            bounce_type,
            reason,
            ..
        } => {
            assert_eq!(status.as_deref(), Some("5.2.2"));
            assert_eq!(bounce_type.as_deref(), Some("blocked"));
            assert!(reason.as_deref().unwrap().starts_with("552 5.2.2"));
        }
        other => panic!("{other:?}"),
    }

    use python_vector as p;
    let events = at(p::PUBLIC_KEY, p::TIMESTAMP);
    let mut h = http::HeaderMap::new();
    h.insert(SIGNATURE_HEADER, p::SIGNATURE.parse().unwrap());
    h.insert(TIMESTAMP_HEADER, p::TIMESTAMP.parse().unwrap());
    let ev = events.construct_events(&h, p::PAYLOAD.as_bytes()).unwrap();
    assert_eq!(
        ev[0].kind,
        EventKind::Dropped {
            reason: Some("Bounced Address".into())
        }
    );
    assert_eq!(ev[0].message_id(), Some("LRzXl_NHStOGhQ4kofSm_A"));
}

#[test]
fn published_negative_cases_fail() {
    use go_vector as g;
    let v = at(g::PUBLIC_KEY, g::TIMESTAMP);
    // invalid key
    assert_eq!(
        reason(
            at(OTHER_PUBLIC_KEY, g::TIMESTAMP)
                .verify(g::SIGNATURE, g::TIMESTAMP, g::PAYLOAD.as_bytes())
                .unwrap_err()
        ),
        SignatureFailure::NoMatch
    );
    // bad payload
    assert_eq!(
        reason(
            v.verify(g::SIGNATURE, g::TIMESTAMP, b"payload")
                .unwrap_err()
        ),
        SignatureFailure::NoMatch
    );
    // bad signature
    assert_eq!(
        reason(
            v.verify(ALTERED_SIGNATURE, g::TIMESTAMP, g::PAYLOAD.as_bytes())
                .unwrap_err()
        ),
        SignatureFailure::NoMatch
    );
    // bad timestamp
    assert!(matches!(
        reason(
            v.verify(g::SIGNATURE, "timestamp", g::PAYLOAD.as_bytes())
                .unwrap_err()
        ),
        SignatureFailure::MalformedHeader(_)
    ));
    // the Python/Node vector's body without its trailing CRLF
    use python_vector as p;
    let trimmed = p::PAYLOAD.trim_end();
    assert_eq!(
        reason(
            at(p::PUBLIC_KEY, p::TIMESTAMP)
                .verify(p::SIGNATURE, p::TIMESTAMP, trimmed.as_bytes())
                .unwrap_err()
        ),
        SignatureFailure::NoMatch
    );
}

#[test]
fn published_vector_is_stale_today() {
    use go_vector as g;
    let e = EventWebhookVerifier::new(g::PUBLIC_KEY)
        .unwrap()
        .verify(g::SIGNATURE, g::TIMESTAMP, g::PAYLOAD.as_bytes())
        .unwrap_err();
    assert!(matches!(
        reason(e),
        SignatureFailure::TimestampOutsideTolerance {
            timestamp: 1_588_788_367,
            ..
        }
    ));
}

const BODY: &[u8] = br#"[{"email":"jane@example.com","timestamp":1700000000,"event":"delivered","sg_event_id":"ZGVsaXZlcmVk","sg_message_id":"14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.0","response":"250 OK","order_id":"42"}]"#;

#[test]
fn generated_key_valid() {
    let s = EventWebhookSigner::generate();
    let signed = s.sign_for_test(1_700_000_000, BODY);
    let v = EventWebhookVerifier::new(&s.public_key_base64())
        .unwrap()
        .with_clock(FixedClock::from_unix(1_700_000_000 + 299));
    let events = v.construct_events(&signed.headers(), BODY).unwrap();
    assert_eq!(events[0].custom_arg("order_id"), Some("42"));
    assert_eq!(events[0].message_id(), Some("14c5d75ce93"));
}

#[test]
fn generated_key_tampered_body_or_timestamp() {
    let s = EventWebhookSigner::generate();
    let signed = s.sign_for_test(1_700_000_000, BODY);
    let v = s
        .verifier()
        .with_clock(FixedClock::from_unix(1_700_000_000));
    let tampered = String::from_utf8(BODY.to_vec())
        .unwrap()
        .replace("\"42\"", "\"43\"");
    assert_eq!(
        reason(
            v.verify(&signed.signature, &signed.timestamp, tampered.as_bytes())
                .unwrap_err()
        ),
        SignatureFailure::NoMatch
    );
    assert_eq!(
        reason(v.verify(&signed.signature, "1700000001", BODY).unwrap_err()),
        SignatureFailure::NoMatch
    );
    // A re-serialised body (same JSON, different bytes) does not verify: verify the raw bytes.
    let reserialised =
        serde_json::to_vec(&serde_json::from_slice::<serde_json::Value>(BODY).unwrap()).unwrap();
    assert_ne!(reserialised, BODY);
    assert_eq!(
        reason(
            v.verify(&signed.signature, &signed.timestamp, &reserialised)
                .unwrap_err()
        ),
        SignatureFailure::NoMatch
    );
}

#[test]
fn generated_key_wrong_key() {
    let signer = EventWebhookSigner::generate();
    let other = EventWebhookSigner::generate();
    let signed = signer.sign_for_test(1_700_000_000, BODY);
    let v = other
        .verifier()
        .with_clock(FixedClock::from_unix(1_700_000_000));
    assert_eq!(
        reason(
            v.verify(&signed.signature, &signed.timestamp, BODY)
                .unwrap_err()
        ),
        SignatureFailure::NoMatch
    );
}

#[test]
fn generated_key_stale_and_future_timestamps() {
    let s = EventWebhookSigner::generate();
    let signed = s.sign_for_test(1_700_000_000, BODY);
    let clock = FixedClock::from_unix(1_700_000_000);
    let v = s.verifier().with_clock(clock.clone());
    clock.advance(Duration::from_secs(301));
    assert!(matches!(
        reason(
            v.verify(&signed.signature, &signed.timestamp, BODY)
                .unwrap_err()
        ),
        SignatureFailure::TimestampOutsideTolerance {
            tolerance_secs: 300,
            ..
        }
    ));
    clock.set_unix(1_700_000_000 - 301);
    assert!(matches!(
        reason(
            v.verify(&signed.signature, &signed.timestamp, BODY)
                .unwrap_err()
        ),
        SignatureFailure::TimestampOutsideTolerance { .. }
    ));
    let wide = v.clone().with_tolerance(Duration::from_secs(600));
    wide.verify(&signed.signature, &signed.timestamp, BODY)
        .unwrap();
}

#[test]
fn malformed_base64_and_der() {
    let s = EventWebhookSigner::generate();
    let v = s
        .verifier()
        .with_clock(FixedClock::from_unix(1_700_000_000));
    for bad in [
        "%%%not-base64%%%",
        "",
        &STANDARD.encode(b"not a DER signature"),
    ] {
        assert!(
            matches!(
                reason(v.verify(bad, "1700000000", BODY).unwrap_err()),
                SignatureFailure::MalformedHeader(_)
            ),
            "{bad:?}"
        );
    }
    assert_eq!(
        EventWebhookVerifier::new("%%%").unwrap_err().kind(),
        ErrorKind::Configuration
    );
}
