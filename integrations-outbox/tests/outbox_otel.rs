//! Trace context across the durable hop, exported through `tracing-opentelemetry` into the
//! OpenTelemetry SDK's in-memory exporter: a webhook-ish span records an event in a SQLite
//! outbox; the store is closed and reopened; the dispatcher runs the job; the exported handler
//! span links to the webhook's span, and the provider call inside it is exported as
//! `integration.call` → `integration.attempt` under the handler span.
//!
//! One test in this binary: it installs a scoped subscriber, which is race-free only while no
//! other test thread emits events.

use std::sync::{Arc, Mutex};

use integrations_core::Policy;
use integrations_core::metrics::MetricsRegistry;
use integrations_core::telemetry::{TraceParent, current_traceparent};
use integrations_outbox::{Dispatcher, Job, NewJob, OutboxStore, SqliteOutbox, handler_fn};
use opentelemetry::trace::{SpanId, TracerProvider as _};
use opentelemetry::{Key, Value};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use tracing::Instrument;
use tracing_subscriber::layer::SubscriberExt;

fn attr<'a>(span: &'a SpanData, key: &str) -> Option<&'a Value> {
    span.attributes
        .iter()
        .find(|kv| kv.key == Key::new(key.to_owned()))
        .map(|kv| &kv.value)
}

fn one<'a>(spans: &'a [SpanData], name: &str) -> &'a SpanData {
    let found: Vec<_> = spans.iter().filter(|s| s.name == name).collect();
    assert_eq!(found.len(), 1, "one `{name}` span: {:?}", names(spans));
    found[0]
}

fn names(spans: &[SpanData]) -> Vec<&str> {
    spans.iter().map(|s| &*s.name).collect()
}

/// What a handler saw: its job's stored traceparent, and the current span's context.
type Seen = (Option<String>, Option<TraceParent>);

#[tokio::test]
async fn a_jobs_handler_span_links_to_the_span_that_recorded_it() {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("outbox-test")));
    let _guard = tracing::subscriber::set_default(subscriber);

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("outbox.db");

    // The webhook: records the event inside its span.
    let webhook = tracing::info_span!("webhook", otel.kind = "server");
    let recorded_in = async {
        let outbox = SqliteOutbox::open(&path).await.unwrap();
        let jobs = vec![
            NewJob::new("notify", serde_json::json!({ "order": "42" })),
            // An explicit, malformed traceparent is dropped (with a warning), never fatal.
            NewJob::new("notify", serde_json::json!({}))
                .with_key_suffix("2")
                .with_traceparent("garbage"),
        ];
        outbox.record_event("evt_1", jobs).await.unwrap();
        current_traceparent().expect("the webhook span has an OpenTelemetry context")
    }
    .instrument(webhook.clone())
    .await;
    drop(webhook);

    // Later, in another "process": the store reopened from its file.
    let outbox = Arc::new(SqliteOutbox::open(&path).await.unwrap());
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let policy = Policy::builder("sns-test")
        .metrics(&MetricsRegistry::new())
        .build();
    let handler = {
        let seen = Arc::clone(&seen);
        handler_fn(move |job: Job| {
            let seen = Arc::clone(&seen);
            let policy = policy.clone();
            async move {
                seen.lock()
                    .unwrap()
                    .push((job.traceparent.clone(), current_traceparent()));
                policy.call("Publish", |_| async { Ok(()) }).await
            }
        })
    };
    let dispatcher = Dispatcher::builder(outbox.clone())
        .handler("notify", handler)
        .build()
        .unwrap();
    let stats = dispatcher.run_until_idle().await.unwrap();
    assert_eq!(stats.succeeded, 2);
    provider.force_flush().unwrap();

    let seen = seen.lock().unwrap().clone();
    let mut stored: Vec<_> = seen.iter().map(|(tp, _)| tp.clone()).collect();
    stored.sort();
    assert_eq!(
        stored,
        [None, Some(recorded_in.to_string())],
        "the job recorded without one took the webhook span's context; the garbled one none"
    );

    let spans = exporter.get_finished_spans().unwrap();
    let webhook = one(&spans, "webhook");
    assert_eq!(
        webhook.span_context.trace_id().to_bytes(),
        recorded_in.trace_id()
    );
    let jobs: Vec<&SpanData> = spans.iter().filter(|s| s.name == "outbox_job").collect();
    assert_eq!(jobs.len(), 2, "{:?}", names(&spans));
    let linked: Vec<&&SpanData> = jobs.iter().filter(|s| !s.links.is_empty()).collect();
    assert_eq!(linked.len(), 1, "only the job with a context is linked");
    let job_span = linked[0];
    let link = &job_span.links.links[0].span_context;
    assert_eq!(
        link.trace_id(),
        webhook.span_context.trace_id(),
        "linked to the webhook's trace"
    );
    assert_eq!(
        link.span_id(),
        webhook.span_context.span_id(),
        "… and to its span"
    );
    assert_ne!(
        job_span.span_context.trace_id(),
        webhook.span_context.trace_id(),
        "a link, not a parent: the delivery is its own trace"
    );
    assert_eq!(job_span.parent_span_id, SpanId::INVALID);
    assert_eq!(job_span.span_kind, opentelemetry::trace::SpanKind::Consumer);
    // The handler ran inside the job's span.
    assert!(seen.iter().all(|(_, cur)| cur.is_some()));

    // The provider call inside the handler: call span under the job span, attempt under the call.
    let calls: Vec<&SpanData> = spans
        .iter()
        .filter(|s| s.name == "integration.call")
        .collect();
    assert_eq!(calls.len(), 2);
    let call = calls
        .iter()
        .find(|c| c.parent_span_id == job_span.span_context.span_id())
        .expect("a call span whose parent is the linked job span");
    assert_eq!(attr(call, "provider"), Some(&Value::from("sns-test")));
    assert_eq!(attr(call, "operation"), Some(&Value::from("Publish")));
    assert_eq!(attr(call, "outcome"), Some(&Value::from("success")));
    assert_eq!(call.span_kind, opentelemetry::trace::SpanKind::Internal);
    let attempt = spans
        .iter()
        .find(|s| {
            s.name == "integration.attempt" && s.parent_span_id == call.span_context.span_id()
        })
        .expect("an attempt span under the call");
    assert_eq!(attempt.span_kind, opentelemetry::trace::SpanKind::Client);
}
