//! Failover: an ordered list of providers of one trait that is itself a provider of that trait.
//!
//! [`Failover`] tries its providers in order and moves to the next one **only** when the error
//! says the previous provider certainly did not act ([`Error::is_failover_safe`]: connection
//! refused, circuit open, bulkhead full, rate limited, unavailable before processing). Anything
//! else — invalid input, a decline, a timeout after which the provider may have sent the mail — is
//! returned at once, because trying another provider could deliver twice.
//!
//! Implemented for [`EmailProvider`] and [`Notifier`]. Its name is `"failover"`; the receipt
//! ([`SentEmail::provider`], [`Published::provider`]) names the provider that actually served.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use async_trait::async_trait;

use crate::provider::{
    EmailBody, EmailCapabilities, EmailMessage, EmailProvider, Notification, Notifier, Published,
    SentEmail,
};
use crate::{Error, Result};

/// The name a [`Failover`] reports as its own.
pub const NAME: &str = "failover";

const NONE_SERVED: usize = usize::MAX;

/// An ordered list of providers; see the [module docs](self).
///
/// `P` is usually a trait object (`Failover<dyn EmailProvider>`), but any provider type works.
///
/// ```
/// use std::sync::Arc;
/// use integrations_core::failover::Failover;
/// use integrations_core::provider::{EmailMessage, EmailProvider};
/// use integrations_testkit::StubEmailProvider;
/// use integrations_core::Error;
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let sendgrid = Arc::new(StubEmailProvider::new_ok().with_name("sendgrid"));
/// let ses = Arc::new(StubEmailProvider::new_ok().with_name("ses"));
/// let email = Failover::<dyn EmailProvider>::from_primary(sendgrid.clone())
///     .with_fallback(ses.clone());
///
/// sendgrid.fail_next(1, || Error::circuit_open("sendgrid breaker open"));
/// let msg = EmailMessage::builder("shop@example.com")
///     .to("jane@example.com")
///     .subject("Order confirmed")
///     .text("Thanks!")
///     .build();
/// let sent = email.send(&msg).await?;
/// assert_eq!(sent.provider, "ses");
/// assert_eq!(email.served_counts(), vec![0, 1]);
/// assert_eq!(email.last_served(), Some(1));
/// # Ok::<(), Error>(())
/// # }).unwrap();
/// ```
pub struct Failover<P: ?Sized> {
    providers: Vec<Arc<P>>,
    served: Vec<AtomicU64>,
    failed: Vec<AtomicU64>,
    last_served: AtomicUsize,
}

impl<P: ?Sized> Failover<P> {
    /// A failover over `providers`, tried in this order.
    ///
    /// # Errors
    /// [`Error::Configuration`] naming `providers` when the list is empty.
    pub fn new(providers: Vec<Arc<P>>) -> Result<Self> {
        if providers.is_empty() {
            return Err(Error::configuration(
                "providers",
                "a failover needs at least one provider",
            ));
        }
        let n = providers.len();
        Ok(Failover {
            providers,
            served: (0..n).map(|_| AtomicU64::new(0)).collect(),
            failed: (0..n).map(|_| AtomicU64::new(0)).collect(),
            last_served: AtomicUsize::new(NONE_SERVED),
        })
    }

    /// A failover whose first provider is `primary`.
    pub fn from_primary(primary: Arc<P>) -> Self {
        Failover {
            providers: vec![primary],
            served: vec![AtomicU64::new(0)],
            failed: vec![AtomicU64::new(0)],
            last_served: AtomicUsize::new(NONE_SERVED),
        }
    }

    /// Appends `fallback`, tried after every provider before it.
    #[must_use]
    pub fn with_fallback(mut self, fallback: Arc<P>) -> Self {
        self.providers.push(fallback);
        self.served.push(AtomicU64::new(0));
        self.failed.push(AtomicU64::new(0));
        self
    }

    /// The providers, in order.
    pub fn providers(&self) -> &[Arc<P>] {
        &self.providers
    }

    /// How many calls each provider served, indexed like [`Failover::providers`].
    pub fn served_counts(&self) -> Vec<u64> {
        self.served
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .collect()
    }

    /// How many times each provider failed in a way that let the call move on (failover-safe
    /// errors), indexed like [`Failover::providers`].
    pub fn failure_counts(&self) -> Vec<u64> {
        self.failed
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .collect()
    }

    /// Index of the provider that served the most recent successful call.
    pub fn last_served(&self) -> Option<usize> {
        match self.last_served.load(Ordering::Relaxed) {
            NONE_SERVED => None,
            i => Some(i),
        }
    }

    fn record_served(&self, i: usize) {
        self.served[i].fetch_add(1, Ordering::Relaxed);
        self.last_served.store(i, Ordering::Relaxed);
    }

