//! The plumbing every provider sandbox is built on (feature `sandbox`): one in-process HTTP/1
//! server runner, one [`Fault`] type, a bounded request recorder. A provider's sandbox keeps only
//! its protocol — routes, state, error bodies — as a [`SandboxService`].
//!
//! | item | role |
//! |---|---|
//! | [`SandboxService`] | a provider's protocol: name a request's operation, answer it, render a fault in the provider's error shape |
//! | [`SandboxServer`] | binds `127.0.0.1:0`, serves the service with hyper, applies faults, records requests |
//! | [`Fault`], [`FaultRule`], [`Faults`] | 500, 503, 429 with a retry hint, hang, drop after acting; N times from request K, per operation |
//! | [`RequestLog`], [`RecordedRequest`], [`RequestTotals`] | the last N requests in full (credentials stripped) and exact totals |
//!
//! Served with hyper directly, not through a router, because two faults need the connection
//! itself: [`Fault::DropAfterAccept`] processes the request and then closes the connection
//! without an answer, and [`Fault::Hang`] holds it past any client timeout.
//!
//! ```
//! use std::sync::Arc;
//! use integrations_testkit::sandbox::{
//!     Fault, SandboxRequest, SandboxResponse, SandboxServer, SandboxService, ServerOptions,
//! };
//!
//! #[derive(Debug)]
//! struct Echo;
//!
//! #[async_trait::async_trait]
//! impl SandboxService for Echo {
//!     async fn handle(&self, req: SandboxRequest) -> SandboxResponse {
//!         SandboxResponse::new(200).with_body(req.body)
//!     }
//!     fn fault_response(&self, fault: Fault, _req: &SandboxRequest) -> SandboxResponse {
//!         SandboxResponse::json(fault.status(), &serde_json::json!({ "error": fault.name() }))
//!     }
//! }
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let server = SandboxServer::start(Arc::new(Echo), ServerOptions::default()).await.unwrap();
//! server.faults().fail_next(1, Fault::ServerError);
//! assert_eq!(server.requests().count(), 0);
//! # });
//! ```

mod fault;
mod recorder;
mod server;

pub use fault::{Fault, FaultRule, Faults};
pub use recorder::{DEFAULT_RETENTION, RecordedRequest, RequestLog, RequestTotals};
pub use server::{
    DEFAULT_BODY_LIMIT, DEFAULT_HANG, SandboxRequest, SandboxResponse, SandboxServer,
    SandboxService, ServerOptions,
};

impl Fault {
    /// The status a fault answers with (`0` for the two that answer nothing).
    pub const fn status(&self) -> u16 {
        match self {
            Fault::ServerError => 500,
            Fault::Unavailable => 503,
            Fault::RateLimited { .. } => 429,
            Fault::Hang | Fault::DropAfterAccept => 0,
        }
    }
}
