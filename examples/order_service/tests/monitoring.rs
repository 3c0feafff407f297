//! `/metrics` parses as Prometheus text and reports live numbers; health, `/integrations`, dead
//! letters and their replay.

mod common;

use std::collections::{BTreeMap, HashSet};

use axum::http::StatusCode;
use common::Harness;
use integrations_core::resilience::BreakerState;
use integrations_order_service::effects::paid_jobs;
use integrations_outbox::OutboxStore;

/// One sample: metric name, labels, value.
#[derive(Debug, Clone, PartialEq)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

fn valid_metric_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn valid_label_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn parse_labels(s: &str) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    let mut rest = s;
    while !rest.is_empty() {
        let (name, after) = rest
            .split_once("=\"")
            .ok_or(format!("label without =\": {rest}"))?;
        if !valid_label_name(name) {
            return Err(format!("bad label name {name:?}"));
        }
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next() {
                Some((_, '\\')) => match chars.next() {
                    Some((_, '\\')) => value.push('\\'),
                    Some((_, '"')) => value.push('"'),
                    Some((_, 'n')) => value.push('\n'),
                    other => return Err(format!("bad escape {other:?}")),
                },
                Some((i, '"')) => break i,
                Some((_, '\n')) => return Err("raw newline in a label value".into()),
                Some((_, c)) => value.push(c),
                None => return Err("unterminated label value".into()),
            }
        };
        if out.insert(name.to_owned(), value).is_some() {
            return Err(format!("label {name} twice"));
        }
        rest = &after[end + 1..];
        rest = rest.strip_prefix(',').unwrap_or(rest);
    }
    Ok(out)
}

/// A strict reader of the text exposition format 0.0.4: HELP/TYPE lines, `TYPE` before the
/// family's samples and once, known types, valid names and label syntax, numeric values, and
/// the samples of one family together.
fn parse_prometheus(text: &str) -> Result<Vec<Sample>, String> {
    if !text.ends_with('\n') {
        return Err("does not end with a line feed".into());
    }
    let mut types: BTreeMap<String, String> = BTreeMap::new();
    let mut finished: HashSet<String> = HashSet::new();
    let mut current: Option<String> = None;
    let mut samples = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let err = |m: String| format!("line {}: {m}: {line:?}", n + 1);
        if line.is_empty() {
            continue;
        }
        if let Some(c) = line.strip_prefix("# ") {
            let mut parts = c.splitn(3, ' ');
            match (parts.next(), parts.next(), parts.next()) {
                (Some("HELP"), Some(name), _) if valid_metric_name(name) => {}
                (Some("TYPE"), Some(name), Some(kind)) => {
                    if !valid_metric_name(name) {
                        return Err(err("bad name".into()));
                    }
                    if !["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind) {
                        return Err(err(format!("unknown type {kind}")));
                    }
                    if types.insert(name.to_owned(), kind.to_owned()).is_some() {
                        return Err(err("TYPE given twice".into()));
                    }
                    if finished.contains(name) || current.as_deref() == Some(name) {
                        return Err(err("TYPE after samples".into()));
                    }
                }
                (Some("HELP" | "TYPE"), _, _) => return Err(err("malformed".into())),
                _ => {}
            }
            continue;
        }
        let (series, value) = line
            .rsplit_once(' ')
            .ok_or_else(|| err("no value".into()))?;
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            "NaN" => f64::NAN,
            v => v.parse().map_err(|_| err(format!("value {v:?}")))?,
        };
        let (name, labels) = match series.split_once('{') {
            Some((name, rest)) => {
                let inner = rest
                    .strip_suffix('}')
                    .ok_or_else(|| err("unclosed labels".into()))?;
                (name, parse_labels(inner).map_err(err)?)
            }
            None => (series, BTreeMap::new()),
        };
        if !valid_metric_name(name) {
            return Err(err("bad metric name".into()));
        }
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| {
                name.strip_suffix(s).filter(|f| {
                    matches!(
                        types.get(*f).map(String::as_str),
                        Some("histogram" | "summary")
                    )
                })
            })
            .unwrap_or(name)
            .to_owned();
        if current.as_deref() != Some(family.as_str()) {
            if finished.contains(&family) {
                return Err(err(format!("samples of {family} are not together")));
            }
            if let Some(prev) = current.replace(family.clone()) {
                finished.insert(prev);
            }
        }
        samples.push(Sample {
            name: name.to_owned(),
            labels,
            value,
        });
    }
    Ok(samples)
}

fn value(samples: &[Sample], name: &str, label: (&str, &str)) -> Option<f64> {
    samples
        .iter()
        .find(|s| s.name == name && s.labels.get(label.0).map(String::as_str) == Some(label.1))
        .map(|s| s.value)
}

#[test]
fn the_reader_refuses_what_prometheus_refuses() {
    for bad in [
        "x 1",
        "x{a=\"1\" 1\n",
        "x{a=1} 1\n",
        "x one\n",
        "1x 1\n",
        "# TYPE x countr\nx 1\n",
        "x 1\n# TYPE x counter\n",
        "x 1\ny 1\nx 2\n",
        "x{a=\"\\q\"} 1\n",
    ] {
        assert!(parse_prometheus(bad).is_err(), "{bad:?} accepted");
    }
    let ok = "# HELP x A thing.\n# TYPE x counter\nx{a=\"q\\\"uote\",b=\"\\\\\"} 1.5\nx 2\n# TYPE h histogram\nh_bucket{le=\"+Inf\"} 1\nh_sum 0.1\nh_count 1\n";
    let s = parse_prometheus(ok).unwrap();
    assert_eq!(s.len(), 5);
    assert_eq!(s[0].labels["a"], "q\"uote");
}

