//! The one `parse_error` per AWS protocol: JSON (`awsJson1_0`/`1_1`, REST-JSON) and query (XML).
//!
//! Both read the error code, message and request id from where that protocol puts them and hand
//! them to one mapping, so an AWS error code means the same thing whichever service sent it:
//!
//! | codes | [`Error`] |
//! |---|---|
//! | `ThrottlingException`, `Throttling`, `ProvisionedThroughputExceededException`, `RequestLimitExceeded`, `TooManyRequestsException`, … or status 429 | rate limited (`Retry-After` kept) |
//! | `ConditionalCheckFailedException`, `TransactionConflictException`, `…AlreadyExists…`, … | conflict |
//! | `SignatureDoesNotMatch`, `InvalidSignatureException`, `UnrecognizedClientException`, `InvalidClientTokenId`, `ExpiredToken…`, … | unauthenticated |
//! | `AccessDenied…`, `AuthorizationError`, … | forbidden |
//! | `ResourceNotFoundException`, `QueueDoesNotExist`, `NotFound…`, … | not found |
//! | `ValidationException`, `InvalidParameter…`, `MessageRejected`, … | invalid input |
//! | `InternalServerError`, `ServiceUnavailable`, … or any 5xx | unavailable |
//!
//! Anything else falls back to core's status mapping. The provider's code, the HTTP status and
//! the request id (`x-amzn-RequestId`, `x-amz-request-id` or the body's `RequestId`) are kept.

use integrations_core::Error;
use integrations_core::http::{HttpResponse, parse_retry_after, status_error};

use crate::xml;

const THROTTLING: &[&str] = &[
    "ThrottlingException",
    "Throttling",
    "ThrottledException",
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
    "TooManyRequestsException",
    "RequestThrottled",
    "RequestThrottledException",
    "SlowDown",
    "PriorRequestNotComplete",
    "BandwidthLimitExceeded",
    "LimitExceededException",
];
const CONFLICT: &[&str] = &[
    "ConditionalCheckFailedException",
    "TransactionConflictException",
    "TransactionCanceledException",
    "ResourceInUseException",
    "AlreadyExistsException",
    "ResourceAlreadyExistsException",
    "QueueNameExists",
    "QueueAlreadyExists",
    "QueueDeletedRecently",
    "IdempotentParameterMismatch",
    "IdempotentParameterMismatchException",
    "ConcurrentModificationException",
    "DataAlreadyAcceptedException",
];
const UNAUTHENTICATED: &[&str] = &[
    "SignatureDoesNotMatch",
    "InvalidSignatureException",
    "IncompleteSignature",
    "IncompleteSignatureException",
    "UnrecognizedClientException",
    "InvalidClientTokenId",
    "InvalidAccessKeyId",
    "MissingAuthenticationToken",
    "MissingAuthenticationTokenException",
    "ExpiredToken",
    "ExpiredTokenException",
    "InvalidToken",
    "RequestExpired",
    "AuthFailure",
    "InvalidSecurity",
];
const FORBIDDEN: &[&str] = &[
    "AccessDenied",
    "AccessDeniedException",
    "AuthorizationError",
    "AuthorizationErrorException",
    "NotAuthorized",
    "UnauthorizedOperation",
    "OptInRequired",
    "AccountSendingPausedException",
    "SendingPausedException",
    "KMSAccessDeniedException",
    "KMSDisabledException",
];
const NOT_FOUND: &[&str] = &[
    "ResourceNotFoundException",
    "ResourceNotFound",
    "NotFound",
    "NotFoundException",
    "QueueDoesNotExist",
    "AWS.SimpleQueueService.NonExistentQueue",
    "TableNotFoundException",
];
const INVALID_INPUT: &[&str] = &[
    "ValidationException",
    "ValidationError",
    "InvalidParameter",
    "InvalidParameterValue",
    "InvalidParameterException",
    "InvalidParameterValueException",
    "InvalidParameterCombination",
    "MissingParameter",
    "SerializationException",
    "BadRequestException",
    "MessageRejected",
    "MailFromDomainNotVerifiedException",
    "InvalidAttributeName",
    "InvalidAttributeValue",
    "InvalidMessageContents",
    "ReceiptHandleIsInvalid",
    "BatchEntryIdsNotDistinct",
    "TooManyEntriesInBatchRequest",
    "EmptyBatchRequest",
    "BatchRequestTooLong",
    "InvalidBatchEntryId",
    "ItemCollectionSizeLimitExceededException",
    "InvalidAction",
    "MalformedQueryString",
];
const UNAVAILABLE: &[&str] = &[
    "InternalServerError",
    "InternalFailure",
    "InternalError",
    "InternalServiceError",
    "InternalServiceErrorException",
    "InternalServerException",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "RequestTimeout",
    "RequestTimeoutException",
];

