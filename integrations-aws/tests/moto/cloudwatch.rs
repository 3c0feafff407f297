use std::time::Duration;

use integrations_aws::cloudwatch::{
    CloudWatchLogs, CloudWatchLogsLayer, CloudWatchMetrics, LogEvent, LogShipperConfig, MetricDatum,
};
use integrations_core::metrics::MetricsRegistry;
use integrations_core::resilience::Policy;
use integrations_core::{Error, ErrorKind};
use serde_json::{Value, json};
use tracing_subscriber::layer::SubscriberExt;

use crate::support::{moto_or_skip, unique};

async fn all_messages(logs: &CloudWatchLogs, group: &str, stream: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut body =
            json!({"logGroupName": group, "logStreamName": stream, "startFromHead": true});
        if let Some(t) = &token {
            body["nextToken"] = json!(t);
        }
        let r = logs.call("GetLogEvents", &body).await.unwrap();
        let page = r["events"].as_array().unwrap();
        out.extend(
            page.iter()
                .map(|e| e["message"].as_str().unwrap().to_owned()),
        );
        let next = r["nextForwardToken"].as_str().map(str::to_owned);
        if page.is_empty() || next.is_none() || next == token {
            return out;
        }
        token = next;
    }
}

#[tokio::test]
async fn put_log_events_sorts_and_batches() {
    let m = moto_or_skip!();
    let logs = CloudWatchLogs::new(&m.config());
    let (group, stream) = (unique("shop"), "api-1");
    logs.ensure_stream(&group, stream).await.unwrap();
    logs.ensure_stream(&group, stream)
        .await
        .expect("idempotent");
    let now = integrations_core::clock::unix_seconds(std::time::SystemTime::now()) * 1000;
    // Out of order on purpose; more than one batch by count.
    let events: Vec<LogEvent> = (0..10_050)
        .rev()
        .map(|i| LogEvent::new(now - 60_000 + i, format!("line {i:05}")))
        .collect();
    let out = logs.put_log_events(&group, stream, events).await.unwrap();
    assert_eq!(out.calls, 2);
    assert_eq!(out.sent, 10_050);
    assert_eq!(out.rejected, 0);
    let got = all_messages(&logs, &group, stream).await;
    assert_eq!(got.len(), 10_050);
    assert_eq!(got[0], "line 00000");
    assert_eq!(got[10_049], "line 10049");
}

#[tokio::test]
async fn tracing_layer_ships_events_in_the_background() {
    let m = moto_or_skip!();
    let logs = CloudWatchLogs::new(&m.config());
    let group = unique("svc");
    let (layer, shipper) = CloudWatchLogsLayer::new(
        logs.clone(),
        &group,
        "worker",
        LogShipperConfig::default().flush_interval(Duration::from_secs(3600)),
    );
    let handle = layer.handle();
    let task = tokio::spawn(shipper.run());
    let subscriber = tracing_subscriber::registry().with(layer);
    {
        let _g = tracing::subscriber::set_default(subscriber);
        tracing::info!(order_id = 42, paid = true, "order paid");
        tracing::debug!("below the level, not shipped");
        tracing::warn!(amount_minor = 1999_i64, "slow provider");
    }
    assert!(handle.flush().await);
    assert_eq!(handle.stats().shipped(), 2);
    assert_eq!(handle.stats().dropped(), 0);
    let got = all_messages(&logs, &group, "worker").await;
    assert_eq!(got.len(), 2, "{got:?}");
    let first: Value = serde_json::from_str(&got[0]).unwrap();
    assert_eq!(first["message"], "order paid");
    assert_eq!(first["order_id"], 42);
    assert_eq!(first["level"], "INFO");
    drop(handle);
    task.abort();
}

#[tokio::test]
async fn metric_data_and_snapshot_are_accepted() {
    let m = moto_or_skip!();
    let cw = CloudWatchMetrics::new(&m.config());
    let ns = unique("Shop");
    let data: Vec<MetricDatum> = (0..1500)
        .map(|i| {
            MetricDatum::new("OrdersPlaced", f64::from(i % 7), "Count")
                .dimension("Shard", format!("{}", i % 3))
        })
        .collect();
    assert_eq!(
        cw.put_metric_data(&ns, &data).await.unwrap(),
        2,
        "1000 + 500"
    );

    // A registry with one integration that saw a success and a failure.
    let registry = MetricsRegistry::new();
    let policy = Policy::builder("stripe").metrics(&registry).build();
    let _ = policy.call("x", |_| async { Ok::<_, Error>(()) }).await;
    let _ = policy
        .call("x", |_| async {
            Err::<(), _>(Error::invalid_input("f", "m"))
        })
        .await;
    assert_eq!(
        cw.publish_snapshot(&ns, &registry.snapshot())
            .await
            .unwrap(),
        1
    );

    let e = cw.put_metric_data("AWS/EC2", &data[..1]).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
}
