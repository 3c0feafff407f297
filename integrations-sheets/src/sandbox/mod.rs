//! A local, in-process Google Sheets (feature `sandbox`): the OAuth token endpoint and the
//! `spreadsheets.values` endpoints over an in-memory grid, faithful enough to drive the real client.
//!
//! * `POST /token` verifies the service account's RS256 assertion against its registered public
//!   key and checks `aud`, `iat`/`exp` and `scope`, answering Google's
//!   `{"error":"invalid_grant","error_description":…}` on failure.
//! * `GET|PUT /v4/spreadsheets/{id}/values/{range}`, `POST …/values/{range}:append`,
//!   `GET …/values:batchGet`, `POST …/values:batchUpdate`: A1 ranges, append's table detection and `INSERT_ROWS`,
//!   `updates` in the response, Google's error shape.
//! * Google's size limits: a sheet's grid goes to 1,000,000 rows at most, and a spreadsheet to
//!   10,000,000 cells, counted over its sheets' grids (rows × columns, at least 1000 × 26 each,
//!   filled or not). A write that would pass the cell limit is refused whole with Google's
//!   `400 INVALID_ARGUMENT` "This action would increase the number of cells in the workbook above
//!   the limit of 10000000 cells." A load test meets it where Google would: one sheet in the
//!   default 26 columns holds ~384,000 rows. A cell takes 50,000 characters at most: a longer
//!   input value is refused the same way ("Your input contains more than the maximum of 50000
//!   characters in a single cell.").
//! * A per-user, per-minute quota for reads and writes (fixed windows on tokio's clock, so a
//!   paused test clock drives it), answering `429 RESOURCE_EXHAUSTED` when used up.
//! * Fault injection with the testkit's [`Fault`] and [`FaultRule`]: [`Sandbox::fail_next`],
//!   [`Sandbox::fail_next_on`], [`Sandbox::inject`]. Values requests are authenticated first,
//!   then faulted: `500 INTERNAL`, `503 UNAVAILABLE`, `429 RESOURCE_EXHAUSTED` (with
//!   `Retry-After` when given), a hang (no answer for the hang time, then the connection closes),
//!   or [`Fault::DropAfterAccept`] (the write happens, then the connection is closed without an
//!   answer). Operations are named after [`Endpoint::name`]: `"token"`, `"values.get"`,
//!   `"values.append"`, `"values.update"`, `"values.batchUpdate"`, `"values.batchGet"`.
//! * Records: [`Sandbox::requests`] and the totals behind [`Sandbox::stats`] come from the
//!   testkit's bounded request log ([`SandboxBuilder::request_retention`]); served values
//!   answers carry an `x-sandbox-rows` header with the rows read or written.
//! * Every row written is kept, as a sheet keeps it; with [`SandboxBuilder::resident_rows`] only
//!   the latest are in memory and the others in a temporary file, for load tests whose sheet
//!   grows with the run.
//!
//! The servers are the testkit's
//! [`SandboxServer`] — two of them, as Google
//! serves the token endpoint and the Sheets API on different hosts: [`Sandbox::token_url`] is on
//! its own port, so faults planned for values requests never hit a token request. This module
//! keeps only Google's protocol.
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
mod rows;
mod server;
mod state;
mod token;
mod values;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use integrations_core::{Error, Result};
use integrations_testkit::sandbox::{
    DEFAULT_RETENTION, RequestLog, SandboxServer, SandboxService, ServerOptions,
};
use jsonwebtoken::DecodingKey;
use serde_json::Value;

pub use integrations_testkit::sandbox::{Fault, FaultRule};
pub use keys::{TestServiceAccount, generate_service_account, test_service_account};

use crate::config::GoogleSheetsBuilder;
use grid::{InputOption, Sheet};
use rows::SpillConfig;
use state::{Config, State};

/// The spreadsheet every sandbox starts with (one sheet, `Sheet1`).
pub const SANDBOX_SPREADSHEET_ID: &str = "sandbox-spreadsheet";
/// The service account every sandbox starts with registered.
pub const SANDBOX_CLIENT_EMAIL: &str =
    "sandbox-writer@integrations-sandbox.iam.gserviceaccount.com";

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
    /// `values.batchGet`.
    BatchGet,
}

impl Endpoint {
    const ALL: [Endpoint; 6] = [
        Endpoint::Token,
        Endpoint::Get,
        Endpoint::Append,
        Endpoint::Update,
        Endpoint::BatchUpdate,
        Endpoint::BatchGet,
    ];

