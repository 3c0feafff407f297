//! Hostile input, no panics: property tests over arbitrary bytes for the JSON and XML error
//! parsers (`parse_error` of both protocols), the XML reader, the SNS message parser and the SNS
//! verifier. Each asserts a typed result; 2,000 cases each keeps the CI budget.

use async_trait::async_trait;
use bytes::Bytes;
use integrations_core::http::{HeaderMap, HttpResponse, StatusCode};
use integrations_core::{ErrorKind, Result};
use proptest::prelude::*;
use serde_json::{Value, json};
use url::Url;

use crate::error::{parse_json_error, parse_query_error};
use crate::sns::{CertificateFetcher, SnsMessage, SnsMessageVerifier};

fn xml_text() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop_oneof![
            Just("<ErrorResponse>".to_owned()),
            Just("</ErrorResponse>".to_owned()),
            Just("<Error>".to_owned()),
            Just("</Error>".to_owned()),
            Just("<Code>".to_owned()),
            Just("</Code>".to_owned()),
            Just("<Message>".to_owned()),
            Just("</Message>".to_owned()),
            Just("<RequestId>".to_owned()),
            Just("</RequestId>".to_owned()),
            Just("<![CDATA[".to_owned()),
            Just("]]>".to_owned()),
            Just("&amp;&lt;&#x0;&#99999999;&bogus;".to_owned()),
            Just("<?xml version=\"1.0\"?>".to_owned()),
            Just("<!DOCTYPE x [<!ENTITY a \"b\">]>".to_owned()),
            Just("ThrottlingException:http://internal.amazon.com/".to_owned()),
            Just("The Canonical String for this request should have been".to_owned()),
            "[ -~]{0,8}",
            any::<String>(),
        ],
        0..16,
    )
    .prop_map(|p| p.concat())
}

fn json_error() -> impl Strategy<Value = String> {
    (
        prop_oneof![
            any::<String>(),
            Just("com.amazonaws.dynamodb.v20120810#ThrottlingException".to_owned()),
            Just("#".to_owned()),
            Just(":".to_owned()),
            "[A-Za-z.#:/]{0,40}",
        ],
        any::<String>(),
        any::<String>(),
    )
        .prop_map(|(t, m, r)| json!({"__type": t, "message": m, "RequestId": r}).to_string())
}

fn response() -> impl Strategy<Value = HttpResponse> {
    (
        100u16..1000,
        prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..512),
            xml_text().prop_map(String::into_bytes),
            json_error().prop_map(String::into_bytes),
        ],
        "[ -~]{0,40}",
        "[ -~]{0,24}",
        "[ -~]{0,24}",
    )
        .prop_map(|(status, body, error_type, retry_after, request_id)| {
            let mut headers = HeaderMap::new();
            for (name, value) in [
                ("x-amzn-errortype", error_type.clone()),
                ("x-amzn-query-error", error_type),
                ("retry-after", retry_after),
                ("x-amzn-requestid", request_id),
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

/// Serves arbitrary bytes as the certificate.
#[derive(Debug)]
struct Garbage(Vec<u8>);

#[async_trait]
impl CertificateFetcher for Garbage {
    async fn fetch(&self, _url: &Url) -> Result<Vec<u8>> {
        Ok(self.0.clone())
    }
}

fn sns_message() -> impl Strategy<Value = Vec<u8>> {
    (
        proptest::collection::btree_map(
            prop_oneof![
                Just("Type"),
                Just("MessageId"),
                Just("TopicArn"),
                Just("Subject"),
                Just("Message"),
                Just("Timestamp"),
                Just("SignatureVersion"),
                Just("Signature"),
                Just("SigningCertURL"),
                Just("Token"),
                Just("SubscribeURL"),
                Just("UnsubscribeURL"),
                Just("MessageAttributes"),
            ],
            prop_oneof![
                any::<String>().prop_map(Value::from),
                Just(Value::from("Notification")),
                Just(Value::from("SubscriptionConfirmation")),
                Just(Value::from("1")),
                Just(Value::from("2")),
                Just(Value::from(
                    "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-x.pem"
                )),
                Just(Value::from("arn:aws:sns:us-east-1:123456789012:orders")),
                "[A-Za-z0-9+/=]{0,40}".prop_map(Value::from),
                "-?[0-9]{0,20}-[0-9]{0,3}-[0-9]{0,3}T[0-9:.]{0,12}Z?".prop_map(Value::from),
                Just(json!({"a": {"Type": "String", "Value": "v"}})),
                Just(Value::Null),
                any::<i64>().prop_map(Value::from),
            ],
            0..14,
        ),
        proptest::collection::vec(any::<u8>(), 0..128),
        any::<bool>(),
    )
        .prop_map(|(fields, raw, as_raw)| {
            if as_raw {
                raw
            } else {
                serde_json::to_vec(&fields).unwrap()
            }
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn json_and_xml_parse_error_never_panic(resp in response()) {
        let status = resp.status.as_u16();
        for e in [
            parse_json_error(&resp, "aws-dynamodb"),
            parse_query_error(&resp, "aws-sns"),
        ] {
            prop_assert_eq!(e.status(), Some(status));
            let shown = e.message();
            prop_assert!(!shown.to_ascii_lowercase().contains("canonical string for this request"));
        }
        let _ = crate::xml::leaves(&resp.text());
    }

    #[test]
    fn sns_messages_never_panic(
        body in sns_message(),
        cert in proptest::collection::vec(any::<u8>(), 0..256),
    ) {
        if let Ok(m) = SnsMessage::parse(&body) {
            let _ = m.string_to_sign();
        }
        let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
        let v = SnsMessageVerifier::with_fetcher(Garbage(cert))
            .with_max_age(std::time::Duration::from_secs(3600));
        let r = rt.block_on(v.verify(&body));
        // Nothing arbitrary verifies: refused as a signature, a topic or a fetch failure.
        let e = r.expect_err("arbitrary input verified");
        prop_assert!(
            matches!(e.kind(), ErrorKind::InvalidSignature | ErrorKind::Unavailable),
            "{e}"
        );
    }
}
