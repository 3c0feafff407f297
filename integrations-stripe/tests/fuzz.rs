//! Hostile input, no panics: property tests over arbitrary bytes for the `Stripe-Signature`
//! parser and verifier, the typed event objects behind a valid signature, and `parse_error`.
//! Each asserts a typed result; 2,000 cases each keeps the CI budget.

use std::time::Duration;

use bytes::Bytes;
use integrations_core::clock::from_unix_seconds;
use integrations_core::http::{HeaderMap, HttpResponse, StatusCode};
use integrations_core::webhook::WebhookSecret;
use integrations_stripe::parse_error;
use integrations_stripe::webhook::{sign_for_test, verify};
use proptest::prelude::*;

const T: i64 = 1_700_000_000;
const SECRET: &str = "whsec_test_4eC39HqLyjWDarjtT1zdp7dc";

fn signature_header() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[ -~]{0,80}",
        "(t=-?[0-9]{0,22}|v1=[0-9a-f]{0,66}|v0=[0-9a-f]{0,8}|[a-z0-9=]{0,6})(,(t=-?[0-9]{0,22}|v1=[0-9a-fA-F]{0,66}|[ -~]{0,8})){0,12}",
    ]
}

fn response() -> impl Strategy<Value = HttpResponse> {
    (
        100u16..1000,
        proptest::collection::vec(any::<u8>(), 0..512),
        prop_oneof![
            Just(String::new()),
            "[ -~]{0,20}",
            Just("true".to_owned()),
            Just("false".to_owned())
        ],
        "[ -~]{0,20}",
        "[ -~]{0,20}",
    )
        .prop_map(|(status, body, should_retry, retry_after, request_id)| {
            let mut headers = HeaderMap::new();
            for (name, value) in [
                ("stripe-should-retry", should_retry),
                ("retry-after", retry_after),
                ("request-id", request_id),
            ] {
                if let Ok(v) = value.parse() {
                    headers.insert(name, v);
                }
            }
            HttpResponse {
                status: StatusCode::from_u16(status).unwrap(),
                headers,
                body: Bytes::from(body),
            }
        })
}

/// A JSON error body shaped like Stripe's, with hostile values.
fn stripe_error_body() -> impl Strategy<Value = Vec<u8>> {
    (
        "[a-z_]{0,24}",
        any::<String>(),
        any::<String>(),
        any::<String>(),
        any::<String>(),
    )
        .prop_map(|(kind, code, decline, param, message)| {
            serde_json::json!({"error": {
                "type": kind, "code": code, "decline_code": decline, "param": param,
                "message": message,
            }})
            .to_string()
            .into_bytes()
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn signature_headers_never_panic(
        header in signature_header(),
        body in proptest::collection::vec(any::<u8>(), 0..512),
    ) {
        let secrets = [WebhookSecret::new(SECRET)];
        let r = verify(&body, &header, &secrets, Duration::from_secs(300), from_unix_seconds(T));
        prop_assert!(r.is_err(), "arbitrary input verified");
    }

    /// Behind a valid signature: arbitrary bytes, and event envelopes whose object has hostile
    /// amounts, currencies, statuses and types. Verifying is typed; `object()` is typed.
    #[test]
    fn signed_hostile_events_never_panic(
        raw in proptest::collection::vec(any::<u8>(), 0..256),
        object in prop_oneof![
            Just("payment_intent"), Just("charge"), Just("refund"), Just("customer"), Just("x")
        ],
        amount in prop_oneof![any::<i64>().prop_map(|a| a.to_string()), "[-0-9.e]{0,24}"],
        currency in prop_oneof!["[a-z]{3}", "[ -~]{0,5}"],
        status in "[a-z_]{0,24}",
        type_ in "[a-z_.]{0,40}",
        as_raw in any::<bool>(),
    ) {
        let body = if as_raw {
            raw
        } else {
            format!(
                r#"{{"id":"evt_1","object":"event","type":"{type_}","created":1,"livemode":false,"data":{{"object":{{"id":"x_1","object":"{object}","amount":{amount},"amount_received":{amount},"amount_refunded":{amount},"currency":"{}","status":"{status}","payment_intent":"pi_1","charge":"ch_1"}}}}}}"#,
                currency.replace(['"', '\\'], "")
            )
            .into_bytes()
        };
        let secret = WebhookSecret::new(SECRET);
        let header = sign_for_test(&body, &secret, T);
        if let Ok(event) = verify(&body, &header, &[secret], Duration::from_secs(300), from_unix_seconds(T)) {
            let _ = event.object();
            let _ = event.payment_intent();
            let _ = event.charge();
        }
    }

    #[test]
    fn parse_error_never_panics(mut resp in response(), stripe_shaped in any::<bool>(), body in stripe_error_body()) {
        if stripe_shaped {
            resp.body = Bytes::from(body);
        }
        let e = parse_error(&resp);
        prop_assert_eq!(e.status(), Some(resp.status.as_u16()));
        prop_assert_eq!(e.provider_name(), Some("stripe"));
    }
}
