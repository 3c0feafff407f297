//! The monitoring page: server-rendered HTML, inline CSS, no script and no build step. It
//! reloads itself every 10 seconds.

use std::fmt::Write as _;

use integrations_core::metrics::{DEGRADED_BELOW, Health};
use integrations_core::resilience::BreakerState;

use crate::html::escape;
use crate::monitoring::{IntegrationView, Overview};
use crate::orders::rfc3339;

const STYLE: &str = "
body{font:15px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;margin:0;background:#f5f6f8;color:#1d2330}
header{background:#1d2330;color:#fff;padding:18px 32px;display:flex;align-items:center;gap:16px}
header h1{font-size:20px;margin:0;font-weight:600}
header .meta{margin-left:auto;font-size:13px;color:#c5cad6}
main{padding:24px 32px;max-width:1200px}
section{background:#fff;border-radius:8px;box-shadow:0 1px 2px rgba(0,0,0,.08);padding:16px 20px;margin-bottom:20px}
h2{font-size:16px;margin:0 0 12px}
table{border-collapse:collapse;width:100%}
th,td{text-align:left;padding:7px 10px;border-bottom:1px solid #eceef2;font-variant-numeric:tabular-nums}
th{font-size:12px;text-transform:uppercase;letter-spacing:.04em;color:#5b6477}
td.num,th.num{text-align:right}
.badge{display:inline-block;padding:2px 9px;border-radius:10px;font-size:12px;font-weight:600}
.healthy,.closed{background:#dff5e3;color:#176b2c}
.degraded,.half_open{background:#fff1d6;color:#8a5a00}
.down,.open,.forced_open{background:#fde1e1;color:#a21d1d}
.disabled,.muted{background:#eceef2;color:#5b6477}
.tiles{display:flex;gap:12px;flex-wrap:wrap}
.tile{flex:1;min-width:120px;border:1px solid #eceef2;border-radius:6px;padding:10px 14px}
.tile b{display:block;font-size:22px}
.tile span{font-size:12px;color:#5b6477;text-transform:uppercase;letter-spacing:.04em}
.tile.alert{border-color:#f3b3b3;background:#fff6f6}
.empty{color:#5b6477;font-style:italic}
td.warn{color:#a21d1d;font-weight:600}
.hint{font-size:13px;color:#5b6477;margin:10px 0 0}
code{font:13px ui-monospace,SFMono-Regular,Menlo,monospace;background:#eceef2;padding:1px 5px;border-radius:4px}
";

fn health_class(h: Health) -> &'static str {
    h.as_str()
}

fn breaker_label(b: BreakerState) -> &'static str {
    match b {
        BreakerState::Closed => "closed",
        BreakerState::Open => "open",
        BreakerState::HalfOpen => "half-open",
        BreakerState::ForcedOpen => "forced open",
        BreakerState::Disabled => "disabled",
    }
}

fn ms(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0} ms")
    } else {
        format!("{v:.1} ms")
    }
}

fn integration_row(out: &mut String, i: &IntegrationView) {
    let h = i.health();
    let _ = write!(
        out,
        "<tr><td><strong>{}</strong></td><td>{}</td><td>{}</td>\
         <td><span class=\"badge {}\">{}</span></td>",
        escape(&i.info.name),
        escape(&i.info.role),
        i.info.mode.as_str(),
        health_class(h),
        h.as_str()
    );
    match &i.metrics {
        Some(m) => {
            let failures: u64 = m.failures.values().sum();
            let completed = m.successes + failures;
            let rate = if completed == 0 {
                "—".to_owned()
            } else {
                format!("{:.1} %", m.success_rate * 100.0)
            };
            // Core judges health only after `HEALTH_MIN_CALLS` calls; a low rate shows before.
            let rate_class = if completed > 0 && m.success_rate < DEGRADED_BELOW {
                "num warn"
            } else {
                "num"
            };
            // Window quantiles: NaN when no call finished in the last five minutes.
            let latency = |v: f64| {
                if v.is_nan() { "—".to_owned() } else { ms(v) }
            };
            let _ = write!(
                out,
                "<td><span class=\"badge {}\">{}</span></td><td class=\"num\">{}</td>\
                 <td class=\"{}\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>\
                 <td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
                m.breaker_state.as_str(),
                breaker_label(m.breaker_state),
                m.calls,
                rate_class,
                rate,
                latency(m.p50_ms),
                latency(m.p95_ms),
                latency(m.p99_ms),
                failures,
                m.retries
            );
        }
        None => out.push_str("<td colspan=\"8\" class=\"empty\">no metrics recorded</td></tr>"),
    }
}

fn tile(out: &mut String, label: &str, value: u64, alert: bool) {
    let _ = write!(
        out,
        "<div class=\"tile{}\"><b>{value}</b><span>{label}</span></div>",
        if alert { " alert" } else { "" }
    );
}

fn uptime(secs: u64) -> String {
    match secs {
        s if s < 60 => format!("{s} s"),
        s if s < 3600 => format!("{} min {} s", s / 60, s % 60),
        s => format!("{} h {} min", s / 3600, s % 3600 / 60),
    }
}

/// The page for `o`.
pub(crate) fn render(o: &Overview) -> String {
    let overall = o.overall();
    let mut out = String::with_capacity(8 * 1024);
    let _ = write!(
        out,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <meta http-equiv=\"refresh\" content=\"10\">\
         <title>Order service — monitoring</title><style>{STYLE}</style></head><body>\
         <header><h1>Order service — monitoring</h1>\
         <span class=\"badge {}\" id=\"overall\">{}</span>\
         <span class=\"meta\">up {} · updated {}</span></header><main>",
        health_class(overall),
        overall.as_str(),
        uptime(o.uptime_secs),
        rfc3339(o.generated_at)
    );

    out.push_str(
        "<section id=\"integrations\"><h2>Integrations</h2><table><thead><tr>\
         <th>Integration</th><th>Role</th><th>Mode</th><th>Status</th><th>Breaker</th>\
         <th class=\"num\">Calls</th><th class=\"num\">Success rate</th><th class=\"num\">p50</th>\
         <th class=\"num\">p95</th><th class=\"num\">p99</th><th class=\"num\">Failures</th>\
         <th class=\"num\">Retries</th></tr></thead><tbody>",
    );
    if o.integrations.is_empty() {
        out.push_str("<tr><td colspan=\"12\" class=\"empty\">no integrations configured</td></tr>");
    }
    for i in &o.integrations {
        integration_row(&mut out, i);
    }
    out.push_str("</tbody></table></section>");

    let c = &o.outbox;
    out.push_str("<section id=\"outbox\"><h2>Outbox</h2><div class=\"tiles\">");
    tile(&mut out, "pending", c.pending, false);
    tile(&mut out, "in delivery", c.leased, false);
    tile(&mut out, "delivered", c.done, false);
    tile(&mut out, "dead letters", c.dead, c.dead > 0);
    tile(&mut out, "events recorded", c.events, false);
    out.push_str("</div></section>");

    let _ = write!(
        out,
        "<section id=\"dead-letters\"><h2>Dead letters ({})</h2>",
        c.dead
    );
    if o.dead_letters.is_empty() {
        out.push_str("<p class=\"empty\">No dead letters.</p>");
    } else {
        out.push_str(
            "<table><thead><tr><th>Job</th><th>Kind</th><th>Event</th><th class=\"num\">Attempts</th>\
             <th>Error</th><th>Provider</th><th>Code</th><th>Dead since</th></tr></thead><tbody>",
        );
        for d in &o.dead_letters {
            let dead_at = d
                .dead_at
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |t| i64::try_from(t.as_millis()).unwrap_or(i64::MAX));
            let _ = write!(
                out,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"num\">{}</td>\
                 <td><span class=\"badge down\">{}</span>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape(d.job.id.as_str()),
                escape(&d.job.kind),
                escape(&d.job.event_id),
                d.job.attempt,
                d.error.kind.as_str(),
                d.error
                    .status
                    .map(|s| format!(" HTTP {s}"))
                    .unwrap_or_default(),
                escape(d.error.provider.as_deref().unwrap_or("—")),
                escape(d.error.code.as_deref().unwrap_or("—")),
                rfc3339(dead_at)
            );
        }
        out.push_str(
            "</tbody></table><p class=\"hint\">Replay one with \
             <code>POST /api/monitoring/dead-letters/{job}/replay</code> (API key required).</p>",
        );
    }
    out.push_str("</section>");

    out.push_str("<section id=\"orders\"><h2>Orders</h2>");
    if o.orders.is_empty() {
        out.push_str("<p class=\"empty\">No orders yet.</p>");
    } else {
        out.push_str("<div class=\"tiles\">");
        for (status, n) in &o.orders {
            tile(&mut out, &status.as_str().replace('_', " "), *n, false);
        }
        out.push_str("</div>");
    }
    out.push_str("</section></main></body></html>");
    out
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use integrations_core::metrics::MetricsRegistry;
    use integrations_core::{ErrorKind, IdempotencyKey};
    use integrations_outbox::{DeadLetter, ErrorRecord, Job, JobId, OutboxCounts};

    use super::*;
    use crate::orders::OrderStatus;
    use crate::state::{IntegrationInfo, IntegrationMode};

    fn overview(dead: Vec<DeadLetter>) -> Overview {
        let registry = MetricsRegistry::new();
        let m = registry.integration("stripe");
        m.record_call();
        m.record_success(Duration::from_millis(120));
        m.record_call();
        m.record_failure(ErrorKind::Timeout, Duration::from_millis(900));
        let snap = registry.snapshot();
        Overview {
            integrations: vec![
                IntegrationView {
                    info: IntegrationInfo::new("stripe", "payments", IntegrationMode::Sandbox),
                    metrics: snap.get("stripe").cloned(),
                },
                IntegrationView {
                    info: IntegrationInfo::new("<img src=x>", "x", IntegrationMode::Live),
                    metrics: None,
                },
            ],
            outbox: OutboxCounts {
                dead: dead.len() as u64,
                ..OutboxCounts::default()
            },
            dead_letters: dead,
            orders: vec![(OrderStatus::PartiallyRefunded, 2)],
            uptime_secs: 3725,
            generated_at: 0,
            stores_read_at: 0,
        }
    }

    #[test]
    fn renders_live_numbers_and_escapes_everything() {
        let dead = DeadLetter {
            job: Job {
                id: JobId::new("7"),
                event_id: "evt_<b>".into(),
                kind: "email.confirmation".into(),
                payload: serde_json::Value::Null,
                idempotency_key: IdempotencyKey::new("evt/email").unwrap(),
                attempt: 8,
                max_attempts: 8,
                created_at: UNIX_EPOCH,
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
        };
        let html = render(&overview(vec![dead]));
        assert!(
            html.contains("&lt;img src=x&gt;") && !html.contains("<img"),
            "escaped"
        );
        assert!(html.contains("evt_&lt;b&gt;"));
        assert!(html.contains("50.0 %"), "success rate");
        assert!(html.contains("class=\"num warn\""), "low rate flagged");
        assert!(html.contains("no metrics recorded"));
        assert!(html.contains("Dead letters (1)") && html.contains("HTTP 500"));
        assert!(
            !html.contains("jane@example.com"),
            "error text is not shown"
        );
        assert!(html.contains("partially refunded"));
        assert!(html.contains("up 1 h 2 min"));
        let empty = render(&overview(Vec::new()));
        assert!(empty.contains("No dead letters."));
    }
}
