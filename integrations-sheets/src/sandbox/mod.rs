//! A local, in-process Google Sheets (feature `sandbox`): the OAuth token endpoint and the
//! `spreadsheets.values` endpoints over an in-memory grid, faithful enough to drive the real client.
//!
//! * `POST /token` verifies the service account's RS256 assertion against its registered public
//!   key and checks `aud`, `iat`/`exp` and `scope`, answering Google's
//!   `{"error":"invalid_grant","error_description":…}` on failure.
//! * `GET|PUT /v4/spreadsheets/{id}/values/{range}`, `POST …/values/{range}:append`,
//!   `POST …/values:batchUpdate`: A1 ranges, append's table detection and `INSERT_ROWS`,
//!   `updates` in the response, Google's error shape.
//! * A per-user, per-minute quota for reads and writes (fixed windows on tokio's clock, so a
//!   paused test clock drives it), answering `429 RESOURCE_EXHAUSTED` when used up.
//! * Fault injection: [`Sandbox::fail_next`] with [`Fault::ServerError`],
//!   [`Fault::RateLimited`], [`Fault::Hang`] and [`Fault::DropAfterAccept`] (the write happens,
//!   then the connection is closed without an answer).
//!
//! ```no_run
//! # async fn demo() -> integrations_core::Result<()> {
//! use integrations_sheets::sandbox::Sandbox;
//! use integrations_core::{Row, SheetsSink};
//!
//! let sandbox = Sandbox::start().await?;
//! sandbox.add_sheet(sandbox.spreadsheet_id(), "Orders");
//! let sink = sandbox.client_builder().build()?;
//! sink.append_rows("Orders", vec![Row::new("order-1/paid").cell("EUR").cell(1250)]).await?;
//! assert_eq!(sandbox.rows(sandbox.spreadsheet_id(), "Orders").unwrap().len(), 1);
//! # Ok(()) }
//! ```

mod grid;
mod keys;
mod server;
mod state;
mod token;
mod values;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use integrations_core::{Error, Result};
use jsonwebtoken::DecodingKey;
use serde_json::Value;

pub use keys::{TestServiceAccount, generate_service_account, test_service_account};
pub(crate) use server::Reply;

use crate::config::GoogleSheetsBuilder;
use grid::{InputOption, Sheet};
use state::{Config, State};

/// The spreadsheet every sandbox starts with (one sheet, `Sheet1`).
pub const SANDBOX_SPREADSHEET_ID: &str = "sandbox-spreadsheet";
/// The service account every sandbox starts with registered.
pub const SANDBOX_CLIENT_EMAIL: &str =
    "sandbox-writer@integrations-sandbox.iam.gserviceaccount.com";

/// A fault to inject into upcoming requests.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fault {
    /// `500 INTERNAL`, nothing changed.
    ServerError,
    /// `429 RESOURCE_EXHAUSTED`, nothing changed, with `Retry-After` when given.
    RateLimited {
        /// The `Retry-After` header to send.
        retry_after: Option<Duration>,
    },
    /// No answer for the sandbox's hang time (default one hour), nothing changed.
    Hang,
    /// The request is carried out, then the connection is closed without an answer: the client
    /// cannot tell whether it landed.
    DropAfterAccept,
}

/// Which endpoint a fault or a recorded request concerns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Endpoint {
    /// `POST /token`.
    Token,
    /// `values.get`.
    Get,
    /// `values.append`.
    Append,
    /// `values.update`.
    Update,
    /// `values.batchUpdate`.
    BatchUpdate,
}

/// Counters, for assertions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SandboxStats {
    /// Requests to the token endpoint.
    pub token_requests: u64,
    /// Access tokens issued.
    pub tokens_issued: u64,
    /// Authenticated read requests received (served or refused).
    pub read_requests: u64,
    /// Authenticated write requests received (served or refused).
    pub write_requests: u64,
    /// Requests refused with 429 because the per-minute quota was used up.
    pub quota_rejections: u64,
    /// Requests refused with 401.
    pub unauthenticated: u64,
    /// Faults injected.
    pub faults_injected: u64,
}

