//! The services a run uses: in-process sandboxes, or the real providers when credentials are set.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use integrations_aws::AwsBuilder;
use integrations_aws::ses::SesEmail;
use integrations_aws::sns::SnsNotifier;
use integrations_core::failover::Failover;
use integrations_core::metrics::MetricsRegistry;
use integrations_core::provider::{
    EmailCapabilities, EmailMessage, EmailProvider, Mailbox, PaymentProvider, SentEmail,
};
use integrations_core::{Error, Notifier, Policy, Result, SheetsSink};
use integrations_sendgrid::{SendGridBuilder, SendGridClient};
use integrations_sheets::{BatchConfig, GoogleSheetsBuilder, GoogleSheetsSink};
use integrations_stripe::webhook::StripeWebhookVerifier;
use integrations_stripe::{Mode, StripeBuilder, StripeClient, StripePayments};

use super::config::{
    ENV_EMAIL_FROM, ENV_EMAIL_TO, ENV_GOOGLE, ENV_SENDGRID, ENV_SENDGRID_API_BASE,
    ENV_SHEETS_BASE_URL, ENV_SNS_TOPIC, ENV_SPREADSHEET, ENV_STRIPE, ENV_STRIPE_API_BASE,
    FlowConfig,
};
use super::jobs::SHEET;
use super::ledger::StandIns;
use super::notifier::{self, JsonlNotifier};
use super::policies::{self, JobBudgets};

/// The name of the second email provider when it is a SendGrid sandbox.
pub const BACKUP_LABEL: &str = "sendgrid-backup";
/// The outbox's file in the run's directory.
pub const OUTBOX_FILE: &str = "outbox.db";
/// The local notifier's file in the run's directory.
pub const NOTIFICATIONS_FILE: &str = "notifications.jsonl";

/// An email provider reporting itself (and its receipts) under another name, so two instances
/// of one provider can be told apart in a failover.
#[derive(Debug)]
pub struct Labelled<E> {
    label: &'static str,
    inner: E,
}

impl<E> Labelled<E> {
    /// `inner`, named `label`.
    pub fn new(label: &'static str, inner: E) -> Self {
        Labelled { label, inner }
    }
}

#[async_trait]
impl<E: EmailProvider> EmailProvider for Labelled<E> {
    fn name(&self) -> &str {
        self.label
    }
    fn capabilities(&self) -> EmailCapabilities {
        self.inner.capabilities()
    }
    async fn send(&self, message: &EmailMessage) -> Result<SentEmail> {
        let sent = self.inner.send(message).await?;
        Ok(SentEmail::new(self.label, sent.message_id))
    }
}

/// Which implementation serves one role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backend {
    /// `payments`, `email`, `email backup`, `analytics`, `notifications`, `metrics`.
    pub role: &'static str,
    /// What serves it.
    pub what: String,
    /// Whether it is a real, remote service (credentials from the environment); a loopback
    /// endpoint named in the environment is local.
    pub real: bool,
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let tag = if self.real { "REAL" } else { "local" };
        write!(f, "{:<14} {:<5} {}", self.role, tag, self.what)
    }
}

/// The services of one run. Dropping it stops the sandboxes.
#[derive(Debug)]
pub struct Services {
    /// Payments (Stripe).
    pub payments: Arc<StripePayments>,
    /// The Stripe client, for listing events (real Stripe).
    pub stripe_client: StripeClient,
    /// Verifies signed webhook deliveries (`None`: real Stripe without `STRIPE_WEBHOOK_SECRET`).
    pub verifier: Option<StripeWebhookVerifier>,
    /// The Stripe sandbox, when used.
    pub stripe_sandbox: Option<integrations_stripe::sandbox::Sandbox>,
    /// Email: primary, then backup.
    pub email: Arc<Failover<dyn EmailProvider>>,
    /// The primary SendGrid sandbox, when used.
    pub sendgrid_sandbox: Option<integrations_sendgrid::sandbox::Sandbox>,
    /// The backup SendGrid sandbox, when used.
    pub backup_sandbox: Option<integrations_sendgrid::sandbox::Sandbox>,
    /// The SendGrid clients of the email providers (label, client), for looking up whether an
    /// interrupted send was accepted; SES, which cannot be asked, has none.
    pub email_lookups: Vec<(String, SendGridClient)>,
    /// The emails the SendGrid sandboxes accepted, per order (empty without sandboxes).
    pub email_tally: Arc<super::audit::EmailTally>,
    /// The payments the Stripe sandbox announced, per order (empty without the sandbox).
    pub payment_tally: Arc<super::payment_tally::PaymentTally>,
    /// Sender.
    pub from: Mailbox,
    /// Inbox every customer email goes to, when set (real email providers).
    pub recipient: Option<String>,
    /// Analytics rows.
    pub sheets: GoogleSheetsSink,
    /// The Sheets sandbox, when used.
    pub sheets_sandbox: Option<integrations_sheets::sandbox::Sandbox>,
    /// Notifications.
    pub notifier: Arc<dyn Notifier>,
    /// The local notifier, when used (for fault injection).
    pub jsonl_notifier: Option<Arc<JsonlNotifier>>,
    /// The JSONL file, when the local notifier is used.
    pub notifications_file: Option<std::path::PathBuf>,
    /// The policies the email, Sheets and notify jobs call under.
    pub job_policies: JobPolicies,
    /// Which implementation serves each role.
    pub backends: Vec<Backend>,
}

