//! Unit tests of the metrics module (a sibling file to keep `metrics.rs` short).

use super::*;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[test]
fn registry_shares_one_metrics_per_name() {
    let r = MetricsRegistry::new();
    let a = r.integration("stripe");
    let b = r.clone().integration("stripe");
    assert!(Arc::ptr_eq(&a, &b));
    assert!(!Arc::ptr_eq(&a, &r.integration("sendgrid")));
    assert!(std::ptr::eq(
        MetricsRegistry::global(),
        MetricsRegistry::global()
    ));
    let names: Vec<_> = r
        .snapshot()
        .integrations
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert_eq!(names, ["sendgrid", "stripe"]);
}

#[test]
fn percentiles_and_rates() {
    let m = IntegrationMetrics::new("ses");
    for i in 1..=100 {
        m.record_call();
        m.record_success(ms(i));
    }
    for _ in 0..5 {
        m.record_call();
        m.record_failure(ErrorKind::Declined, ms(1));
    }
    m.record_call();
    m.record_rejection(ErrorKind::CircuitOpen);
    let s = m.snapshot();
    assert_eq!((s.calls, s.successes), (106, 100));
    assert_eq!(s.failures["declined"], 5);
    assert_eq!(s.failures["circuit_open"], 1);
    assert_eq!(s.failures.len(), ErrorKind::ALL.len());
    assert!((s.success_rate - 100.0 / 106.0).abs() < 1e-9);
    // Declines are the caller's business; only the circuit-open rejection is a provider fault.
    assert!((s.availability - 105.0 / 106.0).abs() < 1e-9);
    assert_eq!((s.latency_count, s.window_count), (105, 105));
    // 105 latencies: 1 ms six times, then 2..=100 ms; buckets within 1/32 of the value.
    let near = |got: f64, want: f64| (got - want).abs() <= want / 32.0;
    assert!(near(s.p50_ms, 48.0), "{}", s.p50_ms);
    assert!(near(s.p95_ms, 95.0), "{}", s.p95_ms);
    assert!(near(s.p99_ms, 99.0), "{}", s.p99_ms);
    assert_eq!(s.max_ms, 100.0);
    assert!(
        (s.latency_sum_ms - 5055.0).abs() < 1e-6,
        "{}",
        s.latency_sum_ms
    );
    assert_eq!(s.health, Health::Healthy);
}

#[test]
fn health_follows_breaker_then_availability() {
    assert_eq!(Health::derive(BreakerState::Open, 1.0, 1000), Health::Down);
    assert_eq!(
        Health::derive(BreakerState::ForcedOpen, 1.0, 1000),
        Health::Down
    );
    assert_eq!(
        Health::derive(BreakerState::HalfOpen, 1.0, 1000),
        Health::Degraded
    );
    assert_eq!(
        Health::derive(BreakerState::Closed, 0.0, 9),
        Health::Healthy
    );
    assert_eq!(Health::derive(BreakerState::Closed, 0.4, 10), Health::Down);
    assert_eq!(
        Health::derive(BreakerState::Closed, 0.9, 10),
        Health::Degraded
    );
    assert_eq!(
        Health::derive(BreakerState::Disabled, 0.99, 10),
        Health::Healthy
    );

    let m = IntegrationMetrics::new("sns");
    m.set_breaker_state(BreakerState::Open);
    assert_eq!(m.breaker_state(), BreakerState::Open);
    assert_eq!(m.snapshot().health, Health::Down);
}

#[test]
fn empty_metrics_are_healthy_with_no_quantiles() {
    let s = IntegrationMetrics::new("x").snapshot();
    assert_eq!((s.calls, s.latency_count, s.window_count), (0, 0, 0));
    assert_eq!((s.success_rate, s.availability), (1.0, 1.0));
    assert!(s.p50_ms.is_nan() && s.p95_ms.is_nan() && s.p99_ms.is_nan() && s.max_ms.is_nan());
    assert!(s.operations.is_empty());
    assert_eq!(s.health, Health::Healthy);
    let v = serde_json::to_value(&s).unwrap();
    assert!(v["p99_ms"].is_null() && v["max_ms"].is_null(), "{v}");
}