/// One values request the sandbox served (after auth, faults and quota).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RecordedRequest {
    /// The endpoint.
    pub endpoint: Endpoint,
    /// The range in the URL, decoded.
    pub range: Option<String>,
    /// The status answered (or that would have been, for a dropped connection).
    pub status: u16,
    /// Rows read or written.
    pub rows: usize,
}

/// Configures a [`Sandbox`] before starting it.
#[derive(Debug, Clone)]
#[must_use = "call `start()`"]
pub struct SandboxBuilder {
    config: Config,
}

impl SandboxBuilder {
    /// Write requests per minute per user (default 60, Google's published limit).
    pub fn write_requests_per_minute(mut self, n: u32) -> Self {
        self.config.write_requests_per_minute = n;
        self
    }
    /// Read requests per minute per user (default 60).
    pub fn read_requests_per_minute(mut self, n: u32) -> Self {
        self.config.read_requests_per_minute = n;
        self
    }
    /// Lifetime of issued access tokens (default 3599 s, as Google).
    pub fn token_lifetime(mut self, d: Duration) -> Self {
        self.config.token_lifetime = d;
        self
    }
    /// How long [`Fault::Hang`] holds a request (default one hour).
    pub fn hang_for(mut self, d: Duration) -> Self {
        self.config.hang_for = d;
        self
    }
    /// Creates a sheet on first write to a range naming it (default off: like Google, writing to
    /// an unknown sheet is `400 Unable to parse range`).
    pub fn auto_create_sheets(mut self, on: bool) -> Self {
        self.config.auto_create_sheets = on;
        self
    }

    /// Binds `127.0.0.1:0` and serves until the [`Sandbox`] is dropped.
    ///
    /// # Errors
    /// [`Error::Unavailable`] when the socket cannot be bound; [`Error::Configuration`] if the
    /// throwaway key cannot be generated.
    pub async fn start(self) -> Result<Sandbox> {
        let account = test_service_account(SANDBOX_CLIENT_EMAIL)?;
        let mut state = State::new(self.config);
        state.spreadsheets.insert(
            SANDBOX_SPREADSHEET_ID.to_owned(),
            vec![Sheet::new("Sheet1")],
        );
        let state = Arc::new(Mutex::new(state));
        let server = server::Server::bind(Arc::clone(&state)).await?;
        let sandbox = Sandbox {
            state,
            account,
            server,
        };
        sandbox.register_service_account(&sandbox.account)?;
        Ok(sandbox)
    }
}

/// A running sandbox. Dropping it stops the server and closes its connections.
pub struct Sandbox {
    state: Arc<Mutex<State>>,
    account: TestServiceAccount,
    server: server::Server,
}

impl std::fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sandbox")
            .field("addr", &self.server.addr())
            .field("account", &self.account)
            .finish_non_exhaustive()
    }
}

impl Sandbox {
    /// A sandbox with the defaults (see [`SandboxBuilder`]).
    ///
    /// # Errors
    /// As [`SandboxBuilder::start`].
    pub async fn start() -> Result<Sandbox> {
        Sandbox::builder().start().await
    }

    /// A builder with the defaults: 60 writes and 60 reads per minute per user, tokens valid
    /// 3599 s, hang one hour, no auto-created sheets.
    pub fn builder() -> SandboxBuilder {
        SandboxBuilder {
            config: Config {
                write_requests_per_minute: 60,
                read_requests_per_minute: 60,
                token_lifetime: Duration::from_secs(3599),
                hang_for: Duration::from_secs(3600),
                auto_create_sheets: false,
                project_number: 424_242_424_242,
            },
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The socket address served.
    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }
    /// `http://127.0.0.1:<port>/`, the values API base URL.
    pub fn base_url(&self) -> String {
        format!("http://{}/", self.server.addr())
    }
    /// The token endpoint, `http://127.0.0.1:<port>/token`.
    pub fn token_url(&self) -> String {
        format!("http://{}/token", self.server.addr())
    }
    /// The spreadsheet every sandbox starts with.
    pub fn spreadsheet_id(&self) -> &'static str {
        SANDBOX_SPREADSHEET_ID
    }
    /// The registered service account whose key [`Sandbox::client_builder`] uses.
    pub fn service_account(&self) -> &TestServiceAccount {
        &self.account
    }

