//! OpenTelemetry glue (feature `opentelemetry`): the current span's context as a
//! [`TraceParent`], and links from a span to a stored one.

use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use super::TraceParent;

impl TraceParent {
    /// The traceparent of an OpenTelemetry span context; `None` for an invalid one.
    pub fn from_span_context(cx: &SpanContext) -> Option<Self> {
        if !cx.is_valid() {
            return None;
        }
        TraceParent::new(
            cx.trace_id().to_bytes(),
            cx.span_id().to_bytes(),
            cx.trace_flags().to_u8(),
        )
    }

    /// This traceparent as a remote OpenTelemetry span context.
    pub fn to_span_context(&self) -> SpanContext {
        SpanContext::new(
            TraceId::from_bytes(self.trace_id()),
            SpanId::from_bytes(self.parent_id()),
            TraceFlags::new(self.flags()),
            true,
            TraceState::default(),
        )
    }
}

/// The trace context of the current `tracing` span as a [`TraceParent`], through the
/// `tracing-opentelemetry` layer; else OpenTelemetry's current context. `None` when neither
/// has a valid span (no OpenTelemetry layer installed, or the span is not recorded).
pub fn current_traceparent() -> Option<TraceParent> {
    let span = Span::current();
    if !span.is_disabled() {
        let cx = span.context();
        if let Some(tp) = TraceParent::from_span_context(cx.span().span_context()) {
            return Some(tp);
        }
    }
    opentelemetry::Context::map_current(|cx| {
        TraceParent::from_span_context(cx.span().span_context())
    })
}

/// Links `span` to the span that recorded `parent` (an OpenTelemetry span link, exported when
/// the span ends). A no-op without the `tracing-opentelemetry` layer or on a disabled span.
pub fn link_to(span: &Span, parent: &TraceParent) {
    if !span.is_disabled() {
        span.add_link(parent.to_span_context());
    }
}
