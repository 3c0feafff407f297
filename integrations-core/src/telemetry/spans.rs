//! The two spans of a call and the helpers that fill them (see the [module docs](super)).

use tracing::Span;
use tracing::field::Empty;

use crate::error::{Error, Result};

/// Name of the span around one logical call under a policy (all its attempts and waits).
pub const CALL_SPAN: &str = "integration.call";
/// Name of the span around one attempt of a call.
pub const ATTEMPT_SPAN: &str = "integration.attempt";

/// The span of one call; disabled (and free) when nobody listens.
#[inline]
pub(crate) fn call_span(provider: &str, operation: &'static str) -> Span {
    tracing::info_span!(
        "integration.call",
        provider,
        operation,
        otel.kind = "internal",
        attempts = Empty,
        outcome = Empty,
        "error.type" = Empty,
        otel.status_code = Empty,
    )
}

/// The span of attempt `number` (1-based), a child of the current call span.
#[inline]
pub(crate) fn attempt_span(number: u32) -> Span {
    tracing::info_span!(
        "integration.attempt",
        attempt = number,
        otel.kind = "client",
        http.request.method = Empty,
        server.address = Empty,
        server.port = Empty,
        url.path = Empty,
        http.response.status_code = Empty,
        rpc.system = Empty,
        rpc.service = Empty,
        rpc.method = Empty,
        "error.type" = Empty,
        otel.status_code = Empty,
    )
}

/// Records how a call ended on its span.
pub(crate) fn record_call<T>(span: &Span, attempts: u32, result: &Result<T>) {
    if span.is_disabled() {
        return;
    }
    span.record("attempts", attempts);
    match result {
        Ok(_) => {
            span.record("outcome", "success");
        }
        Err(e) => {
            span.record("outcome", "failure");
            record_error(span, e);
        }
    }
}

fn record_error(span: &Span, e: &Error) {
    span.record("error.type", e.kind().as_str());
    span.record("otel.status_code", "ERROR");
}

/// Records an attempt's error, if any, on its span; returns the result.
#[inline]
pub(crate) fn attempt_result<T>(span: &Span, result: Result<T>) -> Result<T> {
    if let Err(e) = &result {
        if !span.is_disabled() {
            record_error(span, e);
        }
    }
    result
}

/// Records that the attempt in `span` was cut off by a timeout or the deadline.
pub(crate) fn record_attempt_timeout(span: &Span) {
    span.record("error.type", crate::ErrorKind::Timeout.as_str());
    span.record("otel.status_code", "ERROR");
}

/// Records the request of the current attempt: method, host, port and path — never the query
/// string, user info or fragment.
#[cfg(feature = "http")]
pub(crate) fn record_http_request(method: &http::Method, url: &url::Url) {
    let span = Span::current();
    if span.is_disabled() {
        return;
    }
    span.record("http.request.method", method.as_str());
    if let Some(host) = url.host_str() {
        span.record("server.address", host);
    }
    if let Some(port) = url.port_or_known_default() {
        span.record("server.port", port);
    }
    span.record("url.path", url.path());
}

/// Records the response status of the current attempt.
#[cfg(feature = "http")]
pub(crate) fn record_http_status(status: u16) {
    let span = Span::current();
    if !span.is_disabled() {
        span.record("http.response.status_code", status);
    }
}

/// Records on the current attempt span that it is a remote procedure call: `system` as in the
/// OpenTelemetry conventions (`aws-api` for AWS), `service` (`DynamoDB`, `SNS`, …) and `method`
/// (`PutItem`, `Publish`, …). For provider crates whose API is RPC-shaped; call it while the
/// attempt runs (in the request builder given to `http::send`).
pub fn record_rpc(system: &'static str, service: &'static str, method: &'static str) {
    let span = Span::current();
    if span.is_disabled() {
        return;
    }
    span.record("rpc.system", system);
    span.record("rpc.service", service);
    span.record("rpc.method", method);
}
