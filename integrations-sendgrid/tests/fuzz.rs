//! Hostile input, no panics: property tests over arbitrary bytes for the Signed Event Webhook
//! verifier and headers, the event batch parser, `parse_error` and the template engine. Each
//! asserts a typed result; 2,000 cases each keeps the CI budget.

use std::time::SystemTime;

use bytes::Bytes;
use http::HeaderMap;
use integrations_core::clock::FixedClock;
use integrations_core::http::{HttpResponse, StatusCode};
use integrations_sendgrid::parse_error;
use integrations_sendgrid::template::{Template, Variables};
use integrations_sendgrid::webhook::{
    EventWebhookSigner, EventWebhookVerifier, SIGNATURE_HEADER, TIMESTAMP_HEADER, parse_events,
};
use proptest::prelude::*;
use serde_json::{Value, json};

fn verifier() -> &'static (EventWebhookSigner, EventWebhookVerifier) {
    static V: std::sync::OnceLock<(EventWebhookSigner, EventWebhookVerifier)> =
        std::sync::OnceLock::new();
    V.get_or_init(|| {
        let s = EventWebhookSigner::generate();
        let v = s
            .verifier()
            .with_clock(FixedClock::from_unix(1_700_000_000));
        (s, v)
    })
}

fn header_text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[ -~]{0,80}",
        "[A-Za-z0-9+/=]{0,120}",
        "-?[0-9]{0,22}",
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| json!(f)),
        any::<String>().prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            proptest::collection::btree_map("[a-z_]{0,8}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Event objects with SendGrid's field names and hostile values.
fn event() -> impl Strategy<Value = Value> {
    (
        proptest::collection::btree_map(
            prop_oneof![
                Just("email".to_owned()),
                Just("timestamp".to_owned()),
                Just("event".to_owned()),
                Just("sg_event_id".to_owned()),
                Just("sg_message_id".to_owned()),
                Just("category".to_owned()),
                Just("asm_group_id".to_owned()),
                Just("attempt".to_owned()),
                Just("type".to_owned()),
                Just("url".to_owned()),
                "[a-z_]{0,10}",
            ],
            json_value(),
            0..10,
        ),
        prop_oneof![
            Just("delivered"),
            Just("bounce"),
            Just("open"),
            Just("click"),
            Just("group_unsubscribe"),
            Just("deferred"),
            Just("dropped"),
            Just("x")
        ],
    )
        .prop_map(|(fields, kind)| {
            let mut m: serde_json::Map<String, Value> = fields.into_iter().collect();
            m.entry("event").or_insert_with(|| kind.into());
            Value::Object(m)
        })
}

fn template_source() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop_oneof![
            Just("{{".to_owned()),
            Just("}}".to_owned()),
            Just("{{{".to_owned()),
            Just("}}}".to_owned()),
            Just("{{name}}".to_owned()),
            Just("{{{name}}}".to_owned()),
            Just("{{#if name}}".to_owned()),
            Just("{{#unless name}}".to_owned()),
            Just("{{else}}".to_owned()),
            Just("{{/if}}".to_owned()),
            Just("{{/unless}}".to_owned()),
            Just("{{#each items}}".to_owned()),
            Just("{{/each}}".to_owned()),
            Just("{{this}}".to_owned()),
            Just("{{this.name}}".to_owned()),
            Just("{{@index}}".to_owned()),
            Just("{{items.0}}".to_owned()),
            Just("{{../name}}".to_owned()),
            Just("{{ }}".to_owned()),
            Just("<b>&\"'\n".to_owned()),
            "[ -~]{0,6}",
            any::<String>(),
        ],
        0..12,
    )
    .prop_map(|parts| parts.concat())
}

fn response() -> impl Strategy<Value = HttpResponse> {
    (
        100u16..1000,
        prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..256),
            (any::<String>(), any::<String>(), any::<String>()).prop_map(|(m, f, id)| {
                json!({"errors": [{"message": m, "field": f, "help": null}], "id": id})
                    .to_string()
                    .into_bytes()
            }),
        ],
        "[ -~]{0,24}",
        "[ -~]{0,24}",
    )
        .prop_map(|(status, body, reset, retry_after)| {
            let mut headers = HeaderMap::new();
            for (name, value) in [("x-ratelimit-reset", reset), ("retry-after", retry_after)] {
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

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn signatures_and_headers_never_panic(
        sig in header_text(),
        ts in header_text(),
        body in proptest::collection::vec(any::<u8>(), 0..512),
    ) {
        let (_, v) = verifier();
        prop_assert!(v.verify(&sig, &ts, &body).is_err(), "arbitrary input verified");
        let mut h = HeaderMap::new();
        if let Ok(s) = sig.parse() {
            h.insert(SIGNATURE_HEADER, s);
        }
        if let Ok(t) = ts.parse() {
            h.insert(TIMESTAMP_HEADER, t);
        }
        prop_assert!(v.construct_events(&h, &body).is_err());
    }

    #[test]
    fn keys_never_panic(key in header_text()) {
        let _ = EventWebhookVerifier::new(&key);
        let _ = EventWebhookVerifier::from_key_list(&key);
    }

    /// Behind a valid signature: arbitrary bytes and hostile batches parse to a typed result.
    #[test]
    fn signed_batches_never_panic(
        raw in proptest::collection::vec(any::<u8>(), 0..256),
        events in proptest::collection::vec(event(), 0..6),
        as_raw in any::<bool>(),
    ) {
        let (s, v) = verifier();
        let body = if as_raw { raw } else { Value::from(events).to_string().into_bytes() };
        let signed = s.sign_for_test(1_700_000_000, &body);
        if let Ok(events) = v.construct_events(&signed.headers(), &body) {
            for e in &events {
                let _ = (e.dedup_key(), e.event_type(), e.message_id(), e.custom_args());
            }
        }
        let _ = parse_events(&body);
    }

    #[test]
    fn parse_error_never_panics(resp in response()) {
        let e = parse_error(&resp, SystemTime::UNIX_EPOCH);
        prop_assert_eq!(e.status(), Some(resp.status.as_u16()));
    }

    #[test]
    fn templates_never_panic(
        subject in template_source(),
        text in template_source(),
        html in template_source(),
        name in json_value(),
        items in proptest::collection::vec(json_value(), 0..4),
    ) {
        let built = Template::builder("fuzz")
            .subject(subject)
            .text(text)
            .html(html)
            .optional(["name", "items"])
            .build();
        if let Ok(t) = built {
            let mut vars = Variables::new();
            vars.insert("name".into(), name);
            vars.insert("items".into(), Value::from(items));
            let _ = t.render(&vars);
            let _ = t.render(&Variables::new());
        }
    }
}