#[tokio::test]
async fn metrics_parse_as_prometheus_text_with_live_numbers() {
    let h = Harness::new().await;
    h.paid_order().await;
    h.deliver_all("payment_intent.succeeded").await;
    h.drain().await;
    h.refresh_monitoring().await;
    let r = h.request("GET", "/metrics", Some(common::KEY), None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(
        r.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4"),
        "{:?}",
        r.headers["content-type"]
    );
    let samples = parse_prometheus(&r.text).unwrap_or_else(|e| panic!("{e}\n{}", r.text));
    let stripe_calls = value(&samples, "integration_calls_total", ("provider", "stripe")).unwrap();
    assert!(
        stripe_calls >= 2.0,
        "create and confirm at least: {stripe_calls}"
    );
    assert_eq!(
        value(
            &samples,
            "integration_successes_total",
            ("provider", "stripe")
        ),
        Some(stripe_calls)
    );
    assert_eq!(
        value(&samples, "order_service_orders", ("status", "paid")),
        Some(1.0)
    );
    assert_eq!(
        value(&samples, "order_service_orders", ("status", "pending")),
        Some(0.0)
    );
    assert_eq!(
        value(&samples, "order_service_outbox_jobs", ("state", "done")),
        Some(3.0)
    );
    assert_eq!(
        value(&samples, "order_service_outbox_jobs", ("state", "dead")),
        Some(0.0)
    );
    assert!(
        samples
            .iter()
            .any(|s| s.name == "order_service_outbox_events" && s.value == 1.0)
    );
    // Latency per provider and operation as a histogram.
    let label = |s: &Sample, l: &str| s.labels.get(l).cloned().unwrap_or_default();
    let stripe_ops: Vec<String> = samples
        .iter()
        .filter(|s| {
            s.name == "integration_latency_seconds_bucket"
                && label(s, "provider") == "stripe"
                && label(s, "le") == "+Inf"
                && s.value >= 1.0
        })
        .map(|s| label(s, "operation"))
        .collect();
    assert!(
        stripe_ops.len() >= 2 && stripe_ops.iter().all(|o| !o.is_empty()),
        "{stripe_ops:?}"
    );
    // The dispatcher's own series: three jobs delivered, none failed, the outbox gauges.
    let sum = |name: &str| -> f64 {
        samples
            .iter()
            .filter(|s| s.name == name)
            .map(|s| s.value)
            .sum()
    };
    assert_eq!(sum("outbox_deliveries_total"), 3.0);
    assert_eq!(sum("outbox_failures_total"), 0.0);
    assert_eq!(sum("outbox_delivery_seconds_count"), 3.0);
    assert_eq!(value(&samples, "outbox_jobs", ("state", "done")), Some(3.0));
    assert_eq!(
        samples
            .iter()
            .find(|s| s.name == "outbox_oldest_pending_age_seconds")
            .map(|s| s.value),
        Some(0.0)
    );
}

#[tokio::test]
async fn health_integrations_and_dead_letters_follow_live_data() {
    let h = Harness::new().await;
    h.paid_order().await;
    let r = h.request("GET", "/api/monitoring/health", None, None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json["data"]["status"], "ok");
    assert_eq!(r.json["data"]["integrations"][0]["name"], "stripe");
    assert_eq!(r.json["data"]["integrations"][0]["breaker"], "closed");

    // Jobs for an order that does not exist fail permanently: straight to the dead-letter queue.
    h.outbox
        .record_event("test:orphan", paid_jobs("ord_gone"))
        .await
        .unwrap();
    let stats = h.drain().await;
    assert_eq!(stats.dead_lettered, 3);
    h.refresh_monitoring().await;
    let r = h
        .request("GET", "/integrations", Some(common::KEY), None)
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let d = &r.json["data"];
    assert_eq!(d["outbox"]["dead"], 3);
    let dead = d["deadLetters"].as_array().unwrap();
    assert_eq!(dead.len(), 3);
    assert_eq!(dead[0]["eventId"], "test:orphan");
    assert_eq!(dead[0]["error"]["kind"], "not_found");
    let stripe = &d["integrations"][0];
    assert_eq!(
        (stripe["name"].as_str(), stripe["mode"].as_str()),
        (Some("stripe"), Some("sandbox"))
    );
    assert!(stripe["metrics"]["calls"].as_u64().unwrap() >= 2);
    assert_eq!(stripe["metrics"]["successRate"], 1.0);

    // Replay puts one back; unknown ids are 404; replay needs the key.
    let id = dead[0]["jobId"].as_str().unwrap();
    let uri = format!("/api/monitoring/dead-letters/{id}/replay");
    assert_eq!(
        h.request("POST", &uri, None, None).await.status,
        StatusCode::UNAUTHORIZED
    );
    let r = h.request("POST", &uri, Some(common::KEY), None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let c = h.outbox.counts().await.unwrap();
    assert_eq!((c.dead, c.pending), (2, 1));
    let r = h
        .request(
            "POST",
            "/api/monitoring/dead-letters/999999/replay",
            Some(common::KEY),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);

    // A breaker that opens shows as a degraded service (still 200: orders are stored).
    h.registry
        .integration("stripe")
        .set_breaker_state(BreakerState::Open);
    let r = h.request("GET", "/api/monitoring/health", None, None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json["data"]["status"], "degraded");
    assert_eq!(r.json["data"]["integrations"][0]["health"], "down");
    assert_eq!(r.json["data"]["integrations"][0]["breaker"], "open");
}