#[tokio::test(start_paused = true)]
async fn quantiles_cover_the_window_and_counters_the_whole_run() {
    let m = IntegrationMetrics::new("stripe");
    for _ in 0..50 {
        m.record_call();
        m.record_operation_success("create_payment_intent", ms(10));
    }
    // An incident after a long quiet run: the quantiles follow it once the window has moved.
    tokio::time::advance(WINDOW + WINDOW_STEP).await;
    for _ in 0..5 {
        m.record_call();
        m.record_operation_failure("create_payment_intent", ErrorKind::Timeout, ms(3000));
    }
    m.record_call();
    m.record_operation_success("refund", ms(200));
    let s = m.snapshot();
    assert_eq!((s.calls, s.latency_count, s.window_count), (56, 56, 6));
    assert!((s.p50_ms - 3000.0).abs() <= 3000.0 / 32.0, "{}", s.p50_ms);
    assert_eq!(s.max_ms, 3000.0);
    assert_eq!(s.window_secs, 300);
    let ops: Vec<_> = s
        .operations
        .iter()
        .map(|o| (o.operation, o.latency_count, o.window_count))
        .collect();
    assert_eq!(ops, [("create_payment_intent", 55, 5), ("refund", 1, 1)]);
    let refund = &s.operations[1];
    assert!(
        (refund.p99_ms - 200.0).abs() <= 200.0 / 32.0,
        "{}",
        refund.p99_ms
    );
    // Since start: 50 calls in the 10 ms bucket, 5 past 2.5 s.
    let cpi = &s.operations[0];
    assert_eq!(cpi.latency_buckets[1], ("0.01", 50));
    assert_eq!(cpi.latency_buckets[8], ("2.5", 50));
    assert_eq!(cpi.latency_buckets[9], ("5", 55));
    assert_eq!(*cpi.latency_buckets.last().unwrap(), ("+Inf", 55));
    assert!(
        (cpi.latency_sum_ms - 15_500.0).abs() < 1e-6,
        "{}",
        cpi.latency_sum_ms
    );

    tokio::time::advance(WINDOW).await;
    let s = m.snapshot();
    assert_eq!((s.latency_count, s.window_count), (56, 0));
    assert!(s.p99_ms.is_nan() && s.operations[0].p50_ms.is_nan());
}

#[test]
fn snapshot_serialises_to_json() {
    let r = MetricsRegistry::new();
    let m = r.integration("stripe");
    m.record_call();
    m.record_failure(ErrorKind::RateLimited, ms(3));
    let v = serde_json::to_value(r.snapshot()).unwrap();
    let s = &v["integrations"][0];
    assert_eq!(s["name"], "stripe");
    assert_eq!(s["failures"]["rate_limited"], 1);
    assert_eq!(s["breaker_state"], "closed");
    assert_eq!(s["health"], "healthy");
    assert_eq!(s["success_rate"], 0.0);
    assert!(s["p95_ms"].is_f64());
}

/// Checks every line against the text exposition grammar we emit, and that each sample's
/// family was declared with `# TYPE` before it.
fn assert_valid_exposition(text: &str) {
    let mut declared: Vec<(String, String)> = Vec::new();
    assert!(text.ends_with('\n'));
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').expect("help text");
            assert!(!help.is_empty() && is_metric_name(name), "{line}");
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("type");
            assert!(["counter", "gauge", "histogram"].contains(&kind), "{line}");
            assert!(
                !declared.iter().any(|(n, _)| n == name),
                "declared twice: {line}"
            );
            declared.push((name.to_owned(), kind.to_owned()));
        } else {
            let (series, value) = line.rsplit_once(' ').expect("value");
            value
                .parse::<f64>()
                .unwrap_or_else(|_| panic!("value in {line}"));
            let (name, labels) = series.split_once('{').expect("labels");
            assert!(is_metric_name(name) && labels.ends_with('}'), "{line}");
            let (family, kind) = declared.last().expect("sample before TYPE");
            let ok = name == family
                || (kind == "histogram"
                    && ["_bucket", "_sum", "_count"]
                        .iter()
                        .any(|suffix| name == format!("{family}{suffix}")));
            if name.ends_with("_bucket") {
                assert!(labels.contains(",le=\""), "{line}");
            }
            assert!(ok, "{line} outside its family {family}");
            if kind == "counter" {
                assert!(name.ends_with("_total"), "{line}");
            }
            for pair in labels.trim_end_matches('}').split("\",") {
                let (label, v) = pair.split_once("=\"").expect("label=\"value\"");
                assert!(is_metric_name(label), "{line}");
                assert!(!v.trim_end_matches('"').contains('\n'), "{line}");
            }
        }
    }
}

