//! The sandbox's state: spreadsheets, registered accounts, issued tokens, quota windows,
//! counters (faults and the request log are the testkit server's). Lives behind one std `Mutex`; no lock is held across an `.await`.

use std::collections::HashMap;
use std::time::Duration;

use jsonwebtoken::DecodingKey;
use serde_json::{Value, json};
use tokio::time::Instant;

use super::SandboxStats;
use super::grid::Sheet;
use super::rows::SpillConfig;

/// Settings fixed at start.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) write_requests_per_minute: u32,
    pub(crate) read_requests_per_minute: u32,
    pub(crate) token_lifetime: Duration,
    pub(crate) auto_create_sheets: bool,
    pub(crate) project_number: u64,
    /// Past how many rows a sheet's first rows go to a file (none: every row in memory).
    pub(crate) spill: Option<SpillConfig>,
}

/// An access token the sandbox issued.
#[derive(Debug, Clone)]
pub(crate) struct Issued {
    pub(crate) client_email: String,
    pub(crate) scopes: Vec<String>,
    pub(crate) expires: Instant,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum QuotaKind {
    Read,
    Write,
}

/// A fixed one-minute window, refilled each minute as Google does.
#[derive(Debug, Clone, Copy)]
struct Window {
    start: Instant,
    used: u32,
}

/// Everything the sandbox knows.
pub(crate) struct State {
    pub(crate) config: Config,
    pub(crate) spreadsheets: HashMap<String, Vec<Sheet>>,
    accounts: HashMap<String, Vec<(String, DecodingKey)>>,
    tokens: HashMap<String, Issued>,
    windows: HashMap<(String, QuotaKind), Window>,
    pub(crate) stats: SandboxStats,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State")
            .field("config", &self.config)
            .field("spreadsheets", &self.spreadsheets.len())
            .field("accounts", &self.accounts.len())
            .field("tokens", &self.tokens.len())
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl State {
    pub(crate) fn new(config: Config) -> Self {
        State {
            config,
            spreadsheets: HashMap::new(),
            accounts: HashMap::new(),
            tokens: HashMap::new(),
            windows: HashMap::new(),
            stats: SandboxStats::default(),
        }
    }

    pub(crate) fn register_account(&mut self, client_email: &str, kid: &str, key: DecodingKey) {
        let keys = self.accounts.entry(client_email.to_owned()).or_default();
        keys.retain(|(k, _)| k != kid);
        keys.push((kid.to_owned(), key));
    }

    /// The verification keys of `client_email`: only `kid`'s when given.
    pub(crate) fn account_keys(
        &self,
        client_email: &str,
        kid: Option<&str>,
    ) -> Option<Vec<DecodingKey>> {
        let keys = self.accounts.get(client_email)?;
        Some(
            keys.iter()
                .filter(|(k, _)| kid.is_none_or(|want| want == k))
                .map(|(_, key)| key.clone())
                .collect(),
        )
    }

    pub(crate) fn issue_token(&mut self, client_email: &str, scopes: Vec<String>) -> String {
        let token = format!(
            "ya29.sandbox.{}",
            (0..32)
                .map(|_| fastrand::alphanumeric())
                .collect::<String>()
        );
        let now = Instant::now();
        // An absurd configured lifetime (tests of the client's clamp) must not panic here.
        let expires = now
            .checked_add(self.config.token_lifetime)
            .unwrap_or(now + Duration::from_secs(100 * 365 * 86_400));
        self.tokens.insert(
            token.clone(),
            Issued {
                client_email: client_email.to_owned(),
                scopes,
                expires,
            },
        );
        self.stats.tokens_issued += 1;
        token
    }

    /// The live token `token`, if issued and not expired.
    pub(crate) fn token(&self, token: &str) -> Option<&Issued> {
        self.tokens
            .get(token)
            .filter(|t| t.expires > Instant::now())
    }

    pub(crate) fn expire_tokens(&mut self) {
        self.tokens.clear();
    }

    /// Counts one request against `user`'s per-minute quota; `false` when it is used up.
    pub(crate) fn take_quota(&mut self, user: &str, kind: QuotaKind) -> bool {
        let limit = match kind {
            QuotaKind::Read => self.config.read_requests_per_minute,
            QuotaKind::Write => self.config.write_requests_per_minute,
        };
        let now = Instant::now();
        let w = self
            .windows
            .entry((user.to_owned(), kind))
            .or_insert(Window {
                start: now,
                used: 0,
            });
        if now.duration_since(w.start) >= Duration::from_secs(60) {
            *w = Window {
                start: now,
                used: 0,
            };
        }
        if w.used >= limit {
            return false;
        }
        w.used += 1;
        true
    }

    /// Google's 429 body for an exhausted per-minute quota.
    pub(crate) fn quota_error_body(&self, kind: QuotaKind) -> Value {
        let (metric, limit, limit_id) = match kind {
            QuotaKind::Read => (
                "Read requests",
                "Read requests per minute per user",
                "ReadRequestsPerMinutePerUser",
            ),
            QuotaKind::Write => (
                "Write requests",
                "Write requests per minute per user",
                "WriteRequestsPerMinutePerUser",
            ),
        };
        let n = self.config.project_number;
        json!({"error": {
            "code": 429,
            "message": format!("Quota exceeded for quota metric '{metric}' and limit '{limit}' of service 'sheets.googleapis.com' for consumer 'project_number:{n}'."),
            "status": "RESOURCE_EXHAUSTED",
            "details": [{
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": "RATE_LIMIT_EXCEEDED",
                "domain": "googleapis.com",
                "metadata": {
                    "consumer": format!("projects/{n}"),
                    "quota_limit": limit_id,
                    "quota_metric": format!("sheets.googleapis.com/{}", metric.to_ascii_lowercase().replace(' ', "_")),
                    "service": "sheets.googleapis.com",
                },
            }],
        }})
    }

    /// The sheet called `title` in `spreadsheet` (exact match first, then case-insensitive),
    /// created when the sandbox auto-creates sheets and `create` is set.
    pub(crate) fn sheet_mut(
        &mut self,
        spreadsheet: &str,
        title: Option<&str>,
        create: bool,
    ) -> Option<&mut Sheet> {
        self.sheet_and_others(spreadsheet, title, create)
            .map(|(sheet, _)| sheet)
    }

    /// As [`sheet_mut`](Self::sheet_mut), with the cells of the spreadsheet's other sheets'
    /// grids (what a write to this sheet may add to stays within
    /// [`MAX_CELLS`](super::grid::MAX_CELLS)).
    pub(crate) fn sheet_and_others(
        &mut self,
        spreadsheet: &str,
        title: Option<&str>,
        create: bool,
    ) -> Option<(&mut Sheet, u64)> {
        let auto = self.config.auto_create_sheets && create;
        let sheets = self.spreadsheets.get_mut(spreadsheet)?;
        let i = match (position(sheets, title), title) {
            (Some(i), _) => i,
            (None, Some(t)) if auto => {
                sheets.push(Sheet::spilling(t, self.config.spill.clone()));
                sheets.len() - 1
            }
            _ => return None,
        };
        let others = sheets
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(_, s)| s.cells_reaching(0, 0))
            .sum();
        Some((&mut sheets[i], others))
    }

