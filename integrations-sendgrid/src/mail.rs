//! The `POST /v3/mail/send` request body, and its mapping from core's [`EmailMessage`].
//!
//! Field names and shapes follow SendGrid's Mail Send OpenAPI (`tsg_mail_v3.json`). Empty
//! collections and absent options are left out of the JSON, as SendGrid rejects some empty values
//! (`content[].value`, `subject` have `minLength: 1`).

use std::collections::BTreeMap;
use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use integrations_core::clock::unix_seconds;
use integrations_core::provider::{Attachment, EmailBody, EmailMessage, Mailbox, Personalization};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// MIME type of plain-text content.
pub const TEXT_PLAIN: &str = "text/plain";
/// MIME type of HTML content.
pub const TEXT_HTML: &str = "text/html";

/// An address with an optional display name (`MailFrom` / `MailTo`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Address {
    /// The address.
    pub email: String,
    /// Display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

impl From<&Mailbox> for Address {
    fn from(m: &Mailbox) -> Self {
        Address {
            email: m.email.clone(),
            name: m.name.clone().filter(|n| !n.is_empty()),
        }
    }
}

/// One envelope: who receives the message and their per-recipient data.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub struct MailPersonalization {
    /// Recipients (at least one).
    #[serde(default)]
    pub to: Vec<Address>,
    /// Copies.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cc: Vec<Address>,
    /// Blind copies.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bcc: Vec<Address>,
    /// Subject for this envelope, overriding the message subject.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// Handlebars data for a dynamic template (`d-…`).
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub dynamic_template_data: Map<String, Value>,
    /// Values carried into every event of this envelope, overriding message-level ones.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub custom_args: BTreeMap<String, String>,
    /// Unix time to send this envelope.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub send_at: Option<i64>,
}

impl MailPersonalization {
    /// Every recipient of this envelope: to, then cc, then bcc.
    pub fn recipients(&self) -> impl Iterator<Item = &Address> {
        self.to.iter().chain(&self.cc).chain(&self.bcc)
    }
}

/// One body part.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Content {
    /// MIME type (`text/plain`, `text/html`).
    #[serde(rename = "type")]
    pub mime_type: String,
    /// The content.
    pub value: String,
}

/// A file attached to the message, base64-encoded.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MailAttachment {
    /// Base64 (standard alphabet, padded) of the file.
    pub content: String,
    /// MIME type.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub mime_type: Option<String>,
    /// File name with extension.
    pub filename: String,
    /// `attachment` or `inline`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disposition: Option<String>,
    /// Content id for inline images.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_id: Option<String>,
}

impl fmt::Debug for MailAttachment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MailAttachment")
            .field("filename", &self.filename)
            .field("type", &self.mime_type)
            .field("disposition", &self.disposition)
            .field("content_base64_len", &self.content.len())
            .finish_non_exhaustive()
    }
}

impl From<&Attachment> for MailAttachment {
    fn from(a: &Attachment) -> Self {
        MailAttachment {
            content: STANDARD.encode(&a.content),
            mime_type: Some(a.content_type.clone()).filter(|t| !t.is_empty()),
            filename: a.filename.clone(),
            disposition: Some("attachment".to_owned()),
            content_id: None,
        }
    }
}

/// The body of `POST /v3/mail/send`.
///
/// Build it from a provider-independent [`EmailMessage`] with [`MailSend::from_message`], or by
/// hand for fields core does not model; check it with [`crate::validate_mail`] before sending.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct MailSend {
    /// Envelopes (1..=1000).
    pub personalizations: Vec<MailPersonalization>,
    /// Sender.
    pub from: Address,
    /// Reply-to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<Address>,
    /// Message-level subject.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// Body parts: `text/plain` first, then `text/html`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub content: Vec<Content>,
    /// Attachments.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<MailAttachment>,
    /// Dynamic template id (`d-…`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template_id: Option<String>,
    /// Categories (≤ 10, each ≤ 255 characters).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub categories: Vec<String>,
    /// Values carried into every event of the message (put the order id here).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub custom_args: BTreeMap<String, String>,
    /// Unix time to send the message (≤ 72 h ahead).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub send_at: Option<i64>,
}

impl MailSend {
    /// A message from `from` to one envelope, with nothing else set.
    pub fn new(from: Address, personalization: MailPersonalization) -> Self {
        MailSend {
            personalizations: vec![personalization],
            from,
            reply_to: None,
            subject: None,
            content: Vec::new(),
            attachments: Vec::new(),
            template_id: None,
            categories: Vec::new(),
            custom_args: BTreeMap::new(),
            send_at: None,
        }
    }

