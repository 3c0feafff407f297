//! Amazon SES API v2 (feature `ses`): core's [`EmailProvider`] ([`SesEmail`]), so that core's
//! failover can run SendGrid → SES.

use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use integrations_core::provider::{EmailBody, EmailCapabilities, SentEmail};
use integrations_core::{EmailMessage, EmailProvider, Error, ErrorKind, Mailbox, Result};
use reqwest::Method;
use serde_json::{Map, Value, json};

use crate::client::AwsClient;
use crate::config::{AwsConfig, Service};

/// Sends email through SES v2 `SendEmail` (`POST /v2/email/outbound-emails`): simple content
/// (subject, text and/or HTML) or a stored template (`EmailBody::Template`'s id is the template
/// name, its variables the `TemplateData`).
///
/// One message is one SES destination, so a message must have exactly one recipient group
/// (personalization); split others before sending. Custom args and categories become SES message
/// tags (`category` for the first category; characters SES does not allow in tags are replaced by
/// `_`). Attachments and scheduled sending are not supported (SES v2 `Simple` content has neither
/// here); such messages are refused as invalid input rather than sent without them.
///
/// SES takes no idempotency key and cannot be asked afterwards whether it accepted a message:
/// there is no lookup by message tag (tags only reach configured event destinations). So a
/// send whose answer was lost, retried, may deliver the email twice, and unlike SendGrid
/// (`SendGridClient::messages_with_custom_arg` on the Email Activity feed) nothing can be
/// checked before retrying; the outbox crate documents this window.
#[derive(Debug, Clone)]
pub struct SesEmail {
    client: AwsClient,
    configuration_set: Option<String>,
}

impl SesEmail {
    /// A sender for `config`'s region, credentials and SES endpoint.
    pub fn new(config: &AwsConfig) -> Self {
        SesEmail {
            client: AwsClient::new(config, Service::SesV2),
            configuration_set: None,
        }
    }
    /// Sends with this configuration set (event publishing, dedicated IPs).
    #[must_use]
    pub fn with_configuration_set(mut self, name: impl Into<String>) -> Self {
        self.configuration_set = Some(name.into());
        self
    }

    /// Starts verification of an email address or domain (`CreateEmailIdentity`); SES only sends
    /// from verified identities. An identity that already exists is not an error.
    ///
    /// # Errors
    /// The mapped AWS error; transport and policy errors.
    pub async fn create_email_identity(&self, identity: &str) -> Result<()> {
        let body = json!({ "EmailIdentity": identity });
        let r: Result<Value> = self
            .client
            .rest_json(
                "CreateEmailIdentity",
                Method::POST,
                "/v2/email/identities".to_owned(),
                Some(&body),
            )
            .await;
        match r {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == ErrorKind::Conflict => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// The `SendEmail` request body for `m`.
    pub(crate) fn request_body(&self, m: &EmailMessage) -> Result<Value> {
        m.validate()?;
        if !m.attachments.is_empty() {
            return Err(Error::invalid_input(
                "attachments",
                "SesEmail does not send attachments",
            ));
        }
        if m.send_at.is_some() {
            return Err(Error::invalid_input(
                "send_at",
                "SES cannot schedule a message",
            ));
        }
        let [p] = m.personalizations.as_slice() else {
            return Err(Error::invalid_input(
                "personalizations",
                "SES sends one recipient group per message; send each group separately",
            ));
        };
        let list = |l: &[Mailbox]| l.iter().map(format_mailbox).collect::<Vec<_>>();
        let mut destination = json!({ "ToAddresses": list(&p.to) });
        if !p.cc.is_empty() {
            destination["CcAddresses"] = json!(list(&p.cc));
        }
        if !p.bcc.is_empty() {
            destination["BccAddresses"] = json!(list(&p.bcc));
        }
        let subject = p.subject.as_ref().or(m.subject.as_ref());
        let content = match &m.body {
            EmailBody::Content { text, html } => {
                let mut body = Map::new();
                if let Some(t) = text.as_deref().filter(|t| !t.is_empty()) {
                    body.insert("Text".into(), json!({ "Data": t, "Charset": "UTF-8" }));
                }
                if let Some(h) = html.as_deref().filter(|h| !h.is_empty()) {
                    body.insert("Html".into(), json!({ "Data": h, "Charset": "UTF-8" }));
                }
                json!({ "Simple": {
                    "Subject": { "Data": subject.map_or("", String::as_str), "Charset": "UTF-8" },
                    "Body": body,
                }})
            }
            EmailBody::Template { id, variables } => {
                let mut data = variables.clone();
                data.extend(p.variables.clone());
                json!({ "Template": {
                    "TemplateName": id,
                    "TemplateData": Value::Object(data).to_string(),
                }})
            }
            _ => return Err(Error::invalid_input("content", "unsupported body kind")),
        };
        let mut body = json!({
            "FromEmailAddress": format_mailbox(&m.from),
            "Destination": destination,
            "Content": content,
        });
        if let Some(r) = &m.reply_to {
            body["ReplyToAddresses"] = json!([format_mailbox(r)]);
        }
        let mut tags: Vec<Value> = m
            .custom_args
            .iter()
            .chain(&p.custom_args)
            .map(|(k, v)| json!({ "Name": tag_text(k), "Value": tag_text(v) }))
            .collect();
        if let Some(c) = m.categories.first() {
            tags.push(json!({ "Name": "category", "Value": tag_text(c) }));
        }
        if !tags.is_empty() {
            body["EmailTags"] = Value::Array(tags);
        }
        if let Some(cs) = &self.configuration_set {
            body["ConfigurationSetName"] = json!(cs);
        }
        Ok(body)
    }
}

#[async_trait]
impl EmailProvider for SesEmail {
    fn name(&self) -> &str {
        "ses"
    }

    fn capabilities(&self) -> EmailCapabilities {
        let mut c = EmailCapabilities::default();
        c.templates = true;
        c.categories = true;
        c
    }

    async fn send(&self, message: &EmailMessage) -> Result<SentEmail> {
        let body = self.request_body(message)?;
        let resp: Value = self
            .client
            .rest_json(
                "SendEmail",
                Method::POST,
                "/v2/email/outbound-emails".to_owned(),
                Some(&body),
            )
            .await?;
        let id = resp
            .get("MessageId")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                Error::provider("SendEmail response has no MessageId")
                    .with_provider(Service::SesV2.provider_name())
            })?;
        Ok(SentEmail::new(self.name(), id))
    }
}