    /// The operation name faults and the request log use: `"token"`, `"values.get"`,
    /// `"values.append"`, `"values.update"`, `"values.batchUpdate"`, `"values.batchGet"`.
    pub const fn name(self) -> &'static str {
        match self {
            Endpoint::Token => "token",
            Endpoint::Get => "values.get",
            Endpoint::Append => "values.append",
            Endpoint::Update => "values.update",
            Endpoint::BatchUpdate => "values.batchUpdate",
            Endpoint::BatchGet => "values.batchGet",
        }
    }

    /// Whether Google counts a request to this endpoint against the read quota.
    pub(crate) const fn is_read(self) -> bool {
        matches!(self, Endpoint::Get | Endpoint::BatchGet)
    }

    /// The endpoint an operation name stands for.
    pub fn from_name(name: &str) -> Option<Endpoint> {
        Endpoint::ALL.into_iter().find(|e| e.name() == name)
    }
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
    /// Faults injected (values and token requests; exact whatever the retention).
    pub faults_injected: u64,
    /// Rows now kept in the sheets' files rather than in memory
    /// ([`SandboxBuilder::resident_rows`]; 0 without it).
    pub rows_in_file: u64,
}

/// One values request the sandbox served (after auth, faults and quota), from the request log.
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
    hang_for: Duration,
    request_retention: usize,
    resident_rows: Option<usize>,
    spill_dir: Option<PathBuf>,
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
    /// How long [`Fault::Hang`] holds a request before the connection is closed (default one
    /// hour; the servers' [`ServerOptions::hang`]).
    pub fn hang_for(mut self, d: Duration) -> Self {
        self.hang_for = d;
        self
    }
    /// How many requests each server's log keeps in full (default 10 000):
    /// [`Sandbox::requests`] shows at most this many; the totals count every request.
    pub fn request_retention(mut self, n: usize) -> Self {
        self.request_retention = n;
        self
    }
    /// Creates a sheet on first write to a range naming it (default off: like Google, writing to
    /// an unknown sheet is `400 Unable to parse range`).
    pub fn auto_create_sheets(mut self, on: bool) -> Self {
        self.config.auto_create_sheets = on;
        self
    }

    /// Keeps about `n` rows of each sheet in memory (between `n` and 1.5 `n` rows with cells
    /// between requests, at most 2 `n` during one), and the others in an anonymous temporary
    /// file, read back when a request touches them (default: every row in memory). The file
    /// takes the first rows first, so a sheet that is appended to keeps its newest rows in
    /// memory.
    ///
    /// For a long load test: a sheet of a million order rows is ~320 MB in memory, and with a
    /// limit ~24 bytes a row plus the limit's rows. A row changed after it went to the file is
    /// written again when it goes back; once the bytes no row points at pass half of those
    /// rows do (and 64 KiB), the file is rewritten in row order, so it stays within 1.5 times
    /// its rows' size however often they change (unless a rewrite fails: a warning, and the
    /// file grows as rows change from then on). It is removed when the sandbox is dropped.
    /// Reads of rows in the file decode them, so a read of the whole sheet costs more than from
    /// memory.
    ///
    /// If the file cannot be made or written (the disk is full), the rows stay in memory and a
    /// warning is logged; a row that cannot be read back from it panics the request's task
    /// rather than answer wrong cells. `n` of 0 is taken as 1.
    pub fn resident_rows(mut self, n: usize) -> Self {
        self.resident_rows = Some(n.max(1));
        self
    }

    /// The directory of the file [`resident_rows`](Self::resident_rows) writes (default: the
    /// system's temporary directory, `TMPDIR` on Unix). Without `resident_rows`, nothing is
    /// written.
    pub fn spill_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.spill_dir = Some(dir.into());
        self
    }

    /// Binds `127.0.0.1:0` and serves until the [`Sandbox`] is dropped.
    ///
    /// # Errors
    /// [`Error::Unavailable`] when the socket cannot be bound; [`Error::Configuration`] if the
    /// throwaway key cannot be generated.
    pub async fn start(mut self) -> Result<Sandbox> {
        let account = test_service_account(SANDBOX_CLIENT_EMAIL)?;
        self.config.spill = self.resident_rows.map(|resident_rows| SpillConfig {
            resident_rows,
            dir: self.spill_dir.clone(),
        });
        let spill = self.config.spill.clone();
        let mut state = State::new(self.config);
        state.spreadsheets.insert(
            SANDBOX_SPREADSHEET_ID.to_owned(),
            vec![Sheet::spilling("Sheet1", spill)],
        );
        let state = Arc::new(Mutex::new(state));
        let options = ServerOptions::default()
            .hang(self.hang_for)
            .retention(self.request_retention);
        let values = serve(
            server::ValuesService {
                state: Arc::clone(&state),
            },
            options.clone(),
        )
        .await?;
        let token = serve(
            server::TokenService {
                state: Arc::clone(&state),
            },
            options,
        )
        .await?;
        let sandbox = Sandbox {
            state,
            account,
            values,
            token,
        };
        sandbox.register_service_account(&sandbox.account)?;
        Ok(sandbox)
    }
}

async fn serve<S: SandboxService>(service: S, options: ServerOptions) -> Result<SandboxServer> {
    SandboxServer::start(Arc::new(service), options)
        .await
        .map_err(|e| Error::unavailable("the sandbox could not bind 127.0.0.1").with_source(e))
}

/// A running sandbox. Dropping it stops the servers and closes their connections.
pub struct Sandbox {
    state: Arc<Mutex<State>>,
    account: TestServiceAccount,
    /// The values API.
    values: SandboxServer,
    /// The token endpoint.
    token: SandboxServer,
}

