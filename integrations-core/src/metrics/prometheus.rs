//! The Prometheus text exposition format (version 0.0.4) of a [`MetricsSnapshot`].

use super::{IntegrationSnapshot, MetricsSnapshot};

/// Writes the Prometheus text exposition format (version 0.0.4): `# HELP`/`# TYPE` headers and
/// samples with escaped label values. The core's and the outbox's renderers use it; a service can
/// append its own series with it.
///
/// ```
/// use integrations_core::metrics::TextWriter;
///
/// let mut w = TextWriter::new();
/// w.header("shop_orders", "gauge", "Orders by status.");
/// w.sample("shop_orders", &[("status", "pa\"id")], 3);
/// assert_eq!(
///     w.finish(),
///     "# HELP shop_orders Orders by status.\n# TYPE shop_orders gauge\nshop_orders{status=\"pa\\\"id\"} 3\n"
/// );
/// ```
#[derive(Debug, Default)]
pub struct TextWriter {
    out: String,
}

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

impl TextWriter {
    /// An empty text.
    pub fn new() -> Self {
        Self::default()
    }

    /// `# HELP name help` and `# TYPE name kind` (`counter`, `gauge`, `histogram`).
    pub fn header(&mut self, name: &str, kind: &str, help: &str) {
        let out = &mut self.out;
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

    /// One sample line: `name{label="value",…} value` (no braces without labels).
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        use std::fmt::Write as _;
        let out = &mut self.out;
        out.push_str(name);
        if !labels.is_empty() {
            out.push('{');
            for (i, (label, v)) in labels.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(label);
                out.push_str("=\"");
                escape_label(v, out);
                out.push('"');
            }
            out.push('}');
        }
        // Writing to a String cannot fail.
        let _ = writeln!(out, " {value}");
    }

    /// The `_bucket{…,le}`, `_sum` and `_count` samples of histogram `name` (declare it first
    /// with [`header`](Self::header) and kind `histogram`). `buckets` are cumulative, `+Inf`
    /// last.
    pub fn histogram(
        &mut self,
        name: &str,
        labels: &[(&str, &str)],
        buckets: &[(&str, u64)],
        sum: f64,
    ) {
        let mut with_le: Vec<(&str, &str)> = labels.to_vec();
        with_le.push(("le", ""));
        let bucket = format!("{name}_bucket");
        let mut count = 0;
        for (le, c) in buckets {
            if let Some(last) = with_le.last_mut() {
                last.1 = le;
            }
            self.sample(&bucket, &with_le, c);
            count = *c;
        }
        self.sample(&format!("{name}_sum"), labels, sum);
        self.sample(&format!("{name}_count"), labels, count);
    }

    /// The text written so far.
    pub fn finish(self) -> String {
        self.out
    }
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

/// Name of the latency histogram (`_bucket`, `_sum`, `_count`).
pub(super) const LATENCY: &str = "integration_latency_seconds";
/// Name of the failures counter.
pub(super) const FAILURES: &str = "integration_failures_total";
/// Name of the breaker-state gauge.
pub(super) const BREAKER: &str = "integration_breaker_state";
/// Name of the health gauge.
pub(super) const HEALTH: &str = "integration_health";

pub(super) fn render(snapshot: &MetricsSnapshot) -> String {
    let all = &snapshot.integrations;
    let mut w = TextWriter {
        out: String::with_capacity(512 + all.len() * 4096),
    };
    for (name, help, get) in COUNTERS {
        w.header(name, "counter", help);
        for s in all {
            w.sample(name, &[("provider", &s.name)], get(s));
        }
    }
    w.header(
        FAILURES,
        "counter",
        "Logical calls that failed, by error kind.",
    );
    for s in all {
        for (kind, count) in &s.failures {
            w.sample(FAILURES, &[("provider", &s.name), ("kind", kind)], count);
        }
    }
    w.header(
        LATENCY,
        "histogram",
        "Latency of logical calls by operation, retries and waits included.",
    );
    for s in all {
        for op in &s.operations {
            w.histogram(
                LATENCY,
                &[("provider", &s.name), ("operation", op.operation)],
                &op.latency_buckets,
                op.latency_sum_ms / 1000.0,
            );
        }
    }
    w.header(
        BREAKER,
        "gauge",
        "Circuit breaker state: 0 closed, 1 open, 2 half-open, 3 forced open, 4 disabled.",
    );
    for s in all {
        w.sample(BREAKER, &[("provider", &s.name)], s.breaker_state.as_u8());
    }
    w.header(HEALTH, "gauge", "Health: 0 healthy, 1 degraded, 2 down.");
    for s in all {
        w.sample(HEALTH, &[("provider", &s.name)], s.health as u8);
    }
    w.finish()
}