/// `"Jane Doe" <jane@example.com>`; a non-ASCII name is RFC 2047 encoded-word (`=?UTF-8?B?…?=`).
pub(crate) fn format_mailbox(m: &Mailbox) -> String {
    match m.name.as_deref().filter(|n| !n.is_empty()) {
        None => m.email.clone(),
        Some(n) if n.is_ascii() && !n.chars().any(|c| c.is_ascii_control()) => {
            let escaped = n.replace('\\', "\\\\").replace('"', "\\\"");
            format!("\"{escaped}\" <{}>", m.email)
        }
        Some(n) => format!(
            "=?UTF-8?B?{}?= <{}>",
            STANDARD.encode(n.as_bytes()),
            m.email
        ),
    }
}

/// SES tag names and values: ASCII letters, digits, `_`, `-`, at most 256 characters.
fn tag_text(s: &str) -> String {
    s.chars()
        .take(256)
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{AwsBuilder, Credentials};
    use integrations_core::provider::Personalization;

    fn ses() -> SesEmail {
        let c = AwsBuilder::new()
            .with_region("eu-west-1")
            .with_credentials(Credentials::new("a", "b"))
            .build()
            .unwrap();
        SesEmail::new(&c).with_configuration_set("tx")
    }

    #[test]
    fn simple_body_shape() {
        let m = EmailMessage::builder(Mailbox::named("shop@example.com", "Shop \"A\""))
            .to(Mailbox::named("jane@example.com", "Jané"))
            .cc("cc@example.com")
            .reply_to("help@example.com")
            .subject("Order confirmed")
            .text("Thanks")
            .html("<p>Thanks</p>")
            .custom_arg("order_id", "order 42")
            .category("receipt")
            .build();
        let b = ses().request_body(&m).unwrap();
        assert_eq!(
            b["FromEmailAddress"],
            json!("\"Shop \\\"A\\\"\" <shop@example.com>")
        );
        assert_eq!(
            b["Destination"]["ToAddresses"],
            json!(["=?UTF-8?B?SmFuw6k=?= <jane@example.com>"])
        );
        assert_eq!(b["Destination"]["CcAddresses"], json!(["cc@example.com"]));
        assert_eq!(
            b["Content"]["Simple"]["Subject"]["Data"],
            json!("Order confirmed")
        );
        assert_eq!(
            b["Content"]["Simple"]["Body"]["Html"]["Data"],
            json!("<p>Thanks</p>")
        );
        assert_eq!(b["ReplyToAddresses"], json!(["help@example.com"]));
        assert_eq!(
            b["EmailTags"],
            json!([{"Name": "order_id", "Value": "order_42"}, {"Name": "category", "Value": "receipt"}])
        );
        assert_eq!(b["ConfigurationSetName"], json!("tx"));
    }

    #[test]
    fn template_body_merges_variables() {
        let m = EmailMessage::builder("shop@example.com")
            .personalization(Personalization::to("a@example.com").variable("name", "Ann"))
            .template("order-confirmation")
            .variable("order", 42)
            .build();
        let b = ses().request_body(&m).unwrap();
        assert_eq!(
            b["Content"]["Template"]["TemplateName"],
            json!("order-confirmation")
        );
        let data: Value =
            serde_json::from_str(b["Content"]["Template"]["TemplateData"].as_str().unwrap())
                .unwrap();
        assert_eq!(data, json!({"order": 42, "name": "Ann"}));
    }

    #[test]
    fn refuses_what_it_cannot_send() {
        let base = || {
            EmailMessage::builder("shop@example.com")
                .to("a@example.com")
                .subject("s")
                .text("t")
        };
        let field = |m: EmailMessage| {
            ses()
                .request_body(&m)
                .unwrap_err()
                .field()
                .map(str::to_owned)
        };
        assert_eq!(
            field(
                base()
                    .attachment("a.pdf", "application/pdf", vec![1])
                    .build()
            )
            .as_deref(),
            Some("attachments")
        );
        assert_eq!(
            field(base().to("b@example.com").build()).as_deref(),
            Some("personalizations")
        );
        assert_eq!(
            field(base().send_at(std::time::SystemTime::now()).build()).as_deref(),
            Some("send_at")
        );
        assert_eq!(
            field(EmailMessage::builder("bad").to("a@example.com").build()).as_deref(),
            Some("from.email")
        );
    }
}
