//! The two spans of a call and the helpers that fill them (see the [module docs](super)).

use tracing::Span;
use tracing::field::Empty;

use crate::error::{Error, Result};

/// Name of the span around one logical call under a policy (all its attempts and waits).
pub const CALL_SPAN: &str = "integration.call";
/// Name of the span around one attempt of a call.
pub const ATTEMPT_SPAN: &str = "integration.attempt";

/// Whether a span made now can be seen by anyone: a `tracing` dispatcher has been set, globally
/// or for a scope (its interest in each span then decides, as for any span), or `log` records
/// at INFO (where `tracing`'s `log` feature hands spans to `log`).
///
/// When neither holds, the policy makes no span at all (not even the macros' disabled spans: with `tracing`'s `log` feature on (as `sqlx`, among others, turns it on) a disabled
/// span still builds its fields, offers them to `log` and logs its entry, exit and drop, about
/// 450 instructions per call for nothing, and a `Span::none` still costs its drop; measured
/// with `scripts/policy-ir`, issue 13 item 6).
/// `has_been_set` is the check `tracing`'s own macros make for the same purpose (public, though
/// hidden from its docs); it turns true for good once any dispatcher is set.
#[inline]
pub(crate) fn interested() -> bool {
    tracing::dispatcher::has_been_set() || log::max_level() >= log::LevelFilter::Info
}

/// The span of one call; disabled when nobody listens. The policy makes none at all unless
/// [`interested`].
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

/// The span of attempt `number` (1-based), a child of the current call span. The policy makes
/// none at all unless [`interested`].
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

/// Records an attempt's error, if any, on its span (if it has one); returns the result.
#[inline]
pub(crate) fn attempt_result<T>(span: Option<&Span>, result: Result<T>) -> Result<T> {
    if let (Err(e), Some(span)) = (&result, span) {
        if !span.is_disabled() {
            record_error(span, e);
        }
    }
    result
}

/// Records that the attempt in `span` was cut off by a timeout or the deadline.
pub(crate) fn record_attempt_timeout(span: Option<&Span>) {
    let Some(span) = span else { return };
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
