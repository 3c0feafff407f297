//! The Prometheus text exposition format (version 0.0.4) of a [`MetricsSnapshot`].

use super::{IntegrationSnapshot, MetricsSnapshot};

/// Escapes a label value: backslash, double quote and line feed.
fn escape_label(value: &str, out: &mut String) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// Writes one sample line: `name{integration="…"[,extra="…"]} value`.
fn sample(
    out: &mut String,
    name: &str,
    integration: &str,
    extra: Option<(&str, &str)>,
    value: impl std::fmt::Display,
) {
    use std::fmt::Write as _;
    out.push_str(name);
    out.push_str("{integration=\"");
    escape_label(integration, out);
    out.push('"');
    if let Some((label, v)) = extra {
        out.push(',');
        out.push_str(label);
        out.push_str("=\"");
        escape_label(v, out);
        out.push('"');
    }
    // Writing to a String cannot fail.
    let _ = writeln!(out, "}} {value}");
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    out.push_str("# HELP ");
    out.push_str(name);
    out.push(' ');
    out.push_str(help);
    out.push_str("\n# TYPE ");
    out.push_str(name);
    out.push(' ');
    out.push_str(kind);
    out.push('\n');
}

type Counter = (&'static str, &'static str, fn(&IntegrationSnapshot) -> u64);

const COUNTERS: [Counter; 8] = [
    (
        "integration_calls_total",
        "Logical calls that entered the resilience policy.",
        |s| s.calls,
    ),
    (
        "integration_successes_total",
        "Logical calls that succeeded.",
        |s| s.successes,
    ),
    (
        "integration_retries_total",
        "Retries scheduled after a retryable failure.",
        |s| s.retries,
    ),
    (
        "integration_short_circuits_total",
        "Calls refused because the circuit was open.",
        |s| s.short_circuits,
    ),
    (
        "integration_rate_limited_waits_total",
        "Times a call waited for a rate-limiter permit.",
        |s| s.rate_limited_waits,
    ),
    (
        "integration_rate_limited_rejections_total",
        "Calls refused by the rate limiter.",
        |s| s.rate_limited_rejections,
    ),
    (
        "integration_bulkhead_rejections_total",
        "Calls refused because the bulkhead was full.",
        |s| s.bulkhead_rejections,
    ),
    (
        "integration_timeouts_total",
        "Attempts or whole calls that ran out of time.",
        |s| s.timeouts,
    ),
];

pub(super) fn render(snapshot: &MetricsSnapshot) -> String {
    let all = &snapshot.integrations;
    let mut out = String::with_capacity(512 + all.len() * 2048);
    for (name, help, get) in COUNTERS {
        header(&mut out, name, "counter", help);
        for s in all {
            sample(&mut out, name, &s.name, None, get(s));
        }
    }
    let failures = "integration_failures_total";
    header(
        &mut out,
        failures,
        "counter",
        "Logical calls that failed, by error kind.",
    );
    for s in all {
        for (kind, count) in &s.failures {
            sample(&mut out, failures, &s.name, Some(("kind", kind)), count);
        }
    }
    let latency = "integration_latency_seconds";
    header(
        &mut out,
        latency,
        "summary",
        "Latency of logical calls, retries and waits included.",
    );
    for s in all {
        for (q, ms) in [("0.5", s.p50_ms), ("0.95", s.p95_ms), ("0.99", s.p99_ms)] {
            sample(
                &mut out,
                latency,
                &s.name,
                Some(("quantile", q)),
                ms / 1000.0,
            );
        }
        sample(
            &mut out,
            "integration_latency_seconds_sum",
            &s.name,
            None,
            s.latency_sum_ms / 1000.0,
        );
        sample(
            &mut out,
            "integration_latency_seconds_count",
            &s.name,
            None,
            s.latency_count,
        );
    }
    let breaker = "integration_breaker_state";
    header(
        &mut out,
        breaker,
        "gauge",
        "Circuit breaker state: 0 closed, 1 open, 2 half-open, 3 forced open, 4 disabled.",
    );
    for s in all {
        sample(&mut out, breaker, &s.name, None, s.breaker_state.as_u8());
    }
    let health = "integration_health";
    header(
        &mut out,
        health,
        "gauge",
        "Health: 0 healthy, 1 degraded, 2 down.",
    );
    for s in all {
        sample(&mut out, health, &s.name, None, s.health as u8);
    }
    out
}