/// What a protocol's error body and headers say.
#[derive(Debug, Default)]
struct Parts {
    code: Option<String>,
    message: Option<String>,
    request_id: Option<String>,
}

/// `parse_error` of the JSON protocols (DynamoDB, SQS, CloudWatch Logs, SES v2).
///
/// The code comes from the body's `__type`/`code` (namespace before `#` dropped), else the
/// `x-amzn-ErrorType` header, else SQS's `x-amzn-query-error`. An XML body (emulators answer
/// signature failures that way even on JSON services) is read as the query protocol's.
#[cfg(any(
    feature = "dynamodb",
    feature = "sqs",
    feature = "cloudwatch",
    feature = "ses"
))]
pub(crate) fn parse_json_error(resp: &HttpResponse, provider: &'static str) -> Error {
    let text = resp.text();
    let mut parts = if text.trim_start().starts_with('<') {
        xml_parts(&text)
    } else {
        json_parts(&text)
    };
    if parts.code.is_none() {
        parts.code = resp
            .header("x-amzn-ErrorType")
            .or_else(|| resp.header("x-amzn-query-error"))
            .map(|v| normalise_code(v.split(';').next().unwrap_or(v)));
    }
    let old_item = old_item(&text, parts.code.as_deref());
    let err = finish(resp, provider, parts);
    match old_item {
        Some(item) => err.with_source(item),
        None => err,
    }
}

/// The item a failed DynamoDB condition was checked against, returned with
/// `ReturnValuesOnConditionCheckFailure=ALL_OLD` in the error body's `Item`; kept as the
/// error's source (read it with `dynamodb::condition_failed_item`).
#[cfg(any(
    feature = "dynamodb",
    feature = "sqs",
    feature = "cloudwatch",
    feature = "ses"
))]
#[derive(Debug, Clone)]
pub(crate) struct OldItem(pub(crate) serde_json::Map<String, serde_json::Value>);

#[cfg(any(
    feature = "dynamodb",
    feature = "sqs",
    feature = "cloudwatch",
    feature = "ses"
))]
impl std::fmt::Display for OldItem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the condition failed against an item of {} attributes",
            self.0.len()
        )
    }
}

#[cfg(any(
    feature = "dynamodb",
    feature = "sqs",
    feature = "cloudwatch",
    feature = "ses"
))]
impl std::error::Error for OldItem {}

#[cfg(any(
    feature = "dynamodb",
    feature = "sqs",
    feature = "cloudwatch",
    feature = "ses"
))]
fn old_item(text: &str, code: Option<&str>) -> Option<OldItem> {
    if code != Some("ConditionalCheckFailedException") {
        return None;
    }
    let v: serde_json::Value = serde_json::from_str(text).ok()?;
    v.get("Item")?.as_object().cloned().map(OldItem)
}

/// `parse_error` of the query protocol (SNS, CloudWatch): `<ErrorResponse><Error><Code>`,
/// `<Message>`, `<RequestId>` (also the `<Response><Errors><Error>` shape).
#[cfg(any(feature = "sns", feature = "cloudwatch"))]
pub(crate) fn parse_query_error(resp: &HttpResponse, provider: &'static str) -> Error {
    let text = resp.text();
    let parts = if text.trim_start().starts_with('{') {
        json_parts(&text)
    } else {
        xml_parts(&text)
    };
    finish(resp, provider, parts)
}

fn json_parts(text: &str) -> Parts {
    let Ok(v) = serde_json::from_str::<serde_json::Value>(text) else {
        return Parts::default();
    };
    let s = |k: &str| v.get(k).and_then(|x| x.as_str()).map(str::to_owned);
    Parts {
        code: s("__type")
            .or_else(|| s("code"))
            .or_else(|| s("Code"))
            .map(|c| normalise_code(&c)),
        message: s("message")
            .or_else(|| s("Message"))
            .or_else(|| s("errorMessage")),
        request_id: s("RequestId").or_else(|| s("requestId")),
    }
}

