//! Serving the router with the limits `axum::serve` does not offer: a deadline for request
//! headers (a slowloris client that trickles them is cut off), a deadline for a whole request,
//! a bound on open connections, and a bounded graceful shutdown (a client that never finishes
//! cannot hold the service up). Written on hyper's own connection builder, the layer `axum`
//! itself uses, because `axum::serve` exposes none of these settings.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, oneshot};
use tokio::task::JoinSet;
use tower_http::timeout::TimeoutLayer;

/// The HTTP limits of the service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct HttpLimits {
    /// A request's headers must arrive within this (default 10 s); the connection is closed
    /// otherwise.
    pub header_timeout: Duration,
    /// A whole request — body and handler — must be answered within this (default 30 s);
    /// `408 Request Timeout` otherwise.
    pub request_timeout: Duration,
    /// Connections served at once (default 1,024); further ones wait in the listen backlog.
    pub max_connections: usize,
    /// On shutdown, how long requests in flight may finish (default 10 s) before their
    /// connections are closed.
    pub shutdown_grace: Duration,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            header_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            max_connections: 1024,
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

impl HttpLimits {
    /// With this header deadline.
    pub fn header_timeout(mut self, d: Duration) -> Self {
        self.header_timeout = d;
        self
    }

    /// With this request deadline.
    pub fn request_timeout(mut self, d: Duration) -> Self {
        self.request_timeout = d;
        self
    }

    /// With this connection bound (at least 1).
    pub fn max_connections(mut self, n: usize) -> Self {
        self.max_connections = n.max(1);
        self
    }

    /// With this shutdown grace.
    pub fn shutdown_grace(mut self, d: Duration) -> Self {
        self.shutdown_grace = d;
        self
    }
}

/// Serves `router` on `listener` under `limits` until `stopped` fires, then shuts down within
/// the grace.
pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    limits: HttpLimits,
    stopped: oneshot::Receiver<()>,
) -> io::Result<()> {
    let app = router.layer(TimeoutLayer::with_status_code(
        StatusCode::REQUEST_TIMEOUT,
        limits.request_timeout,
    ));
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    let mut connections = JoinSet::new();
    let mut stopped = std::pin::pin!(stopped);
    loop {
        let permit = tokio::select! {
            p = Arc::clone(&permits).acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
            _ = &mut stopped => break,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
            _ = &mut stopped => break,
        };
        let connection = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_timeout)
            .serve_connection(TokioIo::new(stream), TowerToHyperService::new(app.clone()));
        let connection = graceful.watch(connection);
        connections.spawn(async move {
            let _permit = permit;
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "connection ended");
            }
        });
        while connections.try_join_next().is_some() {}
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(limits.shutdown_grace) => {
            tracing::warn!(open = connections.len(), "connections still open after the shutdown grace: closing them");
        }
    }
    connections.abort_all();
    Ok(())
}
