//! [`StubEmailProvider`]: a recording, scriptable [`EmailProvider`].

use std::fmt;
use std::sync::Mutex;

use async_trait::async_trait;

use super::script::{Script, lock};
use integrations_core::failover::missing_email_capability;
use integrations_core::provider::{EmailCapabilities, EmailMessage, EmailProvider, SentEmail};
use integrations_core::{Error, Result};

type Failing = Box<dyn Fn(&EmailMessage) -> Error + Send + Sync>;

/// An [`EmailProvider`] that sends nothing and remembers everything.
///
/// It behaves like a real provider where the contract says so: it validates every message
/// ([`EmailMessage::validate`]) and refuses what its capabilities exclude, both with
/// [`Error::InvalidInput`], before anything else. Scripted failures
/// ([`StubEmailProvider::fail_next`], [`StubEmailProvider::failing`]) come after that local
/// validation, where a real client would reach the network.
///
/// ```
/// use integrations_core::provider::{EmailMessage, EmailProvider};
/// use integrations_testkit::StubEmailProvider;
/// use integrations_core::Error;
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let stub = StubEmailProvider::new_ok();
/// let msg = EmailMessage::builder("shop@example.com")
///     .to("jane@example.com")
///     .subject("Order confirmed")
///     .text("Thanks!")
///     .build();
/// stub.fail_next(1, || Error::unavailable("connection refused").not_processed());
/// assert!(stub.send(&msg).await.is_err());
/// let sent = stub.send(&msg).await?;
/// assert_eq!(sent.provider, "stub-email");
/// assert_eq!(stub.sent(), vec![msg]);
/// assert_eq!(stub.calls(), 2);
/// # Ok::<(), Error>(())
/// # }).unwrap();
/// ```
pub struct StubEmailProvider {
    name: String,
    capabilities: EmailCapabilities,
    failing: Option<Failing>,
    script: Script,
    sent: Mutex<Vec<(SentEmail, EmailMessage)>>,
}

impl StubEmailProvider {
    /// A stub named `stub-email` with every capability, accepting every valid message.
    pub fn new_ok() -> Self {
        StubEmailProvider {
            name: "stub-email".to_owned(),
            capabilities: EmailCapabilities::all(),
            failing: None,
            script: Script::default(),
            sent: Mutex::new(Vec::new()),
        }
    }

    /// A stub whose every send of a valid message fails with `f(message)`.
    pub fn failing(f: impl Fn(&EmailMessage) -> Error + Send + Sync + 'static) -> Self {
        StubEmailProvider {
            failing: Some(Box::new(f)),
            ..StubEmailProvider::new_ok()
        }
    }

    /// Renames the stub (what [`EmailProvider::name`] and receipts say).
    #[must_use]
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Declares these capabilities; messages needing others are refused.
    #[must_use]
    pub fn with_capabilities(mut self, capabilities: EmailCapabilities) -> Self {
        self.capabilities = capabilities;
        self
    }

    /// Makes the next `n` sends of valid messages fail with `error()` (`usize::MAX`: until
    /// [`StubEmailProvider::clear_failures`]).
    pub fn fail_next(&self, n: usize, error: impl Fn() -> Error + Send + Sync + 'static) {
        self.script.fail_next(n, error);
    }

    /// Drops every scripted failure: the stub answers normally again (an outage ends).
    pub fn clear_failures(&self) {
        self.script.clear();
    }

    /// Messages accepted so far, in order.
    pub fn sent(&self) -> Vec<EmailMessage> {
        lock(&self.sent).iter().map(|(_, m)| m.clone()).collect()
    }

    /// Receipts returned so far, in order.
    pub fn receipts(&self) -> Vec<SentEmail> {
        lock(&self.sent).iter().map(|(r, _)| r.clone()).collect()
    }

    /// Calls to [`EmailProvider::send`], failed ones included.
    pub fn calls(&self) -> usize {
        self.script.calls()
    }
}

impl fmt::Debug for StubEmailProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StubEmailProvider")
            .field("name", &self.name)
            .field("capabilities", &self.capabilities)
            .field("failing", &self.failing.is_some())
            .field("calls", &self.calls())
            .field("sent", &lock(&self.sent).len())
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl EmailProvider for StubEmailProvider {
    fn name(&self) -> &str {
        &self.name
    }

    fn capabilities(&self) -> EmailCapabilities {
        self.capabilities
    }

    async fn send(&self, message: &EmailMessage) -> Result<SentEmail> {
        let provider = || self.name.clone();
        self.script.begin_call();
        message.validate().map_err(|e| e.or_provider(provider()))?;
        if let Some(missing) = missing_email_capability(self.capabilities, message) {
            return Err(Error::invalid_input(
                missing.field,
                format!("{} does not support {}", self.name, missing.capability),
            )
            .with_provider(provider()));
        }
        if let Some(e) = self.script.scripted_failure() {
            return Err(e.or_provider(provider()));
        }
        if let Some(f) = &self.failing {
            return Err(f(message).or_provider(provider()));
        }
        let mut sent = lock(&self.sent);
        let receipt = SentEmail::new(
            self.name.clone(),
            format!("{}-msg-{}", self.name, sent.len() + 1),
        );
        sent.push((receipt.clone(), message.clone()));
        Ok(receipt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use integrations_core::ErrorKind;

    fn msg() -> EmailMessage {
        EmailMessage::builder("shop@example.com")
            .to("jane@example.com")
            .subject("s")
            .text("t")
            .build()
    }

    #[tokio::test]
    async fn records_and_numbers_messages() {
        let s = StubEmailProvider::new_ok().with_name("a");
        let r1 = s.send(&msg()).await.unwrap();
        let r2 = s.send(&msg()).await.unwrap();
        assert_eq!(r1.message_id, "a-msg-1");
        assert_eq!(r2.message_id, "a-msg-2");
        assert_eq!(s.receipts(), vec![r1, r2]);
        assert_eq!(s.sent().len(), 2);
    }

    #[tokio::test]
    async fn validates_and_honours_capabilities() {
        let s = StubEmailProvider::new_ok().with_capabilities(EmailCapabilities::default());
        let mut bad = msg();
        bad.personalizations.clear();
        let e = s.send(&bad).await.unwrap_err();
        assert_eq!(e.field(), Some("personalizations"));
        assert_eq!(e.provider_name(), Some("stub-email"));
        let t = EmailMessage::builder("shop@example.com")
            .to("jane@example.com")
            .template("d-1")
            .build();
        let e = s.send(&t).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
        assert_eq!(e.field(), Some("template_id"));
        assert!(s.sent().is_empty());
        assert_eq!(s.calls(), 2);
    }

    #[tokio::test]
    async fn failing_stub_fails_every_call() {
        let s = StubEmailProvider::failing(|m| {
            Error::unavailable(format!("down for {}", m.from.email)).not_processed()
        });
        for _ in 0..3 {
            let e = s.send(&msg()).await.unwrap_err();
            assert!(e.to_string().contains("shop@example.com"));
            assert!(e.is_failover_safe());
        }
        assert_eq!(s.calls(), 3);
        assert!(s.sent().is_empty());
        assert!(format!("{s:?}").contains("failing: true"));
    }
}