fn is_metric_name(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with(|c: char| c.is_ascii_digit())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

#[test]
fn prometheus_text_is_valid_and_complete() {
    let r = MetricsRegistry::new();
    let m = r.integration("stripe");
    for _ in 0..3 {
        m.record_call();
        m.record_operation_success("confirm", ms(250));
    }
    m.record_call();
    m.record_operation_failure("confirm", ErrorKind::Timeout, ms(2000));
    m.record_retry();
    m.record_timeout();
    m.set_breaker_state(BreakerState::HalfOpen);
    r.integration("sendgrid");
    let text = r.render_prometheus();
    assert_valid_exposition(&text);
    for expected in [
        "# TYPE integration_calls_total counter\n",
        "integration_calls_total{provider=\"stripe\"} 4\n",
        "integration_calls_total{provider=\"sendgrid\"} 0\n",
        "integration_successes_total{provider=\"stripe\"} 3\n",
        "integration_retries_total{provider=\"stripe\"} 1\n",
        "integration_timeouts_total{provider=\"stripe\"} 1\n",
        "integration_failures_total{provider=\"stripe\",kind=\"timeout\"} 1\n",
        "integration_failures_total{provider=\"stripe\",kind=\"declined\"} 0\n",
        "# TYPE integration_latency_seconds histogram\n",
        "integration_latency_seconds_bucket{provider=\"stripe\",operation=\"confirm\",le=\"0.1\"} 0\n",
        "integration_latency_seconds_bucket{provider=\"stripe\",operation=\"confirm\",le=\"0.25\"} 3\n",
        "integration_latency_seconds_bucket{provider=\"stripe\",operation=\"confirm\",le=\"1\"} 3\n",
        "integration_latency_seconds_bucket{provider=\"stripe\",operation=\"confirm\",le=\"2.5\"} 4\n",
        "integration_latency_seconds_bucket{provider=\"stripe\",operation=\"confirm\",le=\"+Inf\"} 4\n",
        "integration_latency_seconds_count{provider=\"stripe\",operation=\"confirm\"} 4\n",
        "integration_latency_seconds_sum{provider=\"stripe\",operation=\"confirm\"} 2.75\n",
        "# TYPE integration_breaker_state gauge\n",
        "integration_breaker_state{provider=\"stripe\"} 2\n",
        "integration_health{provider=\"stripe\"} 1\n",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in\n{text}");
    }
    // No latency series for an integration never called, and no summary any more.
    assert!(!text.contains("provider=\"sendgrid\",operation"), "{text}");
    assert!(!text.contains("quantile"), "{text}");
    assert_eq!(
        text.matches("integration_latency_seconds_bucket{").count(),
        LATENCY_BUCKETS.len() + 1
    );
}

#[test]
fn prometheus_label_values_are_escaped() {
    let r = MetricsRegistry::new();
    r.integration("we\"ird\\name\nx");
    let text = r.render_prometheus();
    assert!(
        text.contains("integration_calls_total{provider=\"we\\\"ird\\\\name\\nx\"} 0\n"),
        "{text}"
    );
    assert_valid_exposition(&text);
}

/// What a facade recorder received: `(name, labels, value)` rendered as text, sorted.
#[cfg(feature = "metrics")]
fn facade_received(snapshot: metrics_util::debugging::Snapshot) -> Vec<(String, String, String)> {
    use metrics_util::debugging::DebugValue;
    let mut got: Vec<(String, String, String)> = snapshot
        .into_vec()
        .into_iter()
        .map(|(key, _, _, value)| {
            let key = key.key();
            let labels: Vec<String> = key
                .labels()
                .map(|l| format!("{}={}", l.key(), l.value()))
                .collect();
            let value = match value {
                DebugValue::Counter(n) => n.to_string(),
                DebugValue::Gauge(g) => g.to_string(),
                DebugValue::Histogram(h) => {
                    format!("{:?}", h.iter().map(|v| v.0).collect::<Vec<f64>>())
                }
            };
            (key.name().to_owned(), labels.join(","), value)
        })
        .collect();
    got.sort();
    got
}

#[cfg(feature = "metrics")]
#[test]
fn the_facade_receives_names_labels_and_values() {
    let recorder = metrics_util::debugging::DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::with_local_recorder(&recorder, || {
        let m = IntegrationMetrics::new("stripe");
        m.record_call();
        m.record_operation_success("confirm", ms(250));
        m.record_call();
        m.record_operation_failure("confirm", ErrorKind::Timeout, ms(2000));
        m.record_call();
        m.record_rejection(ErrorKind::CircuitOpen);
        m.record_retry();
        m.record_timeout();
        m.record_short_circuit();
        m.record_rate_limited_wait();
        m.record_rate_limited_rejection();
        m.record_bulkhead_rejection();
        m.set_breaker_state(BreakerState::Open);
    });
    let s = |a: &str, b: &str, c: &str| (a.to_owned(), b.to_owned(), c.to_owned());
    assert_eq!(
        facade_received(snapshotter.snapshot()),
        [
            s("integration_breaker_state", "provider=stripe", "1"),
            s(
                "integration_bulkhead_rejections_total",
                "provider=stripe",
                "1"
            ),
            s("integration_calls_total", "provider=stripe", "3"),
            s(
                "integration_failures_total",
                "provider=stripe,kind=circuit_open",
                "1"
            ),
            s(
                "integration_failures_total",
                "provider=stripe,kind=timeout",
                "1"
            ),
            s(
                "integration_latency_seconds",
                "provider=stripe,operation=confirm",
                "[0.25, 2.0]"
            ),
            s(
                "integration_rate_limited_rejections_total",
                "provider=stripe",
                "1"
            ),
            s(
                "integration_rate_limited_waits_total",
                "provider=stripe",
                "1"
            ),
            s("integration_retries_total", "provider=stripe", "1"),
            s("integration_short_circuits_total", "provider=stripe", "1"),
            s("integration_successes_total", "provider=stripe", "1"),
            s("integration_timeouts_total", "provider=stripe", "1"),
        ]
    );
}

/// The facade and the text renderer use the same family names.
#[cfg(feature = "metrics")]
#[test]
fn the_facade_and_the_text_name_the_same_families() {
    let recorder = metrics_util::debugging::DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let r = MetricsRegistry::new();
    metrics::with_local_recorder(&recorder, || {
        let m = r.integration("stripe");
        m.record_call();
        m.record_operation_failure("confirm", ErrorKind::Timeout, ms(2000));
        m.record_retry();
        m.record_timeout();
        m.record_short_circuit();
        m.record_rate_limited_wait();
        m.record_rate_limited_rejection();
        m.record_bulkhead_rejection();
        m.record_operation_success("confirm", ms(2));
        m.set_breaker_state(BreakerState::HalfOpen);
    });
    let text = r.render_prometheus();
    let mut declared: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split(' ').next())
        .collect();
    let mut pushed: Vec<String> = facade_received(snapshotter.snapshot())
        .into_iter()
        .map(|(name, _, _)| name)
        .collect();
    pushed.dedup();
    // Health is derived when a snapshot is taken; the facade has no such moment.
    declared.retain(|n| *n != "integration_health");
    declared.sort_unstable();
    assert_eq!(declared, pushed);
}

