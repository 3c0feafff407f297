//! Spans of every provider call, and W3C trace context for the durable hops.
//!
//! Every call under a [`Policy`](crate::Policy) runs in one span, and each of its attempts in a
//! child span, named and filled after the OpenTelemetry semantic conventions so that
//! `tracing-opentelemetry` exports them as they are:
//!
//! | span | fields |
//! |---|---|
//! | [`CALL_SPAN`] (`integration.call`) | `provider`, `operation`, `otel.kind` = `internal`, `attempts`, `outcome` (`success`/`failure`), `error.type`, `otel.status_code` |
//! | [`ATTEMPT_SPAN`] (`integration.attempt`) | `attempt`, `otel.kind` = `client`, `http.request.method`, `server.address`, `server.port`, `url.path`, `http.response.status_code`, `rpc.system`, `rpc.service`, `rpc.method`, `error.type`, `otel.status_code` |
//!
//! `error.type` is the error's [`ErrorKind`](crate::ErrorKind) name (`rate_limited`,
//! `timeout`, …). No field ever holds a header, a query string, a body or a credential: the URL
//! is reduced to its host, port and path.
//!
//! The call span is made when [`Policy::call`](crate::Policy::call) is called, so it is a child
//! of the span current there, even if the call's future is polled elsewhere (spawned, say).
//!
//! Both spans are at `INFO`. When no `tracing` dispatcher was ever set in the process and `log`
//! does not record at `INFO`, the policy makes no span at all (with `tracing`'s `log` feature a
//! disabled span would still build its fields for `log`). Otherwise, when the subscriber does not
//! listen (or `INFO` is filtered out) a span is disabled: creating it is a check of its
//! callsite's cached interest, and entering and recording on it are no-ops. Fields are declared
//! [`Empty`](tracing::field::Empty) and recorded only on an enabled span, so nothing is
//! formatted or allocated.
//!
//! [`TraceParent`] is a W3C `traceparent` value, checked and normalised; with feature
//! `opentelemetry`, [`current_traceparent`] reads the current span's context and
//! [`link_to`] links a span to a stored one (the outbox stores one per job, SNS and SQS
//! messages carry one as a message attribute).

#[cfg(feature = "opentelemetry")]
mod otel;
mod spans;
mod traceparent;

#[cfg(feature = "opentelemetry")]
#[cfg_attr(docsrs, doc(cfg(feature = "opentelemetry")))]
pub use otel::{current_traceparent, link_to};
pub use spans::{ATTEMPT_SPAN, CALL_SPAN, record_rpc};
pub(crate) use spans::{
    attempt_result, attempt_span, call_span, interested, record_attempt_timeout, record_call,
};
#[cfg(feature = "http")]
pub(crate) use spans::{record_http_request, record_http_status};
pub use traceparent::{TRACEPARENT, TraceParent};