    /// The sheets of `spreadsheet`, and where the one called `title` is among them.
    pub(crate) fn sheets_with(
        &self,
        spreadsheet: &str,
        title: Option<&str>,
    ) -> Option<(&[Sheet], usize)> {
        let sheets = self.spreadsheets.get(spreadsheet)?;
        let i = position(sheets, title)?;
        Some((sheets.as_slice(), i))
    }
}

/// Where the sheet called `title` is (exact match first, then case-insensitive; the first sheet
/// when no title is given).
fn position(sheets: &[Sheet], title: Option<&str>) -> Option<usize> {
    match title {
        None => (!sheets.is_empty()).then_some(0),
        Some(t) => sheets
            .iter()
            .position(|s| s.title == t)
            .or_else(|| sheets.iter().position(|s| s.title.eq_ignore_ascii_case(t))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Config {
        Config {
            write_requests_per_minute: 2,
            read_requests_per_minute: 1,
            token_lifetime: Duration::from_secs(3599),
            auto_create_sheets: false,
            project_number: 1,
            spill: None,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn quota_windows_refill_each_minute_per_user_and_kind() {
        let mut s = State::new(config());
        assert!(s.take_quota("a", QuotaKind::Write));
        assert!(s.take_quota("a", QuotaKind::Write));
        assert!(!s.take_quota("a", QuotaKind::Write));
        assert!(s.take_quota("b", QuotaKind::Write));
        assert!(s.take_quota("a", QuotaKind::Read));
        assert!(!s.take_quota("a", QuotaKind::Read));
        tokio::time::advance(Duration::from_secs(59)).await;
        assert!(!s.take_quota("a", QuotaKind::Write));
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(s.take_quota("a", QuotaKind::Write));
        let body = s.quota_error_body(QuotaKind::Write);
        assert_eq!(body["error"]["status"], "RESOURCE_EXHAUSTED");
        assert_eq!(
            body["error"]["details"][0]["metadata"]["quota_metric"],
            "sheets.googleapis.com/write_requests"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn tokens_expire_on_the_tokio_clock() {
        let mut s = State::new(config());
        let t = s.issue_token("a@b", vec!["x".into()]);
        assert!(s.token(&t).is_some());
        tokio::time::advance(Duration::from_secs(3599)).await;
        assert!(s.token(&t).is_none());
        let t = s.issue_token("a@b", vec![]);
        s.expire_tokens();
        assert!(s.token(&t).is_none());
    }
}
