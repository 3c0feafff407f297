//! An event in another API version than the pinned one: still parsed (`data.object` raw until
//! asked), and logged once per process. Its own test binary, so no other test can use up the
//! process's one warning first.

use integrations_core::webhook::WebhookSecret;
use integrations_stripe::DEFAULT_API_VERSION;
use integrations_stripe::webhook::{StripeWebhookVerifier, sign_for_test};
use integrations_testkit::TracingCapture;

const NOW: i64 = 1_700_000_000;

fn event(id: &str, version: &str) -> Vec<u8> {
    format!(
        r#"{{"id":"{id}","object":"event","type":"checkout.session.completed","created":{NOW},
        "livemode":false,"api_version":"{version}","a_new_envelope_field":{{"x":1}},
        "data":{{"object":{{"id":"cs_1","object":"checkout.session","brand_new":[1,2]}}}}}}"#
    )
    .into_bytes()
}

#[test]
fn a_newer_api_version_is_parsed_and_logged_once() {
    let secret = WebhookSecret::new("whsec_test");
    let verifier = StripeWebhookVerifier::new(secret.clone())
        .with_clock(integrations_core::clock::FixedClock::from_unix(NOW));
    let capture = TracingCapture::start();

    // The pinned version: nothing logged.
    let body = event("evt_0", DEFAULT_API_VERSION);
    let got = verifier
        .verify(&body, &sign_for_test(&body, &secret, NOW))
        .unwrap();
    assert_eq!(got.api_version.as_deref(), Some(DEFAULT_API_VERSION));
    assert!(capture.events().is_empty(), "{:?}", capture.events());

    for (id, version) in [
        ("evt_1", "2099-01-01.future"),
        ("evt_2", "2099-01-01.future"),
        ("evt_3", "2100-06-30.later"),
    ] {
        let body = event(id, version);
        let got = verifier
            .verify(&body, &sign_for_test(&body, &secret, NOW))
            .unwrap();
        assert_eq!(got.id, id);
        assert_eq!(got.type_, "checkout.session.completed");
        assert_eq!(got.api_version.as_deref(), Some(version));
        // Lenient: an object type this crate does not model is still readable.
        let object = got.data.object().unwrap();
        assert_eq!(object.object_name(), Some("checkout.session"));
    }

    let events = capture.events();
    let warnings: Vec<_> = events
        .iter()
        .filter(|e| e.field("event_api_version").is_some())
        .collect();
    assert_eq!(warnings.len(), 1, "{events:?}");
    let w = warnings[0];
    assert_eq!(w.level, tracing::Level::WARN);
    assert_eq!(w.field("event_api_version"), Some("2099-01-01.future"));
    assert_eq!(w.field("pinned_api_version"), Some(DEFAULT_API_VERSION));
    assert_eq!(w.field("event_id"), Some("evt_1"));
    assert!(w.message.contains("2099-01-01.future") && w.message.contains(DEFAULT_API_VERSION));
}
