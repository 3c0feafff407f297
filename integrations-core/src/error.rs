//! The one public error type of the crate family.
//!
//! Every provider crate maps its wire errors into [`Error`] in exactly one `parse_error` function,
//! so that callers match on meaning ([`Error::Declined`], [`Error::RateLimited`], …) and never on a
//! provider's own error shape. Whether an error is worth retrying is a property of the error
//! ([`Error::is_retryable`]), decided once, where the provider's hints (`Retry-After`,
//! `Stripe-Should-Retry`) are still visible.

pub use crate::error_record::{ErrorRecord, parse_error_kind};

use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

/// A boxed error source, kept as the error's [`std::error::Error::source`].
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Shorthand for `Result<T, integrations_core::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What every error carries besides its kind: who answered, with which code, under which request id.
#[derive(Default)]
#[non_exhaustive]
pub struct Context {
    /// Provider name (`"stripe"`, `"sendgrid"`, …), or `None` for errors raised locally.
    pub provider: Option<Cow<'static, str>>,
    /// Operation that failed (`"create_payment"`), when known.
    pub operation: Option<Cow<'static, str>>,
    /// Human-readable message, usually the provider's own.
    pub message: String,
    /// The provider's own error code (`"resource_missing"`, `"ThrottlingException"`).
    pub code: Option<String>,
    /// The provider's request id (`Request-Id`, `x-amzn-RequestId`), for support tickets.
    pub request_id: Option<String>,
    /// HTTP status of the response that carried the error, when there was one.
    pub status: Option<u16>,
    /// A provider's explicit retry hint (e.g. `Stripe-Should-Retry`), overriding the kind's default.
    pub retry_hint: Option<bool>,
    /// `true` when the provider certainly did not act on the request (connection refused before
    /// sending, circuit open, rejected by a rate limit, `503` before processing). Failover only
    /// moves to the next provider on such errors.
    pub not_processed: bool,
    source: Option<BoxError>,
}

impl fmt::Debug for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context")
            .field("provider", &self.provider)
            .field("operation", &self.operation)
            .field("message", &self.message)
            .field("code", &self.code)
            .field("request_id", &self.request_id)
            .field("status", &self.status)
            .field("retry_hint", &self.retry_hint)
            .field("not_processed", &self.not_processed)
            .field("source", &self.source)
            .finish()
    }
}

impl fmt::Display for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.message.is_empty() {
            write!(f, ": {}", self.message)?;
        }
        let mut parts: Vec<String> = Vec::new();
        if let Some(p) = &self.provider {
            parts.push(format!("provider {p}"));
        }
        if let Some(op) = &self.operation {
            parts.push(format!("operation {op}"));
        }
        if let Some(s) = self.status {
            parts.push(format!("status {s}"));
        }
        if let Some(c) = &self.code {
            parts.push(format!("code {c}"));
        }
        if let Some(r) = &self.request_id {
            parts.push(format!("request {r}"));
        }
        if !parts.is_empty() {
            write!(f, " [{}]", parts.join(", "))?;
        }
        Ok(())
    }
}

/// The kind of an [`Error`], without its data: cheap to copy, used as a metrics label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorKind {
    /// See [`Error::InvalidInput`].
    InvalidInput,
    /// See [`Error::Unauthenticated`].
    Unauthenticated,
    /// See [`Error::Forbidden`].
    Forbidden,
    /// See [`Error::NotFound`].
    NotFound,
    /// See [`Error::Conflict`].
    Conflict,
    /// See [`Error::Declined`].
    Declined,
    /// See [`Error::RateLimited`].
    RateLimited,
    /// See [`Error::Unavailable`].
    Unavailable,
    /// See [`Error::Timeout`].
    Timeout,
    /// See [`Error::CircuitOpen`].
    CircuitOpen,
    /// See [`Error::BulkheadFull`].
    BulkheadFull,
    /// See [`Error::InvalidSignature`].
    InvalidSignature,
    /// See [`Error::Configuration`].
    Configuration,
    /// See [`Error::Provider`].
    Provider,
}

impl ErrorKind {
    /// Every kind, in declaration order (for metrics tables).
    pub const ALL: [ErrorKind; 14] = [
        ErrorKind::InvalidInput,
        ErrorKind::Unauthenticated,
        ErrorKind::Forbidden,
        ErrorKind::NotFound,
        ErrorKind::Conflict,
        ErrorKind::Declined,
        ErrorKind::RateLimited,
        ErrorKind::Unavailable,
        ErrorKind::Timeout,
        ErrorKind::CircuitOpen,
        ErrorKind::BulkheadFull,
        ErrorKind::InvalidSignature,
        ErrorKind::Configuration,
        ErrorKind::Provider,
    ];

    /// Stable snake_case name (`"rate_limited"`).
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorKind::InvalidInput => "invalid_input",
            ErrorKind::Unauthenticated => "unauthenticated",
            ErrorKind::Forbidden => "forbidden",
            ErrorKind::NotFound => "not_found",
            ErrorKind::Conflict => "conflict",
            ErrorKind::Declined => "declined",
            ErrorKind::RateLimited => "rate_limited",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::Timeout => "timeout",
            ErrorKind::CircuitOpen => "circuit_open",
            ErrorKind::BulkheadFull => "bulkhead_full",
            ErrorKind::InvalidSignature => "invalid_signature",
            ErrorKind::Configuration => "configuration",
            ErrorKind::Provider => "provider",
        }
    }

    /// Index into [`ErrorKind::ALL`].
    pub const fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a webhook signature was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignatureFailure {
    /// The signature header could not be parsed.
    #[error("malformed signature header: {0}")]
    MalformedHeader(String),
    /// The header carries no signature of the scheme we verify (e.g. no `v1`).
    #[error("no signature with a supported scheme")]
    NoSupportedSignature,
    /// Signatures were present but none matched any of the secrets.
    #[error("no signature matches")]
    NoMatch,
    /// The signed timestamp is outside the tolerance window.
    #[error("timestamp {timestamp} outside tolerance of {tolerance_secs}s (now {now})")]
    TimestampOutsideTolerance {
        /// Signed timestamp (unix seconds).
        timestamp: i64,
        /// Verification time (unix seconds).
        now: i64,
        /// Allowed distance in seconds.
        tolerance_secs: u64,
    },
    /// The body exceeds the configured limit.
    #[error("body of {size} bytes exceeds the limit of {limit} bytes")]
    BodyTooLarge {
        /// Body size.
        size: usize,
        /// Configured limit.
        limit: usize,
    },
    /// The key or secret itself is unusable.
    #[error("invalid key: {0}")]
    InvalidKey(String),
}

/// The one public error of the crate family. Variants are by meaning, not by provider.
///
/// Each variant carries a boxed [`Context`] (provider, code, request id, status, message) and an
/// optional source. Build one with the constructors ([`Error::unavailable`], …) and the `with_*`
/// methods; read it with [`Error::kind`], [`Error::is_retryable`], [`Error::retry_after`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The request itself is wrong; `field` names what (e.g. `"amount"`, `"personalizations[0].to"`).
    #[error("invalid input `{field}`{ctx}")]
    InvalidInput {
        /// The offending field.
        field: Cow<'static, str>,
        /// Context.
        ctx: Box<Context>,
        /// Underlying error.
        #[source]
        source: Option<BoxError>,
    },
    /// Credentials missing, wrong or expired.
    #[error("unauthenticated{ctx}")]
    Unauthenticated {
        /// Context.
        ctx: Box<Context>,
        /// Underlying error.
        #[source]
        source: Option<BoxError>,
    },
    /// Authenticated, but not allowed.
    #[error("forbidden{ctx}")]
    Forbidden {
        /// Context.
        ctx: Box<Context>,
        /// Underlying error.
        #[source]
        source: Option<BoxError>,
    },
    /// The resource does not exist.
    #[error("not found{ctx}")]
    NotFound {
        /// Context.
        ctx: Box<Context>,
        /// Underlying error.
        #[source]
        source: Option<BoxError>,
    },
    /// The request conflicts with the resource's state, or an idempotency key was reused with
    /// different parameters.
    #[error("conflict{ctx}")]
    Conflict {
        /// Context.
        ctx: Box<Context>,
        /// Underlying error.
        #[source]
        source: Option<BoxError>,
    },
    /// A payment was declined.
    #[error("declined{}{}{ctx}", code.as_deref().map(|c| format!(" ({c})")).unwrap_or_default(), decline_code.as_deref().map(|c| format!(" [{c}]")).unwrap_or_default())]
    Declined {
        /// The provider's code (`"card_declined"`, `"expired_card"`).
        code: Option<String>,
        /// The issuer's decline code (`"insufficient_funds"`).
        decline_code: Option<String>,
        /// Context.
        ctx: Box<Context>,
        /// Underlying error.
        #[source]
        source: Option<BoxError>,
    },
    /// Too many requests; `retry_after` is the provider's hint, when it gave one.
    #[error("rate limited{}{ctx}", retry_after.map(|d| format!(" (retry after {d:?})")).unwrap_or_default())]
    RateLimited {
        /// When to try again.
        retry_after: Option<Duration>,
        /// Context.
        ctx: Box<Context>,
        /// Underlying error.
        #[source]
        source: Option<BoxError>,
    },
    /// The provider could not be reached or failed (connection errors, 5xx).
    #[error("unavailable{ctx}")]
    Unavailable {
        /// Context.
        ctx: Box<Context>,
        /// Underlying error.
        #[source]
        source: Option<BoxError>,
    },
    /// An attempt or the whole call ran out of time. The provider may still have acted.
    #[error("timed out{ctx}")]
    Timeout {
        /// Context.
        ctx: Box<Context>,
        /// Underlying error.
        #[source]
        source: Option<BoxError>,
    },
    /// The circuit breaker is open: the call was not attempted.
    #[error("circuit open{ctx}")]
    CircuitOpen {
        /// Context.
        ctx: Box<Context>,
        /// Underlying error.
        #[source]
        source: Option<BoxError>,
    },
    /// The bulkhead is full: the call was not attempted.
    #[error("bulkhead full{ctx}")]
    BulkheadFull {
        /// Context.
        ctx: Box<Context>,
        /// Underlying error.
        #[source]
        source: Option<BoxError>,
    },
    /// An inbound webhook's signature did not verify.
    #[error("invalid signature: {reason}{ctx}")]
    InvalidSignature {
        /// Why.
        reason: SignatureFailure,
        /// Context.
        ctx: Box<Context>,
        /// Underlying error.
        #[source]
        source: Option<BoxError>,
    },
    /// A setting is missing or malformed; `setting` names it (e.g. `"STRIPE_SECRET_KEY"`).
    #[error("configuration `{setting}`{ctx}")]
    Configuration {
        /// The setting.
        setting: Cow<'static, str>,
        /// Context.
        ctx: Box<Context>,
        /// Underlying error.
        #[source]
        source: Option<BoxError>,
    },
    /// The provider answered something we could not understand (unexpected status, bad JSON).
    #[error("provider error{ctx}")]
    Provider {
        /// Context.
        ctx: Box<Context>,
        /// Underlying error.
        #[source]
        source: Option<BoxError>,
    },
}

fn ctx(message: impl Into<String>) -> Box<Context> {
    Box::new(Context {
        message: message.into(),
        ..Context::default()
    })
}

impl Error {
    /// Invalid input naming `field`.
    pub fn invalid_input(field: impl Into<Cow<'static, str>>, message: impl Into<String>) -> Self {
        Error::InvalidInput {
            field: field.into(),
            ctx: ctx(message),
            source: None,
        }
    }
    /// Unauthenticated.
    pub fn unauthenticated(message: impl Into<String>) -> Self {
        Error::Unauthenticated {
            ctx: ctx(message),
            source: None,
        }
    }
    /// Forbidden.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Error::Forbidden {
            ctx: ctx(message),
            source: None,
        }
    }
    /// Not found.
    pub fn not_found(message: impl Into<String>) -> Self {
        Error::NotFound {
            ctx: ctx(message),
            source: None,
        }
    }
    /// Conflict.
    pub fn conflict(message: impl Into<String>) -> Self {
        Error::Conflict {
            ctx: ctx(message),
            source: None,
        }
    }
    /// Declined with the provider's code and the issuer's decline code.
    pub fn declined(
        code: Option<String>,
        decline_code: Option<String>,
        message: impl Into<String>,
    ) -> Self {
        Error::Declined {
            code,
            decline_code,
            ctx: ctx(message),
            source: None,
        }
    }
    /// Rate limited, with the provider's hint.
    pub fn rate_limited(retry_after: Option<Duration>, message: impl Into<String>) -> Self {
        Error::RateLimited {
            retry_after,
            ctx: ctx(message),
            source: None,
        }
    }
    /// Unavailable.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Error::Unavailable {
            ctx: ctx(message),
            source: None,
        }
    }
    /// Timeout.
    pub fn timeout(message: impl Into<String>) -> Self {
        Error::Timeout {
            ctx: ctx(message),
            source: None,
        }
    }
    /// Circuit open (never reached the provider).
    pub fn circuit_open(message: impl Into<String>) -> Self {
        let mut c = ctx(message);
        c.not_processed = true;
        Error::CircuitOpen {
            ctx: c,
            source: None,
        }
    }
    /// Bulkhead full (never reached the provider).
    pub fn bulkhead_full(message: impl Into<String>) -> Self {
        let mut c = ctx(message);
        c.not_processed = true;
        Error::BulkheadFull {
            ctx: c,
            source: None,
        }
    }
    /// Invalid webhook signature.
    pub fn invalid_signature(reason: SignatureFailure) -> Self {
        Error::InvalidSignature {
            reason,
            ctx: Box::default(),
            source: None,
        }
    }
    /// Missing or malformed setting.
    pub fn configuration(
        setting: impl Into<Cow<'static, str>>,
        message: impl Into<String>,
    ) -> Self {
        Error::Configuration {
            setting: setting.into(),
            ctx: ctx(message),
            source: None,
        }
    }
    /// Unexpected provider answer.
    pub fn provider(message: impl Into<String>) -> Self {
        Error::Provider {
            ctx: ctx(message),
            source: None,
        }
    }

    fn parts(&self) -> (&Context, &Option<BoxError>) {
        match self {
            Error::InvalidInput { ctx, source, .. }
            | Error::Unauthenticated { ctx, source }
            | Error::Forbidden { ctx, source }
            | Error::NotFound { ctx, source }
            | Error::Conflict { ctx, source }
            | Error::Declined { ctx, source, .. }
            | Error::RateLimited { ctx, source, .. }
            | Error::Unavailable { ctx, source }
            | Error::Timeout { ctx, source }
            | Error::CircuitOpen { ctx, source }
            | Error::BulkheadFull { ctx, source }
            | Error::InvalidSignature { ctx, source, .. }
            | Error::Configuration { ctx, source, .. }
            | Error::Provider { ctx, source } => (ctx, source),
        }
    }

    fn parts_mut(&mut self) -> (&mut Context, &mut Option<BoxError>) {
        match self {
            Error::InvalidInput { ctx, source, .. }
            | Error::Unauthenticated { ctx, source }
            | Error::Forbidden { ctx, source }
            | Error::NotFound { ctx, source }
            | Error::Conflict { ctx, source }
            | Error::Declined { ctx, source, .. }
            | Error::RateLimited { ctx, source, .. }
            | Error::Unavailable { ctx, source }
            | Error::Timeout { ctx, source }
            | Error::CircuitOpen { ctx, source }
            | Error::BulkheadFull { ctx, source }
            | Error::InvalidSignature { ctx, source, .. }
            | Error::Configuration { ctx, source, .. }
            | Error::Provider { ctx, source } => (ctx, source),
        }
    }

    /// The error's context (provider, code, request id, …).
    pub fn context(&self) -> &Context {
        self.parts().0
    }

    /// Mutable access to the context, for provider crates filling it in.
    pub fn context_mut(&mut self) -> &mut Context {
        self.parts_mut().0
    }

    /// Sets the provider name.
    #[must_use]
    pub fn with_provider(mut self, provider: impl Into<Cow<'static, str>>) -> Self {
        self.context_mut().provider = Some(provider.into());
        self
    }
    /// Sets the provider name only if none is set yet.
    #[must_use]
    pub fn or_provider(mut self, provider: impl Into<Cow<'static, str>>) -> Self {
        let c = self.context_mut();
        if c.provider.is_none() {
            c.provider = Some(provider.into());
        }
        self
    }
    /// Sets the operation.
    #[must_use]
    pub fn with_operation(mut self, operation: impl Into<Cow<'static, str>>) -> Self {
        self.context_mut().operation = Some(operation.into());
        self
    }
    /// Sets the provider's error code.
    #[must_use]
    pub fn with_code(mut self, code: impl Into<String>) -> Self {
        self.context_mut().code = Some(code.into());
        self
    }
    /// Sets the provider's request id.
    #[must_use]
    pub fn with_request_id(mut self, request_id: impl Into<String>) -> Self {
        self.context_mut().request_id = Some(request_id.into());
        self
    }
    /// Sets the HTTP status.
    #[must_use]
    pub fn with_status(mut self, status: u16) -> Self {
        self.context_mut().status = Some(status);
        self
    }
    /// Sets the provider's explicit retry hint, overriding the kind's default.
    #[must_use]
    pub fn with_retry_hint(mut self, retryable: bool) -> Self {
        self.context_mut().retry_hint = Some(retryable);
        self
    }
    /// Marks that the provider certainly did not act on the request (safe to fail over).
    #[must_use]
    pub fn not_processed(mut self) -> Self {
        self.context_mut().not_processed = true;
        self
    }
    /// Sets the source.
    #[must_use]
    pub fn with_source(mut self, source: impl Into<BoxError>) -> Self {
        *self.parts_mut().1 = Some(source.into());
        self
    }

    /// The kind, without data.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::InvalidInput { .. } => ErrorKind::InvalidInput,
            Error::Unauthenticated { .. } => ErrorKind::Unauthenticated,
            Error::Forbidden { .. } => ErrorKind::Forbidden,
            Error::NotFound { .. } => ErrorKind::NotFound,
            Error::Conflict { .. } => ErrorKind::Conflict,
            Error::Declined { .. } => ErrorKind::Declined,
            Error::RateLimited { .. } => ErrorKind::RateLimited,
            Error::Unavailable { .. } => ErrorKind::Unavailable,
            Error::Timeout { .. } => ErrorKind::Timeout,
            Error::CircuitOpen { .. } => ErrorKind::CircuitOpen,
            Error::BulkheadFull { .. } => ErrorKind::BulkheadFull,
            Error::InvalidSignature { .. } => ErrorKind::InvalidSignature,
            Error::Configuration { .. } => ErrorKind::Configuration,
            Error::Provider { .. } => ErrorKind::Provider,
        }
    }

    /// Provider name, if the error came from one.
    pub fn provider_name(&self) -> Option<&str> {
        self.context().provider.as_deref()
    }
    /// Provider error code; for [`Error::Declined`] without one in the context, the decline's code.
    pub fn code(&self) -> Option<&str> {
        self.context().code.as_deref().or(match self {
            Error::Declined { code, .. } => code.as_deref(),
            _ => None,
        })
    }
    /// Provider request id.
    pub fn request_id(&self) -> Option<&str> {
        self.context().request_id.as_deref()
    }
    /// HTTP status, if any.
    pub fn status(&self) -> Option<u16> {
        self.context().status
    }
    /// Message.
    pub fn message(&self) -> &str {
        &self.context().message
    }

    /// Whether trying the same request again may succeed.
    ///
    /// Rate limits, unavailability and timeouts are retryable; everything the caller must change
    /// first (invalid input, declines, auth) is not. A provider's explicit hint
    /// ([`Error::with_retry_hint`], e.g. `Stripe-Should-Retry`) wins over the kind. Circuit-open and
    /// bulkhead-full are not retried by the policy: the guard that raised them is the policy's own.
    pub fn is_retryable(&self) -> bool {
        if let Some(hint) = self.context().retry_hint {
            return hint;
        }
        matches!(
            self.kind(),
            ErrorKind::RateLimited | ErrorKind::Unavailable | ErrorKind::Timeout
        )
    }

    /// The provider's `Retry-After` hint, if any.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Error::RateLimited { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// Whether the provider certainly did not act, so that another provider may be tried without
    /// risking a duplicate effect. Invalid input never qualifies.
    pub fn is_failover_safe(&self) -> bool {
        match self.kind() {
            ErrorKind::InvalidInput | ErrorKind::InvalidSignature | ErrorKind::Declined => false,
            ErrorKind::CircuitOpen | ErrorKind::BulkheadFull | ErrorKind::RateLimited => true,
            _ => self.context().not_processed,
        }
    }

    /// Whether the provider may have acted on the request although the call failed: the
    /// ambiguous errors (a timeout, an `Unavailable` such as a `5xx` or a connection reset after
    /// the request was sent, an unclassified `Provider` error) unless marked
    /// [`not processed`](Error::not_processed). A caller that must not leave an effect behind
    /// (a saga compensating, an operator replaying a dead letter) treats these as "maybe done".
    /// Rejections (invalid input, declined, auth, not found, conflict) and the local guards
    /// (circuit open, bulkhead full, rate limited) are `false`.
    pub fn may_have_acted(&self) -> bool {
        !self.context().not_processed
            && matches!(
                self.kind(),
                ErrorKind::Timeout | ErrorKind::Unavailable | ErrorKind::Provider
            )
    }

    /// For [`Error::InvalidInput`], the field; for [`Error::Configuration`], the setting.
    pub fn field(&self) -> Option<&str> {
        match self {
            Error::InvalidInput { field, .. } => Some(field),
            Error::Configuration { setting, .. } => Some(setting),
            _ => None,
        }
    }
}

#[cfg(test)]
#[path = "error_tests.rs"]
mod tests;
