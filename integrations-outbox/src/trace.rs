//! Trace context across the durable hop: the `traceparent` a job is recorded with, and the link
//! from its handler's span back to it.
//!
//! A job's handler runs in the dispatcher's `outbox_job` span, which gets an OpenTelemetry
//! **link** to the span that recorded the job (feature `opentelemetry`), not a parent: a job runs
//! seconds to hours after its webhook was answered, possibly many times (retries, a replay from
//! the dead-letter queue), and a parent would stretch the webhook's trace over all of that and
//! put every retry inside it. A link keeps each delivery its own trace, one click from the trace
//! that caused it — as the OpenTelemetry messaging conventions do for consumers.

use integrations_core::telemetry::TraceParent;

use super::types::NewJob;

/// The `traceparent` a store records with `job`: the one given with
/// [`NewJob::with_traceparent`] when it is a well-formed W3C value (a malformed one is dropped
/// with a warning: a bad trace context never fails the record), else, with feature
/// `opentelemetry`, the current span's trace context (that of the code recording the event),
/// else `None`. Normalised to version `00`. Every [`OutboxStore`](crate::OutboxStore)
/// implementation calls it once per job in `record_event`.
pub fn resolve_traceparent(job: &NewJob) -> Option<String> {
    let tp = match &job.traceparent {
        Some(raw) => TraceParent::parse_or_warn(raw, "outbox job"),
        None => current(),
    };
    tp.map(|tp| tp.to_string())
}

#[cfg(feature = "opentelemetry")]
fn current() -> Option<TraceParent> {
    integrations_core::telemetry::current_traceparent()
}

#[cfg(not(feature = "opentelemetry"))]
fn current() -> Option<TraceParent> {
    None
}

/// Links `span` (a job's delivery) to the span that recorded the job, if it has a valid
/// traceparent.
#[cfg(feature = "opentelemetry")]
pub(crate) fn link(span: &tracing::Span, traceparent: Option<&str>) {
    if let Some(tp) = traceparent.and_then(|raw| TraceParent::parse_or_warn(raw, "outbox job")) {
        integrations_core::telemetry::link_to(span, &tp);
    }
}

#[cfg(not(feature = "opentelemetry"))]
pub(crate) fn link(_: &tracing::Span, _: Option<&str>) {}

#[cfg(test)]
mod tests {
    use super::*;

    const TP: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn a_given_traceparent_is_checked_and_normalised() {
        let job = NewJob::new("k", serde_json::Value::Null);
        assert_eq!(
            resolve_traceparent(&job.clone().with_traceparent(format!(" {TP} "))).as_deref(),
            Some(TP)
        );
        let v1 = TP.replacen("00", "01", 1);
        assert_eq!(
            resolve_traceparent(&job.clone().with_traceparent(v1)).as_deref(),
            Some(TP)
        );
        assert_eq!(
            resolve_traceparent(&job.clone().with_traceparent("nonsense")),
            None
        );
        // No span context (no OpenTelemetry layer in this test): nothing.
        assert_eq!(resolve_traceparent(&job), None);
    }
}
