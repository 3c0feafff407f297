//! Wiring the service to its providers: each one live when its credentials are set, otherwise
//! the provider crate's in-process sandbox (the local notifier for notifications).
//!
//! | integration | live when set | otherwise |
//! |---|---|---|
//! | Stripe (payments, webhooks) | `STRIPE_SECRET_KEY`, `STRIPE_WEBHOOK_SECRET` | `integrations_stripe::sandbox` |
//! | SendGrid (email, event webhook) | `SENDGRID_API_KEY` (+ `SENDGRID_WEBHOOK_PUBLIC_KEY`) | `integrations_sendgrid::sandbox` |
//! | Google Sheets (analytics) | `GOOGLE_APPLICATION_CREDENTIALS`, `GOOGLE_SHEETS_SPREADSHEET_ID` | `integrations_sheets::sandbox` |
//! | Amazon SNS (notifications) | `SNS_TOPIC_ARN` and the standard `AWS_*` | [`LocalNotifier`] |
//! | inbound SNS | `SNS_INBOUND_TOPIC_ARNS` (comma-separated) | not mounted |
//!
//! Live providers use their crate's default policy (recording into the global metrics
//! registry); sandboxes get a policy recording into the registry passed in.
//!
//! Each sandbox keeps only its latest `ORDER_SERVICE_SANDBOX_RETENTION` (default 1,000, at least
//! 100) requests, events and messages (and at least 10,000 idempotency keys, so that a retry
//! finds its key, and as many Stripe payment intents, charges, refunds and customers, so that a
//! checkout confirmed minutes later finds its intent), so a service left running, or load-tested,
//! does not grow with the orders through its sandboxes' logs (their counters keep the totals).
//! The Sheets sandbox keeps every row, as a sheet does, but only the latest `retention` in
//! memory and the others in its temporary file.
//! Measured with `service_load`: at the testkit's default of 10,000 each the server grew about
//! 95 KB an order until the logs were full (484 MB at 10,000 orders).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use integrations_aws::AwsBuilder;
use integrations_aws::sns::{SnsClient, SnsMessageVerifier, SnsNotifier};
use integrations_core::metrics::MetricsRegistry;
use integrations_core::provider::Mailbox;
use integrations_core::resilience::{Backoff, CircuitBreakerConfig, Policy, RetryPolicy};
use integrations_core::{EmailProvider, Notifier, PaymentProvider, Result, SheetsSink};
use integrations_sendgrid::webhook::{EventType, EventWebhookVerifier};
use integrations_sendgrid::{SendGridBuilder, sandbox as sendgrid_sandbox};
use integrations_sheets::{GoogleSheetsBuilder, sandbox as sheets_sandbox};
use integrations_stripe::webhook::StripeWebhookVerifier;
use integrations_stripe::{StripeBuilder, sandbox as stripe_sandbox};

use crate::effects::DEFAULT_SHEET;
use crate::notifier::LocalNotifier;
use crate::state::{IntegrationInfo, IntegrationMode, SnsWebhook};

/// Sender of the confirmation emails: `ORDER_SERVICE_EMAIL_FROM`, default `orders@example.com`.
pub const EMAIL_FROM_ENV: &str = "ORDER_SERVICE_EMAIL_FROM";

/// How many requests, events and messages each sandbox keeps.
pub const SANDBOX_RETENTION_ENV: &str = "ORDER_SERVICE_SANDBOX_RETENTION";

/// [`SANDBOX_RETENTION_ENV`] unless set.
pub const DEFAULT_SANDBOX_RETENTION: usize = 1_000;

/// The fewest idempotency keys and objects (intents, charges, …) the Stripe sandbox keeps (its
/// default).
const MIN_IDEMPOTENCY_RETENTION: usize = 10_000;

/// How many Stripe webhook deliveries may wait for a slot before the Stripe sandbox holds the
/// calls that make events (its back-pressure from a slow receiver).
pub const SANDBOX_WEBHOOK_BACKLOG_ENV: &str = "ORDER_SERVICE_SANDBOX_WEBHOOK_BACKLOG";

/// [`SANDBOX_WEBHOOK_BACKLOG_ENV`], checked: a whole number of at least 1; the sandbox's
/// [`DEFAULT_WEBHOOK_BACKLOG`](stripe_sandbox::DEFAULT_WEBHOOK_BACKLOG) unless set.
///
/// # Errors
/// A configuration error naming the variable.
pub fn sandbox_webhook_backlog(lookup: &dyn Fn(&str) -> Option<String>) -> Result<usize> {
    count_at_least(
        lookup,
        SANDBOX_WEBHOOK_BACKLOG_ENV,
        1,
        stripe_sandbox::DEFAULT_WEBHOOK_BACKLOG,
    )
}

