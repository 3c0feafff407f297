//! Quota: 10,000 orders in one minute within Google's 60 writes a minute, on tokio's paused
//! clock; the sandbox's 429 shape; 429s retried with backoff.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::{fast_builder, keys, requests_to};
use integrations_core::ErrorKind;
use integrations_core::Policy;
use integrations_core::metrics::MetricsRegistry;
use integrations_core::provider::{Row, SheetsSink};
use integrations_core::resilience::RetryPolicy;
use integrations_sheets::sandbox::{Endpoint, Fault, Sandbox};
use integrations_sheets::{A1Range, PROVIDER};
use tokio::task::JoinSet;
use tokio::time::Instant;

const ORDERS: u64 = 10_000;

#[tokio::test(start_paused = true)]
async fn ten_thousand_orders_in_a_minute_fit_sixty_writes() {
    // Google's published per-user limits: 60 writes and 60 reads a minute (the sandbox's defaults).
    let sandbox = Sandbox::start().await.unwrap();
    sandbox.add_sheet(sandbox.spreadsheet_id(), "Orders");
    // The default builder: default write/read policies (60 a minute) and batching.
    let sink = sandbox.client_builder().build().unwrap();

    let start = Instant::now();
    let spacing = Duration::from_secs(60) / u32::try_from(ORDERS).unwrap();
    let mut orders = JoinSet::new();
    for i in 0..ORDERS {
        let sink = sink.clone();
        let at = start + spacing * u32::try_from(i).unwrap();
        orders.spawn(async move {
            tokio::time::sleep_until(at).await;
            let row = Row::new(format!("order-{i}/paid"))
                .cell("EUR")
                .cell(i64::try_from(i).unwrap() * 7);
            sink.append_rows("Orders", vec![row]).await
        });
    }
    let mut appended = 0;
    while let Some(done) = orders.join_next().await {
        let outcome = done.unwrap().unwrap();
        appended += outcome.appended;
    }
    sink.flush().await.unwrap();
    let elapsed = start.elapsed();

    let stats = sandbox.stats();
    let appends = requests_to(&sandbox, Endpoint::Append);
    let rows_per_request = ORDERS as f64 / appends.len() as f64;
    let largest = appends.iter().map(|r| r.rows).max().unwrap_or(0);
    eprintln!(
        "synced {ORDERS} orders in {elapsed:?} (virtual): {} write requests ({} appends, {:.1} rows per append, largest {largest}), {} read requests, {} 429s",
        stats.write_requests,
        appends.len(),
        rows_per_request,
        stats.read_requests,
        stats.quota_rejections,
    );
    assert_eq!(appended, ORDERS as usize);
    assert!(
        stats.write_requests <= 60,
        "{} write requests",
        stats.write_requests
    );
    assert_eq!(stats.quota_rejections, 0);
    assert!(rows_per_request >= 100.0, "{rows_per_request}");
    assert!(
        elapsed < Duration::from_secs(65),
        "the last order waited at most one batch delay: {elapsed:?}"
    );
    let keys = keys(&sandbox, "Orders");
    assert_eq!(keys.len(), ORDERS as usize);
    assert_eq!(
        keys.iter().collect::<HashSet<_>>().len(),
        ORDERS as usize,
        "no duplicate rows"
    );
}

#[tokio::test(start_paused = true)]
async fn writes_beyond_the_quota_get_googles_429() {
    let sandbox = Sandbox::builder()
        .write_requests_per_minute(2)
        .start()
        .await
        .unwrap();
    sandbox.add_sheet(sandbox.spreadsheet_id(), "Orders");
    // No client-side limiter and no retries, to see the server's answer.
    let bare = Policy::builder(PROVIDER)
        .retry(RetryPolicy::none())
        .no_circuit_breaker()
        .metrics(&MetricsRegistry::new())
        .build();
    let client = fast_builder(&sandbox)
        .with_write_policy(bare)
        .build_client()
        .unwrap();
    let range = A1Range::cell("Orders", 0, 1);
    let row = vec![vec![integrations_core::provider::Cell::from("k")]];
    client.update(&range, &row).await.unwrap();
    client.update(&range, &row).await.unwrap();
    let e = client.update(&range, &row).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::RateLimited);
    assert_eq!(e.status(), Some(429));
    assert_eq!(e.code(), Some("RATE_LIMIT_EXCEEDED"));
    assert!(
        e.message().contains("Write requests per minute per user"),
        "{e}"
    );
    assert!(e.is_retryable() && e.is_failover_safe());
    assert_eq!(sandbox.stats().quota_rejections, 1);
    // The window refills after a minute (on the paused clock).
    tokio::time::sleep(Duration::from_secs(60)).await;
    client.update(&range, &row).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_429_is_retried_with_backoff() {
    let sandbox = Sandbox::start().await.unwrap();
    sandbox.add_sheet(sandbox.spreadsheet_id(), "Orders");
    let sink = sandbox.client_builder().build().unwrap();
    sandbox.fail_next_on(
        Endpoint::Append,
        2,
        Fault::RateLimited { retry_after: None },
    );
    let t0 = Instant::now();
    let out = sink
        .append_rows("Orders", vec![Row::new("order-1/paid").cell(1_i64)])
        .await
        .unwrap();
    assert_eq!(out.appended, 1);
    assert_eq!(keys(&sandbox, "Orders"), ["order-1/paid"]);
    assert_eq!(sink.client().write_policy().metrics().retries(), 2);
    assert!(
        t0.elapsed() >= Duration::from_secs(2),
        "waited the batch delay and backed off: {:?}",
        t0.elapsed()
    );
}

#[tokio::test(start_paused = true)]
async fn the_default_write_limiter_spaces_writes_to_sixty_a_minute() {
    let sandbox = Sandbox::start().await.unwrap();
    let client = sandbox.client_builder().build_client().unwrap();
    let range = A1Range::cell("Sheet1", 0, 1);
    let row = vec![vec![integrations_core::provider::Cell::from("k")]];
    let t0 = Instant::now();
    for _ in 0..61 {
        client.update(&range, &row).await.unwrap();
    }
    // 61 writes need a full minute between the first and the last, and the sandbox (60 a minute,
    // fixed windows) never refused one.
    assert!(
        t0.elapsed() >= Duration::from_secs(60),
        "{:?}",
        t0.elapsed()
    );
    assert_eq!(sandbox.stats().quota_rejections, 0);
}
