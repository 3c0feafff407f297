//! The W3C `traceparent` message attribute on SNS and SQS messages (feature `opentelemetry`):
//! a message published or sent inside a traced span carries that span's context, so whoever
//! consumes it (an SQS worker, an SNS subscriber) can link its span to the sender's
//! (`ReceivedMessage::traceparent` on the SQS side).
//!
//! The attribute is added only when the caller has not set one (`traceparent`, any case) and
//! there is room: both services take at most 10 message attributes and 256 KiB with them; a
//! message at either limit is sent without it rather than refused.

use std::collections::BTreeMap;

/// The `traceparent` attribute to add to a message of `body_len` bytes with `attributes`, if any:
/// the current span's context, when the caller set none and it fits `max_attributes` and
/// `max_bytes`.
#[cfg(feature = "opentelemetry")]
pub(crate) fn traceparent_attribute(
    attributes: &BTreeMap<String, String>,
    body_len: usize,
    max_attributes: usize,
    max_bytes: usize,
) -> Option<(String, String)> {
    use integrations_core::telemetry::TRACEPARENT;
    // Bytes SNS and SQS count for a string attribute: name, data type `String`, value.
    let size_of = |name: &str, value: &str| name.len() + "String".len() + value.len();
    if attributes.len() >= max_attributes
        || attributes
            .keys()
            .any(|k| k.eq_ignore_ascii_case(TRACEPARENT))
    {
        return None;
    }
    let value = integrations_core::telemetry::current_traceparent()?.to_string();
    let size = body_len
        + attributes.iter().map(|(k, v)| size_of(k, v)).sum::<usize>()
        + size_of(TRACEPARENT, &value);
    (size <= max_bytes).then(|| (TRACEPARENT.to_owned(), value))
}

/// Without feature `opentelemetry` there is no span context to carry.
#[cfg(not(feature = "opentelemetry"))]
pub(crate) fn traceparent_attribute(
    _attributes: &BTreeMap<String, String>,
    _body_len: usize,
    _max_attributes: usize,
    _max_bytes: usize,
) -> Option<(String, String)> {
    None
}

#[cfg(all(test, feature = "opentelemetry", feature = "sns", feature = "sqs"))]
mod tests {
    use integrations_core::Notification;
    use opentelemetry::trace::{
        SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState,
    };

    use crate::sns::publish_params;
    use crate::sqs::SendOptions;

    const TP: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    /// Runs `f` with an OpenTelemetry context whose span is `TP` (no `tracing` layer needed:
    /// the current OpenTelemetry context is the fallback).
    fn in_trace<R>(f: impl FnOnce() -> R) -> R {
        let sc = SpanContext::new(
            TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap(),
            SpanId::from_hex("00f067aa0ba902b7").unwrap(),
            TraceFlags::SAMPLED,
            true,
            TraceState::default(),
        );
        let _guard = opentelemetry::Context::new()
            .with_remote_span_context(sc)
            .attach();
        f()
    }

    fn sns_attribute(params: &[(String, String)], name: &str) -> Option<String> {
        let entry = params
            .iter()
            .find(|(k, v)| k.ends_with(".Name") && v == name)?
            .0
            .trim_end_matches(".Name")
            .to_owned();
        params
            .iter()
            .find(|(k, _)| *k == format!("{entry}.Value.StringValue"))
            .map(|(_, v)| v.clone())
    }

    #[test]
    fn sns_messages_carry_the_current_traceparent_when_there_is_room() {
        let topic = "arn:aws:sns:us-east-1:123456789012:orders";
        let n = Notification::new("paid").attribute("event", "order.paid");
        assert_eq!(
            sns_attribute(&publish_params(topic, &n).unwrap(), "traceparent"),
            None
        );
        let params = in_trace(|| publish_params(topic, &n)).unwrap();
        assert_eq!(sns_attribute(&params, "traceparent").as_deref(), Some(TP));
        assert_eq!(
            sns_attribute(&params, "event").as_deref(),
            Some("order.paid")
        );

        let own = n.clone().attribute("traceparent", "mine");
        let params = in_trace(|| publish_params(topic, &own)).unwrap();
        assert_eq!(
            sns_attribute(&params, "traceparent").as_deref(),
            Some("mine")
        );

        let full = (0..10).fold(Notification::new("x"), |n, i| {
            n.attribute(format!("a{i}"), "v")
        });
        let params = in_trace(|| publish_params(topic, &full)).expect("sent without it");
        assert_eq!(sns_attribute(&params, "traceparent"), None);

        let big = Notification::new("x".repeat(crate::sns::MAX_MESSAGE_BYTES - 10));
        let params = in_trace(|| publish_params(topic, &big)).expect("sent without it");
        assert_eq!(sns_attribute(&params, "traceparent"), None);
    }

    #[test]
    fn sqs_messages_carry_the_current_traceparent_when_there_is_room() {
        let opts = SendOptions::new().attribute("kind", "order");
        let attrs =
            |o: &SendOptions, body: &str| in_trace(|| o.traced(body).into_owned()).attributes;
        let traced = attrs(&opts, "{}");
        assert_eq!(traced.get("traceparent").map(String::as_str), Some(TP));
        assert_eq!(traced.get("kind").map(String::as_str), Some("order"));
        assert!(
            !opts.traced("{}").attributes.contains_key("traceparent"),
            "no trace, none"
        );

        let own = opts.clone().attribute("TraceParent", "mine");
        assert_eq!(
            attrs(&own, "{}"),
            own.attributes,
            "the caller's own is kept"
        );
        let full = (0..10).fold(SendOptions::new(), |o, i| o.attribute(format!("a{i}"), "v"));
        assert_eq!(attrs(&full, "{}"), full.attributes);
        let body = "x".repeat(crate::sqs::MAX_MESSAGE_BYTES - 10);
        assert_eq!(
            attrs(&opts, &body),
            opts.attributes,
            "no room: sent without it"
        );
    }
}