/// How many Stripe webhook deliveries the Stripe sandbox makes at once.
pub const SANDBOX_WEBHOOK_CONCURRENCY_ENV: &str = "ORDER_SERVICE_SANDBOX_WEBHOOK_CONCURRENCY";

/// [`SANDBOX_WEBHOOK_CONCURRENCY_ENV`] unless set: 32, not the sandbox's default of 8. Stripe
/// sends each event as it happens, so its deliveries are as concurrent as the traffic; with 8
/// at a time the service's webhook intake (a durable commit per event, shared in groups) took
/// events more slowly than its API made them under `service_load`, the sandbox's backlog filled
/// and the checkouts slowed to the deliveries' pace (1.7–1.9 ms an order against 1.4–1.5 with
/// 32, and ~45 MB of queued payloads at 30,000 orders; `docs/scaling.md`).
pub const DEFAULT_SANDBOX_WEBHOOK_CONCURRENCY: usize = 32;

/// [`SANDBOX_WEBHOOK_CONCURRENCY_ENV`], checked: a whole number of at least 1;
/// [`DEFAULT_SANDBOX_WEBHOOK_CONCURRENCY`] unless set.
///
/// # Errors
/// A configuration error naming the variable.
pub fn sandbox_webhook_concurrency(lookup: &dyn Fn(&str) -> Option<String>) -> Result<usize> {
    count_at_least(
        lookup,
        SANDBOX_WEBHOOK_CONCURRENCY_ENV,
        1,
        DEFAULT_SANDBOX_WEBHOOK_CONCURRENCY,
    )
}

/// [`SANDBOX_RETENTION_ENV`], checked: a whole number of at least 100.
///
/// # Errors
/// A configuration error naming the variable.
pub fn sandbox_retention(lookup: &dyn Fn(&str) -> Option<String>) -> Result<usize> {
    count_at_least(
        lookup,
        SANDBOX_RETENTION_ENV,
        100,
        DEFAULT_SANDBOX_RETENTION,
    )
}

/// The variable `name` as a whole number of at least `min`, `default` unless set.
fn count_at_least(
    lookup: &dyn Fn(&str) -> Option<String>,
    name: &'static str,
    min: usize,
    default: usize,
) -> Result<usize> {
    let Some(v) = set(lookup, name) else {
        return Ok(default);
    };
    match v.trim().parse::<usize>() {
        Ok(n) if n >= min => Ok(n),
        _ => Err(integrations_core::Error::configuration(
            name,
            format!("{v:?} is not a whole number of at least {min}"),
        )),
    }
}

/// The providers the service runs on, and the sandboxes that must live as long as it does.
pub struct Services {
    /// Payments.
    pub payments: Arc<dyn PaymentProvider>,
    /// Verifier of `/webhooks/stripe`.
    pub stripe_webhook: StripeWebhookVerifier,
    /// Confirmation email.
    pub email: Arc<dyn EmailProvider>,
    /// The policy the email provider's calls run under: the email job's handler timeout is
    /// derived from its worst case.
    pub email_policy: Policy,
    /// Sender of the confirmation email.
    pub email_from: Mailbox,
    /// Verifier of `/webhooks/sendgrid`, when configured.
    pub sendgrid_webhook: Option<EventWebhookVerifier>,
    /// Analytics rows.
    pub sheets: Arc<dyn SheetsSink>,
    /// Notifications.
    pub notifier: Arc<dyn Notifier>,
    /// Inbound SNS, when configured.
    pub sns_webhook: Option<SnsWebhook>,
    /// What is live and what is a sandbox, for `/integrations`.
    pub integrations: Vec<IntegrationInfo>,
    /// The Stripe sandbox, when Stripe is not live.
    pub stripe_sandbox: Option<stripe_sandbox::Sandbox>,
    /// The SendGrid sandbox, when SendGrid is not live.
    pub sendgrid_sandbox: Option<sendgrid_sandbox::Sandbox>,
    /// The Sheets sandbox, when Sheets is not live.
    pub sheets_sandbox: Option<sheets_sandbox::Sandbox>,
    /// The local notifier, when SNS is not live.
    pub local_notifier: Option<Arc<LocalNotifier>>,
}

impl fmt::Debug for Services {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Services")
            .field("integrations", &self.integrations)
            .finish_non_exhaustive()
    }
}