impl Services {
    /// The kinds of effect the end-of-run audit cannot ask the provider about, for which the
    /// job handlers' own records ([`Ledger`](super::ledger::Ledger)) stand in: emails unless
    /// every email provider is a SendGrid sandbox, rows without the Sheets sandbox,
    /// notifications without the local notifications file.
    pub fn stand_ins(&self) -> StandIns {
        let sandboxes = usize::from(self.sendgrid_sandbox.is_some())
            + usize::from(self.backup_sandbox.is_some());
        StandIns {
            emails: sandboxes != self.email.providers().len(),
            rows: self.sheets_sandbox.is_none(),
            notifications: self.notifications_file.is_none(),
        }
    }
}

/// The policies a job's provider calls run under, bounded by the job's share of the handler
/// timeout ([`JobBudgets`]); the dispatcher refuses to build if a worst case exceeds it.
#[derive(Debug, Clone)]
pub struct JobPolicies {
    /// The email failover: both providers' worst cases, one after the other.
    pub email: Policy,
    /// A Sheets row: a read, then a write.
    pub sheets: Policy,
    /// The notifier.
    pub notify: Policy,
}

fn io(what: &str) -> impl Fn(std::io::Error) -> Error + '_ {
    move |e| Error::unavailable(format!("cannot start the {what} sandbox: {e}")).with_source(e)
}

impl Services {
    /// Starts the sandboxes (or builds the real clients) for `config.env`, recording every call's
    /// metrics in `registry`, with files in `dir`: the notifications file is appended to when
    /// the run keeps a state directory, created afresh otherwise.
    ///
    /// # Errors
    /// [`Error::Configuration`] naming a missing or refused setting (a live Stripe key, a real
    /// email provider without `ORDER_FLOW_EMAIL_FROM`/`ORDER_FLOW_EMAIL_TO`, …);
    /// [`Error::Unavailable`] if a sandbox cannot bind a port.
    pub async fn start(
        config: &FlowConfig,
        registry: &MetricsRegistry,
        dir: &Path,
    ) -> Result<Self> {
        let env = &config.env;
        let mut setup = Setup {
            env,
            registry,
            timeout: config.attempt_timeout,
            retention: config.sandbox_retention,
            budgets: JobBudgets::of(config.handler_timeout()),
            email_policies: Vec::new(),
            sheets_policy: None,
            notify_policy: None,
            backends: Vec::new(),
        };
        let (from, recipient) = setup.sender()?;
        let (stripe_client, stripe_sandbox, verifier) = setup.payments().await?;
        let payments = Arc::new(StripePayments::new(stripe_client.clone()));
        let payment_tally = Arc::new(super::payment_tally::PaymentTally::default());
        if let Some(s) = &stripe_sandbox {
            payment_tally.watch(s);
        }

        // Email: SendGrid, failing over to SES (AWS set) or a second SendGrid sandbox.
        let real_sendgrid = env.has(ENV_SENDGRID);
        let sendgrid_local = env.is_loopback(ENV_SENDGRID_API_BASE);
        let (primary, sendgrid_sandbox, primary_client) =
            setup.primary_email(real_sendgrid, sendgrid_local).await?;
        let (backup, backup_sandbox, backup_client) =
            setup.backup_email(real_sendgrid, sendgrid_local).await?;
        let mut email_lookups = vec![(integrations_sendgrid::PROVIDER.to_owned(), primary_client)];
        email_lookups.extend(backup_client.map(|c| (BACKUP_LABEL.to_owned(), c)));
        let email_tally = Arc::new(super::audit::EmailTally::default());
        if let Some(s) = &sendgrid_sandbox {
            email_tally.watch(s);
        }
        if let Some(s) = &backup_sandbox {
            email_tally.watch(s);
        }
        let email =
            Arc::new(Failover::<dyn EmailProvider>::from_primary(primary).with_fallback(backup));
        let (sheets, sheets_sandbox) = setup.sheets().await?;
        let (notifier, jsonl_notifier, notifications_file) =
            setup.notifications(config, dir).await?;
        setup.backend(
            "outbox",
            super::outbox::FlowOutbox::describe(config.database.as_ref(), dir),
            false,
        );
        setup.backend(
            "metrics",
            "core MetricsRegistry + shop counters (metrics.prom)".into(),
            false,
        );

        Ok(Services {
            payments,
            stripe_client,
            verifier,
            stripe_sandbox,
            email,
            sendgrid_sandbox,
            backup_sandbox,
            email_lookups,
            email_tally,
            payment_tally,
            from,
            recipient,
            sheets,
            sheets_sandbox,
            notifier,
            jsonl_notifier,
            notifications_file,
            job_policies: setup.job_policies(),
            backends: setup.backends,
        })
    }