#[test]
fn operations_past_the_bound_are_recorded_as_other() {
    let m = IntegrationMetrics::new("stripe");
    let names: Vec<&'static str> = (0..MAX_OPERATIONS + 8)
        .map(|i| &*Box::leak(format!("op{i:02}").into_boxed_str()))
        .collect();
    for name in &names {
        m.record_operation_success(name, ms(5));
    }
    // Known operations are still found by name, not only by pointer.
    m.record_operation_success("op00", ms(5));
    let s = m.snapshot();
    assert_eq!(s.operations.len(), MAX_OPERATIONS);
    let other = s
        .operations
        .iter()
        .find(|o| o.operation == OTHER_OPERATION)
        .expect("an `other` operation");
    assert_eq!(other.latency_count, 9, "op31..=op39");
    let op00 = s.operations.iter().find(|o| o.operation == "op00").unwrap();
    assert_eq!(op00.latency_count, 2);
    assert_eq!(s.latency_count, MAX_OPERATIONS as u64 + 9);
}

/// Successes are the count of the successes' latency histogram: failures with a latency go to
/// the other histogram, both are exported as one, and the count never goes down while calls are
/// recorded from other threads.
#[test]
fn successes_are_the_success_histograms_count() {
    let m = Arc::new(IntegrationMetrics::new("stripe"));
    m.record_operation_success("charge", ms(3));
    m.record_operation_failure("charge", ErrorKind::Timeout, ms(30));
    m.record_operation_success("refund", ms(300));
    m.record_rejection(ErrorKind::CircuitOpen); // refused: no latency, not a success
    let s = m.snapshot();
    assert_eq!(s.successes, 2);
    assert_eq!(s.failures["timeout"] + s.failures["circuit_open"], 2);
    assert_eq!(s.latency_count, 3);
    let charge = s
        .operations
        .iter()
        .find(|o| o.operation == "charge")
        .unwrap();
    assert_eq!(charge.latency_count, 2);
    assert_eq!(charge.latency_buckets[0], ("0.005", 1));
    assert_eq!(charge.latency_buckets[2], ("0.025", 1));
    assert_eq!(charge.latency_buckets[3], ("0.05", 2));
    assert!((charge.latency_sum_ms - 33.0).abs() < 1e-9);

    let writer = {
        let m = Arc::clone(&m);
        std::thread::spawn(move || {
            for i in 0..20_000u64 {
                m.record_operation_success(
                    if i % 2 == 0 { "charge" } else { "refund" },
                    ms(i % 50),
                );
            }
        })
    };
    let mut last = 0;
    while !writer.is_finished() {
        let now = m.successes();
        assert!(now >= last, "successes went down: {last} then {now}");
        last = now;
    }
    writer.join().unwrap();
    assert_eq!(m.successes(), 20_002);
}