fn xml_parts(text: &str) -> Parts {
    let Some(leaves) = xml::leaves(text) else {
        return Parts::default();
    };
    Parts {
        code: xml::first(&leaves, "Code").map(|c| normalise_code(&c)),
        message: xml::first(&leaves, "Message"),
        request_id: xml::first(&leaves, "RequestId").or_else(|| xml::first(&leaves, "RequestID")),
    }
}

/// `com.amazonaws.dynamodb.v20120810#ConditionalCheckFailedException` and
/// `ThrottlingException:http://internal.amazon.com/…` → the bare code.
fn normalise_code(raw: &str) -> String {
    let after_hash = raw.rsplit('#').next().unwrap_or(raw);
    let code = match after_hash.split_once(':') {
        Some((c, rest)) if rest.starts_with("http") || rest.is_empty() => c,
        _ => after_hash,
    };
    code.trim().to_owned()
}

/// Where AWS starts echoing what it signed (`SignatureDoesNotMatch`): the canonical request
/// (headers, including `x-amz-security-token`, the host and the body hash) and the string to
/// sign. Compared in ASCII lowercase.
const SIGNING_ECHO_MARKERS: &[&str] = &[
    "the canonical string for this request",
    "the string-to-sign",
    "the string to sign",
    "<canonicalrequest",
    "<stringtosign",
    "canonicalrequest",
    "stringtosign",
];

/// `message` cut where AWS starts echoing the canonical request or string to sign, so neither
/// reaches an error (and from there logs, dead letters, metrics labels).
pub(crate) fn redact_signing_echo(message: String) -> String {
    let lower = message.to_ascii_lowercase();
    // ASCII lowercasing keeps byte offsets, and every marker starts with an ASCII character, so
    // the offset is a char boundary of `message`.
    match SIGNING_ECHO_MARKERS
        .iter()
        .filter_map(|m| lower.find(m))
        .min()
    {
        Some(at) => format!(
            "{} [canonical request and string to sign redacted]",
            message[..at].trim_end()
        ),
        None => message,
    }
}

fn finish(resp: &HttpResponse, provider: &'static str, parts: Parts) -> Error {
    let status = resp.status.as_u16();
    let message = parts.message.unwrap_or_else(|| {
        let t = resp.text();
        if t.trim().is_empty() {
            format!("HTTP {status}")
        } else {
            // Cut the echo out of the whole body before truncating, so no part of it is kept.
            redact_signing_echo(t.into_owned())
                .chars()
                .take(300)
                .collect()
        }
    });
    let message = redact_signing_echo(message);
    let request_id = resp
        .header("x-amzn-RequestId")
        .or_else(|| resp.header("x-amz-request-id"))
        .map(str::to_owned)
        .or(parts.request_id);
    let code = parts.code.filter(|c| !c.is_empty());
    let is = |list: &[&str]| code.as_deref().is_some_and(|c| list.contains(&c));

    let mut err = if is(THROTTLING) || status == 429 {
        Error::rate_limited(parse_retry_after(&resp.headers), message).not_processed()
    } else if is(CONFLICT) {
        Error::conflict(message)
    } else if is(UNAUTHENTICATED) {
        Error::unauthenticated(message)
    } else if is(FORBIDDEN) {
        Error::forbidden(message)
    } else if is(NOT_FOUND) {
        Error::not_found(message)
    } else if is(INVALID_INPUT) {
        Error::invalid_input("request", message)
    } else if is(UNAVAILABLE) || status >= 500 {
        let e = Error::unavailable(message);
        if status == 503 { e.not_processed() } else { e }
    } else {
        status_error(resp, provider, message)
    };
    err = err.with_provider(provider).with_status(status);
    if let Some(c) = code {
        err = err.with_code(c);
    }
    if let Some(r) = request_id {
        err = err.with_request_id(r);
    }
    err
}

#[cfg(all(test, feature = "cloudwatch"))]
mod tests {
    use super::*;
    use bytes::Bytes;
    use integrations_core::ErrorKind;
    use integrations_core::http::{HeaderMap, StatusCode};

