//! The alert rules in `docs/alerts/integrations.rules.yml` name only series that the built-in
//! renderers write (core's `MetricsRegistry` and the outbox's `OutboxMetrics`), so a renamed
//! series cannot silently leave an alert that never fires. (`promtool test rules` in CI checks
//! the rules' logic; this checks their names against the code.) It lives in the unpublished
//! examples crate so that no published crate refers to a file outside itself.

use std::collections::BTreeSet;
use std::time::Duration;

use integrations_core::ErrorKind;
use integrations_core::metrics::MetricsRegistry;
use integrations_outbox::{OutboxCounts, OutboxMetrics};

const RULES: &str = include_str!("../../docs/alerts/integrations.rules.yml");

/// Every `integration_*`/`outbox_*` identifier inside the rules' `expr:` blocks.
fn series_in_rules(rules: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut in_expr = false;
    for line in rules.lines() {
        let t = line.trim_start();
        if t.starts_with('#') {
            continue;
        }
        if let Some(rest) = t.strip_prefix("expr:") {
            in_expr = true;
            collect(rest, &mut names);
        } else if ["for:", "labels:", "annotations:", "- alert:", "- name:"]
            .iter()
            .any(|k| t.starts_with(k))
        {
            in_expr = false;
        } else if in_expr {
            collect(t, &mut names);
        }
    }
    names
}

fn collect(expr: &str, names: &mut BTreeSet<String>) {
    // Drop quoted label values first: they are not series names.
    let mut unquoted = String::new();
    let mut quoted = false;
    for c in expr.chars() {
        if c == '"' {
            quoted = !quoted;
        } else if !quoted {
            unquoted.push(c);
        }
    }
    for token in unquoted.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
        if token.starts_with("integration_") || token.starts_with("outbox_") {
            names.insert(token.to_owned());
        }
    }
}

/// Families declared with `# TYPE name kind` in `text`.
fn declared(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_once(' '))
        .map(|(n, k)| (n.to_owned(), k.to_owned()))
        .collect()
}

#[test]
fn every_series_the_alert_rules_use_is_rendered() {
    let registry = MetricsRegistry::new();
    let m = registry.integration("stripe");
    m.record_call();
    m.record_operation_failure("confirm", ErrorKind::Timeout, Duration::from_secs(3));
    let outbox = OutboxMetrics::new();
    outbox.observe_counts(&OutboxCounts::default());
    let text = format!(
        "{}{}",
        registry.render_prometheus(),
        outbox.render_prometheus()
    );
    let families = declared(&text);
    let used = series_in_rules(RULES);
    assert!(
        used.len() >= 10,
        "the parser found too few series: {used:?}"
    );
    for name in &used {
        let found = families.iter().any(|(family, kind)| {
            family == name
                || (kind == "histogram"
                    && ["_bucket", "_sum", "_count"]
                        .iter()
                        .any(|s| *name == format!("{family}{s}")))
        });
        assert!(
            found,
            "the rules use `{name}`, which no renderer writes; families: {families:?}"
        );
    }
    // And the label names the rules group by are the ones the renderers write.
    for label in [
        "provider=\"",
        "operation=\"",
        "kind=\"",
        "state=\"",
        "le=\"",
    ] {
        assert!(text.contains(label), "no `{label}` in\n{text}");
    }
}

#[test]
fn the_rule_parser_sees_renamed_series() {
    let rules = "groups:\n  - name: x\n    rules:\n      - alert: A\n        expr: |\n          rate(integration_calls_totals{kind=\"outbox_x\"}[5m])\n        for: 1m\n        annotations:\n          summary: \"outbox_not_a_series\"\n";
    let used = series_in_rules(rules);
    assert_eq!(
        used.into_iter().collect::<Vec<_>>(),
        ["integration_calls_totals"]
    );
}