/// The policy sandboxed providers run under: short retries, a breaker, 10 s per attempt,
/// metrics into `registry`.
pub fn sandbox_policy(name: &'static str, registry: &MetricsRegistry) -> Policy {
    Policy::builder(name)
        .circuit_breaker(CircuitBreakerConfig::DEFAULT)
        .retry(RetryPolicy::new(
            2,
            Backoff::new(Duration::from_millis(100), Duration::from_secs(2), 2.0),
        ))
        .attempt_timeout(Duration::from_secs(10))
        .metrics(registry)
        .build()
}

fn set(lookup: &dyn Fn(&str) -> Option<String>, name: &str) -> Option<String> {
    lookup(name).filter(|v| !v.trim().is_empty())
}

fn io(what: &str, e: &std::io::Error) -> integrations_core::Error {
    integrations_core::Error::unavailable(format!("could not start the {what} sandbox: {e}"))
}

impl Services {
    /// Wires every provider from the environment.
    ///
    /// # Errors
    /// A live provider's configuration error (naming the variable), or a sandbox that cannot bind
    /// a loopback port.
    pub async fn from_env(registry: &MetricsRegistry) -> Result<Services> {
        Services::from_lookup(&|n| std::env::var(n).ok(), registry).await
    }

    /// Like [`Services::from_env`], reading variables through `lookup`. (The live Google Sheets
    /// and AWS clients read their own settings from the process environment: their builders take
    /// no lookup. `lookup` still decides whether they are used.)
    ///
    /// # Errors
    /// As [`Services::from_env`].
    pub async fn from_lookup(
        lookup: &dyn Fn(&str) -> Option<String>,
        registry: &MetricsRegistry,
    ) -> Result<Services> {
        let mut integrations = Vec::new();
        let retention = sandbox_retention(lookup)?;
        let (payments, stripe_webhook, stripe_sandbox) =
            payments(lookup, registry, retention, &mut integrations).await?;
        let (email, email_policy, sendgrid_webhook, sendgrid_sandbox) =
            email(lookup, registry, retention, &mut integrations).await?;
        let (sheets, sheets_sandbox) =
            sheets(lookup, registry, retention, &mut integrations).await?;
        let (notifier, local_notifier) = notifications(lookup, registry, &mut integrations)?;
        let sns_webhook = sns_webhook(lookup, registry);

        let from = set(lookup, EMAIL_FROM_ENV).unwrap_or_else(|| "orders@example.com".to_owned());
        Ok(Services {
            payments,
            stripe_webhook,
            email,
            email_policy,
            email_from: Mailbox::named(from, "Order service"),
            sendgrid_webhook,
            sheets,
            notifier,
            sns_webhook,
            integrations,
            stripe_sandbox,
            sendgrid_sandbox,
            sheets_sandbox,
            local_notifier,
        })
    }

    /// Points the sandboxes' webhooks at the service listening on `base_url`
    /// (`http://127.0.0.1:8080`): Stripe events to `/webhooks/stripe`, SendGrid event batches
    /// (`processed`, `delivered` for every message) to `/webhooks/sendgrid`.
    pub fn connect_sandbox_webhooks(&self, base_url: &str) {
        let base = base_url.trim_end_matches('/');
        if let Some(sb) = &self.stripe_sandbox {
            sb.add_webhook_endpoint(format!("{base}/webhooks/stripe"));
        }
        if let Some(sb) = &self.sendgrid_sandbox {
            sb.set_webhook_target(Some(sendgrid_sandbox::WebhookTarget::Url(format!(
                "{base}/webhooks/sendgrid"
            ))));
            sb.set_auto_events(&[EventType::Processed, EventType::Delivered]);
        }
    }
}

/// Payments: what the service charges through, the verifier of Stripe's webhooks, and the
/// sandbox when there is one.
type PaymentsWiring = (
    Arc<dyn PaymentProvider>,
    StripeWebhookVerifier,
    Option<stripe_sandbox::Sandbox>,
);

