//! Unit tests of [`OutboxMetrics`] through a real dispatcher on the in-memory store.

use std::sync::Arc;
use std::time::Duration;

use integrations_core::clock::FixedClock;
use integrations_core::resilience::Backoff;
use integrations_core::{Error, Result};
use serde_json::json;

use super::OutboxMetrics;
use crate::{Dispatcher, InMemoryOutbox, NewJob, OutboxStore, handler_fn};

/// Records three email jobs (delivered 2 s after recording), one sheets job that fails
/// retryably, and one SMS job that fails for good; runs a dispatcher once over them.
async fn deliver_some(metrics: &Arc<OutboxMetrics>) -> Arc<InMemoryOutbox> {
    let clock = FixedClock::from_unix(1_700_000_000);
    let store = Arc::new(InMemoryOutbox::new().with_clock(clock.clone()));
    for i in 0..3 {
        let jobs = vec![NewJob::new("email", json!({ "i": i }))];
        store.record_event(&format!("evt_{i}"), jobs).await.unwrap();
    }
    let jobs = vec![
        NewJob::new("sheets", json!({})),
        NewJob::new("sms", json!({})),
    ];
    store.record_event("evt_x", jobs).await.unwrap();
    clock.advance(Duration::from_secs(2));
    let d = Dispatcher::builder(store.clone())
        .handler("email", handler_fn(|_| async { Ok(()) }))
        .handler(
            "sheets",
            handler_fn(|_| async { Err::<(), Error>(Error::unavailable("quota")) }),
        )
        .handler(
            "sms",
            handler_fn(|_| async { Err::<(), Error>(Error::invalid_input("to", "no number")) }),
        )
        .clock(clock.clone())
        .backoff(Backoff::new(
            Duration::from_secs(10),
            Duration::from_secs(10),
            1.0,
        ))
        .metrics(Arc::clone(metrics))
        .build()
        .unwrap();
    let stats = d.run_until_idle().await.unwrap();
    assert_eq!(
        (stats.succeeded, stats.retried, stats.dead_lettered),
        (3, 1, 1)
    );
    store
}

#[tokio::test]
async fn the_text_counts_deliveries_failures_latency_and_the_backlog() -> Result<()> {
    let metrics = Arc::new(OutboxMetrics::new());
    let store = deliver_some(&metrics).await;
    let text = metrics.render_prometheus();
    assert!(
        !text.contains("outbox_jobs"),
        "no gauges before counts were observed:\n{text}"
    );
    let backlog = metrics.refresh(&*store).await?;
    assert_eq!((backlog.pending, backlog.leased, backlog.dead), (1, 0, 1));
    let text = metrics.render_prometheus();
    assert!(
        text.contains("outbox_jobs{state=\"pending\"} 1\n"),
        "{text}"
    );
    assert!(
        !text.contains("state=\"done\""),
        "the backlog does not count done jobs:\n{text}"
    );
    // Full counts, observed now and then, add the done jobs.
    metrics.observe_counts(&store.counts().await?);
    let text = metrics.render_prometheus();
    for expected in [
        "# TYPE outbox_attempts_total counter\n",
        "outbox_attempts_total{kind=\"email\"} 3\n",
        "outbox_attempts_total{kind=\"sheets\"} 1\n",
        "outbox_deliveries_total{kind=\"email\"} 3\n",
        "outbox_deliveries_total{kind=\"sms\"} 0\n",
        "outbox_failures_total{kind=\"sheets\",outcome=\"retried\"} 1\n",
        "outbox_failures_total{kind=\"sms\",outcome=\"dead_lettered\"} 1\n",
        "outbox_failures_total{kind=\"email\",outcome=\"retried\"} 0\n",
        "outbox_lease_lost_total{kind=\"email\"} 0\n",
        "outbox_store_errors_total 0\n",
        "# TYPE outbox_delivery_seconds histogram\n",
        "outbox_delivery_seconds_bucket{kind=\"email\",le=\"1\"} 0\n",
        "outbox_delivery_seconds_bucket{kind=\"email\",le=\"5\"} 3\n",
        "outbox_delivery_seconds_bucket{kind=\"email\",le=\"+Inf\"} 3\n",
        "outbox_delivery_seconds_sum{kind=\"email\"} 6\n",
        "outbox_delivery_seconds_count{kind=\"email\"} 3\n",
        "outbox_delivery_seconds_count{kind=\"sms\"} 0\n",
        "# TYPE outbox_jobs gauge\n",
        "outbox_jobs{state=\"pending\"} 1\n",
        "outbox_jobs{state=\"dead\"} 1\n",
        "outbox_jobs{state=\"done\"} 3\n",
        // The retrying sheets job is not due yet: nothing is overdue.
        "outbox_oldest_pending_age_seconds 0\n",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in\n{text}");
    }
    Ok(())
}

#[tokio::test]
async fn dispatchers_share_the_global_metrics_unless_given_their_own() {
    let store = Arc::new(InMemoryOutbox::new());
    let d = Dispatcher::builder(store)
        .handler("x", handler_fn(|_| async { Ok(()) }))
        .counts_interval(Duration::ZERO)
        .build();
    let e = d.expect_err("a zero counts interval is refused");
    assert!(e.to_string().contains("counts_interval"), "{e}");
    assert!(Arc::ptr_eq(
        &OutboxMetrics::global(),
        &OutboxMetrics::global()
    ));
}

#[cfg(feature = "metrics")]
#[tokio::test]
async fn the_facade_receives_the_same_series() {
    let recorder = metrics_util::debugging::DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    // A current-thread runtime: the dispatcher's tasks record on this thread.
    let _guard = metrics::set_default_local_recorder(&recorder);
    let metrics = Arc::new(OutboxMetrics::new());
    let store = deliver_some(&metrics).await;
    metrics.refresh(&*store).await.unwrap();
    metrics.observe_counts(&store.counts().await.unwrap());
    let mut got: Vec<String> = snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .map(|(key, _, _, value)| {
            let key = key.key();
            let labels: Vec<String> = key
                .labels()
                .map(|l| format!("{}={}", l.key(), l.value()))
                .collect();
            format!("{}{{{}}} {value:?}", key.name(), labels.join(","))
        })
        .collect();
    got.sort();
    let want = [
        "outbox_attempts_total{kind=email} Counter(3)",
        "outbox_attempts_total{kind=sheets} Counter(1)",
        "outbox_attempts_total{kind=sms} Counter(1)",
        "outbox_deliveries_total{kind=email} Counter(3)",
        "outbox_delivery_seconds{kind=email} Histogram([2.0, 2.0, 2.0])",
        "outbox_failures_total{kind=sheets,outcome=retried} Counter(1)",
        "outbox_failures_total{kind=sms,outcome=dead_lettered} Counter(1)",
        "outbox_jobs{state=dead} Gauge(1.0)",
        "outbox_jobs{state=done} Gauge(3.0)",
        "outbox_jobs{state=leased} Gauge(0.0)",
        "outbox_jobs{state=pending} Gauge(1.0)",
        "outbox_oldest_pending_age_seconds{} Gauge(0.0)",
    ];
    assert_eq!(got, want);
}
