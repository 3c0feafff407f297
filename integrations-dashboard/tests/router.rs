//! The router as a mounting service sees it: nested under a prefix, the page and its charts
//! from real samples, the JSON behind them, and a replay that only a same-origin request with
//! the header can trigger.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt as _;
use integrations_core::metrics::MetricsRegistry;
use integrations_core::{Error, ErrorKind};
use integrations_dashboard::{Dashboard, REPLAY_HEADER, REPLAY_HEADER_VALUE};
use integrations_outbox::{ErrorRecord, FailOutcome, InMemoryOutbox, NewJob, OutboxStore};
use serde_json::Value;
use tower::ServiceExt as _;

async fn call(app: &Router, req: Request<Body>) -> (StatusCode, String) {
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

fn get(path: &str) -> Request<Body> {
    Request::get(path).body(Body::empty()).unwrap()
}

fn replay(id: &str) -> axum::http::request::Builder {
    Request::post(format!("/ops/dead-letters/{id}/replay"))
}

/// One event whose only job is dead-lettered at once.
async fn dead_letter(outbox: &Arc<InMemoryOutbox>) -> String {
    outbox
        .record_event(
            "evt_1",
            vec![NewJob::new("email.confirmation", Value::Null)],
        )
        .await
        .unwrap();
    let claimed = outbox
        .claim("w", 1, Duration::from_secs(30))
        .await
        .unwrap()
        .pop()
        .unwrap();
    let err = Error::unavailable("down").with_provider("sendgrid");
    let outcome = outbox
        .fail(
            &claimed.job.id,
            &claimed.lease,
            ErrorRecord::from(&err),
            None,
        )
        .await
        .unwrap();
    assert!(matches!(outcome, FailOutcome::DeadLettered { .. }));
    claimed.job.id.as_str().to_owned()
}

/// Polls until the dashboard holds `n` samples.
async fn samples(d: &Dashboard, n: usize) {
    for _ in 0..200 {
        if d.samples().len() >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no {n} samples after 10 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_charts_samples_and_replay_is_guarded() {
    let registry = MetricsRegistry::new();
    let outbox = Arc::new(InMemoryOutbox::new());
    let id = dead_letter(&outbox).await;
    let dashboard = Dashboard::builder()
        .metrics(&registry)
        .outbox(Arc::clone(&outbox))
        .sample_every(Duration::from_secs(1))
        .history(Duration::from_secs(60))
        .title("Shop <ops>")
        .build()
        .unwrap();
    let mut rx = dashboard.subscribe();
    let m = registry.integration("stripe");
    for ms in [40, 60, 80] {
        m.record_call();
        m.record_success(Duration::from_millis(ms));
    }
    m.record_call();
    m.record_failure(ErrorKind::Timeout, Duration::from_millis(900));
    samples(&dashboard, 1).await;
    // An idle interval: the integration has no latency point there (a gap, not a 0).
    samples(&dashboard, 2).await;
    let first = rx.recv().await.unwrap();
    let p = first
        .integration("stripe")
        .expect("the calls are in the first sample");
    assert_eq!((p.calls, p.successes, p.failures), (4, 3, 1));

    let app = Router::new().nest("/ops", dashboard.router());
    let (status, html) = call(&app, get("/ops")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        html.contains("<title>Shop &lt;ops&gt;</title>"),
        "title escaped"
    );
    assert!(
        html.contains("data-chart=\"latency-0\"") && html.contains("data-chart=\"outbox-depth\"")
    );
    assert!(
        !html.contains("http://") || !html.contains("src=\"http"),
        "no external asset"
    );
    assert!(
        !html.contains("<meta http-equiv=\"refresh\""),
        "no full reload"
    );
    // The marks of `series` in the first chart that has it.
    let marks = |series: &str| {
        let group = html
            .split(&format!("data-series=\"{series}\">"))
            .nth(1)
            .unwrap();
        group
            .split("</g>")
            .next()
            .unwrap()
            .matches(" data-t=")
            .count()
    };
    let held = dashboard.samples();
    let active = held
        .iter()
        .filter(|s| s.integration("stripe").is_some())
        .count();
    assert!(
        active >= 1 && held.len() > active,
        "an active and an idle sample"
    );
    assert!(
        marks("p50") >= 1 && marks("p50") <= active,
        "no p50 mark for idle intervals"
    );
    assert_eq!(marks("calls"), active, "a calls bar per active sample");
    assert!(html.contains(&format!("data-t=\"{}\" data-v=\"4\"/>", first.at_ms)));
    assert!(html.contains("Dead letters (1)") && html.contains(&format!("data-replay=\"{id}\"")));

    let (status, json) = call(&app, get("/ops/api/metrics")).await;
    assert_eq!(status, StatusCode::OK);
    let v: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["integrations"][0]["name"], "stripe");
    assert_eq!(v["integrations"][0]["calls"], 4);
    assert_eq!(v["outbox"]["dead"], 1);
    assert_eq!(v["deadLetters"][0]["jobId"], id.as_str());
    assert!(v["samples"].as_array().unwrap().len() >= 2);

    let (status, live) = call(&app, get("/ops/live")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(live.starts_with("<section id=\"integrations\"") && !live.contains("<html"));

    // A forged form post has no custom header; a cross-site fetch that adds one is refused.
    let (status, body) = call(&app, replay(&id).body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(body.contains(REPLAY_HEADER), "{body}");
    let cross = replay(&id)
        .header(REPLAY_HEADER, REPLAY_HEADER_VALUE)
        .header("sec-fetch-site", "cross-site")
        .body(Body::empty())
        .unwrap();
    assert_eq!(call(&app, cross).await.0, StatusCode::FORBIDDEN);
    assert_eq!(
        outbox.counts().await.unwrap().dead,
        1,
        "nothing replayed yet"
    );

    let same = || {
        replay(&id)
            .header(REPLAY_HEADER, REPLAY_HEADER_VALUE)
            .header("sec-fetch-site", "same-origin")
            .body(Body::empty())
            .unwrap()
    };
    let (status, body) = call(&app, same()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(outbox.counts().await.unwrap().dead, 0);
    assert_eq!(outbox.counts().await.unwrap().pending, 1);
    let (status, body) = call(&app, same()).await;
    assert_eq!(status, StatusCode::CONFLICT, "no longer dead: {body}");
    let unknown = replay("nope")
        .header(REPLAY_HEADER, REPLAY_HEADER_VALUE)
        .body(Body::empty())
        .unwrap();
    assert_eq!(call(&app, unknown).await.0, StatusCode::NOT_FOUND);

    // The read-only router shows the same page without the action.
    let ro = Router::new().nest("/ops", dashboard.read_only_router());
    let (status, _) = call(&ro, same()).await;
    assert!(status == StatusCode::NOT_FOUND || status == StatusCode::METHOD_NOT_ALLOWED);
    dashboard.shutdown().await;
}

#[tokio::test]
async fn the_builder_names_what_is_wrong() {
    let e = Dashboard::builder().build().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Configuration);
    assert!(e.to_string().contains("metrics"), "{e}");
    let r = MetricsRegistry::new();
    let e = Dashboard::builder()
        .metrics(&r)
        .sample_every(Duration::from_millis(5))
        .build()
        .unwrap_err();
    assert_eq!(e.field(), Some("sample_every"));
    let e = Dashboard::builder()
        .metrics(&r)
        .sample_every(Duration::from_secs(10))
        .history(Duration::from_secs(5))
        .build()
        .unwrap_err();
    assert_eq!(e.field(), Some("history"));
    // Dropping the dashboard stops its sampler; routers made before keep answering.
    let d = Dashboard::builder().metrics(&r).build().unwrap();
    let app = d.router();
    drop(d);
    assert_eq!(call(&app, get("/")).await.0, StatusCode::OK);
}

#[test]
fn building_outside_a_runtime_is_a_configuration_error() {
    let r = MetricsRegistry::new();
    let e = Dashboard::builder().metrics(&r).build().unwrap_err();
    assert!(e.to_string().contains("runtime"), "{e}");
}

#[tokio::test]
async fn shutdown_takes_a_last_sample_and_dropping_stops_the_sampler() {
    let r = MetricsRegistry::new();
    let d = Dashboard::builder()
        .metrics(&r)
        .sample_every(Duration::from_secs(3600))
        .history(Duration::from_secs(7200))
        .build()
        .unwrap();
    let mut rx = d.subscribe();
    r.integration("sheets").record_call();
    d.shutdown().await;
    let last = rx.recv().await.expect("the last sample");
    assert_eq!(last.integration("sheets").map(|p| p.calls), Some(1));

    let d = Dashboard::builder().metrics(&r).build().unwrap();
    let mut rx = d.subscribe();
    drop(d);
    let closed = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await;
    assert!(
        matches!(
            closed,
            Ok(Err(tokio::sync::broadcast::error::RecvError::Closed))
        ),
        "the sampler and its channel are gone: {closed:?}"
    );
}