impl std::fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sandbox")
            .field("addr", &self.values.addr())
            .field("token_addr", &self.token.addr())
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
    /// 3599 s, hang one hour, no auto-created sheets, 10 000 requests kept per server.
    pub fn builder() -> SandboxBuilder {
        SandboxBuilder {
            config: Config {
                write_requests_per_minute: 60,
                read_requests_per_minute: 60,
                token_lifetime: Duration::from_secs(3599),
                auto_create_sheets: false,
                project_number: 424_242_424_242,
                spill: None,
            },
            hang_for: Duration::from_secs(3600),
            request_retention: DEFAULT_RETENTION,
            resident_rows: None,
            spill_dir: None,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The socket address the values API is served on.
    pub fn addr(&self) -> SocketAddr {
        self.values.addr()
    }
    /// `http://127.0.0.1:<port>/`, the values API base URL.
    pub fn base_url(&self) -> String {
        format!("{}/", self.values.base_url())
    }
    /// The token endpoint, `http://127.0.0.1:<port>/token`, on a port of its own.
    pub fn token_url(&self) -> String {
        format!("{}/token", self.token.base_url())
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
        let mut state = self.lock();
        let sheets = titles
            .iter()
            .map(|t| Sheet::spilling(*t, state.config.spill.clone()))
            .collect();
        state.spreadsheets.insert(id.to_owned(), sheets);
    }
    /// Adds an empty sheet `title` to spreadsheet `id` (creating the spreadsheet if needed); no-op
    /// when it exists.
    pub fn add_sheet(&self, id: &str, title: &str) {
        let mut state = self.lock();
        let spill = state.config.spill.clone();
        let sheets = state.spreadsheets.entry(id.to_owned()).or_default();
        if !sheets.iter().any(|s| s.title == title) {
            sheets.push(Sheet::spilling(title, spill));
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

    /// Up to `count` rows of sheet `title` from row `first` on (0-based: row 1 of the sheet is
    /// `first` 0), as [`rows`](Sandbox::rows) shows them; empty past the last row, `None` when
    /// there is no such sheet. For reading a long sheet a page at a time, as a client reads a real
    /// one by ranges, without a copy of all of it at once.
    pub fn rows_page(
        &self,
        id: &str,
        title: &str,
        first: usize,
        count: usize,
    ) -> Option<Vec<Vec<String>>> {
        self.lock()
            .sheet_mut(id, Some(title), false)
            .map(|s| s.snapshot_range(first, count))
    }

    /// Injects `fault` into the next `n` values requests (any endpoint but the token endpoint).
    pub fn fail_next(&self, n: u32, fault: Fault) {
        self.inject(FaultRule::new(fault).times(n as usize));
    }
    /// Injects `fault` into the next `n` requests to `endpoint`
    /// (`FaultRule::new(fault).times(n).on(endpoint.name())`).
    pub fn fail_next_on(&self, endpoint: Endpoint, n: u32, fault: Fault) {
        let rule = FaultRule::new(fault).times(n as usize).on(endpoint.name());
        match endpoint {
            Endpoint::Token => self.inject_token(rule),
            _ => self.inject(rule),
        }
    }
    /// Adds a fault rule for values requests (name operations with [`Endpoint::name`]).
    pub fn inject(&self, rule: FaultRule) {
        self.values.faults().add(rule);
    }
    /// Adds a fault rule for the token endpoint.
    pub fn inject_token(&self, rule: FaultRule) {
        self.token.faults().add(rule);
    }
    /// Invalidates every access token issued so far (the next API call gets a 401).
    pub fn expire_tokens(&self) {
        self.lock().expire_tokens();
    }
    /// The counters: the protocol's own, and from the request logs' exact totals the faults
    /// injected.
    pub fn stats(&self) -> SandboxStats {
        let state = self.lock();
        let mut stats = state.stats.clone();
        stats.rows_in_file = (state.spreadsheets.values().flatten())
            .map(|s| s.rows_in_file() as u64)
            .sum();
        drop(state);
        stats.faults_injected =
            self.values.requests().totals().faulted + self.token.requests().totals().faulted;
        stats
    }
    /// The values requests served, in order: those still in the request log
    /// ([`SandboxBuilder::request_retention`]).
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.values
            .requests()
            .recent()
            .into_iter()
            .filter_map(|r| {
                let rows = r.response_header(server::ROWS_HEADER)?.parse().ok()?;
                let endpoint = Endpoint::from_name(&r.operation)?;
                let range = values::route(&r.method, &r.path).and_then(|route| route.range);
                Some(RecordedRequest {
                    endpoint,
                    range,
                    status: r.status,
                    rows,
                })
            })
            .collect()
    }
    /// Every values request received (the last ones in full, credentials removed) and exact
    /// totals.
    pub fn request_log(&self) -> &RequestLog {
        self.values.requests()
    }
    /// The same for the token endpoint.
    pub fn token_request_log(&self) -> &RequestLog {
        self.token.requests()
    }
}