    fn resp(status: u16, headers: &[(&'static str, &str)], body: &str) -> HttpResponse {
        let mut h = HeaderMap::new();
        for (k, v) in headers {
            h.insert(*k, v.parse().unwrap());
        }
        HttpResponse {
            status: StatusCode::from_u16(status).unwrap(),
            headers: h,
            body: Bytes::from(body.to_owned()),
        }
    }

    const CANONICAL_ECHO: &str = "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.\n\nThe Canonical String for this request should have been\n'POST\n/\n\ncontent-type:application/x-amz-json-1.0\nhost:dynamodb.us-east-1.amazonaws.com\nx-amz-date:20261121T100000Z\nx-amz-security-token:IQoJb3JpZ2luX2VjEXAMPLETOKEN\n\ncontent-type;host;x-amz-date;x-amz-security-token\n44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a'\n\nThe String-to-Sign should have been\n'AWS4-HMAC-SHA256\n20261121T100000Z\n20261121/us-east-1/dynamodb/aws4_request\n0f1ba3e5c8e1a8e7d2f3a3bbd61f2e5e0b4e1f0a2b3c4d5e6f708192a3b4c5d6'\n";

    fn assert_redacted(e: &Error) {
        let shown = format!("{e} {e:?}");
        for leaked in [
            "IQoJb3JpZ2luX2VjEXAMPLETOKEN",
            "x-amz-date:",
            "AWS4-HMAC-SHA256",
            "44136fa355b3678a",
            "aws4_request",
        ] {
            assert!(!shown.contains(leaked), "{leaked} leaked: {shown}");
        }
        assert!(
            shown.contains("signature we calculated does not match"),
            "{shown}"
        );
        assert!(shown.contains("redacted"), "{shown}");
        assert_eq!(e.kind(), ErrorKind::Unauthenticated);
    }

    #[test]
    fn signature_mismatch_echoes_are_redacted() {
        let json = serde_json::json!({
            "__type": "com.amazon.coral.service#InvalidSignatureException",
            "message": CANONICAL_ECHO,
        })
        .to_string();
        assert_redacted(&parse_json_error(&resp(400, &[], &json), "aws-dynamodb"));
        let xml = format!(
            "<ErrorResponse><Error><Type>Sender</Type><Code>SignatureDoesNotMatch</Code><Message>{}</Message></Error><RequestId>r1</RequestId></ErrorResponse>",
            CANONICAL_ECHO.replace('\'', "&apos;")
        );
        assert_redacted(&parse_query_error(&resp(403, &[], &xml), "aws-sns"));
        // S3-style bodies carry them as elements; without a Message the body itself is shown.
        let elements = "<Error><Code>SignatureDoesNotMatch</Code><CanonicalRequest>POST\n/\nx-amz-security-token:IQoJb3JpZ2luX2VjEXAMPLETOKEN</CanonicalRequest><StringToSign>AWS4-HMAC-SHA256 aws4_request</StringToSign></Error>";
        let e = parse_query_error(&resp(403, &[], elements), "aws-sns");
        let shown = format!("{e} {e:?}");
        assert!(!shown.contains("IQoJb3JpZ2luX2VjEXAMPLETOKEN"), "{shown}");
        assert!(!shown.contains("aws4_request"), "{shown}");
        assert_eq!(redact_signing_echo("plain".into()), "plain");
    }

    #[test]
    fn json_throttling_codes_are_rate_limited() {
        for code in [
            "ThrottlingException",
            "ProvisionedThroughputExceededException",
            "RequestLimitExceeded",
            "TooManyRequestsException",
        ] {
            let body = format!(
                r#"{{"__type":"com.amazonaws.dynamodb.v20120810#{code}","message":"slow down"}}"#
            );
            let e = parse_json_error(
                &resp(400, &[("x-amzn-RequestId", "RID1")], &body),
                "aws-dynamodb",
            );
            assert_eq!(e.kind(), ErrorKind::RateLimited, "{code}");
            assert!(e.is_retryable());
            assert_eq!(e.code(), Some(code));
            assert_eq!(e.request_id(), Some("RID1"));
            assert_eq!(e.provider_name(), Some("aws-dynamodb"));
        }
    }

    #[test]
    fn json_conditional_check_is_conflict() {
        let body = r#"{"__type":"com.amazonaws.dynamodb.v20120810#ConditionalCheckFailedException","message":"The conditional request failed"}"#;
        let e = parse_json_error(&resp(400, &[], body), "aws-dynamodb");
        assert_eq!(e.kind(), ErrorKind::Conflict);
        assert_eq!(e.message(), "The conditional request failed");
        assert!(!e.is_retryable());
    }

    #[test]
    fn json_code_from_headers() {
        let e = parse_json_error(
            &resp(
                400,
                &[(
                    "x-amzn-ErrorType",
                    "NotFoundException:http://internal.amazon.com/coral/",
                )],
                r#"{"message":"no such template"}"#,
            ),
            "aws-ses",
        );
        assert_eq!(e.kind(), ErrorKind::NotFound);
        assert_eq!(e.code(), Some("NotFoundException"));
        let e = parse_json_error(
            &resp(
                400,
                &[(
                    "x-amzn-query-error",
                    "AWS.SimpleQueueService.NonExistentQueue;Sender",
                )],
                "",
            ),
            "aws-sqs",
        );
        assert_eq!(e.kind(), ErrorKind::NotFound);
    }

    #[test]
    fn query_signature_error_is_unauthenticated() {
        let body = r#"<?xml version="1.0" encoding="utf-8"?>
<ErrorResponse><Errors><Error><Code>SignatureDoesNotMatch</Code><Message>The request signature we calculated does not match</Message><Type>Sender</Type></Error></Errors><RequestId>abc-123</RequestId></ErrorResponse>"#;
        let e = parse_query_error(&resp(403, &[], body), "aws-sns");
        assert_eq!(e.kind(), ErrorKind::Unauthenticated);
        assert_eq!(e.code(), Some("SignatureDoesNotMatch"));
        assert_eq!(e.request_id(), Some("abc-123"));
        assert_eq!(e.status(), Some(403));
        // The JSON parser reads the same XML (emulators answer JSON services this way).
        let e = parse_json_error(&resp(403, &[], body), "aws-sqs");
        assert_eq!(e.kind(), ErrorKind::Unauthenticated);
    }

    #[test]
    fn query_throttling_and_5xx() {
        let body = "<ErrorResponse><Error><Type>Sender</Type><Code>Throttling</Code><Message>Rate exceeded</Message></Error><RequestId>r</RequestId></ErrorResponse>";
        let e = parse_query_error(&resp(400, &[("retry-after", "2")], body), "aws-sns");
        assert_eq!(e.kind(), ErrorKind::RateLimited);
        assert_eq!(e.retry_after(), Some(std::time::Duration::from_secs(2)));
        let e = parse_query_error(&resp(502, &[], "<html>bad gateway</html>"), "aws-sns");
        assert_eq!(e.kind(), ErrorKind::Unavailable);
        assert!(e.is_retryable());
        let e = parse_query_error(&resp(503, &[], ""), "aws-sns");
        assert!(e.is_failover_safe());
        assert_eq!(e.message(), "HTTP 503");
    }

    #[test]
    fn unknown_codes_fall_back_to_status() {
        let e = parse_json_error(
            &resp(400, &[], r#"{"__type":"SomethingNew","message":"m"}"#),
            "aws-sqs",
        );
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
        assert_eq!(e.code(), Some("SomethingNew"));
        let e = parse_json_error(
            &resp(
                403,
                &[],
                r#"{"__type":"AccessDeniedException","Message":"no"}"#,
            ),
            "aws-sqs",
        );
        assert_eq!(e.kind(), ErrorKind::Forbidden);
        assert_eq!(e.message(), "no");
    }

    #[test]
    fn normalises_codes() {
        assert_eq!(
            normalise_code("com.amazonaws.sqs#QueueDoesNotExist"),
            "QueueDoesNotExist"
        );
        assert_eq!(
            normalise_code("ThrottlingException:http://internal.amazon.com/"),
            "ThrottlingException"
        );
        assert_eq!(
            normalise_code("AWS.SimpleQueueService.NonExistentQueue"),
            "AWS.SimpleQueueService.NonExistentQueue"
        );
    }
}