    /// Whether every service is a sandbox.
    pub fn all_sandboxes(&self) -> bool {
        self.backends.iter().all(|b| !b.real)
    }

    /// The sink as core's trait object.
    pub fn sheets_sink(&self) -> Arc<dyn SheetsSink> {
        Arc::new(self.sheets.clone())
    }

    /// Payments as core's trait object.
    pub fn payment_provider(&self) -> Arc<dyn PaymentProvider> {
        self.payments.clone()
    }
}

/// What [`Services::start`] builds from: the environment, the policies' settings, and the
/// backends described so far.
struct Setup<'a> {
    env: &'a super::config::Environment,
    registry: &'a MetricsRegistry,
    timeout: Option<Duration>,
    /// What each sandbox keeps of its history (requests, events, messages, …).
    retention: usize,
    budgets: JobBudgets,
    email_policies: Vec<Policy>,
    sheets_policy: Option<Policy>,
    notify_policy: Option<Policy>,
    backends: Vec<Backend>,
}

impl Setup<'_> {
    fn backend(&mut self, role: &'static str, what: String, real: bool) {
        self.backends.push(Backend { role, what, real });
    }

    /// The policy of an email provider, bounded by its share of the email job, and recorded
    /// for the dispatcher's check.
    fn email_policy(&mut self, name: &'static str, local: bool) -> Policy {
        let p = policies::email(
            name,
            self.registry,
            local,
            self.timeout,
            Some(self.budgets.email_each),
        );
        self.email_policies.push(p.clone());
        p
    }

    /// The policy of the notifier, bounded by the notify job's budget, and recorded.
    fn notify_policy(&mut self, name: &'static str) -> Policy {
        let p = policies::local(name, self.registry, self.timeout, Some(self.budgets.notify));
        self.notify_policy = Some(p.clone());
        p
    }

    /// The policies the jobs' handlers call under, for
    /// [`DispatcherBuilder::handler_with_policy`](integrations_outbox::DispatcherBuilder::handler_with_policy).
    fn job_policies(&self) -> JobPolicies {
        let unbounded = |name| Policy::builder(name).no_attempt_timeout().build();
        let emails: Vec<&Policy> = self.email_policies.iter().collect();
        JobPolicies {
            email: policies::in_sequence("email-failover", &emails),
            sheets: self
                .sheets_policy
                .clone()
                .unwrap_or_else(|| unbounded("sheets-job")),
            notify: self
                .notify_policy
                .clone()
                .unwrap_or_else(|| unbounded("notify-job")),
        }
    }

    /// The sender, and the inbox every customer email goes to with a real email provider.
    /// Checked first: a real email provider must not mail made-up customers.
    fn sender(&self) -> Result<(Mailbox, Option<String>)> {
        let env = self.env;
        let real_sendgrid = env.has(ENV_SENDGRID);
        Ok(if real_sendgrid || env.has_aws() {
            let need = |name| {
                env.get(name).map(str::to_owned).ok_or_else(|| {
                    Error::configuration(
                        name,
                        "required with a real email provider: a verified sender, and an inbox you own for the customer emails",
                    )
                })
            };
            (
                Mailbox::named(need(ENV_EMAIL_FROM)?, "Order flow example"),
                Some(need(ENV_EMAIL_TO)?),
            )
        } else {
            (Mailbox::named("orders@example.com", "Trailhead Shop"), None)
        })
    }

    /// Payments: real Stripe (test mode only), or the Stripe sandbox with signed webhooks.
    async fn payments(
        &mut self,
    ) -> Result<(
        StripeClient,
        Option<integrations_stripe::sandbox::Sandbox>,
        Option<StripeWebhookVerifier>,
    )> {
        let env = self.env;
        let (registry, timeout) = (self.registry, self.timeout);
        let real_stripe = env.has(ENV_STRIPE);
        Ok(if real_stripe {
            let local = env.is_loopback(ENV_STRIPE_API_BASE);
            let client = StripeBuilder::from_env()
                .with_policy(policies::stripe(registry, local, timeout))
                .build()?
                .client()
                .clone();
            if client.mode() == Mode::Live {
                return Err(Error::configuration(
                    ENV_STRIPE,
                    "a live key: this example pays with test cards; use a test-mode key (sk_test_…)",
                ));
            }
            // Stripe cannot reach a local endpoint: events are read back over the API, and a
            // signing secret (if set) only serves deliveries forwarded by `stripe listen`.
            let verifier = StripeWebhookVerifier::from_env().ok();
            let what = match env.get(ENV_STRIPE_API_BASE).filter(|_| local) {
                Some(base) => {
                    format!("Stripe at {base} (test key), events read back from /v1/events")
                }
                None => "Stripe (test mode), events read back from /v1/events".into(),
            };
            self.backend("payments", what, !local);
            (client, None, verifier)
        } else {
            let sandbox = integrations_stripe::sandbox::Sandbox::builder()
                .request_retention(self.retention)
                .event_retention(self.retention)
                .idempotency_retention(self.retention)
                .object_retention(self.retention)
                // The signed payloads waiting for the webhook receiver, bounded by the same
                // retention (the sandbox's default, 10,000, held ~50 MB when the receiver fell
                // behind): past it a checkout waits for a delivery to start.
                .webhook_backlog(self.retention)
                .start()
                .await
                .map_err(io("Stripe"))?;
            let client = sandbox
                .client_builder()
                .with_policy(policies::stripe(registry, true, timeout))
                .build()?
                .client()
                .clone();
            let verifier = Some(StripeWebhookVerifier::new(sandbox.webhook_secret()));
            self.backend(
                "payments",
                format!("Stripe sandbox at {}, signed webhooks", sandbox.base_url()),
                false,
            );
            (client, Some(sandbox), verifier)
        })
    }

    /// The primary email provider: SendGrid, or a SendGrid sandbox; and its client, for the
    /// Email Activity lookup.
    async fn primary_email(
        &mut self,
        real_sendgrid: bool,
        sendgrid_local: bool,
    ) -> Result<(
        Arc<dyn EmailProvider>,
        Option<integrations_sendgrid::sandbox::Sandbox>,
        SendGridClient,
    )> {
        let env = self.env;
        Ok(if real_sendgrid {
            let sg = SendGridBuilder::from_env()
                .with_policy(self.email_policy(integrations_sendgrid::PROVIDER, sendgrid_local))
                .build()?;
            let what = match env.get(ENV_SENDGRID_API_BASE).filter(|_| sendgrid_local) {
                Some(base) => format!("SendGrid at {base}"),
                None => "SendGrid".into(),
            };
            self.backend("email", what, !sendgrid_local);
            let client = sg.client().clone();
            (Arc::new(sg), None, client)
        } else {
            let sandbox = integrations_sendgrid::sandbox::Sandbox::builder()
                .request_retention(self.retention)
                .message_retention(self.retention)
                .start()
                .await
                .map_err(io("SendGrid"))?;
            let sg = sandbox
                .email()
                .with_policy(self.email_policy(integrations_sendgrid::PROVIDER, true))
                .build()?;
            self.backend(
                "email",
                format!("SendGrid sandbox at {}", sandbox.base_url()),
                false,
            );
            let client = sg.client().clone();
            (Arc::new(sg), Some(sandbox), client)
        })
    }

    /// The backup email provider: SES when AWS is set, else a second, labelled SendGrid sandbox;
    /// and its client for the Email Activity lookup (SES has none: it cannot look a message up
    /// by tag).
    async fn backup_email(
        &mut self,
        real_sendgrid: bool,
        sendgrid_local: bool,
    ) -> Result<(
        Arc<dyn EmailProvider>,
        Option<integrations_sendgrid::sandbox::Sandbox>,
        Option<SendGridClient>,
    )> {
        let env = self.env;
        Ok(if env.has_aws() {
            let aws = AwsBuilder::from_env()
                .with_policy(self.email_policy("aws-ses", false))
                .build()?;
            self.backend(
                "email backup",
                format!("Amazon SES ({})", aws.region()),
                true,
            );
            (Arc::new(SesEmail::new(&aws)), None, None)
        } else {
            let sandbox = integrations_sendgrid::sandbox::Sandbox::builder()
                .request_retention(self.retention)
                .message_retention(self.retention)
                .start()
                .await
                .map_err(io("backup SendGrid"))?;
            let sg = sandbox
                .email()
                .with_policy(self.email_policy(BACKUP_LABEL, !real_sendgrid || sendgrid_local))
                .build()?;
            self.backend(
                "email backup",
                format!(
                    "second SendGrid sandbox at {}, labelled {BACKUP_LABEL}",
                    sandbox.base_url()
                ),
                false,
            );
            let client = sg.client().clone();
            (
                Arc::new(Labelled::new(BACKUP_LABEL, sg)),
                Some(sandbox),
                Some(client),
            )
        })
    }

    /// Analytics rows: Google Sheets, or the Sheets sandbox.
    async fn sheets(
        &mut self,
    ) -> Result<(
        GoogleSheetsSink,
        Option<integrations_sheets::sandbox::Sandbox>,
    )> {
        let env = self.env;
        let (registry, timeout) = (self.registry, self.timeout);
        let real_sheets = env.has(ENV_GOOGLE);
        let sheets_local = env.is_loopback(ENV_SHEETS_BASE_URL);
        let deadline = Some(self.budgets.sheets_each);
        let sheets_policy = |local: bool| {
            policies::sheets(
                integrations_sheets::PROVIDER,
                registry,
                local,
                timeout,
                deadline,
            )
        };
        let sheets_builder = |b: GoogleSheetsBuilder, local: bool| {
            b.with_write_policy(sheets_policy(local))
                .with_read_policy(sheets_policy(local))
                .with_token_policy(policies::local("google-oauth", registry, timeout, None))
                .with_batch(
                    BatchConfig::new().with_max_delay(Duration::from_millis(if local {
                        250
                    } else {
                        2000
                    })),
                )
        };
        Ok(if real_sheets {
            let id = env.spreadsheet_id().ok_or_else(|| {
                Error::configuration(
                    ENV_SPREADSHEET,
                    "required with GOOGLE_APPLICATION_CREDENTIALS",
                )
            })?;
            let sink = sheets_builder(
                GoogleSheetsBuilder::from_env().with_spreadsheet_id(id),
                sheets_local,
            )
            .build()?;
            let p = sheets_policy(sheets_local);
            self.sheets_policy = Some(policies::in_sequence("sheets-job", &[&p, &p]));
            let at = match env.get(ENV_SHEETS_BASE_URL).filter(|_| sheets_local) {
                Some(base) => format!(" at {base}"),
                None => String::new(),
            };
            self.backend(
                "analytics",
                format!("Google Sheets{at}, spreadsheet {id}, sheet {SHEET}"),
                !sheets_local,
            );
            (sink, None)
        } else {
            // The sheet's rows past the retention go to the sandbox's file: the sheet is the
            // run's output and grows with the orders (~320 B a row in memory).
            let sandbox = integrations_sheets::sandbox::Sandbox::builder()
                .request_retention(self.retention)
                .resident_rows(self.retention)
                .start()
                .await?;
            sandbox.add_sheet(sandbox.spreadsheet_id(), SHEET);
            let sink = sheets_builder(sandbox.client_builder(), true).build()?;
            let p = sheets_policy(true);
            self.sheets_policy = Some(policies::in_sequence("sheets-job", &[&p, &p]));
            self.backend(
                "analytics",
                format!(
                    "Google Sheets sandbox at {}, sheet {SHEET}",
                    sandbox.base_url()
                ),
                false,
            );
            (sink, Some(sandbox))
        })
    }

    /// Notifications: SNS (AWS and a topic set), or a JSONL file in `dir`.
    async fn notifications(
        &mut self,
        config: &FlowConfig,
        dir: &Path,
    ) -> Result<(
        Arc<dyn Notifier>,
        Option<Arc<JsonlNotifier>>,
        Option<std::path::PathBuf>,
    )> {
        let env = self.env;
        let (notifier, jsonl_notifier, notifications_file): (Arc<dyn Notifier>, _, _) =
            match (env.has_aws(), env.get(ENV_SNS_TOPIC)) {
                (true, Some(topic)) => {
                    let aws = AwsBuilder::from_env()
                        .with_policy(self.notify_policy("aws-sns"))
                        .build()?;
                    self.backend("notifications", format!("Amazon SNS topic {topic}"), true);
                    (Arc::new(SnsNotifier::new(&aws, topic)), None, None)
                }
                (aws, _) => {
                    let path = dir.join(NOTIFICATIONS_FILE);
                    let policy = self.notify_policy(notifier::NAME);
                    let n = Arc::new(if config.state_dir.is_some() {
                        JsonlNotifier::open(&path, policy).await?
                    } else {
                        JsonlNotifier::create(&path, policy).await?
                    });
                    let why = if aws {
                        format!(" ({ENV_SNS_TOPIC} not set)")
                    } else {
                        String::new()
                    };
                    self.backend(
                        "notifications",
                        format!("JsonlNotifier → {}{why}", path.display()),
                        false,
                    );
                    (n.clone(), Some(n), Some(path))
                }
            };
        Ok((notifier, jsonl_notifier, notifications_file))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use integrations_testkit::StubEmailProvider;

    #[tokio::test]
    async fn labelled_renames_provider_and_receipts() {
        let stub = StubEmailProvider::new_ok();
        let l = Labelled::new(BACKUP_LABEL, stub);
        assert_eq!(l.name(), BACKUP_LABEL);
        let msg = EmailMessage::builder("a@example.com")
            .to("b@example.com")
            .subject("s")
            .text("t")
            .build();
        assert_eq!(l.send(&msg).await.unwrap().provider, BACKUP_LABEL);
    }

    #[tokio::test]
    async fn sandboxes_start_with_no_environment() {
        let dir = tempfile::tempdir().unwrap();
        let registry = MetricsRegistry::new();
        let s = Services::start(&FlowConfig::sandbox(1), &registry, dir.path())
            .await
            .unwrap();
        assert!(s.all_sandboxes());
        assert!(s.stripe_sandbox.is_some() && s.backup_sandbox.is_some());
        let roles: Vec<&str> = s.backends.iter().map(|b| b.role).collect();
        assert_eq!(
            roles,
            [
                "payments",
                "email",
                "email backup",
                "analytics",
                "notifications",
                "outbox",
                "metrics"
            ]
        );
        let debug = format!("{s:?}");
        let stripe = s.stripe_sandbox.as_ref().unwrap();
        assert!(!debug.contains(stripe.secret_key()), "API key in Debug");
        assert!(
            !debug.contains(stripe.webhook_secret_text()),
            "webhook secret in Debug"
        );
        let sendgrid = s.sendgrid_sandbox.as_ref().unwrap();
        assert!(!debug.contains(sendgrid.api_key()), "SendGrid key in Debug");
    }

    #[tokio::test]
    async fn a_real_email_provider_needs_sender_and_inbox() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = FlowConfig::sandbox(1);
        config.env = crate::order_flow::config::Environment::from_lookup(|k| {
            (k == ENV_SENDGRID).then(|| "SG.fake".to_owned())
        });
        let err = Services::start(&config, &MetricsRegistry::new(), dir.path())
            .await
            .unwrap_err();
        assert_eq!(err.field(), Some(ENV_EMAIL_FROM));
    }
}