    /// A client builder wired to this sandbox: its base URL, token URL, service account and
    /// spreadsheet.
    pub fn client_builder(&self) -> GoogleSheetsBuilder {
        GoogleSheetsBuilder::new()
            .with_credentials_json(self.account.json())
            .with_spreadsheet_id(SANDBOX_SPREADSHEET_ID)
            .with_base_url(self.base_url())
            .with_token_url(self.token_url())
    }

    /// Registers another service account whose assertions the token endpoint accepts.
    ///
    /// # Errors
    /// [`Error::Configuration`] if its public key is not PEM.
    pub fn register_service_account(&self, account: &TestServiceAccount) -> Result<()> {
        let key = DecodingKey::from_rsa_pem(account.public_key_pem().as_bytes()).map_err(|e| {
            Error::configuration("public_key_pem", "not a PEM RSA public key").with_source(e)
        })?;
        self.lock()
            .register_account(account.client_email(), account.private_key_id(), key);
        Ok(())
    }

    /// Creates (or empties) spreadsheet `id` with sheets `titles`.
    pub fn create_spreadsheet(&self, id: &str, titles: &[&str]) {
        self.lock().spreadsheets.insert(
            id.to_owned(),
            titles.iter().map(|t| Sheet::new(*t)).collect(),
        );
    }
    /// Adds an empty sheet `title` to spreadsheet `id` (creating the spreadsheet if needed); no-op
    /// when it exists.
    pub fn add_sheet(&self, id: &str, title: &str) {
        let mut state = self.lock();
        let sheets = state.spreadsheets.entry(id.to_owned()).or_default();
        if !sheets.iter().any(|s| s.title == title) {
            sheets.push(Sheet::new(title));
        }
    }
    /// Writes `rows` at the top of sheet `title` (as `RAW` values), creating it if needed.
    pub fn seed_rows(&self, id: &str, title: &str, rows: Vec<Vec<Value>>) {
        self.add_sheet(id, title);
        let mut state = self.lock();
        if let Some(sheet) = state.sheet_mut(id, Some(title), false) {
            let top = crate::a1::A1Range::cell(title, 0, 1);
            let _ = sheet.write(&grid::write_bounds(&top), &rows, InputOption::Raw, "");
        }
    }
    /// Every row of sheet `title` as displayed text (trailing empty cells dropped), or `None` when
    /// there is no such sheet.
    pub fn rows(&self, id: &str, title: &str) -> Option<Vec<Vec<String>>> {
        self.lock()
            .sheet_mut(id, Some(title), false)
            .map(|s| s.snapshot())
    }

    /// Injects `fault` into the next `n` values requests (any endpoint but the token endpoint).
    pub fn fail_next(&self, n: u32, fault: Fault) {
        self.lock().add_fault(None, n, fault);
    }
    /// Injects `fault` into the next `n` requests to `endpoint`.
    pub fn fail_next_on(&self, endpoint: Endpoint, n: u32, fault: Fault) {
        self.lock().add_fault(Some(endpoint), n, fault);
    }
    /// Invalidates every access token issued so far (the next API call gets a 401).
    pub fn expire_tokens(&self) {
        self.lock().expire_tokens();
    }
    /// The counters.
    pub fn stats(&self) -> SandboxStats {
        self.lock().stats.clone()
    }
    /// Every values request served, in order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.lock().log.clone()
    }
}
