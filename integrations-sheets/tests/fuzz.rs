//! Hostile input, no panics: property tests over arbitrary input for A1 notation and
//! `parse_error`. Each asserts a typed result; 2,000 cases each keeps the CI budget.

use bytes::Bytes;
use integrations_core::http::{HeaderMap, HttpResponse, StatusCode};
use integrations_sheets::{A1Range, parse_error};
use proptest::prelude::*;
use serde_json::{Value, json};

fn a1_text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[ -~]{0,24}",
        "('[^']{0,6}'{0,2}[^']{0,4}'?!)?\\$?[A-Za-z]{0,5}\\$?[0-9]{0,12}(:\\$?[A-Za-z]{0,5}\\$?[0-9]{0,12})?",
        "[A-Za-z0-9 ]{0,8}![A-Z]{0,4}[0-9]{0,20}:[A-Z]{0,4}[0-9]{0,20}",
    ]
}

fn google_error() -> impl Strategy<Value = Value> {
    (
        any::<i64>(),
        any::<String>(),
        "[A-Z_]{0,24}",
        "[A-Z_]{0,24}",
        any::<bool>(),
    )
        .prop_map(|(code, message, status, reason, oauth)| {
            if oauth {
                json!({"error": status.to_lowercase(), "error_description": message})
            } else {
                json!({"error": {"code": code, "message": message, "status": status,
                    "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": reason,
                        "metadata": {"quota_limit_value": message}}]}})
            }
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn a1_parsing_never_panics(input in a1_text()) {
        if let Ok(range) = input.parse::<A1Range>() {
            let _ = range.to_string();
        }
        let _ = A1Range::parse(&input);
    }

    #[test]
    fn parse_error_never_panics(
        status in 100u16..1000,
        raw in proptest::collection::vec(any::<u8>(), 0..256),
        google in google_error(),
        shaped in any::<bool>(),
        retry_after in "[ -~]{0,20}",
    ) {
        let mut headers = HeaderMap::new();
        if let Ok(v) = retry_after.parse() {
            headers.insert("retry-after", v);
        }
        let resp = HttpResponse {
            status: StatusCode::from_u16(status).unwrap(),
            headers,
            body: Bytes::from(if shaped { google.to_string().into_bytes() } else { raw }),
        };
        let e = parse_error(&resp);
        prop_assert_eq!(e.status(), Some(status));
    }
}