/// Stripe when `STRIPE_SECRET_KEY` is set, else its sandbox.
async fn payments(
    lookup: &dyn Fn(&str) -> Option<String>,
    registry: &MetricsRegistry,
    retention: usize,
    integrations: &mut Vec<IntegrationInfo>,
) -> Result<PaymentsWiring> {
    Ok(if set(lookup, "STRIPE_SECRET_KEY").is_some() {
        let client = StripeBuilder::from_lookup(|n| lookup(n))
            .with_metrics(registry)
            .build()?;
        let verifier = StripeWebhookVerifier::from_lookup(|n| lookup(n))?;
        integrations.push(IntegrationInfo::new(
            "stripe",
            "payments",
            IntegrationMode::Live,
        ));
        (Arc::new(client), verifier, None)
    } else {
        let sb = stripe_sandbox::Sandbox::builder()
            .request_retention(retention)
            .event_retention(retention)
            // A retry must still find its key's first answer: never fewer than the testkit's
            // default (a few seconds of keys at full speed would be too few).
            .idempotency_retention(retention.max(MIN_IDEMPOTENCY_RETENTION))
            // Payment intents, charges, refunds and customers: a customer may confirm a
            // checkout minutes after it was created, so as many as the idempotency keys.
            .object_retention(retention.max(MIN_IDEMPOTENCY_RETENTION))
            .webhook_backlog(sandbox_webhook_backlog(lookup)?)
            .webhook_concurrency(sandbox_webhook_concurrency(lookup)?)
            .start()
            .await
            .map_err(|e| io("Stripe", &e))?;
        let client = sb
            .client_builder()
            .with_policy(sandbox_policy("stripe", registry))
            .build()?;
        let verifier = StripeWebhookVerifier::new(sb.webhook_secret());
        integrations.push(IntegrationInfo::new(
            "stripe",
            "payments",
            IntegrationMode::Sandbox,
        ));
        (Arc::new(client), verifier, Some(sb))
    })
}

/// Email: the provider, the verifier of its event webhook (if any), and the sandbox.
type EmailWiring = (
    Arc<dyn EmailProvider>,
    Policy,
    Option<EventWebhookVerifier>,
    Option<sendgrid_sandbox::Sandbox>,
);

/// SendGrid when `SENDGRID_API_KEY` is set, else its sandbox.
async fn email(
    lookup: &dyn Fn(&str) -> Option<String>,
    registry: &MetricsRegistry,
    retention: usize,
    integrations: &mut Vec<IntegrationInfo>,
) -> Result<EmailWiring> {
    Ok(if set(lookup, "SENDGRID_API_KEY").is_some() {
        let verifier = match set(lookup, "SENDGRID_WEBHOOK_PUBLIC_KEY") {
            Some(key) => Some(EventWebhookVerifier::new(&key)?),
            None => None,
        };
        integrations.push(IntegrationInfo::new(
            "sendgrid",
            "email",
            IntegrationMode::Live,
        ));
        let email = SendGridBuilder::from_lookup(|n| lookup(n))
            .with_metrics(registry)
            .build()?;
        let policy = email.client().policy().clone();
        (Arc::new(email), policy, verifier, None)
    } else {
        let sb = sendgrid_sandbox::Sandbox::builder()
            .request_retention(retention)
            .message_retention(retention)
            .start()
            .await
            .map_err(|e| io("SendGrid", &e))?;
        let email = sb
            .email()
            .with_policy(sandbox_policy("sendgrid", registry))
            .build()?;
        let verifier = sb.webhook_verifier();
        integrations.push(IntegrationInfo::new(
            "sendgrid",
            "email",
            IntegrationMode::Sandbox,
        ));
        let policy = email.client().policy().clone();
        (Arc::new(email), policy, Some(verifier), Some(sb))
    })
}

/// Google Sheets when its credentials and spreadsheet are set, else its sandbox.
async fn sheets(
    lookup: &dyn Fn(&str) -> Option<String>,
    registry: &MetricsRegistry,
    retention: usize,
    integrations: &mut Vec<IntegrationInfo>,
) -> Result<(Arc<dyn SheetsSink>, Option<sheets_sandbox::Sandbox>)> {
    let live_sheets = set(lookup, "GOOGLE_APPLICATION_CREDENTIALS").is_some()
        && set(lookup, "GOOGLE_SHEETS_SPREADSHEET_ID").is_some();
    Ok(if live_sheets {
        integrations.push(IntegrationInfo::new(
            "google-sheets",
            "analytics",
            IntegrationMode::Live,
        ));
        (
            Arc::new(
                GoogleSheetsBuilder::from_env()
                    .with_metrics(registry)
                    .build()?,
            ),
            None,
        )
    } else {
        // The sheet keeps every row, as a sheet does; past the retention they wait in the
        // sandbox's temporary file instead of memory (~500 B a row in memory otherwise).
        let sb = sheets_sandbox::Sandbox::builder()
            .request_retention(retention)
            .resident_rows(retention)
            .start()
            .await?;
        sb.add_sheet(sb.spreadsheet_id(), DEFAULT_SHEET);
        let sink = sb
            .client_builder()
            .with_write_policy(sandbox_policy("google-sheets", registry))
            .with_read_policy(sandbox_policy("google-sheets", registry))
            .with_token_policy(sandbox_policy("google-sheets", registry))
            .build()?;
        integrations.push(IntegrationInfo::new(
            "google-sheets",
            "analytics",
            IntegrationMode::Sandbox,
        ));
        (Arc::new(sink), Some(sb))
    })
}

