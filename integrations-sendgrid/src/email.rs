//! [`SendGridEmail`]: core's [`EmailProvider`] over SendGrid Mail Send.

use std::sync::Arc;

use async_trait::async_trait;
use integrations_core::provider::{
    EmailBody, EmailCapabilities, EmailMessage, EmailProvider, SentEmail,
};
use integrations_core::{Error, Result};

use crate::PROVIDER;
use crate::client::SendGridClient;
use crate::config::SendGridBuilder;
use crate::mail::MailSend;
use crate::template::TemplateRegistry;
use crate::validate::validate_mail;

/// SendGrid as an [`EmailProvider`].
///
/// [`EmailProvider::send`] checks the message before any request — core's checks (sender,
/// recipients, addresses, subject, content or template), then SendGrid's limits
/// ([`validate_mail`](crate::validate_mail)), then the required variables of a registered hosted
/// template — maps it to SendGrid's body ([`MailSend::from_message`]) and sends it under the
/// client's policy. The receipt's `message_id` is the `X-Message-Id`, which event webhooks carry
/// as the prefix of `sg_message_id`.
#[derive(Debug, Clone)]
pub struct SendGridEmail {
    client: SendGridClient,
    templates: Option<Arc<TemplateRegistry>>,
}

impl SendGridEmail {
    pub(crate) fn new(client: SendGridClient, templates: Option<Arc<TemplateRegistry>>) -> Self {
        SendGridEmail { client, templates }
    }

    /// A builder ([`SendGridBuilder::new`]).
    pub fn builder() -> SendGridBuilder {
        SendGridBuilder::new()
    }

    /// The underlying client (for [`SendGridClient::send_mail`] with fields core does not model).
    pub fn client(&self) -> &SendGridClient {
        &self.client
    }

    /// The template registry, if one was configured.
    pub fn templates(&self) -> Option<&TemplateRegistry> {
        self.templates.as_deref()
    }

    /// Every check [`EmailProvider::send`] runs, and the body it would send; makes no request.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] naming the first offending field or missing template variable.
    pub fn prepare(&self, message: &EmailMessage) -> Result<MailSend> {
        message.validate().map_err(|e| e.or_provider(PROVIDER))?;
        let mail = MailSend::from_message(message);
        validate_mail(&mail, self.client.clock().now())?;
        if let (Some(reg), EmailBody::Template { id, .. }) = (&self.templates, &message.body) {
            reg.check_hosted(
                id,
                mail.personalizations
                    .iter()
                    .map(|p| &p.dynamic_template_data),
            )
            .map_err(|e: Error| e.with_provider(PROVIDER))?;
        }
        Ok(mail)
    }
}

#[async_trait]
impl EmailProvider for SendGridEmail {
    fn name(&self) -> &str {
        PROVIDER
    }

    fn capabilities(&self) -> EmailCapabilities {
        EmailCapabilities::all()
    }

    async fn send(&self, message: &EmailMessage) -> Result<SentEmail> {
        let mail = self.prepare(message)?;
        let id = self.client.send_mail(&mail).await?;
        tracing::debug!(provider = PROVIDER, message_id = %id, "mail accepted");
        Ok(SentEmail::new(PROVIDER, id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::template::Template;
    use integrations_core::ErrorKind;
    use integrations_core::clock::{Clock, FixedClock};
    use integrations_core::provider::Personalization;
    use std::time::Duration;

    fn provider(templates: Option<TemplateRegistry>) -> (SendGridEmail, FixedClock) {
        let clock = FixedClock::from_unix(1_700_000_000);
        let mut b = SendGridBuilder::new()
            .with_api_key("SG.test")
            .with_base_url("http://127.0.0.1:9")
            .with_clock(clock.clone());
        if let Some(t) = templates {
            b = b.with_templates(t);
        }
        (b.build().unwrap(), clock)
    }

    #[test]
    fn prepare_runs_core_then_sendgrid_checks() {
        let (p, clock) = provider(None);
        let base = || {
            EmailMessage::builder("shop@example.com")
                .to("a@example.com")
                .subject("s")
                .text("t")
        };
        assert!(p.prepare(&base().build()).is_ok());
        let e = p
            .prepare(&EmailMessage::builder("bad").to("a@example.com").build())
            .unwrap_err();
        assert_eq!(e.field(), Some("from.email"));
        assert_eq!(e.provider_name(), Some(PROVIDER));
        let later = clock.now() + Duration::from_secs(73 * 3600);
        let e = p.prepare(&base().send_at(later).build()).unwrap_err();
        assert_eq!(e.field(), Some("send_at"));
        clock.advance(Duration::from_secs(3600));
        assert!(p.prepare(&base().send_at(later).build()).is_ok());
    }

    #[test]
    fn registered_hosted_templates_check_variables_per_envelope() {
        let mut reg = TemplateRegistry::new();
        reg.insert(
            Template::builder("receipt")
                .subject("Receipt {{order_id}}")
                .text("{{customer_name}}")
                .required(["order_id", "customer_name"])
                .hosted_id("d-receipt")
                .build()
                .unwrap(),
        );
        let (p, _) = provider(Some(reg));
        let msg = EmailMessage::builder("shop@example.com")
            .personalization(Personalization::to("a@example.com").variable("customer_name", "A"))
            .personalization(Personalization::to("b@example.com"))
            .template("d-receipt")
            .variable("order_id", "42")
            .build();
        let e = p.prepare(&msg).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
        assert_eq!(e.field(), Some("customer_name"));
        let ok = EmailMessage::builder("shop@example.com")
            .to("a@example.com")
            .template("d-receipt")
            .variable("order_id", "42")
            .variable("customer_name", "A")
            .build();
        assert!(p.prepare(&ok).is_ok());
        assert_eq!(p.capabilities(), EmailCapabilities::all());
        assert_eq!(p.name(), "sendgrid");
    }
}
