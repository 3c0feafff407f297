use std::time::Duration;

use super::*;
use crate::ErrorKind;
use crate::clock::FixedClock;
use crate::clock::from_unix_seconds;
use crate::webhook::InMemoryDedupStore;

// The published test vector of the Standard Webhooks specification (also in Svix's libraries).
const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
const TS: i64 = 1_614_265_330;
const BODY: &[u8] = br#"{"test": 2432232314}"#;
const SIGNATURE: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

fn wh() -> StandardWebhook {
    StandardWebhook::new(SECRET)
        .unwrap()
        .with_clock(FixedClock::from_unix(TS))
}

fn headers(signature: &str) -> StandardHeaders {
    StandardHeaders::new(ID, TS.to_string(), signature)
}

fn reason(e: &Error) -> &SignatureFailure {
    match e {
        Error::InvalidSignature { reason, .. } => reason,
        other => panic!("expected InvalidSignature, got {other:?}"),
    }
}

#[test]
fn sign_reproduces_the_published_vector() {
    assert_eq!(wh().sign(ID, TS, BODY), SIGNATURE);
    let h = wh().signed_headers(ID, TS, BODY);
    assert_eq!(h, headers(SIGNATURE));
}

#[test]
fn valid_signature_verifies() {
    wh().verify(&headers(SIGNATURE), BODY).unwrap();
    wh().verify_at(&headers(SIGNATURE), BODY, from_unix_seconds(TS + 300))
        .unwrap();
    wh().verify_parts(
        ID,
        "1614265330",
        SIGNATURE,
        BODY,
        from_unix_seconds(TS - 300),
    )
    .unwrap();
}

#[test]
fn secret_without_prefix_is_the_same_key() {
    let raw = StandardWebhook::new("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
    assert_eq!(raw.sign(ID, TS, BODY), SIGNATURE);
}

#[test]
fn bad_secret_is_a_configuration_error_naming_it() {
    for bad in ["whsec_not base64!", "whsec_", "", "***"] {
        let e = StandardWebhook::new(bad).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Configuration, "{bad}");
        assert_eq!(e.field(), Some(SECRET_SETTING), "{bad}");
    }
}

