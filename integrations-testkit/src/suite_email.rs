//! The behaviour suite every [`EmailProvider`] must pass.

use super::suite_support::Checker;
use integrations_core::ErrorKind;
use integrations_core::provider::{EmailMessage, EmailProvider, Mailbox};

/// What [`email_provider_suite`] needs: a sender the provider accepts, a recipient that may
/// receive the suite's mail, and optionally a template of the account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailSuiteConfig {
    /// Sender (verified at the provider, for real accounts).
    pub from: Mailbox,
    /// Recipient of the one or two messages actually sent.
    pub to: Mailbox,
    /// A template id of the account (`d-…` at SendGrid); the template check runs only with one,
    /// and only if the provider declares templates.
    pub template_id: Option<String>,
}

impl EmailSuiteConfig {
    /// A configuration without a template.
    pub fn new(from: impl Into<Mailbox>, to: impl Into<Mailbox>) -> Self {
        EmailSuiteConfig {
            from: from.into(),
            to: to.into(),
            template_id: None,
        }
    }

    /// Also checks sending with this template.
    #[must_use]
    pub fn with_template(mut self, template_id: impl Into<String>) -> Self {
        self.template_id = Some(template_id.into());
        self
    }
}

/// Runs the email contract against `p`, panicking with the broken contract's name.
///
/// A valid text message is accepted with a non-empty message id and a receipt naming
/// [`EmailProvider::name`]; a message without recipients, with a malformed recipient or sender
/// address, or without content is invalid input naming the field; with `templates` declared and a
/// template configured, a template message is accepted; without `templates`, a template message
/// is refused as invalid input rather than sent some other way.
///
/// At most two messages are sent, to `cfg.to`.
pub async fn email_provider_suite(p: &dyn EmailProvider, cfg: &EmailSuiteConfig) {
    let c = Checker::new("email", p.name());
    let base = || EmailMessage::builder(cfg.from.clone());

    let msg = base()
        .to(cfg.to.clone())
        .subject("integrations behaviour suite")
        .text("Sent by the integrations email behaviour suite.")
        .custom_arg("integrations_suite", "email")
        .build();
    let sent = c.ok("a valid text message is accepted", p.send(&msg).await);
    c.check(
        !sent.message_id.is_empty(),
        "an accepted message has a message id",
        "empty message id",
    );
    c.eq(
        sent.provider.as_str(),
        p.name(),
        "the receipt names the provider that sent it",
    );

    let no_recipients = base().subject("s").text("t").build();
    c.invalid_input(
        "a message without recipients is invalid input naming the recipients",
        |f| f.contains("personalizations") || f.contains("to"),
        p.send(&no_recipients).await,
    );
    let bad_to = base().to("not-an-address").subject("s").text("t").build();
    c.invalid_input(
        "a malformed recipient address is invalid input naming it",
        |f| f.contains("to"),
        p.send(&bad_to).await,
    );
    let bad_from = EmailMessage::builder("not an address")
        .to(cfg.to.clone())
        .subject("s")
        .text("t")
        .build();
    c.invalid_input(
        "a malformed sender address is invalid input naming it",
        |f| f.contains("from"),
        p.send(&bad_from).await,
    );
    let no_content = base().to(cfg.to.clone()).subject("s").build();
    c.invalid_input(
        "a message without content or template is invalid input naming `content`",
        |f| f.contains("content"),
        p.send(&no_content).await,
    );

    let template_msg = |id: &str| {
        base()
            .to(cfg.to.clone())
            .template(id)
            .variable("suite", "email")
            .build()
    };
    if p.capabilities().templates {
        if let Some(id) = &cfg.template_id {
            let sent = c.ok(
                "a provider declaring templates sends a template message",
                p.send(&template_msg(id)).await,
            );
            c.check(
                !sent.message_id.is_empty(),
                "an accepted template message has a message id",
                "empty message id",
            );
        }
    } else {
        let id = cfg.template_id.as_deref().unwrap_or("d-integrations-suite");
        c.err_kind(
            "a provider without templates refuses a template message as invalid input",
            ErrorKind::InvalidInput,
            p.send(&template_msg(id)).await,
        );
    }
}