    /// Maps core's message onto SendGrid's shape. Does not validate: see
    /// [`crate::validate_mail`] (the provider runs both core's and SendGrid's checks before sending).
    ///
    /// - text content comes before HTML content (SendGrid rejects the other order); empty parts
    ///   are left out;
    /// - a template body becomes `template_id`, and its variables are copied into every
    ///   envelope's `dynamic_template_data`, where the envelope's own variables win (SendGrid has
    ///   no message-level template data);
    /// - envelope variables are dropped for inline content, which has no use for them;
    /// - `send_at` becomes unix seconds.
    pub fn from_message(msg: &EmailMessage) -> Self {
        let (content, template) = match &msg.body {
            EmailBody::Content { text, html } => {
                let mut parts = Vec::new();
                for (mime, value) in [(TEXT_PLAIN, text), (TEXT_HTML, html)] {
                    if let Some(v) = value.as_deref().filter(|v| !v.is_empty()) {
                        parts.push(Content {
                            mime_type: mime.to_owned(),
                            value: v.to_owned(),
                        });
                    }
                }
                (parts, None)
            }
            EmailBody::Template { id, variables } => (Vec::new(), Some((id, variables))),
            // `EmailBody` is non-exhaustive: an unknown body kind sends no content, which
            // validation then reports as missing content.
            _ => (Vec::new(), None),
        };
        let personalizations = msg
            .personalizations
            .iter()
            .map(|p| personalization(p, template.map(|(_, vars)| vars)))
            .collect();
        MailSend {
            personalizations,
            from: Address::from(&msg.from),
            reply_to: msg.reply_to.as_ref().map(Address::from),
            subject: msg.subject.clone(),
            content,
            attachments: msg.attachments.iter().map(MailAttachment::from).collect(),
            template_id: template.map(|(id, _)| id.clone()),
            categories: msg.categories.clone(),
            custom_args: msg.custom_args.clone(),
            send_at: msg.send_at.map(unix_seconds),
        }
    }

    /// Every recipient of every envelope.
    pub fn recipients(&self) -> impl Iterator<Item = &Address> {
        self.personalizations.iter().flat_map(|p| p.recipients())
    }

    /// The JSON body, exactly as sent.
    ///
    /// # Errors
    /// Only if serialisation fails, which the types here cannot cause.
    pub fn to_json(&self) -> serde_json::Result<Vec<u8>> {
        serde_json::to_vec(self)
    }
}

fn personalization(
    p: &Personalization,
    template: Option<&Map<String, Value>>,
) -> MailPersonalization {
    let list = |v: &[Mailbox]| v.iter().map(Address::from).collect::<Vec<_>>();
    let dynamic_template_data = match template {
        Some(message_vars) => {
            let mut data = message_vars.clone();
            data.extend(p.variables.iter().map(|(k, v)| (k.clone(), v.clone())));
            data
        }
        None => Map::new(),
    };
    MailPersonalization {
        to: list(&p.to),
        cc: list(&p.cc),
        bcc: list(&p.bcc),
        subject: p.subject.clone(),
        dynamic_template_data,
        custom_args: p.custom_args.clone(),
        send_at: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use integrations_core::provider::Personalization;
    use serde_json::json;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn content_is_text_then_html_and_names_are_kept() {
        let msg = EmailMessage::builder(Mailbox::named("shop@example.com", "Shop"))
            .to(Mailbox::named("jane@example.com", "Jane"))
            .reply_to("help@example.com")
            .subject("Hi")
            .html("<p>Hi</p>")
            .text("Hi")
            .build();
        let v = serde_json::to_value(MailSend::from_message(&msg)).unwrap();
        assert_eq!(
            v,
            json!({
                "personalizations": [{"to": [{"email": "jane@example.com", "name": "Jane"}]}],
                "from": {"email": "shop@example.com", "name": "Shop"},
                "reply_to": {"email": "help@example.com"},
                "subject": "Hi",
                "content": [
                    {"type": "text/plain", "value": "Hi"},
                    {"type": "text/html", "value": "<p>Hi</p>"}
                ]
            })
        );
    }

    #[test]
    fn template_variables_reach_every_envelope_and_envelope_wins() {
        let msg = EmailMessage::builder("shop@example.com")
            .personalization(Personalization::to("a@example.com").variable("name", "A"))
            .personalization(Personalization::to("b@example.com"))
            .template("d-1")
            .variable("name", "default")
            .variable("order_id", "42")
            .send_at(UNIX_EPOCH + Duration::from_secs(1_700_000_000))
            .build();
        let m = MailSend::from_message(&msg);
        assert_eq!(m.template_id.as_deref(), Some("d-1"));
        assert!(m.content.is_empty());
        assert_eq!(m.personalizations[0].dynamic_template_data["name"], "A");
        assert_eq!(
            m.personalizations[1].dynamic_template_data["name"],
            "default"
        );
        assert_eq!(
            m.personalizations[1].dynamic_template_data["order_id"],
            "42"
        );
        assert_eq!(m.send_at, Some(1_700_000_000));
    }

    #[test]
    fn attachments_are_base64_and_debug_hides_them() {
        let msg = EmailMessage::builder("shop@example.com")
            .to("a@example.com")
            .subject("s")
            .text("t")
            .attachment("r.pdf", "application/pdf", b"SECRETBYTES".to_vec())
            .build();
        let m = MailSend::from_message(&msg);
        assert_eq!(m.attachments[0].content, STANDARD.encode(b"SECRETBYTES"));
        assert_eq!(m.attachments[0].disposition.as_deref(), Some("attachment"));
        assert!(!format!("{m:?}").contains(&m.attachments[0].content));
    }

    #[test]
    fn round_trips_through_json() {
        let msg = EmailMessage::builder("shop@example.com")
            .to("a@example.com")
            .cc("c@example.com")
            .subject("s")
            .text("t")
            .category("orders")
            .custom_arg("order_id", "42")
            .build();
        let m = MailSend::from_message(&msg);
        let back: MailSend = serde_json::from_slice(&m.to_json().unwrap()).unwrap();
        assert_eq!(back, m);
        assert_eq!(m.recipients().count(), 2);
    }
}