/// Notifications: the notifier, and the local one when it is used.
type NotifierWiring = (Arc<dyn Notifier>, Option<Arc<LocalNotifier>>);

/// SNS when `SNS_TOPIC_ARN` is set, else the local notifier.
fn notifications(
    lookup: &dyn Fn(&str) -> Option<String>,
    registry: &MetricsRegistry,
    integrations: &mut Vec<IntegrationInfo>,
) -> Result<NotifierWiring> {
    let aws = || AwsBuilder::from_env().with_metrics(registry).build();
    Ok(match set(lookup, "SNS_TOPIC_ARN") {
        Some(arn) => {
            let n = SnsNotifier::new(&aws()?, arn);
            integrations.push(IntegrationInfo::new(
                n.name().to_owned(),
                "notifications",
                IntegrationMode::Live,
            ));
            (Arc::new(n), None)
        }
        None => {
            let n = Arc::new(LocalNotifier::new(registry));
            integrations.push(IntegrationInfo::new(
                n.name().to_owned(),
                "notifications",
                IntegrationMode::Local,
            ));
            (n.clone(), Some(n))
        }
    })
}

/// The inbound SNS endpoint when `SNS_INBOUND_TOPIC_ARNS` is set: it verifies messages from those
/// topics, and confirms their subscriptions when AWS is configured.
fn sns_webhook(
    lookup: &dyn Fn(&str) -> Option<String>,
    registry: &MetricsRegistry,
) -> Option<SnsWebhook> {
    let aws = || AwsBuilder::from_env().with_metrics(registry).build();
    match set(lookup, "SNS_INBOUND_TOPIC_ARNS") {
        None => None,
        Some(raw) => {
            let topics = raw
                .split(',')
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(str::to_owned);
            let hook = SnsWebhook::new(SnsMessageVerifier::new(), topics);
            Some(match aws() {
                Ok(config) => hook.confirm_with(SnsClient::new(&config)),
                Err(e) => {
                    tracing::warn!(error = %e, "no AWS configuration: SNS subscriptions will not be confirmed");
                    hook
                }
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sandbox_retention_defaults_and_refuses_what_is_not_a_count_of_at_least_100() {
        assert_eq!(
            sandbox_retention(&|_| None).unwrap(),
            DEFAULT_SANDBOX_RETENTION
        );
        assert_eq!(sandbox_retention(&|_| Some("250".into())).unwrap(), 250);
        assert_eq!(
            sandbox_webhook_backlog(&|_| None).unwrap(),
            stripe_sandbox::DEFAULT_WEBHOOK_BACKLOG
        );
        assert_eq!(
            sandbox_webhook_backlog(&|_| Some(" 5000 ".into())).unwrap(),
            5000
        );
        for bad in ["0", "-3", "many"] {
            let e = sandbox_webhook_backlog(&|_| Some(bad.into())).unwrap_err();
            assert_eq!(e.field(), Some(SANDBOX_WEBHOOK_BACKLOG_ENV), "{bad}");
            assert!(e.to_string().contains(bad), "{e}");
        }
        assert_eq!(
            sandbox_webhook_concurrency(&|_| None).unwrap(),
            DEFAULT_SANDBOX_WEBHOOK_CONCURRENCY
        );
        assert_eq!(
            sandbox_webhook_concurrency(&|_| Some("32".into())).unwrap(),
            32
        );
        for bad in ["0", "-1", "all"] {
            let e = sandbox_webhook_concurrency(&|_| Some(bad.into())).unwrap_err();
            assert_eq!(e.field(), Some(SANDBOX_WEBHOOK_CONCURRENCY_ENV), "{bad}");
            assert!(e.to_string().contains(bad), "{e}");
        }
        for bad in ["99", "-1", "lots"] {
            let e = sandbox_retention(&|_| Some(bad.into())).unwrap_err();
            assert_eq!(e.field(), Some(SANDBOX_RETENTION_ENV), "{bad}");
            assert!(e.to_string().contains(bad), "{e}");
        }
    }
}
