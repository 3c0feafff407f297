//! `http::default_client()` is safe to use from one runtime after another: every
//! `#[tokio::test]` builds its own runtime, and a pooled connection whose task died with an
//! earlier runtime must never be handed to a later one ("runtime dropped the dispatch task").

use std::net::SocketAddr;

use integrations_core::http;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// A keep-alive HTTP/1.1 server that answers every request with `200 ok`.
async fn serve(listener: TcpListener) {
    loop {
        let Ok((mut sock, _)) = listener.accept().await else {
            return;
        };
        tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            let mut seen = Vec::new();
            loop {
                let Ok(n) = sock.read(&mut buf).await else {
                    return;
                };
                if n == 0 {
                    return;
                }
                seen.extend_from_slice(&buf[..n]);
                while let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
                    seen.drain(..end + 4);
                    let reply = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                    if sock.write_all(reply).await.is_err() {
                        return;
                    }
                }
            }
        });
    }
}

/// Starts the server on its own thread and runtime, which outlive the clients' runtimes (as
/// wiremock's pooled servers do).
fn server_on_its_own_thread() -> SocketAddr {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("server runtime");
        rt.block_on(async move {
            let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
            tx.send(listener.local_addr().expect("addr"))
                .expect("send addr");
            serve(listener).await;
        });
    });
    rx.recv().expect("server address")
}

fn one_request_in_a_fresh_runtime(addr: SocketAddr) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let resp = http::default_client()
            .get(format!("http://{addr}/ping"))
            .send()
            .await
            .expect("a fresh runtime must not be handed a dead runtime's pooled connection");
        assert_eq!(resp.text().await.expect("body"), "ok");
    });
}

#[test]
fn default_client_survives_one_runtime_after_another() {
    // Each runtime leaves an idle pooled connection to `addr` behind when it is dropped; the next
    // runtime must not be given it.
    let addr = server_on_its_own_thread();
    for _ in 0..20 {
        one_request_in_a_fresh_runtime(addr);
    }
}

#[test]
fn default_client_survives_parallel_runtimes_coming_and_going() {
    // What `cargo test` does: several threads, each building a runtime per test, all sending
    // through the one default client to the same server.
    let addr = server_on_its_own_thread();
    let threads: Vec<_> = (0..4)
        .map(|_| {
            std::thread::spawn(move || {
                for _ in 0..25 {
                    let rt = tokio::runtime::Builder::new_multi_thread()
                        .worker_threads(2)
                        .enable_all()
                        .build()
                        .expect("runtime");
                    rt.block_on(async {
                        for _ in 0..5 {
                            let resp = http::default_client()
                                .get(format!("http://{addr}/p"))
                                .send()
                                .await
                                .expect("no request may land on a dropped runtime's connection");
                            assert_eq!(resp.text().await.expect("body"), "ok");
                        }
                    });
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("client thread");
    }
}
