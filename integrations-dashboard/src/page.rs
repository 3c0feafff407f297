//! The page: server-rendered HTML with inline CSS and SVG, and one short inline script that
//! swaps in the live part (`live`) every sample interval and posts replays. No framework, no
//! external asset: the page works from a service with no internet access.

use std::fmt::Write as _;
use std::sync::{Arc, LazyLock};

use base64::Engine as _;
use integrations_core::metrics::{DEGRADED_BELOW, Health, IntegrationSnapshot, MetricsSnapshot};
use integrations_core::resilience::BreakerState;
use sha2::{Digest as _, Sha256};

use crate::dashboard::StoreView;
use crate::sampler::Sample;
use crate::svg::{self, Axis, Line};

/// `s` with `& < > " '` replaced by entities, safe in element content and quoted attributes.
pub(crate) fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "
body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;margin:0;background:#f5f6f8;color:#1d2330}
header{background:#1d2330;color:#fff;padding:14px 28px;display:flex;align-items:center;gap:14px}
header h1{font-size:19px;margin:0;font-weight:600}
#meta{margin-left:auto;font-size:13px;color:#c5cad6}
main{padding:20px 28px;max-width:1180px}
section{background:#fff;border-radius:8px;box-shadow:0 1px 2px rgba(0,0,0,.08);padding:14px 18px;margin-bottom:18px}
h2{font-size:15px;margin:0 0 10px}
table{border-collapse:collapse;width:100%}
th,td{text-align:left;padding:6px 9px;border-bottom:1px solid #eceef2;font-variant-numeric:tabular-nums}
th{font-size:11px;text-transform:uppercase;letter-spacing:.04em;color:#5b6477}
td.num,th.num{text-align:right}
.badge{display:inline-block;padding:2px 9px;border-radius:10px;font-size:12px;font-weight:600}
.healthy,.closed{background:#dff5e3;color:#176b2c}
.degraded,.half_open{background:#fff1d6;color:#8a5a00}
.down,.open,.forced_open{background:#fde1e1;color:#a21d1d}
.disabled{background:#eceef2;color:#5b6477}
td.warn{color:#a21d1d;font-weight:600}
.tiles{display:flex;gap:10px;flex-wrap:wrap;margin-bottom:10px}
.tile{flex:1;min-width:110px;border:1px solid #eceef2;border-radius:6px;padding:8px 12px}
.tile b{display:block;font-size:20px}
.tile span{font-size:11px;color:#5b6477;text-transform:uppercase;letter-spacing:.04em}
.tile.alert{border-color:#f3b3b3;background:#fff6f6}
.empty{color:#5b6477;font-style:italic}
.hint{font-size:12px;color:#5b6477;margin:8px 0 0}
.row{display:flex;gap:12px;flex-wrap:wrap;align-items:flex-start}
.row h3{font-size:13px;margin:8px 0 2px;width:100%}
svg.chart{background:#fbfbfc;border:1px solid #eceef2;border-radius:6px}
svg .title{font-size:11px;font-weight:600;fill:#1d2330}
svg .tick{font-size:10px;fill:#5b6477}
svg .nodata{font-size:12px;fill:#8a91a3;font-style:italic}
svg .grid{stroke:#eceef2;stroke-width:1}
svg .line{fill:none;stroke-width:1.6}
svg .p50,svg .p99,svg .pending,svg .leased,svg .dead{stroke-width:0}
svg .p50 .line,svg .p99 .line,svg .pending .line,svg .leased .line,svg .dead .line{stroke-width:1.6}
svg .legend{font-size:10px}
.p50{stroke:#2f6fde;fill:#2f6fde}.p99{stroke:#c2410c;fill:#c2410c}
.calls{fill:#8fb3ee}.errors{fill:#d64545}
.pending{stroke:#2f6fde;fill:#2f6fde}.leased{stroke:#7c3aed;fill:#7c3aed}.dead{stroke:#d64545;fill:#d64545}
button{font:inherit;font-size:12px;padding:2px 10px;border-radius:5px;border:1px solid #c5cad6;background:#fff;cursor:pointer}
#status.failed{color:#ffb4b4}
";

/// Fetches `live` every `data-refresh` seconds and swaps it in (counting the swaps in
/// `data-swaps` on the body, which the browser test reads); posts replays with the header
/// the replay route demands (which a cross-site form cannot send). Relative to the page's own
/// path, so the router works wherever it is nested.
pub(crate) const SCRIPT: &str = "(function(){\
var base=location.pathname.replace(/\\/?$/,'/');\
var every=Math.max(1,Number(document.body.dataset.refresh))*1000;\
var status=document.getElementById('status');\
function swap(){fetch(base+'live',{credentials:'same-origin',cache:'no-store'})\
.then(function(r){if(!r.ok)throw new Error('HTTP '+r.status);return r.text();})\
.then(function(t){document.getElementById('live').innerHTML=t;status.textContent='live';status.className='';\
document.body.dataset.swaps=String(Number(document.body.dataset.swaps||0)+1);})\
.catch(function(e){status.textContent='refresh failed: '+e.message;status.className='failed';});}\
setInterval(swap,every);\
document.addEventListener('click',function(ev){var b=ev.target.closest('button[data-replay]');if(!b)return;\
b.disabled=true;fetch(base+'dead-letters/'+encodeURIComponent(b.dataset.replay)+'/replay',\
{method:'POST',credentials:'same-origin',headers:{'x-dashboard-action':'replay'}})\
.then(function(r){b.textContent=r.ok?'replayed':'failed (HTTP '+r.status+')';swap();});});\
})();";

/// The `Content-Security-Policy` of the page: nothing from elsewhere, inline styles, and only
/// [`SCRIPT`] (by its hash) may run.
pub(crate) static CSP: LazyLock<String> = LazyLock::new(|| {
    let hash = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(SCRIPT));
    format!(
        "default-src 'none'; style-src 'unsafe-inline'; script-src 'sha256-{hash}'; \
         connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; \
         frame-ancestors 'none'"
    )
});

/// Everything one rendering shows.
#[derive(Debug)]
pub(crate) struct View {
    pub(crate) title: String,
    pub(crate) metrics: MetricsSnapshot,
    pub(crate) samples: Vec<Arc<Sample>>,
    pub(crate) stores: Arc<StoreView>,
    pub(crate) now_ms: i64,
    pub(crate) window_ms: i64,
    pub(crate) step_ms: i64,
    pub(crate) replay: bool,
}

impl View {
    /// The worst health among the integrations (healthy with none).
    pub(crate) fn overall(&self) -> Health {
        let hs = self.metrics.integrations.iter().map(|i| i.health);
        hs.fold(Health::Healthy, |worst, h| match (worst, h) {
            (Health::Down, _) | (_, Health::Down) => Health::Down,
            (Health::Degraded, _) | (_, Health::Degraded) => Health::Degraded,
            _ => Health::Healthy,
        })
    }

    fn axis(&self) -> Axis {
        let oldest = self
            .samples
            .first()
            .map_or(self.now_ms, |s| s.at_ms.saturating_sub(self.step_ms));
        Axis {
            from_ms: oldest.max(self.now_ms.saturating_sub(self.window_ms)),
            to_ms: self.now_ms,
        }
    }

    /// The integrations to show: the registry's, then any only in the history.
    fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .metrics
            .integrations
            .iter()
            .map(|i| i.name.clone())
            .collect();
        for s in &self.samples {
            for p in &s.integrations {
                if !names.contains(&p.name) {
                    names.push(p.name.clone());
                }
            }
        }
        names
    }
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

fn ms(m: &IntegrationSnapshot, v: f64) -> String {
    if m.latency_count == 0 || !v.is_finite() {
        "—".to_owned()
    } else if v >= 100.0 {
        format!("{v:.0} ms")
    } else {
        format!("{v:.1} ms")
    }
}

fn integration_row(out: &mut String, m: &IntegrationSnapshot) {
    let failures: u64 = m.failures.values().sum();
    let completed = m.successes + failures;
    let (rate, class) = if completed == 0 {
        ("—".to_owned(), "num")
    } else {
        let error_rate = failures as f64 / completed as f64;
        // Core judges health only after enough calls; a high error rate shows before.
        let class = if m.success_rate < DEGRADED_BELOW {
            "num warn"
        } else {
            "num"
        };
        (format!("{:.1} %", error_rate * 100.0), class)
    };
    let _ = write!(
        out,
        "<tr data-integration=\"{name}\"><td><strong>{name}</strong></td>\
         <td><span class=\"badge {h}\">{h}</span></td>\
         <td><span class=\"badge {b}\">{bl}</span></td><td class=\"num\">{calls}</td>\
         <td class=\"num\">{failures}</td><td class=\"{class}\">{rate}</td>\
         <td class=\"num\">{p50}</td><td class=\"num\">{p95}</td><td class=\"num\">{p99}</td>\
         <td class=\"num\">{retries}</td></tr>",
        name = escape(&m.name),
        h = m.health.as_str(),
        b = m.breaker_state.as_str(),
        bl = breaker_label(m.breaker_state),
        calls = m.calls,
        p50 = ms(m, m.p50_ms),
        p95 = ms(m, m.p95_ms),
        p99 = ms(m, m.p99_ms),
        retries = m.retries,
    );
}

fn tile(out: &mut String, label: &str, value: u64, alert: bool) {
    let _ = write!(
        out,
        "<div class=\"tile{}\"><b>{value}</b><span>{label}</span></div>",
        if alert { " alert" } else { "" }
    );
}

fn charts(out: &mut String, v: &View) {
    let axis = v.axis();
    out.push_str("<section id=\"charts\"><h2>Last hour, per integration</h2>");
    let names = v.names();
    if names.is_empty() {
        out.push_str("<p class=\"empty\">No integration has recorded a call yet.</p>");
    }
    for (i, name) in names.iter().enumerate() {
        let point = |s: &Sample| s.integration(name).cloned();
        let p50: Vec<(i64, Option<f64>)> = v
            .samples
            .iter()
            .map(|s| (s.at_ms, point(s).and_then(|p| p.p50())))
            .collect();
        let p99 = v
            .samples
            .iter()
            .map(|s| (s.at_ms, point(s).and_then(|p| p.p99())))
            .collect();
        let bars: Vec<(i64, u64, u64)> = v
            .samples
            .iter()
            .map(|s| point(s).map_or((s.at_ms, 0, 0), |p| (s.at_ms, p.calls, p.failures)))
            .collect();
        let _ = write!(
            out,
            "<div class=\"row\" data-integration=\"{n}\"><h3>{n}</h3>",
            n = escape(name)
        );
        let lines = [
            Line {
                series: "p50",
                class: "p50",
                points: p50,
            },
            Line {
                series: "p99",
                class: "p99",
                points: p99,
            },
        ];
        svg::line_chart(
            out,
            &format!("latency-{i}"),
            &format!("{name}: latency"),
            " ms",
            axis,
            &lines,
        );
        svg::bar_chart(
            out,
            &format!("calls-{i}"),
            &format!("{name}: calls and errors per interval"),
            axis,
            v.step_ms,
            &bars,
        );
        out.push_str("</div>");
    }
    out.push_str("</section>");
}

fn outbox(out: &mut String, v: &View) {
    out.push_str("<section id=\"outbox\"><h2>Outbox</h2>");
    let Some(c) = v.stores.counts else {
        out.push_str("<p class=\"empty\">No outbox figures (none configured, or not read yet).</p></section>");
        return;
    };
    out.push_str("<div class=\"tiles\">");
    tile(out, "pending", c.pending, false);
    tile(out, "in delivery", c.leased, false);
    tile(out, "delivered", c.done, false);
    tile(out, "dead letters", c.dead, c.dead > 0);
    tile(out, "events recorded", c.events, false);
    out.push_str("</div>");
    if let Some(age) = v.stores.totals_age {
        // Counting every done job and event record costs what the store holds: done rarely.
        let _ = write!(
            out,
            "<p class=\"hint\">Delivered and events recorded as counted {} s earlier; the \
             other figures at this sample.</p>",
            age.as_secs()
        );
    }
    let series = |f: fn(&integrations_outbox::OutboxCounts) -> u64| -> Vec<(i64, Option<f64>)> {
        v.samples
            .iter()
            .map(|s| (s.at_ms, s.outbox.as_ref().map(|c| f(c) as f64)))
            .collect()
    };
    let lines = [
        Line {
            series: "pending",
            class: "pending",
            points: series(|c| c.pending),
        },
        Line {
            series: "leased",
            class: "leased",
            points: series(|c| c.leased),
        },
        Line {
            series: "dead",
            class: "dead",
            points: series(|c| c.dead),
        },
    ];
    svg::line_chart(out, "outbox-depth", "Outbox depth", "", v.axis(), &lines);
    out.push_str("</section>");
}

fn dead_letters(out: &mut String, v: &View) {
    let total = v.stores.counts.map_or(0, |c| c.dead);
    let _ = write!(
        out,
        "<section id=\"dead-letters\"><h2>Dead letters ({total})</h2>"
    );
    if v.stores.dead_letters.is_empty() {
        out.push_str("<p class=\"empty\">No dead letters.</p></section>");
        return;
    }
    out.push_str(
        "<table><thead><tr><th>Job</th><th>Kind</th><th>Event</th><th class=\"num\">Attempts</th>\
         <th>Error</th><th>Provider</th><th>Code</th><th>Dead since</th><th>May have acted</th><th></th></tr></thead><tbody>",
    );
    for d in &v.stores.dead_letters {
        let dead_at = d
            .dead_at
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |t| i64::try_from(t.as_millis()).unwrap_or(i64::MAX));
        let id = escape(d.job.id.as_str());
        let action = if v.replay {
            format!("<button type=\"button\" data-replay=\"{id}\">Replay</button>")
        } else {
            String::new()
        };
        // The error's kind, provider, code and status; not its free text, which may quote
        // personal data.
        let _ = write!(
            out,
            "<tr><td>{id}</td><td>{}</td><td>{}</td><td class=\"num\">{}</td>\
             <td><span class=\"badge down\">{}</span>{}</td><td>{}</td><td>{}</td><td>{} UTC</td><td>{}</td><td>{action}</td></tr>",
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
            svg::clock(dead_at),
            // An ambiguous last attempt: check the provider before replaying (see the docs).
            if d.may_have_acted {
                "<span class=\"badge degraded\">maybe</span>"
            } else {
                "no"
            },
        );
    }
    out.push_str("</tbody></table>");
    if total > v.stores.dead_letters.len() as u64 {
        let _ = write!(
            out,
            "<p class=\"hint\">The oldest {} of {total} are listed.</p>",
            v.stores.dead_letters.len()
        );
    }
    out.push_str("</section>");
}

/// The part of the page that the script swaps in.
pub(crate) fn live(v: &View) -> String {
    let mut out = String::with_capacity(32 * 1024);
    let overall = v.overall();
    let _ = write!(
        out,
        "<section id=\"integrations\" data-overall=\"{o}\" data-generated=\"{now}\">\
         <h2>Integrations <span class=\"badge {o}\">{o}</span></h2>",
        o = overall.as_str(),
        now = v.now_ms,
    );
    if v.metrics.integrations.is_empty() {
        out.push_str("<p class=\"empty\">No integration has recorded a call yet.</p>");
    } else {
        out.push_str(
            "<table><thead><tr><th>Integration</th><th>Status</th><th>Breaker</th>\
             <th class=\"num\">Calls</th><th class=\"num\">Errors</th><th class=\"num\">Error rate</th>\
             <th class=\"num\">p50</th><th class=\"num\">p95</th><th class=\"num\">p99</th>\
             <th class=\"num\">Retries</th></tr></thead><tbody>",
        );
        for m in &v.metrics.integrations {
            integration_row(&mut out, m);
        }
        out.push_str("</tbody></table>");
    }
    let _ = write!(
        out,
        "<p class=\"hint\">Totals since the process started; charts: one point per sample, \
         every {:?}; updated {} UTC.{}</p></section>",
        std::time::Duration::from_millis(u64::try_from(v.step_ms).unwrap_or(0)),
        svg::clock(v.now_ms),
        v.stores
            .error
            .as_ref()
            .map(|e| format!(" The stores could not be read: {}.", escape(e)))
            .unwrap_or_default(),
    );
    charts(&mut out, v);
    outbox(&mut out, v);
    dead_letters(&mut out, v);
    out
}

/// The whole page.
pub(crate) fn page(v: &View) -> String {
    let mut out = String::with_capacity(40 * 1024);
    let _ = write!(
        out,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>{t}</title><style>{STYLE}</style></head>\
         <body data-refresh=\"{r}\"><header><h1>{t}</h1><span id=\"meta\">\
         <span id=\"status\">live</span> · refreshed every {r} s</span></header><main id=\"live\">",
        t = escape(&v.title),
        r = (v.step_ms / 1000).max(1),
    );
    out.push_str(&live(v));
    let _ = write!(out, "</main><script>{SCRIPT}</script></body></html>");
    out
}

#[cfg(test)]
#[path = "page_tests.rs"]
mod tests;
