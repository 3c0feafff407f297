use std::time::{Duration, Instant, UNIX_EPOCH};

use integrations_core::metrics::MetricsRegistry;
use integrations_core::{ErrorKind, IdempotencyKey};
use integrations_outbox::{DeadLetter, ErrorRecord, Job, JobId, OutboxCounts};

use super::*;
use crate::sampler::IntegrationPoint;

fn dead_letter() -> DeadLetter {
    DeadLetter {
        job: Job {
            id: JobId::new("7"),
            event_id: "evt_<b>".into(),
            kind: "email.confirmation".into(),
            payload: serde_json::Value::Null,
            idempotency_key: IdempotencyKey::new("evt/email").unwrap(),
            attempt: 8,
            max_attempts: 8,
            created_at: UNIX_EPOCH,
            traceparent: None,
        },
        error: ErrorRecord {
            kind: ErrorKind::Unavailable,
            message: "jane@example.com bounced".into(),
            provider: Some("sendgrid".into()),
            code: None,
            decline_code: None,
            request_id: None,
            status: Some(500),
            may_have_acted: Some(true),
            retryable: true,
        },
        dead_at: UNIX_EPOCH,
        may_have_acted: true,
    }
}

fn point(name: &str, calls: u64, p50: f64) -> IntegrationPoint {
    IntegrationPoint {
        name: name.into(),
        calls,
        successes: calls,
        failures: 0,
        latency_count: calls,
        latency_sum_ms: p50 * calls as f64,
        p50_ms: p50,
        p99_ms: p50 * 3.0,
    }
}

fn view(registry: &MetricsRegistry, samples: Vec<Arc<Sample>>, dead: Vec<DeadLetter>) -> View {
    View {
        title: "Shop".into(),
        metrics: registry.snapshot(),
        samples,
        stores: Arc::new(StoreView {
            counts: Some(OutboxCounts {
                dead: dead.len() as u64,
                ..OutboxCounts::default()
            }),
            totals_age: Some(std::time::Duration::from_secs(42)),
            dead_letters: dead,
            error: None,
        }),
        now_ms: 3_600_000,
        window_ms: 3_600_000,
        step_ms: 10_000,
        replay: true,
    }
}

#[test]
fn renders_live_numbers_and_escapes_everything() {
    let registry = MetricsRegistry::new();
    let m = registry.integration("stripe");
    m.record_call();
    m.record_success(Duration::from_millis(120));
    m.record_call();
    m.record_failure(ErrorKind::Timeout, Duration::from_millis(900));
    registry.integration("<img src=x>");
    let html = page(&view(&registry, Vec::new(), vec![dead_letter()]));
    assert!(
        html.contains("&lt;img src=x&gt;") && !html.contains("<img"),
        "escaped"
    );
    assert!(html.contains("evt_&lt;b&gt;"));
    assert!(html.contains("50.0 %"), "error rate");
    assert!(
        html.contains("class=\"num warn\""),
        "high error rate flagged"
    );
    assert!(html.contains("Dead letters (1)") && html.contains("HTTP 500"));
    assert!(html.contains("data-replay=\"7\"") && html.contains(">maybe<"));
    assert!(
        !html.contains("jane@example.com"),
        "the error's free text is not shown"
    );
    assert!(html.contains(&format!("<script>{SCRIPT}</script>")));
    assert!(
        !html.contains("src=\"http") && !html.contains("href=\"http"),
        "no external asset"
    );
    let mut read_only = view(&registry, Vec::new(), vec![dead_letter()]);
    read_only.replay = false;
    assert!(!page(&read_only).contains("data-replay=\""));
    assert!(live(&view(&registry, Vec::new(), Vec::new())).contains("No dead letters."));
    assert!(
        html.contains("Delivered and events recorded as counted 42 s earlier"),
        "the totals' age is shown"
    );
}

#[test]
fn the_policy_allows_exactly_the_inline_script() {
    let hash = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(SCRIPT));
    assert!(
        CSP.contains(&format!("script-src 'sha256-{hash}'")),
        "{}",
        *CSP
    );
    assert!(CSP.starts_with("default-src 'none'"));
}

/// A full hour at the default pace (360 samples) for 8 integrations: what one refresh costs.
#[test]
fn a_full_hour_renders_in_bounded_time_and_size() {
    let registry = MetricsRegistry::new();
    let names: Vec<String> = (0..8).map(|i| format!("provider-{i}")).collect();
    for n in &names {
        registry.integration(n);
    }
    let samples: Vec<Arc<Sample>> = (1..=360)
        .map(|i| {
            Arc::new(Sample {
                at_ms: i * 10_000,
                integrations: names.iter().map(|n| point(n, 40, 12.5)).collect(),
                outbox: Some(OutboxCounts {
                    pending: 3,
                    ..OutboxCounts::default()
                }),
            })
        })
        .collect();
    let v = view(&registry, samples, Vec::new());
    let started = Instant::now();
    let html = live(&v);
    let took = started.elapsed();
    let marks = html.matches(" data-t=").count();
    // p50, p99 and calls per integration (no errors, so no error bar), the outbox's three lines.
    assert_eq!(marks, 360 * (8 * 3 + 3));
    eprintln!(
        "one hour, 8 integrations: {} marks, {} KiB, rendered in {took:?}",
        marks,
        html.len() / 1024
    );
    assert!(html.len() < 1024 * 1024, "{} bytes", html.len());
}
