//! Order throughput while `GET /metrics` is flooded: 500 orders created through the API on a
//! loopback [`Server`] by 8 concurrent clients, once alone and once while 16 tasks request
//! `/metrics` as fast as they can. Prints orders/s and p99 of both runs (run with
//! `--nocapture` to read them); asserts only that every order was created, never on timings.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use integrations_order_service::auth::ApiKeys;
use integrations_order_service::server::{Server, ServerConfig};
use serde_json::json;

const ORDERS: usize = 500;
const CREATORS: usize = 8;
const FLOODERS: usize = 16;

fn order_body() -> Vec<u8> {
    serde_json::to_vec(&json!({
        "customerEmail": "john@example.com", "customerName": "John Doe", "currency": "usd",
        "items": [{"id": "item_1", "name": "Product A", "quantity": 2, "price": "29.99"}],
        "totalAmount": "59.98"
    }))
    .unwrap()
}

async fn post_json(
    http: &reqwest::Client,
    url: &str,
    key: &str,
    body: Vec<u8>,
) -> reqwest::Response {
    http.post(url)
        .header("x-api-key", key)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap()
}

struct Run {
    created: usize,
    per_sec: f64,
    p99: Duration,
    flood_requests: u64,
}

async fn run(server: &Server, key: &str, flood: bool) -> Run {
    let http = reqwest::Client::new();
    let base = server.base_url();
    let stop = Arc::new(AtomicBool::new(false));
    let flooded = Arc::new(AtomicU64::new(0));
    let mut flooders = Vec::new();
    if flood {
        for _ in 0..FLOODERS {
            let (http, base, key) = (http.clone(), base.clone(), key.to_owned());
            let (stop, flooded) = (Arc::clone(&stop), Arc::clone(&flooded));
            flooders.push(tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let r = http
                        .get(format!("{base}/metrics"))
                        .header("x-api-key", &key)
                        .send()
                        .await;
                    if let Ok(r) = r {
                        let _ = r.bytes().await;
                        flooded.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut creators = Vec::new();
    for _ in 0..CREATORS {
        let (http, base, key, next) = (
            http.clone(),
            base.clone(),
            key.to_owned(),
            Arc::clone(&next),
        );
        creators.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            while next.fetch_add(1, Ordering::Relaxed) < ORDERS as u64 {
                let t = Instant::now();
                let resp =
                    post_json(&http, &format!("{base}/api/orders"), &key, order_body()).await;
                let status = resp.status();
                let _ = resp.bytes().await;
                assert_eq!(status.as_u16(), 201, "order creation failed");
                latencies.push(t.elapsed());
            }
            latencies
        }));
    }
    let mut latencies = Vec::new();
    for c in creators {
        latencies.extend(c.await.unwrap());
    }
    let elapsed = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    for f in flooders {
        f.await.unwrap();
    }
    latencies.sort();
    let p99 = latencies[(latencies.len() * 99 / 100).min(latencies.len() - 1)];
    Run {
        created: latencies.len(),
        per_sec: latencies.len() as f64 / elapsed.as_secs_f64(),
        p99,
        flood_requests: flooded.load(Ordering::Relaxed),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn order_throughput_with_and_without_a_metrics_flood() {
    let (keys, key) = ApiKeys::generate();
    let server = Server::start(ServerConfig::local(keys)).await.unwrap();
    let deadline = Duration::from_secs(120);
    let alone = tokio::time::timeout(deadline, run(&server, &key, false))
        .await
        .expect("orders alone within two minutes");
    let flooded = tokio::time::timeout(deadline, run(&server, &key, true))
        .await
        .expect("orders under the flood within two minutes");
    eprintln!(
        "orders alone: {:.0}/s, p99 {:?}; under a /metrics flood ({FLOODERS} tasks, {} requests): {:.0}/s, p99 {:?}",
        alone.per_sec, alone.p99, flooded.flood_requests, flooded.per_sec, flooded.p99
    );
    assert_eq!(alone.created, ORDERS);
    assert_eq!(flooded.created, ORDERS);
    server.shutdown().await.unwrap();
}

/// The value of `name{provider="stripe"}` in a `/metrics` text.
fn stripe_counter(text: &str, name: &str) -> Option<u64> {
    let prefix = format!("{name}{{provider=\"stripe\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.trim().parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_the_stripe_events_made_and_taken() {
    let (keys, key) = ApiKeys::generate();
    let server = Server::start(ServerConfig::local(keys)).await.unwrap();
    let (http, base) = (reqwest::Client::new(), server.base_url());
    let counts = || async {
        let text = http
            .get(format!("{base}/metrics"))
            .header("x-api-key", &key)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        (
            stripe_counter(&text, "order_service_webhook_events_total").expect("taken"),
            stripe_counter(&text, "order_service_sandbox_events_total").expect("made"),
        )
    };
    assert_eq!(counts().await, (0, 0));
    for _ in 0..3 {
        let created: serde_json::Value =
            post_json(&http, &format!("{base}/api/orders"), &key, order_body())
                .await
                .json()
                .await
                .unwrap();
        let order = &created["data"]["order"];
        let confirm = json!({
            "orderId": order["id"],
            "paymentIntentId": order["paymentIntentId"],
            "paymentMethod": "pm_card_visa",
        });
        let url = format!("{base}/api/payments/confirm");
        let paid: serde_json::Value =
            post_json(&http, &url, &key, confirm.to_string().into_bytes())
                .await
                .json()
                .await
                .unwrap();
        assert_eq!(paid["data"]["order"]["status"], "paid", "{paid}");
    }
    // Made before the API answered: every order's events are counted now.
    let (_, made) = counts().await;
    assert!(
        made >= 6,
        "an intent created and paid per order at least: {made}"
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (taken, now_made) = counts().await;
        assert_eq!(now_made, made, "no order was made since");
        assert!(taken <= made, "more taken ({taken}) than made ({made})");
        if taken == made {
            break;
        }
        assert!(Instant::now() < deadline, "{taken} of {made} taken in 30 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.shutdown().await.unwrap();
}
