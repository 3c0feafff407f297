//! The HTTP limits: a client trickling its headers is cut off, and shutdown is not held up by a
//! connection that never finishes (before: `axum::serve` with no deadlines waited forever).

use std::time::{Duration, Instant};

use integrations_order_service::auth::ApiKeys;
use integrations_order_service::http_server::HttpLimits;
use integrations_order_service::server::{Server, ServerConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn server(limits: HttpLimits) -> Server {
    let (keys, _) = ApiKeys::generate();
    let mut config = ServerConfig::local(keys);
    config.http_limits = limits;
    Server::start(config).await.expect("server starts")
}

/// Sends a request line and one header, never the blank line that ends the headers.
async fn slowloris(server: &Server) -> TcpStream {
    let mut s = TcpStream::connect(server.addr()).await.unwrap();
    s.write_all(b"GET /api/monitoring/health HTTP/1.1\r\nHost: localhost\r\n")
        .await
        .unwrap();
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_that_never_finish_close_the_connection() {
    let server = server(HttpLimits::default().header_timeout(Duration::from_millis(300))).await;
    let mut s = slowloris(&server).await;
    let started = Instant::now();
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf)).await;
    assert!(read.is_ok(), "the connection was still open after 5 s");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_is_not_held_up_by_a_connection_that_never_finishes() {
    let server = server(
        HttpLimits::default()
            .header_timeout(Duration::from_secs(60))
            .shutdown_grace(Duration::from_millis(300)),
    )
    .await;
    let _held = slowloris(&server).await;
    // Let the server take the connection before asking it to stop.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = Instant::now();
    tokio::time::timeout(Duration::from_secs(10), server.shutdown())
        .await
        .expect("shutdown waited for the slow client")
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_bound_wait_until_one_closes() {
    let server = server(
        HttpLimits::default()
            .max_connections(1)
            .header_timeout(Duration::from_millis(500)),
    )
    .await;
    let _first = slowloris(&server).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    // The second is accepted by the kernel but not served until the first is cut off.
    let started = Instant::now();
    let client = reqwest::Client::new();
    let resp = client
        .get(format!("{}/api/monitoring/health", server.base_url()))
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "{}", resp.status());
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "served at once: the bound was not applied ({:?})",
        started.elapsed()
    );
    server.shutdown().await.unwrap();
}