    /// Decides what to do with provider `i`'s error: `Err(e)` to return it now, `Ok(e)` to keep it
    /// as the last error and try the next provider.
    fn on_error(&self, i: usize, name: &str, operation: &'static str, e: Error) -> Result<Error> {
        let e = e.or_provider(name.to_owned());
        if !e.is_failover_safe() {
            tracing::warn!(
                target: "integrations::failover",
                provider = name,
                position = i,
                operation,
                error.kind = %e.kind(),
                error = %e,
                "provider failed in a way that may have had an effect; not failing over"
            );
            return Err(e);
        }
        self.failed[i].fetch_add(1, Ordering::Relaxed);
        let has_next = i + 1 < self.providers.len();
        tracing::warn!(
            target: "integrations::failover",
            provider = name,
            position = i,
            operation,
            error.kind = %e.kind(),
            error = %e,
            has_next,
            "provider did not act; failing over"
        );
        Ok(e)
    }
}

impl<P: ?Sized + fmt::Debug> fmt::Debug for Failover<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Failover")
            .field("providers", &self.providers)
            .field("served", &self.served_counts())
            .field("failed", &self.failure_counts())
            .finish()
    }
}

/// A capability a message needs and the field that needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct MissingCapability {
    /// Field of the message (`template_id`, `attachments`, `send_at`, `categories`).
    pub field: &'static str,
    /// Capability name, for messages.
    pub capability: &'static str,
}

/// The first capability `message` needs that `caps` lacks: what a provider (or a test double)
/// refuses with [`Error::InvalidInput`] naming [`MissingCapability::field`].
pub fn missing_email_capability(
    caps: EmailCapabilities,
    message: &EmailMessage,
) -> Option<MissingCapability> {
    let needs = [
        (
            matches!(message.body, EmailBody::Template { .. }),
            caps.templates,
            "template_id",
            "templates",
        ),
        (
            !message.attachments.is_empty(),
            caps.attachments,
            "attachments",
            "attachments",
        ),
        (
            message.send_at.is_some(),
            caps.scheduling,
            "send_at",
            "scheduled sending",
        ),
        (
            !message.categories.is_empty(),
            caps.categories,
            "categories",
            "categories",
        ),
    ];
    needs
        .into_iter()
        .find(|(needed, has, _, _)| *needed && !*has)
        .map(|(_, _, field, capability)| MissingCapability { field, capability })
}

/// Failover over email providers.
///
/// Its capabilities are the **intersection** of its providers' capabilities: a caller that
/// checks them never builds a message some provider of the list could not send. A message that
/// needs a capability anyway (a template) skips the providers lacking it; if none has it, the
/// send fails with [`Error::InvalidInput`] naming the field (`template_id`, …).
#[async_trait]
impl<P: EmailProvider + ?Sized> EmailProvider for Failover<P> {
    fn name(&self) -> &str {
        NAME
    }

    fn capabilities(&self) -> EmailCapabilities {
        self.providers
            .iter()
            .fold(EmailCapabilities::all(), |acc, p| {
                let c = p.capabilities();
                EmailCapabilities {
                    templates: acc.templates && c.templates,
                    attachments: acc.attachments && c.attachments,
                    scheduling: acc.scheduling && c.scheduling,
                    categories: acc.categories && c.categories,
                }
            })
    }

    async fn send(&self, message: &EmailMessage) -> Result<SentEmail> {
        message.validate().map_err(|e| e.or_provider(NAME))?;
        let mut last_error = None;
        let mut first_missing = None;
        for (i, p) in self.providers.iter().enumerate() {
            if let Some(missing) = missing_email_capability(p.capabilities(), message) {
                tracing::debug!(
                    target: "integrations::failover",
                    provider = p.name(),
                    position = i,
                    capability = missing.capability,
                    "skipping provider without a capability the message needs"
                );
                first_missing.get_or_insert(missing);
                continue;
            }
            match p.send(message).await {
                Ok(sent) => {
                    self.record_served(i);
                    tracing::info!(
                        target: "integrations::failover",
                        provider = p.name(),
                        position = i,
                        operation = "send_email",
                        "served"
                    );
                    return Ok(sent);
                }
                Err(e) => last_error = Some(self.on_error(i, p.name(), "send_email", e)?),
            }
        }
        Err(last_error.unwrap_or_else(|| {
            let missing = first_missing.unwrap_or(MissingCapability {
                field: "message",
                capability: "this message",
            });
            Error::invalid_input(
                missing.field,
                format!(
                    "no provider of the failover supports {}",
                    missing.capability
                ),
            )
            .with_provider(NAME)
        }))
    }
}

/// Failover over notifiers.
#[async_trait]
impl<P: Notifier + ?Sized> Notifier for Failover<P> {
    fn name(&self) -> &str {
        NAME
    }

    async fn publish(&self, notification: &Notification) -> Result<Published> {
        notification.validate().map_err(|e| e.or_provider(NAME))?;
        let mut last_error = None;
        for (i, p) in self.providers.iter().enumerate() {
            match p.publish(notification).await {
                Ok(published) => {
                    self.record_served(i);
                    tracing::info!(
                        target: "integrations::failover",
                        provider = p.name(),
                        position = i,
                        operation = "publish",
                        "served"
                    );
                    return Ok(published);
                }
                Err(e) => last_error = Some(self.on_error(i, p.name(), "publish", e)?),
            }
        }
        // `providers` is never empty, so at least one error was kept.
        Err(last_error.unwrap_or_else(|| Error::configuration("providers", "no provider")))
    }
}
