use integrations_aws::cloudwatch::{CloudWatchLogs, CloudWatchMetrics, LogEvent, MetricDatum};
use integrations_core::ErrorKind;
use serde_json::Value;
use wiremock::matchers::{header, method};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::{config, json_error, xml_error};

fn form(body: &[u8]) -> Vec<(String, String)> {
    url::form_urlencoded::parse(body).into_owned().collect()
}

#[tokio::test]
async fn put_metric_data_is_batched_by_1000() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_string("<PutMetricDataResponse/>"))
        .expect(3)
        .mount(&server)
        .await;
    let data: Vec<MetricDatum> = (0..2500)
        .map(|i| MetricDatum::new("Orders", f64::from(i), "Count"))
        .collect();
    let calls = CloudWatchMetrics::new(&config(&server.uri()))
        .put_metric_data("Shop", &data)
        .await
        .unwrap();
    assert_eq!(calls, 3);
    let reqs = server.received_requests().await.unwrap();
    let counts: Vec<usize> = reqs
        .iter()
        .map(|r| {
            form(&r.body)
                .iter()
                .filter(|(k, _)| k.ends_with(".MetricName"))
                .count()
        })
        .collect();
    assert_eq!(counts, [1000, 1000, 500]);
    let first = form(&reqs[0].body);
    assert_eq!(
        &first[..3],
        &[
            ("Action".to_owned(), "PutMetricData".to_owned()),
            ("Version".to_owned(), "2010-08-01".to_owned()),
            ("Namespace".to_owned(), "Shop".to_owned()),
        ]
    );
    assert!(
        reqs[0].headers["authorization"]
            .to_str()
            .unwrap()
            .contains("/us-east-1/monitoring/aws4_request")
    );
}

#[tokio::test]
async fn metrics_throttling_is_rate_limited() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(xml_error(400, "cloudwatch_throttling.xml"))
        .mount(&server)
        .await;
    let e = CloudWatchMetrics::new(&config(&server.uri()))
        .put_metric_data("Shop", &[MetricDatum::new("Orders", 1.0, "Count")])
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::RateLimited);
    assert_eq!(e.request_id(), Some("b5b6f1a2-4c2e-4b8f-9d3a-6e1f0c2d7a88"));
}

#[tokio::test]
async fn put_log_events_is_chronological_and_batched() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(header("x-amz-target", "Logs_20140328.PutLogEvents"))
        .and(header("content-type", "application/x-amz-json-1.1"))
        .respond_with(ResponseTemplate::new(200).set_body_string(r#"{"nextSequenceToken":"1"}"#))
        .expect(3)
        .mount(&server)
        .await;
    // 12,000 small events out of order, then 5 × 300 KiB that must be truncated and split by bytes.
    let mut events: Vec<LogEvent> = (0..12_000)
        .rev()
        .map(|i| LogEvent::new(1_000 + i, format!("e{i}")))
        .collect();
    let big = "x".repeat(300 * 1024);
    events.extend((0..5).map(|i| LogEvent::new(50_000 + i, big.clone())));
    let out = CloudWatchLogs::new(&config(&server.uri()))
        .put_log_events("g", "s", events)
        .await
        .unwrap();
    assert_eq!(out.calls, 3);
    assert_eq!(out.sent, 12_005);
    let reqs = server.received_requests().await.unwrap();
    let mut all_ts = Vec::new();
    for r in &reqs {
        let v: Value = serde_json::from_slice(&r.body).unwrap();
        let evs = v["logEvents"].as_array().unwrap();
        assert!(evs.len() <= 10_000);
        let bytes: usize = evs
            .iter()
            .map(|e| e["message"].as_str().unwrap().len() + 26)
            .sum();
        assert!(bytes <= 1_048_576, "{bytes}");
        all_ts.extend(evs.iter().map(|e| e["timestamp"].as_i64().unwrap()));
        assert!(
            evs.iter()
                .all(|e| e["message"].as_str().unwrap().len() <= 256 * 1024 - 26)
        );
    }
    let mut sorted = all_ts.clone();
    sorted.sort_unstable();
    assert_eq!(all_ts, sorted, "chronological across and within batches");
}

#[tokio::test]
async fn logs_throttling_is_rate_limited() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(json_error(400, "logs_throttling.json", "logs-1"))
        .mount(&server)
        .await;
    let e = CloudWatchLogs::new(&config(&server.uri()))
        .put_log_events("g", "s", vec![LogEvent::new(1, "m")])
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::RateLimited);
    assert_eq!(e.code(), Some("ThrottlingException"));
}