#[test]
fn tampered_body_does_not_verify() {
    let e = wh()
        .verify(&headers(SIGNATURE), br#"{"test": 2432232315}"#)
        .unwrap_err();
    assert_eq!(reason(&e), &SignatureFailure::NoMatch);
    assert_eq!(e.provider_name(), Some(PROVIDER));
    assert!(!e.is_retryable());
}

#[test]
fn tampered_id_or_timestamp_does_not_verify() {
    let mut h = headers(SIGNATURE);
    h.id = "msg_other".into();
    assert_eq!(
        reason(&wh().verify(&h, BODY).unwrap_err()),
        &SignatureFailure::NoMatch
    );
    let mut h = headers(SIGNATURE);
    h.timestamp = (TS + 1).to_string();
    assert_eq!(
        reason(&wh().verify(&h, BODY).unwrap_err()),
        &SignatureFailure::NoMatch
    );
}

#[test]
fn wrong_secret_does_not_verify() {
    let other = StandardWebhook::new("whsec_dGhpcyBpcyBhbm90aGVyIHNlY3JldCBrZXk=")
        .unwrap()
        .with_clock(FixedClock::from_unix(TS));
    let e = other.verify(&headers(SIGNATURE), BODY).unwrap_err();
    assert_eq!(reason(&e), &SignatureFailure::NoMatch);
}

#[test]
fn rotated_signatures_pass_when_any_matches() {
    let old = StandardWebhook::new("whsec_b2xkIHNlY3JldCBiZWZvcmUgcm90YXRpb24=").unwrap();
    let old_sig = old.sign(ID, TS, BODY);
    wh().verify(&headers(&format!("{old_sig} {SIGNATURE}")), BODY)
        .unwrap();
    wh().verify(&headers(&format!("{SIGNATURE}  {old_sig}")), BODY)
        .unwrap();
    // Other versions and undecodable v1 entries are skipped, not fatal.
    wh().verify(
        &headers(&format!("v1a,c29tZXRoaW5n v1,@@@ {SIGNATURE}")),
        BODY,
    )
    .unwrap();
    // Only the old secret's signature: no match for the new secret alone...
    let e = wh().verify(&headers(&old_sig), BODY).unwrap_err();
    assert_eq!(reason(&e), &SignatureFailure::NoMatch);
    // ...but a receiver holding both secrets accepts it.
    let both = wh()
        .with_secret("whsec_b2xkIHNlY3JldCBiZWZvcmUgcm90YXRpb24=")
        .unwrap();
    both.verify(&headers(&old_sig), BODY).unwrap();
    both.verify(&headers(SIGNATURE), BODY).unwrap();
    assert_eq!(both.sign(ID, TS, BODY), SIGNATURE, "signs with the first");
}

#[test]
fn expired_and_future_timestamps_are_refused() {
    let e = wh()
        .verify_at(&headers(SIGNATURE), BODY, from_unix_seconds(TS + 301))
        .unwrap_err();
    assert_eq!(
        reason(&e),
        &SignatureFailure::TimestampOutsideTolerance {
            timestamp: TS,
            now: TS + 301,
            tolerance_secs: 300
        }
    );
    let e = wh()
        .verify_at(&headers(SIGNATURE), BODY, from_unix_seconds(TS - 301))
        .unwrap_err();
    assert!(matches!(
        reason(&e),
        SignatureFailure::TimestampOutsideTolerance { .. }
    ));
    // A longer tolerance admits it; the clock can be moved.
    let clock = FixedClock::from_unix(TS);
    let wide = wh()
        .with_tolerance(Duration::from_secs(600))
        .with_clock(clock.clone());
    clock.advance(Duration::from_secs(500));
    wide.verify(&headers(SIGNATURE), BODY).unwrap();
    clock.advance(Duration::from_secs(101));
    assert!(wide.verify(&headers(SIGNATURE), BODY).is_err());
}

#[test]
fn malformed_headers_are_refused() {
    let cases: [(&str, &str, &str); 6] = [
        ("", "1614265330", SIGNATURE),
        (ID, "yesterday", SIGNATURE),
        (ID, "", SIGNATURE),
        (ID, "1614265330", ""),
        (ID, "1614265330", "   "),
        (
            ID,
            "1614265330",
            "g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
        ),
    ];
    for (id, ts, sig) in cases {
        let e = wh()
            .verify_parts(id, ts, sig, BODY, from_unix_seconds(TS))
            .unwrap_err();
        assert!(
            matches!(reason(&e), SignatureFailure::MalformedHeader(_)),
            "{id:?} {ts:?} {sig:?}: {e}"
        );
    }
}

#[test]
fn no_v1_entry_is_no_supported_signature() {
    let e = wh()
        .verify(&headers("v1a,c29tZXRoaW5n v2,abc"), BODY)
        .unwrap_err();
    assert_eq!(reason(&e), &SignatureFailure::NoSupportedSignature);
}

#[test]
fn body_over_the_limit_is_refused_before_anything_else() {
    let small = wh().with_body_limit(BODY.len());
    small.verify(&headers(SIGNATURE), BODY).unwrap();
    let small = wh().with_body_limit(BODY.len() - 1);
    let e = small.verify(&headers("garbage"), BODY).unwrap_err();
    assert_eq!(
        reason(&e),
        &SignatureFailure::BodyTooLarge {
            size: BODY.len(),
            limit: BODY.len() - 1
        }
    );
    assert_eq!(wh().body_limit(), crate::webhook::DEFAULT_BODY_LIMIT);
    assert_eq!(wh().tolerance(), crate::webhook::DEFAULT_TOLERANCE);
}

#[test]
fn headers_from_pairs_case_insensitive_with_svix_fallback() {
    let h = StandardHeaders::from_pairs(vec![
        ("Content-Type".to_owned(), "application/json".to_owned()),
        ("WEBHOOK-ID".to_owned(), ID.to_owned()),
        ("webhook-timestamp".to_owned(), " 1614265330 ".to_owned()),
        ("Webhook-Signature".to_owned(), SIGNATURE.to_owned()),
    ])
    .unwrap();
    assert_eq!(h, headers(SIGNATURE));

    let svix = StandardHeaders::from_pairs([
        ("svix-id", ID.as_bytes()),
        ("Svix-Timestamp", b"1614265330".as_slice()),
        ("svix-signature", SIGNATURE.as_bytes()),
    ])
    .unwrap();
    assert_eq!(svix, h);

    // Repeated signature headers are joined; the standard header wins over svix's.
    let joined = StandardHeaders::from_pairs([
        ("webhook-id", ID),
        ("svix-id", "msg_ignored"),
        ("webhook-timestamp", "1614265330"),
        ("webhook-signature", "v1,AAAA"),
        ("webhook-signature", SIGNATURE),
    ])
    .unwrap();
    assert_eq!(joined.id, ID);
    assert_eq!(joined.signature, format!("v1,AAAA {SIGNATURE}"));
    wh().verify(&joined, BODY).unwrap();
}

#[test]
fn headers_from_pairs_refuses_missing_repeated_and_non_utf8() {
    let e = StandardHeaders::from_pairs([("webhook-id", ID), ("webhook-signature", SIGNATURE)])
        .unwrap_err();
    assert!(e.to_string().contains("webhook-timestamp"), "{e}");
    let e = StandardHeaders::from_pairs([
        ("webhook-id", "a"),
        ("webhook-id", "b"),
        ("webhook-timestamp", "1"),
        ("webhook-signature", SIGNATURE),
    ])
    .unwrap_err();
    assert!(matches!(reason(&e), SignatureFailure::MalformedHeader(_)));
    // The same value twice is harmless.
    StandardHeaders::from_pairs([
        ("webhook-id", "a"),
        ("webhook-id", "a"),
        ("webhook-timestamp", "1"),
        ("webhook-signature", SIGNATURE),
    ])
    .unwrap();
    let e = StandardHeaders::from_pairs([
        ("webhook-id", b"\xff".as_slice()),
        ("webhook-timestamp", b"1".as_slice()),
        ("webhook-signature", b"v1,x".as_slice()),
    ])
    .unwrap_err();
    assert!(e.to_string().contains("UTF-8"), "{e}");
}

#[tokio::test]
async fn verify_once_dedups_by_webhook_id() {
    let store = InMemoryDedupStore::new().with_clock(FixedClock::from_unix(TS));
    let ttl = Duration::from_secs(86_400);
    let h = headers(SIGNATURE);
    assert!(
        wh().verify_once(&h, BODY, &store, ttl)
            .await
            .unwrap()
            .is_new()
    );
    assert!(
        wh().verify_once(&h, BODY, &store, ttl)
            .await
            .unwrap()
            .is_duplicate()
    );
    // A forged delivery is refused and records nothing.
    let forged = StandardHeaders::new("msg_forged", TS.to_string(), SIGNATURE);
    assert!(wh().verify_once(&forged, BODY, &store, ttl).await.is_err());
    assert!(!store.contains("msg_forged"));
    assert!(!store.contains("standard-webhooks:msg_forged"));
    // Namespaced: another sender's id `msg_…` in the same store does not collide.
    assert!(store.contains(&format!("standard-webhooks:{}", h.id)));
    assert!(!store.contains(&h.id));
}

#[test]
fn debug_never_shows_the_secret() {
    let d = format!("{:?}", wh());
    assert!(!d.contains("MfKQ9r8"), "{d}");
    assert!(!d.contains("whsec"), "{d}");
    assert!(d.contains("StandardWebhook"), "{d}");
    // Configuration errors do not echo it either.
    let e = StandardWebhook::new("whsec_S3cr3t!!").unwrap_err();
    assert!(!e.to_string().contains("S3cr3t"), "{e}");
    assert!(!format!("{e:?}").contains("S3cr3t"), "{e:?}");
}

#[cfg(feature = "http")]
#[test]
fn headers_from_an_http_header_map() {
    use reqwest::header::{HeaderMap, HeaderValue};
    let mut map = HeaderMap::new();
    map.insert("Webhook-Id", HeaderValue::from_static(ID));
    map.insert("webhook-timestamp", HeaderValue::from_static("1614265330"));
    map.append("webhook-signature", HeaderValue::from_static("v1,AAAA"));
    map.append("webhook-signature", HeaderValue::from_static(SIGNATURE));
    let h = StandardHeaders::from_pairs(&map).unwrap();
    assert_eq!(h.signature, format!("v1,AAAA {SIGNATURE}"));
    wh().verify(&h, BODY).unwrap();
}

/// Records the key, then fails like a store call that timed out after its write landed.
#[derive(Debug)]
struct WritesThenTimesOut {
    inner: InMemoryDedupStore,
    fail_next: std::sync::atomic::AtomicBool,
}

#[async_trait::async_trait]
impl crate::webhook::DedupStore for WritesThenTimesOut {
    async fn insert_if_absent(
        &self,
        key: &str,
        ttl: Duration,
    ) -> crate::Result<crate::webhook::DedupOutcome> {
        let outcome = self.inner.insert_if_absent(key, ttl).await?;
        if self
            .fail_next
            .swap(false, std::sync::atomic::Ordering::SeqCst)
        {
            return Err(crate::Error::timeout("store did not answer"));
        }
        Ok(outcome)
    }
    async fn release(&self, key: &str) -> crate::Result<()> {
        self.inner.release(key).await
    }
}

#[tokio::test]
async fn verify_once_releases_the_key_when_the_store_fails() {
    let store = WritesThenTimesOut {
        inner: InMemoryDedupStore::new().with_clock(FixedClock::from_unix(TS)),
        fail_next: true.into(),
    };
    let ttl = Duration::from_secs(86_400);
    let h = headers(SIGNATURE);
    let e = wh().verify_once(&h, BODY, &store, ttl).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Timeout);
    // The redelivery is processed, not taken for a duplicate.
    assert!(
        wh().verify_once(&h, BODY, &store, ttl)
            .await
            .unwrap()
            .is_new()
    );
}
